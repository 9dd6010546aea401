//! `mpserver serve`'s configuration with the real binary: flag >
//! `MPSERVER_…` variable > TOML file > default, as `--print-config` shows
//! it and as a running server obeys it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_tests::mpserver::binary;
use multiprocessing::managers::{ManagerClient, ManagerError};

/// `mpserver serve` with no `MPSERVER_…` variable from the test's own
/// environment, then `env` set.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("serve").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MPSERVER_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = args.to_vec();
    all.push("--print-config");
    serve(&all, env).output().unwrap()
}

/// The printed configuration: each key's TOML value and its origin
/// comment.
fn printed(out: &Output) -> Vec<(String, String, String)> {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    // It is a config file itself.
    let _: toml::Table = toml::from_str(&text).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (setting, origin) = l.split_once(" # ").unwrap();
            let (key, value) = setting.split_once(" = ").unwrap();
            (key.into(), value.trim().into(), origin.into())
        })
        .collect()
}

fn setting<'a>(lines: &'a [(String, String, String)], key: &str) -> (&'a str, &'a str) {
    lines
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, v, o)| (v.as_str(), o.as_str()))
        .unwrap_or_else(|| panic!("{key} not printed: {lines:?}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "mpserver.toml",
        "threads = 3\nmax-connections = 7\nmax-in-flight = 5\nlegacy-auth = true\n\
         unix = \"/tmp/from-file.sock\"\n",
    );
    let f = file.to_str().unwrap();
    let env = [
        ("MPSERVER_THREADS", "2"),
        ("MPSERVER_MAX_CONNECTIONS", "9"),
        ("MPSERVER_LOG_LEVEL", "debug"),
    ];
    let out = print_config(&["--config", f, "--threads", "1"], &env);
    let lines = printed(&out);
    assert_eq!(setting(&lines, "threads"), ("1", "flag --threads"));
    assert_eq!(
        setting(&lines, "max-connections"),
        ("9", "env MPSERVER_MAX_CONNECTIONS")
    );
    assert_eq!(
        setting(&lines, "log-level"),
        ("\"debug\"", "env MPSERVER_LOG_LEVEL")
    );
    assert_eq!(
        setting(&lines, "max-in-flight"),
        ("5", format!("file {f}").as_str())
    );
    assert_eq!(setting(&lines, "legacy-auth").0, "true");
    assert_eq!(setting(&lines, "keepalive"), ("30", "default"));
    assert_eq!(
        setting(&lines, "unix").0,
        "\"/tmp/from-file.sock\"",
        "the file's unix beats the default listen"
    );

    // A variable for one of two alternatives beats the file's other one.
    let out = print_config(&["--config", f], &[("MPSERVER_LISTEN", "127.0.0.1:7")]);
    let lines = printed(&out);
    assert_eq!(
        setting(&lines, "listen"),
        ("\"127.0.0.1:7\"", "env MPSERVER_LISTEN")
    );
    assert!(!lines.iter().any(|(k, _, _)| k == "unix"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("# unix (not used: `listen` is set)"),
        "{text}"
    );

    // Booleans from a variable read like booleans.
    let out = print_config(&[], &[("MPSERVER_LEGACY_AUTH", "yes")]);
    assert_eq!(
        setting(&printed(&out), "legacy-auth"),
        ("true", "env MPSERVER_LEGACY_AUTH")
    );
}

#[test]
fn the_config_file_comes_from_the_flag_or_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.toml", "max-in-flight = 11\n");
    let b = write(dir.path(), "b.toml", "max-in-flight = 22\n");
    let from_env = [("MPSERVER_CONFIG", a.to_str().unwrap())];
    let lines = printed(&print_config(&[], &from_env));
    assert_eq!(setting(&lines, "max-in-flight").0, "11");
    let lines = printed(&print_config(&["--config", b.to_str().unwrap()], &from_env));
    assert_eq!(setting(&lines, "max-in-flight").0, "22");

    // The example shipped in deploy/ is a valid file.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mpserver.example.toml");
    let e = example.to_str().unwrap();
    let lines = printed(&print_config(&["--config", e], &[]));
    assert_eq!(
        setting(&lines, "listen"),
        ("\"0.0.0.0:50000\"", format!("file {e}").as_str())
    );
    assert_eq!(setting(&lines, "log-format").0, "\"json\"");
}

#[test]
fn bad_configurations_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("max-conections = 3\n", "unknown setting `max-conections`"),
        ("threads = \"two\"\n", "bad value"),
        ("threads = \n", "not valid TOML"),
        (
            "authkey-file = \"/k\"\nauthkey-env = \"K\"\n",
            "cannot both be set",
        ),
    ];
    for (i, (text, expected)) in cases.into_iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), text);
        let out = serve(&["--config", file.to_str().unwrap()], &[])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    let out = serve(&["--config", "/nonexistent/mpserver.toml"], &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
    let out = serve(&[], &[("MPSERVER_MAX_CONNECTIONS", "many")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MPSERVER_MAX_CONNECTIONS"));
}

/// A server started in the background, killed when dropped.
struct Running(Child, String);

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let address = line.trim().strip_prefix("serving at ").unwrap().to_owned();
        Running(child, address)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_server_obeys_its_layers() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "authkey", "config-test-key\n");
    let file = write(
        dir.path(),
        "mpserver.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\nauthkey-file = \"{}\"\nmax-connections = 1\n",
            key.display()
        ),
    );
    let f = file.to_str().unwrap();
    let connect =
        |address: &str| ManagerClient::connect(&address.parse().unwrap(), b"config-test-key");

    // The file alone: its key, its limit of one connection.
    let server = Running::start(serve(&["--config", f], &[]));
    let first = connect(&server.1).unwrap();
    first.create("dict", vec![], Kwargs::new()).unwrap();
    let e = connect(&server.1).unwrap_err();
    assert!(matches!(e, ManagerError::Refused(_)), "{e}");
    drop(server);

    // A variable raises the limit over the file's.
    let server = Running::start(serve(
        &["--config", f],
        &[("MPSERVER_MAX_CONNECTIONS", "2")],
    ));
    let _first = connect(&server.1).unwrap();
    let _second = connect(&server.1).unwrap();
    assert!(matches!(connect(&server.1), Err(ManagerError::Refused(_))));
    drop(server);

    // A flag beats both.
    let server = Running::start(serve(
        &["--config", f, "--max-connections", "3"],
        &[("MPSERVER_MAX_CONNECTIONS", "2")],
    ));
    let _clients: Vec<_> = (0..3).map(|_| connect(&server.1).unwrap()).collect();
    assert!(matches!(connect(&server.1), Err(ManagerError::Refused(_))));
}
