//! The data directory on disk: its lock, its files, and the steps that
//! keep them whole across a crash (write a temporary file, fsync it,
//! rename it, fsync the directory).
//!
//! | file | what |
//! | --- | --- |
//! | `lock` | held with `flock` by the server using the directory; holds its pid |
//! | `snapshot.N` | the state as of the start of `log.N` (complete: it is renamed into place) |
//! | `log.M`, M ≥ N | what changed after, in order, one file per rotation |
//! | `*.tmp` | a snapshot being written; removed at start |
//! | `*.corrupt-T` | a damaged tail moved aside at start (T: Unix seconds) |

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::record::{LOG_MAGIC, SNAPSHOT_MAGIC};
use super::DurableError;

/// The lock on a data directory, held while the server runs.
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the directory's lock, or says who holds it.
pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock, DurableError> {
    let io = |source| DurableError::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| DurableError::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor we own, with constant flags.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(DurableError::InUse {
                dir: dir.to_owned(),
                pid: holder.trim().parse().ok(),
            });
        }
        return Err(DurableError::Io { path, source: err });
    }
    // The holder's pid, for the next server's message.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(DirLock { _file: file })
}

/// What a data directory holds.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// The newest snapshot's generation.
    pub snapshot: Option<u64>,
    /// Every log generation, ascending.
    pub logs: Vec<u64>,
}

/// `snapshot.N`.
pub(crate) fn snapshot_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("snapshot.{gen:010}"))
}

/// `log.N`.
pub(crate) fn log_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("log.{gen:010}"))
}

fn generation(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the directory, removing half-written snapshots.
pub(crate) fn scan(dir: &Path) -> io::Result<Layout> {
    let mut layout = Layout::default();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        } else if let Some(g) = generation(name, "snapshot.") {
            layout.snapshot = layout.snapshot.max(Some(g));
        } else if let Some(g) = generation(name, "log.") {
            layout.logs.push(g);
        }
    }
    layout.logs.sort_unstable();
    Ok(layout)
}

/// Fsyncs a directory, so the names made or renamed in it last.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `log.N` with its magic, durably.
pub(crate) fn create_log(dir: &Path, gen: u64) -> io::Result<File> {
    let path = log_path(dir, gen);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(LOG_MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Opens a file for reading and checks its magic: `Ok(None)` for a file
/// too short to hold one (a log created just before a crash).
pub(crate) fn open_checked(path: &Path, snapshot: bool) -> Result<Option<File>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if got < magic.len() {
        return Ok(None);
    }
    let want = if snapshot { SNAPSHOT_MAGIC } else { LOG_MAGIC };
    if &magic != want {
        return Err("it does not start with the data directory's magic (another program's file, or another version's)".into());
    }
    Ok(Some(file))
}

/// Moves the bytes of `path` from `from` on into `path.corrupt-T` and
/// cuts `path` there; the new file's path.
pub(crate) fn move_tail_aside(path: &Path, from: u64) -> io::Result<PathBuf> {
    let aside = aside_path(path);
    let mut src = OpenOptions::new().read(true).write(true).open(path)?;
    src.seek(SeekFrom::Start(from))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&aside)?;
    io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    src.set_len(from)?;
    src.sync_all()?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(aside)
}

/// Renames a whole file aside to `path.corrupt-T`.
pub(crate) fn rename_aside(path: &Path) -> io::Result<PathBuf> {
    let aside = aside_path(path);
    fs::rename(path, &aside)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(aside)
}

fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    let mut aside = PathBuf::from(name);
    let mut n = 1;
    while aside.exists() {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".corrupt-{secs}-{n}"));
        aside = PathBuf::from(name);
        n += 1;
    }
    aside
}
