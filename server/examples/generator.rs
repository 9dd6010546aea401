//! The reference's custom-manager example: the `exposed` rule, and a
//! generator-like typeid whose proxy exposes only `__next__` (`baz`).
//!
//! ```python
//! class Foo:
//!     def f(self): ...
//!     def g(self): ...
//!     def _h(self): ...
//! def baz():
//!     for i in range(10):
//!         yield i*i
//! MyManager.register('Foo1', Foo)                    # exposes f and g
//! MyManager.register('Foo2', Foo, exposed=('g', '_h')) # exposes g and _h
//! MyManager.register('baz', baz, proxytype=GeneratorProxy)  # __next__
//! ```
//!
//! Run with `cargo run -p mp-server --example generator`.

use mp_server::prelude::*;
use mp_server::{Listen, Server};
use multiprocessing::managers::{ManagerClient, ManagerError};

#[allow(dead_code)]
#[path = "shared/custom.rs"]
mod custom;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::new();
    custom::register_demo(&mut registry);

    let runtime = tokio::runtime::Runtime::new()?;
    let server = runtime.block_on(
        Server::new(registry, b"abracadabra".to_vec()).bind(&Listen::Tcp("127.0.0.1:0".into())),
    )?;
    let address = server.address().to_owned();
    let engine = server.engine().clone();
    let serving = runtime.spawn(server.run());
    let client = ManagerClient::connect(&address.parse()?, b"abracadabra")?;
    let none = Default::default;

    let a = client.create("Foo1", vec![], none())?;
    println!("Foo1 exposes {:?}", a.exposed);
    println!(
        "{}",
        client
            .call_method(a.token.id, "f", vec![], none())?
            .into_value()?
    );
    match client.call_method(a.token.id, "_h", vec![], none()) {
        Err(ManagerError::Remote(e)) => println!("Foo1._h(): {e}"),
        other => return Err(format!("_h should be hidden on Foo1: {other:?}").into()),
    }
    let b = client.create("Foo2", vec![], none())?;
    println!("Foo2 exposes {:?}", b.exposed);
    println!(
        "{}",
        client
            .call_method(b.token.id, "_h", vec![], none())?
            .into_value()?
    );

    let it = client.create("baz", vec![], none())?;
    let mut squares = Vec::new();
    loop {
        match client.call_method(it.token.id, "__next__", vec![], none()) {
            Ok(v) => squares.push(v.into_value()?.to_string()),
            Err(ManagerError::Remote(e)) if e.kind == ErrorKind::StopIteration => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("<{}>", squares.join(", "));

    engine.shutdown().trigger();
    runtime.block_on(serving)??;
    Ok(())
}
