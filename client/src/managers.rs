//! Clients of a manager server (Python's `multiprocessing.managers`).
