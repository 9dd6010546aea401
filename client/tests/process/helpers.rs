//! Helpers: channels to children, descriptor and zombie counting.

use super::*;
/// A socket pair: our end, and the child's end ready to pass as an argument.
pub(crate) fn channel() -> (BufReader<UnixStream>, SharedFd) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(LONG)).unwrap();
    (BufReader::new(a), SharedFd::new(OwnedFd::from(b)))
}

pub(crate) fn writer(fd: SharedFd) -> UnixStream {
    UnixStream::from(fd.into_inner())
}

pub(crate) fn line(r: &mut BufReader<UnixStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s.trim_end().to_string()
}

pub(crate) fn run(p: &Process) -> i32 {
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap(), "child did not finish: {p}");
    p.exitcode().unwrap().unwrap()
}

pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Zombie processes whose parent is `ppid`.
pub(crate) fn zombies_of(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, …
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let parent = fields.next().and_then(|p| p.parse::<u32>().ok());
        if state == Some("Z") && parent == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Children of ours that are forkservers.
pub(crate) fn forkservers() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_owned));
        if ppid.as_deref() == Some(&me.to_string())
            && cmd
                .split(|b| *b == 0)
                .any(|a| a == b"--multiprocessing-forkserver")
        {
            out.push(pid);
        }
    }
    out
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    // Signal 0 checks existence; a zombie still exists, so look at /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub(crate) fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..6000 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// `device:inode` of the file behind `fd`: the same for every descriptor of
/// one pipe, in any process.
pub(crate) fn pipe_identity(fd: &impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `stat` is valid, and fstat fills it for a live fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is borrowed for the call; st is a live buffer.
    assert_eq!(unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) }, 0);
    format!("{}:{}", st.st_dev, st.st_ino)
}
