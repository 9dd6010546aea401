//! What a re-executed (`spawn`) or forkserver child receives from its parent
//! over an inherited socket, and the child's side of reading and running
//! it (Python's `spawn.get_preparation_data` + the pickled process object,
//! and `spawn._main`).
//!
//! # Format
//!
//! ```text
//! u64 LE  length of the CBOR body
//! u32 LE  number of descriptors (sent as SCM_RIGHTS with these 12 bytes)
//! body    CBOR of `Payload`
//! ```
//!
//! The descriptors are the arguments' [`SharedFd`](crate::reduction::SharedFd)s
//! in index order, then the parent's resource tracker pipe if it runs one
//! (the child adopts it, as CPython's spawn does, so that what the child
//! leaves behind is cleaned up when the whole program ends), then the
//! parent's pidfd.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::super::bootstrap::{self, ChildSpec};
use super::super::current;
use super::super::error::ProcessError;
use super::super::sys;
use super::super::target::{self, ChildCall, EntryPoint, PortableTarget};
use crate::reduction::SharedFd;
use crate::resource_tracker;

/// Refuse bodies larger than this (64 GiB) before allocating: a corrupt
/// header must give an error, not an abort.
const MAX_BODY: u64 = 1 << 36;

#[derive(Serialize, Deserialize)]
struct Payload {
    spec: ChildSpec,
    entry: EntryPoint,
    #[serde(with = "serde_bytes")]
    args: Vec<u8>,
    /// How many of the descriptors belong to the arguments; the next one
    /// is the tracker's if `tracker` is set, and the last the parent's pidfd.
    arg_fds: u32,
    /// Whether the parent's resource tracker descriptor follows the
    /// arguments' descriptors.
    #[serde(default)]
    tracker: bool,
}

/// Sends the payload for `target` on `sock`.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    spec: &ChildSpec,
    target: &PortableTarget,
    parent_pidfd: BorrowedFd<'_>,
) -> Result<(), ProcessError> {
    let tracker = resource_tracker::tracker_fd()
        .map_err(|e| ProcessError::os("sharing the resource tracker", e))?;
    let payload = Payload {
        spec: spec.clone(),
        entry: target.entry.clone(),
        args: target.args.clone(),
        arg_fds: u32::try_from(target.fds.len())
            .map_err(|_| ProcessError::Serialize("too many file descriptors".into()))?,
        tracker: tracker.is_some(),
    };
    let mut body = Vec::with_capacity(12 + target.args.len() + 256);
    body.extend_from_slice(&[0; 12]);
    ciborium::into_writer(&payload, &mut body)
        .map_err(|e| ProcessError::Serialize(e.to_string()))?;
    let len = (body.len() - 12) as u64;
    let mut fds: Vec<BorrowedFd<'_>> = target.fds.iter().map(|fd| fd.as_fd()).collect();
    fds.extend(tracker.as_ref().map(|fd| fd.as_fd()));
    fds.push(parent_pidfd);
    body[..8].copy_from_slice(&len.to_le_bytes());
    body[8..12].copy_from_slice(&(fds.len() as u32).to_le_bytes());
    sys::send_all_with_fds(sock, &body, &fds)
        .map_err(|e| ProcessError::os("sending the process to the child", e))
}

/// The child's side: reads the payload from `sock`, becomes the child,
/// runs the target and exits. `os_parent` is the pid `getppid()` must
/// return while the parent lives: the forkserver for its children, the
/// logical parent (`None`) for a spawned child.
pub(crate) fn run_child(sock: OwnedFd, os_parent: Option<libc::pid_t>) -> ! {
    match receive(sock.as_fd()) {
        Ok((payload, fds)) => {
            drop(sock);
            run_payload(payload, fds, os_parent)
        }
        Err(e) => {
            eprintln!("multiprocessing child {}: {e}", std::process::id());
            bootstrap::finish(1)
        }
    }
}

fn receive(sock: BorrowedFd<'_>) -> Result<(Payload, Vec<OwnedFd>), String> {
    let mut header = [0u8; 12];
    let fds = sys::recv_exact_with_fds(sock, &mut header)
        .map_err(|e| format!("reading the process from the parent: {e}"))?
        .ok_or("the parent closed the connection before sending the process")?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[..8]);
    let len = u64::from_le_bytes(len);
    let mut count = [0u8; 4];
    count.copy_from_slice(&header[8..]);
    if fds.len() != u32::from_le_bytes(count) as usize {
        return Err("the descriptors sent with the process did not all arrive".into());
    }
    if len > MAX_BODY {
        return Err(format!(
            "the process description is too large ({len} bytes)"
        ));
    }
    let mut body = Vec::new();
    body.try_reserve_exact(len as usize)
        .map_err(|e| format!("cannot allocate the process description: {e}"))?;
    body.resize(len as usize, 0);
    sys::recv_exact_with_fds(sock, &mut body)
        .map_err(|e| format!("reading the process from the parent: {e}"))?
        .ok_or("the parent closed the connection while sending the process")?;
    let payload: Payload = ciborium::from_reader(body.as_slice())
        .map_err(|e| format!("decoding the process description: {e}"))?;
    Ok((payload, fds))
}

fn run_payload(payload: Payload, mut fds: Vec<OwnedFd>, os_parent: Option<libc::pid_t>) -> ! {
    let os_parent = os_parent.unwrap_or(payload.spec.parent_pid as libc::pid_t);
    let split = (payload.arg_fds as usize).min(fds.len());
    let mut rest = fds.split_off(split);
    let parent_pidfd = rest.pop();
    if let Some(tracker) = rest.pop().filter(|_| payload.tracker) {
        // A child that already has a tracker keeps it; failing to adopt
        // only means the child's leftovers are cleaned up when it ends.
        let _ = resource_tracker::adopt(SharedFd::new(tracker));
    }
    {
        let mut table = current::table();
        bootstrap::become_child(&mut table, &payload.spec, os_parent, parent_pidfd);
    }
    let call = ChildCall {
        args: payload.args,
        fds,
        process_name: payload.spec.name.clone(),
        fingerprint: payload.entry.fingerprint(),
    };
    let code = match target::call_entry(&payload.entry, call) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Process {}:\nError: {e}", payload.spec.name);
            1
        }
    };
    bootstrap::finish(code)
}
