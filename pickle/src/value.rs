//! [`Value`]: what a pickle from a manager client can carry, as data.
//!
//! Containers and scalars map one to one onto Python's types (a tuple
//! stays a tuple, a set a set). The few classes a manager must understand
//! have variants of their own ([`Token`], [`Proxy`], [`PyException`]); any
//! other object is an [`Instance`]: its class's name, how pickle rebuilds
//! it and its state, all inert, so that a Python client given it back
//! rebuilds the object itself. Nothing in a `Value` is ever resolved or
//! called here.
//!
//! `==` on values is structural identity, for tests and round trips, not
//! Python's `==`: floats compare by bit pattern (so a NaN equals itself
//! and `0.0 != -0.0`), `1 != 1.0`, and dict pairs and set items compare
//! in order. Deciding Python equality and hashing (and refusing an
//! `Instance` as a key) is the consumer's job.

use std::fmt;

use crate::int::{BigInt, PyInt};

/// A Python object as data.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` within 64 bits.
    Int(i64),
    /// `int` outside 64 bits (never a value that fits `i64`).
    BigInt(BigInt),
    /// `float`.
    Float(f64),
    /// `complex`.
    Complex {
        /// The real part.
        re: f64,
        /// The imaginary part.
        im: f64,
    },
    /// `str`. Python strs holding lone surrogates have no Rust form and are
    /// refused by the reader.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `bytearray`.
    ByteArray(Vec<u8>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `list`.
    List(Vec<Value>),
    /// `dict`: its pairs in insertion order.
    Dict(Vec<(Value, Value)>),
    /// `set`: its items in pickle order.
    Set(Vec<Value>),
    /// `frozenset`: its items in pickle order.
    FrozenSet(Vec<Value>),
    /// `slice(start, stop, step)`.
    Slice(Box<Slice>),
    /// `range(start, stop, step)`.
    Range(Box<Range>),
    /// A reference to one of a few harmless classes, not called (the
    /// `list` of `defaultdict(list)`, the `array.array` an array is rebuilt
    /// with); see [`crate::policy`].
    Global(Box<Global>),
    /// `multiprocessing.managers.Token`.
    Token(Box<Token>),
    /// A pickled manager proxy: `RebuildProxy(func, token, serializer, kwds)`.
    Proxy(Box<Proxy>),
    /// An exception instance of an allow-listed class.
    Exception(Box<PyException>),
    /// Any other object, kept inert.
    Instance(Box<Instance>),
}

/// A global by the names pickle gives it: `module` and `name`
/// (`multiprocessing.managers` and `Token`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Global {
    /// The dotted module path.
    pub module: String,
    /// The name within the module.
    pub name: String,
}

impl Global {
    /// The global `module.name`.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        Global {
            module: module.into(),
            name: name.into(),
        }
    }

    /// Whether this is `module.name`.
    pub fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// `slice(start, stop, step)`; each part any value, `None` when absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// `slice.start`.
    pub start: Value,
    /// `slice.stop`.
    pub stop: Value,
    /// `slice.step`.
    pub step: Value,
}

/// `range(start, stop, step)`; `step` is never zero when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// `range.start`.
    pub start: PyInt,
    /// `range.stop`.
    pub stop: PyInt,
    /// `range.step`.
    pub step: PyInt,
}

/// `multiprocessing.managers.Token`: names a shared object on a server.
///
/// Pickled as `Token.__new__(Token)` and the state tuple
/// `(typeid, address, id)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// The registered type of the object (`"dict"`, `"Queue"`, …).
    pub typeid: String,
    /// Where the owning server listens.
    pub address: Address,
    /// The object's id on that server (CPython uses `'%x' % id(obj)`).
    pub id: String,
}

/// A manager's address as CPython pickles it in a [`Token`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// `(host, port)`: AF_INET.
    Inet {
        /// The host name or address.
        host: String,
        /// The TCP port.
        port: u16,
    },
    /// A `str`: an AF_UNIX path (a leading NUL is Linux's abstract
    /// namespace) or a Windows named pipe.
    Path(String),
}

/// The proxy type a [`Proxy`] is rebuilt with: the `func` argument of
/// `RebuildProxy`, one of `multiprocessing.managers`' proxy classes (or
/// `AutoProxy`, a function that makes one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// `AutoProxy`: the default for registered typeids (and `Queue`).
    AutoProxy,
    /// `BaseProxy`, when a typeid is registered with it directly.
    BaseProxy,
    /// `IteratorProxy` (`Iterator`).
    IteratorProxy,
    /// `AcquirerProxy` (`Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`).
    AcquirerProxy,
    /// `ConditionProxy` (`Condition`).
    ConditionProxy,
    /// `EventProxy` (`Event`).
    EventProxy,
    /// `BarrierProxy` (`Barrier`).
    BarrierProxy,
    /// `NamespaceProxy` (`Namespace`).
    NamespaceProxy,
    /// `ValueProxy` (`Value`).
    ValueProxy,
    /// `BaseListProxy`, `ListProxy`'s base.
    BaseListProxy,
    /// `ListProxy` (`list`).
    ListProxy,
    /// `DictProxy` (`dict`).
    DictProxy,
    /// `ArrayProxy` (`Array`).
    ArrayProxy,
    /// `PoolProxy` (`Pool`).
    PoolProxy,
    /// `SetProxy` (the `set` typeid of CPython 3.14).
    SetProxy,
}

impl ProxyKind {
    /// Every proxy kind.
    pub const ALL: [ProxyKind; 15] = [
        ProxyKind::AutoProxy,
        ProxyKind::BaseProxy,
        ProxyKind::IteratorProxy,
        ProxyKind::AcquirerProxy,
        ProxyKind::ConditionProxy,
        ProxyKind::EventProxy,
        ProxyKind::BarrierProxy,
        ProxyKind::NamespaceProxy,
        ProxyKind::ValueProxy,
        ProxyKind::BaseListProxy,
        ProxyKind::ListProxy,
        ProxyKind::DictProxy,
        ProxyKind::ArrayProxy,
        ProxyKind::PoolProxy,
        ProxyKind::SetProxy,
    ];

    /// Its name in `multiprocessing.managers`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::AutoProxy => "AutoProxy",
            ProxyKind::BaseProxy => "BaseProxy",
            ProxyKind::IteratorProxy => "IteratorProxy",
            ProxyKind::AcquirerProxy => "AcquirerProxy",
            ProxyKind::ConditionProxy => "ConditionProxy",
            ProxyKind::EventProxy => "EventProxy",
            ProxyKind::BarrierProxy => "BarrierProxy",
            ProxyKind::NamespaceProxy => "NamespaceProxy",
            ProxyKind::ValueProxy => "ValueProxy",
            ProxyKind::BaseListProxy => "BaseListProxy",
            ProxyKind::ListProxy => "ListProxy",
            ProxyKind::DictProxy => "DictProxy",
            ProxyKind::ArrayProxy => "ArrayProxy",
            ProxyKind::PoolProxy => "PoolProxy",
            ProxyKind::SetProxy => "SetProxy",
        }
    }

    /// The kind named `name` in `multiprocessing.managers`, if any.
    pub fn from_name(name: &str) -> Option<ProxyKind> {
        ProxyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The global this kind pickles as.
    pub fn global(self) -> Global {
        Global::new(crate::policy::MANAGERS, self.name())
    }
}

/// A pickled proxy: what `BaseProxy.__reduce__` gives,
/// `RebuildProxy(func, token, serializer, kwds)`; unpickling it in Python
/// makes a proxy of type `func` for `token` (and increfs the object).
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    /// The proxy type.
    pub func: ProxyKind,
    /// The shared object.
    pub token: Token,
    /// The serializer name (`"pickle"`, or `"xmlrpclib"`).
    pub serializer: String,
    /// Keyword arguments for `func`: `exposed` (a tuple of method names)
    /// for `AutoProxy`, in pickle order.
    pub kwds: Vec<(String, Value)>,
}

/// An exception instance: its class (an allow-listed exception, see
/// [`crate::policy`]), the args it was made with and the extra state
/// `BaseException.__reduce__` gives (its `__dict__`, such as
/// `__notes__`), if any.
#[derive(Clone, Debug, PartialEq)]
pub struct PyException {
    /// The exception class (`builtins.KeyError`, `_queue.Empty`, …).
    pub class: Global,
    /// `exc.args`.
    pub args: Vec<Value>,
    /// The state pickle's `BUILD` applies, if any.
    pub state: Option<Value>,
}

impl PyException {
    /// An exception of class `module.name` with `args`.
    pub fn new(module: &str, name: &str, args: Vec<Value>) -> Self {
        PyException {
            class: Global::new(module, name),
            args,
            state: None,
        }
    }

    /// A built-in exception (`KeyError`, `IndexError`, …) with `args`.
    pub fn builtin(name: &str, args: Vec<Value>) -> Self {
        PyException::new("builtins", name, args)
    }

    /// `queue.Empty()`, under the name CPython pickles it by,
    /// `_queue.Empty`.
    pub fn queue_empty() -> Self {
        PyException::new("_queue", "Empty", Vec::new())
    }

    /// `queue.Full()`.
    pub fn queue_full() -> Self {
        PyException::new("queue", "Full", Vec::new())
    }

    /// `threading.BrokenBarrierError()`.
    pub fn broken_barrier() -> Self {
        PyException::new("threading", "BrokenBarrierError", Vec::new())
    }

    /// `multiprocessing.managers.RemoteError(message)`.
    pub fn remote_error(message: impl Into<String>) -> Self {
        PyException::new(
            crate::policy::MANAGERS,
            "RemoteError",
            vec![Value::Str(message.into())],
        )
    }
}

/// An object of a class this crate does not know, kept inert: how pickle
/// makes it, then the items and state it applies, in that order (the
/// order CPython writes them in).
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The class (or, for [`Make::Call`], the allow-listed callable).
    pub global: Global,
    /// How the object is made.
    pub make: Make,
    /// Items appended after making it (`APPENDS`: a list subclass, a
    /// `deque`).
    pub list_items: Vec<Value>,
    /// Items set after making it (`SETITEMS`: a dict subclass, an
    /// `OrderedDict`).
    pub dict_items: Vec<(Value, Value)>,
    /// The state `BUILD` applies last (`__setstate__(state)`, or the
    /// `__dict__` update), if any.
    pub state: Option<Value>,
}

/// How pickle makes an [`Instance`]: the part that runs in the client
/// that unpickles it.
#[derive(Clone, Debug, PartialEq)]
pub enum Make {
    /// `cls.__new__(cls, *args)`: `NEWOBJ` (or `copyreg.__newobj__`).
    NewObj(Vec<Value>),
    /// `cls.__new__(cls, *args, **kwargs)`: `NEWOBJ_EX` (or
    /// `copyreg.__newobj_ex__`).
    NewObjEx {
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Vec<(String, Value)>,
    },
    /// `copyreg._reconstructor(cls, base, base_state)`: protocols 0 and 1.
    Reconstructor {
        /// The built-in base type (`builtins.object`, …).
        base: Global,
        /// The argument for the base's constructor (`None` for `object`).
        base_state: Value,
    },
    /// `global(*args)` for an allow-listed data class or reconstructor
    /// (`collections.OrderedDict`, `datetime.datetime`,
    /// `array._array_reconstructor`, …): `REDUCE`.
    Call(Vec<Value>),
}

impl Value {
    /// The Python type name, for messages (`'list'`, `'dict'`; an instance
    /// gives its class's name).
    pub fn type_name(&self) -> &str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Complex { .. } => "complex",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Slice(_) => "slice",
            Value::Range(_) => "range",
            Value::Global(_) => "type",
            Value::Token(_) => "Token",
            Value::Proxy(p) => p.func.name(),
            Value::Exception(e) => &e.class.name,
            Value::Instance(i) => &i.global.name,
        }
    }

    /// The first part of this value that Python could not hash, by type
    /// name: `list`, `dict`, `set`, `bytearray` (also inside a tuple or a
    /// slice). `None` when Python may hash it, which for an
    /// [`Instance`] depends on its class and is left to the consumer.
    pub fn unhashable_part(&self) -> Option<&'static str> {
        match self {
            Value::List(_) => Some("list"),
            Value::Dict(_) => Some("dict"),
            Value::Set(_) => Some("set"),
            Value::ByteArray(_) => Some("bytearray"),
            Value::Tuple(items) => items.iter().find_map(Value::unhashable_part),
            Value::Slice(s) => [&s.start, &s.stop, &s.step]
                .into_iter()
                .find_map(Value::unhashable_part),
            _ => None,
        }
    }
}

impl From<PyInt> for Value {
    fn from(v: PyInt) -> Self {
        match v {
            PyInt::Small(i) => Value::Int(i),
            PyInt::Big(b) => Value::BigInt(b),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Complex { re: a, im: b }, Complex { re: c, im: d }) => {
                a.to_bits() == c.to_bits() && b.to_bits() == d.to_bits()
            }
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) | (ByteArray(a), ByteArray(b)) => a == b,
            (Tuple(a), Tuple(b))
            | (List(a), List(b))
            | (Set(a), Set(b))
            | (FrozenSet(a), FrozenSet(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            (Slice(a), Slice(b)) => a == b,
            (Range(a), Range(b)) => a == b,
            (Global(a), Global(b)) => a == b,
            (Token(a), Token(b)) => a == b,
            (Proxy(a), Proxy(b)) => a == b,
            (Exception(a), Exception(b)) => a == b,
            (Instance(a), Instance(b)) => a == b,
            _ => false,
        }
    }
}
