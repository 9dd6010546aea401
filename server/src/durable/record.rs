//! The records of a data directory's snapshot and log, and their framing.
//!
//! Each record is `[len: u32 LE][crc: u32 LE][payload]`: `crc` is the
//! CRC-32 (IEEE) of the four length bytes and the payload, and the
//! payload is one CBOR array in the server's own codec
//! ([`mp_proto::codec`]): `[kind, fields…]`, whose values are
//! [`Value`]s as on the wire (tuples and proxy tokens tagged). A file
//! starts with an 8-byte magic naming its kind and version.
//!
//! | kind | fields | meaning |
//! | --- | --- | --- |
//! | 0 `Define` | id, typeid, args, kwargs | an object, made empty by its constructor |
//! | 1 `Fill` | id, items | contents appended ([`Durable::fill`](crate::persist::Durable::fill)) |
//! | 2 `Settle` | id, state | the rest of its state; from here on it is persisted |
//! | 3 `Call` | id, method, args, kwargs | a successful mutating call, replayed |
//! | 4 `Effect` | id, tag, value? | a change the object recorded itself |
//! | 5 `Drop` | id | the object was disposed of |
//! | 6 `Publish` | name, id | a name given (replacing any) |
//! | 7 `Unpublish` | name | a name removed |
//! | 8 `End` | — | the last record of a complete snapshot |
//!
//! Reading is bounded: a length above the reader's maximum is corruption,
//! found before anything is allocated; decoding is
//! [`mp_proto::codec::decode_within`] a byte budget; a
//! checksum, framing or shape error ends the valid prefix ([`Next::Bad`]).
//! Nothing read from disk can make the reader panic (a property test
//! feeds it garbage).

use std::io::{self, Read};

use mp_proto::codec::{decode_within, encode_into, CodecError};
use mp_proto::message::Kwargs;
use mp_proto::{ObjectId, Value};

/// The first bytes of a log file.
pub const LOG_MAGIC: &[u8; 8] = b"MPLOG\0\0\x01";
/// The first bytes of a snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"MPSNAP\0\x01";
/// The bytes of a record's header.
pub const HEADER: usize = 8;
/// A chunk of contents is cut after about this many bytes (encoded or
/// as values in memory, whichever comes first).
pub const CHUNK_BYTES: usize = 1 << 20;

/// One record, as read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// An object made empty by its constructor.
    Define {
        /// Its id.
        id: ObjectId,
        /// Its typeid.
        typeid: String,
        /// The constructor's positional arguments.
        args: Vec<Value>,
        /// The constructor's keyword arguments.
        kwargs: Kwargs,
    },
    /// Contents appended.
    Fill {
        /// The object.
        id: ObjectId,
        /// The items, in order.
        items: Vec<Value>,
    },
    /// The rest of an object's state; it is persisted from here on.
    Settle {
        /// The object.
        id: ObjectId,
        /// Its state.
        state: Value,
    },
    /// A successful mutating call.
    Call {
        /// The object.
        id: ObjectId,
        /// The method.
        method: String,
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Kwargs,
    },
    /// A change the object recorded itself.
    Effect {
        /// The object.
        id: ObjectId,
        /// The change, in the type's vocabulary.
        tag: u8,
        /// The value it concerns.
        value: Option<Value>,
    },
    /// The object was disposed of.
    Drop {
        /// The object.
        id: ObjectId,
    },
    /// A name given.
    Publish {
        /// The name.
        name: String,
        /// Its object.
        id: ObjectId,
    },
    /// A name removed.
    Unpublish {
        /// The name.
        name: String,
    },
    /// The end of a complete snapshot.
    End,
}

const DEFINE: u64 = 0;
const FILL: u64 = 1;
const SETTLE: u64 = 2;
const CALL: u64 = 3;
const EFFECT: u64 = 4;
const DROP: u64 = 5;
const PUBLISH: u64 = 6;
const UNPUBLISH: u64 = 7;
const END: u64 = 8;

/// A CBOR head: major type and length (RFC 8949 §3).
fn head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    if len < 24 {
        out.push(m | len as u8);
    } else if len <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m | 24, len as u8]);
    } else if len <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else if len <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn uint(out: &mut Vec<u8>, n: u64) {
    head(out, 0, n);
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn array(out: &mut Vec<u8>, len: usize) {
    head(out, 4, len as u64);
}

fn values(out: &mut Vec<u8>, items: &[Value]) -> Result<(), CodecError> {
    array(out, items.len());
    items.iter().try_for_each(|v| encode_into(v, out))
}

fn kwargs(out: &mut Vec<u8>, kw: &Kwargs) -> Result<(), CodecError> {
    head(out, 5, kw.len() as u64);
    for (k, v) in kw {
        text(out, k);
        encode_into(v, out)?;
    }
    Ok(())
}

/// Appends one framed record to `out`, its payload written by `payload`;
/// on error `out` is left as it was.
pub fn framed(
    out: &mut Vec<u8>,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER]);
    if let Err(e) = payload(out) {
        out.truncate(at);
        return Err(e);
    }
    let len = out.len() - at - HEADER;
    let Ok(len) = u32::try_from(len) else {
        out.truncate(at);
        return Err(CodecError::TooLarge {
            limit: u32::MAX as usize,
        });
    };
    let len = len.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&out[at + HEADER..]);
    out[at..at + 4].copy_from_slice(&len);
    out[at + 4..at + HEADER].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// A `Define` record.
pub fn define(
    out: &mut Vec<u8>,
    id: ObjectId,
    typeid: &str,
    args: &[Value],
    kw: &Kwargs,
) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 5);
        uint(out, DEFINE);
        uint(out, id.0);
        text(out, typeid);
        values(out, args)?;
        kwargs(out, kw)
    })
}

/// `Fill` records for `items`, cut into chunks of about [`CHUNK_BYTES`].
pub fn fill(out: &mut Vec<u8>, id: ObjectId, items: &[Value]) -> Result<(), CodecError> {
    let mut rest = items;
    while !rest.is_empty() {
        let mut taken = 0;
        framed(out, |out| {
            array(out, 3);
            uint(out, FILL);
            uint(out, id.0);
            // An indefinite array: the count is known at its end.
            out.push(0x9f);
            let start = out.len();
            let mut in_memory = 0usize;
            for item in rest {
                encode_into(item, out)?;
                taken += 1;
                in_memory = in_memory.saturating_add(item.estimated_bytes());
                if out.len() - start >= CHUNK_BYTES || in_memory >= CHUNK_BYTES {
                    break;
                }
            }
            out.push(0xff);
            Ok(())
        })?;
        rest = &rest[taken..];
    }
    Ok(())
}

/// A `Settle` record.
pub fn settle(out: &mut Vec<u8>, id: ObjectId, state: &Value) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 3);
        uint(out, SETTLE);
        uint(out, id.0);
        encode_into(state, out)
    })
}

/// A `Call` record.
pub fn call(
    out: &mut Vec<u8>,
    id: ObjectId,
    method: &str,
    args: &[Value],
    kw: &Kwargs,
) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 5);
        uint(out, CALL);
        uint(out, id.0);
        text(out, method);
        values(out, args)?;
        kwargs(out, kw)
    })
}

/// An `Effect` record.
pub fn effect(
    out: &mut Vec<u8>,
    id: ObjectId,
    tag: u8,
    value: Option<&Value>,
) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, if value.is_some() { 4 } else { 3 });
        uint(out, EFFECT);
        uint(out, id.0);
        uint(out, u64::from(tag));
        match value {
            Some(v) => encode_into(v, out),
            None => Ok(()),
        }
    })
}

/// A `Drop` record.
pub fn drop_object(out: &mut Vec<u8>, id: ObjectId) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 2);
        uint(out, DROP);
        uint(out, id.0);
        Ok(())
    })
}

/// A `Publish` record.
pub fn publish(out: &mut Vec<u8>, name: &str, id: ObjectId) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 3);
        uint(out, PUBLISH);
        text(out, name);
        uint(out, id.0);
        Ok(())
    })
}

/// An `Unpublish` record.
pub fn unpublish(out: &mut Vec<u8>, name: &str) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 2);
        uint(out, UNPUBLISH);
        text(out, name);
        Ok(())
    })
}

/// The `End` record.
pub fn end(out: &mut Vec<u8>) -> Result<(), CodecError> {
    framed(out, |out| {
        array(out, 1);
        uint(out, END);
        Ok(())
    })
}

/// Reads a record's payload (the CBOR array) into a [`Record`].
pub fn parse(payload: &[u8], max_decoded: usize) -> Result<Record, String> {
    let value: Value = decode_within(payload, max_decoded).map_err(|e| e.to_string())?;
    let Value::List(fields) = value else {
        return Err(format!("a record is an array, not {}", value.type_name()));
    };
    let mut fields = fields.into_iter();
    let kind = match fields.next() {
        Some(Value::Int(k)) => k,
        _ => return Err("a record starts with its kind".into()),
    };
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("a record of kind {kind} lacks its {what}"))
    };
    let id = |v: Value| match v {
        Value::Int(i) if i > 0 => Ok(ObjectId(i as u64)),
        other => Err(format!(
            "an object id is a positive int, not {}",
            other.repr()
        )),
    };
    let string = |v: Value| match v {
        Value::Str(s) => Ok(s),
        other => Err(format!("expected a str, not {}", other.type_name())),
    };
    let list = |v: Value| match v {
        Value::List(items) => Ok(items),
        other => Err(format!("expected a list, not {}", other.type_name())),
    };
    let kw = |v: Value| match v {
        Value::Dict(map) => map
            .into_iter()
            .map(|(k, v)| Ok((string(k)?, v)))
            .collect::<Result<Kwargs, String>>(),
        other => Err(format!(
            "expected keyword arguments, not {}",
            other.type_name()
        )),
    };
    let record = match kind as u64 {
        DEFINE => Record::Define {
            id: id(next("id")?)?,
            typeid: string(next("typeid")?)?,
            args: list(next("args")?)?,
            kwargs: kw(next("kwargs")?)?,
        },
        FILL => Record::Fill {
            id: id(next("id")?)?,
            items: list(next("items")?)?,
        },
        SETTLE => Record::Settle {
            id: id(next("id")?)?,
            state: next("state")?,
        },
        CALL => Record::Call {
            id: id(next("id")?)?,
            method: string(next("method")?)?,
            args: list(next("args")?)?,
            kwargs: kw(next("kwargs")?)?,
        },
        EFFECT => Record::Effect {
            id: id(next("id")?)?,
            tag: match next("tag")? {
                Value::Int(t) => u8::try_from(t).map_err(|_| format!("effect tag {t}"))?,
                other => return Err(format!("an effect tag is an int, not {}", other.repr())),
            },
            value: fields.next(),
        },
        DROP => Record::Drop {
            id: id(next("id")?)?,
        },
        PUBLISH => Record::Publish {
            name: string(next("name")?)?,
            id: id(next("id")?)?,
        },
        UNPUBLISH => Record::Unpublish {
            name: string(next("name")?)?,
        },
        END => Record::End,
        other => return Err(format!("unknown record kind {other}")),
    };
    if fields.next().is_some() {
        return Err(format!("a record of kind {kind} has extra fields"));
    }
    Ok(record)
}

/// What a [`Reader`] found next.
#[derive(Debug)]
pub enum Next {
    /// A record, and the offset just past it.
    Record(Record, u64),
    /// The clean end of the file.
    End,
    /// Not a valid record at `at`: the file's valid prefix ends there.
    Bad {
        /// The offset of the first byte not valid.
        at: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Reads framed records from a file (or any reader), one at a time, with
/// a buffer reused between them.
pub struct Reader<R> {
    inner: R,
    /// The offset of the next record.
    at: u64,
    buf: Vec<u8>,
    max_record: usize,
    max_decoded: usize,
    /// Set once a bad record was met: nothing after it is read.
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads records from `inner`, positioned at `at` (after the magic),
    /// refusing a record longer than `max_record` bytes or decoding to
    /// more than `max_decoded` bytes of values.
    pub fn new(inner: R, at: u64, max_record: usize, max_decoded: usize) -> Self {
        Reader {
            inner,
            at,
            buf: Vec::new(),
            max_record,
            max_decoded,
            done: false,
        }
    }

    /// The offset of the next record (the valid prefix's end so far).
    pub fn offset(&self) -> u64 {
        self.at
    }

    /// The next record.
    pub fn next_record(&mut self) -> io::Result<Next> {
        if self.done {
            return Ok(Next::End);
        }
        let mut header = [0u8; HEADER];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < HEADER {
            return Ok(self.bad(format!(
                "the file ends inside a record header ({got} of {HEADER} bytes)"
            )));
        }
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > self.max_record {
            return Ok(self.bad(format!(
                "a record claims {len} bytes, over the limit of {} (corrupt length)",
                self.max_record
            )));
        }
        self.buf.clear();
        // Bounded above: `len` was checked.
        self.buf.resize(len, 0);
        let got = read_full(&mut self.inner, &mut self.buf)?;
        if got < len {
            return Ok(self.bad(format!(
                "the file ends inside a record ({got} of {len} bytes)"
            )));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len_bytes);
        hasher.update(&self.buf);
        if hasher.finalize() != crc {
            return Ok(self.bad("a record's checksum does not match".into()));
        }
        match parse(&self.buf, self.max_decoded) {
            Ok(record) => {
                self.at += (HEADER + len) as u64;
                Ok(Next::Record(record, self.at))
            }
            Err(reason) => Ok(self.bad(format!("a record does not decode: {reason}"))),
        }
    }

    fn bad(&mut self, reason: String) -> Next {
        self.done = true;
        Next::Bad {
            at: self.at,
            reason,
        }
    }
}

/// Reads until `buf` is full or the end; returns how many bytes came.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp_proto::Token;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<(u64, String)>) {
        let mut r = Reader::new(bytes, 0, 1 << 20, 1 << 24);
        let mut out = Vec::new();
        loop {
            match r.next_record().unwrap() {
                Next::Record(rec, _) => out.push(rec),
                Next::End => return (out, None),
                Next::Bad { at, reason } => return (out, Some((at, reason))),
            }
        }
    }

    fn sample() -> Vec<u8> {
        let token = Value::Proxy(Box::new(Token {
            typeid: "dict".into(),
            address: "127.0.0.1:1".into(),
            id: ObjectId(7),
        }));
        let mut kw = Kwargs::new();
        kw.insert("maxsize".into(), Value::Int(3));
        let mut out = Vec::new();
        define(&mut out, ObjectId(1), "Queue", &[], &kw).unwrap();
        fill(&mut out, ObjectId(1), &[Value::Int(1), token.clone()]).unwrap();
        settle(&mut out, ObjectId(1), &Value::Int(2)).unwrap();
        call(
            &mut out,
            ObjectId(7),
            "__setitem__",
            &["k".into(), Value::Tuple(vec![1.into(), token.clone()])],
            &Kwargs::new(),
        )
        .unwrap();
        effect(&mut out, ObjectId(1), 0, Some(&"x".into())).unwrap();
        effect(&mut out, ObjectId(1), 1, None).unwrap();
        drop_object(&mut out, ObjectId(9)).unwrap();
        publish(&mut out, "jobs", ObjectId(1)).unwrap();
        unpublish(&mut out, "old").unwrap();
        end(&mut out).unwrap();
        out
    }

    #[test]
    fn records_read_back_as_written() {
        let (records, bad) = read_all(&sample());
        assert!(bad.is_none(), "{bad:?}");
        assert_eq!(records.len(), 10);
        assert!(matches!(&records[0], Record::Define { typeid, kwargs, .. }
            if typeid == "Queue" && kwargs.get("maxsize") == Some(&Value::Int(3))));
        assert!(matches!(&records[1], Record::Fill { items, .. } if items.len() == 2));
        assert!(matches!(&records[3], Record::Call { method, args, .. }
            if method == "__setitem__" && matches!(args[1], Value::Tuple(_))));
        assert_eq!(
            records[4],
            Record::Effect {
                id: ObjectId(1),
                tag: 0,
                value: Some("x".into())
            }
        );
        assert_eq!(records[9], Record::End);
    }

    #[test]
    fn big_contents_are_cut_into_chunks() {
        let items: Vec<Value> = (0..300_000).map(Value::Int).collect();
        let mut out = Vec::new();
        fill(&mut out, ObjectId(3), &items).unwrap();
        let (records, bad) = read_all(&out);
        assert!(bad.is_none());
        assert!(records.len() > 1, "one chunk of 300k items");
        let back: Vec<Value> = records
            .into_iter()
            .flat_map(|r| match r {
                Record::Fill { items, .. } => items,
                _ => panic!(),
            })
            .collect();
        assert_eq!(back, items);
    }

    #[test]
    fn a_cut_or_flipped_record_ends_the_valid_prefix() {
        let bytes = sample();
        let (all, _) = read_all(&bytes);
        // Cut anywhere inside the last record: the others are kept.
        let (records, bad) = read_all(&bytes[..bytes.len() - 2]);
        assert_eq!(records.len(), all.len() - 1);
        let (at, reason) = bad.unwrap();
        assert!(reason.contains("ends inside"), "{reason}");
        // The `End` record is 10 bytes: its header and `[8]`.
        assert_eq!(at as usize, bytes.len() - 10);
        // A flipped byte in the third record's payload.
        let mut flipped = bytes.clone();
        let (_, first_two) = {
            let mut r = Reader::new(&bytes[..], 0, 1 << 20, 1 << 24);
            r.next_record().unwrap();
            let Next::Record(_, end) = r.next_record().unwrap() else {
                panic!()
            };
            ((), end)
        };
        flipped[first_two as usize + HEADER + 1] ^= 0x40;
        let (records, bad) = read_all(&flipped);
        assert_eq!(records.len(), 2);
        let (at, reason) = bad.unwrap();
        assert_eq!(at, first_two);
        assert!(reason.contains("checksum"), "{reason}");
    }

    #[test]
    fn a_huge_claimed_length_is_refused_before_allocating() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0; 16]);
        let (records, bad) = read_all(&bytes);
        assert!(records.is_empty());
        assert!(bad.unwrap().1.contains("over the limit"));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn garbage_with_valid_checksums_never_panics(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
        ) {
            let mut out = Vec::new();
            for p in &payloads {
                framed(&mut out, |o| { o.extend_from_slice(p); Ok(()) }).unwrap();
            }
            let _ = read_all(&out);
        }

        #[test]
        fn a_flipped_bit_is_caught(at in 0usize..1000, bit in 0u8..8) {
            let bytes = sample();
            let at = at % bytes.len();
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            let (records, bad) = read_all(&flipped);
            let (good, _) = read_all(&bytes);
            // Never more records than written, and the damage is seen.
            prop_assert!(records.len() < good.len());
            prop_assert!(bad.is_some());
        }
    }
}
