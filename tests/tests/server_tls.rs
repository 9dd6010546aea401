//! `mpserver serve` over TLS, with the real binary: the right CA works
//! (from the SDK and the admin verbs), everything else fails with a clear
//! error while the server keeps serving, and mutual TLS demands a client
//! certificate; async tasks share one TLS connection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::Value;
use mp_tests::mpserver::{binary, eventually, Options, ServerProcess};
use mp_tests::scrape::{metrics_address, scrape};
use multiprocessing::connection::Address;
use multiprocessing::managers::asyncio::{AsyncManagerClient, AsyncSyncManager};
use multiprocessing::managers::{ConnectOptions, ManagerClient, ManagerError, TlsConnector};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Two CAs (the one the server's and the client's certificates chain to,
/// and a stranger), as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("mp-tests CA");
        let (other_cert, other_key) = ca("a stranger's CA");
        let server = ["localhost", "127.0.0.1"].as_slice();
        let (server_auth, client_auth) = (
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        // name, subject names, usage, issuer; "impostor" is a server
        // certificate for the same names from the stranger.
        let leaves = [
            ("server", server, server_auth.clone(), (&ca_cert, &ca_key)),
            (
                "client",
                &["client"][..],
                client_auth.clone(),
                (&ca_cert, &ca_key),
            ),
            (
                "intruder",
                &["intruder"][..],
                client_auth,
                (&other_cert, &other_key),
            ),
            ("impostor", server, server_auth, (&other_cert, &other_key)),
        ];
        for (name, names, usage, (issuer, issuer_key)) in leaves {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, issuer, issuer_key).unwrap();
            write(&format!("{name}.crt"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        write("ca.crt", ca_cert.pem());
        write("other-ca.crt", other_cert.pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Starts a TLS server with `cert`/`key` (and a client CA if given).
    fn server(&self, cert: &str, key: &str, client_ca: Option<&str>) -> ServerProcess {
        let mut args = vec![
            "--tls-cert".into(),
            self.path_str(cert),
            "--tls-key".into(),
            self.path_str(key),
            // A plain client waits for the challenge while the server
            // waits for a ClientHello: cut that short.
            "--handshake-timeout".into(),
            "1".into(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ];
        if let Some(ca) = client_ca {
            args.extend(["--tls-client-ca".into(), self.path_str(ca)]);
        }
        ServerProcess::start_with(Options { unix: false, args })
    }
}

fn options(tls: Option<TlsConnector>) -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(20),
        tls,
        ..ConnectOptions::default()
    }
}

fn connect(
    server: &ServerProcess,
    tls: Option<TlsConnector>,
) -> Result<ManagerClient, ManagerError> {
    ManagerClient::connect_with(&server.addr(), &server.key, &options(tls))
}

/// A dict round trip: the connection really works.
fn works(client: &ManagerClient) {
    let d = client.create("dict", vec![], Kwargs::new()).unwrap();
    let id = d.token.id;
    client
        .call_method(
            id,
            "__setitem__",
            vec!["k".into(), 42.into()],
            Kwargs::new(),
        )
        .unwrap();
    let v = client
        .call_method(id, "__getitem__", vec!["k".into()], Kwargs::new())
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(v, Value::Int(42));
    client.decref(id).unwrap();
}

/// The log lines up to the first containing `what` (all of them, if it
/// never comes).
fn log_until(server: &ServerProcess, what: &str) -> Vec<String> {
    let mut seen = Vec::new();
    eventually(Duration::from_secs(20), || {
        seen.extend(server.log.try_iter());
        seen.iter().any(|l| l.contains(what))
    });
    seen
}

fn logged(server: &ServerProcess, what: &str) -> bool {
    log_until(server, what).iter().any(|l| l.contains(what))
}

fn admin(server: &ServerProcess, verb: &str, extra: &[String]) -> std::process::Output {
    Command::new(binary())
        .args([verb, "--address", &server.address, "--authkey-file"])
        .arg(server.key_path())
        .args(["--timeout", "20"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_right_ca_connects_and_everything_else_fails_clearly() {
    let pki = Pki::new();
    let server = pki.server("server.crt", "server.key", None);
    let ca = || Some(TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap());

    // The SDK with the right CA, by IP address and by host name.
    let good = connect(&server, ca()).unwrap();
    works(&good);
    let port = server.address.rsplit_once(':').unwrap().1;
    let by_name: Address = format!("localhost:{port}").parse().unwrap();
    works(&ManagerClient::connect_with(&by_name, &server.key, &options(ca())).unwrap());

    // A plain client gets no challenge: the server drops it at the
    // handshake timeout.
    let e = connect(&server, None).unwrap_err();
    assert!(matches!(e, ManagerError::Authentication(_)), "{e}");
    assert!(logged(&server, "TLS handshake"));

    // Bytes that are not a ClientHello end that connection only.
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(&server.address).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        raw.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
        assert!(!rest.starts_with(b"\0\0"), "a challenge leaked: {rest:?}");
    }

    // A client that trusts another CA refuses the server's certificate.
    let stranger = TlsConnector::from_ca_file(pki.path("other-ca.crt")).unwrap();
    let e = connect(&server, Some(stranger)).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    // A name the certificate does not carry is refused too.
    let misnamed = TlsConnector::from_ca_file(pki.path("ca.crt"))
        .unwrap()
        .server_name("db.example")
        .unwrap();
    let e = connect(&server, Some(misnamed)).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("not valid for name"), "{e}");

    // The right key over TLS is still checked inside it.
    let e = ManagerClient::connect_with(&server.addr(), b"wrong key", &options(ca())).unwrap_err();
    assert!(matches!(e, ManagerError::Authentication(_)), "{e}");

    // The server kept serving: the first connection and a new one work.
    works(&good);
    works(&connect(&server, ca()).unwrap());

    // The admin verbs, with and without --tls-ca.
    let out = admin(
        &server,
        "ping",
        &["--tls-ca".into(), pki.path_str("ca.crt")],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pong"));
    let out = admin(
        &server,
        "status",
        &["--json".into(), "--tls-ca".into(), pki.path_str("ca.crt")],
    );
    assert!(out.status.success(), "{out:?}");
    let out = admin(&server, "ping", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-ca"), "{err}");
    let out = admin(
        &server,
        "ping",
        &["--tls-ca".into(), pki.path_str("other-ca.crt")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS") && err.contains("UnknownIssuer"),
        "{err}"
    );
    works(&good);
}

#[test]
fn client_certificates_are_demanded_with_a_client_ca() {
    let pki = Pki::new();
    let server = pki.server("server.crt", "server.key", Some("ca.crt"));
    let metrics = metrics_address(&server);
    let with_cert = |cert: &str, key: &str| {
        TlsConnector::with_client_cert(pki.path("ca.crt"), pki.path(cert), pki.path(key)).unwrap()
    };

    let good = connect(&server, Some(with_cert("client.crt", "client.key"))).unwrap();
    works(&good);

    // No certificate: TLS 1.3 tells the client on its first read.
    let bare = TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap();
    let e = connect(&server, Some(bare)).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("CertificateRequired"), "{e}");

    // A certificate from another CA.
    let e = connect(&server, Some(with_cert("intruder.crt", "intruder.key"))).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");

    // Still serving; the admin verbs pass a client certificate too.
    works(&good);
    let out = admin(
        &server,
        "ping",
        &[
            "--tls-ca".into(),
            pki.path_str("ca.crt"),
            "--tls-cert".into(),
            pki.path_str("client.crt"),
            "--tls-key".into(),
            pki.path_str("client.key"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = admin(
        &server,
        "ping",
        &["--tls-ca".into(), pki.path_str("ca.crt")],
    );
    assert!(!out.status.success());
    works(&connect(&server, Some(with_cert("client.crt", "client.key"))).unwrap());

    // The three refused peers count as failed handshakes, reason "tls".
    let tls_failures = "mpserver_handshake_failures_total{reason=\"tls\"}";
    assert!(eventually(Duration::from_secs(20), || scrape(&metrics)
        .int(tls_failures)
        == 3));
}

#[test]
fn an_impostor_server_and_a_plain_server_are_refused() {
    let pki = Pki::new();
    let impostor = pki.server("impostor.crt", "impostor.key", None);
    let ca = || Some(TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap());
    let e = connect(&impostor, ca()).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");

    // A TLS client meets a plain server's challenge where a ServerHello
    // belongs.
    let plain = ServerProcess::start();
    let e = connect(&plain, ca()).unwrap_err();
    assert!(matches!(e, ManagerError::Tls { .. }), "{e}");
    works(&plain.client());
}

#[test]
fn many_threads_share_one_tls_connection() {
    let pki = Pki::new();
    let server = pki.server("server.crt", "server.key", None);
    let tls = TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap();
    let client = Arc::new(connect(&server, Some(tls)).unwrap());
    let q = client
        .create("Queue", vec![], Kwargs::new())
        .unwrap()
        .token
        .id;

    // A getter blocks in the server while others call through the same
    // session: the blocked read must not hold up their writes.
    let getter = {
        let client = Arc::clone(&client);
        std::thread::spawn(move || {
            client
                .call_method(q, "get", vec![], Kwargs::new())
                .unwrap()
                .into_value()
                .unwrap()
        })
    };
    let big = "x".repeat(3 * 1024 * 1024 + 17);
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let client = Arc::clone(&client);
            let big = big.clone();
            std::thread::spawn(move || {
                let d = client
                    .create("dict", vec![], Kwargs::new())
                    .unwrap()
                    .token
                    .id;
                for i in 0..50i64 {
                    let value = if i == 7 {
                        Value::Str(big.clone())
                    } else {
                        Value::Int(t * 1000 + i)
                    };
                    client
                        .call_method(
                            d,
                            "__setitem__",
                            vec![i.into(), value.clone()],
                            Kwargs::new(),
                        )
                        .unwrap();
                    let back = client
                        .call_method(d, "__getitem__", vec![i.into()], Kwargs::new())
                        .unwrap()
                        .into_value()
                        .unwrap();
                    assert_eq!(back, value);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    client
        .call_method(q, "put", vec!["done".into()], Kwargs::new())
        .unwrap();
    assert_eq!(getter.join().unwrap(), Value::Str("done".into()));
}

#[test]
fn tls_settings_are_checked_before_serving() {
    let pki = Pki::new();
    let serve = |args: &[&str]| {
        Command::new(binary())
            .arg("serve")
            .args(args)
            .output()
            .unwrap()
    };
    let cert = pki.path_str("server.crt");
    let key = pki.path_str("server.key");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--tls-cert", &cert], "go together"),
        (vec!["--tls-client-ca", &cert], "needs --tls-cert"),
        (vec!["--tls-cert", &cert, "--tls-key", &cert], "private key"),
        (
            vec!["--tls-cert", &key, "--tls-key", &key],
            "no certificates",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--unix",
                "/tmp/never.sock",
            ],
            "Unix socket",
        ),
    ];
    for (args, expected) in cases {
        let out = serve(&args);
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(!Path::new("/tmp/never.sock").exists());
}

#[test]
fn plain_tcp_beyond_loopback_is_warned_about() {
    let server = ServerProcess::start_with(Options {
        unix: false,
        args: vec!["--listen".into(), "0.0.0.0:0".into()],
    });
    assert!(logged(&server, "without TLS"));
    let pki = Pki::new();
    let mut args = vec!["--listen".into(), "0.0.0.0:0".into()];
    args.extend([
        "--tls-cert".into(),
        pki.path_str("server.crt"),
        "--tls-key".into(),
        pki.path_str("server.key"),
    ]);
    let tls = ServerProcess::start_with(Options { unix: false, args });
    let seen = log_until(&tls, "\"serving\"");
    assert!(seen.iter().any(|l| l.contains("TLS on")), "{seen:?}");
    assert!(!seen.iter().any(|l| l.contains("without TLS")), "{seen:?}");
}

#[test]
fn tls_comes_from_the_config_file_too() {
    let pki = Pki::new();
    let file = pki.path("mpserver.toml");
    std::fs::write(
        &file,
        format!(
            "tls-cert = \"{}\"\ntls-key = \"{}\"\n",
            pki.path_str("server.crt"),
            pki.path_str("server.key")
        ),
    )
    .unwrap();
    let server = ServerProcess::start_with(Options {
        unix: false,
        args: vec![
            "--config".into(),
            file.display().to_string(),
            "--handshake-timeout".into(),
            "1".into(),
        ],
    });
    let tls = TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap();
    works(&connect(&server, Some(tls)).unwrap());
    assert!(connect(&server, None).is_err());
}

#[test]
fn managers_and_later_connections_use_the_tls_they_were_given() {
    use multiprocessing::managers::{DictProxy, SyncManager};
    let pki = Pki::new();
    let server = pki.server("server.crt", "server.key", None);
    let tls = TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap();
    let manager =
        SyncManager::connect_with(&server.addr(), &server.key, &options(Some(tls))).unwrap();
    let d = manager.dict::<String, i64>().unwrap();
    d.set("a", 1).unwrap();
    let l = manager.list::<DictProxy<String, i64>>().unwrap();
    l.append(&d).unwrap();
    assert_eq!(l.get(0).unwrap().get_item("a").unwrap(), 1);

    // A plain `connect` to the same address (what BaseManager::connect and
    // a received proxy do) now speaks TLS too.
    works(&ManagerClient::connect(&server.addr(), &server.key).unwrap());

    // Registered up front, without a first connection.
    let other = pki.server("server.crt", "server.key", None);
    multiprocessing::managers::use_tls_for(
        &other.addr(),
        TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap(),
    );
    works(&ManagerClient::connect(&other.addr(), &other.key).unwrap());
}

#[test]
fn async_tasks_share_one_tls_connection_and_cancel_on_it() {
    let pki = Pki::new();
    let server = pki.server("server.crt", "server.key", None);
    let tls = TlsConnector::from_ca_file(pki.path("ca.crt")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let limit = Duration::from_secs(60);
    runtime.block_on(async {
        let options = options(Some(tls));
        let client = AsyncManagerClient::connect_with(&server.addr(), &server.key, &options)
            .await
            .unwrap();
        let manager = AsyncSyncManager::from_client(client);
        let q = manager.queue::<i64>().await.unwrap();
        // One get waits on the server while another is dropped: the
        // dropped one is cancelled there and takes nothing.
        let getter = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        let dropped = tokio::time::timeout(Duration::from_millis(50), q.get()).await;
        assert!(dropped.is_err(), "the queue was empty");
        // Meanwhile tasks call through the same TLS connection.
        let callers: Vec<_> = (0..4i64)
            .map(|t| {
                let manager = manager.clone();
                tokio::spawn(async move {
                    let d = manager.dict::<i64, i64>().await.unwrap();
                    for i in 0..100 {
                        d.set(i, t * 1000 + i).await.unwrap();
                        assert_eq!(d.get_item(i).await.unwrap(), t * 1000 + i);
                    }
                })
            })
            .collect();
        for c in callers {
            tokio::time::timeout(limit, c).await.unwrap().unwrap();
        }
        q.put(1).await.unwrap();
        q.put(2).await.unwrap();
        let got = tokio::time::timeout(limit, getter).await.unwrap().unwrap();
        assert_eq!(got.unwrap(), 1);
        assert_eq!(q.get().await.unwrap(), 2, "the dropped get took nothing");
    });
}
