//! The `sync` suite: cross-process locks and shared ctypes against a raw
//! futex mutex, `memcpy` and CPython doing the same work in the same run.
//!
//! * `sync.lock.uncontended`: acquire + release pairs in one process.
//! * `sync.lock.contended_2proc`: two processes (pinned to different CPUs
//!   when there are two) hammering one lock; total pairs per second.
//! * `sync.value.locked_increment`: `*v.lock() += 1` (Python:
//!   `with v.get_lock(): v.value += 1`).
//! * `sync.array.fill_1M_child.*`: a forked child fills a 1,000,000-element
//!   f64 array, timed inside the child; `bulk` copies a prepared buffer in
//!   one call, `elementwise` writes `a[i] = i` through the locked slice.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use multiprocessing::sharedctypes::{Array, RawArray, RawValue, Value};
use multiprocessing::synchronize::Lock;

use crate::report::{self, Row};

const UNCONTENDED: u64 = 20_000_000;
const CONTENDED: u64 = 5_000_000;
const INCREMENTS: u64 = 20_000_000;
const ELEMENTS: usize = 1_000_000;
const REPEATS: usize = 5;

/// The comparison: Drepper's futex mutex ("Futexes are tricky", mutex 3)
/// on a word of a `MAP_SHARED` mapping, no owner, no spinning.
struct RawFutexLock {
    word: *const AtomicU32,
}

impl RawFutexLock {
    fn new() -> RawFutexLock {
        // SAFETY: a fresh shared anonymous page, zeroed, never unmapped
        // (the benchmark process exits).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        RawFutexLock { word: p.cast() }
    }

    fn w(&self) -> &AtomicU32 {
        // SAFETY: the page lives until exit; AtomicU32 has no invalid bits.
        unsafe { &*self.word }
    }

    #[inline]
    fn lock(&self) {
        let w = self.w();
        if let Err(mut c) = w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed) {
            if c != 2 {
                c = w.swap(2, Ordering::Acquire);
            }
            while c != 0 {
                futex(w, libc::FUTEX_WAIT, 2);
                c = w.swap(2, Ordering::Acquire);
            }
        }
    }

    #[inline]
    fn unlock(&self) {
        let w = self.w();
        if w.fetch_sub(1, Ordering::Release) != 1 {
            w.store(0, Ordering::Release);
            futex(w, libc::FUTEX_WAKE, 1);
        }
    }
}

fn futex(w: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: a shared futex on a live word; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn rate(n: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; we set one bit and apply it to
    // the calling process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Forks two children that wait for `go`, run `work`, and exit; returns
/// total pairs per second from go to both reaped.
fn two_processes(work: impl Fn() + Copy) -> f64 {
    let go = RawValue::new(0u32).expect("shared flag");
    let ready = RawValue::new(0u32).expect("shared counter");
    let n = cpus();
    let mut pids = Vec::new();
    for i in 0..2 {
        let (go, ready) = (go.clone(), ready.clone());
        // SAFETY: the child spins, runs `work` and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if n >= 2 {
                pin(i % n);
            }
            // SAFETY: a u32 in shared memory; the atomic view is sound.
            let r = unsafe { &*(ready.as_ptr() as *const AtomicU32) };
            r.fetch_add(1, Ordering::SeqCst);
            while go.get() == 0 {
                std::hint::spin_loop();
            }
            work();
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    while ready.get() < 2 {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    go.set(1);
    for pid in pids {
        let mut st = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
    (2 * CONTENDED) as f64 / t.elapsed().as_secs_f64()
}

/// Forks a child that runs `fill` and reports the seconds it took.
fn child_seconds(fill: impl FnOnce()) -> f64 {
    let out = RawValue::new(0f64).expect("shared result");
    let o = out.clone();
    // SAFETY: the child runs `fill` on shared memory and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let t = Instant::now();
        fill();
        o.set(t.elapsed().as_secs_f64());
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    out.get()
}

/// A child copies `src` into a shared memfd mapping the parent created and
/// touched (no prefaulting in the child); returns the child's time in ms.
fn raw_child_fill(src: &[f64]) -> f64 {
    let bytes = std::mem::size_of_val(src);
    // SAFETY: a fresh memfd mapping, written once by the parent, unmapped
    // at the end; the child only copies into it and exits.
    unsafe {
        let fd = libc::memfd_create(c"bench".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create");
        assert_eq!(libc::ftruncate(fd, bytes as libc::off_t), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), 0, bytes);
        let ms = child_seconds(|| {
            std::ptr::copy_nonoverlapping(src.as_ptr(), p.cast::<f64>(), src.len());
        }) * 1e3;
        libc::munmap(p, bytes);
        libc::close(fd);
        ms
    }
}

const PYTHON: &str = r#"
import multiprocessing as mp, os, sys, time, array, statistics
mp.set_start_method('fork')
what = sys.argv[1]
def med(f, k=3): return statistics.median(f() for _ in range(k))
def uncontended():
    l = mp.Lock(); a = l.acquire; r = l.release; n = 2_000_000
    t = time.perf_counter()
    for _ in range(n): a(); r()
    return n / (time.perf_counter() - t)
def contended():
    l = mp.Lock(); n = 500_000; go = mp.Event()
    def work():
        go.wait(); a = l.acquire; r = l.release
        for _ in range(n): a(); r()
    ps = [mp.Process(target=work) for _ in range(2)]
    for p in ps: p.start()
    time.sleep(0.2); t = time.perf_counter(); go.set()
    for p in ps: p.join()
    return 2 * n / (time.perf_counter() - t)
def increment():
    v = mp.Value('q', 0); n = 1_000_000
    t = time.perf_counter()
    for _ in range(n):
        with v.get_lock(): v.value += 1
    return n / (time.perf_counter() - t)
def fill(bulk):
    N = 1_000_000; arr = mp.Array('d', N); out = mp.Value('d', 0.0, lock=False)
    src = array.array('d', range(N))
    def child():
        obj = arr.get_obj(); t = time.perf_counter()
        if bulk: memoryview(obj).cast('B')[:] = memoryview(src).cast('B')
        else:
            for i in range(N): obj[i] = i
        out.value = time.perf_counter() - t
    p = mp.Process(target=child); p.start(); p.join()
    return out.value * 1e3
print({'uncontended': lambda: med(uncontended), 'contended': lambda: med(contended),
       'increment': lambda: med(increment), 'bulk': lambda: med(lambda: fill(True)),
       'elementwise': lambda: med(lambda: fill(False))}[what]())
"#;

fn python(what: &str) -> Option<f64> {
    report::python_figure(&format!("import sys; sys.argv = ['x', '{what}']\n{PYTHON}"))
}

/// Runs the suite and prints its table.
pub fn run() {
    let mut rows = Vec::new();

    // Uncontended lock.
    let lock = Lock::new().expect("lock");
    let ours = report::median(REPEATS, || {
        rate(UNCONTENDED, || {
            for _ in 0..UNCONTENDED {
                lock.acquire();
                let _ = lock.release();
            }
        })
    });
    let guard = report::median(REPEATS, || {
        rate(UNCONTENDED, || {
            for _ in 0..UNCONTENDED {
                drop(std::hint::black_box(lock.lock()));
            }
        })
    });
    let raw = RawFutexLock::new();
    let theirs = report::median(REPEATS, || {
        rate(UNCONTENDED, || {
            for _ in 0..UNCONTENDED {
                raw.lock();
                raw.unlock();
            }
        })
    });
    let py = python("uncontended");
    rows.push(row(
        "sync.lock.uncontended",
        ours,
        "raw futex mutex (goal 0.8x)",
        theirs,
        "pairs/s",
    ));
    rows.push(row(
        "sync.lock.uncontended.guard",
        guard,
        "raw futex mutex",
        theirs,
        "pairs/s",
    ));
    if let Some(py) = py {
        rows.push(row(
            "sync.lock.uncontended",
            ours,
            "CPython mp.Lock",
            py,
            "pairs/s",
        ));
    }

    // Two processes contending.
    let ours = report::median(3, || {
        two_processes(|| {
            for _ in 0..CONTENDED {
                lock.acquire();
                let _ = lock.release();
            }
        })
    });
    let theirs = report::median(3, || {
        two_processes(|| {
            for _ in 0..CONTENDED {
                raw.lock();
                raw.unlock();
            }
        })
    });
    rows.push(row(
        "sync.lock.contended_2proc",
        ours,
        "raw futex mutex (goal 0.5x)",
        theirs,
        "pairs/s",
    ));
    if let Some(py) = python("contended") {
        rows.push(row(
            "sync.lock.contended_2proc",
            ours,
            "CPython mp.Lock",
            py,
            "pairs/s",
        ));
    }

    // Value increment under its lock.
    let v = Value::new(0i64).expect("value");
    let ours = report::median(REPEATS, || {
        rate(INCREMENTS, || {
            for _ in 0..INCREMENTS {
                *v.lock() += 1;
            }
        })
    });
    let py = python("increment");
    rows.push(Row {
        name: "sync.value.locked_increment".into(),
        ours,
        against: py.map(|p| ("CPython (goal: ours >= 50 M/s)".into(), p)),
        unit: "ops/s",
        higher_is_better: true,
    });

    // A child fills a 1M-element f64 array.
    let src: Vec<f64> = (0..ELEMENTS).map(|i| i as f64).collect();
    let mut dst = vec![0f64; ELEMENTS];
    dst.copy_from_slice(&src); // touch every page first
    let memcpy_hot_ms = report::median(REPEATS, || {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&dst);
        t.elapsed().as_secs_f64() * 1e3
    });
    // The child writes memory that is not in its caches; so does a
    // memcpy into one of several buffers that together exceed the L3.
    let mut dsts: Vec<Vec<f64>> = (0..8).map(|_| src.clone()).collect();
    let mut next = 0;
    let memcpy_ms = report::median(3 * dsts.len(), || {
        let d = &mut dsts[next % 8];
        next += 1;
        let t = Instant::now();
        d.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&d);
        t.elapsed().as_secs_f64() * 1e3
    });
    // The raw OS way: a child writes a memfd mapping its parent populated,
    // faulting page by page.
    let raw_ms = report::median(REPEATS, || raw_child_fill(&src));
    let arr = Array::<f64>::new(ELEMENTS).expect("array");
    let bulk_ms = report::median(REPEATS, || {
        child_seconds(|| {
            let _ = arr.write(0, &src);
        }) * 1e3
    });
    let elem_ms = report::median(REPEATS, || {
        child_seconds(|| {
            let mut g = arr.lock();
            for (i, x) in g.iter_mut().enumerate() {
                *x = i as f64;
            }
        }) * 1e3
    });
    let raw_arr = RawArray::<f64>::new(ELEMENTS).expect("array");
    let fresh_ms = report::median(REPEATS, || {
        child_seconds(|| {
            let _ = raw_arr.write(0, &src);
        }) * 1e3
    });
    rows.push(ms_row(
        "sync.array.fill_1M_child.bulk",
        bulk_ms,
        "memcpy 8 MB, cold dst (goal 0.5x)",
        memcpy_ms,
    ));
    rows.push(ms_row(
        "sync.array.fill_1M_child.bulk",
        bulk_ms,
        "memcpy 8 MB, in L3",
        memcpy_hot_ms,
    ));
    rows.push(ms_row(
        "sync.array.fill_1M_child.bulk",
        bulk_ms,
        "raw: child memcpy to memfd",
        raw_ms,
    ));
    rows.push(ms_row(
        "sync.array.fill_1M_child.bulk_unlocked",
        fresh_ms,
        "memcpy 8 MB, cold dst",
        memcpy_ms,
    ));
    rows.push(ms_row(
        "sync.array.fill_1M_child.elementwise",
        elem_ms,
        "memcpy 8 MB, cold dst",
        memcpy_ms,
    ));
    if let Some(py) = python("bulk") {
        rows.push(ms_row(
            "sync.array.fill_1M_child.bulk",
            bulk_ms,
            "CPython bulk",
            py,
        ));
    }
    if let Some(py) = python("elementwise") {
        rows.push(ms_row(
            "sync.array.fill_1M_child.elementwise",
            elem_ms,
            "CPython elementwise",
            py,
        ));
    }
    report::print("sync: locks and shared ctypes across processes", &rows);
}

fn row(name: &str, ours: f64, against: &str, theirs: f64, unit: &'static str) -> Row {
    Row {
        name: name.into(),
        ours,
        against: Some((against.into(), theirs)),
        unit,
        higher_is_better: true,
    }
}

fn ms_row(name: &str, ours: f64, against: &str, theirs: f64) -> Row {
    Row {
        name: name.into(),
        ours,
        against: Some((against.into(), theirs)),
        unit: "ms",
        higher_is_better: false,
    }
}
