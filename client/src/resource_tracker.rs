//! Cleans up named resources that a crashed process left behind (Python's
//! `multiprocessing.resource_tracker`).
//!
//! # Design
//!
//! The first time a process creates a named resource (a
//! [`SharedMemory`](crate::shared_memory::SharedMemory) segment), it forks a
//! small tracker process and keeps the write end of a pipe to it. Creating
//! a resource writes `REGISTER:<name>:shared_memory\n` to the pipe;
//! unlinking it writes `UNREGISTER:...`. Forked children inherit the write
//! end and so share the tracker, as in CPython. The descriptor is
//! close-on-exec, so the `spawn` and `forkserver` start methods hand the
//! child [`tracker_fd`] with its arguments and the child calls [`adopt`]
//! before running, as CPython's spawn does: what the child leaves is
//! cleaned up when the whole program ends rather than when the child does.
//! A process started some other way starts its own tracker when it first
//! needs one.
//!
//! When every process holding the write end has exited, by any means
//! including `SIGKILL`, the tracker reads end-of-file, unlinks every name
//! still registered, prints a warning to stderr for each one it removed,
//! and exits. A clean program that unlinks what it created leaves nothing
//! for it to do; one that forgets gets the warning and a clean `/dev/shm`.
//!
//! The tracker is forked from a process that may have other threads, so
//! until it exits it runs only system calls (read, unlink, write, mmap):
//! no allocator, no locks, no panics. It ignores `SIGINT` and `SIGTERM`
//! (a Ctrl-C in the terminal reaches the whole process group) so that it
//! outlives the program it cleans up after. Each message is one `write` of
//! at most 300 bytes, under `PIPE_BUF`, so writers never interleave.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use crate::reduction::SharedFd;

/// Write end of the tracker's pipe in this process, -1 before the first
/// registration. An atomic, not a Mutex, so a forked child never finds it
/// locked by a thread that did not survive the fork.
static TRACKER_FD: AtomicI32 = AtomicI32::new(-1);
/// Serialises starting the tracker between threads.
static STARTING: Mutex<()> = Mutex::new(());

/// Longest resource name accepted (`NAME_MAX`).
pub(crate) const MAX_NAME: usize = 255;

/// The kinds of named resource tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    /// A POSIX shared memory segment in `/dev/shm`.
    SharedMemory,
}

impl ResourceType {
    fn as_str(self) -> &'static str {
        match self {
            ResourceType::SharedMemory => "shared_memory",
        }
    }
}

/// Starts the tracker if this process has none; returns its pipe's write
/// descriptor.
pub fn ensure_running() -> io::Result<RawFd> {
    let fd = TRACKER_FD.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    let fd = TRACKER_FD.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    let fd = spawn_tracker()?;
    TRACKER_FD.store(fd, Ordering::Release);
    Ok(fd)
}

/// A duplicate of this process's tracker descriptor for a child that
/// cannot inherit it (spawn, forkserver); `None` if no tracker runs yet.
pub fn tracker_fd() -> io::Result<Option<SharedFd>> {
    let fd = TRACKER_FD.load(Ordering::Acquire);
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: fd is our open pipe end; dup'd with close-on-exec.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(Some(SharedFd::new(unsafe { OwnedFd::from_raw_fd(dup) })))
}

/// Makes `fd` (a parent's [`tracker_fd`]) this process's tracker, so that
/// it shares the parent's. Refused if this process already has one.
pub fn adopt(fd: SharedFd) -> io::Result<()> {
    let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    if TRACKER_FD.load(Ordering::Acquire) >= 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "this process already has a resource tracker",
        ));
    }
    TRACKER_FD.store(fd.into_inner().into_raw_fd(), Ordering::Release);
    Ok(())
}

/// Registers `name` for cleanup should this process (and every forked
/// child sharing its tracker) exit without unregistering it.
pub fn register(name: &str, rtype: ResourceType) -> io::Result<()> {
    send("REGISTER", name, rtype)
}

/// Forgets `name` (it was unlinked on purpose).
pub fn unregister(name: &str, rtype: ResourceType) -> io::Result<()> {
    send("UNREGISTER", name, rtype)
}

fn send(cmd: &str, name: &str, rtype: ResourceType) -> io::Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains(['\n', ':', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("resource name {name:?} cannot be tracked"),
        ));
    }
    let fd = ensure_running()?;
    let msg = format!("{cmd}:{name}:{}\n", rtype.as_str());
    // SAFETY: fd is our pipe's write end; msg is a live buffer.
    let n = unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to resource tracker",
        ));
    }
    Ok(())
}

fn spawn_tracker() -> io::Result<RawFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: the child runs only `tracker_main`, which makes system calls
    // and never returns, allocates, locks or panics.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = io::Error::last_os_error();
        // SAFETY: closing descriptors we just opened.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return Err(err);
    }
    if pid == 0 {
        tracker_main(read_fd);
    }
    // SAFETY: the parent's copy of the read end is not needed.
    unsafe { libc::close(read_fd) };
    Ok(write_fd)
}

/// The tracker process. Async-signal-safe only: see the module doc.
fn tracker_main(read_fd: RawFd) -> ! {
    // SAFETY: every call below is a plain system call on descriptors and
    // buffers this function owns; see each comment for the specifics.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        // Keep only stderr and our pipe: holding copies of the program's
        // other descriptors would keep its pipes and sockets from ever
        // reporting end-of-file.
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
        }
        let keep = if read_fd == 3 {
            3
        } else {
            libc::dup2(read_fd, 3)
        };
        if keep != 3 {
            libc::_exit(1);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    }
    let mut table = Table::new();
    let mut buf = [0u8; 4096];
    let mut line = [0u8; 512];
    let mut line_len = 0usize;
    let mut overlong = false;
    loop {
        // SAFETY: buf is a valid, writable buffer of its length.
        let n = unsafe { libc::read(3, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        for &b in buf.iter().take(n as usize) {
            if b == b'\n' {
                if !overlong {
                    if let Some(l) = line.get(..line_len) {
                        table.apply(l);
                    }
                }
                line_len = 0;
                overlong = false;
            } else if let Some(slot) = line.get_mut(line_len) {
                *slot = b;
                line_len += 1;
            } else {
                overlong = true;
            }
        }
    }
    table.cleanup();
    // SAFETY: ends the tracker without running any of the parent's
    // destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}

/// Registered names, in `mmap`ed slots (no allocator in the tracker).
struct Table {
    base: *mut u8,
    slots: usize,
    used: usize,
}

/// One slot: a length byte and the name.
const SLOT: usize = 1 + MAX_NAME;

impl Table {
    fn new() -> Table {
        Table {
            base: std::ptr::null_mut(),
            slots: 0,
            used: 0,
        }
    }

    fn slot(&self, i: usize) -> &[u8] {
        if i >= self.used {
            return &[];
        }
        // SAFETY: i < used <= slots; each slot is SLOT bytes of the mapping.
        let s = unsafe { std::slice::from_raw_parts(self.base.add(i * SLOT), SLOT) };
        let len = usize::from(s[0]).min(MAX_NAME);
        &s[1..1 + len]
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        (0..self.used).find(|&i| self.slot(i) == name)
    }

    fn grow(&mut self) -> bool {
        let new_slots = if self.slots == 0 { 64 } else { self.slots * 2 };
        // SAFETY: a fresh anonymous private mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                new_slots * SLOT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        if !self.base.is_null() {
            // SAFETY: copying the used slots of the old mapping into the
            // larger new one, then unmapping the old.
            unsafe {
                std::ptr::copy_nonoverlapping(self.base, p.cast::<u8>(), self.used * SLOT);
                libc::munmap(self.base.cast(), self.slots * SLOT);
            }
        }
        self.base = p.cast();
        self.slots = new_slots;
        true
    }

    /// Applies `REGISTER:<name>:<type>` or `UNREGISTER:<name>:<type>`.
    fn apply(&mut self, line: &[u8]) {
        let (register, rest) = if let Some(r) = line.strip_prefix(b"REGISTER:") {
            (true, r)
        } else if let Some(r) = line.strip_prefix(b"UNREGISTER:") {
            (false, r)
        } else {
            return;
        };
        let Some(rest) = rest.strip_suffix(b":shared_memory") else {
            return;
        };
        let name = rest;
        if name.is_empty() || name.len() > MAX_NAME || name.contains(&b'/') {
            return;
        }
        match (register, self.find(name)) {
            (true, Some(_)) => {}
            (true, None) => {
                if self.used == self.slots && !self.grow() {
                    return;
                }
                // SAFETY: used < slots after grow; the slot is ours.
                let s = unsafe {
                    std::slice::from_raw_parts_mut(self.base.add(self.used * SLOT), SLOT)
                };
                s[0] = name.len() as u8;
                s[1..1 + name.len()].copy_from_slice(name);
                self.used += 1;
            }
            (false, Some(i)) => {
                let last = self.used - 1;
                if i != last {
                    // SAFETY: both slots are within the used part and
                    // distinct.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            self.base.add(last * SLOT),
                            self.base.add(i * SLOT),
                            SLOT,
                        )
                    };
                }
                self.used = last;
            }
            (false, None) => {}
        }
    }

    /// Unlinks what is left and warns about each segment actually removed
    /// (one already gone was cleaned up by someone else).
    fn cleanup(&self) {
        let mut path = [0u8; 9 + MAX_NAME + 1];
        path[..9].copy_from_slice(b"/dev/shm/");
        let mut removed = 0usize;
        for i in 0..self.used {
            let name = self.slot(i);
            path[9..9 + name.len()].copy_from_slice(name);
            path[9 + name.len()] = 0;
            // SAFETY: path is NUL-terminated within its buffer.
            if unsafe { libc::unlink(path.as_ptr().cast()) } == 0 {
                removed += 1;
                let mut msg = [0u8; 400];
                let mut m = Writer::new(&mut msg);
                m.put(b"resource_tracker: unlinked leaked shared_memory object '/");
                m.put(name);
                m.put(b"' at shutdown\n");
                m.emit();
            }
        }
        if removed > 0 {
            let mut msg = [0u8; 200];
            let mut m = Writer::new(&mut msg);
            m.put(b"resource_tracker: There appear to have been ");
            m.num(removed);
            m.put(b" leaked shared_memory objects to clean up at shutdown\n");
            m.emit();
        }
    }
}

/// A message built in a stack buffer and written to stderr in one call.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn num(&mut self, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        let d = digits;
        self.put(&d[i..]);
    }

    fn emit(&self) {
        // SAFETY: writing our own buffer to stderr.
        unsafe { libc::write(2, self.buf.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_registers_unregisters_and_ignores_garbage() {
        let mut t = Table::new();
        for i in 0..100 {
            t.apply(format!("REGISTER:psm_{i}:shared_memory").as_bytes());
        }
        t.apply(b"REGISTER:psm_5:shared_memory");
        assert_eq!(t.used, 100);
        t.apply(b"UNREGISTER:psm_5:shared_memory");
        t.apply(b"UNREGISTER:psm_nope:shared_memory");
        t.apply(b"REGISTER:a/b:shared_memory");
        t.apply(b"REGISTER::shared_memory");
        t.apply(b"HELLO");
        t.apply(b"REGISTER:x:semaphore");
        assert_eq!(t.used, 99);
        assert!(t.find(b"psm_5").is_none());
        assert_eq!(t.find(b"psm_99").map(|i| t.slot(i)), Some(&b"psm_99"[..]));
    }

    proptest::proptest! {
        #[test]
        fn any_input_line_is_applied_without_panicking(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut t = Table::new();
            t.apply(&line);
            let mut reg = b"REGISTER:".to_vec();
            reg.extend_from_slice(&line);
            reg.extend_from_slice(b":shared_memory");
            t.apply(&reg);
            proptest::prop_assert!(t.used <= 1);
            for i in 0..t.used {
                proptest::prop_assert!(!t.slot(i).is_empty() && t.slot(i).len() <= MAX_NAME);
            }
        }
    }

    #[test]
    fn numbers_are_printed_without_allocating() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        w.num(0);
        w.put(b",");
        w.num(1234567);
        assert_eq!(&w.buf[..w.len], b"0,1234567");
    }

    #[test]
    fn names_that_would_break_the_protocol_are_refused() {
        assert!(register("a\nb", ResourceType::SharedMemory).is_err());
        assert!(register("a:b", ResourceType::SharedMemory).is_err());
        assert!(register("", ResourceType::SharedMemory).is_err());
    }
}
