//! Every primitive and timeout rule of `synchronize`, across real
//! processes (forked children).

mod sync_common;

use std::time::Duration;

use multiprocessing::sharedctypes::{RawValue, Value};
use multiprocessing::synchronize::{
    Barrier, BarrierError, BoundedSemaphore, Condition, ConditionError, Event, Lock, RLock,
    ReleaseError, Semaphore,
};
use sync_common::{die, eventually, fork, PATIENCE};

const SHORT: Duration = Duration::from_millis(30);

#[test]
fn four_processes_times_100k_increments_of_a_value_sum_exactly() {
    let v = Value::new(0i64).unwrap();
    let mut kids: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            fork(move || {
                for _ in 0..100_000 {
                    *v.lock() += 1;
                }
                0
            })
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert_eq!(v.get(), 400_000);
}

#[test]
fn a_lock_excludes_other_processes_and_get_lock_get_obj_work_together() {
    let v = Value::new(0u32).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            let v = v.clone();
            fork(move || {
                for _ in 0..20_000 {
                    let _g = v.get_lock().lock();
                    let raw = v.get_obj();
                    raw.set(raw.get() + 1);
                }
                0
            })
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert_eq!(v.get(), 40_000);
}

#[test]
fn lock_release_rules_any_process_may_release_but_not_twice() {
    let lock = Lock::new().unwrap();
    assert!(matches!(lock.release(), Err(ReleaseError::NotLocked)));
    lock.acquire();
    let l2 = lock.clone();
    let mut child = fork(move || {
        // Held by the parent: the child cannot take it, but may release it.
        if l2.acquire_nowait() || l2.acquire_timeout(SHORT) {
            return 1;
        }
        if l2.release().is_err() {
            return 2;
        }
        if !matches!(l2.release(), Err(ReleaseError::NotLocked)) {
            return 3;
        }
        0
    });
    assert_eq!(child.join(), 0);
    assert!(!lock.is_locked());
    assert!(lock.acquire_nowait());
    lock.release().unwrap();
}

#[test]
fn timeouts_zero_means_one_try_and_huge_means_forever() {
    let lock = Lock::new().unwrap();
    assert!(lock.acquire_timeout(Duration::MAX));
    assert!(!lock.acquire_timeout(Duration::ZERO));
    assert!(lock.lock_timeout(SHORT).is_none());
    assert!(lock.try_lock().is_none());
    lock.release().unwrap();
    let g = lock.lock_timeout(Duration::ZERO).unwrap();
    assert!(lock.is_locked());
    drop(g);
    assert!(!lock.is_locked());

    let sem = Semaphore::new(0).unwrap();
    assert!(!sem.acquire_timeout(Duration::ZERO));
    assert!(!sem.acquire_timeout(SHORT));
    sem.release().unwrap();
    assert!(sem.acquire_timeout(Duration::MAX));
}

#[test]
fn a_blocked_acquire_in_another_process_wakes_on_release() {
    let lock = Lock::new().unwrap();
    let go = Event::new().unwrap();
    lock.acquire();
    let (l2, g2) = (lock.clone(), go.clone());
    let mut child = fork(move || {
        g2.set();
        match l2.lock_timeout(PATIENCE) {
            Some(_held) => 0,
            None => 1,
        }
    });
    go.wait();
    lock.release().unwrap();
    assert_eq!(child.join(), 0);
}

#[test]
fn rlock_is_owned_by_one_thread_of_one_process() {
    let r = RLock::new().unwrap();
    r.acquire();
    r.acquire();
    assert!(r.is_owned());
    let r2 = r.clone();
    let checked = Event::new().unwrap();
    let c2 = checked.clone();
    let mut child = fork(move || {
        if r2.is_owned() || r2.acquire_nowait() || r2.acquire_timeout(SHORT) {
            return 1;
        }
        if !matches!(r2.release(), Err(ReleaseError::NotOwner)) {
            return 2;
        }
        c2.set();
        // Wait for the parent to let go of both levels.
        match r2.lock_timeout(PATIENCE) {
            Some(g) => {
                let _inner = r2.lock();
                drop(g);
                0
            }
            None => 3,
        }
    });
    // Another thread of this process is not the owner either.
    let r3 = r.clone();
    let other = std::thread::spawn(move || (r3.acquire_nowait(), r3.release()));
    assert!(matches!(
        other.join().unwrap(),
        (false, Err(ReleaseError::NotOwner))
    ));
    checked.wait();
    r.release().unwrap();
    r.release().unwrap();
    assert!(matches!(r.release(), Err(ReleaseError::NotOwner)));
    assert_eq!(child.join(), 0);
    assert!(r.acquire_nowait());
    r.release().unwrap();
}

#[test]
fn semaphore_counts_permits_across_processes() {
    let sem = Semaphore::new(2).unwrap();
    let s2 = sem.clone();
    let mut child = fork(move || {
        if !(s2.acquire_nowait() && s2.acquire_nowait()) {
            return 1;
        }
        if s2.acquire_nowait() || s2.acquire_timeout(SHORT) {
            return 2;
        }
        0
    });
    assert_eq!(child.join(), 0);
    assert_eq!(sem.get_value(), 0);
    // A parent blocked on the empty semaphore is woken by a child's release.
    let s3 = sem.clone();
    let mut releaser = fork(move || s3.release().map(|_| 0).unwrap_or(1));
    assert!(sem.acquire_timeout(PATIENCE));
    assert_eq!(releaser.join(), 0);
    sem.release().unwrap();
    let permit = sem.lock();
    assert_eq!(sem.get_value(), 0);
    drop(permit);
    assert_eq!(sem.get_value(), 1);
}

#[test]
fn bounded_semaphore_refuses_over_release_in_any_process() {
    let sem = BoundedSemaphore::new(1).unwrap();
    assert!(matches!(sem.release(), Err(ReleaseError::TooManyReleases)));
    sem.acquire();
    let s2 = sem.clone();
    let mut child = fork(move || {
        if s2.release().is_err() {
            return 1;
        }
        if !matches!(s2.release(), Err(ReleaseError::TooManyReleases)) {
            return 2;
        }
        0
    });
    assert_eq!(child.join(), 0);
    assert_eq!(sem.get_value(), 1);
}

#[test]
fn condition_notify_n_wakes_exactly_n_processes() {
    let cond = Condition::new().unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let woke = RawValue::new(0u32).unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|_| {
            let (c, ready, woke) = (cond.clone(), ready.clone(), woke.clone());
            fork(move || {
                let _g = c.lock();
                ready.set(ready.get() + 1);
                if !matches!(c.wait_timeout(PATIENCE), Ok(true)) {
                    return 1;
                }
                woke.set(woke.get() + 1);
                0
            })
        })
        .collect();
    eventually("three waiters", || {
        let _g = cond.lock();
        ready.get() == 3
    });
    {
        let _g = cond.lock();
        cond.notify_n(2).unwrap();
    }
    // Two children finish; the third stays asleep until notify_all.
    let mut finished = 0;
    eventually("two woken children exit", || {
        finished = kids.iter_mut().filter_map(|k| k.try_join()).count();
        finished >= 2
    });
    assert_eq!(finished, 2, "notify_n(2) woke more than two");
    assert_eq!(woke.get(), 2);
    {
        let _g = cond.lock();
        cond.notify_all().unwrap();
    }
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert_eq!(woke.get(), 3);
}

#[test]
fn condition_rules_lock_required_timeout_and_wait_for() {
    let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
    assert!(matches!(cond.notify(), Err(ConditionError::NotOwned)));
    assert!(matches!(
        cond.wait_timeout(SHORT),
        Err(ConditionError::NotOwned)
    ));
    {
        let _g = cond.lock();
        assert!(matches!(cond.wait_timeout(SHORT), Ok(false)));
        assert!(matches!(cond.wait_timeout(Duration::ZERO), Ok(false)));
        // Still held after a timed-out wait.
        assert!(!cond.acquire_nowait());
        // Another thread of this process does not hold it.
        let c = cond.clone();
        let other = std::thread::spawn(move || (c.notify(), c.wait_timeout(SHORT)));
        assert!(matches!(
            other.join().unwrap(),
            (Err(ConditionError::NotOwned), Err(ConditionError::NotOwned))
        ));
    }
    // wait_for across processes: the child flips a flag under the lock.
    let flag = RawValue::new(0u8).unwrap();
    let (c2, f2) = (cond.clone(), flag.clone());
    let mut child = fork(move || {
        let _g = c2.lock();
        f2.set(1);
        c2.notify_all().map(|_| 0).unwrap_or(1)
    });
    {
        let _g = cond.lock();
        assert!(matches!(
            cond.wait_for_timeout(|| flag.get() == 1, PATIENCE),
            Ok(true)
        ));
        assert!(matches!(
            cond.wait_for_timeout(|| flag.get() == 2, SHORT),
            Ok(false)
        ));
    }
    assert_eq!(child.join(), 0);
}

#[test]
fn condition_with_an_rlock_releases_every_level_while_waiting() {
    let cond = Condition::new().unwrap();
    let c2 = cond.clone();
    let _a = cond.lock();
    let _b = cond.lock();
    let mut child = fork(move || {
        // Only possible if the parent's wait released both levels.
        let _g = match c2.get_lock().lock_timeout(PATIENCE) {
            Some(g) => g,
            None => return 1,
        };
        c2.notify().map(|_| 0).unwrap_or(2)
    });
    assert!(matches!(cond.wait_timeout(PATIENCE), Ok(true)));
    assert_eq!(child.join(), 0);
}

#[test]
fn event_wakes_every_waiting_process() {
    let ev = Event::new().unwrap();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(SHORT));
    let mut kids: Vec<_> = (0..3)
        .map(|_| {
            let e = ev.clone();
            fork(move || if e.wait_timeout(PATIENCE) { 0 } else { 1 })
        })
        .collect();
    ev.set();
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert!(ev.wait_timeout(Duration::ZERO));
    ev.clear();
    assert!(!ev.is_set());
    let e = ev.clone();
    let mut child = fork(move || if e.wait_timeout(SHORT) { 1 } else { 0 });
    assert_eq!(child.join(), 0);
}

#[test]
fn barrier_releases_three_processes_with_distinct_indices_and_one_action() {
    let runs = RawValue::new(0u32).unwrap();
    let r = runs.clone();
    let action = std::sync::Arc::new(move || r.set(r.get() + 1));
    let b = Barrier::with_options(3, Some(action), None).unwrap();
    assert_eq!(b.parties(), 3);
    let seen = multiprocessing::sharedctypes::RawArray::<u32>::new(3).unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            let (b, seen) = (b.clone(), seen.clone());
            fork(move || match b.wait_timeout(PATIENCE) {
                Ok(i) => seen.set(i as usize, 1).map(|_| 0).unwrap_or(2),
                Err(BarrierError::Broken) => 1,
                Err(BarrierError::Manager(_)) => 3,
            })
        })
        .collect();
    eventually("two parties waiting", || b.n_waiting() == 2);
    let mine = b.wait_timeout(PATIENCE).unwrap();
    seen.set(mine as usize, 1).unwrap();
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert_eq!(seen.to_vec(), [1, 1, 1]);
    assert_eq!(runs.get(), 1);
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn barrier_abort_timeout_and_reset_break_waiting_processes() {
    let b = Barrier::new(2).unwrap();
    let b2 = b.clone();
    let mut child = fork(move || match b2.wait_timeout(PATIENCE) {
        Err(BarrierError::Broken) => 0,
        Ok(_) => 1,
        Err(BarrierError::Manager(_)) => 2,
    });
    eventually("child waiting", || b.n_waiting() == 1);
    b.abort();
    assert_eq!(child.join(), 0);
    assert!(b.broken());
    assert!(matches!(b.wait_timeout(SHORT), Err(BarrierError::Broken)));
    b.reset();
    assert!(!b.broken());

    // A party that times out breaks the barrier for the others too.
    assert!(matches!(b.wait_timeout(SHORT), Err(BarrierError::Broken)));
    assert!(b.broken());
    b.reset();

    // reset() while a process waits: it gets BrokenBarrierError, and the
    // barrier is usable afterwards.
    let b3 = b.clone();
    let mut child = fork(move || match b3.wait_timeout(PATIENCE) {
        Err(BarrierError::Broken) => 0,
        Ok(_) => 1,
        Err(BarrierError::Manager(_)) => 2,
    });
    eventually("child waiting", || b.n_waiting() == 1);
    b.reset();
    assert_eq!(child.join(), 0);
    let b4 = b.clone();
    let mut child = fork(move || b4.wait_timeout(PATIENCE).map(|_| 0).unwrap_or(1));
    assert!(b.wait_timeout(PATIENCE).is_ok());
    assert_eq!(child.join(), 0);

    // The default timeout given at creation applies to wait().
    let timed = Barrier::with_options(2, None, Some(SHORT)).unwrap();
    assert!(matches!(timed.wait(), Err(BarrierError::Broken)));
    assert!(Barrier::new(0).is_err());
}

#[test]
fn a_lock_whose_holder_was_killed_is_recovered_and_the_new_holder_told() {
    let lock = Lock::new().unwrap();
    let l2 = lock.clone();
    let mut child = fork(move || {
        l2.acquire();
        die()
    });
    assert_eq!(child.join(), -libc::SIGKILL);
    let g = lock.lock_timeout(PATIENCE).expect("lock recovered");
    assert!(g.owner_died());
    drop(g);
    assert!(!lock.owner_died());
    assert!(lock.acquire_nowait());
    lock.release().unwrap();
}

#[test]
fn a_dead_holder_is_detected_even_before_it_is_reaped() {
    let r = RLock::new().unwrap();
    let r2 = r.clone();
    let held = Event::new().unwrap();
    let h2 = held.clone();
    let mut child = fork(move || {
        r2.acquire();
        r2.acquire();
        h2.set();
        die()
    });
    held.wait();
    // The child is a zombie (not reaped) or gone; either way it is dead.
    assert!(r.acquire_timeout(PATIENCE));
    assert!(r.owner_died());
    r.release().unwrap();
    assert!(!r.owner_died());
    assert_eq!(child.join(), -libc::SIGKILL);
}

#[test]
fn a_value_whose_holder_was_killed_keeps_counting() {
    let v = Value::new(0u64).unwrap();
    let v2 = v.clone();
    let mut child = fork(move || {
        let mut g = v2.lock();
        *g += 1;
        die()
    });
    assert_eq!(child.join(), -libc::SIGKILL);
    let mut g = v.lock();
    assert!(v.get_lock().owner_died());
    *g += 1;
    drop(g);
    assert_eq!(v.get(), 2);
}

#[test]
fn a_semaphore_never_admits_more_than_its_value_under_contention() {
    let sem = Semaphore::new(3).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let worst = RawValue::new(0u32).unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|_| {
            let (sem, inside, worst) = (sem.clone(), inside.clone(), worst.clone());
            fork(move || {
                // SAFETY: u32 cells of shared memory viewed as atomics.
                let (inside, worst) = unsafe {
                    (
                        &*(inside.as_ptr() as *const std::sync::atomic::AtomicU32),
                        &*(worst.as_ptr() as *const std::sync::atomic::AtomicU32),
                    )
                };
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let sem = sem.clone();
                        std::thread::spawn(move || {
                            for _ in 0..2_000 {
                                let _p = sem.lock();
                                let now =
                                    inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                                worst.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                                std::hint::spin_loop();
                                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                0
            })
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join(), 0);
    }
    assert!(worst.get() <= 3, "{} inside at once", worst.get());
    assert_eq!(sem.get_value(), 3);
}

#[test]
fn a_thread_that_exits_holding_an_rlock_is_recovered_from() {
    let r = RLock::new().unwrap();
    let r2 = r.clone();
    std::thread::spawn(move || r2.acquire()).join().unwrap();
    // The thread has ended: even a no-wait attempt takes the lock over.
    assert!(r.acquire_nowait());
    assert!(r.owner_died());
    r.release().unwrap();
    let r3 = r.clone();
    std::thread::spawn(move || r3.acquire()).join().unwrap();
    assert!(r.acquire_timeout(PATIENCE));
    assert!(r.owner_died());
    r.release().unwrap();
}

#[test]
fn a_try_lock_loop_recovers_a_killed_holders_lock() {
    let lock = Lock::new().unwrap();
    let l2 = lock.clone();
    let held = Event::new().unwrap();
    let h2 = held.clone();
    let mut child = fork(move || {
        l2.acquire();
        h2.set();
        die()
    });
    held.wait();
    // Polling only, as a program that never blocks on the lock would; the
    // child may still be a zombie.
    let start = std::time::Instant::now();
    let guard = loop {
        if let Some(g) = lock.try_lock() {
            break g;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "try_lock never recovered the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert!(guard.owner_died());
    drop(guard);
    assert_eq!(child.join(), -libc::SIGKILL);
}

#[test]
fn a_condition_hands_10k_items_between_processes_without_losing_a_wakeup() {
    const ITEMS: u64 = 10_000;
    // A one-slot buffer: `full` says whether `slot` holds an item.
    let cond = Condition::new().unwrap();
    let slot = RawValue::new(0u64).unwrap();
    let full = RawValue::new(0u8).unwrap();
    let (c, s, f) = (cond.clone(), slot.clone(), full.clone());
    let mut producer = fork(move || {
        for i in 1..=ITEMS {
            let _g = c.lock();
            if !matches!(c.wait_for_timeout(|| f.get() == 0, PATIENCE), Ok(true)) {
                return 1;
            }
            s.set(i);
            f.set(1);
            if c.notify().is_err() {
                return 2;
            }
        }
        0
    });
    let mut sum = 0;
    for _ in 0..ITEMS {
        let _g = cond.lock();
        assert!(matches!(
            cond.wait_for_timeout(|| full.get() == 1, PATIENCE),
            Ok(true)
        ));
        sum += slot.get();
        full.set(0);
        cond.notify().unwrap();
    }
    assert_eq!(producer.join(), 0);
    assert_eq!(sum, ITEMS * (ITEMS + 1) / 2);
}
