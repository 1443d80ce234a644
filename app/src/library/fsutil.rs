//! Small file-system helpers shared by the library modules: atomic writes and modification times.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// Distinguishes temp files written by several threads of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file name next to `path`, unique within this process and among processes.
fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Creates `path`'s folder and writes `bytes` to a synced temp file next to `path`: its name,
/// and whether the write worked.
fn write_temp(path: &Path, bytes: &[u8]) -> anyhow::Result<(PathBuf, std::io::Result<()>)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    let temp = temp_path_for(path);
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    Ok((temp, written))
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, synced, then renamed
/// over `path`. Creates the parent folder. Readers see the old file or the new one, never half.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (temp, written) = write_temp(path, bytes)?;
    if let Err(e) = written {
        std::fs::remove_file(&temp).ok(); // Best effort: the write already failed.
        return Err(e).with_context(|| format!("cannot write {}", temp.display()));
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        std::fs::remove_file(&temp).ok(); // Best effort: the rename already failed.
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Writes `bytes` to a new file `path` atomically, never replacing an existing one: a temp file
/// in the same folder, synced, then hard-linked to `path` (which fails when `path` exists).
pub(crate) fn atomic_create(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (temp, written) = write_temp(path, bytes)?;
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    std::fs::remove_file(&temp).ok(); // Best effort: the link (or the failure) is what counts.
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!("{} already exists; choose another name", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

/// Modification time in nanoseconds since the Unix epoch (0 when unknown or earlier).
pub(crate) fn mtime_nanos(metadata: &std::fs::Metadata) -> u128 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Modification time in whole seconds since the Unix epoch (0 when unknown or earlier).
pub(crate) fn mtime_unix(metadata: &std::fs::Metadata) -> i64 {
    i64::try_from(mtime_nanos(metadata) / 1_000_000_000).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_create_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("clip.gif");
        atomic_create(&path, b"one").unwrap();
        let e = atomic_create(&path, b"two").unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("a.txt");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
