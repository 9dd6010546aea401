//! `SharedMemory`, `ShareableList` and the resource tracker, across real
//! processes (forked children, a re-executed test binary, CPython).

mod sync_common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use multiprocessing::shared_memory::{Item, ShareableList, SharedMemory, SharedMemoryError};
use sync_common::{die, fork};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

#[test]
fn a_child_writes_and_the_parent_reads_by_name() {
    let shm = SharedMemory::create(4096).unwrap();
    assert_eq!(shm.size(), 4096);
    assert!(Path::new(&shm_path(shm.name())).exists());
    let name = shm.name().to_string();
    let mut child = fork(move || {
        let Ok(mut other) = SharedMemory::attach(&name) else {
            return 1;
        };
        other.buf_mut()[100..105].copy_from_slice(b"hello");
        0
    });
    assert_eq!(child.join(), 0);
    let mut out = [0u8; 5];
    shm.read_at(100, &mut out).unwrap();
    assert_eq!(&out, b"hello");
    assert!(shm.read_at(4095, &mut out).is_err());
    shm.unlink().unwrap();
    assert!(!Path::new(&shm_path(shm.name())).exists());
    // The mapping outlives the name.
    assert_eq!(&shm.buf()[100..105], b"hello");
}

#[test]
fn errors_are_pythons() {
    let shm = SharedMemory::create(1).unwrap();
    assert!(matches!(
        SharedMemory::create_named(shm.name(), 1),
        Err(SharedMemoryError::FileExists(_))
    ));
    shm.unlink().unwrap();
    assert!(matches!(
        shm.unlink(),
        Err(SharedMemoryError::FileNotFound(_))
    ));
    assert!(matches!(
        SharedMemory::attach(shm.name()),
        Err(SharedMemoryError::FileNotFound(_))
    ));
    assert!(matches!(
        SharedMemory::create(0),
        Err(SharedMemoryError::ValueError(_))
    ));
    for bad in ["", "a/b", "x\ny", &"n".repeat(300)] {
        assert!(matches!(
            SharedMemory::attach(bad),
            Err(SharedMemoryError::ValueError(_))
        ));
    }
}

#[test]
fn a_shareable_list_is_shared_with_a_child() {
    let list =
        ShareableList::new(&[Item::Int(1), Item::Str("abc".into()), Item::Float(0.5)]).unwrap();
    let name = list.shm().name().to_string();
    let mut child = fork(move || {
        let Ok(l) = ShareableList::attach(&name) else {
            return 1;
        };
        let ok = l.set(0, Item::Int(42)).is_ok()
            && l.set(1, Item::Str("xyz1234".into())).is_ok()
            && l.set(2, Item::None).is_ok()
            && l.set(1, Item::Str("way too long for the slot".into()))
                .is_err();
        if ok {
            0
        } else {
            2
        }
    });
    assert_eq!(child.join(), 0);
    assert_eq!(
        list.to_vec().unwrap(),
        [Item::Int(42), Item::Str("xyz1234".into()), Item::None]
    );
    list.shm().unlink().unwrap();
}

/// Runs CPython code with `name` as `sys.argv[1]`; returns its stdout.
fn python(code: &str, name: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", code, name])
        .output()
        .expect("python3 is needed for the interoperability tests");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Attaching registers the block with CPython's own tracker (a 3.11 quirk)
/// which would unlink it when Python exits; the scripts unregister it.
const PY_ATTACH: &str = "
import sys
from multiprocessing import shared_memory, resource_tracker
l = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(l.shm._name, 'shared_memory')
";

#[test]
fn cpython_reads_and_writes_our_shareable_list() {
    let list = ShareableList::new(&[
        Item::Int(-3),
        Item::Float(2.25),
        Item::Bool(true),
        Item::Str("hello".into()),
        Item::Bytes(b"\x01\x02".to_vec()),
        Item::None,
    ])
    .unwrap();
    let code = format!("{PY_ATTACH}print(list(l)); print(l.format); l[3] = 'from py'; l[0] = 7");
    let out = python(&code, list.shm().name());
    assert_eq!(
        out,
        "[-3, 2.25, True, 'hello', b'\\x01\\x02', None]\nqdxxxxxxx?8s8sxxxxxx?x\n"
    );
    assert_eq!(list.get(3).unwrap(), Item::Str("from py".into()));
    assert_eq!(list.get(0).unwrap(), Item::Int(7));
    list.shm().unlink().unwrap();
}

#[test]
fn we_attach_to_a_list_cpython_made() {
    let name = format!("psm_rs_{}", std::process::id());
    let code = "
import sys
from multiprocessing import shared_memory, resource_tracker
l = shared_memory.ShareableList([1, 'two', 3.0, False, b'x', None], name=sys.argv[1])
resource_tracker.unregister(l.shm._name, 'shared_memory')
";
    python(code, &name);
    let list = ShareableList::attach(&name).unwrap();
    assert_eq!(
        list.to_vec().unwrap(),
        [
            Item::Int(1),
            Item::Str("two".into()),
            Item::Float(3.0),
            Item::Bool(false),
            Item::Bytes(b"x".to_vec()),
            Item::None
        ]
    );
    SharedMemory::unlink_by_name(&name).unwrap();
}

/// Re-executes this test binary to run `test` alone with `role` set; the
/// child's stdout and (after its tracker exits) stderr.
fn run_role(test: &str, role: &str) -> (i32, String, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("MP_SHM_TEST_ROLE", role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    // The tracker shares stderr: end-of-file means it has finished too.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    (code, out, err)
}

fn names_in(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("NAME="))
        .map(str::to_string)
        .collect()
}

fn announce(name: &str) {
    let mut so = std::io::stdout();
    // A newline first: the harness has printed "test ... " without one.
    writeln!(so, "\nNAME={name}").unwrap();
    so.flush().unwrap();
}

#[test]
fn the_tracker_unlinks_what_a_killed_process_left_and_warns() {
    if std::env::var("MP_SHM_TEST_ROLE").as_deref() == Ok("crash") {
        let a = SharedMemory::create(64).unwrap();
        let l = ShareableList::new(&[Item::Int(1)]).unwrap();
        let kept = SharedMemory::create(64).unwrap();
        kept.unlink().unwrap();
        announce(a.name());
        announce(l.shm().name());
        die();
    }
    let (code, out, err) = run_role(
        "the_tracker_unlinks_what_a_killed_process_left_and_warns",
        "crash",
    );
    assert_eq!(code, -libc::SIGKILL, "stdout: {out}\nstderr: {err}");
    let names = names_in(&out);
    assert_eq!(names.len(), 2, "{out}");
    for name in &names {
        assert!(!Path::new(&shm_path(name)).exists(), "{name} left behind");
        assert!(
            err.contains(&format!("'/{name}'")),
            "no warning for {name}: {err}"
        );
    }
    assert!(
        err.contains("There appear to have been 2 leaked shared_memory objects"),
        "{err}"
    );
}

#[test]
fn a_clean_exit_leaves_nothing_and_says_nothing() {
    if std::env::var("MP_SHM_TEST_ROLE").as_deref() == Ok("clean") {
        let a = SharedMemory::create(64).unwrap();
        announce(a.name());
        a.unlink().unwrap();
        // Forked children share the tracker: what they unlink is forgotten.
        let b = SharedMemory::create(64).unwrap();
        announce(b.name());
        let name = b.name().to_string();
        let mut child = fork(move || SharedMemory::unlink_by_name(&name).map(|_| 0).unwrap_or(1));
        assert_eq!(child.join(), 0);
        return;
    }
    let (code, out, err) = run_role("a_clean_exit_leaves_nothing_and_says_nothing", "clean");
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let names = names_in(&out);
    assert_eq!(names.len(), 2, "{out}");
    for name in &names {
        assert!(!Path::new(&shm_path(name)).exists());
    }
    assert!(!err.contains("resource_tracker"), "{err}");
}

#[test]
fn a_reexecuted_child_that_adopts_the_parents_tracker_leaves_cleanup_to_it() {
    use multiprocessing::reduction::SharedFd;
    use multiprocessing::resource_tracker;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    const TEST: &str = "a_reexecuted_child_that_adopts_the_parents_tracker_leaves_cleanup_to_it";
    if let Ok(role) = std::env::var("MP_SHM_TEST_ROLE") {
        if let Ok(fd) = std::env::var("MP_SHM_TRACKER_FD") {
            // SAFETY: the parent left this descriptor open for us alone.
            let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
            resource_tracker::adopt(SharedFd::new(fd)).unwrap();
        }
        // Forgotten on purpose: no unlink.
        let shm = SharedMemory::create(64).unwrap();
        announce(shm.name());
        assert!(role == "adopt" || role == "own");
        return;
    }

    // Make sure this process has a tracker, then lend it to the child.
    SharedMemory::create(1).unwrap().unlink().unwrap();
    let fd = resource_tracker::tracker_fd()
        .unwrap()
        .expect("tracker running");
    let raw = fd.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env("MP_SHM_TEST_ROLE", "adopt")
        .env("MP_SHM_TRACKER_FD", raw.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    drop(fd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = names_in(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(names.len(), 1);
    // Our tracker still runs (we hold it), so the child's leftover stays
    // until the program ends, and the child was not warned about it.
    assert!(Path::new(&shm_path(&names[0])).exists());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("resource_tracker"));
    SharedMemory::unlink_by_name(&names[0]).unwrap();

    // Without adopting, the child's own tracker cleans up when it exits.
    let (code, out, err) = run_role(TEST, "own");
    assert_eq!(code, 0, "{err}");
    let names = names_in(&out);
    assert_eq!(names.len(), 1);
    assert!(!Path::new(&shm_path(&names[0])).exists());
    assert!(err.contains(&format!("'/{}'", names[0])), "{err}");
}
