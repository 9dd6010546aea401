//! A data-only pickle codec for CPython's manager clients.
//!
//! CPython's `multiprocessing.managers` clients send and expect pickles.
//! This crate reads them (protocols 0–5) into a [`Value`] tree and writes
//! values back (protocols 2–5) without ever importing or calling anything:
//! the classes managers exchange are recognised by name, any other object
//! is kept as inert data for a Python client to rebuild itself, and the
//! globals that would run code are refused ([`policy`]). Reading is
//! bounded in every dimension a peer controls ([`Limits`]).
//!
//! ```
//! use mp_pickle::{dumps, loads, Protocol, Value};
//!
//! // ('#RETURN', None), as CPython 3.11 pickles it
//! let reply = b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00\x8c\x07#RETURN\x94N\x86\x94.";
//! let value = loads(reply).unwrap();
//! assert_eq!(value, Value::Tuple(vec![Value::Str("#RETURN".into()), Value::None]));
//! // written back without the memo, byte for byte otherwise
//! assert_eq!(dumps(&value, Protocol::V4).unwrap(),
//!            b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8c\x07#RETURNN\x86.");
//!
//! // a payload that would run a command in whoever unpickles it
//! let evil = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.";
//! assert_eq!(loads(evil).unwrap_err().to_string(),
//!            "global os.system is not allowed: this server runs no code");
//! ```
//!
//! # Value mapping
//!
//! | Python (pickle form)                                              | [`Value`]                 |
//! |-------------------------------------------------------------------|---------------------------|
//! | `None` (`NONE`)                                                   | [`Value::None`]           |
//! | `bool` (`NEWTRUE`/`NEWFALSE`, protocol 0's `INT 01`/`00`)         | [`Value::Bool`]           |
//! | `int` in 64 bits (`BININT*`, `LONG1`, `INT`, `LONG`)              | [`Value::Int`]            |
//! | `int` outside 64 bits, up to [`Limits::max_int_bytes`] (`LONG1`, `LONG4`, `LONG`) | [`Value::BigInt`] (two's-complement little-endian bytes) |
//! | `float` (`BINFLOAT`, `FLOAT`)                                     | [`Value::Float`]          |
//! | `complex` (`builtins.complex(re, im)`)                            | [`Value::Complex`]        |
//! | `str` (`*BINUNICODE*`, `UNICODE`; Python 2 `BINSTRING` as ASCII)  | [`Value::Str`]            |
//! | `bytes` (`*BINBYTES*`; `_codecs.encode(s, 'latin1')`, `bytes()`)  | [`Value::Bytes`]          |
//! | `bytearray` (`BYTEARRAY8`; `builtins.bytearray(b)`)               | [`Value::ByteArray`]      |
//! | `tuple` (`EMPTY_TUPLE`, `TUPLE1-3`, `TUPLE`)                      | [`Value::Tuple`]          |
//! | `list` (`EMPTY_LIST`, `LIST`, `APPEND(S)`)                        | [`Value::List`]           |
//! | `dict` (`EMPTY_DICT`, `DICT`, `SETITEM(S)`)                       | [`Value::Dict`] (pairs in order) |
//! | `set` (`EMPTY_SET`+`ADDITEMS`; `builtins.set([..])`)              | [`Value::Set`]            |
//! | `frozenset` (`FROZENSET`; `builtins.frozenset([..])`)             | [`Value::FrozenSet`]      |
//! | `slice` (`builtins.slice(start, stop, step)`)                     | [`Value::Slice`]          |
//! | `range` (`builtins.range(start, stop, step)`)                     | [`Value::Range`]          |
//! | a harmless class by itself (`builtins.list` in `defaultdict(list)`) | [`Value::Global`]       |
//! | `multiprocessing.managers.Token` (`NEWOBJ` + state `(typeid, address, id)`) | [`Value::Token`] |
//! | a proxy (`RebuildProxy(func, token, serializer, kwds)`, `func` a [`ProxyKind`]) | [`Value::Proxy`] |
//! | an allow-listed exception (`cls(*args)` + optional `BUILD` state) | [`Value::Exception`]      |
//! | any other object (`NEWOBJ`, `NEWOBJ_EX`, `copyreg` reconstructors; allow-listed data classes by `REDUCE`) | [`Value::Instance`] |
//!
//! Python 2 names in old protocols (`__builtin__.xrange`,
//! `exceptions.KeyError`, `Queue.Full`) are read as their Python 3 names.
//! The writer writes each value as CPython 3.11 would in the chosen
//! protocol (see [`write`](mod@write)); a [`Value::Instance`] is written back the way
//! it was read (class, how it is made, items, state), so a Python client
//! rebuilds the object itself.
//!
//! Not carried: recursive structures (an object containing itself) and
//! identity (an object referenced twice in one pickle becomes two equal
//! values); strs holding lone surrogates; persistent IDs, the `copyreg`
//! extension registry and out-of-band buffers; protocol 0's quoted
//! Python 2 `STRING`. Each is a typed error.
//!
//! # What is refused, and why
//!
//! The server never calls anything, so a global is dangerous only in what
//! other Python clients do when they unpickle what it hands back. A
//! `REDUCE` (how `os.system` payloads work) calls its global, so it is
//! accepted only for allow-listed callables; any other object must arrive
//! in a form CPython rebuilds as an instance of a class without calling
//! the class (`NEWOBJ` and kin), and the standard library's modules are
//! refused outright. [`policy`] states the rule, the lists, and the risk
//! that remains (`__new__`, `__setstate__` and `__del__` of a client's
//! own classes still run in that client).
//!
//! # Bounds
//!
//! [`Limits`] (defaults): input 64 MiB; nesting 256 levels (also the
//! reader's recursion); memo indices below 2^22; the value's memory 256
//! MiB, with every copy of a shared object charged again (the memo-bomb
//! guard); ints of 128 bytes (1024 bits). Every length prefix is checked
//! against the input left before anything is allocated for it. The
//! writer follows at most [`write::MAX_DEPTH`] levels. Both recurse, and
//! both stop with a typed error past [`stack::BUDGET`] (1 MiB) of stack,
//! so a 2 MiB thread (tokio's workers) never overflows.
//!
//! # Layout
//!
//! * [`value`]: the [`Value`] tree and the manager types in it.
//! * [`int`]: big ints as two's-complement bytes.
//! * [`policy`]: the allow-lists and the refusal rule.
//! * [`read`](mod@read): the reader ([`read()`], [`loads`]).
//! * [`write`](mod@write): the writer ([`dumps`], [`dump_into`]).
//! * [`limits`], [`error`], [`stack`]: bounds, typed errors, the stack
//!   guard.

pub mod error;
pub mod int;
pub mod limits;
mod opcodes;
pub mod policy;
pub mod read;
pub mod stack;
pub mod value;
pub mod write;

pub use error::{PicklingError, Refusal, UnpicklingError};
pub use int::{BigInt, PyInt};
pub use limits::Limits;
pub use read::{loads, read, Unpickled};
pub use value::{
    Address, Global, Instance, Make, Proxy, ProxyKind, PyException, Range, Slice, Token, Value,
};
pub use write::{dump_into, dumps, Protocol};
