//! The reference's Pool demonstration and queue-fed workers example run
//! and print what the reference prints (the random sleeps shortened).

#[path = "../examples/pool_example.rs"]
mod pool_example;

#[path = "../examples/queue_workers.rs"]
mod queue_workers;

#[test]
fn the_pool_example_runs_and_reports_like_the_reference() {
    std::env::set_var("POOL_EXAMPLE_MAX_SLEEP", "0.01");
    let mut out = Vec::new();
    pool_example::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for line in [
        "Creating pool with 4 processes",
        "Ordered results using pool.apply_async():",
        "Ordered results using pool.imap():",
        "Unordered results using pool.imap_unordered():",
        "Ordered results using pool.map() --- will block till complete:",
        "\tGot ZeroDivisionError as expected from pool.apply()",
        "\tGot ZeroDivisionError as expected from pool.map()",
        "\tGot ZeroDivisionError as expected from list(pool.imap())",
        "\tGot ZeroDivisionError as expected from IMapIterator.next()",
        "Testing ApplyResult.get() with timeout:",
        "Testing IMapIterator.next() with timeout:",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // Each of the four ordered listings has the 20 answers in order.
    let ordered: Vec<&str> = text.lines().filter(|l| l.contains(" says that ")).collect();
    assert_eq!(ordered.len(), 4 * 20 + 1 + 20, "{text}");
    assert!(ordered[0].contains("PoolWorker-") && ordered[0].ends_with("mul(0, 7) = 0"));
    assert!(ordered[19].ends_with("plus(9, 8) = 17"), "{}", ordered[19]);
    assert!(ordered[20].ends_with("mul(0, 7) = 0"));
}

#[test]
fn the_queue_workers_example_answers_every_task() {
    std::env::set_var("QUEUE_WORKERS_MAX_SLEEP", "0.01");
    let mut out = Vec::new();
    queue_workers::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut answers: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(" says that ").nth(1).map(str::to_string))
        .collect();
    answers.sort();
    let mut want: Vec<String> = (0..20)
        .map(|i| format!("mul({i}, 7) = {}", i * 7))
        .chain((0..10).map(|i| format!("plus({i}, 8) = {}", i + 8)))
        .collect();
    want.sort();
    assert_eq!(answers, want, "{text}");
    assert!(text.starts_with("Unordered results:"));
    assert!(text.contains("Process-"));
}
