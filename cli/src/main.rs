//! `mpserver`: the standalone manager server.

fn main() {}
