//! A well-behaved client that keeps making calls in the background while
//! a test throws bad input at the same server, and proves it was served
//! throughout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mp_proto::message::Kwargs;
use mp_proto::Value;

use crate::mpserver::{eventually, ServerProcess};

/// The background client.
pub struct Steady {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Steady {
    /// Connects to `server` and starts setting and reading back a dict
    /// item in a loop; any failed or wrong call panics its thread.
    pub fn start(server: &ServerProcess) -> Steady {
        let c = server.client();
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                let d = c.create("dict", vec![], Kwargs::new()).unwrap().token.id;
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    c.call_method(d, "__setitem__", vec!["k".into(), n.into()], Kwargs::new())
                        .unwrap();
                    let v = c
                        .call_method(d, "__getitem__", vec!["k".into()], Kwargs::new())
                        .unwrap()
                        .into_value()
                        .unwrap();
                    assert_eq!(v, Value::Int(n));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Steady { done, stop, thread }
    }

    /// Waits until the client completes another round trip: it is still
    /// being served now. Panics after 30 s.
    pub fn served(&self) {
        let seen = self.done.load(Ordering::Relaxed);
        assert!(
            eventually(Duration::from_secs(30), || self
                .done
                .load(Ordering::Relaxed)
                > seen
                || self.thread.is_finished()),
            "the well-behaved client made no progress in 30 s"
        );
        assert!(!self.thread.is_finished(), "the well-behaved client failed");
    }

    /// Stops it; panics if any of its calls failed. Returns how many
    /// round trips it made.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the well-behaved client failed");
        self.done.load(Ordering::Relaxed)
    }
}
