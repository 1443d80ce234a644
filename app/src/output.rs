//! Output files: PNG with metadata, atomic writes, never overwriting without being asked.

use anyhow::{Context, bail};
use kiln_inference::engine::Output;
use kiln_inference::io::png_meta;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// PNG bytes of an output with A1111 `parameters` and the Kiln recipe embedded.
pub fn encode_output(output: &Output) -> anyhow::Result<Vec<u8>> {
    let parameters = png_meta::a1111_parameters(&output.recipe, &[]);
    let recipe_json = serde_json::to_string(&output.recipe)?;
    Ok(png_meta::encode_png(
        &output.image,
        &parameters,
        &recipe_json,
    )?)
}

/// `name.png` → `name-{n}.png`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| format!(".{}", s.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{n}{ext}"))
}

/// One output slot: a claimed temp file and the wanted final name.
#[derive(Debug)]
pub struct Target {
    temp: PathBuf,
    wanted: PathBuf,
    overwrite: bool,
}

impl Target {
    /// Writes the bytes to the temp file, then moves it into place atomically. Without
    /// overwrite, an existing file is never replaced: the next free `name-N.png` is used.
    pub fn commit(&self, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.temp)
            .with_context(|| format!("cannot write {}", self.temp.display()))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("cannot write {} (disk full?)", self.temp.display()))?;
        drop(file);
        if self.overwrite {
            std::fs::rename(&self.temp, &self.wanted)
                .with_context(|| format!("cannot write {}", self.wanted.display()))?;
            return Ok(self.wanted.clone());
        }
        for n in 0..10_000 {
            let candidate = if n == 0 {
                self.wanted.clone()
            } else {
                numbered(&self.wanted, n)
            };
            match std::fs::hard_link(&self.temp, &candidate) {
                Ok(()) => {
                    std::fs::remove_file(&self.temp).ok();
                    return Ok(candidate);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(_) if !candidate.exists() => {
                    // File systems without hard links: a rename is still atomic.
                    std::fs::rename(&self.temp, &candidate)
                        .with_context(|| format!("cannot write {}", candidate.display()))?;
                    return Ok(candidate);
                }
                Err(_) => continue,
            }
        }
        bail!("no free file name next to {}", self.wanted.display())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // A temp file left after commit or on failure is removed; the final file stays.
        std::fs::remove_file(&self.temp).ok();
    }
}

/// Output slots for a batch, claimed before any work starts.
#[derive(Debug)]
pub struct OutputPlan {
    targets: Vec<Target>,
}

impl OutputPlan {
    /// Plans `count` outputs named after `path` (`path`, `name-1.png`, …).
    pub fn new(path: &Path, count: usize, overwrite: bool) -> anyhow::Result<Self> {
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !is_png {
            bail!("output must be a .png file, got {}", path.display());
        }
        if path.is_dir() {
            bail!(
                "output {} is a folder; give a file name ending in .png",
                path.display()
            );
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
        let mut targets = Vec::with_capacity(count);
        let mut next = 0usize;
        for i in 0..count {
            let wanted = if overwrite {
                numbered(path, i)
            } else {
                loop {
                    let candidate = numbered(path, next);
                    next += 1;
                    if !candidate.exists() {
                        break candidate;
                    }
                }
            };
            let name = wanted
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = dir.join(format!(".{name}.{}-{i}.kiln-tmp", std::process::id()));
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .with_context(|| format!("cannot write to output folder {}", dir.display()))?;
            targets.push(Target {
                temp,
                wanted,
                overwrite,
            });
        }
        Ok(OutputPlan { targets })
    }

    /// The slots in order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_and_numbers_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, b"user file").unwrap();
        let plan = OutputPlan::new(&path, 2, false).unwrap();
        let a = plan.targets()[0].commit(b"one").unwrap();
        let b = plan.targets()[1].commit(b"two").unwrap();
        assert_eq!(a, dir.path().join("out-1.png"));
        assert_eq!(b, dir.path().join("out-2.png"));
        assert_eq!(std::fs::read(&path).unwrap(), b"user file");
        drop(plan);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".kiln-tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn overwrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, b"old").unwrap();
        let plan = OutputPlan::new(&path, 1, true).unwrap();
        assert_eq!(plan.targets()[0].commit(b"new").unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn rejects_non_png_and_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(OutputPlan::new(&dir.path().join("x.jpg"), 1, false).is_err());
        assert!(OutputPlan::new(Path::new("/proc/kiln-test/x.png"), 1, false).is_err());
    }
}
