//! A program built with the SDK's default features off
//! (`default-features = false`: no embedded server, no tokio, no rustls)
//! still has every local primitive and the manager *clients*: it talks to
//! a running `mpserver`, and shares a manager dict and queue with a `Pool`
//! of worker processes.
//!
//! ```sh
//! MP_AUTHKEY=secret mpserver serve --unix /tmp/mp.sock --authkey-env MP_AUTHKEY &
//! MP_AUTHKEY=secret cargo run -p multiprocessing --no-default-features \
//!     --example slim_client -- /tmp/mp.sock
//! ```
//!
//! It prints `squares: [0, 1, 4, 9, 16, 25, 36, 49]` and the same from the
//! shared dict, and exits non-zero if anything disagrees.

use std::error::Error;

use multiprocessing::managers::SyncManager;
use multiprocessing::{Lock, Pool, Queue};

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn Error>> {
    multiprocessing::init();
    let address = std::env::args()
        .nth(1)
        .ok_or("usage: slim_client ADDRESS (host:port or a Unix socket path)")?;
    let authkey = std::env::var("MP_AUTHKEY").map_err(|_| "set MP_AUTHKEY")?;

    // The local stack: a pool of processes, a queue and a lock.
    let pool = Pool::new(2)?;
    let squares = pool.map(square, 0..8u64)?;
    let queue: Queue<u64> = Queue::new(0)?;
    let lock = Lock::new()?;
    {
        let _held = lock.lock();
        for s in &squares {
            queue.put(s)?;
        }
    }
    println!("squares: {squares:?}");

    // A manager client on the running server.
    let manager = SyncManager::connect(&address.parse()?, authkey.as_bytes())?;
    let shared = manager.dict::<u64, u64>()?;
    for (i, _) in squares.iter().enumerate() {
        let s = queue.get()?;
        shared.set(i as u64, s)?;
    }
    let jobs = manager.queue::<u64>()?;
    jobs.put(7)?;
    let mut from_server = Vec::new();
    for i in 0..8u64 {
        from_server.push(shared.get(i)?.ok_or("a key went missing")?);
    }
    from_server.sort_unstable();
    println!("from the shared dict: {from_server:?}");
    if from_server != squares || jobs.get()? != 49 / 7 {
        return Err("the shared objects disagree with the pool".into());
    }
    Ok(())
}
