//! Naming a function of this executable so that another process running
//! the same executable finds it: by its offset from a fixed function of
//! this crate (the anchor).
//!
//! Python pickles a function by its qualified name and imports it again in
//! the child. Rust has no names at run time, but the distance between two
//! functions of one executable does not depend on where the loader put it
//! (ASLR moves the whole image), so an offset measured in the parent
//! names the same function in a re-executed child or a pool worker. That
//! holds when:
//!
//! * both functions are in the main executable: [`CodeOffset::of`] checks
//!   it with `dladdr` and refuses a function in a shared library;
//! * the other process runs the same executable file: its users check
//!   that (`target::ExeId` for a spawned child; a pool's workers are
//!   started from the parent's own file).
//!
//! This is the one place that turns an address into a function pointer;
//! [`process::target`](super::target) (a `Process`'s target) and
//! [`pool::record`](crate::pool) (a task's function) both go through it.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use mp_sys::lock;
use serde::{Deserialize, Serialize};

use super::error::ProcessError;
use super::start::method::StartMethod;

/// A function's distance from the anchor, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct CodeOffset(i64);

impl CodeOffset {
    /// The offset of the function at `addr`, after checking (once per
    /// address) that it and the anchor are in the main executable, where
    /// a process started for `method` will find it at the same distance.
    pub(crate) fn of(addr: usize, method: StartMethod) -> Result<CodeOffset, ProcessError> {
        static CHECKED: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
        let checked = CHECKED.get_or_init(|| Mutex::new(HashSet::new()));
        if !lock(checked).contains(&addr) {
            check_same_object(addr, method)?;
            lock(checked).insert(addr);
        }
        Ok(CodeOffset((addr as i64).wrapping_sub(anchor_addr() as i64)))
    }

    /// The offset as 8 bytes of a record.
    pub(crate) fn to_bits(self) -> u64 {
        self.0 as u64
    }

    /// The offset read back from [`to_bits`](Self::to_bits).
    pub(crate) fn from_bits(bits: u64) -> CodeOffset {
        CodeOffset(bits as i64)
    }

    /// The function this offset names, in this process.
    ///
    /// # Safety
    ///
    /// `self` must come from [`CodeOffset::of`] with the address of a
    /// function of type `E` (a `fn` pointer), in a process running the
    /// same executable file as this one.
    pub(crate) unsafe fn resolve<E: Copy>(self) -> E {
        const { assert!(std::mem::size_of::<E>() == std::mem::size_of::<usize>()) };
        let addr = (anchor_addr() as i64).wrapping_add(self.0) as usize;
        // SAFETY: per this function's contract, the parent measured the
        // offset from the anchor to a function of type E, both in the main
        // executable (`of` checked it with dladdr there), and this process
        // runs the same executable file, whose image the loader maps as
        // one block: `addr` is that function here. E is a fn pointer, the
        // size of usize (asserted above).
        unsafe { std::mem::transmute_copy::<usize, E>(&addr) }
    }
}

/// The fixed point offsets are measured from. Never inlined, never
/// generic: exactly one copy exists in the executable.
#[inline(never)]
fn anchor() -> u32 {
    // A body distinct from any other function so the linker cannot fold
    // it with one.
    std::hint::black_box(0x6d70_616e)
}

fn anchor_addr() -> usize {
    anchor as fn() -> u32 as usize
}

/// Checks that `addr` and the anchor are in the main executable, where a
/// re-executed process will find them at the same distance.
fn check_same_object(addr: usize, method: StartMethod) -> Result<(), ProcessError> {
    let base = |a: usize| -> Option<usize> {
        let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: dladdr only reads the address and fills `info`.
        let rc = unsafe { libc::dladdr(a as *const libc::c_void, info.as_mut_ptr()) };
        if rc == 0 {
            return None;
        }
        // SAFETY: dladdr returned non-zero, so it filled `info`.
        Some(unsafe { info.assume_init() }.dli_fbase as usize)
    };
    // SAFETY: getauxval only reads the auxiliary vector.
    let exe_entry = unsafe { libc::getauxval(libc::AT_ENTRY) } as usize;
    let exe_base = base(exe_entry);
    let ours = base(anchor_addr());
    let theirs = base(addr);
    if exe_base.is_some() && exe_base == ours && ours == theirs {
        return Ok(());
    }
    Err(ProcessError::TargetNotPortable {
        method,
        reason: "the target or this crate is not linked into the main executable (a shared \
                 library?), so a re-executed child cannot find it"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(x: u32) -> u32 {
        x * 3
    }

    #[test]
    fn an_offset_names_the_same_function_back() {
        let f: fn(u32) -> u32 = triple;
        let offset = CodeOffset::of(f as usize, StartMethod::Spawn).unwrap();
        let back = CodeOffset::from_bits(offset.to_bits());
        // SAFETY: measured from a fn(u32) -> u32 in this very process.
        let g: fn(u32) -> u32 = unsafe { back.resolve() };
        assert_eq!(g(7), 21);
    }

    #[test]
    fn an_address_outside_the_executable_is_refused() {
        // libc's `getpid` lives in a shared library.
        let getpid: unsafe extern "C" fn() -> libc::pid_t = libc::getpid;
        let outside = getpid as usize;
        assert!(matches!(
            CodeOffset::of(outside, StartMethod::Spawn),
            Err(ProcessError::TargetNotPortable { .. })
        ));
    }
}
