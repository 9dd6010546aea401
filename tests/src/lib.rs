//! Helpers shared by the end-to-end tests: locating the `mpserver` binary,
//! CPython, and temporary resources.

pub mod mpserver;
pub mod raw;
pub mod scrape;
pub mod steady;
