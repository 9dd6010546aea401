//! References a forked child may still rely on (the counterpart of
//! Python's `BaseProxy._after_fork`).
//!
//! A forked child shares its parent's proxies' memory and takes a
//! reference of its own only on its first call with one; until then the
//! parent's must stand. So a reference that was alive when this process
//! forked is given back only once this process's live children (manager
//! servers aside) have exited: a waiter thread looks at them every few
//! milliseconds while such references wait, then queues their `decref`s
//! as any other ([`ManagerClient::decref_later`]). CPython races here: its
//! parent drops a `Process`'s arguments right after starting it.
//!
//! The children are over-approximated (every live child, not only those
//! forked after the proxy was made), so with long-lived children a
//! reference alive at a later fork is given back when they exit — or when
//! this process's connection closes.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mp_proto::ObjectId;

use super::client::ManagerClient;
use crate::process::Process;

/// A reference waiting for the children.
type Waiting = (ManagerClient, ObjectId);

/// The waiter thread's inbox, with the pid that started it (a forked
/// child has no such thread and starts its own).
pub(super) static WAITER: Mutex<Option<(u32, Sender<Waiting>)>> = Mutex::new(None);

/// The pids of manager servers this process started: they never use a
/// proxy they inherit, so no reference waits for them.
pub(super) static SERVERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How often waiting references look at the children again.
const CHILD_POLL: Duration = Duration::from_millis(10);

/// Records `pid` as a manager server of this process.
#[cfg(feature = "server")]
pub(crate) fn note_server(pid: u32) {
    super::fork::protect_tables();
    SERVERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pid);
}

/// Gives back `id` on `client` once this process's live children
/// (manager servers aside) have exited.
pub(crate) fn release_after_children(client: ManagerClient, id: ObjectId) {
    super::fork::protect_tables();
    let mut slot = WAITER.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if !matches!(&*slot, Some((p, _)) if *p == pid) {
        let (tx, rx) = channel::<Waiting>();
        let spawned = std::thread::Builder::new()
            .name("mp-proxy-after-fork".into())
            .spawn(move || waiter(rx));
        if spawned.is_err() {
            // No thread: give it back now rather than leak.
            drop(slot);
            client.decref_later(id);
            return;
        }
        *slot = Some((pid, tx));
    }
    if let Some((_, tx)) = &*slot {
        let _ = tx.send((client, id));
    }
}

/// The children a waiting reference must outlive.
fn children() -> Vec<Process> {
    let servers = SERVERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    crate::process::active_children()
        .into_iter()
        .filter(|p| match p.pid() {
            Ok(Some(pid)) => !servers.contains(&pid),
            _ => false,
        })
        .collect()
}

/// The waiter thread's loop.
fn waiter(rx: std::sync::mpsc::Receiver<Waiting>) {
    let mut waiting: Vec<Waiting> = Vec::new();
    loop {
        let next = if waiting.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(CHILD_POLL)
        };
        match next {
            Ok(w) => waiting.push(w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if waiting.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(CHILD_POLL),
        }
        if !waiting.is_empty() && children().is_empty() {
            for (client, id) in waiting.drain(..) {
                client.decref_later(id);
            }
        }
    }
}
