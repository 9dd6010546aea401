//! The CPython interpreters on this machine that the CPython-client tests
//! run: `python3` and every pyenv version (`~/.pyenv/versions/*`), 3.11
//! or newer, one per minor version.

use std::path::PathBuf;
use std::process::Command;

/// A CPython interpreter and whether it needs `--legacy-auth` (3.11 and
/// older answer the handshake with HMAC-MD5).
pub struct Python {
    /// The executable.
    pub path: PathBuf,
    /// `(major, minor)`.
    pub version: (u32, u32),
    /// Whether the server must be started with `--legacy-auth` for it.
    pub legacy: bool,
}

fn version(path: &PathBuf) -> Option<(u32, u32)> {
    let out = Command::new(path)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse().ok());
    Some((parts.next()??, parts.next()??))
}

/// `python3` and the pyenv interpreters that exist here, 3.11 or newer,
/// the first found of each minor version.
pub fn pythons() -> Vec<Python> {
    let mut candidates = vec![PathBuf::from("python3")];
    if let Some(home) = std::env::var_os("HOME") {
        let versions = PathBuf::from(home).join(".pyenv/versions");
        if let Ok(entries) = std::fs::read_dir(&versions) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin/python3"))
                .filter(|p| p.exists())
                .collect();
            found.sort();
            candidates.extend(found);
        }
    }
    let mut out: Vec<Python> = Vec::new();
    for path in candidates {
        let Some(v) = version(&path) else { continue };
        if v < (3, 11) || out.iter().any(|p| p.version == v) {
            continue;
        }
        out.push(Python {
            path,
            version: v,
            legacy: v < (3, 12),
        });
    }
    out
}

/// [`pythons`], or `None` (with a message saying the tests are skipped)
/// if there is none.
pub fn skip_without_python() -> Option<Vec<Python>> {
    let found = pythons();
    if found.is_empty() {
        eprintln!("no python3 (3.11 or newer) found: CPython client tests skipped");
        return None;
    }
    Some(found)
}
