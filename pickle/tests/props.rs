//! Properties: arbitrary input never panics the reader, and arbitrary
//! value trees survive a write and a read in every protocol.

use mp_pickle::{
    dumps, read, Address, Global, Instance, Limits, Make, Protocol, Proxy, ProxyKind, PyException,
    PyInt, Range, Slice, Token, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Small limits, so that random input reaches them often.
fn small_limits() -> Limits {
    Limits {
        max_input_bytes: 1 << 16,
        max_depth: 16,
        max_memo_entries: 64,
        max_value_bytes: 1 << 16,
        max_int_bytes: 16,
    }
}

/// Bytes that look like pickle: opcodes (valid or not) with short
/// arguments, so the machine gets past its first byte.
fn opcode_soup() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        // structural opcodes without arguments
        prop::sample::select(
            b"(.012NR]a}seutl)b\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x81".to_vec()
        )
        .prop_map(|b| vec![b]),
        // opcodes with a short argument
        (
            prop::sample::select(b"KMJhjqrC\x8cB\x8aGX\x95\x8d\x8e\x96\x80".to_vec()),
            vec(any::<u8>(), 0..10)
        )
            .prop_map(|(b, arg)| [vec![b], arg].concat()),
        // text opcodes
        (
            prop::sample::select(b"IFLVgpc".to_vec()),
            "[0-9a-z_.]{0,6}\n([a-z]{0,4}\n)?"
        )
            .prop_map(|(b, arg)| [vec![b], arg.into_bytes()].concat()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    vec(op, 0..60).prop_map(|ops| [b"\x80\x04".to_vec(), ops.concat()].concat())
}

fn pyint() -> impl Strategy<Value = PyInt> {
    prop_oneof![
        any::<i64>().prop_map(PyInt::Small),
        vec(any::<u8>(), 9..128).prop_map(|b| PyInt::from_le_bytes(&b)),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), any::<u64>().prop_map(f64::from_bits)]
}

/// Values Python can hash: fit for dict keys and set items.
fn hashable() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        pyint().prop_map(Value::from),
        float().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::Str),
        vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Tuple),
            vec(inner, 0..3).prop_map(Value::FrozenSet),
        ]
    })
}

fn global_of(list: &'static [(&'static str, &'static str)]) -> impl Strategy<Value = Global> {
    prop::sample::select(list).prop_map(|(m, n)| Global::new(m, n))
}

fn token() -> impl Strategy<Value = Token> {
    let address = prop_oneof![
        "[a-z0-9.]{0,12}".prop_map(Address::Path),
        ("[a-z0-9.]{0,12}", any::<u16>()).prop_map(|(host, port)| Address::Inet { host, port }),
    ];
    ("[a-zA-Z]{1,10}", address, "[0-9a-f]{1,12}").prop_map(|(typeid, address, id)| Token {
        typeid,
        address,
        id,
    })
}

fn keywords(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<(String, Value)>> {
    vec(("[a-z_]{1,8}", inner), 0..3)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        pyint().prop_map(Value::from),
        float().prop_map(Value::Float),
        (float(), float()).prop_map(|(re, im)| Value::Complex { re, im }),
        ".{0,20}".prop_map(Value::Str),
        vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        vec(any::<u8>(), 0..20).prop_map(Value::ByteArray),
        (pyint(), pyint(), pyint())
            .prop_filter("step 0", |(_, _, step)| *step != PyInt::Small(0))
            .prop_map(|(start, stop, step)| Value::Range(Box::new(Range { start, stop, step }))),
        global_of(&[
            ("builtins", "list"),
            ("builtins", "int"),
            ("builtins", "Ellipsis"),
            ("builtins", "KeyError"),
            ("collections", "OrderedDict"),
            ("array", "array"),
        ])
        .prop_map(|g| Value::Global(Box::new(g))),
        token().prop_map(|t| Value::Token(Box::new(t))),
        hashable(),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        let kw = keywords(inner.clone().boxed());
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            vec(inner.clone(), 0..6).prop_map(Value::List),
            vec((hashable(), inner.clone()), 0..5).prop_map(Value::Dict),
            vec(hashable(), 0..5).prop_map(Value::Set),
            vec(hashable(), 0..5).prop_map(Value::FrozenSet),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(start, stop, step)| {
                Value::Slice(Box::new(Slice { start, stop, step }))
            }),
            (
                prop::sample::select(ProxyKind::ALL.to_vec()),
                token(),
                "[a-z]{0,8}",
                kw
            )
                .prop_map(|(func, token, serializer, kwds)| Value::Proxy(Box::new(
                    Proxy {
                        func,
                        token,
                        serializer,
                        kwds,
                    }
                ))),
            (
                global_of(&[
                    ("builtins", "KeyError"),
                    ("builtins", "ValueError"),
                    ("_queue", "Empty"),
                    ("queue", "Full"),
                    ("threading", "BrokenBarrierError"),
                    ("multiprocessing.managers", "RemoteError"),
                ]),
                vec(inner.clone(), 0..3),
                proptest::option::of(inner.clone()),
            )
                .prop_map(|(class, args, state)| Value::Exception(Box::new(
                    PyException { class, args, state }
                ))),
            instance(inner.boxed()),
        ]
    })
}

fn instance(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let user = global_of(&[
        ("__main__", "Point"),
        ("myapp.models", "User"),
        ("pkg", "Thing"),
        ("uuid", "UUID"),
        ("multiprocessing.managers", "Namespace"),
    ]);
    let data = global_of(&[
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("datetime", "datetime"),
        ("decimal", "Decimal"),
        ("array", "_array_reconstructor"),
    ]);
    let base = global_of(&[
        ("builtins", "object"),
        ("builtins", "list"),
        ("builtins", "dict"),
    ]);
    let make = prop_oneof![
        vec(inner.clone(), 0..3).prop_map(Make::NewObj),
        (vec(inner.clone(), 0..3), keywords(inner.clone()))
            .prop_map(|(args, kwargs)| Make::NewObjEx { args, kwargs }),
        (base, inner.clone())
            .prop_map(|(base, base_state)| Make::Reconstructor { base, base_state }),
    ];
    let made = prop_oneof![
        (user, make),
        (data, vec(inner.clone(), 0..3).prop_map(Make::Call)),
    ];
    (
        made,
        vec(inner.clone(), 0..3),
        vec((hashable(), inner.clone()), 0..3),
        proptest::option::of(inner),
    )
        .prop_map(|((global, make), list_items, dict_items, state)| {
            Value::Instance(Box::new(Instance {
                global,
                make,
                list_items,
                dict_items,
                state,
            }))
        })
}

const PROTOCOLS: [Protocol; 4] = [Protocol::V2, Protocol::V3, Protocol::V4, Protocol::V5];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..256)) {
        let _ = read(&data, &small_limits());
        let _ = read(&data, &Limits::default());
    }

    #[test]
    fn opcode_soup_never_panics(data in opcode_soup()) {
        let _ = read(&data, &small_limits());
        let _ = read(&data, &Limits::default());
    }

    #[test]
    fn values_round_trip_in_every_protocol(v in value()) {
        for protocol in PROTOCOLS {
            let data = dumps(&v, protocol).map_err(|e| TestCaseError::fail(format!("{protocol:?}: {e}")))?;
            let back = read(&data, &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{protocol:?}: {e}")))?;
            prop_assert_eq!(&back.value, &v, "{:?}", protocol);
            prop_assert_eq!(back.protocol, protocol.number());
        }
    }

    #[test]
    fn truncated_and_corrupted_pickles_are_errors_not_panics(v in value(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let data = dumps(&v, Protocol::V4).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let n = cut.index(data.len());
        prop_assert!(read(&data[..n], &Limits::default()).is_err());
        let mut bad = data.clone();
        let i = flip.0.index(bad.len());
        bad[i] ^= flip.1;
        let _ = read(&bad, &small_limits());
    }
}
