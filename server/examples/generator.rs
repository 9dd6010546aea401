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

use std::sync::Mutex;

use mp_server::prelude::*;
use mp_server::{Listen, Server};
use multiprocessing::managers::{ManagerClient, ManagerError};

/// Methods `f`, `g`, and the private `_h`.
struct Foo;

impl SharedObject for Foo {
    fn methods() -> &'static [&'static str] {
        &["f", "g", "_h"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        let said = match method {
            "f" => "you called Foo.f()",
            "g" => "you called Foo.g()",
            "_h" => "you called Foo._h()",
            _ => return Reply::no_such_method("Foo", method),
        };
        args.none(method).map(|()| Value::from(said)).into()
    }
}

/// `baz()`: yields the squares of 0..10, then raises `StopIteration`.
struct Squares {
    next: Mutex<i64>,
}

impl SharedObject for Squares {
    fn methods() -> &'static [&'static str] {
        &["__next__"]
    }

    fn call(&self, _ctx: &CallContext<'_>, method: &str, args: Args) -> Reply {
        if method != "__next__" {
            return Reply::no_such_method("generator", method);
        }
        if let Err(e) = args.none(method) {
            return Reply::err(e);
        }
        let mut i = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if *i >= 10 {
            return Reply::err(RemoteError::new(ErrorKind::StopIteration, ""));
        }
        let square = *i * *i;
        *i += 1;
        Reply::ok(square)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::new();
    registry.register("Foo1", |_ctx, _args| Ok(Foo));
    registry
        .register("Foo2", |_ctx, _args| Ok(Foo))
        .exposed(["g", "_h"]);
    // Dunder names are hidden by default: list `__next__` explicitly.
    registry
        .register("baz", |_ctx, _args| {
            Ok(Squares {
                next: Mutex::new(0),
            })
        })
        .exposed(["__next__"]);

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
