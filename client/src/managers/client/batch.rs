//! Pipelined calls: many requests in flight on one connection, written
//! together and answered together ([`ManagerClient::call_many`]).
//!
//! No Python counterpart: CPython's proxies make one round trip per call.
//! A batch costs one write and about one round trip per chunk, whatever
//! the number of calls in it, and the server answers a chunk's calls with
//! one write too; the calls still run one by one, in order, on the server,
//! except that a blocking call (a `get` on an empty queue) waits without
//! holding up the calls after it.

use mp_proto::message::{Kwargs, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::{ObjectId, Value};

use super::{encode_request, thread_wake, ManagerClient, Return};
use crate::managers::error::ManagerError;

/// Most calls written before their answers are read.
const CHUNK_CALLS: usize = 128;
/// Most request bytes written before their answers are read. Bounding
/// what is in flight keeps both sides' socket buffers from filling up
/// while each is writing and neither reading.
const CHUNK_BYTES: usize = 32 * 1024;

/// One call of a batch: a method of a shared object, or of the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// What is called.
    pub target: Target,
    /// The method's name.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Kwargs,
}

impl Call {
    /// `method(*args)` of the shared object `id`.
    pub fn method(id: ObjectId, method: impl Into<String>, args: Vec<Value>) -> Self {
        Call {
            target: Target::Object(id),
            method: method.into(),
            args,
            kwargs: Kwargs::new(),
        }
    }

    /// The server call `method(*args)` (`incref`, `decref`, `ping`, …).
    pub fn server(method: impl Into<String>, args: Vec<Value>) -> Self {
        Call {
            target: Target::Server,
            method: method.into(),
            args,
            kwargs: Kwargs::new(),
        }
    }

    /// The same call with keyword arguments.
    pub fn with_kwargs(mut self, kwargs: Kwargs) -> Self {
        self.kwargs = kwargs;
        self
    }
}

impl ManagerClient {
    /// Sends `calls` pipelined — many in flight at once — and returns
    /// their results in the same order. Each result is what
    /// [`call`](Self::call) would have returned for it; a failed call does
    /// not stop the others, and if the connection breaks every call not
    /// answered yet fails with [`ManagerError::ConnectionLost`].
    pub fn call_many<I>(&self, calls: I) -> Vec<Result<Return, ManagerError>>
    where
        I: IntoIterator<Item = Call>,
    {
        let wake = thread_wake();
        let mut calls = calls.into_iter().peekable();
        let mut results = Vec::new();
        let mut frames = Vec::new();
        while calls.peek().is_some() {
            frames.clear();
            // Per call: its id, or why it could not even be encoded.
            let mut chunk: Vec<Result<u64, ManagerError>> = Vec::new();
            for call in calls.by_ref() {
                let id = self.next_id();
                let encoded = encode_request(
                    &mut frames,
                    id,
                    call.target,
                    &call.method,
                    call.args,
                    call.kwargs,
                );
                chunk.push(encoded.map(|()| id));
                if chunk.len() >= CHUNK_CALLS || frames.len() >= CHUNK_BYTES {
                    break;
                }
            }
            let ids: Vec<u64> = chunk
                .iter()
                .filter_map(|c| c.as_ref().ok().copied())
                .collect();
            let sent = if ids.is_empty() {
                Ok(std::time::Duration::ZERO)
            } else {
                self.register(&ids, &wake)
                    .and_then(|spin| self.send(&frames, &ids).map(|()| spin))
            };
            match sent {
                Ok(spin) => results.extend(
                    chunk
                        .into_iter()
                        .map(|c| c.and_then(|id| self.wait(id, &wake, spin, None))),
                ),
                Err(e) => {
                    let why = match e {
                        ManagerError::ConnectionLost(why) => why,
                        other => other.to_string(),
                    };
                    results.extend(
                        chunk.into_iter().map(|c| {
                            c.and_then(|_| Err(ManagerError::ConnectionLost(why.clone())))
                        }),
                    );
                }
            }
        }
        results
    }

    /// Gives back references to `ids` this connection owns, pipelined
    /// (one [`decref`](Self::decref) each); results in the same order.
    pub fn decref_many(&self, ids: &[ObjectId]) -> Vec<Result<(), ManagerError>> {
        // Server ids stay below 2^52, so they fit an int.
        let calls = ids
            .iter()
            .map(|id| Call::server(ServerMethod::Decref.name(), vec![Value::Int(id.0 as i64)]));
        self.call_many(calls)
            .into_iter()
            .map(|r| r.map(drop))
            .collect()
    }
}
