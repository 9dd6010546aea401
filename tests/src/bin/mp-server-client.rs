//! A client process for the end-to-end tests of `mpserver`: it connects
//! with the address and key file given, does one job, and reports on
//! stdout. Tests start several at once, and kill some with SIGKILL.
//!
//! ```text
//! mp-server-client ADDRESS KEYFILE hold LOCK_ID     create objects, take the lock, print "ready", sleep
//! mp-server-client ADDRESS KEYFILE produce QUEUE_ID P N   put (P, 0..N)
//! mp-server-client ADDRESS KEYFILE consume QUEUE_ID       get until None, print "P I" per item
//! mp-server-client ADDRESS KEYFILE busy LOCK SEM QUEUE     see below; runs until killed
//! mp-server-client ADDRESS KEYFILE hammer LOCK     make objects, take the lock, print "ready",
//!                                                   then call back to back until killed
//! ```
//!
//! `busy` makes objects, takes a semaphore unit and the lock (waiting
//! for it if another process holds it), prints "ready", then keeps calls
//! in flight until it is killed: one thread waits in `QUEUE.get()`, two
//! others make calls back to back.

use std::io::Write;
use std::process::ExitCode;

use mp_proto::{ObjectId, Value};
use multiprocessing::managers::ManagerClient;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mp-server-client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn id(arg: Option<&String>) -> Result<ObjectId, Box<dyn std::error::Error>> {
    Ok(ObjectId(arg.ok_or("missing object id")?.parse()?))
}

/// A dict and a list holding another dict: three objects, one of them
/// referenced from inside another, for the session to free.
fn dict_and_list(
    client: &ManagerClient,
) -> Result<(ObjectId, ObjectId), multiprocessing::managers::ManagerError> {
    let none = Default::default;
    let d = client.create("dict", vec![], none())?.token.id;
    let l = client.create("list", vec![], none())?.token.id;
    let inner = client.create("dict", vec![], none())?.token;
    client.call_method(l, "append", vec![inner.into()], none())?;
    Ok((d, l))
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [address, key_file, job, rest @ ..] = args else {
        return Err("usage: mp-server-client ADDRESS KEYFILE JOB ARGS...".into());
    };
    let key = std::fs::read(key_file)?;
    let client = ManagerClient::connect(&address.parse()?, &key)?;
    let none = Default::default;
    match job.as_str() {
        "hold" => {
            let lock = id(rest.first())?;
            for _ in 0..5 {
                let d = client.create("dict", vec![], none())?;
                client.call_method(
                    d.token.id,
                    "__setitem__",
                    vec!["k".into(), 1.into()],
                    none(),
                )?;
            }
            // A list holding a token: its reference must go too.
            let inner = client.create("list", vec![], none())?;
            let outer = client.create("list", vec![], none())?;
            client.call_method(
                outer.token.id,
                "append",
                vec![inner.token.clone().into()],
                none(),
            )?;
            let got = client
                .call_method(lock, "acquire", vec![], none())?
                .into_value()?;
            if got != Value::Bool(true) {
                return Err("could not take the lock".into());
            }
            println!("ready");
            std::io::stdout().flush()?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        "produce" => {
            let queue = id(rest.first())?;
            let p: i64 = rest.get(1).ok_or("missing P")?.parse()?;
            let n: i64 = rest.get(2).ok_or("missing N")?.parse()?;
            for i in 0..n {
                let item = Value::Tuple(vec![p.into(), i.into()]);
                client.call_method(queue, "put", vec![item], none())?;
            }
        }
        "consume" => {
            let queue = id(rest.first())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            loop {
                let item = client
                    .call_method(queue, "get", vec![], none())?
                    .into_value()?;
                match item {
                    Value::None => break,
                    Value::Tuple(pi) if pi.len() == 2 => {
                        writeln!(out, "{} {}", pi[0].repr(), pi[1].repr())?;
                    }
                    other => return Err(format!("unexpected item {}", other.repr()).into()),
                }
            }
            out.flush()?;
        }
        "busy" => {
            let [lock, sem, queue] = [0, 1, 2].map(|i| id(rest.get(i)));
            let (lock, sem, queue) = (lock?, sem?, queue?);
            let (d, l) = dict_and_list(&client)?;
            client.call_method(sem, "acquire", vec![], none())?;
            client.call_method(lock, "acquire", vec![], none())?;
            println!("ready");
            std::io::stdout().flush()?;
            let waiter = client.clone();
            std::thread::spawn(move || {
                waiter.call_method(queue, "get", vec![], Default::default())
            });
            let workers: Vec<_> = (0..2i64)
                .map(|t| {
                    let c = client.clone();
                    std::thread::spawn(
                        move || -> Result<(), multiprocessing::managers::ManagerError> {
                            for i in 0i64.. {
                                c.call_method(
                                    d,
                                    "__setitem__",
                                    vec![t.into(), i.into()],
                                    Default::default(),
                                )?;
                                c.call_method(l, "__len__", vec![], Default::default())?;
                            }
                            Ok(())
                        },
                    )
                })
                .collect();
            for w in workers {
                let _ = w.join();
            }
            return Err("the connection ended before the process was killed".into());
        }
        "hammer" => {
            // One thread calling back to back: the connection a server
            // hands to a dedicated reader thread.
            let lock = id(rest.first())?;
            let (d, _) = dict_and_list(&client)?;
            client.call_method(lock, "acquire", vec![], none())?;
            println!("ready");
            std::io::stdout().flush()?;
            for i in 0i64.. {
                client.call_method(d, "__setitem__", vec!["k".into(), i.into()], none())?;
            }
            return Err("the connection ended before the process was killed".into());
        }
        other => return Err(format!("unknown job {other:?}").into()),
    }
    Ok(())
}
