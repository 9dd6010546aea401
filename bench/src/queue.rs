//! `queue` suite: `multiprocessing::Queue`, one producer process → one
//! consumer, for a small value, 1 KiB and 1 MiB, against CPython's
//! `mp.Queue` doing the same work in the same run.
//!
//! Both sides time the consumer from its first item to its last, so
//! process start-up is left out.

use std::time::Instant;

use multiprocessing::{get_context, Queue, StartMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::report::{self, Row};

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
kind, n = sys.argv[1], int(sys.argv[2])
item = {'small': 12345, '1kib': b'x' * 1024, '1mib': b'x' * (1 << 20)}[kind]
def producer(q, n, item):
    for _ in range(n): q.put(item)
if __name__ == '__main__':
    q = mp.Queue()
    p = mp.Process(target=producer, args=(q, n, item)); p.start()
    q.get(); t = time.perf_counter()
    for _ in range(n - 1): q.get()
    el = time.perf_counter() - t
    p.join()
    print((n - 1) / el)
"#;

fn python(kind: &str, n: u64) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("mp-bench-queue-{}.py", std::process::id()));
    std::fs::write(&dir, PYTHON).ok()?;
    let out = std::process::Command::new("python3")
        .arg(&dir)
        .arg(kind)
        .arg(n.to_string())
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&dir);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Items per second through a queue from a forked producer.
fn ours<T>(item: T, n: u64) -> f64
where
    T: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    let q: Queue<T> = Queue::new(0).expect("queue");
    let producer_q = q.clone();
    let p = get_context(StartMethod::Fork).process_fn(move || {
        for _ in 0..n {
            if producer_q.put(&item).is_err() {
                return 1;
            }
        }
        0
    });
    p.start().expect("start producer");
    let _ = q.get().expect("first item");
    let t = Instant::now();
    for _ in 1..n {
        let _ = q.get().expect("item");
    }
    let el = t.elapsed().as_secs_f64();
    p.join().expect("join producer");
    (n - 1) as f64 / el
}

/// Runs the suite and prints its table.
pub fn run() {
    let mut rows = Vec::new();
    let cases: [(&str, u64, f64); 3] = [
        ("small", 200_000, 0.0),
        ("1kib", 100_000, 1024.0),
        ("1mib", 1_000, (1 << 20) as f64),
    ];
    for (kind, n, bytes) in cases {
        let mine = match kind {
            "small" => report::median(3, || ours(12345u64, n)),
            "1kib" => report::median(3, || ours(vec![b'x'; 1024], n)),
            _ => report::median(3, || ours(vec![b'x'; 1 << 20], n)),
        };
        let theirs = python(kind, n).unwrap_or(0.0);
        rows.push(Row {
            name: format!("queue.{kind} (1 producer -> 1 consumer)"),
            ours: mine,
            against: Some(("CPython mp.Queue".into(), theirs)),
            unit: "msgs/s",
            higher_is_better: true,
        });
        if bytes > 0.0 {
            rows.push(Row {
                name: format!("queue.{kind}.throughput"),
                ours: mine * bytes / 1e6,
                against: Some(("CPython mp.Queue".into(), theirs * bytes / 1e6)),
                unit: "MB/s",
                higher_is_better: true,
            });
        }
    }
    report::print("queue: Queue, one producer process -> one consumer", &rows);
}
