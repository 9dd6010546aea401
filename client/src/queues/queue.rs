//! `Queue`, `JoinableQueue` and `SimpleQueue` (Python's
//! `multiprocessing.queues`), typed front ends of the shared ring.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codec;
use super::error::QueueError;
use super::ring::{Block, Ring, PREFIX};
use crate::resource_tracker::{self, ResourceType};
use crate::shared_memory::SharedMemory;

#[cfg(feature = "asyncio")]
#[path = "queue_async.rs"]
mod queue_async;

/// Ring size when none is given: 8 MiB of record space. Pages of a
/// `memfd` are only allocated when first written, so a queue of small
/// items costs little more than the pages it touches.
pub const DEFAULT_CAPACITY: usize = 8 << 20;

/// A FIFO queue shared by threads and processes (Python's
/// `multiprocessing.Queue`).
///
/// Items are serde values, encoded with CBOR (`Vec<u8>` travels as is) into
/// a ring buffer in shared memory. `put` returns once the item is in shared
/// memory, so there is no feeder thread, and a process may exit right after
/// `put` without losing the item or blocking (CPython's "joining processes
/// that use queues" deadlock does not exist here).
///
/// A process killed in the middle of a `put` or `get` leaves the queue
/// usable and consistent for the others (see the module docs).
///
/// Clones and deserialized copies (a child under any start method) share
/// the queue. [`close`](Queue::close) only affects this handle and its
/// clones in this process.
///
/// ```
/// use multiprocessing::Queue;
///
/// let q = Queue::new(2)?;
/// q.put(&"a".to_string())?;
/// q.put(&"b".to_string())?;
/// assert!(q.full());
/// assert!(q.put_nowait(&"c".to_string()).is_err());
/// assert_eq!(q.get()?, "a");
/// assert_eq!(q.qsize(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    ring: Ring,
    closed: Arc<AtomicBool>,
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            closed: Arc::clone(&self.closed),
            _item: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue holding at most `maxsize` items (`0`: no limit but the
    /// ring's bytes, as Python's `maxsize <= 0`).
    pub fn new(maxsize: usize) -> Result<Queue<T>, QueueError> {
        Self::with_capacity(maxsize, DEFAULT_CAPACITY)
    }

    /// Like [`Queue::new`] with a ring of `capacity` bytes (64 to 2^31).
    /// An item whose encoding plus 4 bytes exceeds it travels in a named
    /// shared memory segment of its own, whose name goes through the ring.
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<Queue<T>, QueueError> {
        let max = if maxsize == 0 {
            u64::MAX
        } else {
            maxsize as u64
        };
        Ok(Queue {
            ring: Ring::new(capacity, max)?,
            closed: Arc::new(AtomicBool::new(false)),
            _item: PhantomData,
        })
    }

    fn check_open(&self) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(QueueError::Closed);
        }
        Ok(())
    }

    fn put_with(&self, item: &T, block: Block, task: bool) -> Result<(), QueueError> {
        self.check_open()?;
        codec::with_encoded(item, |bytes| {
            if PREFIX + bytes.len() <= self.ring.capacity() {
                return self.ring.put(bytes, block, task, false);
            }
            // Larger than the ring: the bytes go to a named segment of
            // their own and the ring carries its name. The consumer unlinks
            // it; if this put fails, we do. Once the name is in the queue
            // the segment is the queue's: this process's resource tracker
            // must not unlink it when we exit.
            let shm = SharedMemory::create(bytes.len())?;
            shm.write_at(0, bytes)?;
            let r = self.ring.put(shm.name().as_bytes(), block, task, true);
            match r {
                Ok(()) => {
                    let _ = resource_tracker::unregister(shm.name(), ResourceType::SharedMemory);
                }
                Err(_) => {
                    let _ = shm.unlink();
                }
            }
            r
        })
    }

    pub(crate) fn put_task(&self, item: &T, block: Block) -> Result<(), QueueError> {
        self.put_with(item, block, true)
    }

    fn get_with(&self, block: Block) -> Result<T, QueueError> {
        self.check_open()?;
        let (bytes, side) = self.ring.get(block)?;
        self.item(bytes, side)
    }

    /// Takes the oldest item, calling `claim` with its encoded bytes
    /// (for a large item, its side segment's) while the item is still in
    /// the queue, just before it is taken out (see
    /// [`Ring::get_claiming`]). `claim` runs under the queue's lock: it
    /// must be quick and must not touch this queue.
    pub(crate) fn get_claiming(
        &self,
        block: Block,
        mut claim: impl FnMut(&[u8]),
    ) -> Result<T, QueueError> {
        self.check_open()?;
        let (bytes, side) = self.ring.get_claiming(block, &mut |bytes, side| {
            if !side {
                return claim(bytes);
            }
            // The item's bytes are in the segment this record names.
            let segment = std::str::from_utf8(bytes)
                .ok()
                .and_then(|name| SharedMemory::attach(name).ok());
            if let Some(shm) = segment {
                claim(shm.buf());
            }
        })?;
        self.item(bytes, side)
    }

    /// The item a record taken out of the ring stands for.
    fn item(&self, bytes: Vec<u8>, side: bool) -> Result<T, QueueError> {
        if !side {
            return codec::decode(bytes);
        }
        let name =
            String::from_utf8(bytes).map_err(|_| QueueError::Corrupt("side segment name"))?;
        let shm = SharedMemory::attach(&name)?;
        let data = shm.buf().to_vec();
        shm.unlink()?;
        codec::decode(data)
    }

    /// Puts `item`, waiting as long as the queue is full.
    pub fn put(&self, item: &T) -> Result<(), QueueError> {
        self.put_with(item, Block::after(None), false)
    }

    /// Puts `item`, waiting at most `timeout` for room
    /// ([`QueueError::Full`] after that).
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), QueueError> {
        self.put_with(item, Block::after(Some(timeout)), false)
    }

    /// Puts `item` if there is room now, else [`QueueError::Full`].
    pub fn put_nowait(&self, item: &T) -> Result<(), QueueError> {
        self.put_with(item, Block::No, false)
    }

    /// Takes the oldest item, waiting as long as the queue is empty.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_with(Block::after(None))
    }

    /// Takes the oldest item, waiting at most `timeout`
    /// ([`QueueError::Empty`] after that).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_with(Block::after(Some(timeout)))
    }

    /// Takes the oldest item if there is one now, else
    /// [`QueueError::Empty`].
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.get_with(Block::No)
    }
}

impl<T> Queue<T> {
    /// Number of items in the queue (a snapshot, as in Python; exact here,
    /// and available on every platform).
    pub fn qsize(&self) -> usize {
        usize::try_from(self.ring.count()).unwrap_or(usize::MAX)
    }

    /// Whether the queue holds no item (a snapshot).
    pub fn empty(&self) -> bool {
        self.ring.count() == 0
    }

    /// Whether the queue holds `maxsize` items (a snapshot; always `false`
    /// without a limit, though a put can still wait for ring space).
    pub fn full(&self) -> bool {
        self.ring.count() >= self.ring.maxsize()
    }

    /// The item limit given at creation (`0`: none).
    pub fn maxsize(&self) -> usize {
        match self.ring.maxsize() {
            u64::MAX => 0,
            m => usize::try_from(m).unwrap_or(usize::MAX),
        }
    }

    /// Size of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Closes this process's handle (and its clones): further `put`/`get`
    /// through it fail with [`QueueError::Closed`]. Other processes and the
    /// items already put are unaffected; the shared memory is freed when
    /// the last handle anywhere is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Python waits here for the feeder thread to flush. There is no
    /// feeder thread — `put` writes to shared memory before returning — so
    /// there is nothing to wait for and this returns at once.
    pub fn join_thread(&self) {}

    /// Python stops the process from waiting for its feeder thread at exit.
    /// There is no feeder thread (see [`Queue::join_thread`]), so this has
    /// nothing to do: a process never waits at exit because of a queue.
    pub fn cancel_join_thread(&self) {}
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.count())
            .field("maxsize", &self.maxsize())
            .field("capacity", &self.ring.capacity())
            .finish()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.ring.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Queue {
            ring: Ring::deserialize(deserializer)?,
            closed: Arc::new(AtomicBool::new(false)),
            _item: PhantomData,
        })
    }
}

/// A [`Queue`] whose consumers report each item done, so producers can
/// [`join`](JoinableQueue::join) until all are (Python's
/// `multiprocessing.JoinableQueue`). Derefs to [`Queue`] for `get`,
/// `qsize`, `close`, …; its own `put*` count tasks.
///
/// ```
/// use multiprocessing::JoinableQueue;
///
/// let q = JoinableQueue::new(0)?;
/// q.put(&1u32)?;
/// assert_eq!(q.get()?, 1);
/// q.task_done()?;
/// q.join();
/// assert!(q.task_done().is_err()); // more than were put
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A joinable queue of at most `maxsize` items (`0`: no limit).
    pub fn new(maxsize: usize) -> Result<JoinableQueue<T>, QueueError> {
        Self::with_capacity(maxsize, DEFAULT_CAPACITY)
    }

    /// Like [`JoinableQueue::new`] with a ring of `capacity` bytes.
    pub fn with_capacity(maxsize: usize, capacity: usize) -> Result<JoinableQueue<T>, QueueError> {
        Ok(JoinableQueue {
            queue: Queue::with_capacity(maxsize, capacity)?,
        })
    }

    /// Puts `item` as a new unfinished task, waiting for room.
    pub fn put(&self, item: &T) -> Result<(), QueueError> {
        self.queue.put_task(item, Block::after(None))
    }

    /// Like [`JoinableQueue::put`], waiting at most `timeout`.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), QueueError> {
        self.queue.put_task(item, Block::after(Some(timeout)))
    }

    /// Like [`JoinableQueue::put`] if there is room now.
    pub fn put_nowait(&self, item: &T) -> Result<(), QueueError> {
        self.queue.put_task(item, Block::No)
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task taken with `get` as finished.
    ///
    /// # Errors
    ///
    /// [`QueueError::TaskDone`] if called more times than items were put.
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.queue.ring.task_done()
    }

    /// Blocks until every item put has been marked done.
    pub fn join(&self) {
        self.queue.ring.join(Block::after(None));
    }

    /// Like [`JoinableQueue::join`], giving up after `timeout`; returns
    /// whether all tasks were done (an addition: Python has no timeout
    /// here).
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.ring.join(Block::after(Some(timeout)))
    }

    /// Tasks put and not yet marked done (a snapshot).
    pub fn unfinished_tasks(&self) -> usize {
        usize::try_from(self.queue.ring.unfinished()).unwrap_or(usize::MAX)
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.queue.ring.unfinished())
            .finish()
    }
}

/// An unbounded queue with only `put`, `get`, `empty` and `close`
/// (Python's `multiprocessing.SimpleQueue`). Same machinery as [`Queue`].
///
/// ```
/// use multiprocessing::SimpleQueue;
///
/// let q = SimpleQueue::new()?;
/// q.put(&vec![1u8, 2, 3])?;
/// assert_eq!(q.get()?, vec![1, 2, 3]);
/// assert!(q.empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue with a ring of [`DEFAULT_CAPACITY`] bytes.
    pub fn new() -> Result<SimpleQueue<T>, QueueError> {
        Ok(SimpleQueue {
            queue: Queue::new(0)?,
        })
    }

    /// Puts `item`, waiting only if the ring has no room for it.
    pub fn put(&self, item: &T) -> Result<(), QueueError> {
        self.queue.put(item)
    }

    /// Takes the oldest item, waiting while there is none.
    pub fn get(&self) -> Result<T, QueueError> {
        self.queue.get()
    }
}

impl<T> SimpleQueue<T> {
    /// Whether the queue is empty (a snapshot).
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Closes this process's handle (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close()
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(20);

    #[test]
    fn timeouts_and_nowait_report_full_and_empty() {
        let q: Queue<u32> = Queue::new(1).unwrap();
        assert!(matches!(q.get_nowait(), Err(QueueError::Empty)));
        assert!(matches!(q.get_timeout(SHORT), Err(QueueError::Empty)));
        q.put_nowait(&1).unwrap();
        assert!(q.full());
        assert!(matches!(q.put_nowait(&2), Err(QueueError::Full)));
        assert!(matches!(q.put_timeout(&2, SHORT), Err(QueueError::Full)));
        assert_eq!(q.get_timeout(SHORT).unwrap(), 1);
        assert!(q.empty());
    }

    #[test]
    fn a_blocked_put_proceeds_when_a_thread_gets() {
        let q: Queue<u32> = Queue::new(1).unwrap();
        q.put(&1).unwrap();
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.put_timeout(&2, Duration::from_secs(60)));
        assert_eq!(q.get().unwrap(), 1);
        t.join().unwrap().unwrap();
        assert_eq!(q.get_timeout(Duration::from_secs(60)).unwrap(), 2);
    }

    #[test]
    fn items_larger_than_the_ring_go_through_a_side_segment() {
        let q: Queue<Vec<u8>> = Queue::with_capacity(0, 1024).unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        q.put(&big).unwrap();
        q.put(&vec![9; 10]).unwrap();
        q.put(&big).unwrap();
        assert_eq!(q.qsize(), 3);
        assert_eq!(q.get().unwrap(), big);
        assert_eq!(q.get().unwrap(), vec![9; 10]);
        assert_eq!(q.get().unwrap(), big);
        assert!(q.empty());
        q.put(&vec![7; 1020]).unwrap();
        assert!(matches!(q.put_nowait(&vec![1]), Err(QueueError::Full)));
        assert_eq!(q.get().unwrap(), vec![7; 1020]);
        assert!(Queue::<u8>::with_capacity(0, 8).is_err());
        assert!(Queue::<u8>::with_capacity(0, usize::MAX).is_err());
        assert!(Queue::<u8>::with_capacity(0, usize::MAX).is_err());
    }

    #[test]
    fn a_claim_sees_the_item_bytes_even_from_a_side_segment() {
        let q: Queue<Vec<u8>> = Queue::with_capacity(0, 1024).unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        q.put(&vec![1, 2, 3]).unwrap();
        q.put(&big).unwrap();
        let mut seen = Vec::new();
        let got = q.get_claiming(Block::No, |b| seen = b.to_vec()).unwrap();
        assert_eq!((got, &seen), (vec![1, 2, 3], &vec![1, 2, 3]));
        let got = q.get_claiming(Block::No, |b| seen = b.to_vec()).unwrap();
        assert_eq!(got, big);
        assert_eq!(seen, big);
        assert!(matches!(
            q.get_claiming(Block::No, |_| panic!("nothing to claim")),
            Err(QueueError::Empty)
        ));
    }

    #[test]
    fn close_affects_this_handle_only() {
        let q: Queue<u8> = Queue::new(0).unwrap();
        let other: Queue<u8> = ciborium_round_trip(&q);
        q.put(&5).unwrap();
        q.close();
        q.join_thread();
        q.cancel_join_thread();
        assert!(matches!(q.put(&1), Err(QueueError::Closed)));
        assert!(matches!(q.get_nowait(), Err(QueueError::Closed)));
        assert_eq!(other.get_nowait().unwrap(), 5);
    }

    #[test]
    fn a_wrong_type_is_a_decode_error_and_is_consumed() {
        let q: Queue<String> = Queue::new(0).unwrap();
        q.put(&"x".into()).unwrap();
        let as_int: Queue<u32> = ciborium_round_trip(&q);
        assert!(matches!(as_int.get_nowait(), Err(QueueError::Decode(_))));
        assert!(q.empty());
    }

    #[test]
    fn joinable_counts_tasks() {
        let q: JoinableQueue<u8> = JoinableQueue::new(0).unwrap();
        assert!(q.join_timeout(Duration::ZERO));
        q.put(&1).unwrap();
        q.put_nowait(&2).unwrap();
        assert_eq!(q.unfinished_tasks(), 2);
        assert!(!q.join_timeout(SHORT));
        q.get().unwrap();
        q.task_done().unwrap();
        q.get().unwrap();
        q.task_done().unwrap();
        q.join();
        assert!(matches!(q.task_done(), Err(QueueError::TaskDone)));
    }

    /// A handle as a spawn child would receive it: serialized with its
    /// descriptors collected, then rebuilt from them.
    fn ciborium_round_trip<A, B>(q: &Queue<A>) -> Queue<B> {
        use crate::reduction::{FdSink, FdSource};
        let (bytes, fds) = FdSink::collect(|| {
            let mut v = Vec::new();
            ciborium::into_writer(q, &mut v).map(|()| v)
        });
        let bytes = bytes.unwrap();
        FdSource::provide(fds, || ciborium::from_reader(bytes.as_slice())).unwrap()
    }
}
