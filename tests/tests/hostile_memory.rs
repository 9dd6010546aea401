//! Requests that would make the server allocate without bound, against
//! the real `mpserver` binary under an address-space limit: each is
//! answered `MemoryError` or `OverflowError` before anything is
//! allocated, the server lives, another client is unaffected, and the
//! server's peak memory stays within what its limits promise (see
//! deploy/README.md, "The memory one peer can make the server hold").

use mp_proto::message::Kwargs;
use mp_proto::{ErrorKind, Value};
use mp_tests::mpserver::{Options, ServerProcess};
use mp_tests::process_memory::{address_space, alive, limit_address_space, peak_rss};
use multiprocessing::managers::{ManagerClient, ManagerError};

const MIB: u64 = 1 << 20;

fn start(args: &[&str]) -> ServerProcess {
    ServerProcess::start_with(Options::args(args))
}

/// The kind of the error `result` must be.
fn kind<T: std::fmt::Debug>(result: Result<T, ManagerError>) -> ErrorKind {
    match result {
        Err(ManagerError::Remote(e)) => e.kind,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

fn call(
    c: &ManagerClient,
    id: mp_proto::ObjectId,
    method: &str,
    args: Vec<Value>,
) -> Result<Value, ManagerError> {
    c.call_method(id, method, args, Kwargs::new())?.into_value()
}

#[test]
fn repeating_a_large_list_is_a_memory_error_not_an_abort() {
    let server = start(&[]);
    // Whatever goes wrong may take the server to its address space plus
    // 2 GiB, no further: a regression fails here, the machine lives.
    limit_address_space(server.pid(), address_space(server.pid()) + (2 << 30));
    let c = server.client();
    let other = server.client();
    let list = c.create("list", vec![], Kwargs::new()).unwrap().token.id;
    let big = Value::Str("x".repeat(MIB as usize));
    call(&c, list, "append", vec![big]).unwrap();
    for method in ["__imul__", "__mul__", "__rmul__"] {
        assert_eq!(
            kind(call(&c, list, method, vec![4000.into()])),
            ErrorKind::MemoryError,
            "{method}"
        );
    }
    // The list is as it was, the server alive, the other client served.
    assert_eq!(call(&c, list, "__len__", vec![]).unwrap(), Value::Int(1));
    other.ping().unwrap();
    assert!(alive(server.pid()));
    assert!(peak_rss(server.pid()) < 512 * MIB);
}

#[test]
fn a_list_from_a_long_string_is_bounded_by_bytes() {
    let server = start(&["--max-value-bytes", "67108864"]);
    limit_address_space(server.pid(), address_space(server.pid()) + (2 << 30));
    let c = server.client();
    // Ten million one-character strings would take ~700 MiB.
    let text = Value::Str("y".repeat(10_000_000));
    assert_eq!(
        kind(c.create("list", vec![text], Kwargs::new())),
        ErrorKind::MemoryError
    );
    c.ping().unwrap();
    assert!(peak_rss(server.pid()) < 512 * MIB);
}

#[test]
fn stores_past_max_memory_are_refused_and_change_nothing() {
    let server = start(&["--max-memory", "33554432"]);
    let c = server.client();
    let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
    let chunk = Value::Bytes(vec![7; MIB as usize]);
    let mut stored = 0;
    let refused = loop {
        match call(&c, d, "__setitem__", vec![stored.into(), chunk.clone()]) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 64, "32 MiB of budget took {stored} MiB");
    };
    assert_eq!(kind::<()>(Err(refused)), ErrorKind::MemoryError);
    assert!(
        stored >= 16,
        "only {stored} MiB stored under a 32 MiB budget"
    );
    assert_eq!(call(&c, d, "__len__", vec![]).unwrap(), Value::Int(stored));
    // Freeing gives the budget back.
    call(&c, d, "clear", vec![]).unwrap();
    call(&c, d, "__setitem__", vec![0.into(), chunk]).unwrap();
}

#[test]
fn a_semaphore_released_past_64_bits_is_an_overflow_error() {
    let server = start(&[]);
    let c = server.client();
    let s = c
        .create("Semaphore", vec![i64::MAX.into()], Kwargs::new())
        .unwrap()
        .token
        .id;
    call(&c, s, "release", vec![i64::MAX.into()]).unwrap();
    assert_eq!(
        kind(call(&c, s, "release", vec![2.into()])),
        ErrorKind::OverflowError
    );
    // Still at its value: a non-blocking acquire succeeds.
    assert_eq!(
        call(&c, s, "acquire", vec![false.into()]).unwrap(),
        Value::Bool(true)
    );
}

#[test]
fn a_frame_of_tiny_items_is_refused_before_it_decodes_to_many_times_its_size() {
    let server = start(&["--max-value-bytes", "16777216"]);
    limit_address_space(server.pid(), address_space(server.pid()) + (2 << 30));
    let c = server.client();
    let list = c.create("list", vec![], Kwargs::new()).unwrap().token.id;
    // A 2 MB frame of one-byte ints would decode to ~64 MB of values.
    let tiny = Value::List(vec![Value::Int(0); 2_000_000]);
    assert_eq!(
        kind(call(&c, list, "extend", vec![tiny])),
        ErrorKind::MemoryError
    );
    // The same connection goes on, and nothing was added.
    assert_eq!(call(&c, list, "__len__", vec![]).unwrap(), Value::Int(0));
    call(
        &c,
        list,
        "extend",
        vec![Value::List(vec![Value::Int(0); 1000])],
    )
    .unwrap();
    assert_eq!(call(&c, list, "__len__", vec![]).unwrap(), Value::Int(1000));
}
