//! The serialized form of every primitive and shared ctype: what a child
//! started by spawn or forkserver receives (bytes plus descriptors through
//! `FdSink`/`FdSource`), checked to reach the same shared state.

mod sync_common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use multiprocessing::reduction::{FdSink, FdSource};
use multiprocessing::shared_memory::{Item, ShareableList, SharedMemory};
use multiprocessing::sharedctypes::{Array, DynArray, LockChoice, RawArray, Scalar, Value};
use multiprocessing::synchronize::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, ReleaseError, Semaphore,
};
use serde::{de::DeserializeOwned, Serialize};
use sync_common::fork;

fn pack<T: Serialize>(v: &T) -> (Vec<u8>, Vec<OwnedFd>) {
    FdSink::collect(|| {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    })
}

fn unpack<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, String> {
    FdSource::provide(fds, || {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    })
}

/// Serializes and deserializes, as a transfer to another process would.
fn transfer<T: Serialize + DeserializeOwned>(v: &T) -> T {
    let (bytes, fds) = pack(v);
    unpack(&bytes, fds).unwrap()
}

#[test]
fn locks_received_share_state_with_the_original() {
    let lock = Lock::new().unwrap();
    let copy = transfer(&lock);
    lock.acquire();
    assert!(copy.is_locked());
    copy.release().unwrap();
    assert!(!lock.is_locked());

    let r = RLock::new().unwrap();
    let rc = transfer(&r);
    r.acquire();
    assert!(rc.is_owned(), "same thread, same lock");
    rc.release().unwrap();
    assert!(matches!(r.release(), Err(ReleaseError::NotOwner)));
}

#[test]
fn semaphores_event_condition_and_barrier_received_work() {
    let s = Semaphore::new(1).unwrap();
    let sc = transfer(&s);
    assert!(sc.acquire_nowait());
    assert_eq!(s.get_value(), 0);

    let b = BoundedSemaphore::new(1).unwrap();
    let bc = transfer(&b);
    assert!(matches!(bc.release(), Err(ReleaseError::TooManyReleases)));

    let e = Event::new().unwrap();
    let ec = transfer(&e);
    e.set();
    assert!(ec.is_set());

    let c = Condition::with_lock(Lock::new().unwrap()).unwrap();
    let cc = transfer(&c);
    let _g = c.lock();
    assert!(
        !cc.acquire_nowait(),
        "the received condition shares the lock"
    );
    assert!(matches!(cc.wait_timeout(Duration::ZERO), Ok(false)));
    drop(_g);

    let bar = Barrier::new(2).unwrap();
    let barc = transfer(&bar);
    let mut child = fork(move || {
        barc.wait_timeout(sync_common::PATIENCE)
            .map(|_| 0)
            .unwrap_or(1)
    });
    assert!(bar.wait_timeout(sync_common::PATIENCE).is_ok());
    assert_eq!(child.join(), 0);
}

#[test]
fn a_received_barrier_without_its_action_breaks_instead_of_skipping_it() {
    let bar = Barrier::with_options(1, Some(std::sync::Arc::new(|| {})), None).unwrap();
    assert!(bar.wait().is_ok());
    let mut received = transfer(&bar);
    assert!(received.wait().is_err());
    received.reset();
    received.set_action(std::sync::Arc::new(|| {}));
    assert!(received.wait().is_ok());
}

#[test]
fn shared_ctypes_received_share_memory_and_lock() {
    let v = Value::new(5i32).unwrap();
    let vc = transfer(&v);
    *vc.lock() += 1;
    assert_eq!(v.get(), 6);
    // The received value shares the lock: held here, refused in a child.
    let g = v.get_lock().lock();
    let vc2 = vc.clone();
    let mut child = fork(move || {
        if vc2.get_lock().acquire_nowait() {
            1
        } else {
            0
        }
    });
    assert_eq!(child.join(), 0);
    drop(g);

    let a = Array::<f64>::from_slice(&[1.0, 2.0]).unwrap();
    let ac = transfer(&a);
    ac.set(1, 4.0).unwrap();
    assert_eq!(a.to_vec(), [1.0, 4.0]);

    let d = DynArray::from_scalars("q", &[Scalar::Int(1)], LockChoice::New).unwrap();
    let dc = transfer(&d);
    dc.set(0, Scalar::Int(-9)).unwrap();
    assert_eq!(d.get(0).unwrap(), Scalar::Int(-9));
}

#[test]
fn a_handle_received_as_the_wrong_type_is_an_error() {
    let (bytes, fds) = pack(&Lock::new().unwrap());
    let err = unpack::<Semaphore>(&bytes, fds).unwrap_err();
    assert!(err.contains("not a Semaphore"), "{err}");

    let (bytes, fds) = pack(&RawArray::<u8>::new(3).unwrap());
    assert!(unpack::<RawArray<u64>>(&bytes, fds).is_err());

    // Without a transport for descriptors, serializing fails loudly.
    let mut out = Vec::new();
    assert!(ciborium::into_writer(&Lock::new().unwrap(), &mut out).is_err());
}

#[test]
fn named_shared_memory_travels_by_name() {
    let shm = SharedMemory::create(8).unwrap();
    shm.write_at(0, b"abc").unwrap();
    let (bytes, fds) = pack(&shm);
    assert!(fds.is_empty());
    let back: SharedMemory = unpack(&bytes, fds).unwrap();
    assert_eq!(&back.buf()[..3], b"abc");

    let list = ShareableList::new(&[Item::Int(1)]).unwrap();
    let lc = transfer(&list);
    lc.set(0, Item::Bool(true)).unwrap();
    assert_eq!(list.get(0).unwrap(), Item::Bool(true));
    list.shm().unlink().unwrap();
    shm.unlink().unwrap();
    let (bytes, fds) = pack(&shm);
    assert!(
        unpack::<SharedMemory>(&bytes, fds).is_err(),
        "unlinked: nothing to attach"
    );
}
