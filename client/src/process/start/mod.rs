//! The three ways to start a child (Python's `popen_fork`,
//! `popen_spawn_posix`, `popen_forkserver`), and the payload re-executed
//! children receive.

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod method;
pub(crate) mod payload;
pub(crate) mod spawn;
