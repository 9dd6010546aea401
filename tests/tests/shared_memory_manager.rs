//! `SharedMemoryManager` end to end: blocks made through it are unlinked
//! when it shuts down — made by this process or by a child that was
//! killed, through `shutdown`, a drop, or a server stopped another way —
//! with a server forked or spawned.
//!
//! A `harness = false` target: `main` calls `multiprocessing::init()`
//! first, so re-executed children are dispatched before any test runs.

use std::error::Error;
use std::time::Duration;

use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{Manager, ManagerError, SharedMemoryManager};
use multiprocessing::shared_memory::{Item, SharedMemory, SharedMemoryError};
use multiprocessing::{Connection, Pipe};

use mp_tests::harness::{self, Outcome, Test};

const KEY: &[u8] = b"shared-memory-manager-test";
const LONG: Duration = Duration::from_secs(30);

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn started() -> Result<SharedMemoryManager, String> {
    let mut smm = SharedMemoryManager::new("127.0.0.1:0", KEY);
    smm.start().map_err(e)?;
    Ok(smm)
}

/// Whether a block named `name` exists.
fn exists(name: &str) -> Result<bool, String> {
    match SharedMemory::attach(name) {
        Ok(_) => Ok(true),
        Err(SharedMemoryError::FileNotFound(_)) => Ok(false),
        Err(other) => Err(format!("attaching to {name}: {other}")),
    }
}

fn gone(names: &[String]) -> Outcome {
    for name in names {
        if exists(name)? {
            return Err(format!("{name} was not unlinked"));
        }
    }
    Ok(())
}

fn shutdown_unlinks_what_was_made() -> Outcome {
    let mut smm = started()?;
    let mut block = smm.shared_memory(64).map_err(e)?;
    block.buf_mut()[..3].copy_from_slice(b"abc");
    let list = smm
        .shareable_list(&[Item::Int(7), Item::Str("seven".into())])
        .map_err(e)?;
    let names = vec![block.name().to_owned(), list.shm().name().to_owned()];
    let tracked = smm.list_segments().map_err(e)?;
    if tracked != names {
        return Err(format!("tracked {tracked:?}, made {names:?}"));
    }
    // Another process's view of the same bytes, before the shutdown.
    if &SharedMemory::attach(&names[0]).map_err(e)?.buf()[..3] != b"abc" {
        return Err("the block does not hold what was written".into());
    }
    smm.shutdown().map_err(e)?;
    gone(&names)
}

fn dropping_the_manager_unlinks() -> Outcome {
    let name = {
        let smm = started()?;
        let block = smm.shared_memory(16).map_err(e)?;
        block.name().to_owned()
    };
    gone(&[name])
}

/// The child: makes a block through a manager it connects to, reports
/// its name, and waits to be killed.
fn make_and_hang(
    address: String,
    key: Vec<u8>,
    mut report: Connection,
) -> Result<(), Box<dyn Error>> {
    let mut smm = SharedMemoryManager::new(&address, &key);
    smm.connect()?;
    let block = smm.shared_memory(32)?;
    report.send(&block.name().to_owned())?;
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn a_killed_childs_blocks_are_unlinked(method: StartMethod) -> Outcome {
    let mut smm = started()?;
    let address = smm.address().ok_or("no address")?.to_string();
    let (mut ours, theirs) = Pipe(true).map_err(e)?;
    let p = get_context(method).process(make_and_hang, (address, KEY.to_vec(), theirs));
    p.start().map_err(e)?;
    if !ours.poll(Some(LONG)).map_err(e)? {
        let _ = p.kill();
        return Err("the child reported no block".into());
    }
    let name: String = ours.recv().map_err(e)?;
    p.kill().map_err(e)?;
    p.join_timeout(LONG).map_err(e)?;
    if !exists(&name)? {
        return Err("the block vanished with its maker, before the shutdown".into());
    }
    if smm.list_segments().map_err(e)? != vec![name.clone()] {
        return Err("the server does not track the child's block".into());
    }
    smm.shutdown().map_err(e)?;
    gone(&[name])
}

fn release_and_blocks_already_unlinked() -> Outcome {
    let mut smm = started()?;
    let a = smm.shared_memory(8).map_err(e)?;
    let b = smm.shared_memory(8).map_err(e)?;
    let c = smm.shared_memory(8).map_err(e)?;
    smm.release_segment(a.name()).map_err(e)?;
    if exists(a.name())? {
        return Err("release_segment did not unlink".into());
    }
    if smm.list_segments().map_err(e)? != vec![b.name().to_owned(), c.name().to_owned()] {
        return Err("release_segment did not forget the block".into());
    }
    match smm.release_segment(a.name()) {
        Err(ManagerError::Remote(r)) if r.kind == mp_proto::ErrorKind::ValueError => {}
        other => return Err(format!("releasing an untracked block: {other:?}")),
    }
    // Unlinked by its user: the shutdown skips it without an error.
    b.unlink().map_err(e)?;
    smm.shutdown().map_err(e)?;
    gone(&[c.name().to_owned()])
}

fn a_server_stopped_otherwise_unlinks_too() -> Outcome {
    let mut smm = started()?;
    let name = smm.shared_memory(8).map_err(e)?.name().to_owned();
    let client = smm.base().client().ok_or("no client")?.clone();
    client.shutdown().map_err(e)?;
    let process = smm.base().process().ok_or("no server process")?.clone();
    if !process.join_timeout(LONG).map_err(e)? {
        return Err("the server did not stop".into());
    }
    gone(&[name])?;
    // The manager's own shutdown then finds the server gone.
    smm.shutdown().map_err(e)
}

fn a_spawned_server_tracks_too() -> Outcome {
    let mut smm = SharedMemoryManager::new("127.0.0.1:0", KEY);
    smm.start_in(StartMethod::Spawn).map_err(e)?;
    let name = smm.shared_memory(8).map_err(e)?.name().to_owned();
    smm.shutdown().map_err(e)?;
    gone(&[name])
}

fn a_connected_manager_leaves_the_blocks_to_the_owner() -> Outcome {
    let mut owner = started()?;
    let address = owner.address().ok_or("no address")?.to_string();
    let mut other = SharedMemoryManager::new(&address, KEY);
    other.connect().map_err(e)?;
    let name = other.shared_memory(8).map_err(e)?.name().to_owned();
    other.shutdown().map_err(e)?;
    if !exists(&name)? {
        return Err("a manager that only connected unlinked the blocks".into());
    }
    owner.shutdown().map_err(e)?;
    gone(&[name])
}

fn a_server_without_a_tracker_is_named() -> Outcome {
    let m = Manager::start("127.0.0.1:0", KEY).map_err(e)?;
    let address = m.base().address().ok_or("no address")?.to_string();
    let mut smm = SharedMemoryManager::new(&address, KEY);
    match smm.connect() {
        Err(ManagerError::State(why)) if why.contains(&address) => {}
        other => return Err(format!("connect to a plain manager: {other:?}")),
    }
    match smm.shared_memory(8) {
        Err(SharedMemoryError::Manager(ManagerError::State(_))) => Ok(()),
        other => Err(format!("a block without a tracker: {other:?}")),
    }
}

fn main() {
    multiprocessing::init();
    let tests: &[(&str, Test)] = &[
        (
            "shutdown_unlinks_what_was_made",
            shutdown_unlinks_what_was_made,
        ),
        ("dropping_the_manager_unlinks", dropping_the_manager_unlinks),
        ("a_killed_fork_childs_blocks_are_unlinked", || {
            a_killed_childs_blocks_are_unlinked(StartMethod::Fork)
        }),
        ("a_killed_spawn_childs_blocks_are_unlinked", || {
            a_killed_childs_blocks_are_unlinked(StartMethod::Spawn)
        }),
        (
            "release_and_blocks_already_unlinked",
            release_and_blocks_already_unlinked,
        ),
        (
            "a_server_stopped_otherwise_unlinks_too",
            a_server_stopped_otherwise_unlinks_too,
        ),
        ("a_spawned_server_tracks_too", a_spawned_server_tracks_too),
        (
            "a_connected_manager_leaves_the_blocks_to_the_owner",
            a_connected_manager_leaves_the_blocks_to_the_owner,
        ),
        (
            "a_server_without_a_tracker_is_named",
            a_server_without_a_tracker_is_named,
        ),
    ];
    harness::run(tests);
}
