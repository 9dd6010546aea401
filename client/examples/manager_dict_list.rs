//! The reference documentation's first Managers example: a child process
//! fills a shared dict and reverses a shared list, and the parent prints
//!
//! ```text
//! {1: '1', '2': 2, 0.25: None}
//! [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
//! ```
//!
//! Run with `cargo run -p multiprocessing --example manager_dict_list`.

use std::error::Error;
use std::io::{self, Write};

use mp_proto::Value;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{DictProxy, ListProxy, Manager};

fn f(d: DictProxy<Value, Value>, l: ListProxy<i64>) -> Result<(), Box<dyn Error>> {
    d.set(Value::Int(1), "1")?;
    d.set("2", Value::Int(2))?;
    d.set(Value::Float(0.25), &Value::None)?;
    l.reverse()?;
    Ok(())
}

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let manager = Manager()?;
    let d = manager.dict::<Value, Value>()?;
    let l = manager.list_from::<i64>(0..10)?;
    let p = get_context(StartMethod::Fork).process(f, (d.clone(), l.clone()));
    p.start()?;
    p.join()?;
    writeln!(out, "{d}")?;
    writeln!(out, "{l}")?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
