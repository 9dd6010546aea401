//! The manager engine behind `mpserver`: typeids, shared objects, sessions.
