//! [`Limits`]: the bounds on what a pickle can make the reader spend.

/// Bounds on reading one pickle. Each is checked before the memory it
/// guards is allocated; going over one is a typed
/// [`crate::UnpicklingError`], never a panic or an abort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest pickle accepted, in bytes. Default 64 MiB, the
    /// server's default frame limit. Every length prefix inside is also
    /// checked against the bytes that remain, so a `BINUNICODE8` claiming
    /// 2^62 bytes fails before any allocation.
    pub max_input_bytes: usize,
    /// How deep values may nest: a value may sit at most this many levels
    /// below the top-level value (`[[[]]]` nests 2), and at most this many
    /// `MARK`s may be open at once. Default 256. The reader's own
    /// recursion is bounded by it (at worst about 1.5 KiB of stack a level
    /// in release builds, several times that in debug builds) and, whatever
    /// the bound, by [`crate::stack::BUDGET`] of stack: past either the
    /// read fails with [`crate::UnpicklingError::TooDeep`].
    pub max_depth: usize,
    /// The highest memo index plus one. Default 2^22; the memo costs 4
    /// bytes per index up to the highest one used, so at most 16 MiB.
    pub max_memo_entries: usize,
    /// The memory the value may take, in bytes, counting each object at
    /// its in-memory size (a small fixed cost plus its str or bytes
    /// payload) both as the stack machine builds it and each time a memo
    /// reference copies it into the result. Default 256 MiB. This is
    /// what stops a memo bomb: a big object referenced many times is
    /// charged each time, so the output cannot grow past this bound
    /// whatever the input's size.
    pub max_value_bytes: usize,
    /// The longest int, in bytes of two's complement. Default 128
    /// (1024 bits: any int within ±2^1023). `LONG1` and `LONG4` past it,
    /// and protocol 0's decimal text past it, are refused.
    pub max_int_bytes: usize,
}

impl Limits {
    /// The default input bound, 64 MiB.
    pub const DEFAULT_MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
    /// The default nesting bound.
    pub const DEFAULT_MAX_DEPTH: usize = 256;
    /// The default memo bound.
    pub const DEFAULT_MAX_MEMO_ENTRIES: usize = 1 << 22;
    /// The default value bound, 256 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;
    /// The default int bound, 128 bytes (1024 bits).
    pub const DEFAULT_MAX_INT_BYTES: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: Limits::DEFAULT_MAX_INPUT_BYTES,
            max_depth: Limits::DEFAULT_MAX_DEPTH,
            max_memo_entries: Limits::DEFAULT_MAX_MEMO_ENTRIES,
            max_value_bytes: Limits::DEFAULT_MAX_VALUE_BYTES,
            max_int_bytes: Limits::DEFAULT_MAX_INT_BYTES,
        }
    }
}
