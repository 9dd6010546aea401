//! End to end: proxies in transit between processes keep their referent
//! alive until received, and an undelivered one is released at the end of
//! its lease.

use std::time::Duration;

use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::transfer::set_transit_lease;
use multiprocessing::managers::{DictProxy, Manager, SyncManager};
use multiprocessing::Pipe;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn a_proxy_in_transit_outlives_the_senders_copy_both_ways() {
    let m = Manager().unwrap();
    let (mut to_child, mut child_in) = {
        let (rx, tx) = Pipe(false).unwrap();
        (tx, rx)
    };
    let (mut parent_in, mut to_parent) = Pipe(false).unwrap();
    let d = m.dict::<String, i64>().unwrap();
    d.set("a", 1).unwrap();
    // Sent, then dropped at once: the only reference left is in transit.
    to_child.send(&d).unwrap();
    drop(d);
    assert!(m.wait_for_object_count(1, LONG).unwrap());

    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), String> {
        let d: DictProxy<String, i64> = child_in.recv().map_err(|e| e.to_string())?;
        if d.get("a").map_err(|e| e.to_string())? != Some(1) {
            return Err("the child read a wrong value".into());
        }
        d.set("b", 2).map_err(|e| e.to_string())?;
        // Back to the parent, and exit without waiting: the sender's
        // connection closes before the parent receives it.
        to_parent.send(&d).map_err(|e| e.to_string())?;
        std::process::exit(0)
    });
    child.start().unwrap();
    assert!(child.join_timeout(LONG).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));

    let back: DictProxy<String, i64> = parent_in.recv().unwrap();
    assert_eq!(back.get("b").unwrap(), Some(2));
    assert_eq!(back.len().unwrap(), 2);
    drop(back);
    assert!(m.wait_for_object_count(0, LONG).unwrap());
}

#[test]
fn a_proxy_nobody_receives_is_released_when_its_lease_ends() {
    let m = Manager().unwrap();
    let address = m.address().clone();
    let (reader, mut writer) = Pipe(false).unwrap();
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), String> {
        set_transit_lease(Duration::from_millis(100));
        let sm = SyncManager::connect(
            &address,
            multiprocessing::process::current_process()
                .authkey()
                .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let d = sm.dict::<i64, i64>().map_err(|e| e.to_string())?;
        writer.send(&d).map_err(|e| e.to_string())?;
        Ok(())
    });
    child.start().unwrap();
    assert!(child.join_timeout(LONG).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    // The child is gone and nobody reads the pipe: the ticket's lease ends.
    assert!(m.wait_for_object_count(0, LONG).unwrap());
    // Received too late: a clear error, not a hang or a dangling proxy.
    let mut reader = reader;
    let late = reader.recv::<DictProxy<i64, i64>>();
    assert!(late.is_err(), "a proxy received after its lease must fail");
}

#[test]
fn a_proxy_through_a_local_queue_to_a_child() {
    let m = Manager().unwrap();
    let queue = multiprocessing::Queue::<DictProxy<String, i64>>::new(0).unwrap();
    let done = multiprocessing::Queue::<DictProxy<String, i64>>::new(0).unwrap();
    {
        let d = m.dict::<String, i64>().unwrap();
        d.set("a", 1).unwrap();
        queue.put(&d).unwrap();
        // `d` is dropped here: the queue's copy is the only reference.
    }
    let (q, back) = (queue.clone(), done.clone());
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), String> {
        let d = q.get().map_err(|e| e.to_string())?;
        let a = d.get("a").map_err(|e| e.to_string())?;
        d.set("b", a.unwrap_or(0) + 1).map_err(|e| e.to_string())?;
        back.put(&d).map_err(|e| e.to_string())
    });
    child.start().unwrap();
    let d = done.get().unwrap();
    assert!(child.join_timeout(LONG).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    assert_eq!(d.get("b").unwrap(), Some(2));
    drop(d);
    assert!(m.wait_for_object_count(0, LONG).unwrap());
}

#[test]
fn the_same_bytes_received_twice_take_a_second_reference() {
    let m = Manager().unwrap();
    let d = m.dict::<String, i64>().unwrap();
    let mut bytes = Vec::new();
    ciborium::into_writer(&d, &mut bytes).unwrap();
    let first: DictProxy<String, i64> = ciborium::from_reader(bytes.as_slice()).unwrap();
    // The ticket is used up: the second copy takes a reference of its own.
    let second: DictProxy<String, i64> = ciborium::from_reader(bytes.as_slice()).unwrap();
    drop(d);
    first.set("a", 1).unwrap();
    drop(first);
    assert_eq!(second.get("a").unwrap(), Some(1));
    drop(second);
    assert!(m.wait_for_object_count(0, LONG).unwrap());
}
