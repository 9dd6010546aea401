//! The authkey: from a file, from a variable, or generated into a new
//! file only its owner can read.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::cli::KeyArgs;
use crate::BoxError;

/// A key read from the flags; `None` when neither flag was given.
pub fn from_args(args: &KeyArgs) -> Result<Option<Vec<u8>>, BoxError> {
    let key = if let Some(path) = &args.authkey_file {
        let bytes = mp_proto::auth::read_key_file(path)
            .map_err(|e| format!("cannot read the authkey file {}: {e}", path.display()))?;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the authkey file is readable by others; chmod 600 it");
            }
        }
        bytes
    } else if let Some(var) = &args.authkey_env {
        std::env::var_os(var)
            .ok_or_else(|| format!("environment variable {var} is not set"))?
            .into_encoded_bytes()
    } else {
        return Ok(None);
    };
    if key.is_empty() {
        return Err("the authkey is empty".into());
    }
    Ok(Some(key))
}

/// A key from the flags, or an error naming them (admin verbs need one).
pub fn required(args: &KeyArgs) -> Result<Vec<u8>, BoxError> {
    from_args(args)?
        .ok_or_else(|| "give the server's key with --authkey-file or --authkey-env".into())
}

/// A generated key and the file holding it.
pub struct Generated {
    /// The key: 64 hexadecimal characters.
    pub key: Vec<u8>,
    /// The 0600 file it was written to.
    pub path: PathBuf,
}

/// Generates a random key into a new 0600 file in the runtime directory
/// (`$XDG_RUNTIME_DIR`, else the temporary directory).
pub fn generate() -> Result<Generated, BoxError> {
    let random: [u8; 32] = rand::random();
    let key: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let tag: u32 = rand::random();
    let path = dir.join(format!("mpserver-{}-{tag:08x}.authkey", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
    file.write_all(format!("{key}\n").as_bytes())
        .map_err(|e| format!("cannot write the key file {}: {e}", path.display()))?;
    Ok(Generated {
        key: key.into_bytes(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_private_and_readable_back() {
        let g = generate().unwrap();
        let mode = std::fs::metadata(&g.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let args = KeyArgs {
            authkey_file: Some(g.path.clone()),
            authkey_env: None,
        };
        assert_eq!(from_args(&args).unwrap().unwrap(), g.key);
        std::fs::remove_file(&g.path).unwrap();
        assert!(required(&KeyArgs::default()).is_err());
    }
}
