//! The reader and writer on fixed vectors, without Python: CPython's own
//! pickles (recorded from CPython 3.11, protocols 0–4), the opcodes the
//! writer picks, and what the writer refuses.

use mp_pickle::{
    dumps, loads, read, Address, Global, Instance, Limits, Make, PicklingError, Protocol, Proxy,
    ProxyKind, PyException, PyInt, Refusal, Token, Value,
};

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn unhex(hex: &str) -> Vec<u8> {
    let hex: String = hex.split_whitespace().collect();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn cpython_manager_messages_read_and_write_back() {
    // (None, 'dummy', (), {}) from CPython 3.11, with its MEMOIZEs
    let dummy = unhex("8004951000000000000000284e8c0564756d6d7994297d9474942e");
    let v = loads(&dummy).unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![
            Value::None,
            s("dummy"),
            Value::Tuple(vec![]),
            Value::Dict(vec![])
        ])
    );
    // the same bytes without the memo
    assert_eq!(
        dumps(&v, Protocol::V4).unwrap(),
        unhex("8004 950d00000000000000 28 4e 8c0564756d6d79 29 7d 74 2e")
    );
    // ('#ERROR', KeyError('k'))
    let error = unhex(
        "8004952c000000000000008c06234552524f52948c086275696c74696e73948c084b65794572726f72\
         9493948c016b948594529486942e",
    );
    let v = loads(&error).unwrap();
    let exc = PyException::builtin("KeyError", vec![s("k")]);
    assert_eq!(
        v,
        Value::Tuple(vec![s("#ERROR"), Value::Exception(Box::new(exc))])
    );
    assert_eq!(
        dumps(&v, Protocol::V4).unwrap(),
        unhex(
            "8004 952400000000000000 8c06234552524f52 8c086275696c74696e73 8c084b65794572726f72 \
             93 8c016b 85 52 86 2e"
        )
    );
}

#[test]
fn protocol_0_and_1_pickles_read() {
    // a dataclass Point(1, 'aé') in protocol 0: copy_reg._reconstructor
    let point = b"ccopy_reg\n_reconstructor\np0\n(c__main__\nPoint\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nVx\np6\nI1\nsVy\np7\nVa\xe9\np8\nsb.";
    let u = read(point, &Limits::default()).unwrap();
    assert_eq!(u.protocol, 0);
    let Value::Instance(i) = u.value else {
        panic!("{:?}", u.value)
    };
    assert_eq!(i.global, Global::new("__main__", "Point"));
    assert_eq!(
        i.make,
        Make::Reconstructor {
            base: Global::new("builtins", "object"),
            base_state: Value::None
        }
    );
    assert_eq!(
        i.state,
        Some(Value::Dict(vec![
            (s("x"), Value::Int(1)),
            (s("y"), s("aé"))
        ]))
    );
    // a Token in protocol 0
    let token = b"ccopy_reg\n_reconstructor\np0\n(cmultiprocessing.managers\nToken\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(Vdict\np5\n(Vh\np6\nI5\ntp7\nV7f\np8\ntp9\nb.";
    assert_eq!(
        loads(token).unwrap(),
        Value::Token(Box::new(Token {
            typeid: "dict".into(),
            address: Address::Inet {
                host: "h".into(),
                port: 5
            },
            id: "7f".into()
        }))
    );
    // ({1, 2}, True, 2**70, b'\x00\xff', -1.5, [None]) in protocols 1 and 0
    let big = PyInt::from_le_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0x40]);
    let want = Value::Tuple(vec![
        Value::Set(vec![Value::Int(1), Value::Int(2)]),
        Value::Bool(true),
        Value::from(big),
        Value::Bytes(vec![0, 0xff]),
        Value::Float(-1.5),
        Value::List(vec![Value::None]),
    ]);
    let p1 = b"(c__builtin__\nset\nq\x00(]q\x01(K\x01K\x02etq\x02Rq\x03I01\nL1180591620717411303424L\nc_codecs\nencode\nq\x04(X\x03\x00\x00\x00\x00\xc3\xbfq\x05X\x06\x00\x00\x00latin1q\x06tq\x07Rq\x08G\xbf\xf8\x00\x00\x00\x00\x00\x00]q\tNatq\n.";
    assert_eq!(loads(p1).unwrap(), want);
    let p0 = b"(c__builtin__\nset\np0\n((lp1\nI1\naI2\natp2\nRp3\nI01\nL1180591620717411303424L\nc_codecs\nencode\np4\n(V\\u0000\xff\np5\nVlatin1\np6\ntp7\nRp8\nF-1.5\n(lp9\nNatp10\n.";
    assert_eq!(loads(p0).unwrap(), want);
    // KeyError('k') in protocol 0, named by Python 2's module
    assert_eq!(
        loads(b"cexceptions\nKeyError\np0\n(Vk\np1\ntp2\nRp3\n.").unwrap(),
        Value::Exception(Box::new(PyException::builtin("KeyError", vec![s("k")])))
    );
}

#[test]
fn python_2_names_are_read_as_python_3_names() {
    let cases: &[(&[u8], Value)] = &[
        (
            b"\x80\x02c__builtin__\nxrange\nK\x03\x85R.",
            loads(b"\x80\x04\x8c\x08builtins\x8c\x05range\x93K\x03\x85R.").unwrap(),
        ),
        (
            b"\x80\x02cQueue\nFull\n)R.",
            Value::Exception(Box::new(PyException::queue_full())),
        ),
        (
            b"\x80\x02cmultiprocessing\nTimeoutError\n)R.",
            Value::Exception(Box::new(PyException::new(
                "multiprocessing.context",
                "TimeoutError",
                vec![],
            ))),
        ),
        (
            b"\x80\x02c__builtin__\nlong\n.",
            Value::Global(Box::new(Global::new("builtins", "int"))),
        ),
    ];
    for (data, want) in cases {
        assert_eq!(&loads(data).unwrap(), want, "{data:?}");
    }
}

#[test]
fn the_memo_refers_to_the_object_as_it_ends_up() {
    // l = [] memoized, filled afterwards, then referenced: ([1, 2], [1, 2])
    let v = loads(b"\x80\x04]\x94(K\x01K\x02eh\x00\x86.").unwrap();
    let l = Value::List(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(v, Value::Tuple(vec![l.clone(), l]));
    // PUT/GET in text, DUP, POP and POP_MARK
    let v = loads(b"I7\np3\n0g3\n2N0\x86.").unwrap();
    assert_eq!(v, Value::Tuple(vec![Value::Int(7), Value::Int(7)]));
    let v = loads(b"\x80\x04K\x01(K\x02K\x031.").unwrap();
    assert_eq!(v, Value::Int(1));
    // POP with nothing above the mark pops the mark
    let v = loads(b"\x80\x04K\x01(0.").unwrap();
    assert_eq!(v, Value::Int(1));
}

#[test]
fn inst_and_obj_call_only_allow_listed_classes() {
    let v = loads(b"(Vk\nibuiltins\nKeyError\n.").unwrap();
    assert_eq!(
        v,
        Value::Exception(Box::new(PyException::builtin("KeyError", vec![s("k")])))
    );
    let v = loads(b"(ccollections\nOrderedDict\no.").unwrap();
    assert!(matches!(v, Value::Instance(i) if i.make == Make::Call(vec![])));
    assert!(matches!(
        loads(b"(Vk\nimymod\nf\n."),
        Err(mp_pickle::UnpicklingError::Refused(Refusal::NotCallable(_)))
    ));
}

#[test]
fn the_writer_picks_cpythons_opcodes() {
    let p = |v: &Value, proto| dumps(v, proto).unwrap();
    // small payloads have no frame
    assert_eq!(p(&Value::None, Protocol::V4), b"\x80\x04N.");
    assert_eq!(p(&Value::None, Protocol::V2), b"\x80\x02N.");
    // ints by size
    assert_eq!(p(&Value::Int(255), Protocol::V2), b"\x80\x02K\xff.");
    assert_eq!(p(&Value::Int(256), Protocol::V2), b"\x80\x02M\x00\x01.");
    assert_eq!(
        p(&Value::Int(-1), Protocol::V2),
        b"\x80\x02J\xff\xff\xff\xff."
    );
    assert_eq!(
        p(&Value::Int(1 << 40), Protocol::V2),
        b"\x80\x02\x8a\x06\x00\x00\x00\x00\x00\x01."
    );
    // a long big int takes LONG4
    let huge = Value::from(PyInt::from_le_bytes(&[1; 300]));
    let data = p(&huge, Protocol::V4);
    assert_eq!(data[11], 0x8b);
    let roomy = Limits {
        max_int_bytes: 300,
        ..Limits::default()
    };
    assert_eq!(read(&data, &roomy).unwrap().value, huge);
    // bytes in protocol 2 are _codecs.encode(latin1 text)
    assert_eq!(
        p(&Value::Bytes(vec![0xe9]), Protocol::V2),
        b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xa9X\x06\x00\x00\x00latin1\x86R."
    );
    assert_eq!(
        p(&Value::Bytes(vec![]), Protocol::V2),
        b"\x80\x02cbuiltins\nbytes\n)R."
    );
    assert_eq!(
        p(&Value::Bytes(vec![7]), Protocol::V3),
        b"\x80\x03C\x01\x07."
    );
    assert_eq!(
        p(&Value::ByteArray(vec![7]), Protocol::V5),
        b"\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x96\x01\x00\x00\x00\x00\x00\x00\x00\x07."
    );
    // items in batches of 1000
    let list = Value::List(vec![Value::None; 2500]);
    let data = p(&list, Protocol::V4);
    assert_eq!(data.iter().filter(|&&b| b == b'e').count(), 3);
    assert_eq!(data.iter().filter(|&&b| b == b'(').count(), 3);
    assert_eq!(loads(&data).unwrap(), list);
    let one = Value::List(vec![Value::Int(1)]);
    assert_eq!(
        p(&one, Protocol::V4),
        b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]K\x01a."
    );
    // a Token, as CPython pickles it
    let token = Token {
        typeid: "dict".into(),
        address: Address::Path("/p".into()),
        id: "7f".into(),
    };
    let data = p(&Value::Token(Box::new(token.clone())), Protocol::V4);
    let want: Vec<u8> = [
        b"\x80\x04\x95\x35\x00\x00\x00\x00\x00\x00\x00".as_slice(),
        b"\x8c\x18multiprocessing.managers\x8c\x05Token\x93)\x81",
        b"\x8c\x04dict\x8c\x02/p\x8c\x027f\x87b.",
    ]
    .concat();
    assert_eq!(data, want);
    // a proxy reads back as itself in every protocol
    let proxy = Value::Proxy(Box::new(Proxy {
        func: ProxyKind::AutoProxy,
        token,
        serializer: "pickle".into(),
        kwds: vec![("exposed".into(), Value::Tuple(vec![s("get"), s("put")]))],
    }));
    for proto in [Protocol::V2, Protocol::V3, Protocol::V4, Protocol::V5] {
        assert_eq!(loads(&p(&proxy, proto)).unwrap(), proxy);
    }
}

#[test]
fn the_reply_protocol_follows_the_request() {
    assert_eq!(Protocol::default(), Protocol::V4);
    assert_eq!(Protocol::for_reply(0), Protocol::V2);
    assert_eq!(Protocol::for_reply(1), Protocol::V2);
    assert_eq!(Protocol::for_reply(3), Protocol::V3);
    assert_eq!(Protocol::for_reply(5), Protocol::V5);
    assert_eq!(Protocol::new(6), None);
    let mut out = b"header".to_vec();
    mp_pickle::dump_into(&Value::Int(1), Protocol::V3, &mut out).unwrap();
    assert_eq!(out, b"header\x80\x03K\x01.");
}

#[test]
fn the_writer_refuses_what_the_reader_would() {
    let instance = |module: &str, name: &str, make: Make| {
        Value::Instance(Box::new(Instance {
            global: Global::new(module, name),
            make,
            list_items: vec![],
            dict_items: vec![],
            state: None,
        }))
    };
    let refusal = |v: &Value| match dumps(v, Protocol::V4) {
        Err(PicklingError::Refused(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        refusal(&instance("posix", "system", Make::Call(vec![s("id")]))),
        Refusal::Forbidden(_)
    ));
    assert!(matches!(
        refusal(&instance("mymod", "f", Make::Call(vec![]))),
        Refusal::NotCallable(_)
    ));
    assert!(matches!(
        refusal(&instance("subprocess", "Popen", Make::NewObj(vec![]))),
        Refusal::Forbidden(_)
    ));
    assert!(matches!(
        refusal(&Value::Global(Box::new(Global::new("mymod", "C")))),
        Refusal::NotAValue(_)
    ));
    assert!(matches!(
        refusal(&Value::Exception(Box::new(PyException::new(
            "os",
            "error",
            vec![]
        )))),
        Refusal::Forbidden(_)
    ));
    // a user's exception class is called like any user global
    assert!(matches!(
        refusal(&Value::Exception(Box::new(PyException::new(
            "mymod",
            "MyError",
            vec![]
        )))),
        Refusal::NotCallable(_)
    ));
    assert!(matches!(
        refusal(&instance("mymod", "os.system", Make::NewObj(vec![]))),
        Refusal::BadName(_)
    ));
    // forms the reader would turn into variants of their own
    for v in [
        instance("multiprocessing.managers", "Token", Make::NewObj(vec![])),
        instance("builtins", "complex", Make::Call(vec![])),
    ] {
        assert!(
            matches!(dumps(&v, Protocol::V4), Err(PicklingError::NotCanonical(_))),
            "{v:?}"
        );
    }
    // what Python could not load
    let bad_key = Value::Dict(vec![(Value::List(vec![]), Value::None)]);
    assert_eq!(
        dumps(&bad_key, Protocol::V4),
        Err(PicklingError::Unhashable("list"))
    );
    let bad_item = Value::FrozenSet(vec![Value::Tuple(vec![Value::Dict(vec![])])]);
    assert_eq!(
        dumps(&bad_item, Protocol::V2),
        Err(PicklingError::Unhashable("dict"))
    );
    let mut deep = Value::None;
    for _ in 0..mp_pickle::write::MAX_DEPTH + 5 {
        deep = Value::List(vec![deep]);
    }
    assert_eq!(
        dumps(&deep, Protocol::V4),
        Err(PicklingError::TooDeep {
            limit: mp_pickle::write::MAX_DEPTH
        })
    );
}

/// Nests `depth` levels of each kind of container or object around `None`.
fn nested(depth: usize, kind: usize) -> Value {
    let mut v = Value::None;
    for _ in 0..depth {
        v = match kind {
            0 => Value::List(vec![v]),
            1 => Value::Dict(vec![(Value::Int(1), v)]),
            2 => Value::Exception(Box::new(PyException::builtin("KeyError", vec![v]))),
            3 => Value::Instance(Box::new(Instance {
                global: Global::new("__main__", "Node"),
                make: Make::NewObj(vec![]),
                list_items: vec![],
                dict_items: vec![],
                state: Some(v),
            })),
            _ => Value::Instance(Box::new(Instance {
                global: Global::new("__main__", "Node"),
                make: Make::NewObjEx {
                    args: vec![],
                    kwargs: vec![("k".into(), v)],
                },
                list_items: vec![],
                dict_items: vec![],
                state: None,
            })),
        };
    }
    v
}

/// Whether this is a debug build, whose stack frames are larger.
static DEBUG: bool = cfg!(debug_assertions);

#[test]
fn deep_values_fit_a_small_thread_stack() {
    // tokio's worker threads have 2 MiB stacks. Well below the bounds the
    // recursion both ways fits one in any build; at the bounds it fits in
    // release builds, and in debug builds (frames several times larger)
    // the stack guard may stop it first, with a typed error, never an
    // abort.
    let worker = std::thread::Builder::new().stack_size(2 << 20);
    let handle = worker
        .spawn(|| {
            let max = mp_pickle::write::MAX_DEPTH;
            let loose = Limits {
                max_depth: max,
                ..Limits::default()
            };
            for kind in 0..5 {
                let v = nested(100, kind);
                let data = dumps(&v, Protocol::V4).expect("writes");
                assert!(read(&data, &loose).map(|u| u.value) == Ok(v), "kind {kind}");

                let deepest = nested(max, kind);
                match dumps(&deepest, Protocol::V4) {
                    Ok(data) => match read(&data, &loose) {
                        Ok(u) => assert!(u.value == deepest, "kind {kind}"),
                        Err(e) => {
                            assert!(DEBUG, "kind {kind}: {e}");
                            assert_eq!(e, mp_pickle::UnpicklingError::TooDeep { limit: max });
                        }
                    },
                    Err(e) => {
                        assert!(DEBUG, "kind {kind}: {e}");
                        assert_eq!(e, PicklingError::TooDeep { limit: max });
                    }
                }
                let too_deep = dumps(&nested(Limits::DEFAULT_MAX_DEPTH + 1, kind), Protocol::V4);
                if let Ok(data) = too_deep {
                    assert!(matches!(
                        read(&data, &Limits::default()),
                        Err(mp_pickle::UnpicklingError::TooDeep { .. })
                    ));
                }
                // a bound far past any stack fails cleanly too
                let huge = Limits {
                    max_depth: 1_000_000,
                    ..Limits::default()
                };
                let mut deep = b"\x80\x04".to_vec();
                deep.extend(std::iter::repeat(b']').take(200_000));
                deep.extend(std::iter::repeat(b'a').take(199_999));
                deep.push(b'.');
                assert!(matches!(
                    read(&deep, &huge),
                    Err(mp_pickle::UnpicklingError::TooDeep { .. })
                ));
            }
        })
        .expect("spawn");
    assert!(handle.join().is_ok());
}
