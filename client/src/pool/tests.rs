//! The pools' typed outcomes, on a [`ThreadPool`] (the process pool's are
//! in `client/tests/pool.rs`, with real workers): a function's own error
//! reaches every call at its position, a panic is its own variant, a
//! result needs no `Clone`, and `close`/`terminate`/`join` all answer a
//! `Result`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

#[test]
fn handles_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pool>();
    send_sync::<ThreadPool>();
    send_sync::<AsyncResult<Vec<String>>>();
    send_sync::<AsyncResult<Vec<String>, String>>();
    send::<IMapIterator<String>>();
    send::<IMapIterator<String, String>>();
}

/// A task error that is neither `Clone` nor `Display`-only: it must come
/// back as itself, not as a message.
#[derive(Debug, PartialEq)]
enum Reject {
    Odd(u32),
    TooBig { limit: u32 },
}

fn halve(x: u32) -> Result<u32, Reject> {
    if x > 100 {
        Err(Reject::TooBig { limit: 100 })
    } else if x % 2 == 1 {
        Err(Reject::Odd(x))
    } else {
        Ok(x / 2)
    }
}

fn divide(a: u32, b: u32) -> Result<u32, Reject> {
    a.checked_div(b).ok_or(Reject::TooBig { limit: 0 })
}

#[test]
fn every_call_delivers_the_functions_own_error_at_its_position() {
    let pool = ThreadPool::new(3).unwrap();
    assert_eq!(
        pool.apply(halve, (7,)),
        Err(PoolError::Task {
            index: 0,
            error: Reject::Odd(7)
        })
    );
    assert_eq!(
        pool.apply_async(halve, (200,)).unwrap().get(),
        Err(PoolError::Task {
            index: 0,
            error: Reject::TooBig { limit: 100 }
        })
    );
    assert_eq!(
        pool.map(halve, [2, 4, 5, 8]),
        Err(PoolError::Task {
            index: 2,
            error: Reject::Odd(5)
        })
    );
    assert_eq!(
        pool.map_chunked(halve, [2, 4, 6, 9], 2),
        Err(PoolError::Task {
            index: 3,
            error: Reject::Odd(9)
        })
    );
    assert_eq!(
        pool.map_async(halve, [3]).unwrap().get(),
        Err(PoolError::Task {
            index: 0,
            error: Reject::Odd(3)
        })
    );
    assert_eq!(
        pool.starmap(divide, [(4, 2), (1, 0)]),
        Err(PoolError::Task {
            index: 1,
            error: Reject::TooBig { limit: 0 }
        })
    );
    assert_eq!(
        pool.starmap_async(divide, [(1, 0)]).unwrap().get(),
        Err(PoolError::Task {
            index: 0,
            error: Reject::TooBig { limit: 0 }
        })
    );
    let ordered: Vec<_> = pool.imap(halve, [0, 1, 2]).unwrap().collect();
    assert_eq!(
        ordered,
        vec![
            Ok(0),
            Err(PoolError::Task {
                index: 1,
                error: Reject::Odd(1)
            }),
            Ok(1)
        ]
    );
    let mut unordered: Vec<_> = pool
        .imap_unordered_chunked(halve, [1, 3, 4], 1)
        .unwrap()
        .collect();
    unordered.sort_by_key(|r| match r {
        Ok(v) => (0, *v),
        Err(e) => (1, e.index().unwrap_or(0) as u32),
    });
    assert_eq!(
        unordered,
        vec![
            Ok(2),
            Err(PoolError::Task {
                index: 0,
                error: Reject::Odd(1)
            }),
            Err(PoolError::Task {
                index: 1,
                error: Reject::Odd(3)
            })
        ]
    );
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn a_panic_is_its_own_variant_with_its_message() {
    let pool = ThreadPool::new(2).unwrap();
    let boom = |x: u32| -> Result<u32, Reject> {
        if x == 1 {
            panic!("no {x} here");
        }
        Ok(x)
    };
    match pool.map(boom, [0, 1, 2]) {
        Err(PoolError::Panic { index, message, .. }) => {
            assert_eq!((index, message.as_str()), (1, "no 1 here"))
        }
        other => panic!("{other:?}"),
    }
    match pool.apply(|| -> u8 { std::panic::panic_any(42u8) }, ()) {
        Err(PoolError::Panic { message, .. }) => assert_eq!(message, "Box<dyn Any>"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_callbacks_see_the_typed_error() {
    let pool = ThreadPool::new(2).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let r = pool
        .apply_async_with(
            halve,
            (5,),
            |_| {},
            move |e: &PoolError<Reject>| s1.lock().unwrap().push(format!("{:?}", e.task_error())),
        )
        .unwrap();
    let m = pool
        .map_async_with(
            halve,
            [2, 202],
            Some(1),
            |_| {},
            move |e| {
                if let PoolError::Task { index, error } = e {
                    s2.lock().unwrap().push(format!("{index} {error:?}"));
                }
            },
        )
        .unwrap();
    assert!(r.get().is_err() && m.get().is_err());
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["1 TooBig { limit: 100 }", "Some(Odd(5))"]);
}

#[test]
fn results_need_no_clone_and_move_out_once() {
    /// Neither `Clone` nor `PartialEq`.
    struct Page {
        text: String,
    }
    let pool = ThreadPool::new(2).unwrap();
    let one = pool
        .apply_async(
            // Any type not in `TaskResult`'s list of plain values comes
            // back in a `Result`; `NoError` says nothing can fail.
            |n: usize| {
                Ok::<_, NoError>(Page {
                    text: "x".repeat(n),
                })
            },
            (3,),
        )
        .unwrap();
    one.wait();
    assert_eq!(one.successful(), Ok(true));
    assert_eq!(one.get().unwrap().text, "xxx");
    let many = pool
        .map_async(
            |n: usize| {
                vec![Page {
                    text: n.to_string(),
                }]
            },
            0..3,
        )
        .unwrap();
    assert!(many.wait_timeout(Duration::from_secs(60)));
    let texts: Vec<String> = many
        .get()
        .unwrap()
        .into_iter()
        .flatten()
        .map(|p| p.text)
        .collect();
    assert_eq!(texts, ["0", "1", "2"]);
}

#[test]
fn close_terminate_and_join_all_answer_a_result() {
    let pool = ThreadPool::new(1).unwrap();
    assert_eq!(pool.join(), Err(PoolError::StillRunning));
    assert_eq!(pool.close(), Ok(()));
    assert_eq!(pool.close(), Ok(()), "closing twice does nothing");
    assert_eq!(pool.join(), Ok(()));
    assert_eq!(pool.terminate(), Ok(()));
    assert_eq!(pool.join(), Ok(()));
}

#[test]
fn a_pool_level_error_widens_for_question_mark() {
    fn run(words: Vec<&'static str>) -> Result<Vec<u8>, PoolError<String>> {
        let pool = ThreadPool::new(0).map_err(PoolError::widen)?;
        pool.map(|w: &str| w.parse::<u8>().map_err(|e| e.to_string()), words)
    }
    assert!(matches!(run(vec!["1"]), Err(PoolError::ValueError(_))));
}
