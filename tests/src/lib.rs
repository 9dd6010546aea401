//! Helpers shared by the end-to-end tests: locating and running the
//! `mpserver` binary ([`mpserver`]), a by-hand wire peer for bad input
//! ([`raw`]), scraping its metrics ([`scrape`]), and a well-behaved client
//! kept busy in the background ([`steady`]), and client processes
//! ([`client_process`]), and a server process's memory read and capped
//! ([`process_memory`]), and the CPython interpreters installed here
//! ([`python`]), and the two tokio runtimes async tests run under
//! ([`runtimes`]).

pub mod client_process;
pub mod harness;
pub mod mpserver;
pub mod process_memory;
pub mod python;
pub mod raw;
pub mod runtimes;
pub mod scrape;
pub mod steady;
