//! The build-cost probe: a program that uses only `Pool` (issue 15). It is
//! built twice from clean by `run`, against the SDK with its default
//! features off and against a previous commit's SDK, to measure what the
//! SDK costs a program that does not embed a manager server.

use multiprocessing::pool::Pool;

fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    multiprocessing::init();
    let pool = Pool::new(2).expect("pool");
    let squares = pool.map(square, 0..10u64).expect("map");
    assert_eq!(squares.iter().sum::<u64>(), 285);
    println!("{squares:?}");
}
