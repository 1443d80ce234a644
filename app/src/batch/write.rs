//! Writing outputs so that there are never half-written files and never two copies: the bytes
//! go to a private temp file, are synced, then hard-linked to the final name (which fails if
//! the name exists, so a finished output is never replaced), and the folder is synced.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// How a write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The file is ours.
    New,
    /// The name existed already (another process finished the same input): nothing written.
    Existed,
}

/// Writes `bytes` to `target` through `temp` (same file system, e.g. the output folder's
/// `.kiln-batch/tmp/`); never replaces an existing `target`. `temp` is gone afterwards.
pub fn write_new(target: &Path, temp: &Path, bytes: &[u8]) -> std::io::Result<Written> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let result = write_then_link(target, temp, bytes);
    std::fs::remove_file(temp).ok();
    result
}

fn write_then_link(target: &Path, temp: &Path, bytes: &[u8]) -> std::io::Result<Written> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    match std::fs::hard_link(temp, target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Written::Existed),
        Err(e) => {
            // File systems without hard links: a rename is atomic too, but replaces, so look
            // first (the claim keeps other Kiln processes away meanwhile).
            if target.exists() {
                return Ok(Written::Existed);
            }
            std::fs::rename(temp, target).map_err(|_| e)?;
        }
    }
    sync_dir(target);
    Ok(Written::New)
}

/// Makes the new name durable (power loss): syncs the folder on Unix; elsewhere a no-op.
fn sync_dir(target: &Path) {
    #[cfg(unix)]
    if let Some(parent) = target.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        dir.sync_all().ok();
    }
    #[cfg(not(unix))]
    let _unused = target;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_once_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/out.png");
        let temp = dir.path().join("t.part");
        assert_eq!(write_new(&target, &temp, b"first").unwrap(), Written::New);
        assert_eq!(
            write_new(&target, &temp, b"second").unwrap(),
            Written::Existed
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert!(!temp.exists());
    }
}
