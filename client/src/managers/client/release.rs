//! Deferred `decref`s: the references dropped proxies give back (Python's
//! `BaseProxy._decref`, which CPython runs from a finalizer on a fresh
//! connection each time).
//!
//! Dropping a proxy never waits on the network. Its `decref` is queued on
//! its connection and goes out either in front of the next call made on
//! that connection — in the same write, so it costs no system call of its
//! own — or, if no call comes within [`WINDOW`], from a background
//! releaser thread, together with everything else queued by then. The
//! server answers calls of one connection in order, so a piggybacked
//! `decref` is answered before the call behind it; its answer is simply
//! dropped. If the connection is gone by then, the server has already
//! released everything the connection held.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mp_proto::message::{Kwargs, Target};
use mp_proto::methods::builtin::ServerMethod;
use mp_proto::{ObjectId, Value};

use super::batch::Call;
use super::{encode_request, thread_wake, ManagerClient, Return};
use crate::managers::error::ManagerError;

/// How long a queued `decref` waits for a call to ride on before the
/// releaser thread sends it.
const WINDOW: Duration = Duration::from_micros(200);

/// One connection's queued `decref`s.
#[derive(Default)]
pub(crate) struct Releases {
    pending: Mutex<Vec<ObjectId>>,
    /// Whether `pending` may be non-empty: a call checks this one load.
    any: AtomicBool,
    /// Whether the releaser thread has been told about this connection
    /// and has not flushed it yet.
    queued: AtomicBool,
}

impl Releases {
    /// Queues `id`; `true` if the releaser thread must be told.
    fn push(&self, id: ObjectId) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
        self.any.store(true, Ordering::Release);
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Takes everything queued (nothing, cheaply, when nothing is).
    pub(crate) fn take(&self) -> Vec<ObjectId> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.any.store(false, Ordering::Release);
        std::mem::take(&mut *pending)
    }
}

/// The releaser thread's inbox, with the pid that started it (a forked
/// child has no such thread and starts its own).
pub(crate) static RELEASER: Mutex<Option<(u32, Sender<ManagerClient>)>> = Mutex::new(None);

impl ManagerClient {
    /// Gives back a reference to `id` this connection owns, later and
    /// without waiting: in front of the next call on this connection, or
    /// from a background thread shortly after.
    pub fn decref_later(&self, id: ObjectId) {
        if self.releases().push(id) {
            self.wake_releaser();
        }
    }

    /// Sends every queued `decref` now and waits for the answers.
    fn flush_releases(&self) {
        self.releases().queued.store(false, Ordering::Release);
        let ids = self.releases().take();
        if !ids.is_empty() {
            // A failure means the connection is gone, and with it every
            // reference it held.
            let _ = self.decref_many(&ids);
        }
    }

    fn wake_releaser(&self) {
        crate::managers::fork::protect_tables();
        let mut slot = RELEASER.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        if !matches!(&*slot, Some((p, _)) if *p == pid) {
            let (tx, rx) = channel::<ManagerClient>();
            let spawned = std::thread::Builder::new()
                .name("mp-proxy-release".into())
                .spawn(move || {
                    while let Ok(first) = rx.recv() {
                        // Give a call the chance to carry them first.
                        std::thread::sleep(WINDOW);
                        first.flush_releases();
                        for client in rx.try_iter() {
                            client.flush_releases();
                        }
                    }
                });
            if spawned.is_err() {
                // No thread: release inline rather than leak.
                drop(slot);
                self.flush_releases();
                return;
            }
            *slot = Some((pid, tx));
        }
        if let Some((_, tx)) = &*slot {
            let _ = tx.send(self.clone());
        }
    }

    /// [`call`](Self::call) with the queued `decref`s `released` written
    /// in front of the request, in the same write.
    pub(super) fn call_with_releases(
        &self,
        released: Vec<ObjectId>,
        target: Target,
        method: &str,
        args: Vec<Value>,
        kwargs: Kwargs,
    ) -> Result<Return, ManagerError> {
        let mut frames = Vec::with_capacity(64 + 32 * released.len());
        let mut ids = Vec::with_capacity(released.len() + 1);
        for r in released {
            let id = self.next_id();
            let Call {
                target,
                method,
                args,
                kwargs,
            } = Call::server(ServerMethod::Decref.name(), vec![Value::Int(r.0 as i64)]);
            // Encoding an int cannot fail short of memory; if it does,
            // the reference stays until the connection closes.
            if encode_request(&mut frames, id, target, &method, args, kwargs).is_ok() {
                ids.push(id);
            }
        }
        let id = self.next_id();
        encode_request(&mut frames, id, target, method, args, kwargs)?;
        ids.push(id);
        let wake = thread_wake();
        let spin = self.register(&ids, &wake)?;
        let sent = Instant::now();
        self.send(&frames, &ids)?;
        let result = self.wait(id, &wake, spin, Some(sent));
        // Answered before ours (or the connection is dead): drop them.
        self.forget(&ids[..ids.len() - 1]);
        result
    }
}

#[cfg(test)]
#[cfg(feature = "server")] // the tests serve a manager in-process
mod tests {
    use super::*;

    const KEY: &[u8] = b"release-test";

    fn client() -> ManagerClient {
        let address = crate::managers::server::serve_for_tests(KEY);
        ManagerClient::connect(&address, KEY).unwrap()
    }

    fn lists(c: &ManagerClient, n: usize) -> Vec<ObjectId> {
        (0..n)
            .map(|_| c.create("list", vec![], Kwargs::new()).unwrap().token.id)
            .collect()
    }

    #[test]
    fn piggybacked_decrefs_are_answered_before_the_call_behind_them() {
        let c = client();
        let ids = lists(&c, 50);
        let count = c
            .call_with_releases(
                ids,
                Target::Server,
                "number_of_objects",
                vec![],
                Kwargs::new(),
            )
            .unwrap()
            .into_value()
            .unwrap();
        assert_eq!(count, Value::Int(0));
        // The connection goes on as usual.
        assert_eq!(c.number_of_objects().unwrap(), 0);
    }

    #[test]
    fn queued_decrefs_go_out_with_the_next_call_or_from_the_releaser() {
        let c = client();
        let ids = lists(&c, 20);
        for id in &ids[..10] {
            c.decref_later(*id);
        }
        // This call carries what the releaser has not taken yet, and those
        // are answered before it.
        let left = c.number_of_objects().unwrap();
        assert!((10..=20).contains(&left), "{left}");
        for id in &ids[10..] {
            c.decref_later(*id);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.number_of_objects().unwrap() > 0 {
            assert!(Instant::now() < deadline, "queued decrefs never went out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
