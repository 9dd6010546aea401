//! CPython's reply tuples: what an [`Outcome`] becomes for a Python
//! client, and the exceptions errors are raised as.
//!
//! | outcome | reply |
//! |---|---|
//! | a value | `('#RETURN', value)` |
//! | a new object from a method (`iter(d)`) | `('#PROXY', (exposed, Token))` |
//! | a new object from `create` | `('#RETURN', (ident, exposed))`, CPython's `Server.create` |
//! | an error CPython raises as an exception | `('#ERROR', exc)`: `KeyError`, `IndexError`, `ValueError`, `TypeError`, `AttributeError`, `RuntimeError`, `TimeoutError`, `StopIteration`, `ZeroDivisionError`, `OverflowError`, `MemoryError` from `builtins`; `queue.Empty` (pickled as `_queue.Empty`), `queue.Full`, `threading.BrokenBarrierError` |
//! | any other error (a refused pickle, a limit, the server stopping) | `('#TRACEBACK', 'Kind: message')`, which the client raises as `multiprocessing.managers.RemoteError` |
//!
//! An exception carries the server's message as its one argument, so
//! `str(e)` reads as it would from CPython's server except for `KeyError`,
//! whose argument is the key's `repr()` (`str(e)` shows it quoted twice).

use mp_pickle::{PyException, Value as Py};
use mp_proto::message::{Outcome, ProxyInfo};
use mp_proto::{ErrorKind, RemoteError};

use super::values::{to_pickle, token_out, Side};

/// The reply kinds.
const RETURN: &str = "#RETURN";
const ERROR: &str = "#ERROR";
const TRACEBACK: &str = "#TRACEBACK";
const PROXY: &str = "#PROXY";

fn reply(kind: &str, value: Py) -> Py {
    Py::Tuple(vec![Py::Str(kind.to_owned()), value])
}

fn exposed(info: &ProxyInfo) -> Py {
    Py::Tuple(info.exposed.iter().cloned().map(Py::Str).collect())
}

/// The reply to a request. `created`: the request was `create` (whose
/// proxy CPython returns as `(ident, exposed)`).
pub(crate) fn outcome(outcome: &Outcome, created: bool, side: &Side<'_>) -> Py {
    match outcome {
        Outcome::Return(value) => match to_pickle(value, side) {
            Ok(v) => reply(RETURN, v),
            Err(e) => error(&e),
        },
        Outcome::Proxy(info) if created => reply(
            RETURN,
            Py::Tuple(vec![Py::Str(info.token.id.to_string()), exposed(info)]),
        ),
        Outcome::Proxy(info) => reply(
            PROXY,
            Py::Tuple(vec![
                exposed(info),
                Py::Token(Box::new(token_out(&info.token, side))),
            ]),
        ),
        Outcome::Error(e) => error(e),
    }
}

/// The reply for an error: the exception Python code catches, or a
/// `RemoteError` for what CPython's server never raises.
pub(crate) fn error(e: &RemoteError) -> Py {
    let args = vec![Py::Str(e.message.clone())];
    let exc = match &e.kind {
        ErrorKind::Empty => PyException::queue_empty(),
        ErrorKind::Full => PyException::queue_full(),
        ErrorKind::BrokenBarrierError => PyException::broken_barrier(),
        ErrorKind::StopIteration => PyException::builtin("StopIteration", Vec::new()),
        ErrorKind::KeyError
        | ErrorKind::IndexError
        | ErrorKind::ValueError
        | ErrorKind::TypeError
        | ErrorKind::AttributeError
        | ErrorKind::RuntimeError
        | ErrorKind::TimeoutError
        | ErrorKind::ZeroDivisionError
        | ErrorKind::OverflowError
        | ErrorKind::MemoryError => PyException::builtin(e.kind.as_str(), args),
        _ => return traceback(&e.to_string()),
    };
    reply(ERROR, Py::Exception(Box::new(exc)))
}

/// `('#TRACEBACK', text)`: raised as `RemoteError(text)` by the client.
pub(crate) fn traceback(text: &str) -> Py {
    reply(TRACEBACK, Py::Str(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_python_exception_classes() {
        let cases = [
            (ErrorKind::KeyError, "builtins", "KeyError"),
            (ErrorKind::Empty, "_queue", "Empty"),
            (ErrorKind::Full, "queue", "Full"),
            (
                ErrorKind::BrokenBarrierError,
                "threading",
                "BrokenBarrierError",
            ),
        ];
        for (kind, module, name) in cases {
            let Py::Tuple(items) = error(&RemoteError::new(kind, "m")) else {
                panic!()
            };
            assert_eq!(items[0], Py::Str(ERROR.into()));
            let Py::Exception(exc) = &items[1] else {
                panic!()
            };
            assert!(exc.class.is(module, name), "{}", exc.class);
            // and it is written as CPython would read it
            mp_pickle::dumps(&items[1], mp_pickle::Protocol::V4).unwrap();
        }
        let Py::Tuple(items) = error(&RemoteError::new(ErrorKind::LimitExceeded, "too many"))
        else {
            panic!()
        };
        assert_eq!(items[0], Py::Str(TRACEBACK.into()));
        assert_eq!(items[1], Py::Str("LimitExceeded: too many".into()));
    }
}
