//! The reference's `MathsClass`, served by an embedded `mp-server`.
//!
//! ```python
//! class MathsClass:
//!     def add(self, x, y): return x + y
//!     def mul(self, x, y): return x * y
//! MyManager.register('Maths', MathsClass)
//! ```
//!
//! Run with `cargo run -p mp-server --example maths`: it registers the
//! type beside SyncManager's, serves on a free loopback port, then
//! connects as a client and calls `add` and `mul`.

use mp_server::prelude::*;
use mp_server::{Listen, Server};
use multiprocessing::managers::ManagerClient;

#[path = "shared/maths.rs"]
mod maths;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::sync_manager();
    maths::register_maths(&mut registry);

    let runtime = tokio::runtime::Runtime::new()?;
    let server = runtime.block_on(
        Server::new(registry, b"abracadabra".to_vec()).bind(&Listen::Tcp("127.0.0.1:0".into())),
    )?;
    let address = server.address().to_owned();
    let engine = server.engine().clone();
    let serving = runtime.spawn(server.run());

    let client = ManagerClient::connect(&address.parse()?, b"abracadabra")?;
    let maths = client.create("Maths", vec![], Default::default())?;
    println!("exposed: {:?}", maths.exposed);
    let sum = client.call_method(
        maths.token.id,
        "add",
        vec![4.into(), 3.into()],
        Default::default(),
    )?;
    let product = client.call_method(
        maths.token.id,
        "mul",
        vec![7.into(), 8.into()],
        Default::default(),
    )?;
    println!("add(4, 3) = {}", sum.into_value()?);
    println!("mul(7, 8) = {}", product.into_value()?);

    engine.shutdown().trigger();
    runtime.block_on(serving)??;
    Ok(())
}
