//! `mp-bench tls`: what TLS costs a manager connection — the same work
//! against the same release `mpserver`, once over TLS and once over plain
//! TCP, in one run. (CPython's managers have no TLS to compare with.)
//!
//! * `tls.dict_get`: `d["k"]` round trips per second, one client.
//! * `tls.dict_set_1MiB`: `d["k"] = <1 MiB of bytes>`, MB/s.
//! * `tls.connect`: a new connection per step — TCP connect, the TLS
//!   handshake (ECDSA P-256 certificate), the authkey handshake and the
//!   hello — then a `ping`; connections per second.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::Value;
use multiprocessing::connection::Address;
use multiprocessing::managers::{ConnectOptions, ManagerClient, TlsConnector};

use crate::manager::{ServerProc, KEY};
use crate::report::{self, Row};
use crate::wire::{median, rate};

/// Repeats per figure; the median is reported.
const REPEATS: usize = 3;

/// A CA and a server certificate for 127.0.0.1, as PEM files in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server parameters")
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("server certificate");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        path
    };
    (
        write("ca.crt", ca_cert.pem()),
        write("server.crt", leaf.pem()),
        write("server.key", leaf_key.serialize_pem()),
    )
}

/// The three figures against one server: get/s, set MB/s, connects/s.
fn measure(address: &Address, tls: Option<TlsConnector>) -> [f64; 3] {
    let options = ConnectOptions {
        timeout: Duration::from_secs(20),
        tls,
        ..ConnectOptions::default()
    };
    let connect = || ManagerClient::connect_with(address, KEY, &options).expect("connect");
    let c = connect();
    let d = c
        .create("dict", vec![], Kwargs::new())
        .expect("dict")
        .token
        .id;
    let call = |method: &str, args: Vec<Value>| {
        c.call_method(d, method, args, Kwargs::new()).expect("call");
    };
    call("__setitem__", vec!["k".into(), 1.into()]);
    let gets = median(
        (0..REPEATS)
            .map(|_| rate(|| call("__getitem__", vec!["k".into()])))
            .collect(),
    );
    let big = Value::Bytes(vec![7u8; 1 << 20]);
    let sets = median(
        (0..REPEATS)
            .map(|_| rate(|| call("__setitem__", vec!["k".into(), big.clone()])))
            .collect(),
    );
    let connects = median(
        (0..REPEATS)
            .map(|_| rate(|| connect().ping().expect("ping")))
            .collect(),
    );
    [gets, sets * (1 << 20) as f64 / 1e6, connects]
}

/// Runs the suite and prints its table.
pub fn run() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ca, cert, key) = certificates(dir.path());
    let tls_flags = [
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    let tls_server = ServerProc::start_with(None, &tls_flags);
    let plain_server = ServerProc::start(None);
    let connector = TlsConnector::from_ca_file(&ca).expect("the CA");
    let tls = measure(
        &tls_server.address.parse().expect("address"),
        Some(connector),
    );
    let plain = measure(&plain_server.address.parse().expect("address"), None);
    let names = [
        ("tls.dict_get", "ops/s"),
        ("tls.dict_set_1MiB", "MB/s"),
        ("tls.connect", "conn/s"),
    ];
    let rows: Vec<Row> = names
        .iter()
        .zip(tls.iter().zip(plain.iter()))
        .map(|((name, unit), (ours, theirs))| Row {
            name: (*name).into(),
            ours: *ours,
            against: Some(("the same over plain TCP".into(), *theirs)),
            unit,
            higher_is_better: true,
        })
        .collect();
    report::print("tls: a manager connection over TLS vs plain TCP", &rows);
}
