//! The test cases, each run once per start method.

use super::*;
pub(crate) fn args_round_trip(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(
        echo_args,
        (21i64, "héllo".to_string(), vec![1u32, 2, 3], child_end),
    );
    assert_eq!(run(&p), 0);
    assert_eq!(line(&mut r), "42|HÉLLO|6");
    // The parent dropped its copy of the arguments at start: with the
    // child gone, nobody holds the other end any more.
    assert_eq!(line(&mut r), "", "the parent kept the child's descriptor");
}

pub(crate) fn exit_codes(m: StartMethod) {
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

pub(crate) fn identity_and_parent(m: StartMethod) {
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

pub(crate) fn nested_processes(m: StartMethod) {
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

pub(crate) fn terminate_sleeping_child(m: StartMethod) {
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

pub(crate) fn sentinel_is_pollable(m: StartMethod) {
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

pub(crate) fn readable(fd: &impl AsFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
}

pub(crate) fn many_processes_no_leaks(m: StartMethod) {
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

pub(crate) fn active_children_reaps(m: StartMethod) {
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

pub(crate) fn typed_errors(m: StartMethod) {
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

pub(crate) fn daemon_rules(m: StartMethod) {
    let (mut r, child_end) = channel();
    let d = get_context(m)
        .process(daemon_tries_child, (m, child_end))
        .with_daemon(true);
    assert!(d.daemon());
    assert_eq!(run(&d), 0);
    assert_eq!(line(&mut r), "refused");
    assert!(d.to_string().ends_with(" daemon>"), "{d}");
}

pub(crate) fn daemon_dies_with_abrupt_parent(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process(abrupt_parent, (m, child_end));
    assert_eq!(run(&p), -libc::SIGKILL);
    let daemon: u32 = line(&mut r).parse().unwrap();
    assert!(
        wait_until(|| !pid_alive(daemon)),
        "daemon {daemon} outlived its parent"
    );
}

pub(crate) fn daemon_terminated_at_exit(m: StartMethod) {
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

pub(crate) fn daemon_outlives_its_starting_thread(m: StartMethod) {
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

#[cfg(feature = "log")]
pub(crate) fn logging_names_processes(m: StartMethod) {
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

pub(crate) fn fork_runs_capturing_closures(m: StartMethod) {
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

pub(crate) fn forkserver_restarts_after_dying(m: StartMethod) {
    if m != StartMethod::Forkserver {
        return;
    }
    assert_eq!(run(&get_context(m).process(no_args, ())), 0);
    let servers = forkservers();
    assert_eq!(servers.len(), 1, "{servers:?}");
    // SAFETY: killing our own forkserver child.
    unsafe { libc::kill(servers[0] as libc::pid_t, libc::SIGKILL) };
    assert!(wait_until(|| !pid_alive(servers[0])));
    assert_eq!(run(&get_context(m).process(no_args, ())), 0);
    let now = forkservers();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], servers[0]);
    assert!(
        zombies_of(std::process::id()).is_empty(),
        "the dead server was not reaped"
    );
}

/// A `Connection` handed to a child as an argument works there, and the
/// parent's end sees EOF once the child is gone.
pub(crate) fn connection_to_child(m: StartMethod) {
    let (mut ours, theirs) = get_context(m).pipe(true).unwrap();
    let p = get_context(m).process(pipe_echo, (theirs,));
    p.start().unwrap();
    ours.send(&(41i64, "abc".to_string())).unwrap();
    let back: (i64, String) = ours.recv().unwrap();
    assert_eq!(back, (42, "ABC".to_string()));
    ours.send_bytes(b"xyz").unwrap();
    assert_eq!(ours.recv_bytes(None).unwrap(), b"zyx");
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(0));
    assert!(matches!(
        ours.recv::<i64>(),
        Err(multiprocessing::connection::ConnectionError::Eof)
    ));
}

/// A child of every start method shares its parent's resource tracker, so
/// a segment it leaves is cleaned up when the program ends, not when the
/// child does.
pub(crate) fn child_shares_resource_tracker(m: StartMethod) {
    multiprocessing::resource_tracker::ensure_running().unwrap();
    let ours = multiprocessing::resource_tracker::tracker_fd()
        .unwrap()
        .expect("the tracker runs");
    let (mut r, child_end) = channel();
    assert_eq!(
        run(&get_context(m).process(report_tracker, (child_end,))),
        0
    );
    assert_eq!(line(&mut r), pipe_identity(&ours));
}

/// A child forked while another thread of the parent is inside a panic
/// hook starts and runs: it never takes the hook's lock, which it inherits
/// held.
pub(crate) fn fork_while_another_thread_panics(m: StartMethod) {
    use std::sync::mpsc;
    // Installs the crate's hook (on the first start) before ours wraps it.
    assert_eq!(run(&get_context(m).process(no_args, ())), 0);
    let parent = std::process::id();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let leave_rx = std::sync::Mutex::new(leave_rx);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |_| {
        // Only the parent's panicking thread blocks, holding the hook lock.
        if std::process::id() == parent {
            let _ = entered_tx.lock().unwrap().send(());
            let _ = leave_rx.lock().unwrap().recv_timeout(LONG);
        }
    }));
    let panicking = std::thread::spawn(|| panic!("held inside the hook"));
    entered_rx.recv_timeout(LONG).unwrap();
    let p = get_context(m).process(panics, ());
    p.start().unwrap();
    let finished = p.join_timeout(LONG).unwrap();
    leave_tx.send(()).unwrap();
    assert!(panicking.join().is_err());
    std::panic::set_hook(previous);
    assert!(finished, "the child hung: {p}");
    assert_eq!(p.exitcode().unwrap(), Some(1));
}
