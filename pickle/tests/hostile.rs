//! Hostile pickles: each is answered with a typed error naming what was
//! refused or which bound was hit, without a panic and without allocating
//! what the pickle claims.

use std::time::Instant;

use mp_pickle::{read, Global, Limits, Refusal, UnpicklingError, Value};

/// Protocol 4 header (no frame; frames are optional).
const P4: &[u8] = b"\x80\x04";

fn sbu(s: &str) -> Vec<u8> {
    let mut out = vec![0x8c, s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// `module.name` by `STACK_GLOBAL`.
fn stack_global(module: &str, name: &str) -> Vec<u8> {
    [sbu(module), sbu(name), vec![0x93]].concat()
}

fn pickle(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = P4.to_vec();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

fn err(data: &[u8]) -> UnpicklingError {
    let started = Instant::now();
    let out = read(data, &Limits::default());
    eprintln!("{:?} for {} bytes", started.elapsed(), data.len());
    match out {
        Ok(v) => panic!("accepted: {:?}", v.value),
        Err(e) => e,
    }
}

fn refused(e: &UnpicklingError) -> &Refusal {
    match e {
        UnpicklingError::Refused(r) => r,
        other => panic!("not a refusal: {other}"),
    }
}

#[test]
fn os_system_by_reduce_is_refused_with_its_name() {
    // os.system('id'), as `pickle.dumps` of a __reduce__ payload writes it
    let e = err(&pickle(&[
        &stack_global("posix", "system"),
        &sbu("id"),
        b"\x85R.",
    ]));
    assert_eq!(
        e.to_string(),
        "global posix.system is not allowed: this server runs no code"
    );
    assert!(matches!(refused(&e), Refusal::Forbidden(g) if g.is("posix", "system")));
    // the classic protocol 0 form: GLOBAL then a quoted string
    let e = err(b"cos\nsystem\n(S'id'\ntR.");
    assert!(matches!(refused(&e), Refusal::Forbidden(g) if g.is("os", "system")));
    // and Windows' module
    let e = err(b"cnt\nsystem\n(Vid\ntR.");
    assert!(matches!(refused(&e), Refusal::Forbidden(g) if g.is("nt", "system")));
}

#[test]
fn builtins_that_run_code_are_refused() {
    for name in [
        "eval",
        "exec",
        "getattr",
        "__import__",
        "open",
        "compile",
        "globals",
    ] {
        let e = err(&pickle(&[
            &stack_global("builtins", name),
            &sbu("1"),
            b"\x85R.",
        ]));
        assert!(
            matches!(refused(&e), Refusal::Forbidden(g) | Refusal::BadName(g) if g.is("builtins", name)),
            "{name}: {e}"
        );
    }
    // Python 2's name for builtins maps to it first
    let e = err(b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.");
    assert!(matches!(refused(&e), Refusal::Forbidden(g) if g.is("builtins", "eval")));
}

#[test]
fn subprocess_and_other_stdlib_gadgets_are_refused_however_used() {
    // called
    let e = err(&pickle(&[
        &stack_global("subprocess", "Popen"),
        b"]",
        &sbu("true"),
        b"a\x85R.",
    ]));
    assert!(matches!(refused(&e), Refusal::Forbidden(g) if g.is("subprocess", "Popen")));
    // instantiated without a call, for its __del__
    let e = err(&pickle(&[
        &stack_global("subprocess", "Popen"),
        b")\x81}b.",
    ]));
    assert!(matches!(refused(&e), Refusal::Forbidden(_)));
    // tempfile's closer unlinks a path when collected
    let e = err(&pickle(&[
        &stack_global("tempfile", "_TemporaryFileCloser"),
        b")\x81.",
    ]));
    assert!(matches!(refused(&e), Refusal::Forbidden(_)));
    for (m, n) in [
        ("functools", "partial"),
        ("operator", "attrgetter"),
        ("operator", "methodcaller"),
        ("importlib", "import_module"),
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("marshal", "loads"),
        ("types", "FunctionType"),
        ("codecs", "open"),
        ("socket", "socket"),
        ("sys", "exit"),
        ("shutil", "rmtree"),
        ("ctypes", "CDLL"),
        ("runpy", "run_path"),
    ] {
        let e = err(&pickle(&[&stack_global(m, n), b")R."]));
        assert!(
            matches!(refused(&e), Refusal::Forbidden(g) if g.is(m, n)),
            "{m}.{n}: {e}"
        );
    }
}

#[test]
fn a_user_function_cannot_be_called_and_a_class_cannot_be_passed_alone() {
    let e = err(&pickle(&[&stack_global("mymodule", "delete_all"), b")R."]));
    assert!(
        matches!(refused(&e), Refusal::NotCallable(g) if *g == Global::new("mymodule", "delete_all"))
    );
    assert!(e.to_string().contains("cannot be called"), "{e}");
    let e = err(&pickle(&[&stack_global("mymodule", "Thing"), b"."]));
    assert!(matches!(refused(&e), Refusal::NotAValue(_)));
    // an attribute path out of a user module reaches os
    let e = err(&pickle(&[
        &stack_global("mymodule", "os.system"),
        b")\x81.",
    ]));
    assert!(matches!(refused(&e), Refusal::BadName(_)));
    // a proxy type that is not one of multiprocessing.managers'
    let token = [
        stack_global("multiprocessing.managers", "Token"),
        b")\x81".to_vec(),
        sbu("dict"),
        sbu("/tmp/x"),
        sbu("7f"),
        b"\x87b".to_vec(),
    ]
    .concat();
    let e = err(&pickle(&[
        &stack_global("multiprocessing.managers", "RebuildProxy"),
        b"(",
        &stack_global("mymodule", "Evil"),
        &token,
        &sbu("pickle"),
        b"}tR.",
    ]));
    assert!(e.to_string().contains("not a proxy type"), "{e}");
}

#[test]
fn a_memo_bomb_hits_the_value_budget() {
    // one 1 MiB str, then five levels of lists each holding the level
    // below 1000 times: 10^15 MiB if expanded
    let mut data = P4.to_vec();
    data.push(0x8d); // BINUNICODE8
    data.extend_from_slice(&(1u64 << 20).to_le_bytes());
    data.extend(std::iter::repeat(b'x').take(1 << 20));
    data.push(0x94); // MEMOIZE as 0
    for level in 0..5u32 {
        data.extend_from_slice(b"](");
        for _ in 0..1000 {
            data.push(b'j'); // LONG_BINGET
            data.extend_from_slice(&level.to_le_bytes());
        }
        data.extend_from_slice(b"e\x94"); // APPENDS, MEMOIZE as level + 1
    }
    data.push(b'.');
    // the stack still holds the str and the lists: only the last is the
    // value, so drop the others with POP_MARK framing instead
    let e = err(&fix_stack(data));
    assert_eq!(
        e,
        UnpicklingError::ValueTooLarge {
            limit: Limits::DEFAULT_MAX_VALUE_BYTES
        }
    );
    // the same shape with small items: many nodes rather than many bytes
    let mut data = P4.to_vec();
    data.extend_from_slice(b"K\x01\x94");
    for level in 0..6u32 {
        data.extend_from_slice(b"](");
        for _ in 0..100 {
            data.push(b'j');
            data.extend_from_slice(&level.to_le_bytes());
        }
        data.extend_from_slice(b"e\x94");
    }
    data.push(b'.');
    assert!(matches!(
        err(&fix_stack(data)),
        UnpicklingError::ValueTooLarge { .. }
    ));
}

/// Wraps everything after the header in `MARK … POP_MARK` except the last
/// value, so that the stack ends with one item: the memo keeps the rest.
fn fix_stack(data: Vec<u8>) -> Vec<u8> {
    // body without header and STOP; the last value starts at the last "]("
    let body = &data[2..data.len() - 1];
    let last = body.windows(2).rposition(|w| w == b"](").expect("a list");
    let mut out = P4.to_vec();
    out.push(b'(');
    out.extend_from_slice(&body[..last]);
    out.push(b'1'); // POP_MARK: drop the earlier levels, memo keeps them
    out.extend_from_slice(&body[last..]);
    out.push(b'.');
    out
}

#[test]
fn deep_nesting_is_refused_at_the_depth_limit() {
    let limit = Limits::DEFAULT_MAX_DEPTH;
    // 100k open MARKs
    let data = pickle(&[&vec![b'('; 100_000], b"N."]);
    assert_eq!(err(&data), UnpicklingError::TooDeep { limit });
    // 100k nested lists without a MARK: [[[...]]]
    let data = pickle(&[&vec![b']'; 100_000], &vec![b'a'; 99_999], b"."]);
    assert_eq!(err(&data), UnpicklingError::TooDeep { limit });
    // 100k nested 1-tuples
    let data = pickle(&[b"N", &vec![0x85; 100_000], b"."]);
    assert_eq!(err(&data), UnpicklingError::TooDeep { limit });
    // depth built through the memo with a stack that never grows:
    // x1 = [x0], x2 = [x1], ... each popped after it is memoized
    let mut data = P4.to_vec();
    data.extend_from_slice(b"]\x940");
    for i in 0..100_000u32 {
        data.extend_from_slice(b"]\x94j");
        data.extend_from_slice(&i.to_le_bytes());
        data.extend_from_slice(b"a0");
    }
    data.push(b'j');
    data.extend_from_slice(&100_000u32.to_le_bytes());
    data.push(b'.');
    assert_eq!(err(&data), UnpicklingError::TooDeep { limit });
}

#[test]
fn huge_length_prefixes_fail_before_allocating() {
    // BINUNICODE8 claiming 2^62 bytes
    let e = err(&pickle(&[b"\x8d", &(1u64 << 62).to_le_bytes(), b"abc."]));
    assert!(
        matches!(e, UnpicklingError::LengthPastEnd { opcode: "BINUNICODE8", len, .. } if len == 1 << 62),
        "{e}"
    );
    for op in [0x8e_u8, 0x96, 0x95] {
        // BINBYTES8, BYTEARRAY8, FRAME
        let e = err(&pickle(&[&[op], &u64::MAX.to_le_bytes(), b"."]));
        assert!(matches!(e, UnpicklingError::LengthPastEnd { .. }), "{e}");
    }
    // BINUNICODE and BINBYTES claiming 4 GiB - 1
    for op in [b'X', b'B'] {
        let e = err(&pickle(&[&[op], &u32::MAX.to_le_bytes(), b"."]));
        assert!(matches!(e, UnpicklingError::LengthPastEnd { .. }), "{e}");
    }
    // a LONG4 of 1 GiB
    let e = err(&pickle(&[b"\x8b", &(1u32 << 30).to_le_bytes(), b"\x00."]));
    assert_eq!(
        e,
        UnpicklingError::IntTooLarge {
            bytes: 1 << 30,
            limit: 128
        }
    );
    // a LONG4 within the input but past the int bound
    let e = err(&pickle(&[b"\x8b", &129u32.to_le_bytes(), &[1; 129], b"."]));
    assert!(matches!(e, UnpicklingError::IntTooLarge { bytes: 129, .. }));
    // a 2000-digit protocol 0 LONG
    let e = err(&[b"L".as_slice(), &[b'9'; 2000], b"L\n."].concat());
    assert!(matches!(e, UnpicklingError::IntTooLarge { .. }), "{e}");
    // a memo index of 4 Gi
    let e = err(&pickle(&[b"Nr\xff\xff\xff\xff."]));
    assert!(matches!(e, UnpicklingError::MemoTooLarge { .. }), "{e}");
}

#[test]
fn the_input_and_every_limit_are_configurable() {
    let data = pickle(&[b"]", &[b'K', 1].repeat(100), b"."]);
    let small = Limits {
        max_input_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        read(&data, &small).unwrap_err(),
        UnpicklingError::InputTooLarge {
            len: data.len(),
            limit: 10
        }
    );
    let tight = Limits {
        max_value_bytes: 1000,
        ..Limits::default()
    };
    let many = pickle(&[b"](", &[b'K', 1].repeat(500), b"e."]);
    assert!(matches!(
        read(&many, &tight).unwrap_err(),
        UnpicklingError::ValueTooLarge { limit: 1000 }
    ));
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    // [[[]]]: the innermost list is 2 levels below the top
    assert!(read(b"\x80\x04]]]aa.", &shallow).is_ok());
    assert!(matches!(
        read(b"\x80\x04]]]]aaa.", &shallow).unwrap_err(),
        UnpicklingError::TooDeep { limit: 2 }
    ));
    let ints = Limits {
        max_int_bytes: 8,
        ..Limits::default()
    };
    assert!(read(b"\x80\x04\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", &ints).is_ok());
    assert!(read(
        b"\x80\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.",
        &ints
    )
    .is_err());
    let memo = Limits {
        max_memo_entries: 2,
        ..Limits::default()
    };
    assert!(read(b"\x80\x04N\x94N\x94\x86.", &memo).is_ok());
    assert!(matches!(
        read(b"\x80\x04N\x94N\x94N\x94\x87.", &memo).unwrap_err(),
        UnpicklingError::MemoTooLarge { index: 2, limit: 2 }
    ));
}

#[test]
fn recursive_structures_are_refused() {
    // l = []; l.append(l)
    assert_eq!(err(b"\x80\x04]\x94h\x00a."), UnpicklingError::Recursive);
    // d = {}; d['d'] = d
    assert_eq!(
        err(b"\x80\x04}\x94\x8c\x01dh\x00s."),
        UnpicklingError::Recursive
    );
    // an instance whose state holds itself
    let data = pickle(&[
        &stack_global("__main__", "Node"),
        b")\x81\x94}\x94\x8c\x04selfh\x00sb.",
    ]);
    assert_eq!(err(&data), UnpicklingError::Recursive);
}

#[test]
fn malformed_streams_are_typed_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "pickle data was truncated"),
        (b"\x80\x04", "pickle data was truncated"),
        (b"\x80\x04N", "pickle data was truncated"),
        (b"\x80\x06N.", "unsupported pickle protocol: 6"),
        (b"\x80\x04\xff.", "invalid load key, '\\xff'"),
        (b"\x80\x04.", "pickle ends with 0 items"),
        (b"\x80\x04NN.", "pickle ends with 2 items"),
        (b"\x80\x04N.x", "trailing data"),
        (b"\x80\x04a.", "unpickling stack underflow"),
        (b"\x80\x04(Na.", "unpickling stack underflow"),
        (b"\x80\x04Nt.", "could not find MARK"),
        (b"\x80\x04h\x05.", "memo value not found at index 5"),
        (b"\x80\x04(K\x01K\x02K\x03d.", "odd number of items"),
        (b"\x80\x04NK\x01a.", "APPEND applied to a NoneType"),
        (b"\x80\x04)K\x01a.", "APPEND applied to a tuple"),
        (b"\x80\x04]}b.", "BUILD applied to a list"),
        (b"\x80\x04]]R.", "REDUCE of a list object"),
        (b"\x80\x04K\x01K\x02\x93.", "STACK_GLOBAL requires str"),
        (b"\x80\x04}]K\x01s.", "unhashable type: 'list'"),
        (b"\x80\x04\x8f(]\x90.", "unhashable type: 'list'"),
        (b"\x80\x04(}\x91.", "unhashable type: 'dict'"),
        (b"\x80\x04}(]\x85K\x01u.", "unhashable type: 'list'"),
        (b"\x80\x04X\x02\x00\x00\x00\xed\xa0.", "not UTF-8"),
        (b"\x80\x04\x8c\x03\xed\xa0\x80.", "lone surrogate"),
        (b"\x80\x04\x8b\xff\xff\xff\xff.", "negative byte count"),
        (b"\x80\x04P1\n.", "persistent IDs"),
        (b"\x80\x04N\x82\x01.", "extension registry"),
        (b"\x80\x05\x97.", "out-of-band buffers"),
        (b"S'abc'\n.", "STRING is not supported"),
        (b"Ix\n.", "invalid literal for INT"),
        (b"Fx\n.", "could not convert string to float"),
        (b"T\x01\x00\x00\x00\xff.", "'ascii' codec"),
        (b"V\\ud800\n.", "lone surrogate"),
    ];
    for (data, want) in cases {
        let e = err(data);
        assert!(e.to_string().contains(want), "{data:?}: {e}");
    }
}

#[test]
fn misused_allow_listed_globals_are_typed_errors() {
    let g = stack_global;
    let m = "multiprocessing.managers";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // a Token whose state is not (typeid, address, id)
        (
            [g(m, "Token"), b")\x81N\x85b.".to_vec()].concat(),
            "malformed Token",
        ),
        (
            [g(m, "Token"), b")\x81.".to_vec()].concat(),
            "malformed Token",
        ),
        (
            [
                g(m, "Token"),
                b")\x81".to_vec(),
                sbu("d"),
                b"\x8c\x01hJ\x00\x00\x01\x00\x86".to_vec(),
                sbu("1"),
                b"\x87b.".to_vec(),
            ]
            .concat(),
            "port 65536 is out of range",
        ),
        // RebuildProxy with the wrong arguments
        (
            [g(m, "RebuildProxy"), b")R.".to_vec()].concat(),
            "tuple of 4",
        ),
        (
            [g(m, "RebuildProxy"), b"(NNNNtR.".to_vec()].concat(),
            "not a proxy type",
        ),
        // a proxy class is not a value of its own
        (
            [g(m, "DictProxy"), b".".to_vec()].concat(),
            "cannot be passed by itself",
        ),
        // built-in constructors with arguments Python would reject or that
        // would allocate (bytearray(10**12))
        (
            [
                g("builtins", "bytearray"),
                b"J\x00\x10\xa5\xd4\x85R.".to_vec(),
            ]
            .concat(),
            "not supported",
        ),
        (
            [g("builtins", "range"), b"K\x01K\x02K\x00\x87R.".to_vec()].concat(),
            "must not be zero",
        ),
        (
            [g("builtins", "slice"), b")R.".to_vec()].concat(),
            "not supported",
        ),
        (
            [g("builtins", "set"), b"K\x01\x85R.".to_vec()].concat(),
            "not supported",
        ),
        (
            [g("builtins", "complex"), b"\x8c\x011\x85R.".to_vec()].concat(),
            "not supported",
        ),
        (
            [
                g("_codecs", "encode"),
                sbu("\u{2603}"),
                sbu("latin1"),
                b"\x86R.".to_vec(),
            ]
            .concat(),
            "not supported",
        ),
        (
            [
                g("_codecs", "encode"),
                sbu("a"),
                sbu("utf-8"),
                b"\x86R.".to_vec(),
            ]
            .concat(),
            "not supported",
        ),
        // arguments that are not a tuple
        (
            [g("builtins", "KeyError"), b"]R.".to_vec()].concat(),
            "tuple of arguments",
        ),
        (
            [g("__main__", "P"), b"]\x81.".to_vec()].concat(),
            "tuple of arguments",
        ),
        // copyreg's reconstructor with a base that is not a built-in type
        (
            [
                g("copyreg", "_reconstructor"),
                g("__main__", "P"),
                g("__main__", "Q"),
                b"N\x87R.".to_vec(),
            ]
            .concat(),
            "not a built-in type",
        ),
        // ... or an instance of a refused class
        (
            [
                g("copyreg", "_reconstructor"),
                g("os", "PathLike"),
                g("builtins", "object"),
                b"N\x87R.".to_vec(),
            ]
            .concat(),
            "os.PathLike is not allowed",
        ),
        // keyword arguments that are not strs
        (
            [g("__main__", "P"), b")}K\x01K\x02s\x92.".to_vec()].concat(),
            "keywords must be strings",
        ),
        // a BUILD twice, items after BUILD
        (
            [g("__main__", "P"), b")\x81NbNb.".to_vec()].concat(),
            "BUILD applied twice",
        ),
        (
            [g("__main__", "P"), b")\x81NbK\x01a.".to_vec()].concat(),
            "before its BUILD",
        ),
        // a set built by a call takes no items
        (
            [g("builtins", "set"), b")RK\x01a.".to_vec()].concat(),
            "takes no items",
        ),
    ];
    for (data, want) in cases {
        let data = pickle(&[&data]);
        let e = err(&data);
        assert!(e.to_string().contains(want), "{data:?}: {e}");
    }
}

#[test]
fn every_truncation_of_a_real_pickle_is_an_error() {
    // ('#ERROR', KeyError('k')) as CPython 3.11 pickles it
    let full = b"\x80\x04\x95\x2c\x00\x00\x00\x00\x00\x00\x00\x8c\x06#ERROR\x94\x8c\x08builtins\x94\x8c\x08KeyError\x94\x93\x94\x8c\x01k\x94\x85\x94R\x94\x86\x94.";
    assert!(matches!(mp_pickle::loads(full), Ok(Value::Tuple(_))));
    for n in 0..full.len() {
        assert!(read(&full[..n], &Limits::default()).is_err(), "prefix {n}");
    }
}
