//! In-process queues for [`dummy`](super) (Python's `queue.Queue`, which
//! `multiprocessing.dummy` exports as `Queue` and `JoinableQueue`), with
//! the crate's queue API and errors ([`QueueError`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::pool::wait_until;
use crate::queues::QueueError;

struct State<T> {
    items: VecDeque<T>,
    unfinished: usize,
}

struct Shared<T> {
    maxsize: usize,
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

/// A FIFO queue between threads (Python's `queue.Queue`). Clones share
/// the queue.
pub struct Queue<T> {
    shared: Arc<Shared<T>>,
}

/// Python's `multiprocessing.dummy.JoinableQueue` is `queue.Queue`, which
/// has `task_done` and `join`: so is ours.
pub type JoinableQueue<T> = Queue<T>;

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Queue<T> {
    /// A queue of at most `maxsize` items (`0`: no limit).
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue {
            shared: Arc::new(Shared {
                maxsize,
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    unfinished: 0,
                }),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
                all_done: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn put_until(
        &self,
        item: T,
        nowait: bool,
        timeout: Option<Duration>,
    ) -> Result<(), QueueError> {
        let max = self.shared.maxsize;
        let has_room = |s: &State<T>| max == 0 || s.items.len() < max;
        let g = self.lock();
        let (mut g, ok) = if nowait {
            let ok = has_room(&g);
            (g, ok)
        } else {
            wait_until(&self.shared.not_full, g, timeout, has_room)
        };
        if !ok {
            return Err(QueueError::Full);
        }
        g.items.push_back(item);
        g.unfinished += 1;
        drop(g);
        self.shared.not_empty.notify_one();
        Ok(())
    }

    fn get_until(&self, nowait: bool, timeout: Option<Duration>) -> Result<T, QueueError> {
        let g = self.lock();
        let (mut g, ok) = if nowait {
            let ok = !g.items.is_empty();
            (g, ok)
        } else {
            wait_until(&self.shared.not_empty, g, timeout, |s| !s.items.is_empty())
        };
        let item = match g.items.pop_front() {
            Some(item) if ok => item,
            _ => return Err(QueueError::Empty),
        };
        drop(g);
        self.shared.not_full.notify_one();
        Ok(item)
    }

    /// Puts an item, waiting for room.
    pub fn put(&self, item: T) -> Result<(), QueueError> {
        self.put_until(item, false, None)
    }

    /// Puts an item, waiting at most `timeout` for room ([`QueueError::Full`]).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), QueueError> {
        self.put_until(item, false, Some(timeout))
    }

    /// Puts an item if there is room now ([`QueueError::Full`] otherwise).
    pub fn put_nowait(&self, item: T) -> Result<(), QueueError> {
        self.put_until(item, true, None)
    }

    /// Takes the oldest item, waiting for one.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_until(false, None)
    }

    /// Takes the oldest item, waiting at most `timeout`
    /// ([`QueueError::Empty`]).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_until(false, Some(timeout))
    }

    /// Takes the oldest item if there is one ([`QueueError::Empty`]
    /// otherwise).
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.get_until(true, None)
    }

    /// The number of items.
    pub fn qsize(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether the queue holds no item.
    pub fn empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Whether the queue holds `maxsize` items.
    pub fn full(&self) -> bool {
        let max = self.shared.maxsize;
        max > 0 && self.lock().items.len() >= max
    }

    /// Marks one item taken earlier as processed; an error when called
    /// more often than items were put.
    pub fn task_done(&self) -> Result<(), QueueError> {
        let mut g = self.lock();
        if g.unfinished == 0 {
            return Err(QueueError::TaskDone);
        }
        g.unfinished -= 1;
        if g.unfinished == 0 {
            self.shared.all_done.notify_all();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        let _ = wait_until(&self.shared.all_done, self.lock(), None, |s| {
            s.unfinished == 0
        });
    }

    /// [`join`](Queue::join) for at most `timeout`; whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        wait_until(&self.shared.all_done, self.lock(), Some(timeout), |s| {
            s.unfinished == 0
        })
        .1
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("dummy::Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.shared.maxsize)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_limits_and_task_accounting() {
        let q = Queue::new(2);
        q.put(1).unwrap();
        q.put_nowait(2).unwrap();
        assert!(q.full());
        assert!(matches!(q.put_nowait(3), Err(QueueError::Full)));
        assert!(matches!(
            q.put_timeout(3, Duration::from_millis(1)),
            Err(QueueError::Full)
        ));
        assert_eq!(q.get().unwrap(), 1);
        assert_eq!(q.get_nowait().unwrap(), 2);
        assert!(matches!(q.get_nowait(), Err(QueueError::Empty)));
        assert!(!q.join_timeout(Duration::from_millis(1)));
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert!(matches!(q.task_done(), Err(QueueError::TaskDone)));
        q.join();
    }

    #[test]
    fn threads_share_it() {
        let q: Queue<u32> = Queue::new(0);
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || (0..100).for_each(|i| q.put(t * 100 + i).unwrap()))
            })
            .collect();
        let mut got: Vec<u32> = (0..400).map(|_| q.get().unwrap()).collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, (0..400).collect::<Vec<_>>());
    }
}
