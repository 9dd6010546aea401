//! The append-only log: records appended to a buffer in memory (under a
//! short lock, from any thread, inside any object's lock), written to the
//! current `log.N` before the answer to the change goes out
//! ([`Log::commit`], many callers sharing one write), and fsynced by the
//! [`Fsync`] policy.
//!
//! Offsets are counted over the whole run (across rotations): `appended`
//! is every byte ever appended, `written` every byte handed to the
//! operating system, `synced` every byte fsynced.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use mp_proto::codec::CodecError;
use mp_proto::{ObjectId, Value};

use super::{record, Fsync};
use crate::lock;
use crate::persist::EffectSink;

/// Records appended and not yet written.
struct Pending {
    buf: Vec<u8>,
    appended: u64,
}

/// The file being appended to.
pub(crate) struct Current {
    pub file: File,
    pub gen: u64,
    pub path: PathBuf,
    /// Its length: what a failed write is cut back to.
    pub len: u64,
}

/// The log of one data directory.
pub(crate) struct Log {
    pending: Mutex<Pending>,
    pub(crate) current: Mutex<Current>,
    appended: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    policy: Fsync,
    /// Appends are dropped: while replaying (the records are already on
    /// disk), and once closed (a stopping server's disposals are not
    /// deletions).
    suspended: AtomicBool,
    /// The last write or fsync failed; cleared when one succeeds.
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
}

impl Log {
    /// A log appending to `current`, suspended until
    /// [`resume`](Self::resume).
    pub fn new(current: Current, policy: Fsync) -> Log {
        Log {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                appended: 0,
            }),
            current: Mutex::new(current),
            appended: AtomicU64::new(0),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            policy,
            suspended: AtomicBool::new(true),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
        }
    }

    /// Starts taking appends.
    pub fn resume(&self) {
        self.suspended.store(false, Ordering::Release);
    }

    /// Stops taking appends for good.
    pub fn suspend(&self) {
        self.suspended.store(true, Ordering::Release);
    }

    /// Appends one record, written by `encode` (one of
    /// [`record`]'s writers).
    pub fn append(&self, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>) {
        if self.suspended.load(Ordering::Acquire) {
            return;
        }
        let mut p = lock(&self.pending);
        let before = p.buf.len();
        if let Err(e) = encode(&mut p.buf) {
            // Out of memory building a record: say so loudly; the
            // change stays in memory but would be missing after a restart.
            tracing::error!(error = %e, "a change could not be written to the data directory's log");
            self.fail(format!("a record could not be built: {e}"));
            return;
        }
        let added = (p.buf.len() - before) as u64;
        p.appended += added;
        self.appended.store(p.appended, Ordering::Release);
    }

    /// Whether the last write failed: changes are refused until one
    /// succeeds.
    pub fn failure(&self) -> Option<String> {
        if self.failed.load(Ordering::Acquire) {
            lock(&self.failure).clone()
        } else {
            None
        }
    }

    fn fail(&self, why: String) {
        *lock(&self.failure) = Some(why);
        self.failed.store(true, Ordering::Release);
    }

    /// Makes every record appended so far reach the file (and, under
    /// `always`, the disk) before returning.
    pub fn commit(&self) -> io::Result<()> {
        let target = self.appended.load(Ordering::Acquire);
        let done = match self.policy {
            Fsync::Always => self.synced.load(Ordering::Acquire),
            _ => self.written.load(Ordering::Acquire),
        };
        if done >= target {
            return Ok(());
        }
        let mut current = lock(&self.current);
        if self.written.load(Ordering::Acquire) < target {
            self.write_locked(&mut current)?;
        }
        if self.policy == Fsync::Always && self.synced.load(Ordering::Acquire) < target {
            self.sync_locked(&mut current)?;
        }
        Ok(())
    }

    /// Writes what is pending and fsyncs it (a rotation, a stop, and
    /// `everysec`'s tick).
    pub fn flush_and_sync(&self) -> io::Result<()> {
        let mut current = lock(&self.current);
        self.write_locked(&mut current)?;
        self.sync_locked(&mut current)
    }

    /// Writes what is pending (`no`'s tick).
    pub fn flush(&self) -> io::Result<()> {
        let mut current = lock(&self.current);
        self.write_locked(&mut current)
    }

    /// Writes every pending byte to the current file.
    pub(crate) fn write_locked(&self, current: &mut Current) -> io::Result<()> {
        let bytes = std::mem::take(&mut lock(&self.pending).buf);
        if bytes.is_empty() {
            return Ok(());
        }
        match current.file.write_all(&bytes) {
            Ok(()) => {
                current.len += bytes.len() as u64;
                self.written.fetch_add(bytes.len() as u64, Ordering::AcqRel);
                if self.failed.swap(false, Ordering::AcqRel) {
                    tracing::info!("the data directory's log is written again");
                }
                Ok(())
            }
            Err(e) => {
                // A partial write would leave half a record in the middle
                // of the log: cut it off, and keep the bytes to retry.
                let _ = current.file.set_len(current.len);
                let _ = std::io::Seek::seek(&mut current.file, io::SeekFrom::Start(current.len));
                let mut p = lock(&self.pending);
                let mut back = bytes;
                back.extend_from_slice(&p.buf);
                p.buf = back;
                drop(p);
                tracing::error!(path = %current.path.display(), error = %e, "cannot write the data directory's log; changes to persisted objects are refused until it can");
                self.fail(format!("cannot write {}: {e}", current.path.display()));
                Err(e)
            }
        }
    }

    fn sync_locked(&self, current: &mut Current) -> io::Result<()> {
        let written = self.written.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= written {
            return Ok(());
        }
        match current.file.sync_data() {
            Ok(()) => {
                self.synced.store(written, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %current.path.display(), error = %e, "cannot fsync the data directory's log");
                self.fail(format!("cannot fsync {}: {e}", current.path.display()));
                Err(e)
            }
        }
    }

    /// The current file's generation and length.
    pub fn position(&self) -> (u64, u64) {
        let c = lock(&self.current);
        (c.gen, c.len)
    }
}

impl EffectSink for Log {
    fn effect(&self, id: ObjectId, tag: u8, value: Option<&Value>) {
        self.append(|out| record::effect(out, id, tag, value));
    }
}
