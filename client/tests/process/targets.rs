//! The functions children run (`fn` items, so every start method can find them).

use super::*;
pub(crate) fn echo_args(n: i64, s: String, v: Vec<u32>, out: SharedFd) {
    let mut w = writer(out);
    let sum: u32 = v.iter().sum();
    writeln!(w, "{}|{}|{}", n * 2, s.to_uppercase(), sum).unwrap();
}

pub(crate) fn no_args() {}

pub(crate) fn panics() {
    panic!("deliberate panic in the child");
}

pub(crate) fn fails() -> Result<(), String> {
    Err("deliberate error".into())
}

pub(crate) fn exits_with(code: i32) -> i32 {
    code
}

pub(crate) fn raises(signal: i32) {
    // SAFETY: raising a signal on ourselves.
    unsafe { libc::raise(signal) };
    std::thread::sleep(LONG);
}

pub(crate) fn sleeps(out: SharedFd) {
    let mut w = writer(out);
    writeln!(w, "ready").unwrap();
    std::thread::sleep(LONG);
}

pub(crate) fn report_identity(out: SharedFd) {
    let mut w = writer(out);
    let me = current_process();
    let parent = parent_process().expect("a child has a parent");
    writeln!(
        w,
        "{}|{}|{}|{}|{}|{}",
        me.name(),
        me.pid().unwrap().unwrap(),
        parent.name(),
        parent.pid().unwrap().unwrap(),
        parent.is_alive().unwrap(),
        hex(me.authkey().as_bytes()),
    )
    .unwrap();
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn nested(method: StartMethod, out: SharedFd) -> Result<(), ProcessError> {
    let (mut r, child_end) = channel();
    let p = get_context(method).process(report_identity, (child_end,));
    p.start()?;
    let report = line(&mut r);
    p.join()?;
    let mut w = writer(out);
    writeln!(w, "{}|{}|{report}", p.name(), p.exitcode()?.unwrap_or(-999)).unwrap();
    Ok(())
}

pub(crate) fn daemon_tries_child(method: StartMethod, out: SharedFd) {
    let p = get_context(method).process(no_args, ());
    let mut w = writer(out);
    match p.start() {
        Err(ProcessError::DaemonChildren) => writeln!(w, "refused").unwrap(),
        other => writeln!(w, "unexpected: {other:?}").unwrap(),
    }
}

/// Starts a daemon that sleeps, reports its pid, then dies abruptly.
pub(crate) fn abrupt_parent(method: StartMethod, out: SharedFd) {
    let (mut r, child_end) = channel();
    let d = get_context(method)
        .process(sleeps, (child_end,))
        .with_daemon(true);
    d.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    let mut w = writer(out);
    writeln!(w, "{}", d.pid().unwrap().unwrap()).unwrap();
    // SAFETY: ends this process at once, as a crash would.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Starts a daemon and a normal child, then returns: the daemon must be
/// terminated and the normal child joined at exit.
pub(crate) fn orderly_parent(method: StartMethod, out: SharedFd) {
    let (mut r, child_end) = channel();
    let d = get_context(method)
        .process(sleeps, (child_end,))
        .with_daemon(true);
    d.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    let mut w = writer(out);
    writeln!(w, "{}", d.pid().unwrap().unwrap()).unwrap();
}

/// Serves pings until the peer closes.
pub(crate) fn pong(out: SharedFd) {
    let mut r = BufReader::new(writer(out));
    writeln!(r.get_mut(), "ready").unwrap();
    let mut s = String::new();
    while r.read_line(&mut s).unwrap_or(0) > 0 {
        writeln!(r.get_mut(), "pong").unwrap();
        s.clear();
    }
    std::thread::sleep(LONG);
}

/// Starts a daemon from a thread that then exits: the daemon must survive
/// the thread (a death signal tied to it would kill it) but not this
/// process, which then dies abruptly.
pub(crate) fn parent_with_thread(method: StartMethod, out: SharedFd) {
    let (mut r, child_end) = channel();
    let (d, mut r) = std::thread::spawn(move || {
        let d = get_context(method)
            .process(pong, (child_end,))
            .with_daemon(true);
        d.start().unwrap();
        // The daemon has set up its lifeline once it is ready: only then
        // may the thread end, or the test would not test anything.
        assert_eq!(line(&mut r), "ready");
        (d, r)
    })
    .join()
    .unwrap();
    // Once the thread is fully gone, any death signal tied to it is sent.
    assert!(wait_until(|| std::fs::read_dir("/proc/self/task")
        .unwrap()
        .count()
        == 1));
    writeln!(r.get_mut(), "ping").unwrap();
    let mut w = writer(out);
    writeln!(w, "{}|{}", line(&mut r), d.pid().unwrap().unwrap()).unwrap();
    // SAFETY: ends this process at once, as a crash would.
    unsafe { libc::raise(libc::SIGKILL) };
}

#[cfg(feature = "log")]
pub(crate) fn logs_child(n: u32) {
    multiprocessing::get_logger().info(format!("hello {n} from the child"));
}

/// Run in a separate process by `logging_names_processes`.
#[cfg(feature = "log")]
pub(crate) fn logging_scenario() {
    multiprocessing::log_to_stderr(multiprocessing::log::Level::Info).unwrap();
    multiprocessing::get_logger().info("hello from the parent");
    for (i, m) in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ]
    .into_iter()
    .enumerate()
    {
        let p = get_context(m).process(logs_child, (i as u32,));
        p.start().unwrap();
        p.join().unwrap();
    }
    // Left running: joined by the exit hook, which logs it. It naps so it
    // is still running when the hook looks (a finished child is reaped
    // silently, as in Python).
    get_context(StartMethod::Fork)
        .process(naps, (2000u64,))
        .start()
        .unwrap();
}

#[cfg(feature = "log")]
pub(crate) fn naps(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

pub(crate) fn pipe_echo(conn: multiprocessing::Connection) -> Result<(), String> {
    let mut conn = conn;
    let (n, text): (i64, String) = conn.recv().map_err(|e| e.to_string())?;
    conn.send(&(n + 1, text.to_uppercase()))
        .map_err(|e| e.to_string())?;
    let bytes = conn.recv_bytes(None).map_err(|e| e.to_string())?;
    conn.send_bytes(&bytes.iter().rev().copied().collect::<Vec<u8>>())
        .map_err(|e| e.to_string())
}

/// Writes the identity (device, inode) of this process's resource tracker
/// pipe, or `none` if it has none.
pub(crate) fn report_tracker(out: SharedFd) {
    let mut w = writer(out);
    match multiprocessing::resource_tracker::tracker_fd().unwrap() {
        Some(fd) => writeln!(w, "{}", pipe_identity(&fd)).unwrap(),
        None => writeln!(w, "none").unwrap(),
    }
}
