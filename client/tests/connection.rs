//! `Pipe` and `Connection` over real socketpairs and pipes: values, bytes,
//! buffers, limits, end of file, one-way ends, `poll`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use multiprocessing::connection::{wait, Connection, ConnectionError, Waitable};
use multiprocessing::Pipe;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Job {
    id: u64,
    name: String,
    weights: Vec<f64>,
    tag: Option<char>,
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn values_round_trip_both_ways() {
    let (mut a, mut b) = Pipe(true).unwrap();
    let job = Job {
        id: 7,
        name: "x".into(),
        weights: vec![0.5, -1.0],
        tag: Some('é'),
    };
    a.send(&job).unwrap();
    assert_eq!(b.recv::<Job>().unwrap(), job);
    b.send(&("reply", 3u8, vec![1u16, 2])).unwrap();
    assert_eq!(
        a.recv::<(String, u8, Vec<u16>)>().unwrap(),
        ("reply".into(), 3, vec![1, 2])
    );
    a.send("str slice").unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "str slice");
}

const SIZES: [usize; 7] = [0, 1, 23, 24, 10, 16384, 1 << 20];

#[test]
fn byte_buffers_travel_as_cbor_byte_strings() {
    let (mut a, mut b) = Pipe(true).unwrap();
    // The sender runs in its own thread: 1 MiB exceeds a socketpair's buffer.
    let sender = thread::spawn(move || {
        for n in SIZES {
            let data = pattern(n);
            a.send(&data).unwrap();
            a.send(&data[..]).unwrap();
            let slice: &[u8] = &data;
            a.send(&slice).unwrap();
        }
        a.send(&vec![1u16, 2, 3]).unwrap();
        a.send(&serde_bytes::ByteBuf::from(vec![9u8; 100])).unwrap();
    });
    for n in SIZES {
        let data = pattern(n);
        assert_eq!(b.recv::<Vec<u8>>().unwrap(), data, "{n}");
        assert_eq!(
            b.recv::<serde_bytes::ByteBuf>().unwrap().into_vec(),
            data,
            "{n}"
        );
        // A byte string, not an array of integers, is on the wire.
        match b.recv::<ciborium::Value>().unwrap() {
            ciborium::Value::Bytes(got) => assert_eq!(got, data),
            other => panic!("{other:?}"),
        }
    }
    // Bytes sent as a serde sequence or via serde_bytes arrive as a Vec<u8>.
    assert_eq!(b.recv::<Vec<u8>>().unwrap(), vec![1, 2, 3]);
    assert_eq!(b.recv::<Vec<u8>>().unwrap(), vec![9u8; 100]);
    sender.join().unwrap();
}

#[test]
fn send_bytes_and_ranges() {
    let (mut a, mut b) = Pipe(true).unwrap();
    a.send_bytes(b"").unwrap();
    a.send_bytes(b"0123456789").unwrap();
    a.send_bytes_range(b"0123456789", 2, Some(3)).unwrap();
    a.send_bytes_range(b"0123456789", 7, None).unwrap();
    assert_eq!(b.recv_bytes(None).unwrap(), b"");
    assert_eq!(b.recv_bytes(None).unwrap(), b"0123456789");
    assert_eq!(b.recv_bytes(None).unwrap(), b"234");
    assert_eq!(b.recv_bytes(None).unwrap(), b"789");
    assert!(matches!(
        a.send_bytes_range(b"abc", 4, None),
        Err(ConnectionError::BadRange(_))
    ));
    assert!(matches!(
        a.send_bytes_range(b"abc", 1, Some(3)),
        Err(ConnectionError::BadRange(_))
    ));
}

#[test]
fn large_messages_over_a_one_way_pipe() {
    let (mut r, mut w) = Pipe(false).unwrap();
    let data = pattern(3 << 20);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        w.send_bytes(&data).unwrap();
        w.send(&data).unwrap();
    });
    assert_eq!(r.recv_bytes(None).unwrap(), expected);
    assert_eq!(r.recv::<Vec<u8>>().unwrap(), expected);
    writer.join().unwrap();
    assert!(matches!(r.recv_bytes(None), Err(ConnectionError::Eof)));
}

#[test]
fn recv_bytes_into_with_offset_and_too_short() {
    let (mut a, mut b) = Pipe(true).unwrap();
    a.send_bytes(b"abc").unwrap();
    a.send_bytes(b"too long for it").unwrap();
    a.send_bytes(b"ok").unwrap();
    let mut buf = [b'.'; 8];
    assert_eq!(b.recv_bytes_into(&mut buf, 4).unwrap(), 3);
    assert_eq!(&buf, b"....abc.");
    match b.recv_bytes_into(&mut buf, 4) {
        Err(ConnectionError::BufferTooShort { message }) => assert_eq!(message, b"too long for it"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.recv_bytes_into(&mut buf, 0).unwrap(), 2);
    assert_eq!(&buf[..2], b"ok");
    assert!(matches!(
        b.recv_bytes_into(&mut buf, 9),
        Err(ConnectionError::BadRange(_))
    ));
}

#[test]
fn maxlength_refuses_and_closes() {
    let (mut a, mut b) = Pipe(true).unwrap();
    a.send_bytes(&[0; 100]).unwrap();
    let err = b.recv_bytes(Some(99)).unwrap_err();
    assert!(
        matches!(err, ConnectionError::BadMessageLength { len: 100, max: 99 }),
        "{err}"
    );
    assert!(b.closed());
    assert!(matches!(b.recv_bytes(None), Err(ConnectionError::Closed)));
}

#[test]
fn eof_after_the_last_message() {
    let (mut a, mut b) = Pipe(true).unwrap();
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    drop(a);
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    assert!(
        b.poll(Some(Duration::ZERO)).unwrap(),
        "end of file is readable"
    );
    assert!(matches!(b.recv::<u8>(), Err(ConnectionError::Eof)));
    assert!(matches!(b.recv_bytes(None), Err(ConnectionError::Eof)));
}

#[test]
fn sending_to_a_closed_peer_is_an_error_not_a_signal() {
    let (mut a, b) = Pipe(true).unwrap();
    drop(b);
    let err = a.send_bytes(b"x").unwrap_err();
    assert!(
        matches!(err, ConnectionError::Io(ref e) if e.kind() == std::io::ErrorKind::BrokenPipe),
        "{err}"
    );
}

#[test]
fn truncated_message_is_distinct_from_eof() {
    let (mut raw, theirs) = UnixStream::pair().unwrap();
    let mut conn = Connection::from_fd(OwnedFd::from(theirs), true, true, true);
    raw.write_all(b"\x00\x00\x00\x0aabc").unwrap();
    drop(raw);
    let err = conn.recv_bytes(None).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Truncated {
                expected: 10,
                received: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn one_way_pipe_ends_have_one_direction() {
    let (mut r, mut w) = Pipe(false).unwrap();
    assert!(r.readable() && !r.writable());
    assert!(w.writable() && !w.readable());
    assert!(matches!(r.send(&1), Err(ConnectionError::NotWritable)));
    assert!(matches!(w.recv::<u8>(), Err(ConnectionError::NotReadable)));
    assert!(matches!(w.poll(None), Err(ConnectionError::NotReadable)));
    w.send(&5u8).unwrap();
    assert_eq!(r.recv::<u8>().unwrap(), 5);
}

#[test]
fn close_makes_every_call_fail() {
    let (mut a, _b) = Pipe(true).unwrap();
    assert!(a.fileno().unwrap() >= 0);
    a.close();
    assert!(a.closed());
    assert!(matches!(a.fileno(), Err(ConnectionError::Closed)));
    assert!(matches!(a.send(&1), Err(ConnectionError::Closed)));
    assert!(matches!(a.recv::<u8>(), Err(ConnectionError::Closed)));
    assert!(matches!(a.poll(None), Err(ConnectionError::Closed)));
}

#[test]
fn poll_sees_messages_already_buffered() {
    let (mut a, mut b) = Pipe(true).unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    assert!(!b.poll(Some(Duration::from_millis(10))).unwrap());
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    assert!(b.poll(None).unwrap());
    // Both small messages arrive in one read; the second then sits in our
    // buffer, which the descriptor alone would not show.
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(
        wait(&[&b as &dyn Waitable], Some(Duration::ZERO)).unwrap(),
        vec![0]
    );
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn decoding_the_wrong_type_is_a_typed_error() {
    let (mut a, mut b) = Pipe(true).unwrap();
    a.send("text").unwrap();
    assert!(matches!(b.recv::<u32>(), Err(ConnectionError::Decode(_))));
    a.send_bytes(b"\xff\xff").unwrap();
    assert!(matches!(
        b.recv::<String>(),
        Err(ConnectionError::Decode(_))
    ));
    a.send_bytes(b"").unwrap();
    assert!(matches!(
        b.recv::<Vec<u8>>(),
        Err(ConnectionError::Decode(_))
    ));
    // The stream is still in step.
    a.send(&9u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 9);
}
