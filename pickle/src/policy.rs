//! What globals a pickle may name, and how: the allow-lists and the rule.
//!
//! Nothing is ever imported or called here. The danger of a global is in
//! what *other* Python clients do when they unpickle a value this server
//! hands them: pickle's `REDUCE` calls any callable with any arguments
//! (`os.system('…')`), so a stored payload would run in every client that
//! reads it. The rule, applied by the reader and again by the writer:
//!
//! * **Called** (`REDUCE`, `INST`, `OBJ`): only the allow-listed callables —
//!   the built-in types pickle rebuilds by a call (`complex`, `slice`,
//!   `range`, `set`, `frozenset`, `bytearray`, `bytes`, `_codecs.encode`),
//!   the exception classes ([`is_exception_class`]), `copyreg`'s
//!   reconstructors, `multiprocessing.managers.RebuildProxy`, and a few
//!   standard-library data classes ([`DATA_CLASSES`], plus
//!   `array._array_reconstructor`). A `REDUCE` of anything else is refused:
//!   the reader cannot tell a class from a function without importing it.
//! * **Instantiated** without a call (`NEWOBJ`, `NEWOBJ_EX`, `copyreg`'s
//!   `_reconstructor`/`__newobj__`/`__newobj_ex__`), then given state
//!   (`BUILD`) and items (`APPENDS`, `SETITEMS`): any class outside the
//!   standard library (a user's dataclass, `__main__.Point`), plus
//!   `multiprocessing.managers.Token` and [`DATA_CLASSES`]. This is the
//!   inert [`crate::Instance`].
//! * **Referenced** as a value, not called: the built-in types, `Ellipsis`,
//!   `NotImplemented`, the exception classes and [`DATA_CLASSES`] (the
//!   `list` in `defaultdict(list)`); the proxy classes only as
//!   `RebuildProxy`'s first argument.
//! * **Refused outright**, however used: every module of Python's standard
//!   library (the union of `sys.stdlib_module_names` of 3.10–3.13, so
//!   `os`, `posix`, `nt`, `subprocess`, `sys`, `builtins`, `importlib`,
//!   `pickle`, `marshal`, `types`, `functools`, `operator`, `codecs`,
//!   `socket`, `tempfile`, `shutil`, …) and the Python 2 module names
//!   that Python 3 maps onto them, except the names allow-listed above;
//!   names with a dot (`mymodule.os.system` would reach `os` through an
//!   attribute) or starting with `__`; and anything that is not a
//!   dotted identifier.
//!
//! **Residual risk.** Instantiating a class without a call still runs
//! code in the client that unpickles it: `cls.__new__`, then
//! `__setstate__` (or the `__dict__` update), `append`/`extend`/
//! `__setitem__` for items, and later `__del__`, all with data a peer
//! chose. Refusing the standard library closes the known gadgets there
//! (`subprocess.Popen.__del__`, `tempfile`'s closers that unlink a path);
//! a class in the client's own or third-party code, or one re-exported
//! under another module's name, is not known here. An operator who lets
//! untrusted peers store objects that trusted clients unpickle trusts the
//! classes those clients have installed; CPython's own server trusts far
//! more (it unpickles, so any peer runs code on it).
//!
//! **Proxies name an address.** A Python client that unpickles a
//! [`crate::Proxy`] connects to its token's address, authenticates with
//! its own key and then unpickles what that "manager" answers. A peer
//! holding the key can run such a manager itself, so a stored proxy
//! naming the peer's address is a way to run code in every client that
//! reads it. This crate reads and writes proxies as data; the server that
//! stores them must accept (or rewrite to) only tokens naming itself.

use crate::error::Refusal;
use crate::value::{Global, ProxyKind};

/// `multiprocessing.managers`.
pub const MANAGERS: &str = "multiprocessing.managers";

/// Standard-library classes kept as inert data: harmless to make by a
/// call or without one, and common in what managers store.
pub const DATA_CLASSES: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("uuid", "UUID"),
    ("array", "array"),
    (MANAGERS, "Namespace"),
    (MANAGERS, "Value"),
];

/// Built-in types a pickle may refer to as values and use as the base of
/// `copyreg._reconstructor`.
const BUILTIN_TYPES: &[&str] = &[
    "object",
    "bool",
    "int",
    "float",
    "complex",
    "str",
    "bytes",
    "bytearray",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "slice",
    "range",
];

/// The exception classes of `builtins` in CPython 3.10–3.13.
#[rustfmt::skip]
const BUILTIN_EXCEPTIONS: &[&str] = &[
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
    "BaseExceptionGroup", "BlockingIOError", "BrokenPipeError", "BufferError",
    "BytesWarning", "ChildProcessError", "ConnectionAbortedError", "ConnectionError",
    "ConnectionRefusedError", "ConnectionResetError", "DeprecationWarning", "EOFError",
    "EncodingWarning", "EnvironmentError", "Exception", "ExceptionGroup", "FileExistsError",
    "FileNotFoundError", "FloatingPointError", "FutureWarning", "GeneratorExit", "IOError",
    "ImportError", "ImportWarning", "IndentationError", "IndexError", "InterruptedError",
    "IsADirectoryError", "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError",
    "ModuleNotFoundError", "NameError", "NotADirectoryError", "NotImplementedError", "OSError",
    "OverflowError", "PendingDeprecationWarning", "PermissionError", "ProcessLookupError",
    "PythonFinalizationError", "RecursionError", "ReferenceError", "ResourceWarning",
    "RuntimeError", "RuntimeWarning", "StopAsyncIteration", "StopIteration", "SyntaxError",
    "SyntaxWarning", "SystemError", "SystemExit", "TabError", "TimeoutError", "TypeError",
    "UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError",
    "UnicodeTranslateError", "UnicodeWarning", "UserWarning", "ValueError", "Warning",
    "ZeroDivisionError",
];

/// Exception classes outside `builtins` that managers raise or carry.
const OTHER_EXCEPTIONS: &[(&str, &str)] = &[
    ("_queue", "Empty"),
    ("queue", "Empty"),
    ("queue", "Full"),
    ("threading", "BrokenBarrierError"),
    (MANAGERS, "RemoteError"),
    ("multiprocessing.context", "ProcessError"),
    ("multiprocessing.context", "BufferTooShort"),
    ("multiprocessing.context", "TimeoutError"),
    ("multiprocessing.context", "AuthenticationError"),
];

/// Top-level modules of Python's standard library: the union of
/// `sys.stdlib_module_names` of CPython 3.10 to 3.13.
#[rustfmt::skip]
const STDLIB: &[&str] = &[
    "__future__", "_abc", "_aix_support", "_android_support", "_ast", "_asyncio", "_bisect",
    "_blake2", "_bootsubprocess", "_bz2", "_codecs", "_codecs_cn", "_codecs_hk",
    "_codecs_iso2022", "_codecs_jp", "_codecs_kr", "_codecs_tw", "_collections",
    "_collections_abc", "_colorize", "_compat_pickle", "_compression", "_contextvars", "_crypt",
    "_csv", "_ctypes", "_curses", "_curses_panel", "_datetime", "_dbm", "_decimal",
    "_elementtree", "_frozen_importlib", "_frozen_importlib_external", "_functools", "_gdbm",
    "_hashlib", "_heapq", "_imp", "_interpchannels", "_interpqueues", "_interpreters", "_io",
    "_ios_support", "_json", "_locale", "_lsprof", "_lzma", "_markupbase", "_md5", "_msi",
    "_multibytecodec", "_multiprocessing", "_opcode", "_opcode_metadata", "_operator",
    "_osx_support", "_overlapped", "_pickle", "_posixshmem", "_posixsubprocess", "_py_abc",
    "_pydatetime", "_pydecimal", "_pyio", "_pylong", "_pyrepl", "_queue", "_random", "_scproxy",
    "_sha1", "_sha2", "_sha256", "_sha3", "_sha512", "_signal", "_sitebuiltins", "_socket",
    "_sqlite3", "_sre", "_ssl", "_stat", "_statistics", "_string", "_strptime", "_struct",
    "_suggestions", "_symtable", "_sysconfig", "_thread", "_threading_local", "_tkinter",
    "_tokenize", "_tracemalloc", "_typing", "_uuid", "_warnings", "_weakref", "_weakrefset",
    "_winapi", "_wmi", "_zoneinfo", "abc", "aifc", "antigravity", "argparse", "array", "ast",
    "asynchat", "asyncio", "asyncore", "atexit", "audioop", "base64", "bdb", "binascii", "binhex",
    "bisect", "builtins", "bz2", "cProfile", "calendar", "cgi", "cgitb", "chunk", "cmath", "cmd",
    "code", "codecs", "codeop", "collections", "colorsys", "compileall", "concurrent",
    "configparser", "contextlib", "contextvars", "copy", "copyreg", "crypt", "csv", "ctypes",
    "curses", "dataclasses", "datetime", "dbm", "decimal", "difflib", "dis", "distutils",
    "doctest", "email", "encodings", "ensurepip", "enum", "errno", "faulthandler", "fcntl",
    "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gc", "genericpath",
    "getopt", "getpass", "gettext", "glob", "graphlib", "grp", "gzip", "hashlib", "heapq", "hmac",
    "html", "http", "idlelib", "imaplib", "imghdr", "imp", "importlib", "inspect", "io",
    "ipaddress", "itertools", "json", "keyword", "lib2to3", "linecache", "locale", "logging",
    "lzma", "mailbox", "mailcap", "marshal", "math", "mimetypes", "mmap", "modulefinder",
    "msilib", "msvcrt", "multiprocessing", "netrc", "nis", "nntplib", "nt", "ntpath",
    "nturl2path", "numbers", "opcode", "operator", "optparse", "os", "ossaudiodev", "pathlib",
    "pdb", "pickle", "pickletools", "pipes", "pkgutil", "platform", "plistlib", "poplib", "posix",
    "posixpath", "pprint", "profile", "pstats", "pty", "pwd", "py_compile", "pyclbr", "pydoc",
    "pydoc_data", "pyexpat", "queue", "quopri", "random", "re", "readline", "reprlib", "resource",
    "rlcompleter", "runpy", "sched", "secrets", "select", "selectors", "shelve", "shlex",
    "shutil", "signal", "site", "smtpd", "smtplib", "sndhdr", "socket", "socketserver", "spwd",
    "sqlite3", "sre_compile", "sre_constants", "sre_parse", "ssl", "stat", "statistics", "string",
    "stringprep", "struct", "subprocess", "sunau", "symtable", "sys", "sysconfig", "syslog",
    "tabnanny", "tarfile", "telnetlib", "tempfile", "termios", "textwrap", "this", "threading",
    "time", "timeit", "tkinter", "token", "tokenize", "tomllib", "trace", "traceback",
    "tracemalloc", "tty", "turtle", "turtledemo", "types", "typing", "unicodedata", "unittest",
    "urllib", "uu", "uuid", "venv", "warnings", "wave", "weakref", "webbrowser", "winreg",
    "winsound", "wsgiref", "xdrlib", "xml", "xmlrpc", "zipapp", "zipfile", "zipimport", "zlib",
    "zoneinfo",

];

/// Python 2 module names that Python 3's unpickler maps onto standard
/// modules (`_compat_pickle`), and CPython's `test` package.
#[rustfmt::skip]
const OTHER_DENIED: &[&str] = &[
    "BaseHTTPServer", "CGIHTTPServer", "ConfigParser", "Cookie", "Dialog", "DocXMLRPCServer",
    "FileDialog", "HTMLParser", "Queue", "ScrolledText", "SimpleDialog", "SimpleHTTPServer",
    "SimpleXMLRPCServer", "SocketServer", "StringIO", "Tix", "Tkconstants", "Tkdnd", "Tkinter",
    "UserDict", "UserList", "UserString", "__builtin__", "_abcoll", "_winreg", "anydbm",
    "cPickle", "cStringIO", "commands", "cookielib", "copy_reg", "dbhash", "dumbdbm",
    "dummy_thread", "exceptions", "gdbm", "htmlentitydefs", "httplib", "markupbase", "repr",
    "robotparser", "test", "thread", "tkColorChooser", "tkCommonDialog", "tkFileDialog",
    "tkFont", "tkMessageBox", "tkSimpleDialog", "ttk", "urllib2", "urlparse", "whichdb",
    "xmlrpclib",
];

/// The globals the reader rebuilds into a [`crate::Value`] variant of
/// their own when they are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    Complex,
    Slice,
    Range,
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    /// `_codecs.encode(str, 'latin1')`: bytes in protocols 0–2.
    CodecsEncode,
    /// `copyreg._reconstructor(cls, base, state)`.
    Reconstructor,
    /// `copyreg.__newobj__(cls, *args)`.
    NewObj,
    /// `copyreg.__newobj_ex__(cls, args, kwargs)`.
    NewObjEx,
    RebuildProxy,
}

/// What a called global is to the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callable {
    Special(Special),
    Exception,
    Data,
}

fn in_pairs(list: &[(&str, &str)], g: &Global) -> bool {
    list.iter().any(|&(m, n)| g.is(m, n))
}

pub(crate) fn special(g: &Global) -> Option<Special> {
    let s = match (g.module.as_str(), g.name.as_str()) {
        ("builtins", "complex") => Special::Complex,
        ("builtins", "slice") => Special::Slice,
        ("builtins", "range") => Special::Range,
        ("builtins", "set") => Special::Set,
        ("builtins", "frozenset") => Special::FrozenSet,
        ("builtins", "bytearray") => Special::ByteArray,
        ("builtins", "bytes") => Special::Bytes,
        ("_codecs", "encode") => Special::CodecsEncode,
        ("copyreg", "_reconstructor") => Special::Reconstructor,
        ("copyreg", "__newobj__") => Special::NewObj,
        ("copyreg", "__newobj_ex__") => Special::NewObjEx,
        (MANAGERS, "RebuildProxy") => Special::RebuildProxy,
        _ => return None,
    };
    Some(s)
}

/// Whether `g` is an allow-listed exception class.
pub fn is_exception_class(g: &Global) -> bool {
    (g.module == "builtins" && BUILTIN_EXCEPTIONS.contains(&g.name.as_str()))
        || in_pairs(OTHER_EXCEPTIONS, g)
}

/// Whether `g` is one of [`DATA_CLASSES`].
pub fn is_data_class(g: &Global) -> bool {
    in_pairs(DATA_CLASSES, g)
}

/// Whether `g` may be called to make an inert [`crate::Instance`]
/// ([`crate::Make::Call`]).
pub fn is_data_callable(g: &Global) -> bool {
    is_data_class(g) || g.is("array", "_array_reconstructor")
}

/// Whether `g` is `multiprocessing.managers.Token`.
pub(crate) fn is_token(g: &Global) -> bool {
    g.is(MANAGERS, "Token")
}

/// The proxy kind `g` names, if it is one.
pub(crate) fn proxy_kind(g: &Global) -> Option<ProxyKind> {
    if g.module == MANAGERS {
        ProxyKind::from_name(&g.name)
    } else {
        None
    }
}

pub(crate) fn callable(g: &Global) -> Option<Callable> {
    if let Some(s) = special(g) {
        Some(Callable::Special(s))
    } else if is_exception_class(g) {
        Some(Callable::Exception)
    } else if is_data_callable(g) {
        Some(Callable::Data)
    } else {
        None
    }
}

/// Whether `g` may stand as a value by itself ([`crate::Value::Global`]).
pub fn may_be_value(g: &Global) -> bool {
    (g.module == "builtins"
        && (BUILTIN_TYPES.contains(&g.name.as_str())
            || g.name == "Ellipsis"
            || g.name == "NotImplemented"))
        || is_exception_class(g)
        || is_data_class(g)
}

/// Whether `g` may be the base type of `copyreg._reconstructor`.
pub(crate) fn may_be_base(g: &Global) -> bool {
    (g.module == "builtins" && BUILTIN_TYPES.contains(&g.name.as_str())) || is_data_class(g)
}

/// Checks `g` for a use as the class of an inert [`crate::Instance`] made
/// without a call (`NEWOBJ` and kin).
pub fn check_class(g: &Global) -> Result<(), Refusal> {
    if is_data_class(g) || is_token(g) {
        return Ok(());
    }
    check_unlisted(g)
}

/// Checks `g` for a use as a callable (`REDUCE`).
pub(crate) fn check_call(g: &Global) -> Result<Callable, Refusal> {
    if let Some(c) = callable(g) {
        return Ok(c);
    }
    check_named(g)?;
    Err(Refusal::NotCallable(g.clone()))
}

/// Checks `g` for a use as a value by itself.
pub fn check_value(g: &Global) -> Result<(), Refusal> {
    if may_be_value(g) {
        return Ok(());
    }
    check_named(g)?;
    Err(Refusal::NotAValue(g.clone()))
}

/// Checks a global the moment a pickle names it: refused if no use of it
/// could be allowed, so that `os.system` fails before anything else.
pub(crate) fn check_named(g: &Global) -> Result<(), Refusal> {
    if callable(g).is_some() || may_be_value(g) || is_token(g) || proxy_kind(g).is_some() {
        return Ok(());
    }
    check_unlisted(g)
}

/// The rule for a global on no allow-list: a well-formed name outside
/// the standard library.
fn check_unlisted(g: &Global) -> Result<(), Refusal> {
    let identifier = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    if !g.module.split('.').all(identifier) || !identifier(&g.name) {
        return Err(Refusal::BadName(g.clone()));
    }
    if g.name.starts_with("__") {
        return Err(Refusal::BadName(g.clone()));
    }
    let top = g.module.split('.').next().unwrap_or_default();
    if STDLIB.contains(&top) || OTHER_DENIED.contains(&top) {
        return Err(Refusal::Forbidden(g.clone()));
    }
    Ok(())
}

/// The Python 3 name of a global a Python 2-compatible pickle (protocols
/// 0–2 written with `fix_imports`) names, as CPython's unpickler maps it:
/// `__builtin__.xrange` is `builtins.range`, `exceptions.KeyError` is
/// `builtins.KeyError`, `Queue.Full` is `queue.Full`.
pub(crate) fn python3_name(module: &str, name: &str) -> Global {
    let mapped = match (module, name) {
        ("__builtin__", "xrange") => Some(("builtins", "range")),
        ("__builtin__", "unicode" | "basestring") => Some(("builtins", "str")),
        ("__builtin__", "long") => Some(("builtins", "int")),
        ("exceptions", "StandardError") => Some(("builtins", "Exception")),
        (
            "multiprocessing",
            "AuthenticationError" | "BufferTooShort" | "ProcessError" | "TimeoutError",
        ) => Some(("multiprocessing.context", name)),
        _ => None,
    };
    if let Some((m, n)) = mapped {
        return Global::new(m, n);
    }
    let module = match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "Queue" => "queue",
        other => other,
    };
    Global::new(module, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(m: &str, n: &str) -> Global {
        Global::new(m, n)
    }

    #[test]
    fn code_execution_globals_are_refused_for_every_use() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("builtins", "getattr"),
            ("builtins", "__import__"),
            ("builtins", "open"),
            ("builtins", "compile"),
            ("subprocess", "Popen"),
            ("sys", "modules"),
            ("importlib", "import_module"),
            ("pickle", "loads"),
            ("marshal", "loads"),
            ("types", "FunctionType"),
            ("functools", "partial"),
            ("operator", "attrgetter"),
            ("operator", "methodcaller"),
            ("codecs", "open"),
            ("socket", "socket"),
            ("tempfile", "_TemporaryFileCloser"),
            ("multiprocessing.process", "AuthenticationString"),
            ("cPickle", "loads"),
            ("commands", "getoutput"),
        ] {
            let global = g(m, n);
            assert!(check_named(&global).is_err(), "{global}");
            assert!(check_class(&global).is_err(), "{global}");
            assert!(check_call(&global).is_err(), "{global}");
            assert!(check_value(&global).is_err(), "{global}");
        }
        // Python 2 names map first, then meet the same rule.
        assert!(check_named(&python3_name("__builtin__", "eval")).is_err());
        assert_eq!(
            python3_name("__builtin__", "xrange"),
            g("builtins", "range")
        );
    }

    #[test]
    fn user_classes_are_instances_never_calls() {
        let point = g("__main__", "Point");
        assert!(check_named(&point).is_ok());
        assert!(check_class(&point).is_ok());
        assert!(matches!(check_call(&point), Err(Refusal::NotCallable(_))));
        assert!(matches!(check_value(&point), Err(Refusal::NotAValue(_))));
        // an attribute path could leave the module
        assert!(matches!(
            check_class(&g("mymodule", "os.system")),
            Err(Refusal::BadName(_))
        ));
        assert!(matches!(
            check_class(&g("mymodule", "__builtins__")),
            Err(Refusal::BadName(_))
        ));
        assert!(matches!(
            check_class(&g("my\nmodule", "X")),
            Err(Refusal::BadName(_))
        ));
        assert!(check_class(&g("pkg.sub_mod", "Café")).is_ok());
    }

    #[test]
    fn allow_listed_globals_pass_for_their_uses() {
        assert_eq!(
            check_call(&g("builtins", "KeyError")),
            Ok(Callable::Exception)
        );
        assert_eq!(check_call(&g("_queue", "Empty")), Ok(Callable::Exception));
        assert_eq!(
            check_call(&g("collections", "OrderedDict")),
            Ok(Callable::Data)
        );
        assert_eq!(
            check_call(&g(MANAGERS, "RebuildProxy")),
            Ok(Callable::Special(Special::RebuildProxy))
        );
        assert!(check_value(&g("builtins", "list")).is_ok());
        assert!(check_class(&g(MANAGERS, "Token")).is_ok());
        assert!(check_named(&g(MANAGERS, "DictProxy")).is_ok());
        // but a proxy class is no value of its own, nor a callable
        assert!(matches!(
            check_value(&g(MANAGERS, "DictProxy")),
            Err(Refusal::NotAValue(_))
        ));
        assert!(matches!(
            check_call(&g(MANAGERS, "AutoProxy")),
            Err(Refusal::NotCallable(_))
        ));
    }
}
