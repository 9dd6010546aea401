//! How tasks and results travel between a [`Pool`](super::Pool) and its
//! worker processes, and how a worker finds the function of a task.
//!
//! Python pickles the function by qualified name with every task. A Rust
//! function has no name at run time, so a task names a monomorphized
//! *entry point* (`map_entry::<F, A>` or `star_entry::<F, Args>`) by its
//! offset from the crate's anchor function, the scheme
//! [`crate::process`] uses for a `spawn` child's target (see
//! `process/target.rs`): `F` must be zero-sized (a `fn` item or a
//! non-capturing closure, asserted at compile time), the entry must be in
//! the main executable (checked with `dladdr` in the parent, once per
//! entry), a worker runs the same executable file as the parent (the
//! process machinery checked it when it started the worker), and a
//! fingerprint of the types is checked before the arguments are decoded.
//!
//! Records are raw bytes in the pool's two shared-memory queues:
//!
//! * task: `job u64 | start u64 | count u32 | entry offset i64 |
//!   fingerprint u64 | CBOR Vec of the chunk's arguments`; `job = u64::MAX`
//!   asks the worker to exit;
//! * result: `job u64 | start u64 | count u32 | kind u8 | body`, the body
//!   being the CBOR `Vec<Result<value, Failure<error>>>` of the chunk
//!   (kind 0: each task's value, or its own error or panic) or a UTF-8
//!   message failing the whole chunk (kind 1).

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::func::{run_task, Failure, PoolFn, TaskResult};
use super::job::Sink;
use super::PoolError;
use crate::process::code_offset::CodeOffset;
use crate::process::target::fingerprint;
use crate::process::StartMethod;

/// The job id of the record that stops a worker.
pub(crate) const STOP: u64 = u64::MAX;
const TASK_HEADER: usize = 36;
const RESULT_HEADER: usize = 21;

/// The signature of every task entry point: chunk payload and the
/// expected fingerprint in, the result body (kind 0) or a chunk-wide
/// failure out.
pub(crate) type TaskEntry = fn(&[u8], u64) -> Result<Vec<u8>, String>;

/// An entry point as a task names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct EntryRef {
    pub(crate) offset: CodeOffset,
    pub(crate) fingerprint: u64,
}

impl EntryRef {
    /// Names `entry` (for types `F`, `Args`) after checking, once per
    /// entry, that a worker can find it at the same offset.
    pub(crate) fn new<F, Args>(entry: usize, method: StartMethod) -> Result<EntryRef, PoolError> {
        Ok(EntryRef {
            offset: CodeOffset::of(entry, method).map_err(|e| PoolError::Start(e.to_string()))?,
            fingerprint: fingerprint::<F, Args>(),
        })
    }

    /// The entry point in this process (a worker).
    ///
    /// # Safety
    ///
    /// `self` must come from [`EntryRef::new`] with an entry of type `E`
    /// in a process running the same executable as this one.
    pub(crate) unsafe fn resolve<E: Copy>(&self) -> E {
        // SAFETY: per this function's contract, the offset was measured
        // from an entry of type E in the same executable.
        unsafe { self.offset.resolve() }
    }
}

/// Makes the zero-sized function value `F` out of nothing.
///
/// # Safety
///
/// `F` must be zero-sized and the caller must have held a value of it
/// (the parent did: the entry point was instantiated from one).
unsafe fn conjure<F: Copy>() -> F {
    // SAFETY: per the contract, F is zero-sized, so it has no bytes that
    // could be invalid and a dangling aligned pointer is a valid place to
    // read it from; F is Copy, so another copy breaks no invariant.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

fn check_fingerprint<F, Args>(expected: u64) -> Result<(), String> {
    if expected != fingerprint::<F, Args>() || std::mem::size_of::<F>() != 0 {
        return Err(
            "the task's function found in this worker is not the one the parent sent".into(),
        );
    }
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(16);
    ciborium::into_writer(value, &mut out).map_err(|e| format!("cannot encode the result: {e}"))?;
    Ok(out)
}

/// The entry point of `map`/`imap`: calls `f(item)` for each item.
pub(crate) fn map_entry<F, A, R>(payload: &[u8], fp: u64) -> Result<Vec<u8>, String>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: DeserializeOwned,
    R: TaskResult,
    R::Ok: Serialize,
    R::Err: Serialize,
{
    check_fingerprint::<F, (A,)>(fp)?;
    let items: Vec<A> = ciborium::from_reader(payload)
        .map_err(|e| format!("cannot decode the task's arguments: {e}"))?;
    // SAFETY: F is zero-sized (checked above) and the parent held one.
    let f: F = unsafe { conjure::<F>() };
    let outs: Vec<Result<R::Ok, Failure<R::Err>>> =
        items.into_iter().map(|a| run_task(|| f(a))).collect();
    encode(&outs)
}

/// The entry point of `apply`/`starmap`: calls `f(a1, …, an)` for each
/// argument tuple.
pub(crate) fn star_entry<F, Args>(payload: &[u8], fp: u64) -> Result<Vec<u8>, String>
where
    F: PoolFn<Args> + Copy,
    Args: DeserializeOwned,
    <F::Output as TaskResult>::Ok: Serialize,
    <F::Output as TaskResult>::Err: Serialize,
{
    check_fingerprint::<F, Args>(fp)?;
    let items: Vec<Args> = ciborium::from_reader(payload)
        .map_err(|e| format!("cannot decode the task's arguments: {e}"))?;
    // SAFETY: F is zero-sized (checked above) and the parent held one.
    let f: F = unsafe { conjure::<F>() };
    type Out<F, Args> = Result<
        <<F as PoolFn<Args>>::Output as TaskResult>::Ok,
        Failure<<<F as PoolFn<Args>>::Output as TaskResult>::Err>,
    >;
    let outs: Vec<Out<F, Args>> = items.into_iter().map(|a| run_task(|| f.call(a))).collect();
    encode(&outs)
}

/// The signature of an initializer's entry point.
pub(crate) type InitEntry = fn(&[u8], u64) -> Result<(), String>;

/// The entry point of a pool's initializer.
pub(crate) fn init_entry<F, Args>(payload: &[u8], fp: u64) -> Result<(), String>
where
    F: PoolFn<Args> + Copy,
    Args: DeserializeOwned,
    <F::Output as TaskResult>::Err: Display,
{
    check_fingerprint::<F, Args>(fp)?;
    let args: Args = ciborium::from_reader(payload)
        .map_err(|e| format!("cannot decode the initializer's arguments: {e}"))?;
    // SAFETY: F is zero-sized (checked above) and the parent held one.
    let f: F = unsafe { conjure::<F>() };
    run_task(|| f.call(args))
        .map(drop)
        .map_err(|failure| failure.describe())
}

/// A task record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) job: u64,
    pub(crate) start: u64,
    pub(crate) count: u32,
    pub(crate) entry: EntryRef,
}

/// A task record: the header, then the CBOR `Vec` of `chunk`.
pub(crate) fn task_record<A: Serialize>(h: &TaskHeader, chunk: &[A]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(TASK_HEADER + 16);
    out.extend_from_slice(&h.job.to_le_bytes());
    out.extend_from_slice(&h.start.to_le_bytes());
    out.extend_from_slice(&h.count.to_le_bytes());
    out.extend_from_slice(&h.entry.offset.to_bits().to_le_bytes());
    out.extend_from_slice(&h.entry.fingerprint.to_le_bytes());
    ciborium::into_writer(chunk, &mut out)
        .map_err(|e| format!("cannot encode the task's arguments: {e}"))?;
    Ok(out)
}

/// The record that stops a worker.
pub(crate) fn stop_record() -> Vec<u8> {
    let mut out = vec![0u8; TASK_HEADER];
    out[..8].copy_from_slice(&STOP.to_le_bytes());
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Splits a task record; `None` if it is too short to be one.
pub(crate) fn parse_task(rec: &[u8]) -> Option<(TaskHeader, &[u8])> {
    if rec.len() < TASK_HEADER {
        return None;
    }
    let h = TaskHeader {
        job: u64_at(rec, 0),
        start: u64_at(rec, 8),
        count: u32_at(rec, 16),
        entry: EntryRef {
            offset: CodeOffset::from_bits(u64_at(rec, 20)),
            fingerprint: u64_at(rec, 28),
        },
    };
    Some((h, &rec[TASK_HEADER..]))
}

/// A result record for `h`'s chunk.
pub(crate) fn result_record(h: &TaskHeader, outcome: &Result<Vec<u8>, String>) -> Vec<u8> {
    let (kind, body) = match outcome {
        Ok(b) => (0u8, b.as_slice()),
        Err(m) => (1u8, m.as_bytes()),
    };
    let mut out = Vec::with_capacity(RESULT_HEADER + body.len());
    out.extend_from_slice(&h.job.to_le_bytes());
    out.extend_from_slice(&h.start.to_le_bytes());
    out.extend_from_slice(&h.count.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// A result record as the parent reads it.
pub(crate) struct ResultRecord<'a> {
    pub(crate) job: u64,
    pub(crate) start: u64,
    pub(crate) count: u32,
    /// The chunk's outcomes, or the message failing the whole chunk.
    pub(crate) body: Result<&'a [u8], String>,
}

/// Splits a result record; `None` if it is too short to be one.
pub(crate) fn parse_result(rec: &[u8]) -> Option<ResultRecord<'_>> {
    if rec.len() < RESULT_HEADER {
        return None;
    }
    let body = &rec[RESULT_HEADER..];
    Some(ResultRecord {
        job: u64_at(rec, 0),
        start: u64_at(rec, 8),
        count: u32_at(rec, 16),
        body: match rec[20] {
            0 => Ok(body),
            _ => Err(String::from_utf8_lossy(body).into_owned()),
        },
    })
}

/// A job of the process pool, whatever its value type: takes result
/// bodies and decodes them for its typed [`Sink`].
pub(crate) trait RawSink: super::job::Job {
    /// Delivers a chunk's result record; returns whether the job is done.
    fn deliver_raw(&self, start: u64, count: u32, body: Result<&[u8], String>) -> bool;
    /// Fails a chunk with `error` (its index is replaced per task).
    fn fail(&self, start: u64, count: u32, error: &PoolError) -> bool;
}

/// Decodes result bodies into `T`s, and task errors into `E`s, for a
/// typed sink.
pub(crate) struct Decoding<S, T, E> {
    pub(crate) sink: S,
    _t: std::marker::PhantomData<fn() -> (T, E)>,
}

impl<S, T, E> Decoding<S, T, E> {
    pub(crate) fn new(sink: S) -> Self {
        Decoding {
            sink,
            _t: std::marker::PhantomData,
        }
    }
}

impl<S: Sink<T, E>, T: Send, E: Send> super::job::Job for Decoding<S, T, E> {
    fn abort(&self, reason: &PoolError) {
        self.sink.abort(reason);
    }
}

impl<S, T, E> RawSink for Decoding<S, T, E>
where
    S: Sink<T, E>,
    T: DeserializeOwned + Send,
    E: DeserializeOwned + Send,
{
    fn deliver_raw(&self, start: u64, count: u32, body: Result<&[u8], String>) -> bool {
        let start = start as usize;
        let decoded = body.and_then(|b| {
            let outs: Vec<Result<T, Failure<E>>> = ciborium::from_reader(b)
                .map_err(|e| format!("cannot decode the task's result: {e}"))?;
            if outs.len() != count as usize {
                return Err(format!(
                    "the worker returned {} results for a chunk of {count}",
                    outs.len()
                ));
            }
            Ok(outs)
        });
        let mut done = false;
        match decoded {
            Ok(outs) => {
                for (i, out) in outs.into_iter().enumerate() {
                    let index = start + i;
                    done = self
                        .sink
                        .deliver(index, out.map_err(|failure| failure.at(index)));
                }
            }
            Err(message) => {
                for index in start..start + count as usize {
                    done = self.sink.deliver(
                        index,
                        Err(PoolError::Transfer {
                            index,
                            message: message.clone(),
                        }),
                    );
                }
            }
        }
        done
    }

    fn fail(&self, start: u64, count: u32, error: &PoolError) -> bool {
        let mut done = false;
        for index in start as usize..start as usize + count as usize {
            done = self.sink.deliver(index, Err(error.at(index)));
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::NoError;
    use serde::Deserialize;

    fn double(x: u32) -> u32 {
        x * 2
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum DivError {
        ByZero { numerator: u32 },
    }

    fn checked_div(a: u32, b: u32) -> Result<u32, DivError> {
        a.checked_div(b).ok_or(DivError::ByZero { numerator: a })
    }

    /// Runs a map chunk through records and the entry, as a worker would.
    fn run_map<F: Fn(u32) -> u32 + Copy + Send + Sync + 'static>(_: F, items: &[u32]) -> Vec<u8> {
        let entry: TaskEntry = map_entry::<F, u32, u32>;
        let e = EntryRef::new::<F, (u32,)>(entry as usize, StartMethod::Spawn).unwrap();
        let h = TaskHeader {
            job: 1,
            start: 4,
            count: items.len() as u32,
            entry: e,
        };
        let rec = task_record(&h, items).unwrap();
        let (h2, payload) = parse_task(&rec).unwrap();
        assert_eq!(h2, h);
        // SAFETY: made by EntryRef::new from a TaskEntry in this process.
        let f: TaskEntry = unsafe { h2.entry.resolve() };
        result_record(&h2, &f(payload, h2.entry.fingerprint))
    }

    fn star<F: PoolFn<(u32, u32)> + Copy>(_: F) -> (TaskEntry, u64)
    where
        <F::Output as TaskResult>::Ok: Serialize,
        <F::Output as TaskResult>::Err: Serialize,
    {
        (star_entry::<F, (u32, u32)>, fingerprint::<F, (u32, u32)>())
    }

    #[test]
    fn records_round_trip_and_entries_run() {
        let rec = run_map(double, &[4, 5]);
        let r = parse_result(&rec).unwrap();
        assert_eq!((r.job, r.start, r.count), (1, 4, 2));
        let outs: Vec<Result<u32, Failure<NoError>>> =
            ciborium::from_reader(r.body.unwrap()).unwrap();
        assert_eq!(outs, vec![Ok(8), Ok(10)]);
        assert!(parse_task(&[0; 10]).is_none());
        assert_eq!(parse_task(&stop_record()).unwrap().0.job, STOP);
    }

    #[test]
    fn star_entries_send_each_error_typed() {
        let (f, fp) = star(checked_div);
        let mut payload = Vec::new();
        ciborium::into_writer(&vec![(6u32, 3u32), (1, 0)], &mut payload).unwrap();
        let body = f(&payload, fp).unwrap();
        let outs: Vec<Result<u32, Failure<DivError>>> =
            ciborium::from_reader(body.as_slice()).unwrap();
        assert_eq!(
            outs,
            vec![
                Ok(2),
                Err(Failure::Error(DivError::ByZero { numerator: 1 }))
            ]
        );
        assert!(f(&payload, fp ^ 1).is_err());
        assert!(f(b"\xff", fp).is_err());
    }

    #[test]
    fn decoding_spreads_a_chunk_over_positions_with_typed_errors() {
        use super::super::job::IMapJob;
        use std::sync::Arc;
        let job = Arc::new(IMapJob::<u32, DivError>::new(true));
        assert!(job.submitted(4));
        assert!(!job.set_length());
        let d = Decoding::new(job.clone());
        let mut body = Vec::new();
        let outs: Vec<Result<u32, Failure<DivError>>> = vec![
            Ok(1),
            Err(Failure::Error(DivError::ByZero { numerator: 7 })),
            Err(Failure::Panic {
                message: "boom".into(),
                location: None,
            }),
        ];
        ciborium::into_writer(&outs, &mut body).unwrap();
        assert!(!d.deliver_raw(0, 3, Ok(&body)));
        assert!(d.fail(3, 1, &PoolError::Terminated { index: 0 }));
        let got: Vec<_> = std::iter::from_fn(|| job.next(None)).collect();
        assert_eq!(
            got,
            vec![
                Ok(1),
                Err(PoolError::Task {
                    index: 1,
                    error: DivError::ByZero { numerator: 7 }
                }),
                Err(PoolError::Panic {
                    index: 2,
                    message: "boom".into(),
                    location: None
                }),
                Err(PoolError::Terminated { index: 3 })
            ]
        );
    }

    #[test]
    fn an_error_that_does_not_decode_fails_its_chunk() {
        use super::super::job::IMapJob;
        use std::sync::Arc;
        let job = Arc::new(IMapJob::<u32, DivError>::new(true));
        assert!(job.submitted(1));
        let d = Decoding::new(job.clone());
        let mut body = Vec::new();
        let outs: Vec<Result<u32, Failure<String>>> = vec![Err(Failure::Error("x".into()))];
        ciborium::into_writer(&outs, &mut body).unwrap();
        d.deliver_raw(0, 1, Ok(&body));
        assert!(matches!(
            job.next(None),
            Some(Err(PoolError::Transfer { index: 0, .. }))
        ));
    }
}
