//! A process killed while holding a lock does not deadlock the others
//! (CPython's would): the next acquirer takes the lock over and is told,
//! so it can repair what the dead holder left half-done.
//!
//! Run with `cargo run -p multiprocessing --example lock_recovery`.

use std::error::Error;
use std::time::Duration;

use multiprocessing::sharedctypes::Value;

fn main() -> Result<(), Box<dyn Error>> {
    // A balance that must stay even; updates add 2, one unit at a time.
    let balance = Value::new(0i64)?;

    // SAFETY: the child only touches shared memory and then dies.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut g = balance.lock();
        *g += 1; // half of an update...
                 // ...and the process is killed before the second half.
                 // SAFETY: raising a signal at ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!("child killed by signal {}", libc::WTERMSIG(status));

    // Blocks about 100 ms, until the dead holder is noticed.
    let lock = balance.get_lock();
    let guard = lock
        .lock_timeout(Duration::from_secs(10))
        .ok_or("the lock was not recovered")?;
    if guard.owner_died() {
        let odd = balance.get_obj().get();
        println!("took the lock over from a dead process; balance {odd} is half-updated");
        balance.get_obj().set(odd - odd % 2);
    }
    drop(guard);
    *balance.lock() += 2;
    println!("balance is {}", balance.get());
    Ok(())
}
