//! The three ways to start a child (Python's `popen_fork`,
//! `popen_spawn_posix`, `popen_forkserver`), and the payload re-executed
//! children receive, and the scope in which their arguments are encoded
//! (`spawning`).

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod method;
pub(crate) mod payload;
pub(crate) mod spawn;
pub(crate) mod spawning;
