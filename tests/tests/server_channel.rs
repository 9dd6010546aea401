//! Shared-memory channels (`--shared-memory-channels`), against the real
//! `mpserver` and real client processes: a client on the server's machine
//! (loopback TCP or a Unix socket) gets a channel unless the server's
//! limit, the client's options or its environment say no, and everything
//! the socket guarantees still holds through memory — values larger than
//! a ring pass intact both ways, a blocking call is woken by another
//! client, threads sharing one client get their own answers, a thread
//! dedicated to the connection serves the channel and hands it back, a
//! killed client's session ends (objects freed, its lock passed on), a
//! killed server fails a waiting call instead of hanging it, a graceful
//! stop answers and exits, and a peer that writes garbage into the ring,
//! lies about the ring's positions, stops reading or never answers the
//! offer holds up and loses only its own connection. A channel that ends
//! leaves no descriptor or mapping behind in the server.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mp_proto::auth::{client_handshake, AuthOptions};
use mp_proto::codec::{decode, encode};
use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::{
    ChannelAnswer, ChannelOffer, Hello, HelloReply, Kwargs, Outcome, Response, Target,
    SUPPORTED_VERSIONS,
};
use mp_proto::{ErrorKind, ObjectId, Value};
use mp_sys::channel::{ChannelError, Duplex, Region, Side};
use mp_tests::client_process::{lock_waiter, spawn_ready};
use mp_tests::mpserver::{eventually, Options, ServerProcess};
use mp_tests::raw::RawPeer;
use mp_tests::scrape::{scrape, start_with_metrics};
use multiprocessing::managers::{ConnectOptions, ManagerClient, ManagerError, Return};

/// How long anything may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(60);

/// The environment variable that turns channels off for a client process.
const ENV: &str = multiprocessing::managers::SHARED_MEMORY_ENV;

/// The helper client process.
const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_mp-server-client");

/// A server on loopback TCP (or a Unix socket) with its metrics on
/// loopback, started with `extra` flags; and its metrics address.
fn start(unix: bool, extra: &[&str]) -> (ServerProcess, String) {
    start_with_metrics(Options {
        unix,
        ..Options::args(extra)
    })
}

/// A client that asks for a channel or not, whatever the environment of
/// this test process says.
fn connect(server: &ServerProcess, shared_memory: bool) -> ManagerClient {
    let options = ConnectOptions {
        shared_memory,
        ..ConnectOptions::default()
    };
    ManagerClient::connect_with(&server.addr(), &server.key, &options).expect("connect to mpserver")
}

/// The gauge of open channels.
fn channels(metrics: &str) -> u64 {
    scrape(metrics).int("mpserver_shared_memory_channels")
}

/// The gauge of connections served by a dedicated thread.
fn dedicated(metrics: &str) -> u64 {
    scrape(metrics).int("mpserver_dedicated_readers")
}

/// Runs `f` on a thread and returns what it returns, failing the test if
/// it takes longer than [`LIMIT`] (a hang) and passing on its panic.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => v,
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish in {LIMIT:?}"),
    }
}

/// What a call returned, as a value; panics on an error.
fn value(r: Result<Return, ManagerError>) -> Value {
    r.unwrap().into_value().unwrap()
}

/// Calls `method` of `id` and returns its value.
fn call(c: &ManagerClient, id: ObjectId, method: &str, args: Vec<Value>) -> Value {
    value(c.call_method(id, method, args, Kwargs::new()))
}

/// A new shared object of `typeid`.
fn create(c: &ManagerClient, typeid: &str, args: Vec<Value>) -> ObjectId {
    c.create(typeid, args, Kwargs::new()).unwrap().token.id
}

/// `n` pseudo-random bytes (xorshift from `seed`): a shifted, repeated or
/// dropped piece anywhere shows.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `n` pseudo-random letters.
fn text(n: usize, seed: u64) -> String {
    noise(n, seed)
        .into_iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect()
}

/// Asserts two large values are equal without printing megabytes.
fn assert_same(got: Value, want: &Value, what: &str) {
    assert!(&got == want, "{what} came back changed");
}

/// `repr()` of an object, as text.
fn repr(c: &ManagerClient, id: ObjectId) -> String {
    call(c, id, "__repr__", vec![]).to_string()
}

/// How many calls wait in `Queue.get` on `q`.
fn getters(c: &ManagerClient, q: ObjectId) -> usize {
    repr(c, q)
        .split("getters=")
        .nth(1)
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no getters count in {}", repr(c, q)))
}

/// [`round_trips`] on `a` and `b` at the same time.
fn round_trips_at_once(a: &ManagerClient, b: &ManagerClient) {
    let other = {
        let b = b.clone();
        std::thread::spawn(move || round_trips(&b))
    };
    round_trips(a);
    other.join().unwrap();
}

/// Dict set/get/len, and values larger than a ring (128 KiB) both ways,
/// through a plain call and through a blocking call's answer.
fn round_trips(c: &ManagerClient) {
    let d = create(c, "dict", vec![]);
    for i in 0..100i64 {
        call(c, d, "__setitem__", vec![format!("k{i}").into(), i.into()]);
    }
    for i in 0..100i64 {
        let got = call(c, d, "__getitem__", vec![format!("k{i}").into()]);
        assert_eq!(got, Value::Int(i));
    }
    assert_eq!(call(c, d, "__len__", vec![]), Value::Int(100));
    // Odd lengths, so the pieces straddle the ring's end at odd places.
    let big = Value::Str(text((1 << 20) + 13, 1));
    call(c, d, "__setitem__", vec!["big".into(), big.clone()]);
    let got = call(c, d, "__getitem__", vec!["big".into()]);
    assert_same(got, &big, "a 1 MiB string");
    let bytes = Value::Bytes(noise((3 << 20) + 5, 2));
    call(c, d, "__setitem__", vec!["bytes".into(), bytes.clone()]);
    let got = call(c, d, "__getitem__", vec!["bytes".into()]);
    assert_same(got, &bytes, "3 MiB of bytes");
    let q = create(c, "Queue", vec![]);
    call(c, q, "put", vec![big.clone()]);
    let got = call(c, q, "get", vec![]);
    assert_same(got, &big, "a 1 MiB string through a queue");
    assert_eq!(call(c, d, "__len__", vec![]), Value::Int(102));
}

/// Calls `d[k] = i` in bursts until the server serves this connection on
/// a thread of its own (a burst, then a look at the gauge).
fn until_dedicated(c: &ManagerClient, d: ObjectId, metrics: &str) {
    let mut i = 0i64;
    let got = eventually(LIMIT, || {
        for _ in 0..200 {
            call(c, d, "__setitem__", vec!["k".into(), i.into()]);
            i += 1;
        }
        dedicated(metrics) == 1
    });
    assert!(got, "the connection was never given a dedicated reader");
}

#[test]
fn clients_over_tcp_and_unix_get_channels_that_carry_any_value() {
    let (server, metrics) = start(false, &[]);
    let a = connect(&server, true);
    let b = connect(&server, true);
    assert!(
        a.uses_shared_memory(),
        "a loopback TCP client got no channel"
    );
    assert!(
        b.uses_shared_memory(),
        "a loopback TCP client got no channel"
    );
    assert_eq!(channels(&metrics), 2);
    round_trips_at_once(&a, &b);
    drop((a, b));
    assert!(eventually(LIMIT, || channels(&metrics) == 0));

    let (server, metrics) = start(true, &[]);
    assert!(server.address.ends_with("mpserver.sock"));
    let c = connect(&server, true);
    assert!(
        c.uses_shared_memory(),
        "a Unix socket client got no channel"
    );
    assert_eq!(channels(&metrics), 1);
    round_trips(&c);
    drop(c);
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
}

#[test]
fn a_dedicated_thread_serves_a_channel_and_hands_it_back() {
    let (server, metrics) = start(false, &[]);
    let c = connect(&server, true);
    assert!(c.uses_shared_memory());
    let d = create(&c, "dict", vec![]);
    let q = create(&c, "Queue", vec![]);
    until_dedicated(&c, d, &metrics);
    // Larger than a ring each way while the thread serves it.
    let big = Value::Str(text((1 << 20) + 7, 3));
    call(&c, d, "__setitem__", vec!["big".into(), big.clone()]);
    let got = call(&c, d, "__getitem__", vec!["big".into()]);
    assert_same(got, &big, "a 1 MiB string on a dedicated thread");

    // A blocking call hands the connection back to the event loop, where
    // another channel client's put wakes it.
    until_dedicated(&c, d, &metrics);
    let putter = {
        let c2 = connect(&server, true);
        assert!(c2.uses_shared_memory());
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
            call(&c2, q, "put", vec![42.into()]);
        })
    };
    let got = {
        let c = c.clone();
        within("a get handed back to the event loop", move || {
            call(&c, q, "get", vec![])
        })
    };
    assert_eq!(got, Value::Int(42));
    putter.join().unwrap();

    // It can be dedicated again, answers every call on the way, and goes
    // back to the event loop when quiet.
    until_dedicated(&c, d, &metrics);
    let v = call(&c, d, "__getitem__", vec!["k".into()]);
    assert!(matches!(v, Value::Int(n) if n > 0), "{v:?}");
    assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
    c.ping().unwrap();
    assert_eq!(channels(&metrics), 1);
}

#[test]
fn a_server_with_channels_off_serves_over_the_socket() {
    let (server, metrics) = start(false, &["--shared-memory-channels", "0"]);
    let c = connect(&server, true);
    assert!(!c.uses_shared_memory());
    assert_eq!(channels(&metrics), 0);
    round_trips(&c);
    assert_eq!(channels(&metrics), 0);
}

#[test]
fn past_the_limit_clients_use_their_socket() {
    let (server, metrics) = start(false, &["--shared-memory-channels", "1"]);
    let a = connect(&server, true);
    let b = connect(&server, true);
    assert!(a.uses_shared_memory(), "the first client got no channel");
    assert!(!b.uses_shared_memory(), "the limit of 1 let a second in");
    assert_eq!(channels(&metrics), 1);
    round_trips_at_once(&a, &b);
    // The place comes free when its client leaves.
    drop(a);
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
    let c = connect(&server, true);
    assert!(
        c.uses_shared_memory(),
        "the freed place was not given again"
    );
    assert_eq!(channels(&metrics), 1);
    b.ping().unwrap();
    c.ping().unwrap();
}

#[test]
fn a_client_may_decline_a_channel() {
    let (server, metrics) = start(false, &[]);
    let c = connect(&server, false);
    assert!(!c.uses_shared_memory());
    assert_eq!(channels(&metrics), 0);
    round_trips(&c);
    assert_eq!(channels(&metrics), 0);
}

/// Starts the helper's `hold LOCK` job with `MP_MANAGER_SHARED_MEMORY`
/// set to `env` (or unset) and waits for its `ready`.
fn hold(server: &ServerProcess, lock: ObjectId, env: Option<&str>) -> Child {
    let mut cmd = Command::new(CLIENT_BIN);
    cmd.arg(&server.address)
        .arg(server.key_path())
        .args(["hold", &lock.0.to_string()])
        .stdout(Stdio::piped());
    match env {
        Some(v) => cmd.env(ENV, v),
        None => cmd.env_remove(ENV),
    };
    let mut child = cmd.spawn().expect("start mp-server-client");
    let out = child.stdout.take().expect("its stdout");
    let line = within("the hold job's ready line", move || {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        line
    });
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn the_environment_turns_channels_off_for_a_process() {
    let (server, metrics) = start(false, &[]);
    let c = connect(&server, false);
    let locks = [create(&c, "Lock", vec![]), create(&c, "Lock", vec![])];
    let mut off = hold(&server, locks[0], Some("0"));
    assert_eq!(c.status().unwrap().connections, 2);
    assert_eq!(channels(&metrics), 0, "{ENV}=0 still asked for a channel");
    let mut on = hold(&server, locks[1], None);
    assert_eq!(c.status().unwrap().connections, 3);
    assert_eq!(channels(&metrics), 1, "a client process got no channel");
    for child in [&mut off, &mut on] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
    assert!(eventually(LIMIT, || c.status().unwrap().connections == 1));
}

#[test]
fn a_blocking_get_over_a_channel_is_woken_by_another_channel_client() {
    let (server, _metrics) = start(false, &[]);
    let a = connect(&server, true);
    let b = connect(&server, true);
    assert!(a.uses_shared_memory() && b.uses_shared_memory());
    let q = create(&a, "Queue", vec![]);
    let (tx, rx) = mpsc::channel();
    // Three threads of one client wait at once: their answers come
    // through the same ring, each to its own caller.
    for _ in 0..3 {
        let a = a.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(a.call_method(q, "get", vec![], Kwargs::new()));
        });
    }
    assert!(eventually(LIMIT, || getters(&b, q) == 3));
    assert!(
        rx.try_recv().is_err(),
        "a get returned with the queue empty"
    );
    for i in 1..=3i64 {
        call(&b, q, "put", vec![i.into()]);
    }
    let mut got: Vec<Value> = (0..3)
        .map(|_| {
            value(
                rx.recv_timeout(LIMIT)
                    .expect("a waiting get was never answered"),
            )
        })
        .collect();
    got.sort_by_key(|v| match v {
        Value::Int(n) => *n,
        other => panic!("{other:?}"),
    });
    assert_eq!(got, [1, 2, 3].map(Value::Int));
    a.ping().unwrap();
}

#[test]
fn threads_sharing_a_channel_client_each_get_their_own_answers() {
    let (server, _metrics) = start(false, &[]);
    let c = connect(&server, true);
    assert!(c.uses_shared_memory());
    let d = create(&c, "dict", vec![]);
    within(
        "8 threads × 200 calls and a large-value thread",
        move || {
            std::thread::scope(|s| {
                for t in 0..8i64 {
                    let c = &c;
                    s.spawn(move || {
                        for i in 0..200i64 {
                            let key: Value = format!("{t}/{i}").into();
                            call(
                                c,
                                d,
                                "__setitem__",
                                vec![key.clone(), (t * 1000 + i).into()],
                            );
                            let got = call(c, d, "__getitem__", vec![key]);
                            assert_eq!(got, Value::Int(t * 1000 + i), "thread {t}, call {i}");
                        }
                    });
                }
                // Frames larger than the ring, interleaved with the small ones.
                let c = &c;
                s.spawn(move || {
                    for i in 0..8u64 {
                        let big = Value::Bytes(noise((300 << 10) + i as usize, 10 + i));
                        call(c, d, "__setitem__", vec!["big".into(), big.clone()]);
                        let got = call(c, d, "__getitem__", vec!["big".into()]);
                        assert_same(got, &big, "a 300 KiB value among small calls");
                    }
                });
            });
            assert_eq!(call(&c, d, "__len__", vec![]), Value::Int(8 * 200 + 1));
        },
    );
}

#[test]
fn a_killed_channel_client_frees_its_objects_and_passes_its_lock() {
    let (server, metrics) = start(false, &[]);
    // No channel here: the gauge counts the other processes' only.
    let c = connect(&server, false);
    let lock = create(&c, "Lock", vec![]);
    let baseline = c.number_of_objects().unwrap();
    let hammer = ["hammer".to_string(), lock.0.to_string()];
    let mut child = spawn_ready(CLIENT_BIN, &server, &hammer);
    assert_eq!(channels(&metrics), 1, "the client process got no channel");
    assert_eq!(c.number_of_objects().unwrap(), baseline + 3);
    // Killed while a thread of the server serves its channel.
    assert!(eventually(LIMIT, || dedicated(&metrics) == 1));

    let waiter = lock_waiter(&server, lock);
    child.kill().unwrap();
    child.wait().unwrap();
    let got = within("the lock waiter", move || waiter.join().unwrap()).unwrap();
    assert_eq!(got.into_value().unwrap(), Value::Bool(true));
    assert!(eventually(LIMIT, || c.number_of_objects().unwrap() == baseline));
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
    assert!(eventually(LIMIT, || dedicated(&metrics) == 0));
    assert!(
        repr(&c, lock).contains("unlocked, waiters=0"),
        "{}",
        repr(&c, lock)
    );
}

#[test]
fn a_killed_channel_client_with_calls_in_flight_leaves_nothing_behind() {
    let (server, metrics) = start(false, &[]);
    let c = connect(&server, false);
    let lock = create(&c, "Lock", vec![]);
    let sem = create(&c, "BoundedSemaphore", vec![2.into()]);
    let q = create(&c, "Queue", vec![]);
    let baseline = c.number_of_objects().unwrap();
    // One thread waits in `get`, two call back to back, all through one
    // channel; it holds the lock and a semaphore unit.
    let busy = [
        "busy",
        &lock.0.to_string(),
        &sem.0.to_string(),
        &q.0.to_string(),
    ]
    .map(String::from);
    let mut child = spawn_ready(CLIENT_BIN, &server, &busy);
    assert_eq!(channels(&metrics), 1, "the client process got no channel");
    assert!(eventually(LIMIT, || getters(&c, q) == 1));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(eventually(LIMIT, || c.status().unwrap().connections == 1));
    assert!(eventually(LIMIT, || c.number_of_objects().unwrap() == baseline));
    assert_eq!(getters(&c, q), 0);
    assert!(
        repr(&c, lock).contains("unlocked, waiters=0"),
        "{}",
        repr(&c, lock)
    );
    assert!(repr(&c, sem).contains("value=2/2"), "{}", repr(&c, sem));
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
}

#[test]
fn a_server_killed_under_a_waiting_channel_call_fails_it() {
    let (mut server, _metrics) = start(false, &[]);
    let c = connect(&server, true);
    assert!(c.uses_shared_memory());
    let q = create(&c, "Queue", vec![]);
    let (tx, rx) = mpsc::channel();
    {
        let c = c.clone();
        std::thread::spawn(move || {
            let _ = tx.send(c.call_method(q, "get", vec![], Kwargs::new()));
        });
    }
    assert!(eventually(LIMIT, || getters(&c, q) == 1));
    let status = server.signal_and_wait(libc::SIGKILL);
    assert!(!status.success(), "{status:?}");
    match rx.recv_timeout(LIMIT) {
        Ok(Err(ManagerError::ConnectionLost(_))) => {}
        Ok(other) => panic!("expected ConnectionLost, got {other:?}"),
        Err(_) => panic!("the waiting get outlived its server by {LIMIT:?}"),
    }
    let c2 = c.clone();
    let after = within("a call after the server died", move || c2.ping());
    assert!(
        matches!(after, Err(ManagerError::ConnectionLost(_))),
        "{after:?}"
    );
}

#[test]
fn a_graceful_stop_answers_a_waiting_channel_call_and_cuts_a_busy_one() {
    let (mut server, _metrics) = start(false, &[]);
    let waiter = connect(&server, true);
    let caller = connect(&server, true);
    assert!(waiter.uses_shared_memory() && caller.uses_shared_memory());
    let q = create(&waiter, "Queue", vec![]);
    let d = create(&waiter, "dict", vec![]);
    let (waited_tx, waited) = mpsc::channel();
    {
        let waiter = waiter.clone();
        std::thread::spawn(move || {
            let _ = waited_tx.send(waiter.call_method(q, "get", vec![], Kwargs::new()));
        });
    }
    let (called_tx, called) = mpsc::channel();
    std::thread::spawn(move || {
        // Calls until the server goes; every answer before then is right.
        for i in 0i64.. {
            let r = caller.call_method(d, "__setitem__", vec!["k".into(), i.into()], Kwargs::new());
            if let Err(e) = r {
                let _ = called_tx.send(e);
                return;
            }
        }
    });
    assert!(eventually(LIMIT, || getters(&waiter, q) == 1));
    assert!(eventually(LIMIT, || matches!(
        call(&waiter, d, "get", vec!["k".into()]),
        Value::Int(n) if n >= 100
    )));
    let status = server.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    match waited.recv_timeout(LIMIT) {
        Ok(Err(ManagerError::Remote(e))) => assert_eq!(e.kind, ErrorKind::ShuttingDown),
        Ok(other) => panic!("expected ShuttingDown, got {other:?}"),
        Err(_) => panic!("the waiting get was not answered"),
    }
    let e = called
        .recv_timeout(LIMIT)
        .expect("the busy caller never saw the server go");
    assert!(
        matches!(e, ManagerError::ConnectionLost(_))
            || e.remote()
                .is_some_and(|r| r.kind == ErrorKind::ShuttingDown),
        "{e:?}"
    );
}

/// Connects by hand, authenticates and says hello asking for a channel;
/// returns the peer and the server's offer.
fn offered(server: &ServerProcess) -> (RawPeer, ChannelOffer) {
    let mut raw = RawPeer::connect(&server.address);
    client_handshake(&mut raw.stream, &server.key, &AuthOptions::default()).expect("handshake");
    let hello = Hello {
        versions: SUPPORTED_VERSIONS.to_vec(),
        client: "raw-channel".into(),
        channel: true,
    };
    raw.frame(&encode(&hello).unwrap());
    let reply: HelloReply = decode(&raw.read().expect("a hello reply")).unwrap();
    match reply {
        HelloReply::Welcome {
            channel: Some(offer),
            ..
        } => (raw, offer),
        other => panic!("no channel offered: {other:?}"),
    }
}

/// A peer that takes the channel by hand: it can write anything into the
/// ring, or stop reading it.
struct ChannelPeer {
    duplex: Duplex,
    /// The region's `memfd`, opened before the server closed its
    /// descriptor: writes to it are writes to the shared memory.
    memfd: File,
    /// The socket: the lifeline, and where the doorbell rings.
    raw: RawPeer,
    next_id: u64,
}

impl ChannelPeer {
    /// Takes a channel: maps the offered region and says so.
    fn attached(server: &ServerProcess) -> ChannelPeer {
        let (mut raw, offer) = offered(server);
        let region = Region::open(offer.pid, offer.fd, offer.ring, offer.nonce)
            .expect("map the offered region");
        let memfd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{}/fd/{}", offer.pid, offer.fd))
            .expect("open the offered memfd");
        raw.frame(&encode(&ChannelAnswer { attached: true }).unwrap());
        let duplex = Duplex::new(Arc::new(region), Side::Client, raw.stream.as_raw_fd());
        ChannelPeer {
            duplex,
            memfd,
            raw,
            next_id: 1,
        }
    }

    /// Writes all of `bytes` into the ring, as the client does.
    fn send(&mut self, mut bytes: &[u8]) {
        let deadline = Instant::now() + LIMIT;
        while !bytes.is_empty() {
            match self.duplex.write_blocking(bytes, Duration::from_millis(50)) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {}
                Err(e) => panic!("writing into the ring: {e}"),
            }
        }
    }

    /// Sends `payload` as one frame.
    fn frame(&mut self, payload: &[u8]) {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, payload).unwrap();
        self.send(&bytes);
    }

    /// Sends a request; returns its id.
    fn request(&mut self, target: Target, method: &str, args: Vec<Value>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.frame(&mp_tests::raw::request(id, target, method, args));
        id
    }

    /// Reads the answer to `id`.
    fn answer(&mut self, id: u64) -> Outcome {
        let frame = read_frame(self, 64 << 20)
            .expect("read an answer from the ring")
            .expect("an answer, not the end");
        let response: Response = decode(&frame).unwrap();
        assert_eq!(response.id, id);
        response.outcome
    }

    /// Makes one call and reads its answer.
    fn call(&mut self, target: Target, method: &str, args: Vec<Value>) -> Outcome {
        let id = self.request(target, method, args);
        self.answer(id)
    }

    /// Waits for the server to end this connection: its socket closes and
    /// the channel is marked closed.
    fn until_closed(&mut self, what: &str) {
        self.raw.until_closed();
        assert!(
            eventually(LIMIT, || self.duplex.is_closed()),
            "{what}: the socket closed but the channel was not marked closed"
        );
    }
}

impl Read for ChannelPeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = Instant::now() + LIMIT;
        loop {
            match self.duplex.read_blocking(buf, Duration::from_millis(50)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {}
                r => return r,
            }
        }
    }
}

/// `payload` framed.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_frame(&mut bytes, payload).unwrap();
    bytes
}

/// What a misbehaving peer writes into its ring, and what it is.
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "a header claiming 2 GiB",
            0x7fff_ffffi32.to_be_bytes().to_vec(),
        ),
        (
            "a long header claiming 2^64-1 bytes",
            [(-1i32).to_be_bytes().as_slice(), &u64::MAX.to_be_bytes()].concat(),
        ),
        ("a negative length", (-5i32).to_be_bytes().to_vec()),
        ("a frame that is not CBOR", framed(b"\xff\xfe not cbor")),
        ("a frame of random bytes", framed(&noise(60_000, 7))),
        (
            "a hello where a request belongs",
            framed(&encode(&Hello::current("again")).unwrap()),
        ),
    ]
}

/// A well-behaved channel client's dict with `k` = 7 and a large value,
/// checked after each misbehaving peer is gone.
struct Bystander {
    client: ManagerClient,
    d: ObjectId,
    big: Value,
}

impl Bystander {
    fn new(server: &ServerProcess) -> Bystander {
        let client = connect(server, true);
        assert!(client.uses_shared_memory());
        let d = create(&client, "dict", vec![]);
        let big = Value::Str(text(300 << 10, 5));
        call(&client, d, "__setitem__", vec!["k".into(), 7.into()]);
        call(&client, d, "__setitem__", vec!["big".into(), big.clone()]);
        Bystander { client, d, big }
    }

    /// Its data is intact and it is served.
    fn check(&self, what: &str) {
        let c = &self.client;
        c.ping()
            .unwrap_or_else(|e| panic!("after {what}: the other client lost: {e}"));
        assert_eq!(
            call(c, self.d, "__getitem__", vec!["k".into()]),
            Value::Int(7),
            "after {what}"
        );
        let got = call(c, self.d, "__getitem__", vec!["big".into()]);
        assert_same(got, &self.big, "the other client's large value");
        call(c, self.d, "__setitem__", vec!["after".into(), what.into()]);
    }
}

/// Makes the peer's connection dedicated (calls in bursts on a key of its
/// own until the gauge says so), or makes one call.
fn serve_peer(peer: &mut ChannelPeer, d: ObjectId, metrics: &str, dedicate: bool) {
    let mut calls = |n: i64| {
        for i in 0..n {
            let r = peer.call(
                Target::Object(d),
                "__setitem__",
                vec!["peer".into(), i.into()],
            );
            assert!(matches!(r, Outcome::Return(_)), "{r:?}");
        }
    };
    if dedicate {
        let got = eventually(LIMIT, || {
            calls(200);
            dedicated(metrics) == 1
        });
        assert!(
            got,
            "the raw channel peer was never given a dedicated reader"
        );
    } else {
        calls(1);
    }
}

fn garbage_closes_only_that_connection(dedicate: bool) {
    let (server, metrics) = start(false, &[]);
    let other = Bystander::new(&server);
    for (what, bytes) in garbage() {
        let mut peer = ChannelPeer::attached(&server);
        assert_eq!(channels(&metrics), 2, "{what}");
        serve_peer(&mut peer, other.d, &metrics, dedicate);
        let n = peer.duplex.writer.write(&bytes).unwrap();
        assert_eq!(n, bytes.len(), "{what}: the ring had no room");
        peer.until_closed(what);
        assert!(eventually(LIMIT, || channels(&metrics) == 1), "{what}");
        assert!(eventually(LIMIT, || dedicated(&metrics) == 0), "{what}");
        other.check(what);
    }
    assert_eq!(other.client.status().unwrap().connections, 1);
}

#[test]
fn garbage_through_the_ring_closes_only_that_connection() {
    garbage_closes_only_that_connection(false);
}

#[test]
fn garbage_through_the_ring_of_a_dedicated_connection_closes_only_that_one() {
    garbage_closes_only_that_connection(true);
}

#[test]
fn a_peer_claiming_impossible_ring_positions_is_cut_off() {
    let (server, metrics) = start(false, &[]);
    let other = Bystander::new(&server);
    for dedicate in [false, true] {
        let what = if dedicate {
            "a lying tail on a dedicated connection"
        } else {
            "a lying tail"
        };
        let mut peer = ChannelPeer::attached(&server);
        serve_peer(&mut peer, other.d, &metrics, dedicate);
        // A stray doorbell alone is harmless: the peer is still served.
        peer.raw.bytes(&[0, 0, 0]);
        let r = peer.call(Target::Object(other.d), "__len__", vec![]);
        assert!(matches!(r, Outcome::Return(_)), "{what}: {r:?}");
        // The client → server ring's tail (its first control word, at
        // offset 128 in the layout of `mp_sys::channel::region`),
        // moved four rings past what the server has read.
        let mut tail = [0u8; 4];
        peer.memfd.read_exact_at(&mut tail, 128).unwrap();
        let ring = peer.duplex.region().ring_size();
        let lie = u32::from_ne_bytes(tail).wrapping_add(4 * ring);
        peer.memfd.write_all_at(&lie.to_ne_bytes(), 128).unwrap();
        // Ring the doorbell, in case the server waits on the socket.
        peer.raw.bytes(&[0]);
        peer.until_closed(what);
        assert!(eventually(LIMIT, || channels(&metrics) == 1), "{what}");
        assert!(eventually(LIMIT, || dedicated(&metrics) == 0), "{what}");
        other.check(what);
    }
}

#[test]
fn a_peer_that_stops_reading_holds_up_only_itself() {
    let (server, metrics) = start(false, &[]);
    let other = Bystander::new(&server);
    let big = Value::Str(text((1 << 20) + 3, 9));
    call(
        &other.client,
        other.d,
        "__setitem__",
        vec!["huge".into(), big.clone()],
    );
    let mut peer = ChannelPeer::attached(&server);
    // An answer eight rings long, not read: the server fills the ring and
    // waits for room.
    let id = peer.request(Target::Object(other.d), "__getitem__", vec!["huge".into()]);
    let ring = peer.duplex.region().ring_size();
    assert!(eventually(LIMIT, || peer
        .duplex
        .reader
        .available()
        .unwrap()
        == ring));
    other.check("a peer not reading");
    round_trips(&other.client);
    // Reading again, it gets the whole answer.
    match peer.answer(id) {
        Outcome::Return(v) => assert_same(v, &big, "an answer read after a stall"),
        other => panic!("{other:?}"),
    }
    // Stalled again, then gone: its session ends.
    peer.request(Target::Object(other.d), "__getitem__", vec!["huge".into()]);
    assert!(eventually(LIMIT, || peer
        .duplex
        .reader
        .available()
        .unwrap()
        == ring));
    drop(peer);
    assert!(eventually(LIMIT, || channels(&metrics) == 1));
    assert!(eventually(LIMIT, || other
        .client
        .status()
        .unwrap()
        .connections
        == 1));
    other.check("a peer that left while the server waited to write");
}

#[test]
fn a_peer_that_cannot_map_the_region_goes_on_over_its_socket() {
    let (server, metrics) = start(false, &[]);
    let other = connect(&server, false);
    let d = create(&other, "dict", vec![]);
    let (mut raw, offer) = offered(&server);
    assert_eq!(offer.pid, server.pid());
    assert_eq!(channels(&metrics), 1, "an offered channel holds a place");
    // Another region's nonce, or another size: not the server's.
    let wrong = Region::open(offer.pid, offer.fd, offer.ring, offer.nonce ^ 1);
    assert!(matches!(wrong, Err(ChannelError::NotOurs)), "{wrong:?}");
    let wrong = Region::open(offer.pid, offer.fd, offer.ring * 2, offer.nonce);
    assert!(matches!(wrong, Err(ChannelError::Layout(_))), "{wrong:?}");
    raw.frame(&encode(&ChannelAnswer { attached: false }).unwrap());
    let r = raw.call(Target::Object(d), "__setitem__", vec!["k".into(), 1.into()]);
    assert!(matches!(r, Outcome::Return(_)), "{r:?}");
    assert_eq!(channels(&metrics), 0, "a declined channel kept its place");
    assert_eq!(
        call(&other, d, "__getitem__", vec!["k".into()]),
        Value::Int(1)
    );
}

#[test]
fn a_peer_that_leaves_before_answering_frees_its_place() {
    let (server, metrics) = start(false, &["--shared-memory-channels", "1"]);
    let (raw, _offer) = offered(&server);
    assert_eq!(channels(&metrics), 1);
    drop(raw);
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
    let c = connect(&server, true);
    assert!(c.uses_shared_memory(), "the place was not freed");
}

#[test]
fn a_peer_that_never_answers_the_offer_is_cut_at_the_handshake_timeout() {
    let (server, metrics) = start(
        false,
        &["--shared-memory-channels", "1", "--handshake-timeout", "1"],
    );
    let (mut raw, _offer) = offered(&server);
    assert_eq!(channels(&metrics), 1);
    // Silent: the server gives up on it (the socket's 30 s read timeout
    // fails the test if it does not).
    raw.until_closed();
    assert!(eventually(LIMIT, || channels(&metrics) == 0));
    let c = connect(&server, true);
    assert!(c.uses_shared_memory(), "the place was not freed");
}

/// The server's channel mappings (`/memfd:mpserver-channel` in its maps).
fn channel_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read the server's maps")
        .lines()
        .filter(|l| l.contains("mpserver-channel"))
        .count()
}

/// The server's open descriptors.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the server's descriptors")
        .count()
}

#[test]
fn channels_leave_no_descriptors_or_mappings_behind() {
    let (server, metrics) = start(false, &[]);
    let pid = server.pid();
    let c = connect(&server, false);
    let d = create(&c, "dict", vec![]);
    assert!(eventually(LIMIT, || channel_mappings(pid) == 0));
    let baseline = descriptors(pid);
    for round in 0..3 {
        // Channels taken and used, offers declined, offers left
        // unanswered by peers that went away.
        let clients: Vec<ManagerClient> = (0..8).map(|_| connect(&server, true)).collect();
        for (i, cl) in clients.iter().enumerate() {
            assert!(cl.uses_shared_memory());
            call(
                cl,
                d,
                "__setitem__",
                vec![i.to_string().into(), round.into()],
            );
        }
        for _ in 0..4 {
            let (mut raw, _) = offered(&server);
            raw.frame(&encode(&ChannelAnswer { attached: false }).unwrap());
            let r = raw.call(Target::Object(d), "__len__", vec![]);
            assert!(matches!(r, Outcome::Return(_)), "{r:?}");
            let (raw, _) = offered(&server);
            drop(raw);
        }
        // The offers left unanswered go as the server sees their peers go.
        assert!(
            eventually(LIMIT, || channel_mappings(pid) == 8),
            "round {round}: {} channel mappings for 8 channels",
            channel_mappings(pid)
        );
        drop(clients);
        assert!(
            eventually(LIMIT, || channels(&metrics) == 0),
            "round {round}"
        );
        assert!(
            eventually(LIMIT, || channel_mappings(pid) == 0),
            "round {round}: {} channel mappings left",
            channel_mappings(pid)
        );
        assert!(
            eventually(LIMIT, || descriptors(pid) == baseline),
            "round {round}: {} descriptors, {baseline} before",
            descriptors(pid)
        );
    }
    assert_eq!(call(&c, d, "__len__", vec![]), Value::Int(8));
}
