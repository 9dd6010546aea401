//! A process defined by a type implementing `Run` (Python's
//! `class Worker(Process): def run(self)`), made with
//! `Context::process_run` and `Process::from_run`, under every start
//! method: the value's fields reach the child, its result is the exit
//! code, and the name and daemon flag work as for any process.

use multiprocessing::Run;
use serde::{Deserialize, Serialize};

use super::*;

/// What Python keeps on `self`, set in `__init__`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Reporter {
    greeting: String,
    numbers: Vec<u32>,
    out: SharedFd,
}

impl Run for Reporter {
    type Output = std::io::Result<()>;

    fn run(self) -> Self::Output {
        let mut w = writer(self.out);
        let me = current_process();
        writeln!(
            w,
            "{}|{}|{}|{}|{}",
            self.greeting.to_uppercase(),
            self.numbers.iter().sum::<u32>(),
            me.name(),
            me.daemon(),
            std::env::args().nth(1).unwrap_or_default(),
        )
    }
}

fn reporter(out: SharedFd) -> Reporter {
    Reporter {
        greeting: "héllo".into(),
        numbers: vec![1, 2, 3],
        out,
    }
}

/// The first argument a child of `m` sees: the program's own under
/// `fork`, the re-execution flag under `spawn` and `forkserver`.
fn first_arg(m: StartMethod) -> String {
    match m {
        StartMethod::Fork => std::env::args().nth(1).unwrap_or_default(),
        StartMethod::Spawn => "--multiprocessing-fork".into(),
        StartMethod::Forkserver => "--multiprocessing-forkserver".into(),
    }
}

pub(crate) fn a_run_type_runs_in_the_child(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m).process_run(reporter(child_end));
    let name = p.name();
    assert!(
        name.starts_with("Reporter-"),
        "Python's subclass name: {name}"
    );
    assert_eq!(run(&p), 0);
    // The context's method started it (the default would be forkserver).
    assert_eq!(
        line(&mut r),
        format!("HÉLLO|6|{name}|false|{}", first_arg(m))
    );
    // The parent's copy of the value went at start.
    assert_eq!(line(&mut r), "", "the parent kept the child's descriptor");
}

pub(crate) fn a_run_type_takes_a_name_and_the_daemon_flag(m: StartMethod) {
    let (mut r, child_end) = channel();
    let p = get_context(m)
        .process_run(reporter(child_end))
        .with_name("reporter-7")
        .with_daemon(true);
    assert_eq!(run(&p), 0);
    assert!(p.to_string().contains("daemon"), "{p}");
    assert_eq!(
        line(&mut r),
        format!("HÉLLO|6|reporter-7|true|{}", first_arg(m))
    );
    // Without a context: the default start method (forkserver here,
    // since main called init()).
    let (mut r, child_end) = channel();
    let p = Process::from_run(reporter(child_end));
    assert_eq!(run(&p), 0);
    assert!(line(&mut r).starts_with("HÉLLO|6|Reporter-"));
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Fails {
    why: String,
}

impl Run for Fails {
    type Output = Result<(), String>;
    fn run(self) -> Self::Output {
        Err(self.why)
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ExitsWith(i32);

impl Run for ExitsWith {
    type Output = i32;
    fn run(self) -> i32 {
        self.0
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Panics;

impl Run for Panics {
    type Output = ();
    fn run(self) {
        panic!("deliberate panic in a Run type");
    }
}

pub(crate) fn a_run_types_result_is_the_exit_code(m: StartMethod) {
    let ctx = get_context(m);
    assert_eq!(
        run(&ctx.process_run(Fails {
            why: "deliberate error".into()
        })),
        1
    );
    assert_eq!(run(&ctx.process_run(ExitsWith(9))), 9);
    assert_eq!(run(&ctx.process_run(Panics)), 1);
}
