//! The reference documentation's `Namespace` example: attributes set on a
//! shared namespace show in its `str()`, except `_z`, which starts with
//! an underscore and stays in the proxy. Prints
//!
//! ```text
//! Namespace(x=10, y='hello')
//! 12.3
//! ```
//!
//! Run with `cargo run -p multiprocessing --example manager_namespace`.

use std::error::Error;
use std::io::{self, Write};

use multiprocessing::managers::Manager;

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let manager = Manager()?;
    let global = manager.namespace()?;
    global.set("x", 10)?;
    global.set("y", "hello")?;
    global.set("_z", 12.3)?;
    writeln!(out, "{global}")?;
    writeln!(out, "{}", global.get::<f64>("_z")?)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
