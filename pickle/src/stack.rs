//! A guard on how much stack the recursive parts (the reader's tree
//! builder, the writer) use, behind their depth bounds.
//!
//! The depth bounds keep the recursion short, but how much stack a level
//! takes depends on the build (debug frames are several times larger) and
//! on a configurable bound. This guard makes running out of stack a typed
//! "nested too deeply" error instead of an abort: it measures how far the
//! stack has grown since the guard was made and stops at [`BUDGET`].

/// The stack the reader or the writer may use below its entry point.
/// Callers need this much free stack plus their own (a tokio worker's
/// 2 MiB is enough).
pub const BUDGET: usize = 1 << 20;

/// Where the stack was when reading or writing began.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackGuard {
    base: usize,
}

impl StackGuard {
    pub(crate) fn new() -> Self {
        StackGuard { base: here() }
    }

    /// Whether the stack has grown past [`BUDGET`] since [`Self::new`].
    #[inline(always)]
    pub(crate) fn exhausted(&self) -> bool {
        self.base.abs_diff(here()) > BUDGET
    }
}

/// An address in the caller's stack frame.
#[inline(always)]
fn here() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}
