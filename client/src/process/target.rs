//! What a child runs, and how a re-executed child finds it.
//!
//! Python pickles the target by qualified name and imports it again in a
//! `spawn`/`forkserver` child. Rust has no names at run time, so a target
//! given to [`Process::new`](super::Process::new) is identified by a
//! monomorphized *entry point* — [`entry::<F, Args>`] — and that entry is
//! found in the child by its **offset from a known function of this
//! crate** ([`super::code_offset`]). Offsets between two functions of one
//! executable do not depend on where the loader put it (ASLR moves the
//! whole image), so the scheme is exact as long as:
//!
//! * both functions are in the main executable — checked in the parent
//!   with `dladdr` (a target in a shared library is refused);
//! * the child runs the same executable file — checked by comparing the
//!   device, inode, size and modification time of `/proc/self/exe`, and a
//!   mismatch is a clear error, never a jump;
//! * the target's type carries no data: `F` must be zero-sized (a `fn`
//!   item or a non-capturing closure), asserted at compile time, so the
//!   child can make the value out of nothing. A fingerprint of the types
//!   is checked once the entry runs, as a last guard.
//!
//! Capturing closures run only under `fork`, through
//! [`Process::from_fn`](super::Process::from_fn).

use std::any::type_name;
use std::fmt::Display;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Once, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::code_offset::CodeOffset;
use super::error::ProcessError;
use super::start::method::StartMethod;
use crate::reduction::{FdSink, FdSource};

/// A function a [`Process`](super::Process) can run with an argument
/// tuple: implemented for every `FnOnce(A1, …, An) -> R` (n ≤ 8) with
/// `Args = (A1, …, An)`, the counterpart of Python's `target` + `args`.
///
/// `Process::new(worker, (1, "x".to_string()))` calls `worker(1, "x")` in
/// the child.
pub trait Target<Args>: Copy + Send + 'static {
    /// What the function returns; decides the exit code.
    type Output: TargetResult;
    /// Calls the function with the unpacked arguments.
    fn call(self, args: Args) -> Self::Output;
}

macro_rules! impl_target {
    ($($a:ident),*) => {
        impl<Func, Ret, $($a,)*> Target<($($a,)*)> for Func
        where
            Func: FnOnce($($a),*) -> Ret + Copy + Send + 'static,
            Ret: TargetResult,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn call(self, args: ($($a,)*)) -> Ret {
                let ($($a,)*) = args;
                self($($a),*)
            }
        }
    };
}

impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);
impl_target!(A1, A2, A3, A4, A5, A6, A7);
impl_target!(A1, A2, A3, A4, A5, A6, A7, A8);

/// How a target's return value becomes the child's exit code.
///
/// * `()` → 0;
/// * `Result<T, E: Display>` → 0, or 1 with `E` printed on stderr (as
///   Python prints the traceback of an exception);
/// * `i32` → that code, like `sys.exit(n)`.
///
/// A panic gives 1, with the panic message on stderr.
pub trait TargetResult {
    /// The exit code; `process_name` is for the error report.
    fn into_exitcode(self, process_name: &str) -> i32;
}

impl TargetResult for () {
    fn into_exitcode(self, _: &str) -> i32 {
        0
    }
}

impl TargetResult for i32 {
    fn into_exitcode(self, _: &str) -> i32 {
        self
    }
}

impl<T, E: Display> TargetResult for Result<T, E> {
    fn into_exitcode(self, process_name: &str) -> i32 {
        match self {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("Process {process_name}:\nError: {e}");
                1
            }
        }
    }
}

/// A target ready to run in a child, with its arguments.
pub(crate) trait Launch: Send {
    /// Runs in this process (a `fork` child); returns the exit code.
    fn run_here(self: Box<Self>, process_name: &str) -> i32;
    /// Encodes the target for a re-executed child.
    fn portable(&self, method: StartMethod) -> Result<PortableTarget, ProcessError>;
}

/// A target as a re-executed child receives it.
pub(crate) struct PortableTarget {
    /// Where the child finds the entry point.
    pub(crate) entry: EntryPoint,
    /// The CBOR-encoded argument tuple.
    pub(crate) args: Vec<u8>,
    /// Descriptors the arguments carry (see [`crate::reduction`]).
    pub(crate) fds: Vec<OwnedFd>,
}

/// The address of an entry point, relative to [`anchor`], with what the
/// child checks before and after using it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryPoint {
    /// Where `entry::<F, Args>` is (see [`super::code_offset`]).
    offset: CodeOffset,
    /// Identity of the executable the offset is valid for.
    exe: ExeId,
    /// Hash of the type names `F` and `Args`.
    fingerprint: u64,
}

impl EntryPoint {
    /// The type fingerprint the entry checks.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// What identifies an executable file well enough for offsets inside it to
/// be trusted: a rebuilt or replaced binary changes at least one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExeId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl ExeId {
    /// The identity of the running executable (cached: it cannot change
    /// for a running process).
    pub(crate) fn current() -> Result<ExeId, ProcessError> {
        static CURRENT: OnceLock<Result<ExeId, String>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let meta = std::fs::metadata("/proc/self/exe").map_err(|e| e.to_string())?;
                Ok(ExeId {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.size(),
                    mtime: meta.mtime(),
                    mtime_nsec: meta.mtime_nsec(),
                })
            })
            .clone()
            .map_err(|e| ProcessError::os("reading /proc/self/exe", std::io::Error::other(e)))
    }
}

/// The signature of every entry point.
type EntryFn = fn(ChildCall) -> i32;

/// What an entry point gets in the child.
pub(crate) struct ChildCall {
    /// The CBOR-encoded argument tuple.
    pub(crate) args: Vec<u8>,
    /// Descriptors for the [`SharedFd`](crate::reduction::SharedFd)s in
    /// the arguments.
    pub(crate) fds: Vec<OwnedFd>,
    /// For error reports.
    pub(crate) process_name: String,
    /// Checked against the entry's own fingerprint.
    pub(crate) fingerprint: u64,
}

pub(crate) fn fingerprint<F, Args>() -> u64 {
    // SipHash with fixed keys: the same in every process of one build.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    type_name::<F>().hash(&mut h);
    type_name::<Args>().hash(&mut h);
    h.finish()
}

/// The entry point for `F` with `Args`: decodes the arguments, makes the
/// zero-sized `F` and runs it.
fn entry<F, Args>(call: ChildCall) -> i32
where
    F: Target<Args>,
    Args: DeserializeOwned,
{
    if call.fingerprint != fingerprint::<F, Args>() || std::mem::size_of::<F>() != 0 {
        eprintln!(
            "Process {}: the target found in this executable is not the one the parent sent",
            call.process_name
        );
        return 1;
    }
    let decoded: Result<Args, String> = FdSource::provide(call.fds, || {
        ciborium::from_reader(call.args.as_slice()).map_err(|e| e.to_string())
    });
    let args = match decoded {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "Process {}:\nError: cannot decode the arguments: {e}",
                call.process_name
            );
            return 1;
        }
    };
    // SAFETY: F is zero-sized (asserted when the Process was made, and
    // checked above), so it has no bytes that could be invalid and a
    // dangling aligned pointer is a valid place to read it from. F is
    // Copy and the parent held a value of it, so a further copy breaks no
    // invariant of the type.
    let f: F = unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() };
    run_guarded(&call.process_name, move || f.call(args))
}

/// Resolves an entry point in this process and calls it.
pub(crate) fn call_entry(entry: &EntryPoint, call: ChildCall) -> Result<i32, String> {
    let here = ExeId::current().map_err(|e| e.to_string())?;
    if here != entry.exe {
        return Err(
            "this executable is not the file the parent runs (it was rebuilt or replaced \
             since the parent started), so the target cannot be found"
                .into(),
        );
    }
    // SAFETY: the parent measured `offset` with `CodeOffset::of` from an
    // `entry::<F, Args>` instantiation, a function of type EntryFn, and
    // this process runs the same executable file (checked above).
    let f: EntryFn = unsafe { entry.offset.resolve() };
    Ok(f(call))
}

/// Runs a target, turning a panic into exit code 1 (the panic hook has
/// already printed the message) and a returned value into its code.
pub(crate) fn run_guarded<R: TargetResult>(process_name: &str, f: impl FnOnce() -> R) -> i32 {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(out) => out.into_exitcode(process_name),
        Err(_) => 1,
    }
}

/// The name a child's panic reports start with; null in a process that
/// is not a child of ours.
static PANIC_NAME: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());

/// Installs, once per program, a panic hook that prefixes reports with
/// `Process <name>:` in a child, as Python prefixes a child's traceback,
/// keeping whatever hook was there before.
///
/// Called by the forking thread before `fork`, never in a forked child:
/// the standard library guards the hook with a lock that another thread
/// may hold (while panicking) at the moment of the fork, and a child that
/// inherited it taken would wait forever. A re-executed child calls it
/// before it starts any thread.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let name = PANIC_NAME.load(Ordering::Acquire);
            if !name.is_null() {
                // SAFETY: a non-null PANIC_NAME comes from Box::into_raw in
                // set_panic_name and is never freed.
                eprintln!("Process {}:", unsafe { &*name });
            }
            previous(info);
        }));
    });
}

/// Names this child in its panic reports; lock-free, so a forked child may
/// call it at once.
pub(crate) fn set_panic_name(process_name: &str) {
    let name = Box::into_raw(Box::new(process_name.to_owned()));
    // The old name is leaked, not freed: a panicking thread may be reading
    // it. It is one short string per process.
    PANIC_NAME.swap(name, Ordering::AcqRel);
}

/// A `fn` item or non-capturing closure with serializable arguments: runs
/// under every start method.
pub(crate) struct FnTarget<F, Args> {
    pub(crate) f: F,
    pub(crate) args: Args,
}

impl<F, Args> Launch for FnTarget<F, Args>
where
    F: Target<Args>,
    Args: Serialize + DeserializeOwned + Send + 'static,
{
    fn run_here(self: Box<Self>, process_name: &str) -> i32 {
        let FnTarget { f, args } = *self;
        run_guarded(process_name, move || f.call(args))
    }

    fn portable(&self, method: StartMethod) -> Result<PortableTarget, ProcessError> {
        let entry_fn: EntryFn = entry::<F, Args>;
        let offset = CodeOffset::of(entry_fn as usize, method)?;
        let (encoded, fds) = FdSink::collect(|| {
            let mut out = Vec::new();
            ciborium::into_writer(&self.args, &mut out).map(|()| out)
        });
        let args = encoded.map_err(|e| ProcessError::Serialize(e.to_string()))?;
        Ok(PortableTarget {
            entry: EntryPoint {
                offset,
                exe: ExeId::current()?,
                fingerprint: fingerprint::<F, Args>(),
            },
            args,
            fds,
        })
    }
}

/// Any `FnOnce` closure: runs only under `fork`.
pub(crate) struct ClosureTarget<C>(pub(crate) C);

impl<C, R> Launch for ClosureTarget<C>
where
    C: FnOnce() -> R + Send + 'static,
    R: TargetResult,
{
    fn run_here(self: Box<Self>, process_name: &str) -> i32 {
        run_guarded(process_name, self.0)
    }

    fn portable(&self, method: StartMethod) -> Result<PortableTarget, ProcessError> {
        Err(ProcessError::TargetNotPortable {
            method,
            reason: "a closure made with Process::from_fn can only run in a forked child; \
                     use Process::new with a fn item or a non-capturing closure and \
                     serializable arguments"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: i32, b: i32) -> i32 {
        a + b
    }

    #[test]
    fn an_entry_resolves_back_to_itself() {
        let t = FnTarget {
            f: add,
            args: (2, 3),
        };
        let p = t.portable(StartMethod::Spawn).unwrap();
        let code = call_entry(
            &p.entry,
            ChildCall {
                args: p.args,
                fds: p.fds,
                process_name: "t".into(),
                fingerprint: p.entry.fingerprint,
            },
        )
        .unwrap();
        assert_eq!(code, 5);
    }

    #[test]
    fn a_wrong_fingerprint_is_refused() {
        let t = FnTarget {
            f: add,
            args: (2, 3),
        };
        let p = t.portable(StartMethod::Spawn).unwrap();
        let code = call_entry(
            &p.entry,
            ChildCall {
                args: p.args,
                fds: p.fds,
                process_name: "t".into(),
                fingerprint: p.entry.fingerprint ^ 1,
            },
        )
        .unwrap();
        assert_eq!(code, 1);
    }

    #[test]
    fn another_executable_is_refused() {
        let t = FnTarget {
            f: add,
            args: (1, 1),
        };
        let mut p = t.portable(StartMethod::Spawn).unwrap();
        p.entry.exe.mtime += 1;
        let err = call_entry(
            &p.entry,
            ChildCall {
                args: p.args,
                fds: p.fds,
                process_name: "t".into(),
                fingerprint: p.entry.fingerprint,
            },
        )
        .unwrap_err();
        assert!(err.contains("rebuilt or replaced"), "{err}");
    }

    #[test]
    fn closures_are_fork_only() {
        let captured = String::from("x");
        let t = ClosureTarget(move || drop(captured));
        assert!(matches!(
            t.portable(StartMethod::Forkserver),
            Err(ProcessError::TargetNotPortable { .. })
        ));
    }

    #[test]
    fn results_map_to_exit_codes() {
        assert_eq!(().into_exitcode("p"), 0);
        assert_eq!(7.into_exitcode("p"), 7);
        assert_eq!(Ok::<(), String>(()).into_exitcode("p"), 0);
        assert_eq!(Err::<(), _>("boom").into_exitcode("p"), 1);
    }
}
