//! The shared memory of one channel: a `memfd` the server creates and the
//! client opens through `/proc/<server pid>/fd/<fd>`, mapped by both.
//!
//! # Layout
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic (`u64`), nonce (`u64`), ring size (`u32`) |
//! | 64 | `closed`: set by the side that leaves |
//! | 128 | control words of the client → server ring |
//! | 384 | control words of the server → client ring |
//! | 4096 | client → server bytes, then server → client bytes |
//!
//! The server seals the file at its size (`F_SEAL_SHRINK`, `F_SEAL_GROW`,
//! `F_SEAL_SEAL`), so a client holding it cannot shrink it under the
//! server's mapping; the client checks the seal too.
//!
//! Opening another process's `memfd` through `/proc` needs the right to
//! inspect that process (the same user, in practice), which is also what
//! reading the authkey out of its memory would take: the channel exposes
//! nothing a peer could not already reach. The nonce, sent over the
//! authenticated socket, proves the client mapped the server's region and
//! not some other process's file that happens to have the same pid and fd
//! (another host, another pid namespace).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use super::ring::Control;
use super::ChannelError;
use crate::mapping::{self, Mapping};

/// Identifies the layout above.
const MAGIC: u64 = 0x4d50_4348_414e_0001;
/// Where the ring bytes start.
const DATA: usize = 4096;
/// Where each ring's control words are.
const CONTROL: [usize; 2] = [128, 384];
/// Where `closed` is.
const CLOSED: usize = 64;
/// Smallest and largest ring sizes.
pub const MIN_RING: u32 = 4096;
/// See [`MIN_RING`].
pub const MAX_RING: u32 = 1 << 30;

/// Which way a ring carries bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Requests.
    ToServer = 0,
    /// Answers.
    ToClient = 1,
}

/// A mapped channel region; unmapped when the last user drops it.
#[derive(Debug)]
pub struct Region {
    /// The whole region. Every field either side writes concurrently is
    /// an atomic, and ring bytes are only copied in and out under the ring
    /// protocol (see `ring`).
    map: Mapping,
    ring: u32,
}

impl Region {
    /// The size of a region with rings of `ring` bytes.
    pub fn size(ring: u32) -> usize {
        DATA + 2 * ring as usize
    }

    /// Creates a region with rings of `ring` bytes (a power of two between
    /// [`MIN_RING`] and [`MAX_RING`]) stamped with `nonce`; returns it and
    /// the `memfd` to offer.
    pub fn create(ring: u32, nonce: u64) -> Result<(Region, OwnedFd), ChannelError> {
        if !ring.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&ring) {
            return Err(ChannelError::Layout(format!("a ring of {ring} bytes")));
        }
        let len = Self::size(ring);
        // Sealed at its size: a peer holding the file cannot shrink it
        // under the server's mapping (which would fault the server on its
        // next access), nor grow it, nor lift the seals.
        let fd = mapping::create_sealed(c"mpserver-channel", len)?;
        let region = Self::map(&fd, len, ring)?;
        let header = region.map.as_ptr();
        // SAFETY: the fresh mapping is at least DATA bytes long and nobody
        // else has it yet; the header fields are within its first page.
        unsafe {
            header.cast::<u64>().write(MAGIC);
            header.add(8).cast::<u64>().write(nonce);
            header.add(16).cast::<u32>().write(ring);
        }
        Ok((region, fd))
    }

    /// Maps the region the server at `pid` offered as its descriptor `fd`,
    /// checking its size, layout and `nonce`.
    pub fn open(pid: u32, fd: i32, ring: u32, nonce: u64) -> Result<Region, ChannelError> {
        if !ring.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&ring) {
            return Err(ChannelError::Layout(format!("a ring of {ring} bytes")));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/fd/{fd}"))?;
        let len = Self::size(ring);
        if mapping::sealed_len(&file)
            .map_err(|_| ChannelError::Layout("a region that may shrink".into()))?
            != len
        {
            return Err(ChannelError::Layout("a region of another size".into()));
        }
        let region = Self::map(&file, len, ring)?;
        let header = region.map.as_ptr();
        // SAFETY: the mapping is `len` >= DATA bytes long; the server wrote
        // the header before offering the region.
        let (magic, stamp, size) = unsafe {
            (
                header.cast::<u64>().read(),
                header.add(8).cast::<u64>().read(),
                header.add(16).cast::<u32>().read(),
            )
        };
        if magic != MAGIC || size != ring {
            return Err(ChannelError::Layout("not a channel region".into()));
        }
        if stamp != nonce {
            return Err(ChannelError::NotOurs);
        }
        Ok(region)
    }

    fn map(fd: &impl AsRawFd, len: usize, ring: u32) -> Result<Region, ChannelError> {
        Ok(Region {
            map: Mapping::map(fd, len, false)?,
            ring,
        })
    }

    /// The size of each ring.
    #[inline]
    pub fn ring_size(&self) -> u32 {
        self.ring
    }

    /// The `closed` word: non-zero once either side left.
    #[inline]
    pub fn closed(&self) -> &AtomicU32 {
        // SAFETY: CLOSED is within the header page, 4-aligned, and only
        // ever accessed atomically by both sides.
        unsafe { &*self.map.as_ptr().add(CLOSED).cast::<AtomicU32>() }
    }

    /// Marks the channel closed and wakes every side sleeping on it.
    pub fn close(&self) {
        self.closed().store(1, std::sync::atomic::Ordering::SeqCst);
        for direction in [Direction::ToServer, Direction::ToClient] {
            self.control(direction).wake_all();
        }
    }

    /// The control words of the ring carrying bytes `direction`.
    pub(crate) fn control(&self, direction: Direction) -> &Control {
        // SAFETY: each control block lies within the header page, is
        // 64-aligned, and consists of atomics only.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(CONTROL[direction as usize])
                .cast::<Control>()
        }
    }

    /// Where the bytes of the ring carrying `direction` start.
    pub(crate) fn data(&self, direction: Direction) -> *mut u8 {
        // SAFETY: DATA + 2 rings is exactly the mapping's length.
        unsafe {
            self.map
                .as_ptr()
                .add(DATA + direction as usize * self.ring as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn a_region_cannot_be_resized_under_its_mappings() {
        let (region, fd) = Region::create(MIN_RING, 1).unwrap();
        let file = File::from(fd);
        assert!(file.set_len(0).is_err(), "shrunk a sealed region");
        assert!(file.set_len(1 << 30).is_err(), "grew a sealed region");
        assert_eq!(
            file.metadata().unwrap().len(),
            Region::size(MIN_RING) as u64
        );
        assert_eq!(region.ring_size(), MIN_RING);
    }

    #[test]
    fn opening_checks_the_nonce_and_the_size() {
        let (_region, fd) = Region::create(MIN_RING, 42).unwrap();
        let pid = std::process::id();
        let raw = fd.as_raw_fd();
        assert!(Region::open(pid, raw, MIN_RING, 42).is_ok());
        assert!(matches!(
            Region::open(pid, raw, MIN_RING, 43),
            Err(ChannelError::NotOurs)
        ));
        assert!(matches!(
            Region::open(pid, raw, MIN_RING * 2, 42),
            Err(ChannelError::Layout(_))
        ));
        assert!(matches!(
            Region::open(pid, raw, 3, 42),
            Err(ChannelError::Layout(_))
        ));
    }
}
