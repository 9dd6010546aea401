//! Giving references back in the background: the `decref` of a dropped
//! proxy runs on a releaser thread, so a dropping thread never waits on
//! the network (CPython runs it from its finalizer, on the dropping
//! thread).
//!
//! A reference that was alive when this process forked is given back
//! only once this process's live children (manager servers aside) have
//! exited: a forked child shares the proxy's memory and takes its own
//! reference only on its first call, so until then the parent's must
//! stand. The releaser checks those children every few milliseconds
//! while such references wait.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mp_proto::ObjectId;

use super::client::ManagerClient;
use crate::process::Process;

/// A reference waiting to be given back, and whether it must wait for
/// this process's children.
pub(super) struct Release {
    client: ManagerClient,
    id: ObjectId,
    after_children: bool,
}

/// The releaser thread's inbox, with the pid that started it (a forked
/// child has no such thread and starts its own).
pub(super) static RELEASER: Mutex<Option<(u32, Sender<Release>)>> = Mutex::new(None);

/// The pids of manager servers this process started: they never use a
/// proxy they inherit, so no release waits for them.
pub(super) static SERVERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How often waiting references look at the children again.
const CHILD_POLL: Duration = Duration::from_millis(10);

/// Records `pid` as a manager server of this process.
pub(crate) fn note_server(pid: u32) {
    super::fork::protect_tables();
    SERVERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pid);
}

/// Queues a `decref` for the releaser thread.
pub(crate) fn release_later(client: ManagerClient, id: ObjectId) {
    send(Release {
        client,
        id,
        after_children: false,
    });
}

/// Queues a `decref` to run once this process's live children (manager
/// servers aside) have exited.
pub(crate) fn release_after_children(client: ManagerClient, id: ObjectId) {
    send(Release {
        client,
        id,
        after_children: true,
    });
}

fn send(release: Release) {
    super::fork::protect_tables();
    let mut slot = RELEASER.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if !matches!(&*slot, Some((p, _)) if *p == pid) {
        let (tx, rx) = channel::<Release>();
        let spawned = std::thread::Builder::new()
            .name("mp-proxy-release".into())
            .spawn(move || releaser(rx));
        if spawned.is_err() {
            // No thread: release inline rather than leak.
            drop(slot);
            let _ = release.client.decref(release.id);
            return;
        }
        *slot = Some((pid, tx));
    }
    if let Some((_, tx)) = &*slot {
        let _ = tx.send(release);
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

/// The releaser thread's loop.
fn releaser(rx: std::sync::mpsc::Receiver<Release>) {
    let mut waiting: Vec<Release> = Vec::new();
    loop {
        let next = if waiting.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(CHILD_POLL)
        };
        match next {
            Ok(r) if r.after_children => waiting.push(r),
            // A failure means the connection is gone, and with it every
            // reference it held.
            Ok(r) => drop(r.client.decref(r.id)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if waiting.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(CHILD_POLL),
        }
        if !waiting.is_empty() && children().is_empty() {
            for r in waiting.drain(..) {
                let _ = r.client.decref(r.id);
            }
        }
    }
}
