//! `mp-bench wire`: the cost of our framing and connections against the raw
//! OS primitive, measured in the same run.
//!
//! Every figure is a median of interleaved repeats; the comparison figure is
//! measured between the same repeats so machine noise hits both alike. The
//! two processes are a `fork`ed child and this one, unpinned, on one CPU
//! (`.samecpu`) or on two (`.crosscpu`), with `sched_setaffinity`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mp_proto::frame;

use crate::report;

/// How long one repeat of a ping-pong runs.
const REPEAT_TIME: Duration = Duration::from_millis(300);
/// Repeats per figure; the median is reported.
pub(crate) const REPEATS: usize = 5;

/// Where the two processes of a measurement run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Placement {
    /// Wherever the scheduler puts them: what a user gets.
    Unpinned,
    /// Both on CPU 0.
    SameCpu,
    /// Parent on CPU 0, child on CPU 1.
    CrossCpu,
}

impl Placement {
    pub(crate) const ALL: [Placement; 3] =
        [Placement::Unpinned, Placement::SameCpu, Placement::CrossCpu];

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Placement::Unpinned => "",
            Placement::SameCpu => ".samecpu",
            Placement::CrossCpu => ".crosscpu",
        }
    }

    pub(crate) fn cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Placement::Unpinned => (None, None),
            Placement::SameCpu => (Some(0), Some(0)),
            Placement::CrossCpu => (Some(0), Some(1)),
        }
    }
}

/// Pins the calling process to `cpu`, or to every CPU for `None`.
pub(crate) fn pin(cpu: Option<usize>) {
    // SAFETY: cpu_set_t is plain data; CPU_* only touch the set we own, and
    // sched_setaffinity(0, ..) applies to this thread with a valid pointer.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            None => {
                for c in 0..libc::CPU_SETSIZE as usize {
                    libc::CPU_SET(c, &mut set);
                }
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `child` in a forked process placed per `placement` and `parent`
/// here, then reaps the child. `parent` returns the figure.
pub(crate) fn forked<C: FnOnce(), P: FnOnce() -> f64>(
    placement: Placement,
    child: C,
    parent: P,
) -> f64 {
    let (parent_cpu, child_cpu) = placement.cpus();
    // SAFETY: the benchmark is single-threaded when it forks, so the child
    // may run arbitrary code; it leaves by _exit without unwinding.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The parent's half of every channel must close here, or the child
        // never sees end of file.
        drop(parent);
        pin(child_cpu);
        child();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(child);
    pin(parent_cpu);
    let figure = parent();
    pin(None);
    let mut status = 0;
    // SAFETY: reaps the child we forked; status is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    figure
}

/// Runs `step` (one round trip) for [`REPEAT_TIME`] after a warm-up and
/// returns round trips per second.
pub(crate) fn rate(mut step: impl FnMut()) -> f64 {
    for _ in 0..500 {
        step();
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..64 {
            step();
        }
        n += 64;
        let elapsed = start.elapsed();
        if elapsed >= REPEAT_TIME {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}

/// The median of `values`.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One row of the output, before it becomes a `report::Row`.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) ours: f64,
    pub(crate) against: String,
    pub(crate) theirs: f64,
    pub(crate) unit: &'static str,
}

/// Prints rows with the shared report table (a NaN comparison — CPython
/// missing — shows as no comparison).
fn print_table(title: &str, rows: Vec<Row>) {
    let rows: Vec<report::Row> = rows
        .into_iter()
        .map(|r| report::Row {
            name: r.name,
            ours: r.ours,
            against: (!r.theirs.is_nan()).then_some((r.against, r.theirs)),
            unit: r.unit,
            higher_is_better: true,
        })
        .collect();
    report::print(title, &rows);
}

/// The child's side of a raw ping-pong: echo 8 bytes until end of file.
fn raw_echo(mut s: UnixStream) {
    let mut buf = [0u8; 8];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
}

/// The child's side of a framed ping-pong: echo frames until end of file,
/// reading through a `BufReader` when `buffered` (one `read` per frame
/// instead of two).
fn framed_echo(mut s: UnixStream, buffered: bool) {
    let mut r: Box<dyn Read> = if buffered {
        Box::new(std::io::BufReader::new(s.try_clone().expect("dup")))
    } else {
        Box::new(s.try_clone().expect("dup"))
    };
    while let Ok(Some(m)) = frame::read_frame(&mut r, 64) {
        if frame::write_frame(&mut s, &m).is_err() {
            break;
        }
    }
}

/// Raw socketpair ping-pong of 8 bytes, in round trips per second.
pub(crate) fn raw_pingpong(placement: Placement) -> f64 {
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    forked(
        placement,
        move || raw_echo(b),
        move || {
            let mut buf = [7u8; 8];
            rate(|| {
                a.write_all(&buf).expect("write");
                a.read_exact(&mut buf).expect("read");
            })
        },
    )
}

/// Our sync framing's ping-pong of an 8-byte payload.
fn framed_pingpong(placement: Placement, buffered: bool) -> f64 {
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    forked(
        placement,
        move || framed_echo(b, buffered),
        move || {
            let payload = [7u8; 8];
            let mut r: Box<dyn Read> = if buffered {
                Box::new(std::io::BufReader::new(a.try_clone().expect("dup")))
            } else {
                Box::new(a.try_clone().expect("dup"))
            };
            rate(|| {
                frame::write_frame(&mut a, &payload).expect("write");
                let back = frame::read_frame(&mut r, 64).expect("read");
                assert_eq!(back.as_deref(), Some(&payload[..]));
            })
        },
    )
}

/// Part A's figures: framed vs raw 8-byte ping-pong in every placement,
/// reading through a `BufReader` (the recommended use) and straight from
/// the socket (two `read`s per frame, as CPython does).
pub(crate) fn framing_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for placement in Placement::ALL {
        let (mut buffered, mut unbuffered, mut raw) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            buffered.push(framed_pingpong(placement, true));
            raw.push(raw_pingpong(placement));
            unbuffered.push(framed_pingpong(placement, false));
        }
        let raw = median(raw);
        let against = format!("raw.unix_socketpair.pingpong_8b{}", placement.suffix());
        rows.push(Row {
            name: format!("wire.frame.pingpong_8b{}", placement.suffix()),
            ours: median(buffered),
            against: against.clone(),
            theirs: raw,
            unit: "round_trips/s",
        });
        rows.push(Row {
            name: format!("wire.frame_unbuffered.pingpong_8b{}", placement.suffix()),
            ours: median(unbuffered),
            against,
            theirs: raw,
            unit: "round_trips/s",
        });
    }
    rows
}

/// `wire`: every part below.
pub fn run() {
    run_frame();
    run_pipe();
    run_cpu();
}

/// `wire.frame`: Part A, our framing vs raw.
pub fn run_frame() {
    print_table("wire: framing (mp_proto::frame)", framing_rows());
}

/// `wire.pipe`: Part B, `Pipe`/`Connection` vs raw and CPython.
pub fn run_pipe() {
    print_table(
        "wire: Pipe / Connection",
        crate::wire_conn::connection_rows(),
    );
}

/// `wire.cpu`: the one-process CPU diagnostic.
pub fn run_cpu() {
    print_table(
        "wire: CPU per message, one process",
        crate::wire_conn::cpu_rows(),
    );
}
