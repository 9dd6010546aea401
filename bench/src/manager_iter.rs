//! `mp-bench manager.proxy.iter`: reading a 100,000-item shared list
//! through its typed proxy three ways, in one run against one `mpserver`:
//!
//! * the chunked iterator (`for x in &l`: one slice per round trip,
//!   sized to about 1 MiB — 1,024 items, then tens of thousands at a time), and with
//!   fixed chunks of 1,024 items (`l.iter_chunked(1024)`) as a diagnostic;
//! * one round trip per index (`l.get(i)`), over the first 10,000 items
//!   (a full pass would take seconds; the figure is a rate);
//! * `l.get_value()`, the whole list in one answer, then summed as the
//!   iterators' items are.
//!
//! Figures are items per second, the median of [`REPEATS`] passes. Goals:
//! chunked ≥ 20x per-index, and at least `get_value()`'s rate. Memory:
//! the most heap this process held at once during one pass, beyond what
//! it held before (counted by the bench's allocator, [`crate::heap`]),
//! chunked against `get_value()`.

use std::time::Instant;

use multiprocessing::managers::{ManagerError, SyncManager};

use crate::heap::peak_growth;
use crate::manager::{ServerProc, KEY, REPEATS};
use crate::report::{self, Row};
use crate::wire::median;

/// Items in the list.
const ITEMS: i64 = 100_000;
/// Items read one round trip each.
const PER_INDEX: i64 = 10_000;

/// Items per second of `pass`, which reads `items` items.
fn items_per_sec(items: i64, pass: impl Fn()) -> f64 {
    pass(); // warm-up
    let samples = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            pass();
            items as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    median(samples)
}

/// Sums `items`, checking the sum.
fn check(items: impl Iterator<Item = Result<i64, ManagerError>>, sum: i64) {
    let mut s = 0;
    for x in items {
        s += x.expect("item");
    }
    assert_eq!(s, sum, "the chunked pass read every item");
}

/// Runs the three ways and prints the rows.
pub fn run() {
    let server = ServerProc::start(None);
    let m = SyncManager::connect(&server.address.parse().expect("address"), KEY).expect("connect");
    let l = m.list_from::<i64>(0..ITEMS).expect("list");
    let sum: i64 = (0..ITEMS).sum();
    // The same work as the iterator: every item read, summed.
    let whole = || {
        let v = l.get_value().expect("get_value");
        assert_eq!(v.iter().sum::<i64>(), sum, "get_value read every item");
    };
    let default = items_per_sec(ITEMS, || check(l.iter(), sum));
    let fixed = items_per_sec(ITEMS, || check(l.iter_chunked(1024), sum));
    let per_index = items_per_sec(PER_INDEX, || {
        for i in 0..PER_INDEX {
            assert_eq!(l.get(i).expect("item"), i);
        }
    });
    let copy = items_per_sec(ITEMS, whole);
    let kib = |bytes: f64| bytes / 1024.0;
    let chunked_kib = kib(peak_growth(|| check(l.iter(), sum)));
    let copy_kib = kib(peak_growth(whole));
    let row = |name: &str, ours: f64, against: (&str, f64)| Row {
        name: name.into(),
        ours,
        against: Some((against.0.into(), against.1)),
        unit: "items/s",
        higher_is_better: true,
    };
    let rows = vec![
        row(
            "manager.proxy.list_iter_100k",
            default,
            ("l.get(i), one per item", per_index),
        ),
        row(
            "manager.proxy.list_iter_100k.vs_get_value",
            default,
            ("l.get_value()", copy),
        ),
        row(
            "manager.proxy.list_iter_100k.chunk1024",
            fixed,
            ("l.get(i), one per item", per_index),
        ),
        Row {
            name: "manager.proxy.list_iter_100k.peak_growth".into(),
            ours: chunked_kib,
            against: Some(("l.get_value()".into(), copy_kib)),
            unit: "KiB",
            higher_is_better: false,
        },
    ];
    report::print(
        "manager.proxy.iter: a 100,000-item ListProxy<i64>, chunked iterator",
        &rows,
    );
}
