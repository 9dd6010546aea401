//! The reference documentation's nesting examples (Proxy Objects): a
//! shared list holding another shared list, then a list of shared dicts,
//! then a plain dict inside a shared list re-assigned to propagate a
//! change. Prints
//!
//! ```text
//! [<ListProxy object, typeid 'list' at 0x…>] []
//! ['hello'] ['hello']
//! {'a': 1, 'b': 2}
//! {'c': 3, 'z': 26}
//! [{'a': 1, 'b': 2}]
//! ```
//!
//! (the address in the first line varies from run to run).
//!
//! Run with `cargo run -p multiprocessing --example manager_nesting`.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Write};

use multiprocessing::managers::{DictProxy, ListProxy, Manager};

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let manager = Manager()?;

    let a = manager.list::<ListProxy<String>>()?;
    let b = manager.list::<String>()?;
    a.append(&b)?; // the referent of a now contains the referent of b
    writeln!(out, "{a} {b}")?;
    b.append("hello")?;
    writeln!(out, "{} {b}", a.get(0)?)?;

    let l_outer = manager.list_from(&[
        manager.dict::<String, i64>()?,
        manager.dict::<String, i64>()?,
    ])?;
    let d_first_inner: DictProxy<String, i64> = l_outer.get(0)?;
    d_first_inner.set("a", 1)?;
    d_first_inner.set("b", 2)?;
    l_outer.get(1)?.set("c", 3)?;
    l_outer.get(1)?.set("z", 26)?;
    writeln!(out, "{}", l_outer.get(0)?)?;
    writeln!(out, "{}", l_outer.get(1)?)?;

    // A plain dict inside a shared list: changing the copy does nothing
    // until it is stored again.
    let lproxy = manager.list::<BTreeMap<String, i64>>()?;
    lproxy.append(BTreeMap::new())?;
    let mut d = lproxy.get(0)?;
    d.insert("a".into(), 1);
    d.insert("b".into(), 2);
    lproxy.set(0, &d)?;
    writeln!(out, "{lproxy}")?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
