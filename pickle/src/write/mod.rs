//! Writing pickles: protocols 2–5, as CPython's pickler writes them.
//!
//! The opcodes chosen for each value follow CPython 3.11's `Pickler`
//! (the smallest int and length forms, tuples of up to three items
//! without a `MARK`, items in batches of 1000), so a value without shared
//! objects pickles to the bytes `pickletools.optimize(pickle.dumps(v, p))`
//! gives, except that protocols 4 and 5 put everything in one frame. No
//! `MEMOIZE`/`PUT` is written: a tree has nothing to share, and Python's
//! unpickler needs the memo only for what a pickle refers back to.
//!
//! Every global written passes [`crate::policy`] again, so that nothing
//! this crate writes names a global its reader would refuse.

use crate::error::{PicklingError, Refusal};
use crate::int::PyInt;
use crate::opcodes as op;
use crate::policy;
use crate::stack::StackGuard;
use crate::value::{Global, Slice, Value};

mod objects;

/// The deepest nesting the writer follows: its recursion is bounded by
/// it. Above the reader's default [`crate::Limits::max_depth`] (and the
/// CBOR decoder's 256) with room for the reply around a value; at it, the
/// writer needs under 100 KiB of stack in release builds and about 1.5 MiB
/// in debug builds, so that it fits a 2 MiB thread either way.
pub const MAX_DEPTH: usize = 300;

/// CPython's batch size for `APPENDS`, `SETITEMS` and `ADDITEMS`.
const BATCH: usize = 1000;

/// A pickle protocol the writer speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Protocol 2 (Python 2.3+): bytes as `_codecs.encode`, no frames.
    V2,
    /// Protocol 3 (Python 3.0+): bytes opcodes.
    V3,
    /// Protocol 4 (Python 3.4+, CPython's default through 3.13): frames,
    /// `STACK_GLOBAL`, short strs, sets.
    #[default]
    V4,
    /// Protocol 5 (Python 3.8+, the default from 3.14): `BYTEARRAY8`.
    V5,
}

impl Protocol {
    /// The protocol numbered `n`, if the writer speaks it.
    pub fn new(n: u8) -> Option<Protocol> {
        match n {
            2 => Some(Protocol::V2),
            3 => Some(Protocol::V3),
            4 => Some(Protocol::V4),
            5 => Some(Protocol::V5),
            _ => None,
        }
    }

    /// Its number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::V2 => 2,
            Protocol::V3 => 3,
            Protocol::V4 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol to answer a pickle of protocol `read` in: the same,
    /// or 2 for the older ones (every Python 3 reads it).
    pub fn for_reply(read: u8) -> Protocol {
        Protocol::new(read).unwrap_or(if read < 2 { Protocol::V2 } else { Protocol::V5 })
    }
}

/// Pickles `value` in `protocol`: Python's `pickle.dumps(value, protocol)`.
pub fn dumps(value: &Value, protocol: Protocol) -> Result<Vec<u8>, PicklingError> {
    let mut out = Vec::new();
    dump_into(value, protocol, &mut out)?;
    Ok(out)
}

/// Appends the pickle of `value` to `out` (after a frame header the
/// caller wrote, say). On error `out` holds a partial pickle after its
/// original contents.
pub fn dump_into(
    value: &Value,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> Result<(), PicklingError> {
    let proto = protocol.number();
    out.extend_from_slice(&[op::PROTO, proto]);
    let framed = proto >= 4;
    let header_at = out.len();
    if framed {
        out.extend_from_slice(&[op::FRAME, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    let body_at = out.len();
    Writer {
        out: &mut *out,
        proto,
        stack: StackGuard::new(),
    }
    .save(value, 0)?;
    out.push(op::STOP);
    if framed {
        let len = out.len() - body_at;
        // CPython frames only payloads of at least 4 bytes.
        if len >= 4 {
            out[header_at + 1..body_at].copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            out.drain(header_at..body_at);
        }
    }
    Ok(())
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    proto: u8,
    stack: StackGuard,
}

impl Writer<'_> {
    /// The recursive step, kept to a dispatch so that its stack frame
    /// stays small: each level of nesting costs one of these frames and
    /// one of the container's; the work is in the functions it calls.
    fn save(&mut self, value: &Value, depth: usize) -> Result<(), PicklingError> {
        if depth > MAX_DEPTH || self.stack.exhausted() {
            return Err(PicklingError::TooDeep { limit: MAX_DEPTH });
        }
        let d = depth + 1;
        match value {
            Value::Tuple(items) => self.tuple(items, d),
            Value::List(items) => self.list(items, d),
            Value::Dict(pairs) => self.dict(pairs, d),
            Value::Set(items) => self.set(items, d),
            Value::FrozenSet(items) => self.frozenset(items, d),
            Value::Slice(s) => self.slice(s, d),
            Value::Proxy(p) => self.proxy(p, d),
            Value::Exception(e) => self.exception(e, d),
            Value::Instance(i) => self.instance(i, d),
            leaf => self.leaf(leaf),
        }
    }

    /// A value with nothing nested in it.
    #[inline(never)]
    fn leaf(&mut self, value: &Value) -> Result<(), PicklingError> {
        match value {
            Value::None => self.op(op::NONE),
            Value::Bool(true) => self.op(op::NEWTRUE),
            Value::Bool(false) => self.op(op::NEWFALSE),
            Value::Int(i) => self.int(*i),
            Value::BigInt(b) => self.long(b.as_le_bytes()),
            Value::Float(f) => self.float(*f),
            Value::Complex { re, im } => {
                self.global("builtins", "complex")?;
                self.float(*re);
                self.float(*im);
                self.op(op::TUPLE2);
                self.op(op::REDUCE);
            }
            Value::Str(s) => self.str(s)?,
            Value::Bytes(b) => self.bytes(b)?,
            Value::ByteArray(b) => {
                if self.proto >= 5 {
                    self.op(op::BYTEARRAY8);
                    self.raw(&(b.len() as u64).to_le_bytes());
                    self.raw(b);
                } else {
                    self.global("builtins", "bytearray")?;
                    if b.is_empty() {
                        self.op(op::EMPTY_TUPLE);
                    } else {
                        self.bytes(b)?;
                        self.op(op::TUPLE1);
                    }
                    self.op(op::REDUCE);
                }
            }
            Value::Range(r) => {
                self.global("builtins", "range")?;
                for part in [&r.start, &r.stop, &r.step] {
                    match part {
                        PyInt::Small(i) => self.int(*i),
                        PyInt::Big(b) => self.long(b.as_le_bytes()),
                    }
                }
                self.op(op::TUPLE3);
                self.op(op::REDUCE);
            }
            Value::Global(g) => {
                policy::check_value(g)?;
                self.global_of(g)?;
            }
            Value::Token(t) => self.token(t)?,
            // `save` sends these elsewhere
            Value::Tuple(_)
            | Value::List(_)
            | Value::Dict(_)
            | Value::Set(_)
            | Value::FrozenSet(_)
            | Value::Slice(_)
            | Value::Proxy(_)
            | Value::Exception(_)
            | Value::Instance(_) => {
                return Err(PicklingError::NotCanonical(format!(
                    "a {} is not a leaf",
                    value.type_name()
                )))
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn list(&mut self, items: &[Value], depth: usize) -> Result<(), PicklingError> {
        self.op(op::EMPTY_LIST);
        self.appends(items, depth)
    }

    #[inline(never)]
    fn dict(&mut self, pairs: &[(Value, Value)], depth: usize) -> Result<(), PicklingError> {
        self.op(op::EMPTY_DICT);
        self.setitems(pairs, depth)
    }

    #[inline(never)]
    fn set(&mut self, items: &[Value], depth: usize) -> Result<(), PicklingError> {
        hashable(items)?;
        if self.proto < 4 {
            return self.reduce_list("set", items, depth);
        }
        self.op(op::EMPTY_SET);
        for batch in items.chunks(BATCH) {
            self.op(op::MARK);
            self.all(batch, depth)?;
            self.op(op::ADDITEMS);
        }
        Ok(())
    }

    #[inline(never)]
    fn frozenset(&mut self, items: &[Value], depth: usize) -> Result<(), PicklingError> {
        hashable(items)?;
        if self.proto < 4 {
            return self.reduce_list("frozenset", items, depth);
        }
        self.op(op::MARK);
        self.all(items, depth)?;
        self.op(op::FROZENSET);
        Ok(())
    }

    #[inline(never)]
    fn slice(&mut self, s: &Slice, depth: usize) -> Result<(), PicklingError> {
        self.global("builtins", "slice")?;
        self.all([&s.start, &s.stop, &s.step], depth)?;
        self.op(op::TUPLE3);
        self.op(op::REDUCE);
        Ok(())
    }

    fn op(&mut self, code: u8) {
        self.out.push(code);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn all<'v>(
        &mut self,
        items: impl IntoIterator<Item = &'v Value>,
        depth: usize,
    ) -> Result<(), PicklingError> {
        for item in items {
            self.save(item, depth)?;
        }
        Ok(())
    }

    fn int(&mut self, i: i64) {
        if let Ok(v) = u8::try_from(i) {
            self.op(op::BININT1);
            self.op(v);
        } else if let Ok(v) = u16::try_from(i) {
            self.op(op::BININT2);
            self.raw(&v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(i) {
            self.op(op::BININT);
            self.raw(&v.to_le_bytes());
        } else {
            self.long(&PyInt::Small(i).to_le_bytes());
        }
    }

    fn long(&mut self, le: &[u8]) {
        match u8::try_from(le.len()) {
            Ok(n) => {
                self.op(op::LONG1);
                self.op(n);
            }
            Err(_) => {
                self.op(op::LONG4);
                // A BigInt from the reader is bounded far below 2 GiB.
                self.raw(&(le.len() as u32).to_le_bytes());
            }
        }
        self.raw(le);
    }

    fn float(&mut self, f: f64) {
        self.op(op::BINFLOAT);
        self.raw(&f.to_be_bytes());
    }

    fn str(&mut self, s: &str) -> Result<(), PicklingError> {
        let n = s.len();
        if n <= 0xff && self.proto >= 4 {
            self.op(op::SHORT_BINUNICODE);
            self.op(n as u8);
        } else if let Ok(n32) = u32::try_from(n) {
            self.op(op::BINUNICODE);
            self.raw(&n32.to_le_bytes());
        } else if self.proto >= 4 {
            self.op(op::BINUNICODE8);
            self.raw(&(n as u64).to_le_bytes());
        } else {
            return Err(PicklingError::TooLarge {
                what: "str",
                protocol: self.proto,
            });
        }
        self.raw(s.as_bytes());
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), PicklingError> {
        if self.proto < 3 {
            // Protocol 2 has no bytes opcodes: CPython writes
            // `_codecs.encode(latin1_text, 'latin1')`, or `bytes()`.
            if b.is_empty() {
                self.global("builtins", "bytes")?;
                self.op(op::EMPTY_TUPLE);
            } else {
                self.global("_codecs", "encode")?;
                let text: String = b.iter().map(|&c| char::from(c)).collect();
                self.str(&text)?;
                self.str("latin1")?;
                self.op(op::TUPLE2);
            }
            self.op(op::REDUCE);
            return Ok(());
        }
        let n = b.len();
        if let Ok(n8) = u8::try_from(n) {
            self.op(op::SHORT_BINBYTES);
            self.op(n8);
        } else if let Ok(n32) = u32::try_from(n) {
            self.op(op::BINBYTES);
            self.raw(&n32.to_le_bytes());
        } else if self.proto >= 4 {
            self.op(op::BINBYTES8);
            self.raw(&(n as u64).to_le_bytes());
        } else {
            return Err(PicklingError::TooLarge {
                what: "bytes",
                protocol: self.proto,
            });
        }
        self.raw(b);
        Ok(())
    }

    #[inline(never)]
    fn tuple(&mut self, items: &[Value], depth: usize) -> Result<(), PicklingError> {
        match items.len() {
            0 => self.op(op::EMPTY_TUPLE),
            n @ 1..=3 => {
                self.all(items, depth)?;
                self.op(op::TUPLE1 + (n as u8 - 1));
            }
            _ => {
                self.op(op::MARK);
                self.all(items, depth)?;
                self.op(op::TUPLE);
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn appends(&mut self, items: &[Value], depth: usize) -> Result<(), PicklingError> {
        for batch in items.chunks(BATCH) {
            if let [one] = batch {
                self.save(one, depth)?;
                self.op(op::APPEND);
            } else {
                self.op(op::MARK);
                self.all(batch, depth)?;
                self.op(op::APPENDS);
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn setitems(&mut self, pairs: &[(Value, Value)], depth: usize) -> Result<(), PicklingError> {
        for batch in pairs.chunks(BATCH) {
            let many = batch.len() > 1;
            if many {
                self.op(op::MARK);
            }
            for (k, v) in batch {
                if let Some(t) = k.unhashable_part() {
                    return Err(PicklingError::Unhashable(t));
                }
                self.save(k, depth)?;
                self.save(v, depth)?;
            }
            self.op(if many { op::SETITEMS } else { op::SETITEM });
        }
        Ok(())
    }

    #[inline(never)]
    fn keywords(&mut self, pairs: &[(String, Value)], depth: usize) -> Result<(), PicklingError> {
        let pairs: Vec<(Value, Value)> = pairs
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
            .collect();
        self.op(op::EMPTY_DICT);
        self.setitems(&pairs, depth)
    }

    /// `builtins.set([items])` or `frozenset([items])`: protocols 2–3.
    #[inline(never)]
    fn reduce_list(
        &mut self,
        ty: &str,
        items: &[Value],
        depth: usize,
    ) -> Result<(), PicklingError> {
        self.global("builtins", ty)?;
        self.op(op::EMPTY_LIST);
        self.appends(items, depth)?;
        self.op(op::TUPLE1);
        self.op(op::REDUCE);
        Ok(())
    }

    /// A reference to a global (its policy checked by the caller).
    fn global(&mut self, module: &str, name: &str) -> Result<(), PicklingError> {
        if self.proto >= 4 {
            self.str(module)?;
            self.str(name)?;
            self.op(op::STACK_GLOBAL);
        } else {
            if module.contains('\n') || name.contains('\n') {
                return Err(Refusal::BadName(Global::new(module, name)).into());
            }
            self.op(op::GLOBAL);
            self.raw(module.as_bytes());
            self.op(b'\n');
            self.raw(name.as_bytes());
            self.op(b'\n');
        }
        Ok(())
    }

    fn global_of(&mut self, g: &Global) -> Result<(), PicklingError> {
        self.global(&g.module, &g.name)
    }
}

fn hashable(items: &[Value]) -> Result<(), PicklingError> {
    match items.iter().find_map(Value::unhashable_part) {
        Some(t) => Err(PicklingError::Unhashable(t)),
        None => Ok(()),
    }
}
