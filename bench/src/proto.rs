//! `proto`: encode and decode of a typical request, against CPython's
//! manager serializer (pickle protocol 4 of the same 4-tuple) in one run.

use std::hint::black_box;

use mp_proto::message::{decode, encode_into, Request, Target};
use mp_proto::value::{ObjectId, Value};

use crate::report::{self, median, ns_per_iter, python_figure, Row};

const ITERATIONS: u64 = 500_000;

/// A `d["key-123"] = 42` call.
fn typical_request() -> Request {
    Request {
        id: 1234,
        target: Target::Object(ObjectId(0x7f3a_5c00)),
        method: "__setitem__".into(),
        args: vec![Value::from("key-123"), Value::Int(42)],
        kwargs: Default::default(),
        thread: 1,
    }
}

const PICKLE: &str = r#"
import pickle, time
msg = ('7f3a5c00', '__setitem__', ('key-123', 42), {})
data = pickle.dumps(msg, protocol=4)
N = 500000
best = []
for _ in range(3):
    t = time.perf_counter()
    for _ in range(N):
        pickle.loads(pickle.dumps(msg, protocol=4))
    best.append((time.perf_counter() - t) / N * 1e9)
best.sort()
print(best[1])
"#;

/// Runs the benchmark and prints its table.
pub fn run() {
    let request = typical_request();
    let mut buf = Vec::with_capacity(128);
    encode_into(&request, &mut buf).expect("encode");
    let size = buf.len();
    let encode_ns = median(3, || {
        ns_per_iter(ITERATIONS, || {
            buf.clear();
            encode_into(black_box(&request), &mut buf).expect("encode");
        })
    });
    let encoded = buf.clone();
    let decode_ns = median(3, || {
        ns_per_iter(ITERATIONS, || {
            let r: Request = decode(black_box(&encoded)).expect("decode");
            black_box(r);
        })
    });
    let roundtrip_ns = median(3, || {
        ns_per_iter(ITERATIONS, || {
            buf.clear();
            encode_into(black_box(&request), &mut buf).expect("encode");
            let r: Request = decode(&buf).expect("decode");
            black_box(r);
        })
    });
    let pickle = python_figure(PICKLE).map(|ns| ("CPython pickle dumps+loads".to_string(), ns));
    let rows = vec![
        Row {
            name: format!("proto.request.encode ({size} B)"),
            ours: encode_ns,
            against: None,
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "proto.request.decode".into(),
            ours: decode_ns,
            against: None,
            unit: "ns",
            higher_is_better: false,
        },
        Row {
            name: "proto.request.encode_decode".into(),
            ours: roundtrip_ns,
            against: pickle,
            unit: "ns",
            higher_is_better: false,
        },
    ];
    report::print("proto: CBOR request codec", &rows);
}
