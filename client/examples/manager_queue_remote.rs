//! The reference documentation's remote manager: a server for a single
//! shared queue (`QueueManager.register('get_queue', callable=lambda:
//! queue)` then `get_server().serve_forever()`), one client that puts
//! `'hello'`, another that gets it and prints
//!
//! ```text
//! 'hello'
//! ```
//!
//! Here the three are processes of one program: the server is a child
//! serving on a free loopback port (the reference uses port 50000 on
//! another machine), the putting client another child, and the getting
//! client this process; it asks the server to shut down at the end.
//!
//! Run with `cargo run -p multiprocessing --example manager_queue_remote`.

use std::error::Error;
use std::io::{self, Write};

use mp_server::objects::queue::QueueObject;
use mp_server::Args;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{register_shared, BaseManager, ManagerError};
use multiprocessing::Pipe;

const AUTHKEY: &[u8] = b"abracadabra";

/// The server: `get_queue` hands out the one queue, forever.
fn serve(address: &str, report: &mut multiprocessing::Connection) -> Result<(), ManagerError> {
    let mut m = BaseManager::new(address, AUTHKEY);
    register_shared(m.registry()?, "get_queue", |ctx| {
        QueueObject::create(ctx, Args::default())
    });
    let server = m.get_server()?;
    report
        .send(server.address())
        .map_err(|e| ManagerError::Start(e.to_string()))?;
    server.serve_forever()
}

/// A client: `QueueManager.register('get_queue')`, then `connect()`.
fn client(address: &str) -> Result<BaseManager, ManagerError> {
    let mut m = BaseManager::new(address, AUTHKEY);
    m.register_typeid("get_queue");
    m.connect()?;
    Ok(m)
}

/// Runs the example, printing to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    let (mut address_rx, mut address_tx) = Pipe(false)?;
    let server = get_context(StartMethod::Fork)
        .process_fn(move || serve("127.0.0.1:0", &mut address_tx))
        .with_name("QueueManager-server");
    server.start()?;
    let address: String = address_rx.recv()?;

    let putter_address = address.clone();
    let putter = get_context(StartMethod::Fork).process_fn(move || -> Result<(), ManagerError> {
        let m = client(&putter_address)?;
        let queue = m.create_auto("get_queue", vec![])?;
        queue.call_method("put", vec!["hello".into()])?;
        Ok(())
    });
    putter.start()?;

    let m = client(&address)?;
    let queue = m.create_auto("get_queue", vec![])?;
    let got = queue.call_method("get", vec![])?.into_value()?;
    writeln!(out, "{}", got.repr())?;

    putter.join()?;
    drop(queue);
    if let Some(c) = m.client() {
        c.shutdown()?;
    }
    server.join()?;
    if server.exitcode()? != Some(0) || putter.exitcode()? != Some(0) {
        return Err("a process of the example failed".into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    run(&mut io::stdout())
}
