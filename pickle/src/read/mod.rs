//! Reading pickles: protocols 0–5, data only, bounded by [`Limits`].
//!
//! The stack machine (`machine`) builds a graph of nodes in an arena,
//! applying [`crate::policy`] to every global as it is named and used;
//! the graph then becomes a [`Value`] tree (`tree`), where calls and
//! instances get their meaning (a `slice`, a `Token`, a proxy, an
//! exception, an inert instance). Nothing is imported or called.

mod machine;
mod node;
mod text;
mod tree;

use crate::error::UnpicklingError;
use crate::limits::Limits;
use crate::value::Value;

/// A value read from a pickle, and the protocol the pickle declared.
#[derive(Clone, Debug, PartialEq)]
pub struct Unpickled {
    /// The value.
    pub value: Value,
    /// The pickle's protocol (its `PROTO` opcode; 0 when it has none), so
    /// that a reply can be written in the protocol the client used
    /// ([`crate::Protocol::for_reply`]).
    pub protocol: u8,
}

/// Reads one pickle that makes up all of `data`, within `limits`.
///
/// Every failure is a typed [`UnpicklingError`]; none allocates more than
/// the limits allow or panics.
pub fn read(data: &[u8], limits: &Limits) -> Result<Unpickled, UnpicklingError> {
    if data.len() > limits.max_input_bytes {
        return Err(UnpicklingError::InputTooLarge {
            len: data.len(),
            limit: limits.max_input_bytes,
        });
    }
    let outcome = machine::Machine::new(data, limits).run()?;
    let mut tree = tree::Tree::new(outcome.arena, limits);
    let value = tree.value(outcome.root, 0, false)?;
    Ok(Unpickled {
        value,
        protocol: outcome.protocol,
    })
}

/// Reads one pickle with the default [`Limits`]: Python's `pickle.loads`
/// for data.
pub fn loads(data: &[u8]) -> Result<Value, UnpicklingError> {
    read(data, &Limits::default()).map(|u| u.value)
}
