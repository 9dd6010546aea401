//! Reading opcode arguments from the input: every length checked
//! against what is left before anything is allocated for it.

use crate::error::UnpicklingError;
use crate::opcodes::name;

use super::Machine;

impl<'a> Machine<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], UnpicklingError> {
        if self.remaining() < n {
            return Err(UnpicklingError::Truncated);
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn byte(&mut self) -> Result<u8, UnpicklingError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], UnpicklingError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn u64(&mut self) -> Result<u64, UnpicklingError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Checks a length prefix against the input left, before anything is
    /// allocated for it.
    pub(super) fn check_len(&self, code: u8, len: u64) -> Result<usize, UnpicklingError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(UnpicklingError::LengthPastEnd {
                opcode: name(code),
                len,
                remaining: self.remaining(),
            }),
        }
    }

    pub(super) fn sized(&mut self, code: u8, len: u64) -> Result<&'a [u8], UnpicklingError> {
        let n = self.check_len(code, len)?;
        self.take(n)
    }

    /// A text argument, up to (not including) its newline.
    pub(super) fn line(&mut self) -> Result<&'a [u8], UnpicklingError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(UnpicklingError::Truncated)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}
