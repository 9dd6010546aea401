//! `dummy::Manager()`: the same code runs against a real manager and
//! against the dummy one, changed only by its `use` line; the dummy
//! objects are shared by threads.

#![cfg(feature = "server")] // the managed half starts a manager server

use std::time::Duration;

/// One body, compiled twice: against `$path::Manager` (and the proxy
/// types the constructors return).
macro_rules! same_code {
    ($name:ident, $($path:ident)::+) => {
        mod $name {
            use std::time::Duration;

            use $($path)::+::Manager;

            /// Uses every kind of object a manager makes; returns what it
            /// saw, as text.
            pub fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
                let m = Manager()?;
                let mut seen = Vec::new();

                let d = m.dict::<String, String>()?;
                d.set(&"k".to_string(), &"v".to_string())?;
                d.set(&"j".to_string(), &"w".to_string())?;
                seen.push(format!("{:?}", d.get(&"k".to_string())?));
                seen.push(format!("{:?}", d.get(&"zz".to_string())?));
                seen.push(format!("{}", d.get_item(&"zz".to_string()).is_err()));
                seen.push(format!("{:?}", d.items()?));
                seen.push(format!("{:?}", d.remove(&"k".to_string())?));
                seen.push(format!("{}", d.len()?));

                let l = m.list_from::<String>(&["c".to_string(), "a".into(), "b".into()])?;
                l.append(&"d".to_string())?;
                l.reverse()?;
                seen.push(format!("{:?} {} {}", l.get_value()?, l.get(-1)?, l.pop(0)?));
                seen.push(format!("{}", l.get(10).is_err()));

                let q = m.queue::<String>()?;
                q.put(&"first".to_string())?;
                seen.push(format!("{} {}", q.qsize()?, q.get()?));
                seen.push(format!("{}", q.get_timeout(Duration::from_millis(10)).is_err()));

                let lock = m.lock()?;
                let held = lock.acquire()?;
                seen.push(format!("{}", lock.try_acquire()?.is_none()));
                held.release()?;

                let ns = m.namespace()?;
                ns.set("x", &10)?;
                ns.set("y", "hello")?;
                seen.push(format!("{} {}", ns.get::<i64>("x")?, ns.get::<String>("y")?));

                let e = m.event()?;
                e.set()?;
                seen.push(format!("{}", e.wait_timeout(Duration::from_secs(5))?));

                let c = m.condition()?;
                let guard = c.acquire()?;
                seen.push(format!("{}", c.wait_timeout(Duration::from_millis(10))?));
                c.notify_all()?;
                drop(guard);

                let b = m.barrier(1)?;
                seen.push(format!("{} {}", b.wait()?, b.parties()?));

                let s = m.bounded_semaphore(1)?;
                let permit = s.acquire()?;
                seen.push(format!("{}", s.try_acquire()?.is_none()));
                drop(permit);

                let a = m.array::<i64>("q", &[1i64, 2, 3])?;
                seen.push(format!("{} {}", a.len()?, a.get(-1)?));
                Ok(seen)
            }
        }
    };
}

same_code!(managed, multiprocessing::managers);
same_code!(threads, multiprocessing::dummy::managers);

#[test]
fn the_same_code_sees_the_same_things_on_threads_and_through_a_manager() {
    let managed = managed::run().unwrap();
    let threads = threads::run().unwrap();
    assert_eq!(threads, managed);
    assert_eq!(threads[0], "Some(\"v\")");
}

#[test]
fn threads_share_the_objects() {
    let m = multiprocessing::dummy::Manager().unwrap();
    let counts = m.dict::<String, u64>().unwrap();
    let total = m.value("Q", &0u64).unwrap();
    let lock = m.lock().unwrap();
    let done = m.joinable_queue::<usize>().unwrap();
    let workers: Vec<_> = (0..4usize)
        .map(|i| {
            let (counts, total, lock, done) =
                (counts.clone(), total.clone(), lock.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..250 {
                    let _held = lock.acquire().unwrap();
                    let n = counts.get("hits").unwrap().unwrap_or(0);
                    counts.set("hits", n + 1).unwrap();
                    let t = total.get().unwrap();
                    total.set(t + 1).unwrap();
                }
                done.put(i).unwrap();
            })
        })
        .collect();
    for _ in 0..4 {
        done.get_timeout(Duration::from_secs(60)).unwrap();
        done.task_done().unwrap();
    }
    done.join().unwrap();
    workers.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(counts.get("hits").unwrap(), Some(1000));
    assert_eq!(total.get().unwrap(), 1000);
}

#[test]
fn a_condition_around_a_managers_lock_hands_over_between_threads() {
    let m = multiprocessing::dummy::Manager().unwrap();
    let lock = m.lock().unwrap();
    let cond = m.condition_with_lock(&lock).unwrap();
    let items = m.list::<i32>().unwrap();
    let consumer = {
        let (cond, items) = (cond.clone(), items.clone());
        std::thread::spawn(move || {
            let _held = cond.acquire().unwrap();
            cond.wait_for(|| items.len().unwrap() == 3, Some(Duration::from_secs(60)))
                .unwrap()
        })
    };
    for i in 0..3 {
        let _held = cond.acquire().unwrap();
        items.append(i).unwrap();
        cond.notify_all().unwrap();
    }
    assert!(consumer.join().unwrap());
    // The condition's lock is the manager's lock.
    let _held = cond.acquire().unwrap();
    assert!(lock.locked().unwrap());
}

#[test]
fn a_barrier_broken_by_abort_fails_every_waiter() {
    let m = multiprocessing::dummy::Manager().unwrap();
    let b = m.barrier(3).unwrap();
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.wait())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while b.n_waiting().unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never arrived"
        );
        std::thread::yield_now();
    }
    b.abort().unwrap();
    assert!(waiter.join().unwrap().unwrap_err().is_broken());
    assert!(b.broken().unwrap());
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
}
