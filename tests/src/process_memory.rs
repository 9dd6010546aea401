//! A server process's memory, read and capped from outside: its peak
//! resident memory and address space from `/proc/PID/status`, and an
//! address-space limit (`RLIMIT_AS`) set on it, so that a memory
//! regression aborts the server under test rather than exhausting the
//! machine.

/// `VmHWM` (peak resident memory) of `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// `VmSize` (address space) of `pid`, in bytes.
pub fn address_space(pid: u32) -> u64 {
    status_kib(pid, "VmSize:") * 1024
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} line"))
}

/// Whether `pid` still runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| !state.trim_start().starts_with('Z'))
    })
}

/// Caps the server's address space, so that a regression that encodes
/// an answer per unread request aborts the server (failing the test)
/// instead of exhausting the machine.
pub fn limit_address_space(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: prlimit(2) on our own child with a valid rlimit; the old
    // limit is not asked for (null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_AS,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}
