//! Property tests of the CBOR codec: every message and value round-trips,
//! and arbitrary or corrupted bytes decode to an error, never a panic.

use mp_proto::message::{
    decode, encode, ChannelAnswer, ChannelOffer, ErrorKind, Hello, HelloReply, Kwargs, Outcome,
    ProxyInfo, RemoteError, Request, Response, Target,
};
use mp_proto::value::{Map, ObjectId, Token, Value};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = Token> {
    ("[a-zA-Z]{1,8}", "[a-z0-9.:/]{0,20}", any::<u64>()).prop_map(|(typeid, address, id)| Token {
        typeid,
        address,
        id: ObjectId(id),
    })
}

fn hashable_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        token().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    hashable_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            prop::collection::vec((hashable_leaf(), inner), 0..6)
                .prop_map(|pairs| Value::from(pairs.into_iter().collect::<Map>())),
        ]
    })
}

fn kwargs() -> impl Strategy<Value = Kwargs> {
    prop::collection::vec(("[a-z_]{1,8}", value()), 0..3).prop_map(|v| v.into_iter().collect())
}

fn request() -> impl Strategy<Value = Request> {
    (
        any::<u64>(),
        prop_oneof![
            Just(Target::Server),
            any::<u64>().prop_map(|id| Target::Object(ObjectId(id)))
        ],
        "[a-z_]{1,16}",
        prop::collection::vec(value(), 0..4),
        kwargs(),
        any::<u64>(),
    )
        .prop_map(|(id, target, method, args, kwargs, thread)| Request {
            id,
            target,
            method,
            args,
            kwargs,
            thread,
        })
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    prop_oneof![
        Just(ErrorKind::KeyError),
        Just(ErrorKind::Empty),
        Just(ErrorKind::BrokenBarrierError),
        "[A-Z][a-zA-Z]{0,12}".prop_map(|n| ErrorKind::from_name(&n)),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let outcome = prop_oneof![
        value().prop_map(Outcome::Return),
        (token(), prop::collection::vec("[a-z_]{1,10}", 0..5))
            .prop_map(|(token, exposed)| Outcome::Proxy(ProxyInfo { token, exposed })),
        (error_kind(), ".{0,20}")
            .prop_map(|(kind, message)| Outcome::Error(RemoteError { kind, message })),
    ];
    (any::<u64>(), outcome).prop_map(|(id, outcome)| Response { id, outcome })
}

/// Exact identity, stricter than `==` (which equates `1` and `1.0`).
fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Decodes as every message type; the only requirement is not panicking.
fn decode_everything(bytes: &[u8]) {
    let _ = decode::<Value>(bytes);
    let _ = decode::<Request>(bytes);
    let _ = decode::<Response>(bytes);
    let _ = decode::<Hello>(bytes);
    let _ = decode::<HelloReply>(bytes);
    let _ = decode::<ChannelAnswer>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn values_round_trip(v in value()) {
        let back: Value = decode(&encode(&v).unwrap()).unwrap();
        prop_assert!(same(&back, &v), "{back:?} != {v:?}");
    }

    #[test]
    fn requests_round_trip(r in request()) {
        let back: Request = decode(&encode(&r).unwrap()).unwrap();
        prop_assert!(same(&back, &r));
    }

    #[test]
    fn responses_round_trip(r in response()) {
        let back: Response = decode(&encode(&r).unwrap()).unwrap();
        prop_assert!(same(&back, &r));
    }

    #[test]
    fn hellos_round_trip(
        versions in prop::collection::vec(any::<u32>(), 0..4),
        client in ".{0,10}",
        channel: bool,
    ) {
        let hello = Hello { versions, client, channel };
        let back: Hello = decode(&encode(&hello).unwrap()).unwrap();
        prop_assert_eq!(back, hello);
    }

    #[test]
    fn welcomes_round_trip(
        version: u32,
        server in ".{0,10}",
        offer in prop::option::of((any::<u32>(), any::<i32>(), any::<u32>(), any::<u64>())),
    ) {
        let reply = HelloReply::Welcome {
            version,
            server,
            channel: offer.map(|(pid, fd, ring, nonce)| ChannelOffer { pid, fd, ring, nonce }),
        };
        let back: HelloReply = decode(&encode(&reply).unwrap()).unwrap();
        prop_assert_eq!(back, reply);
        for attached in [true, false] {
            let answer = ChannelAnswer { attached };
            prop_assert_eq!(decode::<ChannelAnswer>(&encode(&answer).unwrap()).unwrap(), answer);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(
        r in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&r).unwrap();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        decode_everything(&bytes);
        let end = cut.index(bytes.len() + 1);
        decode_everything(&bytes[..end]);
    }
}
