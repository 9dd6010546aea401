//! The queues' async methods (feature `asyncio`): `get_async`,
//! `put_async` and `JoinableQueue::join_async`, the twins of the blocking
//! calls without a deadline, over the ring's async operations.
//!
//! # Cancel safety
//!
//! | method | cancellation safe | a dropped future… |
//! | --- | --- | --- |
//! | [`Queue::get_async`] | yes | has taken no item |
//! | [`Queue::put_async`] | yes, as `tokio::sync::mpsc::Sender::send` | has put nothing (the item is not sent; a large item's side segment is unlinked) |
//! | [`JoinableQueue::join_async`] | yes | changed nothing |

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{codec, JoinableQueue, Queue, QueueError, SimpleQueue, PREFIX};
use crate::resource_tracker::{self, ResourceType};
use crate::shared_memory::SharedMemory;

/// A large item's side segment until its name is in the queue: unlinked
/// if the put fails or its future is dropped.
struct Unsent(Option<SharedMemory>);

impl Drop for Unsent {
    fn drop(&mut self) {
        if let Some(shm) = self.0.take() {
            let _ = shm.unlink();
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    async fn put_async_with(&self, item: &T, task: bool) -> Result<(), QueueError> {
        self.check_open()?;
        let bytes = codec::encoded(item)?;
        if PREFIX + bytes.len() <= self.ring.capacity() {
            return self.ring.put_async(&bytes, task, false).await;
        }
        // Larger than the ring: as in the blocking put, the bytes go to a
        // named segment of their own and the ring carries its name.
        let shm = SharedMemory::create(bytes.len())?;
        shm.write_at(0, &bytes)?;
        let mut unsent = Unsent(Some(shm));
        let name = unsent.0.as_ref().map(|s| s.name().to_string());
        let name = name.unwrap_or_default();
        self.ring.put_async(name.as_bytes(), task, true).await?;
        // The queue owns the segment now.
        unsent.0 = None;
        let _ = resource_tracker::unregister(&name, ResourceType::SharedMemory);
        Ok(())
    }

    /// Puts `item`, waiting without blocking the thread as long as the
    /// queue is full: the async twin of [`put`](Queue::put), for any
    /// executor (bound it with `tokio::time::timeout` for
    /// `put(timeout=…)`).
    ///
    /// # Cancel safety
    ///
    /// Cancellation safe in the sense of `tokio::sync::mpsc::Sender::send`:
    /// if the future is dropped before it completes, the item was not put.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`QueueError::Setup`] wrapping
    /// [`SyncError::AsyncWaiter`](crate::synchronize::SyncError::AsyncWaiter)
    /// if the futex waiter thread could not be started.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::Queue;
    ///
    /// let q = Queue::new(1)?;
    /// q.put_async(&"first".to_string()).await?;
    /// let consumer = q.clone();
    /// std::thread::spawn(move || consumer.get());
    /// q.put_async(&"second".to_string()).await?; // waits for room
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_async(&self, item: &T) -> Result<(), QueueError> {
        self.put_async_with(item, false).await
    }

    /// Takes the oldest item, waiting without blocking the thread as long
    /// as the queue is empty: the async twin of [`get`](Queue::get), for
    /// any executor (bound it with `tokio::time::timeout` for
    /// `get(timeout=…)`). Producers may be blocking or async, in any
    /// process.
    ///
    /// # Cancel safety
    ///
    /// Cancellation safe: an item is taken out only in the poll that
    /// returns it, so a dropped future has taken nothing and the item
    /// stays first in the queue for the next getter.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), plus [`QueueError::Setup`] if the futex
    /// waiter thread could not be started.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use multiprocessing::Queue;
    ///
    /// let q: Queue<u32> = Queue::new(0)?;
    /// let producer = q.clone();
    /// std::thread::spawn(move || producer.put(&7));
    /// assert_eq!(q.get_async().await?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_async(&self) -> Result<T, QueueError> {
        self.check_open()?;
        let (bytes, side) = self.ring.get_async().await?;
        self.item(bytes, side)
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Puts `item` as a new unfinished task, waiting for room without
    /// blocking the thread (see [`Queue::put_async`]; cancellation safe
    /// the same way).
    pub async fn put_async(&self, item: &T) -> Result<(), QueueError> {
        self.queue.put_async_with(item, true).await
    }
}

impl<T> JoinableQueue<T> {
    /// Waits until every item put has been marked done, without blocking
    /// the thread: the async twin of [`join`](JoinableQueue::join).
    /// Cancellation safe (waiting changes nothing).
    ///
    /// # Errors
    ///
    /// [`QueueError::Setup`] if the futex waiter thread could not be
    /// started.
    pub async fn join_async(&self) -> Result<(), QueueError> {
        self.queue.ring.join_async().await
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// [`Queue::put_async`] for a simple queue.
    pub async fn put_async(&self, item: &T) -> Result<(), QueueError> {
        self.queue.put_async(item).await
    }

    /// [`Queue::get_async`] for a simple queue.
    pub async fn get_async(&self) -> Result<T, QueueError> {
        self.queue.get_async().await
    }
}
