//! End-to-end tests of `Process` under every start method, with real child
//! processes. A `harness = false` target: its `main` calls
//! `multiprocessing::init()` first, so `spawn` and `forkserver` children
//! (which re-execute this binary) are dispatched before the runner starts.
//!
//! Usage like libtest: `cargo test -p multiprocessing --test process [FILTER]`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use multiprocessing::process::Sentinel;
use multiprocessing::reduction::SharedFd;
use multiprocessing::{
    active_children, current_process, get_context, parent_process, Process, ProcessError,
    StartMethod,
};

const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// A socket pair: our end, and the child's end ready to pass as an argument.
fn channel() -> (BufReader<UnixStream>, SharedFd) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(LONG)).unwrap();
    (BufReader::new(a), SharedFd::new(OwnedFd::from(b)))
}

fn writer(fd: SharedFd) -> UnixStream {
    UnixStream::from(fd.into_inner())
}

fn line(r: &mut BufReader<UnixStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s.trim_end().to_string()
}

fn run(p: &Process) -> i32 {
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap(), "child did not finish: {p}");
    p.exitcode().unwrap().unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Zombie processes whose parent is `ppid`.
fn zombies_of(ppid: u32) -> Vec<u32> {
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
fn forkservers() -> Vec<u32> {
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

fn pid_alive(pid: u32) -> bool {
    // Signal 0 checks existence; a zombie still exists, so look at /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..6000 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

// ---------------------------------------------------------------- targets

fn echo_args(n: i64, s: String, v: Vec<u32>, out: SharedFd) {
    let mut w = writer(out);
    let sum: u32 = v.iter().sum();
    writeln!(w, "{}|{}|{}", n * 2, s.to_uppercase(), sum).unwrap();
}

fn no_args() {}

fn panics() {
    panic!("deliberate panic in the child");
}

fn fails() -> Result<(), String> {
    Err("deliberate error".into())
}

fn exits_with(code: i32) -> i32 {
    code
}

fn raises(signal: i32) {
    // SAFETY: raising a signal on ourselves.
    unsafe { libc::raise(signal) };
    std::thread::sleep(LONG);
}

fn sleeps(out: SharedFd) {
    let mut w = writer(out);
    writeln!(w, "ready").unwrap();
    std::thread::sleep(LONG);
}

fn report_identity(out: SharedFd) {
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn nested(method: StartMethod, out: SharedFd) -> Result<(), ProcessError> {
    let (mut r, child_end) = channel();
    let p = get_context(method).process(report_identity, (child_end,));
    p.start()?;
    let report = line(&mut r);
    p.join()?;
    let mut w = writer(out);
    writeln!(w, "{}|{}|{report}", p.name(), p.exitcode()?.unwrap_or(-999)).unwrap();
    Ok(())
}

fn daemon_tries_child(method: StartMethod, out: SharedFd) {
    let p = get_context(method).process(no_args, ());
    let mut w = writer(out);
    match p.start() {
        Err(ProcessError::DaemonChildren) => writeln!(w, "refused").unwrap(),
        other => writeln!(w, "unexpected: {other:?}").unwrap(),
    }
}

/// Starts a daemon that sleeps, reports its pid, then dies abruptly.
fn abrupt_parent(method: StartMethod, out: SharedFd) {
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
fn orderly_parent(method: StartMethod, out: SharedFd) {
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
fn pong(out: SharedFd) {
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
fn parent_with_thread(method: StartMethod, out: SharedFd) {
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

fn logs_child(n: u32) {
    multiprocessing::get_logger().info(format!("hello {n} from the child"));
}

/// Run in a separate process by `logging_names_processes`.
fn logging_scenario() {
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
    // Left running: joined by the exit hook, which logs it.
    get_context(StartMethod::Fork)
        .process(no_args, ())
        .start()
        .unwrap();
}

// ---------------------------------------------------------------- tests

fn args_round_trip(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(
        echo_args,
        (21i64, "héllo".to_string(), vec![1u32, 2, 3], child_end),
    );
    assert_eq!(run(&p), 0);
    assert_eq!(line(&mut r), "42|HÉLLO|6");
}

fn exit_codes(m: StartMethod) {
    let ctx = get_context(m);
    assert_eq!(run(&ctx.process(no_args, ())), 0);
    assert_eq!(run(&ctx.process(panics, ())), 1);
    assert_eq!(run(&ctx.process(fails, ())), 1);
    assert_eq!(run(&ctx.process(exits_with, (7,))), 7);
    assert_eq!(run(&ctx.process(raises, (libc::SIGUSR1,))), -libc::SIGUSR1);
    let p = ctx.process(raises, (libc::SIGKILL,));
    assert_eq!(run(&p), -9);
    assert!(p.to_string().contains("stopped exitcode=-SIGKILL"), "{p}");
}

fn identity_and_parent(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(report_identity, (child_end,));
    let expected_name = p.name();
    assert!(expected_name.starts_with("Process-"), "{expected_name}");
    assert_eq!(run(&p), 0);
    let report = line(&mut r);
    let parts: Vec<&str> = report.split('|').collect();
    assert_eq!(parts[0], expected_name);
    assert_eq!(parts[1], p.pid().unwrap().unwrap().to_string());
    assert_eq!(parts[2], "MainProcess");
    assert_eq!(parts[3], std::process::id().to_string());
    assert_eq!(parts[4], "true");
    assert_eq!(parts[5], hex(current_process().authkey().as_bytes()));

    let (mut r, child_end) = channel();
    let p = get_context(m).process(report_identity, (child_end,));
    p.set_authkey(b"key".to_vec()).unwrap();
    assert_eq!(run(&p), 0);
    assert!(line(&mut r).ends_with("|6b6579"));
}

fn nested_processes(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(nested, (m, child_end));
    let outer = p.name();
    assert_eq!(run(&p), 0);
    let report = line(&mut r);
    let parts: Vec<&str> = report.split('|').collect();
    // The grandchild's name extends the child's identity.
    let suffix = outer.trim_start_matches("Process-");
    assert_eq!(parts[0], format!("Process-{suffix}:1"));
    assert_eq!(parts[1], "0");
    assert_eq!(parts[2], parts[0]);
    assert_eq!(parts[4], outer);
    assert_eq!(parts[5], p.pid().unwrap().unwrap().to_string());
}

fn terminate_sleeping_child(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(sleeps, (child_end,));
    p.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    assert!(p.is_alive().unwrap());
    assert_eq!(p.exitcode().unwrap(), None);
    assert!(!p.join_timeout(Duration::from_millis(1)).unwrap());
    p.terminate().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGTERM));
    assert!(!p.is_alive().unwrap());
    // Terminating a finished process does nothing.
    p.terminate().unwrap();

    let (mut r, child_end) = channel();
    let p = get_context(m).process(sleeps, (child_end,));
    p.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGKILL));
}

fn sentinel_is_pollable(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(sleeps, (child_end,));
    assert!(matches!(p.sentinel(), Err(ProcessError::NotStarted)));
    p.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    let s: Sentinel = p.sentinel().unwrap();
    assert!(!readable(&s, 0));
    p.terminate().unwrap();
    assert!(readable(&s, 60_000));
    // Once the sentinel is ready, the exit code is known without waiting.
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGTERM));
}

fn readable(fd: &impl AsFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
}

fn many_processes_no_leaks(m: StartMethod) {
    // Warm up (the forkserver and the parent's pidfd are opened once).
    assert_eq!(run(&get_context(m).process(no_args, ())), 0);
    let before = open_fds();
    let ctx = get_context(m);
    let procs: Vec<Process> = (0..200).map(|_| ctx.process(no_args, ())).collect();
    for p in &procs {
        p.start().unwrap();
    }
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode().unwrap(), Some(0));
    }
    drop(procs);
    assert_eq!(open_fds(), before, "descriptors leaked");
    assert!(zombies_of(std::process::id()).is_empty(), "zombies left");
    for server in forkservers() {
        // The server reaps its children before reporting their codes.
        assert!(zombies_of(server).is_empty(), "forkserver left zombies");
    }
    assert!(active_children().is_empty());
}

fn active_children_reaps(m: StartMethod) {
    let (mut r, child_end) = channel();
    let sleeper = get_context(m).process(sleeps, (child_end,));
    sleeper.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    let quick = get_context(m).process(no_args, ());
    quick.start().unwrap();
    let quick_pid = quick.pid().unwrap().unwrap();
    drop(quick);
    assert!(wait_until(|| {
        let kids = active_children();
        kids.len() == 1 && !pid_alive(quick_pid)
    }));
    assert_eq!(active_children()[0].pid().unwrap(), sleeper.pid().unwrap());
    sleeper.kill().unwrap();
    sleeper.join().unwrap();
    assert!(active_children().is_empty());
}

fn typed_errors(m: StartMethod) {
    let ctx = get_context(m);
    let p = ctx.process(no_args, ());
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.terminate(), Err(ProcessError::NotStarted)));
    assert!(p.to_string().contains(" initial"), "{p}");
    assert_eq!(run(&p), 0);
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    assert!(matches!(
        p.set_daemon(true),
        Err(ProcessError::AlreadyRunning(_))
    ));
    p.close().unwrap();
    assert!(matches!(p.is_alive(), Err(ProcessError::Closed)));
    assert!(matches!(p.exitcode(), Err(ProcessError::Closed)));
    assert!(matches!(p.join(), Err(ProcessError::Closed)));
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    assert!(p.to_string().contains(" closed"), "{p}");

    assert!(matches!(
        current_process().join(),
        Err(ProcessError::JoinSelf)
    ));
    assert!(matches!(
        current_process().start(),
        Err(ProcessError::AlreadyStarted)
    ));

    let (mut r, child_end) = channel();
    let running = ctx.process(sleeps, (child_end,));
    running.start().unwrap();
    assert_eq!(line(&mut r), "ready");
    assert!(matches!(running.close(), Err(ProcessError::StillRunning)));
    let shown = running.to_string();
    assert!(
        shown.starts_with(&format!(
            "<Process name='{}' pid={} parent={} started",
            running.name(),
            running.pid().unwrap().unwrap(),
            std::process::id()
        )),
        "{shown}"
    );
    running.kill().unwrap();
    running.join().unwrap();

    let closure = ctx.process_fn(|| ());
    match m {
        StartMethod::Fork => assert_eq!(run(&closure), 0),
        _ => assert!(matches!(
            closure.start(),
            Err(ProcessError::TargetNotPortable { .. })
        )),
    }
}

fn daemon_rules(m: StartMethod) {
    let (mut r, child_end) = channel();
    let d = get_context(m)
        .process(daemon_tries_child, (m, child_end))
        .with_daemon(true);
    assert!(d.daemon());
    assert_eq!(run(&d), 0);
    assert_eq!(line(&mut r), "refused");
    assert!(d.to_string().ends_with(" daemon>"), "{d}");
}

fn daemon_dies_with_abrupt_parent(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(abrupt_parent, (m, child_end));
    assert_eq!(run(&p), -libc::SIGKILL);
    let daemon: u32 = line(&mut r).parse().unwrap();
    assert!(
        wait_until(|| !pid_alive(daemon)),
        "daemon {daemon} outlived its parent"
    );
}

fn daemon_terminated_at_exit(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(orderly_parent, (m, child_end));
    assert_eq!(run(&p), 0);
    let daemon: u32 = line(&mut r).parse().unwrap();
    // The parent's exit terminated (and joined) it before the parent
    // finished, so it is gone by now.
    assert!(
        !pid_alive(daemon),
        "daemon {daemon} survived its parent's exit"
    );
}

fn daemon_outlives_its_starting_thread(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(parent_with_thread, (m, child_end));
    assert_eq!(run(&p), -libc::SIGKILL);
    let report = line(&mut r);
    let (answer, daemon) = report.split_once('|').unwrap();
    assert_eq!(
        answer, "pong",
        "the daemon died with the thread that started it"
    );
    let daemon: u32 = daemon.parse().unwrap();
    assert!(
        wait_until(|| !pid_alive(daemon)),
        "daemon {daemon} outlived its parent"
    );
}

fn logging_names_processes(m: StartMethod) {
    if m != StartMethod::Fork {
        return; // the scenario covers every method at once
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("MP_TEST_SCENARIO", "logging")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "[INFO/MainProcess] hello from the parent",
        "[INFO/Process-1] child process calling self.run()",
        "[INFO/Process-1] hello 0 from the child",
        "[INFO/Process-1] process exiting with exitcode 0",
        "[INFO/Process-2] hello 1 from the child",
        "[INFO/Process-3] child process calling self.run()",
        "[INFO/Process-3] hello 2 from the child",
        "[INFO/MainProcess] process shutting down",
        "[INFO/MainProcess] calling join() for process Process-4",
    ] {
        assert!(
            err.lines().any(|l| l == expected),
            "missing {expected:?} in:\n{err}"
        );
    }
}

fn fork_runs_capturing_closures(m: StartMethod) {
    if m != StartMethod::Fork {
        return;
    }
    let (mut r, child_end) = channel();
    let data = [String::from("a"), String::from("b")];
    // Under init() the default is forkserver: a closure needs a fork context.
    let p = Process::from_fn(|| ());
    assert!(matches!(
        p.start(),
        Err(ProcessError::TargetNotPortable { .. })
    ));
    let p = get_context(StartMethod::Fork).process_fn(move || {
        let mut w = writer(child_end);
        writeln!(w, "{}", data.join("+")).unwrap();
    });
    let p = p.with_name("closure");
    assert_eq!(run(&p), 0);
    assert_eq!(line(&mut r), "a+b");
}

// ---------------------------------------------------------------- runner

type Test = fn(StartMethod);

const TESTS: &[(&str, Test)] = &[
    ("args_round_trip", args_round_trip),
    ("exit_codes", exit_codes),
    ("identity_and_parent", identity_and_parent),
    ("nested_processes", nested_processes),
    ("terminate_sleeping_child", terminate_sleeping_child),
    ("sentinel_is_pollable", sentinel_is_pollable),
    ("many_processes_no_leaks", many_processes_no_leaks),
    ("active_children_reaps", active_children_reaps),
    ("typed_errors", typed_errors),
    ("daemon_rules", daemon_rules),
    (
        "daemon_dies_with_abrupt_parent",
        daemon_dies_with_abrupt_parent,
    ),
    ("daemon_terminated_at_exit", daemon_terminated_at_exit),
    ("fork_runs_capturing_closures", fork_runs_capturing_closures),
    (
        "daemon_outlives_its_starting_thread",
        daemon_outlives_its_starting_thread,
    ),
    ("logging_names_processes", logging_names_processes),
];

fn main() {
    multiprocessing::init();
    if std::env::var("MP_TEST_SCENARIO").as_deref() == Ok("logging") {
        logging_scenario();
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        for (name, test) in TESTS {
            let full = format!("{m}::{name}");
            if !filters.is_empty() && !filters.iter().any(|f| full.contains(f.as_str())) {
                continue;
            }
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| test(m)));
            match outcome {
                Ok(()) => {
                    passed += 1;
                    println!("test {full} ... ok");
                }
                Err(_) => {
                    println!("test {full} ... FAILED");
                    failed.push(full);
                }
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        for f in &failed {
            println!("    {f}");
        }
        std::process::exit(101);
    }
}
