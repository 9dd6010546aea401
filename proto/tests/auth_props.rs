//! Arbitrary bytes as handshake traffic: every outcome is a typed error or
//! success, never a panic or a hang.

use std::io::{self, Read, Write};

use mp_proto::auth::{self, AuthOptions, AuthenticationError};
use mp_proto::frame;
use proptest::prelude::*;

/// A peer that sends fixed bytes, then end of file, and swallows writes.
struct Scripted<'a>(&'a [u8]);

impl Read for Scripted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Scripted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for m in messages {
        frame::write_frame(&mut wire, m).unwrap();
    }
    wire
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(|tail| [
            b"#CHALLENGE#".as_slice(),
            &tail
        ]
        .concat()),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|tail| [b"{sha256}".as_slice(), &tail].concat()),
        Just(b"#WELCOME#".to_vec()),
    ]
}

proptest! {
    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), legacy in any::<bool>()) {
        let opts = AuthOptions { legacy, ..AuthOptions::default() };
        let _ = auth::server_handshake(&mut Scripted(&bytes), b"key", &opts);
        let _ = auth::client_handshake(&mut Scripted(&bytes), b"key", &opts);
    }

    #[test]
    fn framed_messages_never_panic(messages in prop::collection::vec(message(), 0..4), legacy in any::<bool>()) {
        let opts = AuthOptions { legacy, ..AuthOptions::default() };
        let wire = framed(&messages);
        // Random answers cannot match a fresh random challenge.
        let server = auth::server_handshake(&mut Scripted(&wire), b"key", &opts);
        prop_assert!(server.is_err());
        let _ = auth::client_handshake(&mut Scripted(&wire), b"key", &opts);
        let _ = auth::create_response(b"key", messages.first().map_or(&[][..], |m| m), &opts);
        let _ = auth::check_verdict(messages.first().map_or(&[][..], |m| m), b"key\n");
    }

    #[test]
    fn async_drivers_never_panic(messages in prop::collection::vec(message(), 0..4)) {
        let wire = framed(&messages);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let (mut ours, mut theirs) = tokio::io::duplex(4096);
            let feeder = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = theirs.write_all(&wire).await;
                let _ = theirs.shutdown().await;
                let mut sink = Vec::new();
                let _ = theirs.read_to_end(&mut sink).await;
            });
            let r = auth::client_handshake_async(&mut ours, b"key", &AuthOptions::legacy()).await;
            drop(ours);
            feeder.await.unwrap();
            // Only a scripted transcript that answered a fresh random
            // challenge correctly could succeed, and none can.
            assert!(r.is_err());
        });
    }
}

#[test]
fn oversized_handshake_message_is_refused() {
    let wire = framed(&[vec![b'#'; 257]]);
    let err =
        auth::answer_challenge(&mut Scripted(&wire), b"k", &AuthOptions::default()).unwrap_err();
    assert!(matches!(err, AuthenticationError::Protocol(_)), "{err:?}");
}
