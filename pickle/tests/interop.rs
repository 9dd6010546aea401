//! Interop with real CPython: every Python on this machine (3.11 and
//! newer) pickles a corpus in every protocol — scalars, containers,
//! proxies of a live `SyncManager`, tokens, exceptions, dataclasses and
//! other instances — and this crate reads each, writes it back, and the
//! same Python process loads the result and checks it equals the
//! original (and matches CPython's own bytes where CPython uses no memo).
//! Payloads that would run code are expected to be refused.
//!
//! The corpus and the checks live in `tests/python/interop.py`; this side
//! runs it as a coprocess and answers over its stdio.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mp_pickle::{
    dumps, read, Address, Limits, Make, Protocol, ProxyKind, Refusal, UnpicklingError, Value,
};

/// The Pythons to test with: `python3`, and pyenv's 3.11+.
fn pythons() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut candidates = vec![PathBuf::from("python3")];
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(Ok(dir)) = root.map(|r| std::fs::read_dir(r.join("versions"))) {
        let mut versions: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin").join("python3"))
            .collect();
        versions.sort();
        candidates.extend(versions);
    }
    let mut seen = BTreeSet::new();
    for python in candidates {
        let Ok(out) = Command::new(&python)
            .args([
                "-c",
                "import sys; print(sys.version_info >= (3, 11), sys.version.split()[0])",
            ])
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace();
        if out.status.success() && words.next() == Some("True") {
            // the same version twice (python3 is one of pyenv's) runs once
            if seen.insert(words.next().unwrap_or_default().to_owned()) {
                found.push(python);
            }
        }
    }
    found
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "Bool",
        Value::Int(_) => "Int",
        Value::BigInt(_) => "BigInt",
        Value::Float(_) => "Float",
        Value::Complex { .. } => "Complex",
        Value::Str(_) => "Str",
        Value::Bytes(_) => "Bytes",
        Value::ByteArray(_) => "ByteArray",
        Value::Tuple(_) => "Tuple",
        Value::List(_) => "List",
        Value::Dict(_) => "Dict",
        Value::Set(_) => "Set",
        Value::FrozenSet(_) => "FrozenSet",
        Value::Slice(_) => "Slice",
        Value::Range(_) => "Range",
        Value::Global(_) => "Global",
        Value::Token(_) => "Token",
        Value::Proxy(_) => "Proxy",
        Value::Exception(_) => "Exception",
        Value::Instance(_) => "Instance",
    }
}

/// Checks of what a few cases read as, beyond their kind.
fn check_detail(name: &str, proto: u8, v: &Value) -> Result<(), String> {
    let ok = match (name, v) {
        ("proxy_dict", Value::Proxy(p)) => {
            p.func == ProxyKind::DictProxy
                && p.token.typeid == "dict"
                && matches!(p.token.address, Address::Path(_))
                && p.serializer == "pickle"
        }
        ("proxy_queue", Value::Proxy(p)) => {
            p.func == ProxyKind::AutoProxy
                && p.token.typeid == "Queue"
                && p.kwds.iter().any(|(k, v)| {
                    k == "exposed"
                        && matches!(v, Value::Tuple(m) if m.contains(&Value::Str("put".into())))
                })
        }
        ("proxy_lock", Value::Proxy(p)) => p.func == ProxyKind::AcquirerProxy,
        ("proxy_tcp_dict", Value::Proxy(p)) => {
            matches!(&p.token.address, Address::Inet { host, port } if host == "127.0.0.1" && *port > 0)
        }
        ("token_tcp", Value::Token(t)) => {
            t.address
                == Address::Inet {
                    host: "127.0.0.1".into(),
                    port: 50000,
                }
                && t.id == "ab12"
        }
        ("exc_queue_empty", Value::Exception(e)) => {
            e.class.is("_queue", "Empty") && e.args.is_empty()
        }
        ("exc_key", Value::Exception(e)) => {
            e.class.is("builtins", "KeyError") && e.args == [Value::Str("k".into())]
        }
        ("exc_note", Value::Exception(e)) => {
            matches!(&e.state, Some(Value::Dict(d)) if d.iter().any(|(k, _)| *k == Value::Str("__notes__".into())))
        }
        ("dataclass", Value::Instance(i)) if proto >= 2 => {
            i.global.is("__main__", "Point")
                && i.make == Make::NewObj(vec![])
                && matches!(i.state, Some(Value::Dict(_)))
        }
        ("dataclass", Value::Instance(i)) => matches!(i.make, Make::Reconstructor { .. }),
        ("big", Value::BigInt(b)) => b.to_string() == "1267650600228229401496703205376",
        ("range_big", Value::Range(r)) => r.stop.to_string() == "1180591620717411303424",
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{name} p{proto}: read as {v:?}"))
    }
}

/// Checks that a refusal has the reason the case was built for.
fn check_refusal(name: &str, e: &UnpicklingError) -> Result<(), String> {
    let refused = |want: fn(&Refusal) -> bool, module: &str, global: &str| match e {
        UnpicklingError::Refused(r) if want(r) && r.global().is(module, global) => Ok(()),
        other => Err(format!("refused for the wrong reason: {other}")),
    };
    let forbidden = |r: &Refusal| matches!(r, Refusal::Forbidden(_));
    let not_callable = |r: &Refusal| matches!(r, Refusal::NotCallable(_));
    match name {
        "os_system" | "posix_system" => refused(forbidden, "posix", "system"),
        // protocols 0-2 name it by its Python 2 module
        "subprocess" => refused(forbidden, "subprocess", "Popen")
            .or_else(|_| refused(forbidden, "commands", "Popen")),
        "eval" => refused(forbidden, "builtins", "eval"),
        "exec" => refused(forbidden, "builtins", "exec"),
        "getattr" => refused(forbidden, "builtins", "getattr"),
        "partial" | "newargs_ex" => refused(forbidden, "functools", "partial"),
        "simple_namespace" => refused(forbidden, "types", "SimpleNamespace"),
        "enum_member" => refused(not_callable, "__main__", "Color"),
        "custom_exception" => refused(not_callable, "__main__", "MyError"),
        "user_function_call" => refused(not_callable, "__main__", "canon"),
        "user_class_itself" => refused(|r| matches!(r, Refusal::NotAValue(_)), "__main__", "Point"),
        "recursive" if *e == UnpicklingError::Recursive => Ok(()),
        _ => Err(format!("unexpected refusal: {e}")),
    }
}

fn run(python: &Path) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line == "END" {
            break;
        }
        let parts: Vec<&str> = line.splitn(5, ' ').collect();
        let ["CASE", name, proto, want, hex] = parts[..] else {
            return Err(format!("unexpected line from Python: {line:.200}"));
        };
        cases += 1;
        let proto: u8 = proto.parse().map_err(|_| "bad protocol")?;
        let data = unhex(hex);
        match read(&data, &Limits::default()) {
            Err(e) => {
                if let Err(why) = check_refusal(name, &e) {
                    failures.push(format!("{name} p{proto}: {why}"));
                }
                let msg = e.to_string().replace('\n', " ");
                answers.push(format!("REFUSED {name} {proto} {msg}"));
            }
            Ok(u) => {
                let declared = if proto >= 2 { proto } else { 0 };
                if u.protocol != declared {
                    failures.push(format!("{name} p{proto}: protocol read as {}", u.protocol));
                }
                if want != "refused" && kind(&u.value) != want {
                    failures.push(format!(
                        "{name} p{proto}: read a {}, expected {want}",
                        kind(&u.value)
                    ));
                }
                if let Err(e) = check_detail(name, proto, &u.value) {
                    failures.push(e);
                }
                let mut targets = vec![Protocol::for_reply(u.protocol)];
                if proto == 4 {
                    targets = vec![Protocol::V2, Protocol::V3, Protocol::V4, Protocol::V5];
                }
                for wp in targets {
                    match dumps(&u.value, wp) {
                        Ok(out) => answers.push(format!(
                            "BACK {name} {proto} {} {}",
                            wp.number(),
                            hex_of(&out)
                        )),
                        Err(e) => failures.push(format!(
                            "{name} p{proto}: cannot write p{}: {e}",
                            wp.number()
                        )),
                    }
                }
            }
        }
    }
    for a in &answers {
        writeln!(stdin, "{a}").map_err(|e| format!("writing to Python: {e}"))?;
    }
    drop(stdin);
    let report: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().map_err(|e| e.to_string())?;
    failures.extend(report.iter().filter(|l| l.starts_with("FAIL")).cloned());
    if cases == 0 {
        failures.push("Python sent no cases".into());
    }
    if !status.success() || !failures.is_empty() {
        return Err(format!(
            "{} ({status}):\n{}\n{}",
            python.display(),
            failures.join("\n"),
            report.join("\n")
        ));
    }
    Ok(format!(
        "{}: {cases} cases; {}",
        python.display(),
        report.join(" ")
    ))
}

#[test]
fn cpython_pickles_round_trip_through_the_codec() {
    let pythons = pythons();
    if pythons.is_empty() {
        eprintln!("SKIPPED: no python3 >= 3.11 found; the CPython interop test did not run");
        return;
    }
    let mut errors = Vec::new();
    for python in &pythons {
        match run(python) {
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
