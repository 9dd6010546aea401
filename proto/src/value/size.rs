//! How many bytes a [`Value`] takes in memory: the estimate a server
//! charges against its memory limits before it keeps or builds a value.
//!
//! The estimate is the value's own slot ([`Value`] is 32 bytes on 64-bit
//! targets) plus every heap block it owns, recursively: a string's or
//! bytes' buffer, a list's or tuple's item slots (at their capacity), a
//! dict's entries and hash index, a proxy's boxed token and its strings.
//! Each block is counted as glibc's `malloc` rounds it ([`heap_block`]),
//! so a list of a million one-character strings is charged the 64 MB it
//! really takes, not the 33 MB its lengths suggest.
//!
//! It is an estimate, not an accounting of the allocator: it leaves out
//! allocator fragmentation and, for dicts, rounds the hash index the way
//! `hashbrown` sizes it today. It is exact enough to bound what a peer
//! can make a server allocate to a small factor of the limits.
//!
//! Cost: O(1) for every value but lists, tuples and dicts, which are
//! walked (the walk is as deep as the value; the decoder bounds the depth
//! of what arrives).

use std::mem::size_of;

use super::{Map, Token, Value};

/// What `malloc` takes for a block of `n` bytes on a 64-bit glibc: the
/// request plus an 8-byte header, rounded up to 16, at least 32; nothing
/// for an empty (never allocated) buffer.
pub fn heap_block(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.saturating_add(8 + 15).max(32) & !15
    }
}

/// The bytes of one dict entry slot in an insertion-ordered map: its hash
/// and its key and value slots.
const ENTRY: usize = size_of::<usize>() + 2 * size_of::<Value>();

impl Value {
    /// The bytes this value takes in memory: its own slot plus every heap
    /// block it owns, recursively, each rounded as `malloc` rounds it.
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Value>().saturating_add(self.heap_bytes())
    }

    /// The heap this value owns, recursively, without its own slot: what
    /// storing it costs beyond the slot its container already has.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::None | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 0,
            Value::Str(s) => heap_block(s.capacity()),
            Value::Bytes(b) => heap_block(b.capacity()),
            Value::List(items) | Value::Tuple(items) => items_bytes(items, items.capacity()),
            Value::Dict(map) => map_bytes(map),
            Value::Proxy(token) => token_bytes(token),
        }
    }
}

/// A sequence's slots (at `capacity`) and its items' heaps.
fn items_bytes(items: &[Value], capacity: usize) -> usize {
    items.iter().fold(
        heap_block(capacity.saturating_mul(size_of::<Value>())),
        |sum, v| sum.saturating_add(v.heap_bytes()),
    )
}

/// A dict's box, entry slots, hash index, and its keys' and values' heaps.
fn map_bytes(map: &Map) -> usize {
    map.iter()
        .fold(map_table_bytes(map.capacity()), |sum, (k, v)| {
            sum.saturating_add(k.heap_bytes())
                .saturating_add(v.heap_bytes())
        })
}

/// A dict's box, entry slots and hash index at capacity `cap`.
fn map_table_bytes(cap: usize) -> usize {
    let index = if cap == 0 {
        0
    } else {
        // hashbrown: a power-of-two bucket count at 7/8 load, each bucket
        // an index (usize) and a control byte, plus a group of control
        // bytes at the end.
        let buckets = if cap < 4 {
            4
        } else if cap < 8 {
            8
        } else {
            (cap.saturating_mul(8) / 7).next_power_of_two()
        };
        heap_block(
            buckets
                .saturating_mul(size_of::<usize>() + 1)
                .saturating_add(16),
        )
    };
    heap_block(size_of::<Map>())
        .saturating_add(heap_block(cap.saturating_mul(ENTRY)))
        .saturating_add(index)
}

/// A proxy's boxed token and its strings.
fn token_bytes(token: &Token) -> usize {
    heap_block(size_of::<Token>())
        .saturating_add(heap_block(token.typeid.capacity()))
        .saturating_add(heap_block(token.address.capacity()))
}

/// The bytes of a list or tuple that would hold items whose
/// [`estimated_bytes`](Value::estimated_bytes) add up to `items`, `count`
/// of them, at exact capacity: for checking a value's size before
/// building it.
pub fn sequence_bytes(count: usize, items: usize) -> usize {
    // Each item's estimate already counts its slot once; the list adds its
    // own slot and the malloc header and rounding of its slot array.
    let slots = count.saturating_mul(size_of::<Value>());
    size_of::<Value>()
        .saturating_add(heap_block(slots).saturating_sub(slots))
        .saturating_add(items)
}

/// The bytes of a dict of `count` entries whose keys' and values'
/// [`heap_bytes`](Value::heap_bytes) add up to `heaps`: for checking a
/// dict's size before building it.
pub fn dict_bytes(count: usize, heaps: usize) -> usize {
    size_of::<Value>()
        .saturating_add(map_table_bytes(count))
        .saturating_add(heaps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectId;

    #[test]
    fn blocks_round_as_malloc_does() {
        assert_eq!(heap_block(0), 0);
        assert_eq!(heap_block(1), 32);
        assert_eq!(heap_block(24), 32);
        assert_eq!(heap_block(25), 48);
        assert_eq!(heap_block(1 << 20), (1 << 20) + 16);
        assert_eq!(heap_block(usize::MAX), usize::MAX & !15);
    }

    #[test]
    fn scalars_are_their_slot() {
        assert_eq!(size_of::<Value>(), 32);
        for v in [Value::None, true.into(), 7.into(), 1.5.into()] {
            assert_eq!(v.estimated_bytes(), 32);
        }
    }

    #[test]
    fn strings_and_containers_count_their_heap() {
        let s = Value::Str("x".repeat(1000));
        assert_eq!(s.estimated_bytes(), 32 + 1008);
        // A character string costs its slot and a minimum block.
        let list = Value::List(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(list.estimated_bytes(), 32 + heap_block(3 * 32) + 3 * 32);
        assert_eq!(
            sequence_bytes(3, 3 * (32 + 32)),
            list.estimated_bytes(),
            "the prediction from items matches the built list"
        );
        let mut m = Map::new();
        m.insert("k".into(), Value::Bytes(vec![0; 100]));
        let d = Value::from(m);
        assert!(d.estimated_bytes() > 32 + 32 + 112 + ENTRY);
        let Value::Dict(m) = &d else { unreachable!() };
        if m.capacity() == 1 {
            assert_eq!(dict_bytes(1, 112), d.estimated_bytes());
        }
        // Spare capacity is memory too.
        let mut grown = Vec::with_capacity(100);
        grown.push(Value::None);
        assert_eq!(Value::List(grown).estimated_bytes(), 32 + heap_block(3200));
        let t = Value::from(Token {
            typeid: "dict".into(),
            address: "127.0.0.1:5000".into(),
            id: ObjectId(1),
        });
        assert_eq!(t.estimated_bytes(), 32 + 64 + 32 + 32);
    }

    #[test]
    fn nesting_is_counted_all_the_way_down() {
        let inner = Value::List(vec![Value::Str("y".repeat(100))]);
        let outer = Value::List(vec![inner.clone(), inner.clone()]);
        assert_eq!(
            outer.estimated_bytes(),
            32 + heap_block(64) + 2 * inner.heap_bytes()
        );
    }
}
