//! Finding the inputs: a sorted, stable walk of the input folder (subfolders included), images
//! told by their content, stable hashes of relative paths (shards, seeds), and readiness in
//! watch mode (a file still being written is not taken).

use super::load::{IMAGE_EXTENSIONS, Sniffed, sniff};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// Size and modification time: a file whose stamp changed is a different file.
pub type Stamp = (u64, Option<SystemTime>);

/// One input file.
#[derive(Clone, Debug, PartialEq)]
pub struct InputFile {
    /// Path relative to the input folder, `/`-separated (the file's identity in a batch).
    pub rel: String,
    /// Full path.
    pub path: PathBuf,
    /// Size and modification time when scanned.
    pub stamp: Stamp,
}

/// What a scan found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanResult {
    /// Inputs, sorted by relative path.
    pub inputs: Vec<InputFile>,
    /// Files that are not images (by content and name), sorted; never touched.
    pub ignored: Vec<String>,
}

/// Names never taken: hidden files and the partial files of browsers and copy tools.
fn skipped_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    name.starts_with('.')
        || name.ends_with('~')
        || [
            ".part",
            ".crdownload",
            ".download",
            ".tmp",
            ".partial",
            ".kiln-tmp",
        ]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str()))
}

/// Remembers sniffing results by stamp, so watch mode reads each file's head once.
#[derive(Debug, Default)]
pub struct SniffCache {
    known: HashMap<String, (Stamp, bool)>,
}

impl SniffCache {
    /// Whether `path` is an input: an image by content, or named like one (it then fails with
    /// a reason). Unreadable files named like images are inputs too (they fail as unreadable).
    fn is_input(&mut self, rel: &str, path: &Path, name: &str, stamp: Stamp) -> bool {
        if let Some((known_stamp, answer)) = self.known.get(rel)
            && *known_stamp == stamp
        {
            return *answer;
        }
        let answer = match sniff(path) {
            Ok(Sniffed::Image(_) | Sniffed::OtherImage(_)) => true,
            Ok(Sniffed::Empty | Sniffed::Other) | Err(_) => has_image_extension(name),
        };
        self.known.insert(rel.to_owned(), (stamp, answer));
        answer
    }
}

/// Walks `input` (sorted, recursive; hidden entries, symlinked folders and `exclude` — the
/// output folder when it lies inside — are skipped).
pub fn scan(
    input: &Path,
    exclude: Option<&Path>,
    cache: &mut SniffCache,
) -> std::io::Result<ScanResult> {
    let mut result = ScanResult::default();
    walk(input, "", exclude, cache, &mut result)?;
    result.inputs.sort_by(|a, b| a.rel.cmp(&b.rel));
    result.ignored.sort();
    Ok(result)
}

/// Like [`scan`], for a chosen list of files under `input` (relative paths): the folder is not
/// walked; names that are not files any more are left out.
pub fn scan_files(input: &Path, names: &[String], cache: &mut SniffCache) -> ScanResult {
    let mut result = ScanResult::default();
    let mut seen = std::collections::HashSet::new();
    for rel in names {
        let rel = rel.replace('\\', "/");
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
        if skipped_name(&name) || !seen.insert(rel.clone()) {
            continue;
        }
        let path = input.join(&rel);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let stamp = (meta.len(), meta.modified().ok());
        if cache.is_input(&rel, &path, &name, stamp) {
            result.inputs.push(InputFile { rel, path, stamp });
        } else {
            result.ignored.push(rel);
        }
    }
    result.inputs.sort_by(|a, b| a.rel.cmp(&b.rel));
    result.ignored.sort();
    result
}

fn walk(
    dir: &Path,
    prefix: &str,
    exclude: Option<&Path>,
    cache: &mut SniffCache,
    result: &mut ScanResult,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped_name(&name) {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if exclude.is_some_and(|ex| same_path(&path, ex)) {
                continue;
            }
            // A folder that vanished or cannot be read is left out, not fatal.
            walk(&path, &format!("{rel}/"), exclude, cache, result).ok();
            continue;
        }
        // Follows a symlink to a file; a symlink to a folder is skipped (no loops).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let stamp = (meta.len(), meta.modified().ok());
        if cache.is_input(&rel, &path, &name, stamp) {
            result.inputs.push(InputFile { rel, path, stamp });
        } else {
            result.ignored.push(rel);
        }
    }
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// SHA-256 of a domain tag and a relative path: the stable hash behind shards and seeds (the
/// same on every machine and every run).
pub fn path_hash(domain: &str, rel: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0]);
    hasher.update(rel.as_bytes());
    hasher.finalize().into()
}

fn first_u64(hash: &[u8; 32]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(bytes)
}

/// The seed of an input in per-file mode: a stable hash of its relative path, in A1111's
/// 32-bit range.
pub fn seed_for(rel: &str) -> u64 {
    first_u64(&path_hash("kiln-batch-seed", rel)) & 0xFFFF_FFFF
}

/// `--shard K/N`: this process takes the inputs whose path hash is `K` modulo `N`
/// (`0 ≤ K < N`, as Slurm array ids `0-(N-1)` and Kubernetes completion indexes run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// This shard, `0 ≤ index < count`.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Shard {
    /// Whether input `rel` belongs to this shard.
    pub fn contains(&self, rel: &str) -> bool {
        first_u64(&path_hash("kiln-batch-shard", rel)) % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("--shard wants K/N with 0 ≤ K < N (e.g. 0/4), got {text:?}");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Watch mode: a file is ready when its size and time did not change between two scans and
/// it was last written at least `settle` ago.
#[derive(Debug)]
pub struct Readiness {
    settle: Duration,
    seen: HashMap<String, Stamp>,
}

impl Readiness {
    /// Files must be quiet for `settle`.
    pub fn new(settle: Duration) -> Self {
        Readiness {
            settle,
            seen: HashMap::new(),
        }
    }

    /// Records this scan's stamp of `file` and says whether it is ready.
    pub fn ready(&mut self, file: &InputFile, now: SystemTime) -> bool {
        let previous = self.seen.insert(file.rel.clone(), file.stamp);
        let quiet = match file.stamp.1 {
            Some(modified) => now
                .duration_since(modified)
                .is_ok_and(|age| age >= self.settle),
            None => true,
        };
        previous == Some(file.stamp) && quiet
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shards_partition_every_path_exactly_once() {
        let paths: Vec<String> = (0..500)
            .map(|i| format!("dir{}/img-{i}.jpg", i % 7))
            .collect();
        for n in [1u64, 2, 3, 7] {
            let mut counts = vec![0usize; n as usize];
            for path in &paths {
                let owners: Vec<u64> = (0..n)
                    .filter(|&k| Shard { index: k, count: n }.contains(path))
                    .collect();
                assert_eq!(owners.len(), 1, "{path} in shards {owners:?} of {n}");
                counts[owners[0] as usize] += 1;
            }
            // Roughly balanced.
            for count in counts {
                assert!(count * (n as usize) > 500 / 2, "n={n}: {count}");
            }
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert!("3/3".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn seeds_are_stable_and_differ_per_path() {
        assert_eq!(seed_for("a/b.png"), seed_for("a/b.png"));
        assert_ne!(seed_for("a/b.png"), seed_for("a/c.png"));
        assert!(seed_for("x") <= 0xFFFF_FFFF);
    }

    #[test]
    fn scan_is_sorted_recursive_and_sniffs_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let png = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/init-64.png"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("b.png"), &png).unwrap();
        std::fs::write(root.join("a-no-extension"), &png).unwrap();
        std::fs::write(root.join("sub/c.jpg"), b"text pretending").unwrap();
        std::fs::write(root.join("notes.txt"), b"hello").unwrap();
        std::fs::write(root.join(".hidden.png"), &png).unwrap();
        std::fs::write(root.join("d.png.part"), &png).unwrap();
        std::fs::write(root.join("out/e.png"), &png).unwrap();
        let mut cache = SniffCache::default();
        let found = scan(root, Some(&root.join("out")), &mut cache).unwrap();
        let rels: Vec<&str> = found.inputs.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a-no-extension", "b.png", "sub/c.jpg"]);
        assert_eq!(found.ignored, ["notes.txt"]);
    }

    #[test]
    fn watch_waits_for_a_quiet_file() {
        let mut ready = Readiness::new(Duration::from_secs(2));
        let now = SystemTime::now();
        let file = |size, modified| InputFile {
            rel: "a.png".into(),
            path: PathBuf::from("a.png"),
            stamp: (size, Some(modified)),
        };
        let old = now - Duration::from_secs(60);
        assert!(!ready.ready(&file(10, old), now), "first sight");
        assert!(ready.ready(&file(10, old), now), "unchanged and quiet");
        assert!(!ready.ready(&file(20, now), now), "growing");
        assert!(
            !ready.ready(&file(20, now), now),
            "unchanged but just written"
        );
        assert!(ready.ready(&file(20, now), now + Duration::from_secs(3)));
    }
}
