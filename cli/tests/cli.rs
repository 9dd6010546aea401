//! The command line itself: help text, argument errors, exit codes. (The
//! server's behaviour is tested end to end in the workspace `tests/`.)

use std::process::Command;

fn mpserver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpserver"))
}

#[test]
fn help_reads_like_a_manual() {
    let out = mpserver().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for verb in [
        "serve",
        "ping",
        "status",
        "objects",
        "shutdown",
        "EXAMPLES",
        "EXIT STATUS",
    ] {
        assert!(text.contains(verb), "--help lacks {verb}:\n{text}");
    }
    let out = mpserver().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--unix",
        "--authkey-file",
        "--authkey-env",
        "--max-connections",
        "--max-frame-bytes",
        "--log-format",
        "--log-level",
        "serving at ADDR",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}:\n{text}");
    }
}

#[test]
fn bad_arguments_fail_cleanly() {
    let out = mpserver()
        .args(["serve", "--listen", "127.0.0.1:0", "--unix", "/tmp/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = mpserver()
        .args(["serve", "--authkey-file", "a", "--authkey-env", "B"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // An admin verb needs the key.
    let out = mpserver()
        .args(["ping", "--address", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--authkey-file"), "{err}");
    // A server that is not there is an error, not a hang.
    let out = mpserver()
        .args(["ping", "--address", "127.0.0.1:1", "--authkey-env", "PATH"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // A missing key file is reported by name.
    let out = mpserver()
        .args(["serve", "--authkey-file", "/nonexistent/key"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/key"));
}
