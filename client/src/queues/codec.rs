//! How items become bytes in the ring: CBOR (ciborium) for any serde
//! value, and the bytes themselves for `Vec<u8>` (no encoding, one copy).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::QueueError;

/// Whether `T` is `Vec<u8>`, which travels unencoded.
fn is_bytes<T>() -> bool {
    typeid::of::<T>() == typeid::of::<Vec<u8>>()
}

/// Calls `f` with the bytes that represent `item`.
pub(crate) fn with_encoded<T: Serialize, R>(
    item: &T,
    f: impl FnOnce(&[u8]) -> Result<R, QueueError>,
) -> Result<R, QueueError> {
    if is_bytes::<T>() {
        // SAFETY: T is Vec<u8> (same type id), so the reference is one.
        let v = unsafe { &*(item as *const T).cast::<Vec<u8>>() };
        return f(v);
    }
    let mut buf = Vec::with_capacity(64);
    ciborium::into_writer(item, &mut buf).map_err(|e| QueueError::Encode(e.to_string()))?;
    f(&buf)
}

/// The bytes that represent `item`, borrowed for `Vec<u8>`: for a caller
/// that must hold them across an `.await` (feature `asyncio`).
#[cfg(feature = "asyncio")]
pub(crate) fn encoded<T: Serialize>(item: &T) -> Result<std::borrow::Cow<'_, [u8]>, QueueError> {
    if is_bytes::<T>() {
        // SAFETY: T is Vec<u8> (same type id), so the reference is one.
        let v = unsafe { &*(item as *const T).cast::<Vec<u8>>() };
        return Ok(std::borrow::Cow::Borrowed(v));
    }
    with_encoded(item, |b| Ok(std::borrow::Cow::Owned(b.to_vec())))
}

/// The item that `bytes` represent.
pub(crate) fn decode<T: DeserializeOwned>(bytes: Vec<u8>) -> Result<T, QueueError> {
    if is_bytes::<T>() {
        let v = std::mem::ManuallyDrop::new(bytes);
        // SAFETY: T is Vec<u8> (same type id); ownership moves from the
        // ManuallyDrop into the read value, so it is dropped exactly once.
        return Ok(unsafe { std::ptr::read((&*v as *const Vec<u8>).cast::<T>()) });
    }
    ciborium::from_reader(bytes.as_slice()).map_err(|e| QueueError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Serialize + DeserializeOwned>(v: &T) -> T {
        let bytes = with_encoded(v, |b| Ok(b.to_vec())).unwrap();
        decode(bytes).unwrap()
    }

    proptest! {
        #[test]
        fn values_round_trip(v: (String, Vec<i64>, Option<f64>)) {
            let back = round_trip(&v);
            prop_assert_eq!(back.0, v.0);
            prop_assert_eq!(back.1, v.1);
            prop_assert_eq!(back.2.map(f64::to_bits), v.2.map(f64::to_bits));
        }

        #[test]
        fn bytes_travel_raw(v: Vec<u8>) {
            let raw = with_encoded(&v, |b| Ok(b.to_vec())).unwrap();
            prop_assert_eq!(&raw, &v);
            prop_assert_eq!(decode::<Vec<u8>>(raw).unwrap(), v);
        }
    }

    #[test]
    fn a_wrong_type_is_a_decode_error() {
        let bytes = with_encoded(&"text", |b| Ok(b.to_vec())).unwrap();
        assert!(matches!(decode::<u32>(bytes), Err(QueueError::Decode(_))));
    }
}
