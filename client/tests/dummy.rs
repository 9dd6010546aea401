//! `multiprocessing::dummy`: the queue-fed workers pattern and a pool,
//! on threads, through the dummy module's names only.

use std::time::Duration;

use multiprocessing::dummy::{
    active_children, current_process, Array, Event, JoinableQueue, Lock, Pipe, Pool, Process,
    Queue, Value,
};

#[derive(Debug)]
enum Item {
    Mul(i64, i64),
    Stop,
}

#[test]
fn queue_fed_workers_on_threads() {
    let tasks: JoinableQueue<Item> = Queue::new(0);
    let done: Queue<String> = Queue::new(0);
    let counter = Value::new(0u32);
    let lock = Lock::new().unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| {
            let (tasks, done, counter, lock) =
                (tasks.clone(), done.clone(), counter.clone(), lock.clone());
            Process::new(move || loop {
                match tasks.get().unwrap() {
                    Item::Mul(a, b) => {
                        lock.acquire();
                        *counter.get_lock() += 1;
                        lock.release().unwrap();
                        done.put(format!("{} says {}", current_process().name(), a * b))
                            .unwrap();
                        tasks.task_done().unwrap();
                    }
                    Item::Stop => {
                        tasks.task_done().unwrap();
                        return;
                    }
                }
            })
        })
        .collect();
    for w in &workers {
        w.start().unwrap();
    }
    assert_eq!(active_children().len(), 4);
    for i in 0..20 {
        tasks.put(Item::Mul(i, 7)).unwrap();
    }
    let mut got: Vec<i64> = (0..20)
        .map(|_| {
            let line = done.get_timeout(Duration::from_secs(60)).unwrap();
            assert!(line.starts_with("Thread-"), "{line}");
            line.rsplit(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20).map(|i| i * 7).collect::<Vec<_>>());
    for _ in 0..4 {
        tasks.put(Item::Stop).unwrap();
    }
    tasks.join();
    for w in &workers {
        w.join().unwrap();
        assert_eq!(w.exitcode(), Some(0));
    }
    assert_eq!(counter.get(), 20);
}

#[test]
fn pool_pipe_event_and_array_on_threads() {
    let pool = Pool::new(2).unwrap();
    let scale = 3;
    assert_eq!(
        pool.map(move |x: i32| x * scale, 0..4).unwrap(),
        vec![0, 3, 6, 9]
    );
    let (a, b) = Pipe::<Vec<u8>>(true);
    let ready = Event::new().unwrap();
    let arr = Array::from_vec(vec![0u8; 4]);
    let (ready2, arr2) = (ready.clone(), arr.clone());
    let p = Process::new(move || {
        let msg = b.recv().unwrap();
        arr2.set(0, msg.len() as u8).unwrap();
        ready2.set();
        b.send(msg.into_iter().rev().collect()).unwrap();
    });
    p.start().unwrap();
    a.send(vec![1, 2, 3]).unwrap();
    assert!(ready.wait_timeout(Duration::from_secs(60)));
    assert_eq!(a.recv().unwrap(), vec![3, 2, 1]);
    p.join().unwrap();
    assert_eq!(arr.to_vec(), vec![3, 0, 0, 0]);
    pool.close().unwrap();
    pool.join().unwrap();
}
