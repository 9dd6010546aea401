//! The reference documentation's customized manager: `MathsClass`
//! registered on a `BaseManager`, used in a scope (Python's
//! `with MyManager() as manager:`). Prints
//!
//! ```text
//! 7
//! 56
//! ```
//!
//! Run with `cargo run -p multiprocessing --example manager_maths_untyped`.

use std::error::Error;
use std::io::{self, Write};

use multiprocessing::managers::BaseManager;

#[path = "../../server/examples/shared/maths.rs"]
mod maths;

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let mut manager = BaseManager::new("127.0.0.1:0", b"maths");
    maths::register_maths(manager.registry()?);
    manager.start()?;
    {
        let maths = manager.create_auto("Maths", vec![])?;
        writeln!(
            out,
            "{}",
            maths
                .call_method("add", vec![4.into(), 3.into()])?
                .into_value()?
        )?; // prints 7
        writeln!(
            out,
            "{}",
            maths
                .call_method("mul", vec![7.into(), 8.into()])?
                .into_value()?
        )?; // prints 56
    }
    // Leaving the scope shuts the server down, as `with` does.
    drop(manager);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
