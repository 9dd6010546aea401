//! [`Pipe`] between threads (Python's `multiprocessing.dummy.connection`,
//! where a connection is a pair of queues), with the errors of the
//! crate's [`Connection`](crate::Connection).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::queue::Queue;
use crate::connection::ConnectionError;

/// One direction: the queue and how many connections can still send on
/// it, so a receiver learns when no message can come any more.
struct Channel<T> {
    queue: Queue<T>,
    senders: AtomicUsize,
}

/// One end of a [`Pipe`].
pub struct Connection<T> {
    inbox: Option<Arc<Channel<T>>>,
    outbox: Option<Arc<Channel<T>>>,
}

/// A connected pair of [`Connection`]s (Python's `Pipe(duplex)`): with
/// `duplex` both ends send and receive; otherwise the first end only
/// receives and the second only sends.
#[allow(non_snake_case)]
pub fn Pipe<T>(duplex: bool) -> (Connection<T>, Connection<T>) {
    let channel = || {
        Arc::new(Channel {
            queue: Queue::new(0),
            senders: AtomicUsize::new(1),
        })
    };
    let a_to_b = channel();
    let b_to_a = channel();
    if duplex {
        (
            Connection {
                inbox: Some(b_to_a.clone()),
                outbox: Some(a_to_b.clone()),
            },
            Connection {
                inbox: Some(a_to_b),
                outbox: Some(b_to_a),
            },
        )
    } else {
        (
            Connection {
                inbox: Some(b_to_a.clone()),
                outbox: None,
            },
            Connection {
                inbox: None,
                outbox: Some(b_to_a),
            },
        )
    }
}

/// How often a waiting `recv` looks whether the sender went away.
const RECHECK: Duration = Duration::from_millis(50);

impl<T> Connection<T> {
    /// Sends a value to the other end.
    pub fn send(&self, value: T) -> Result<(), ConnectionError> {
        let out = self.outbox.as_ref().ok_or(ConnectionError::NotWritable)?;
        out.queue.put(value).map_err(|_| ConnectionError::Closed)
    }

    /// Receives the next value; [`ConnectionError::Eof`] once the other
    /// end is dropped and nothing is left.
    pub fn recv(&self) -> Result<T, ConnectionError> {
        let inbox = self.inbox.as_ref().ok_or(ConnectionError::NotReadable)?;
        loop {
            if let Ok(v) = inbox.queue.get_timeout(RECHECK) {
                return Ok(v);
            }
            if inbox.senders.load(Ordering::SeqCst) == 0 {
                return inbox.queue.get_nowait().map_err(|_| ConnectionError::Eof);
            }
        }
    }

    /// Whether a value is waiting (Python's `poll()`).
    pub fn poll(&self) -> Result<bool, ConnectionError> {
        let inbox = self.inbox.as_ref().ok_or(ConnectionError::NotReadable)?;
        Ok(!inbox.queue.empty())
    }

    /// Waits at most `timeout` for a value; whether one is waiting.
    pub fn poll_timeout(&self, timeout: Duration) -> Result<bool, ConnectionError> {
        let inbox = self.inbox.as_ref().ok_or(ConnectionError::NotReadable)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if !inbox.queue.empty() {
                return Ok(true);
            }
            let now = std::time::Instant::now();
            if now >= deadline || inbox.senders.load(Ordering::SeqCst) == 0 {
                return Ok(false);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(1)));
        }
    }
}

impl<T> Drop for Connection<T> {
    fn drop(&mut self) {
        if let Some(out) = &self.outbox {
            out.senders.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("dummy::Connection")
            .field("readable", &self.inbox.is_some())
            .field("writable", &self.outbox.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_then_eof() {
        let (a, b) = Pipe::<String>(true);
        let t = std::thread::spawn(move || {
            let got = b.recv().unwrap();
            b.send(got.to_uppercase()).unwrap();
        });
        a.send("hi".into()).unwrap();
        assert_eq!(a.recv().unwrap(), "HI");
        t.join().unwrap();
        assert!(matches!(a.recv(), Err(ConnectionError::Eof)));
        let (r, w) = Pipe::<u8>(false);
        assert!(matches!(r.send(1), Err(ConnectionError::NotWritable)));
        assert!(matches!(w.recv(), Err(ConnectionError::NotReadable)));
        assert!(!r.poll().unwrap());
        w.send(7).unwrap();
        assert!(r.poll_timeout(Duration::from_secs(5)).unwrap());
        assert_eq!(r.recv().unwrap(), 7);
    }
}
