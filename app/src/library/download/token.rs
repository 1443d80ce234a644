//! The Hugging Face Hub token: kept in the OS keyring (macOS Keychain, Windows Credential
//! Manager, the Secret Service on Linux, through the `keyring` crate's pure-Rust back ends).
//! Where no keyring is reachable (a headless Linux box without a Secret Service daemon), it is
//! kept in `<config dir>/hf-token`, readable by the user only (0600).
//!
//! `KILN_TOKEN_STORE=file` skips the keyring (portable installs, tests).

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Keyring service name.
const SERVICE: &str = "kiln";
/// Keyring user name of the Hub token.
const USER: &str = "huggingface-hub-token";
/// File name of the fallback in the config folder.
pub const TOKEN_FILE: &str = "hf-token";
/// Environment variable that picks the store (`file` skips the keyring).
pub const TOKEN_STORE_ENV: &str = "KILN_TOKEN_STORE";

/// Where a token was saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenLocation {
    /// The OS keyring.
    Keyring,
    /// The fallback file (path), because the keyring was not usable (reason).
    File(PathBuf, String),
}

fn keyring_enabled() -> bool {
    std::env::var(TOKEN_STORE_ENV).map_or(true, |v| v.trim() != "file")
}

fn keyring_entry() -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, USER).map_err(|e| e.to_string())
}

/// The fallback file in `config_dir`.
pub fn token_file(config_dir: &Path) -> PathBuf {
    config_dir.join(TOKEN_FILE)
}

/// The saved token: from the keyring, else from the fallback file. Talks to the keyring
/// daemon: call off the UI thread.
pub fn load_token(config_dir: &Path) -> Option<String> {
    if keyring_enabled()
        && let Ok(entry) = keyring_entry()
        && let Ok(token) = entry.get_password()
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_owned());
    }
    std::fs::read_to_string(token_file(config_dir))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Saves the token in the keyring, else in the 0600 fallback file. Call off the UI thread.
pub fn save_token(config_dir: &Path, token: &str) -> anyhow::Result<TokenLocation> {
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "the token is empty");
    let reason = if keyring_enabled() {
        match keyring_entry().and_then(|e| e.set_password(token).map_err(|e| e.to_string())) {
            Ok(()) => {
                // A stale copy in the file must not win over the keyring later.
                std::fs::remove_file(token_file(config_dir)).ok();
                return Ok(TokenLocation::Keyring);
            }
            Err(reason) => reason,
        }
    } else {
        format!("{TOKEN_STORE_ENV}=file")
    };
    let path = token_file(config_dir);
    write_private(&path, token.as_bytes())?;
    Ok(TokenLocation::File(path, reason))
}

/// Forgets the token (keyring and file). Call off the UI thread.
pub fn delete_token(config_dir: &Path) -> anyhow::Result<()> {
    if keyring_enabled()
        && let Ok(entry) = keyring_entry()
    {
        // No entry, or no keyring at all: nothing to forget there.
        entry.delete_credential().ok();
    }
    match std::fs::remove_file(token_file(config_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", token_file(config_dir).display()))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temp file created with mode 0600 (Unix), then renames.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create folder {}", parent.display()))?;
    let temp = path.with_file_name(format!(".{TOKEN_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        std::fs::remove_file(&temp).ok(); // Best effort: the write already failed.
        return Err(e).with_context(|| format!("cannot write {}", temp.display()));
    }
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip_is_private() {
        // The keyring is skipped through the environment in this test binary only when asked;
        // write_private is what the fallback uses, tested directly.
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(dir.path());
        write_private(&path, b"hf_abc").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hf_abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }
}
