//! The pool's typed outcomes across real worker processes: a function's
//! own error comes back from the worker as itself (serde), at its
//! position, through every call; a result needs no `Clone`; and a forked
//! child's copy of a pool cannot close, terminate or join it.

use std::sync::{Arc, Mutex};

use multiprocessing::pool::{NoError, PoolError, ThreadPool};
use multiprocessing::{get_context, StartMethod};
use serde::{Deserialize, Serialize};

use super::{check, pool, square, PATIENCE};

/// A task's own error: data, not a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Rejected {
    Odd(u32),
    Over { limit: u32, got: u32 },
}

fn halve(x: u32) -> Result<u32, Rejected> {
    if x > 100 {
        Err(Rejected::Over { limit: 100, got: x })
    } else if x % 2 == 1 {
        Err(Rejected::Odd(x))
    } else {
        Ok(x / 2)
    }
}

fn divide(a: u32, b: u32) -> Result<u32, Rejected> {
    a.checked_div(b).ok_or(Rejected::Over { limit: 0, got: a })
}

fn odd(index: usize, x: u32) -> Result<(), PoolError<Rejected>> {
    Err(PoolError::Task {
        index,
        error: Rejected::Odd(x),
    })
}

pub fn typed_errors_cross_from_the_workers(m: StartMethod) -> Result<(), String> {
    // `Rejected` is not `Display`: its `PoolError` is `Debug` only.
    let p = pool(m, 2)?;
    check(
        p.apply(halve, (7,)) == odd(0, 7).map(|()| 0),
        "apply: the error itself",
    )?;
    let a = p.apply_async(halve, (301,)).map_err(|e| format!("{e:?}"))?;
    check(
        a.get_timeout(PATIENCE)
            == Err(PoolError::Task {
                index: 0,
                error: Rejected::Over {
                    limit: 100,
                    got: 301,
                },
            }),
        "apply_async",
    )?;
    check(
        p.map(halve, [2, 4, 5, 8]) == odd(2, 5).map(|()| vec![]),
        "map: the first error, at its position",
    )?;
    check(
        p.map_chunked(halve, [2, 4, 6, 9], 3) == odd(3, 9).map(|()| vec![]),
        "map_chunked: inside the second chunk",
    )?;
    let ma = p.map_async(halve, [2, 3]).map_err(|e| format!("{e:?}"))?;
    check(
        ma.get_timeout(PATIENCE) == odd(1, 3).map(|()| vec![]),
        "map_async",
    )?;
    check(
        p.starmap(divide, [(4, 2), (1, 0)])
            == Err(PoolError::Task {
                index: 1,
                error: Rejected::Over { limit: 0, got: 1 },
            }),
        "starmap",
    )?;
    let sa = p
        .starmap_async(divide, [(9, 0)])
        .map_err(|e| format!("{e:?}"))?;
    check(
        sa.get_timeout(PATIENCE)
            == Err(PoolError::Task {
                index: 0,
                error: Rejected::Over { limit: 0, got: 9 },
            }),
        "starmap_async",
    )?;
    let ordered: Vec<_> = p
        .imap(halve, [0, 1, 2, 3])
        .map_err(|e| format!("{e:?}"))?
        .collect();
    check(
        ordered == vec![Ok(0), odd(1, 1).map(|()| 0), Ok(1), odd(3, 3).map(|()| 0)],
        &format!("imap: {ordered:?}"),
    )?;
    let mut unordered: Vec<_> = p
        .imap_unordered_chunked(halve, [1, 2, 3], 2)
        .map_err(|e| format!("{e:?}"))?
        .map(|r| r.map_err(|e| (e.index(), e.task_error().cloned())))
        .collect();
    unordered.sort_by_key(|r| format!("{r:?}"));
    check(
        unordered
            == vec![
                Err((Some(0), Some(Rejected::Odd(1)))),
                Err((Some(2), Some(Rejected::Odd(3)))),
                Ok(1),
            ],
        &format!("imap_unordered: {unordered:?}"),
    )?;
    // The error callback gets the typed error too.
    let seen: Arc<Mutex<Option<PoolError<Rejected>>>> = Arc::default();
    let s = seen.clone();
    let r = p
        .map_async_with(
            halve,
            [2, 7],
            Some(1),
            |_| {},
            move |e| *s.lock().unwrap() = Some(e.clone()),
        )
        .map_err(|e| format!("{e:?}"))?;
    check(r.wait_timeout(PATIENCE), "the failing map_async finishes")?;
    check(
        seen.lock().unwrap().clone() == odd(1, 7).err(),
        "error_callback",
    )?;
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())
}

/// A result type that is not `Clone` (nor `PartialEq`).
#[derive(Serialize, Deserialize)]
pub struct Page {
    text: String,
}

fn page(n: usize) -> Result<Page, NoError> {
    Ok(Page {
        text: "x".repeat(n),
    })
}

pub fn results_need_no_clone(m: StartMethod) -> Result<(), String> {
    let p = pool(m, 2)?;
    let one = p.apply_async(page, (4,)).map_err(|e| e.to_string())?;
    check(one.wait_timeout(PATIENCE), "apply_async finishes")?;
    check(one.successful() == Ok(true), "successful")?;
    let text = one.get().map_err(|e| e.to_string())?.text;
    check(text == "xxxx", "the page moved out")?;
    let pages = p.map(page, 0..3usize).map_err(|e| e.to_string())?;
    let texts: Vec<String> = pages.into_iter().map(|p| p.text).collect();
    check(texts == ["", "x", "xx"], &format!("map: {texts:?}"))
}

/// A child forked while holding copies of a `Pool` and a `ThreadPool`:
/// `close`, `terminate` and `join` there answer `NotOwner` (they used to
/// do nothing, or wait on threads the child does not have), and the
/// parent's pools go on working.
pub fn a_forked_copy_cannot_close_terminate_or_join(m: StartMethod) -> Result<(), String> {
    let pools = Arc::new((pool(m, 1)?, ThreadPool::new(1).map_err(|e| e.to_string())?));
    let copy = pools.clone();
    let parent = std::process::id();
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), String> {
        let not_owner = Err(PoolError::NotOwner { owner: parent });
        let (p, t) = &*copy;
        for (what, got) in [
            ("Pool::close", p.close()),
            ("Pool::terminate", p.terminate()),
            ("Pool::join", p.join()),
            ("ThreadPool::close", t.close()),
            ("ThreadPool::terminate", t.terminate()),
            ("ThreadPool::join", t.join()),
        ] {
            if got != not_owner {
                return Err(format!("{what} in a forked child: {got:?}"));
            }
        }
        Ok(())
    });
    child.start().map_err(|e| e.to_string())?;
    check(
        child.join_timeout(PATIENCE).map_err(|e| e.to_string())?,
        "the child finished",
    )?;
    check(
        child.exitcode().map_err(|e| e.to_string())? == Some(0),
        "the child saw NotOwner everywhere (its stderr says where not)",
    )?;
    let (p, t) = &*pools;
    check(
        p.map(square, 0..4u64) == Ok(vec![0, 1, 4, 9]),
        "the pool still works",
    )?;
    check(
        t.map(|x: u32| x + 1, 0..2) == Ok(vec![1, 2]),
        "the thread pool still works",
    )?;
    p.close().map_err(|e| e.to_string())?;
    p.join().map_err(|e| e.to_string())?;
    t.close().map_err(|e| e.to_string())?;
    t.join().map_err(|e| e.to_string())
}
