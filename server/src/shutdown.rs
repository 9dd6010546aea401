//! Graceful shutdown: one signal every part of the server listens to.
//!
//! Triggered by the `shutdown` server call, by SIGINT/SIGTERM in the CLI,
//! or by an embedder. The accept loop stops accepting; each connection
//! answers what it has already read, answers its waiting calls with
//! `ShuttingDown`, flushes and closes; the server then returns. Like
//! mini-redis's: a broadcast (here a `watch`) to every handler.

use tokio::sync::watch;

/// The shutdown signal.
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not triggered yet.
    pub fn new() -> Self {
        Shutdown {
            sender: watch::channel(false).0,
        }
    }

    /// Asks the server to stop (idempotent).
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once a stop is asked for.
    pub async fn wait(&self) {
        let mut rx = self.sender.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// A receiver to `select!` on.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }
}
