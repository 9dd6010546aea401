//! Shared memory by name (Python's `multiprocessing.shared_memory`).

pub(crate) mod region;
