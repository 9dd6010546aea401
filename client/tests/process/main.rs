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

pub(crate) const LONG: Duration = Duration::from_secs(60);

mod cases;
mod helpers;
mod run_trait;
mod targets;

use cases::*;
use helpers::*;
use run_trait::*;
use targets::*;

type Test = fn(StartMethod);

const TESTS: &[(&str, Test)] = &[
    ("args_round_trip", args_round_trip),
    ("connection_to_child", connection_to_child),
    (
        "child_shares_resource_tracker",
        child_shares_resource_tracker,
    ),
    (
        "fork_while_another_thread_panics",
        fork_while_another_thread_panics,
    ),
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
    #[cfg(feature = "log")]
    ("logging_names_processes", logging_names_processes),
    (
        "forkserver_restarts_after_dying",
        forkserver_restarts_after_dying,
    ),
    ("a_run_type_runs_in_the_child", a_run_type_runs_in_the_child),
    (
        "a_run_type_takes_a_name_and_the_daemon_flag",
        a_run_type_takes_a_name_and_the_daemon_flag,
    ),
    (
        "a_run_types_result_is_the_exit_code",
        a_run_types_result_is_the_exit_code,
    ),
];

fn main() {
    multiprocessing::init();
    #[cfg(feature = "log")]
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
