//! Every primitive, shared ctype and named block passed as an argument to
//! children under each start method (`fork`, `spawn`, `forkserver`).
//! A `harness = false` target: `main` calls `multiprocessing::init()`
//! first so that re-executed children are dispatched.

use std::time::Duration;

use multiprocessing::shared_memory::{Item, ShareableList, SharedMemory};
use multiprocessing::sharedctypes::{Array, Value};
use multiprocessing::synchronize::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, ReleaseError, Semaphore,
};
use multiprocessing::{get_context, StartMethod};
use serde::{Deserialize, Serialize};

const PATIENCE: Duration = Duration::from_secs(60);
const ROUNDS: i64 = 10_000;

#[derive(Serialize, Deserialize)]
struct Kit {
    lock: Lock,
    rlock: RLock,
    sem: Semaphore,
    bounded: BoundedSemaphore,
    ready: Event,
    go: Event,
    cond: Condition,
    barrier: Barrier,
    counter: Value<i64>,
    array: Array<f64>,
    shm: SharedMemory,
    list: ShareableList,
}

/// The child: checks the rules that involve the parent's holdings, then
/// works on the shared state. Returns 0, or the number of the failed rule.
fn child(kit: Kit) -> i32 {
    if kit.lock.acquire_nowait() || kit.rlock.acquire_nowait() {
        return 10;
    }
    if !matches!(kit.rlock.release(), Err(ReleaseError::NotOwner)) {
        return 11;
    }
    if !matches!(kit.bounded.release(), Err(ReleaseError::TooManyReleases)) {
        return 12;
    }
    kit.ready.set();
    if !kit.go.wait_timeout(PATIENCE) {
        return 13;
    }
    for _ in 0..ROUNDS {
        *kit.counter.lock() += 1;
    }
    if kit.array.write(0, &[1.5, 2.5]).is_err()
        || kit.shm.write_at(0, b"child").is_err()
        || kit.list.set(0, Item::Int(99)).is_err()
    {
        return 14;
    }
    {
        let _g = kit.cond.lock();
        if kit.cond.notify_all().is_err() {
            return 15;
        }
    }
    if kit.sem.release().is_err() {
        return 16;
    }
    match kit.barrier.wait_timeout(PATIENCE) {
        Ok(i) if i < 2 => 0,
        _ => 17,
    }
}

fn run(method: StartMethod) -> Result<(), String> {
    let kit = Kit {
        lock: Lock::new().unwrap(),
        rlock: RLock::new().unwrap(),
        sem: Semaphore::new(0).unwrap(),
        bounded: BoundedSemaphore::new(1).unwrap(),
        ready: Event::new().unwrap(),
        go: Event::new().unwrap(),
        cond: Condition::with_lock(Lock::new().unwrap()).unwrap(),
        barrier: Barrier::new(2).unwrap(),
        counter: Value::new(0i64).unwrap(),
        array: Array::<f64>::new(2).unwrap(),
        shm: SharedMemory::create(16).unwrap(),
        list: ShareableList::new(&[Item::Int(0)]).unwrap(),
    };
    kit.lock.acquire();
    kit.rlock.acquire();
    let mine = Kit {
        lock: kit.lock.clone(),
        rlock: kit.rlock.clone(),
        sem: kit.sem.clone(),
        bounded: kit.bounded.clone(),
        ready: kit.ready.clone(),
        go: kit.go.clone(),
        cond: kit.cond.clone(),
        barrier: kit.barrier.clone(),
        counter: kit.counter.clone(),
        array: kit.array.clone(),
        shm: SharedMemory::attach(kit.shm.name()).unwrap(),
        list: ShareableList::attach(kit.list.shm().name()).unwrap(),
    };
    let p = get_context(method).process(child, (kit,));
    p.start().map_err(|e| e.to_string())?;
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    check(mine.ready.wait_timeout(PATIENCE), "child never ready")?;
    mine.lock.release().unwrap();
    mine.rlock.release().unwrap();
    let waiter = {
        let (cond, array) = (mine.cond.clone(), mine.array.clone());
        std::thread::spawn(move || {
            let _g = cond.lock();
            cond.wait_for_timeout(|| array.get(1) == Ok(2.5), PATIENCE)
        })
    };
    mine.go.set();
    for _ in 0..ROUNDS {
        *mine.counter.lock() += 1;
    }
    check(
        mine.sem.acquire_timeout(PATIENCE),
        "child's release not seen",
    )?;
    check(mine.barrier.wait_timeout(PATIENCE).is_ok(), "barrier")?;
    p.join().map_err(|e| e.to_string())?;
    let code = p.exitcode().map_err(|e| e.to_string())?;
    check(code == Some(0), &format!("child exit code {code:?}"))?;
    check(matches!(waiter.join().unwrap(), Ok(true)), "condition")?;
    check(mine.counter.get() == 2 * ROUNDS, "counter")?;
    check(mine.array.to_vec() == [1.5, 2.5], "array")?;
    check(&mine.shm.buf()[..5] == b"child", "shared memory")?;
    check(mine.list.get(0).unwrap() == Item::Int(99), "shareable list")?;
    mine.shm.unlink().unwrap();
    mine.list.shm().unlink().unwrap();
    Ok(())
}

fn main() {
    multiprocessing::init();
    let mut failed = 0;
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        match run(m) {
            Ok(()) => println!("test {m}::every_primitive_passed_to_a_child ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {m}::every_primitive_passed_to_a_child ... FAILED: {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", 3 - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
