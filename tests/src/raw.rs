//! A peer that speaks the wire by hand, for bad-input tests: it can stop
//! anywhere in the handshake, send any bytes as a frame, or send requests
//! no well-behaved client would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mp_proto::auth::{client_handshake, AuthOptions};
use mp_proto::codec::{decode, encode};
use mp_proto::frame::{read_frame, write_frame};
use mp_proto::message::{Hello, HelloReply, Kwargs, Outcome, Request, Response, Target};
use mp_proto::Value;

/// A raw TCP peer of a server.
pub struct RawPeer {
    /// The socket (30 s read timeout, so a server that stops answering
    /// fails the test instead of hanging it).
    pub stream: TcpStream,
    next_id: u64,
}

impl RawPeer {
    /// Connects, nothing more.
    pub fn connect(address: &str) -> RawPeer {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        RawPeer { stream, next_id: 1 }
    }

    /// Connects, authenticates with `key` and says hello.
    pub fn welcomed(address: &str, key: &[u8]) -> RawPeer {
        let mut peer = RawPeer::connect(address);
        client_handshake(&mut peer.stream, key, &AuthOptions::default()).expect("handshake");
        peer.hello();
        peer
    }

    /// Sends the hello and expects a welcome.
    pub fn hello(&mut self) {
        self.frame(&encode(&Hello::current("raw")).unwrap());
        let reply = self.read().expect("a hello reply");
        let reply: HelloReply = decode(&reply).unwrap();
        assert!(matches!(reply, HelloReply::Welcome { .. }), "{reply:?}");
    }

    /// Writes `payload` as one frame.
    pub fn frame(&mut self, payload: &[u8]) {
        write_frame(&mut self.stream, payload).expect("write a frame");
    }

    /// Writes raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one frame (at most 1 MiB); `None` at end of file.
    pub fn read(&mut self) -> Option<Vec<u8>> {
        read_frame(&mut self.stream, 1 << 20).expect("read a frame")
    }

    /// Reads until the server closes; returns what came before the end.
    /// Fails the test if the server keeps the connection open 30 s.
    pub fn until_closed(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => rest,
            // A reset after the server closed with unread input is a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }

    /// Makes one call and reads its answer.
    pub fn call(&mut self, target: Target, method: &str, args: Vec<Value>) -> Outcome {
        let id = self.next_id;
        self.next_id += 1;
        self.frame(&request(id, target, method, args));
        let answer = self.read().expect("an answer");
        let response: Response = decode(&answer).unwrap();
        assert_eq!(response.id, id);
        response.outcome
    }
}

/// The encoded request `id` calling `method` on `target` with `args` (no
/// keyword arguments), ready to be sent as a frame.
pub fn request(id: u64, target: Target, method: &str, args: Vec<Value>) -> Vec<u8> {
    encode(&Request {
        id,
        target,
        method: method.into(),
        args,
        kwargs: Kwargs::new(),
        thread: 1,
    })
    .unwrap()
}
