//! Handshake rules and drivers over real socket pairs; CPython interop is in
//! `proto/tests/interop.rs`, fuzzing in `proto/tests/auth_props.rs`.

use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hmac_matches_rfc_vectors() {
    // RFC 4231 test case 2 and RFC 2202 test case 2.
    let data = b"what do ya want for nothing?";
    assert_eq!(
        hex(&Digest::Sha256.mac(b"Jefe", data).unwrap()),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&Digest::Md5.mac(b"Jefe", data).unwrap()),
        "750c783e6ab0b503eaa86e310a5db738"
    );
}

#[test]
fn response_covers_the_whole_prefixed_payload() {
    let payload = new_challenge().unwrap();
    assert!(payload.starts_with(b"{sha256}"));
    assert_eq!(payload.len(), 8 + CHALLENGE_RANDOM_LEN);
    let message = [CHALLENGE, &payload].concat();
    let response = create_response(b"key", &message, &AuthOptions::default()).unwrap();
    let mut expected = b"{sha256}".to_vec();
    expected.extend(Digest::Sha256.mac(b"key", &payload).unwrap());
    assert_eq!(response, expected);
    verify_response(b"key", &payload, &response, &AuthOptions::default()).unwrap();
    assert!(matches!(
        verify_response(b"other", &payload, &response, &AuthOptions::default()),
        Err(AuthenticationError::WrongDigest)
    ));
}

#[test]
fn legacy_forms_need_legacy_mode() {
    let legacy_challenge = [CHALLENGE, &[7u8; 20]].concat();
    assert!(matches!(
        create_response(b"k", &legacy_challenge, &AuthOptions::default()),
        Err(AuthenticationError::LegacyDisabled)
    ));
    let raw_md5 = create_response(b"k", &legacy_challenge, &AuthOptions::legacy()).unwrap();
    assert_eq!(raw_md5, Digest::Md5.mac(b"k", &[7u8; 20]).unwrap());

    // A 3.11 client answers our modern challenge with raw MD5 over all of it.
    let payload = new_challenge().unwrap();
    let md5_answer = Digest::Md5.mac(b"k", &payload).unwrap();
    assert!(matches!(
        verify_response(b"k", &payload, &md5_answer, &AuthOptions::default()),
        Err(AuthenticationError::LegacyDisabled)
    ));
    verify_response(b"k", &payload, &md5_answer, &AuthOptions::legacy()).unwrap();
    let prefixed_md5 = [b"{md5}".as_slice(), &md5_answer].concat();
    assert!(matches!(
        verify_response(b"k", &payload, &prefixed_md5, &AuthOptions::default()),
        Err(AuthenticationError::LegacyDisabled)
    ));
}

#[test]
fn malformed_messages_are_protocol_errors() {
    let opts = AuthOptions::legacy();
    for bad in [
        &b"#WELCOME#"[..],
        b"#CHALLENGE#short",
        b"#CHALLENGE#{sha256",
        b"",
    ] {
        assert!(
            matches!(
                create_response(b"k", bad, &opts),
                Err(AuthenticationError::Protocol(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        create_response(b"k", b"#CHALLENGE#{sha3_256}01234567890123456789", &opts),
        Err(AuthenticationError::UnsupportedDigest(d)) if d == "sha3_256"
    ));
    assert!(matches!(
        check_verdict(b"#FAILURE#", b"k"),
        Err(AuthenticationError::Rejected)
    ));
    assert!(matches!(
        check_verdict(b"#FAILURE#", b"k\n"),
        Err(AuthenticationError::RejectedKeyEndsInNewline)
    ));
    assert!(matches!(
        check_verdict(b"hello", b"k"),
        Err(AuthenticationError::Protocol(_))
    ));
    check_verdict(WELCOME, b"k\n").unwrap();
}

fn run_pair(
    server_key: &'static [u8],
    client_key: &'static [u8],
) -> (
    Result<(), AuthenticationError>,
    Result<(), AuthenticationError>,
) {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let server =
        thread::spawn(move || server_handshake(&mut a, server_key, &AuthOptions::default()));
    let client = client_handshake(&mut b, client_key, &AuthOptions::default());
    (server.join().unwrap(), client)
}

#[test]
fn blocking_handshake_succeeds_with_the_same_key() {
    let (server, client) = run_pair(b"secret", b"secret");
    server.unwrap();
    client.unwrap();
}

#[test]
fn blocking_handshake_fails_on_both_sides_with_different_keys() {
    let (server, client) = run_pair(b"secret", b"guess");
    assert!(
        matches!(server, Err(AuthenticationError::WrongDigest)),
        "{server:?}"
    );
    assert!(
        matches!(client, Err(AuthenticationError::Rejected)),
        "{client:?}"
    );
}

#[test]
fn a_key_read_with_its_newline_is_named_as_the_cause() {
    let (_, client) = run_pair(b"secret", b"secret\n");
    assert!(
        matches!(client, Err(AuthenticationError::RejectedKeyEndsInNewline)),
        "{client:?}"
    );
    let message = client.unwrap_err().to_string();
    assert!(message.contains("ends in a newline"), "{message}");
}

#[test]
fn key_files_lose_one_trailing_newline_and_may_not_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        super::read_key_file(&path)
    };
    assert_eq!(read("plain", b"secret").unwrap(), b"secret");
    assert_eq!(read("echo", b"secret\n").unwrap(), b"secret");
    assert_eq!(read("windows", b"secret\r\n").unwrap(), b"secret");
    assert_eq!(read("two", b"secret\n\n").unwrap(), b"secret\n");
    assert_eq!(
        read("empty", b"\n").unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    assert!(super::read_key_file(&dir.path().join("missing")).is_err());
}

#[test]
fn a_silent_peer_times_out_on_a_socket_timeout() {
    let (mut a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let err = answer_challenge(&mut a, b"k", &AuthOptions::default()).unwrap_err();
    assert!(matches!(err, AuthenticationError::Timeout), "{err:?}");
}

#[test]
fn a_closing_peer_is_reported() {
    let (mut a, b) = UnixStream::pair().unwrap();
    drop(b);
    let err = answer_challenge(&mut a, b"k", &AuthOptions::default()).unwrap_err();
    assert!(matches!(err, AuthenticationError::Closed), "{err:?}");
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_handshake_both_outcomes() {
    for (server_key, client_key, ok) in [(b"k1", b"k1", true), (b"k1", b"k2", false)] {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let opts = AuthOptions::default();
        let server = tokio::spawn(async move {
            server_handshake_async(&mut a, server_key, &AuthOptions::default()).await
        });
        let client = client_handshake_async(&mut b, client_key, &opts).await;
        let server = server.await.unwrap();
        assert_eq!(server.is_ok(), ok, "{server:?}");
        assert_eq!(client.is_ok(), ok, "{client:?}");
    }
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_handshake_times_out() {
    let (mut a, _b) = tokio::io::duplex(1024);
    let opts = AuthOptions {
        timeout: Duration::from_millis(50),
        ..AuthOptions::default()
    };
    let err = server_handshake_async(&mut a, b"k", &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthenticationError::Timeout), "{err:?}");
}
