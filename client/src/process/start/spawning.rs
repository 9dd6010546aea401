//! Which child's start arguments this thread is encoding (Python's
//! `context.get_spawning_popen()`).
//!
//! A `spawn` or `forkserver` child receives its target's arguments as
//! bytes over a socket only it holds ([`super::payload`]). While those
//! bytes are made, a value may put in what only such a child may
//! receive: a manager proxy adds the authkey its connection was made with
//! (`managers::transfer`), as CPython's `BaseProxy.__reduce__` does when
//! `get_spawning_popen()` is not `None`. Outside this scope — a `Pipe`, a
//! `Queue`, a pool's tasks — [`child_authkey`] is `None` and no secret is
//! written.

use std::cell::RefCell;

use super::super::current::AuthKey;
use super::super::error::ProcessError;
use super::super::target::{Launch, PortableTarget};
use super::method::StartMethod;

thread_local! {
    /// The authkey of the child whose arguments are being encoded.
    static CHILD_AUTHKEY: RefCell<Option<AuthKey>> = const { RefCell::new(None) };
}

/// Puts back the previous scope when encoding ends, even by a panic in a
/// `Serialize` impl.
struct Restore(Option<AuthKey>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CHILD_AUTHKEY.with(|c| *c.borrow_mut() = previous);
    }
}

/// Encodes `launch` for a re-executed child whose authkey is
/// `child_authkey`, inside the spawning scope.
pub(crate) fn portable(
    launch: &dyn Launch,
    method: StartMethod,
    child_authkey: &[u8],
) -> Result<PortableTarget, ProcessError> {
    let previous = CHILD_AUTHKEY.with(|c| c.replace(Some(AuthKey::from(child_authkey))));
    let _restore = Restore(previous);
    launch.portable(method)
}

/// While this thread encodes a `spawn` or `forkserver` child's start
/// arguments, that child's authkey; `None` otherwise.
pub(crate) fn child_authkey() -> Option<AuthKey> {
    CHILD_AUTHKEY.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::super::super::target::FnTarget;
    use super::*;

    fn probe(_: ()) {}

    #[test]
    fn the_scope_lasts_exactly_as_long_as_the_encoding() {
        assert!(child_authkey().is_none());
        let t = FnTarget {
            f: probe,
            args: ((),),
        };
        portable(&t, StartMethod::Spawn, b"child key").unwrap();
        assert!(child_authkey().is_none());
    }

    /// Arguments that look at the scope while they are encoded.
    struct Spy;

    impl serde::Serialize for Spy {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let key = child_authkey().map(|k| k.as_bytes().to_vec());
            s.serialize_bytes(&key.unwrap_or_default())
        }
    }

    impl<'de> serde::Deserialize<'de> for Spy {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde_bytes::ByteBuf::deserialize(d).map(|_| Spy)
        }
    }

    fn spied(_: Spy) {}

    #[test]
    fn arguments_see_the_childs_key_while_encoded() {
        let t = FnTarget {
            f: spied,
            args: (Spy,),
        };
        let p = portable(&t, StartMethod::Forkserver, b"child key").unwrap();
        let decoded: (serde_bytes::ByteBuf,) = ciborium::from_reader(p.args.as_slice()).unwrap();
        assert_eq!(decoded.0.as_slice(), b"child key");
        // Encoded outside the scope, the same value sees nothing.
        let mut outside = Vec::new();
        ciborium::into_writer(&(Spy,), &mut outside).unwrap();
        let decoded: (serde_bytes::ByteBuf,) = ciborium::from_reader(outside.as_slice()).unwrap();
        assert!(decoded.0.is_empty());
    }
}
