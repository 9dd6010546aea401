//! The `spawn` start method (Python's `popen_spawn_posix`): a fresh
//! execution of this program's own file (`/proc/self/exe`), whose
//! [`crate::init`] recognises the command line and runs the child instead
//! of `main`. The child inherits one socket, on which the parent sends the
//! target, its arguments, the process metadata and any descriptors
//! ([`super::payload`]).
//!
//! `posix_spawn` (a `vfork`-style clone in glibc) keeps the cost of
//! starting independent of the parent's size, and nothing but the one
//! socket is inherited: every descriptor Rust opens is close-on-exec.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use super::super::bootstrap::ChildSpec;
use super::super::current::{self, ProcessTable};
use super::super::error::ProcessError;
use super::super::popen::Popen;
use super::super::sys;
use super::super::target::PortableTarget;
use super::method::StartMethod;
use super::payload;

/// The first argument that makes [`crate::init`] run a spawned child.
pub(crate) const SPAWN_FLAG: &str = "--multiprocessing-fork";

/// Starts a re-executed child running `target`.
pub(crate) fn start(
    table: &mut ProcessTable,
    spec: &ChildSpec,
    target: &PortableTarget,
) -> Result<Popen, ProcessError> {
    let (parent_end, child_end) =
        sys::socketpair().map_err(|e| ProcessError::os("creating the child's socket", e))?;
    let pid = spawn_self(SPAWN_FLAG, child_end.as_raw_fd())?;
    drop(child_end);
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            abandon(pid);
            return Err(ProcessError::os("opening a pidfd for the child", e));
        }
    };
    let popen = Popen::direct(pid, pidfd);
    let parent_pidfd = current::self_pidfd(table)
        .map_err(|e| ProcessError::os("opening a pidfd for this process", e))?;
    if let Err(e) = payload::send(parent_end.as_fd(), spec, target, parent_pidfd.as_fd()) {
        // The child cannot run without its payload: end it and report.
        let _ = popen.send_signal(libc::SIGKILL);
        let _ = popen.wait(None);
        return Err(e);
    }
    Ok(popen)
}

/// Executes `/proc/self/exe flag <fd>` with `fd` inherited at the same
/// number; returns the child's pid.
pub(crate) fn spawn_self(flag: &str, fd: RawFd) -> Result<libc::pid_t, ProcessError> {
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("multiprocessing-child"));
    let args = [
        argv0.into_vec(),
        flag.as_bytes().to_vec(),
        fd.to_string().into_bytes(),
    ];
    let cargs: Vec<CString> = args
        .into_iter()
        .map(|a| {
            CString::new(a)
                .map_err(|_| ProcessError::os("argv", std::io::Error::other("NUL in argv[0]")))
        })
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut libc::c_char> = cargs.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let path = c"/proc/self/exe";

    let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
    // SAFETY: both objects are initialised here before any other use and
    // destroyed below; the pointers stay valid for the calls.
    unsafe {
        check(libc::posix_spawn_file_actions_init(actions.as_mut_ptr()))?;
        check(libc::posix_spawnattr_init(attr.as_mut_ptr()))?;
    }
    let result = (|| {
        // SAFETY: `actions` and `attr` were initialised above; `fd` is an
        // open descriptor; dup2 onto itself clears close-on-exec in the
        // child only (glibc ≥ 2.29, musl).
        unsafe {
            check(libc::posix_spawn_file_actions_adddup2(
                actions.as_mut_ptr(),
                fd,
                fd,
            ))?;
            let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(empty.as_mut_ptr());
            check(libc::posix_spawnattr_setsigmask(
                attr.as_mut_ptr(),
                empty.as_ptr(),
            ))?;
            check(libc::posix_spawnattr_setflags(
                attr.as_mut_ptr(),
                libc::POSIX_SPAWN_SETSIGMASK as libc::c_short,
            ))?;
        }
        let mut pid: libc::pid_t = 0;
        extern "C" {
            static environ: *const *mut libc::c_char;
        }
        // SAFETY: all pointers are valid NUL-terminated strings / arrays
        // that outlive the call; environ is the process environment.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv.as_ptr(),
                environ,
            )
        };
        check(rc)?;
        Ok(pid)
    })();
    // SAFETY: both were initialised above and are not used afterwards.
    unsafe {
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        libc::posix_spawnattr_destroy(attr.as_mut_ptr());
    }
    result
}

fn check(rc: libc::c_int) -> Result<(), ProcessError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(ProcessError::os(
            "starting a child process",
            std::io::Error::from_raw_os_error(rc),
        ))
    }
}

/// Kills and reaps a child we cannot track.
fn abandon(pid: libc::pid_t) {
    // SAFETY: `pid` is our unreaped child, so it cannot have been reused.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// Parses the descriptor argument of a re-executed child.
pub(crate) fn inherited_fd(arg: Option<OsString>) -> Result<OwnedFd, String> {
    let arg = arg.ok_or("missing descriptor argument")?;
    let fd: RawFd = arg
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd >= 0)
        .ok_or("bad descriptor argument")?;
    // SAFETY: F_GETFD only checks that the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("descriptor {fd} is not open"));
    }
    // SAFETY: the parent made this descriptor for us alone and nothing
    // else in this fresh process owns it; mark it close-on-exec again.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sets a flag on a descriptor we own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(owned)
}

/// The child's entry, from [`crate::init`].
pub(crate) fn child_main(arg: Option<OsString>) -> ! {
    match inherited_fd(arg) {
        Ok(sock) => payload::run_child(sock, None),
        Err(e) => {
            eprintln!(
                "multiprocessing: this process was started as a {} child but {e}",
                StartMethod::Spawn
            );
            std::process::exit(1)
        }
    }
}
