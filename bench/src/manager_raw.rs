//! The raw limits of the 8-client manager workload: eight client
//! processes each doing one 8-byte round trip at a time against an echo
//! process with one thread per client — no protocol, no encoding, no event
//! loop. Over TCP_NODELAY loopback or a Unix socket ([`eight_raw`]) it
//! bounds what a manager reached through its socket can do; through
//! shared memory with futex wake-ups ([`eight_raw_shm`]), what one reached
//! through a shared-memory channel can.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::transport::{echo, EchoListener, Transport};

/// Round trips per second over all `clients`, each doing `trips`, timed
/// as the manager figure is: by the slowest client, from a common start.
pub(crate) fn eight_raw(clients: usize, trips: usize, transport: Transport) -> f64 {
    let listener = EchoListener::bind(transport);
    let server = fork(|| {
        let threads: Vec<_> = (0..clients)
            .filter_map(|_| listener.accept().ok())
            .map(|s| std::thread::spawn(move || echo(s)))
            .collect();
        for t in threads {
            let _ = t.join();
        }
    });
    let server_cpu = crate::manager_cpu::cpu_ns(server as u32);
    let (slowest, clients_cpu) = race(
        clients,
        |_| listener.connect(),
        |mut s| {
            let mut buf = [0u8; 8];
            for _ in 0..trips {
                s.write_all(&buf).expect("write");
                s.read_exact(&mut buf).expect("read");
            }
        },
    );
    if std::env::var_os("MP_BENCH_DEBUG").is_some() {
        let ops = (clients * trips) as f64;
        eprintln!(
            "raw: echo cpu {:.0} ns/op, clients {:.0} ns/op",
            (crate::manager_cpu::cpu_ns(server as u32) - server_cpu) as f64 / ops,
            clients_cpu as f64 / ops
        );
    }
    drop(listener);
    reap(server);
    (clients * trips) as f64 / slowest
}

/// Forks a child that runs `body` and leaves by `_exit`; returns its pid.
fn fork(body: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only runs `body` (this benchmark's own code) and
    // leaves by _exit, never returning into the parent's code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Waits for the child `pid`.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: reaps a child we forked; status is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// Forks `clients` processes; each runs `prepare(i)`, waits for a common
/// start, then runs `run` on what it prepared. Returns the slowest `run`
/// in seconds and the CPU time of all of them in ns.
fn race<T>(clients: usize, prepare: impl Fn(usize) -> T, run: impl Fn(T)) -> (f64, u64) {
    let mut pids = Vec::new();
    let mut starts = Vec::new();
    let mut results = Vec::new();
    for i in 0..clients {
        let (start_tx, mut start_rx) = UnixStream::pair().expect("socketpair");
        let (mut result_tx, result_rx) = UnixStream::pair().expect("socketpair");
        pids.push(fork(|| {
            let ready = prepare(i);
            let mut go = [0u8; 1];
            let _ = start_rx.read_exact(&mut go);
            let cpu0 = crate::manager_cpu::cpu_ns(std::process::id());
            let began = Instant::now();
            run(ready);
            let secs = began.elapsed().as_secs_f64();
            let cpu = crate::manager_cpu::cpu_ns(std::process::id()) - cpu0;
            let _ = result_tx.write_all(&secs.to_le_bytes());
            let _ = result_tx.write_all(&cpu.to_le_bytes());
        }));
        drop(start_rx);
        drop(result_tx);
        starts.push(start_tx);
        results.push(result_rx);
    }
    // Let every client get ready before the start.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for s in &mut starts {
        let _ = s.write_all(&[1]);
    }
    let mut slowest: f64 = 0.0;
    let mut cpu = 0;
    for r in &mut results {
        let mut b = [0u8; 8];
        if r.read_exact(&mut b).is_ok() {
            slowest = slowest.max(f64::from_le_bytes(b));
        }
        if r.read_exact(&mut b).is_ok() {
            cpu += u64::from_le_bytes(b);
        }
    }
    for pid in pids {
        reap(pid);
    }
    (slowest, cpu)
}

/// The raw limit of a shared-memory channel: the same eight clients, each
/// with a request and an answer word in memory shared with an echo
/// process that has a thread per client; a side with nothing to do
/// sleeps on a futex and the other wakes it (what `mp_sys::channel`
/// does per call, without the rings, the frames or the manager).
pub(crate) fn eight_raw_shm(clients: usize, trips: u32) -> f64 {
    use mp_sys::futex;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    /// One client's words, on a cache line of their own.
    #[repr(C, align(128))]
    struct Slot {
        request: AtomicU32,
        answer: AtomicU32,
        /// Bit 0: the echo thread sleeps; bit 1: the client sleeps.
        sleeping: AtomicU32,
    }
    let len = std::mem::size_of::<Slot>() * clients;
    // SAFETY: a fresh shared anonymous mapping, checked below; it is
    // zeroed, which is a valid `Slot` (three zero atomics).
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(base != libc::MAP_FAILED, "mmap failed");
    // SAFETY: the mapping holds `clients` slots and lives until the
    // munmap at the end, after every process using it has exited.
    let slots: &'static [Slot] =
        unsafe { std::slice::from_raw_parts(base.cast::<Slot>(), clients) };
    let server = fork(|| {
        let threads: Vec<_> = slots
            .iter()
            .map(|s| {
                std::thread::spawn(move || {
                    for k in 1..=trips {
                        while s.request.load(SeqCst) != k {
                            s.sleeping.fetch_or(1, SeqCst);
                            if s.request.load(SeqCst) != k {
                                futex::wait(&s.request, k - 1, None);
                            }
                            s.sleeping.fetch_and(!1, SeqCst);
                        }
                        s.answer.store(k, SeqCst);
                        if s.sleeping.load(SeqCst) & 2 != 0 {
                            futex::wake_all(&s.answer);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    });
    let (slowest, _) = race(
        clients,
        |i| &slots[i],
        |s| {
            for k in 1..=trips {
                s.request.store(k, SeqCst);
                if s.sleeping.load(SeqCst) & 1 != 0 {
                    futex::wake_all(&s.request);
                }
                while s.answer.load(SeqCst) != k {
                    s.sleeping.fetch_or(2, SeqCst);
                    if s.answer.load(SeqCst) != k {
                        futex::wait(&s.answer, k - 1, None);
                    }
                    s.sleeping.fetch_and(!2, SeqCst);
                }
            }
        },
    );
    reap(server);
    // SAFETY: every process that used the mapping has been reaped.
    unsafe { libc::munmap(base, len) };
    (clients as f64 * f64::from(trips)) / slowest
}
