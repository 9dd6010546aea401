//! A global allocator that can measure the heap one piece of work takes
//! at its peak ([`peak_growth`]): the system allocator, plus two atomic
//! counters updated only while a measurement runs (one relaxed load per
//! allocation otherwise), so the other suites' figures do not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The system allocator, counting while [`COUNTING`] is set.
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed since the measurement began (freeing
/// what was allocated before makes it negative).
static NOW: AtomicI64 = AtomicI64::new(0);
/// The most `NOW` has been.
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grow(bytes: usize) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let now = NOW.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrink(bytes: usize) {
    NOW.fetch_sub(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            shrink(layout.size());
        }
        // SAFETY: `ptr` came from `System` with `layout` (every block is).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            grow(new_size);
            shrink(layout.size());
        }
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The most heap (bytes, this process, all threads) that `work` held at
/// once beyond what was allocated when it began.
pub fn peak_growth(work: impl FnOnce()) -> f64 {
    NOW.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    work();
    COUNTING.store(false, Ordering::SeqCst);
    PEAK.load(Ordering::Relaxed) as f64
}
