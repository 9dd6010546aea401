//! Primitives handed to a freshly executed process, as the `spawn` start
//! method does: the test binary re-executes itself with the serialized
//! primitives in the environment and their descriptors inherited, maps
//! them again in a new address space and works with the parent on the same
//! shared state.

mod sync_common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use multiprocessing::reduction::{FdSink, FdSource};
use multiprocessing::shared_memory::{Item, ShareableList};
use multiprocessing::sharedctypes::{Array, Value};
use multiprocessing::synchronize::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, ReleaseError, Semaphore,
};
use serde::{Deserialize, Serialize};
use sync_common::PATIENCE;

const ROLE: &str = "MP_SYNC_EXEC_PAYLOAD";
const FDS: &str = "MP_SYNC_EXEC_FDS";
const ROUNDS: i64 = 20_000;

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
    list: ShareableList,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What the executed child does; returns a non-zero code on the first
/// rule that does not hold.
fn child(kit: Kit) -> i32 {
    // The parent holds `lock` and `rlock` until `go`.
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
    kit.array.write(0, &[1.5, 2.5]).unwrap();
    kit.list.set(0, Item::Str("from child".into())).unwrap();
    {
        let _g = kit.cond.lock();
        if kit.cond.notify_all().is_err() {
            return 14;
        }
    }
    if kit.sem.release().is_err() {
        return 15;
    }
    match kit.barrier.wait_timeout(PATIENCE) {
        Ok(i) if i < 2 => 0,
        _ => 16,
    }
}

#[test]
fn every_primitive_works_in_a_freshly_executed_process() {
    if let Ok(payload) = std::env::var(ROLE) {
        let fds: Vec<OwnedFd> = std::env::var(FDS)
            .unwrap()
            .split(',')
            .filter(|s| !s.is_empty())
            // SAFETY: the parent made these descriptors inheritable for us
            // and nothing else in this process owns them.
            .map(|s| unsafe { OwnedFd::from_raw_fd(s.parse::<RawFd>().unwrap()) })
            .collect();
        let bytes = unhex(&payload);
        let kit: Kit = FdSource::provide(fds, || ciborium::from_reader(&bytes[..])).unwrap();
        let code = child(kit);
        // SAFETY: ends the child with its verdict, skipping the harness.
        unsafe { libc::_exit(code) };
    }

    let kit = Kit {
        lock: Lock::new().unwrap(),
        rlock: RLock::new().unwrap(),
        sem: Semaphore::new(0).unwrap(),
        bounded: BoundedSemaphore::new(2).unwrap(),
        ready: Event::new().unwrap(),
        go: Event::new().unwrap(),
        cond: Condition::with_lock(Lock::new().unwrap()).unwrap(),
        barrier: Barrier::new(2).unwrap(),
        counter: Value::new(0i64).unwrap(),
        array: Array::<f64>::new(2).unwrap(),
        list: ShareableList::new(&[Item::Str("from parent".into())]).unwrap(),
    };
    let (bytes, fds) = FdSink::collect(|| {
        let mut out = Vec::new();
        ciborium::into_writer(&kit, &mut out).unwrap();
        out
    });
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let list: Vec<String> = raw.iter().map(|f| f.to_string()).collect();
    kit.lock.acquire();
    kit.rlock.acquire();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "every_primitive_works_in_a_freshly_executed_process",
        "--exact",
        "--nocapture",
    ])
    .env(ROLE, hex(&bytes))
    .env(FDS, list.join(","));
    let inherit = raw.clone();
    // SAFETY: between fork and exec only fcntl, which is
    // async-signal-safe, on descriptors this process owns.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(fds);

    assert!(kit.ready.wait_timeout(PATIENCE), "child never got ready");
    kit.lock.release().unwrap();
    kit.rlock.release().unwrap();
    let waiter = {
        let cond = kit.cond.clone();
        let array = kit.array.clone();
        std::thread::spawn(move || {
            let _g = cond.lock();
            cond.wait_for_timeout(|| array.get(1) == Ok(2.5), PATIENCE)
        })
    };
    // Whether the waiter waits before or after the child notifies,
    // wait_for's predicate settles it.
    kit.go.set();
    for _ in 0..ROUNDS {
        *kit.counter.lock() += 1;
    }
    assert!(
        kit.sem.acquire_timeout(PATIENCE),
        "child's release not seen"
    );
    assert!(kit.barrier.wait_timeout(PATIENCE).is_ok());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "child failed: {status:?}");
    assert!(matches!(waiter.join().unwrap(), Ok(true)));
    assert_eq!(kit.counter.get(), 2 * ROUNDS);
    assert_eq!(kit.array.to_vec(), [1.5, 2.5]);
    assert_eq!(kit.list.get(0).unwrap(), Item::Str("from child".into()));
    kit.list.shm().unlink().unwrap();
}
