//! The reference documentation's `sharedctypes` example: a child squares
//! `n` and `x`, upper-cases `s` and squares the points of `A`, and the
//! parent prints
//!
//! ```text
//! 49
//! 0.1111111111111111
//! HELLO WORLD
//! [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
//! ```
//!
//! Run with `cargo run -p multiprocessing --example sharedctypes`.

use std::error::Error;
use std::io::{self, Write};

use multiprocessing::sharedctypes::{Array, Pod, RawValue, Value, Zeroable};
use multiprocessing::synchronize::Lock;

/// The ctypes `Structure` of the example, as a `#[repr(C)]` plain struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[bytemuck(crate = "multiprocessing::sharedctypes::bytemuck")]
struct Point {
    x: f64,
    y: f64,
}

/// What the child does (Python's `modify`).
fn modify(
    n: &Value<i32>,
    x: &RawValue<f64>,
    s: &Array<u8>,
    a: &Array<Point>,
) -> Result<(), Box<dyn Error>> {
    {
        let mut n = n.lock();
        *n = n.pow(2);
    }
    x.set(x.get().powi(2));
    s.set_value(&s.value().to_ascii_uppercase())?;
    for p in a.lock().iter_mut() {
        p.x = p.x.powi(2);
        p.y = p.y.powi(2);
    }
    Ok(())
}

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let lock = Lock::new()?;

    let n = Value::new(7i32)?;
    let x = RawValue::new(1.0f64 / 3.0)?; // lock=False
    let s = Array::from_slice_with_lock(b"hello world", lock.clone())?;
    let a = Array::from_slice_with_lock(
        &[
            Point { x: 1.875, y: -6.25 },
            Point { x: -5.75, y: 2.0 },
            Point { x: 2.375, y: 9.5 },
        ],
        lock,
    )?;

    // The child: a forked process running `modify`.
    // SAFETY: the child only runs `modify` on shared memory and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error().into());
    }
    if pid == 0 {
        let code = match modify(&n, &x, &s, &a) {
            Ok(()) => 0,
            Err(_) => 1,
        };
        // SAFETY: ends the child without running the parent's exit path.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid || status != 0 {
        return Err("the child failed".into());
    }

    writeln!(out, "{}", n.get())?;
    writeln!(out, "{:?}", x.get())?;
    writeln!(out, "{}", String::from_utf8_lossy(&s.value()))?;
    let points: Vec<String> = a
        .to_vec()
        .iter()
        .map(|p| format!("({:?}, {:?})", p.x, p.y))
        .collect();
    writeln!(out, "[{}]", points.join(", "))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
