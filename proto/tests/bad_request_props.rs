//! Property tests of what a server needs from a request that does not
//! decode: its id can still be read when the damage comes after it, the
//! error is said in words (never Rust's debug text) with the right Python
//! exception, ints beyond 64 bits are `OverflowError` however encoded, and
//! a limited encoding is all or nothing.

use mp_proto::codec::{decode, encode, encode_into_limited, CodecError, INT_TOO_LARGE};
use mp_proto::message::{ErrorKind, Kwargs, Request, Target};
use mp_proto::value::{ObjectId, Value};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec(inner, 0..6).prop_map(Value::Tuple),
        ]
    })
}

fn request() -> impl Strategy<Value = Request> {
    (
        any::<u64>(),
        prop::option::of(any::<u64>()),
        "[a-z_]{1,16}",
        prop::collection::vec(value(), 0..4),
        any::<u64>(),
    )
        .prop_map(|(id, object, method, args, thread)| Request {
            id,
            target: object.map_or(Target::Server, |o| Target::Object(ObjectId(o))),
            method,
            args,
            kwargs: Kwargs::new(),
            thread,
        })
}

/// Fails when `e` reads like Rust's debug output rather than words.
fn in_words(e: &CodecError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    for debug in [
        "Mismatch", "name:", "Some(", "None", "found: ", "Eof", "Len::",
    ] {
        prop_assert!(!text.contains(debug), "debug text in {:?}", text);
    }
    prop_assert!(!text.is_empty());
    Ok(())
}

/// The CBOR form of any integer: major type 0 or 1 up to 64 bits, a
/// bignum (tag 2 or 3) beyond.
fn cbor_int(n: i128) -> Vec<u8> {
    let (major, magnitude) = if n >= 0 {
        (0u8, n as u128)
    } else {
        (1u8, (-1 - n) as u128)
    };
    match u64::try_from(magnitude) {
        Ok(m) => {
            let mut out = vec![(major << 5) | 27];
            out.extend(m.to_be_bytes());
            out
        }
        Err(_) => {
            let digits = magnitude.to_be_bytes();
            let start = digits.iter().position(|&b| b != 0).unwrap_or(15);
            let mut out = vec![0xc2 + major, 0x40 + (16 - start) as u8];
            out.extend(&digits[start..]);
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_id_survives_any_damage_after_it(
        r in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&r).unwrap();
        // The array's header (one byte: 6 items), then the id.
        let id_end = 1 + encode(&r.id).unwrap().len();
        for (at, byte) in flips {
            let i = id_end + at.index(bytes.len() - id_end);
            bytes[i] = byte;
        }
        let end = id_end + cut.index(bytes.len() - id_end + 1);
        for frame in [&bytes[..], &bytes[..end]] {
            prop_assert_eq!(Request::id_of(frame), Some(r.id));
            if let Err(e) = decode::<Request>(frame) {
                in_words(&e)?;
            }
        }
    }

    #[test]
    fn errors_on_any_bytes_are_words(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = decode::<Request>(&bytes) {
            in_words(&e)?;
            let mut as_request = vec![0x86, 0x01];
            as_request.extend(&bytes);
            // Behind a readable id, the same bytes are answerable.
            prop_assert_eq!(Request::id_of(&as_request), Some(1));
        }
        if let Err(e) = decode::<Value>(&bytes) {
            in_words(&e)?;
        }
    }

    #[test]
    fn an_int_fits_or_overflows_however_encoded(n in prop_oneof![
        any::<i64>().prop_map(i128::from),
        any::<i128>(),
        (i128::from(i64::MAX) - 2)..(i128::from(i64::MAX) + 3),
        (i128::from(i64::MIN) - 2)..(i128::from(i64::MIN) + 3),
    ]) {
        let decoded = decode::<Value>(&cbor_int(n));
        match i64::try_from(n) {
            Ok(small) => prop_assert_eq!(decoded.unwrap(), Value::Int(small)),
            Err(_) => {
                let e = decoded.unwrap_err();
                prop_assert_eq!(e.kind(), ErrorKind::OverflowError);
                prop_assert_eq!(e.to_string(), INT_TOO_LARGE);
            }
        }
    }

    #[test]
    fn a_limited_encoding_is_all_or_nothing(v in value(), slack in -40i64..40) {
        let full = encode(&v).unwrap();
        let limit = (full.len() as i64 + slack).max(0) as usize;
        let mut out = vec![1, 2, 3];
        match encode_into_limited(&v, &mut out, limit) {
            Ok(()) => {
                prop_assert!(full.len() <= limit);
                prop_assert_eq!(&out[3..], &full[..]);
            }
            Err(e) => {
                prop_assert!(full.len() > limit);
                prop_assert!(matches!(e, CodecError::TooLarge { .. }), "{e:?}");
                prop_assert_eq!(out, vec![1, 2, 3]);
            }
        }
    }
}
