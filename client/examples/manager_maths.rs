//! The reference documentation's customized manager, typed: `MathsClass`
//! made a shared type by `#[shared]`, registered on a `BaseManager` and
//! used in a scope (Python's `with MyManager() as manager:`). Prints
//!
//! ```text
//! 7
//! 56
//! ```
//!
//! `manager_maths_untyped` is the same by name, over a hand-written
//! `SharedObject`. Run with
//! `cargo run -p multiprocessing --example manager_maths`.

use std::error::Error;
use std::io::{self, Write};

use multiprocessing::managers::{shared, BaseManager};

/// The reference's `MathsClass`, served under the typeid `Maths`.
#[derive(Default)]
pub struct MathsClass;

#[shared(typeid = "Maths")]
impl MathsClass {
    fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }
    fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }
}

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let mut manager = BaseManager::new("127.0.0.1:0", b"maths");
    manager.register::<MathsClass>()?;
    manager.start()?;
    let maths = manager.create::<MathsClass>()?;
    writeln!(out, "{}", maths.add(4, 3)?)?; // prints 7
    writeln!(out, "{}", maths.mul(7, 8)?)?; // prints 56
    Ok(()) // dropping the manager shuts the server down, as `with` does
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
