//! Catalog models on disk: where each file goes in Kiln's model folder, whether a model is
//! installed, downloading all its files, verifying and removing them.
//!
//! Layout (ComfyUI's folder names, so other apps find the files too):
//! `<models>/<kind folder>/<model folder>/<path in the repository>`, where the kind folder is
//! `checkpoints`, `loras`, `controlnet`, `vae`, `ipadapter`, `taggers`, `insightface/models`,
//! `video`, `vae_approx` or `preprocessors`, and the model folder is the catalog's `folder` or
//! the repository's name. Each file keeps a `<file>.sha256` note (sha256sum format) of the
//! checksum it was verified with, so `verify` can check files the catalog has no hash for.

use super::error::DownloadError;
use super::fetch::{Checked, FileJob, check_disk_space, fetch_file, part_path};
use super::hub::{DEFAULT_REVISION, HubOptions, resolve_url};
use super::rate::{RateMeter, eta};
use crate::library::catalog::{CatalogFile, CatalogModel};
use kiln_inference::CancelToken;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Least time between two progress reports.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// The library folder (under the models folder) for a catalog kind.
pub fn kind_folder(kind: &str) -> &'static str {
    match kind {
        "checkpoint" => "checkpoints",
        "lora" => "loras",
        "controlnet" => "controlnet",
        "vae" => "vae",
        "ip-adapter" => "ipadapter",
        "tagger" => "taggers",
        "face" => "insightface/models",
        "instantid" => "instantid",
        "video" => "video",
        "taesd" => "vae_approx",
        "preprocessor" => "preprocessors",
        _ => "other",
    }
}

/// A relative path made of plain names only (no `..`, no root, no drive, no backslash).
fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\\') {
        return None;
    }
    let relative = Path::new(path);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| relative.to_path_buf())
}

/// The model's folder: `<models>/<kind folder>/<folder or repository name>`.
pub fn model_dir(model: &CatalogModel, models_dir: &Path) -> Result<PathBuf, DownloadError> {
    let name = model
        .folder
        .clone()
        .or_else(|| model.repo.rsplit('/').next().map(str::to_owned))
        .unwrap_or_default();
    let name = safe_relative(&name)
        .filter(|p| p.components().count() == 1)
        .ok_or_else(|| {
            DownloadError::Catalog(format!(
                "catalog entry {}: bad folder name {name:?}",
                model.id
            ))
        })?;
    Ok(models_dir.join(kind_folder(&model.kind)).join(name))
}

/// Where one of the model's files goes.
pub fn file_dest(
    model: &CatalogModel,
    file: &CatalogFile,
    models_dir: &Path,
) -> Result<PathBuf, DownloadError> {
    let local = file.local.as_deref().unwrap_or(&file.path);
    let relative = safe_relative(local).ok_or_else(|| {
        DownloadError::Catalog(format!(
            "catalog entry {}: bad file path {local:?}",
            model.id
        ))
    })?;
    if safe_relative(&file.path).is_none() {
        return Err(DownloadError::Catalog(format!(
            "catalog entry {}: bad file path {:?}",
            model.id, file.path
        )));
    }
    Ok(model_dir(model, models_dir)?.join(relative))
}

/// The note next to a file with the SHA-256 it was verified with.
pub fn sha_note_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".sha256");
    dest.with_file_name(name)
}

fn read_sha_note(dest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(sha_note_path(dest)).ok()?;
    let sha = text.split_whitespace().next()?.to_ascii_lowercase();
    (sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit())).then_some(sha)
}

fn write_sha_note(dest: &Path, sha: &str) {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Best effort: the note only helps `verify` later.
    crate::library::fsutil::atomic_write(
        &sha_note_path(dest),
        format!("{sha}  {name}\n").as_bytes(),
    )
    .ok();
}

/// Whether a model is on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallState {
    /// Every file is there (with the expected length, when known).
    Installed,
    /// Some bytes are there (finished files or `.part` files): a download resumes.
    Partial {
        /// Bytes on disk.
        bytes: u64,
    },
    /// Nothing is there.
    Missing,
}

/// Whether `model` is installed under `models_dir`. A few `stat`s.
pub fn install_state(model: &CatalogModel, models_dir: &Path) -> InstallState {
    let mut complete = !model.files.is_empty();
    let mut bytes = 0u64;
    for file in &model.files {
        let Ok(dest) = file_dest(model, file, models_dir) else {
            return InstallState::Missing;
        };
        match std::fs::metadata(&dest) {
            Ok(meta) if meta.is_file() && file.size_bytes.is_none_or(|s| s == meta.len()) => {
                bytes += meta.len();
            }
            _ => {
                complete = false;
                bytes += std::fs::metadata(part_path(&dest)).map_or(0, |m| m.len());
            }
        }
    }
    if complete {
        InstallState::Installed
    } else if bytes > 0 {
        InstallState::Partial { bytes }
    } else {
        InstallState::Missing
    }
}

/// Progress of a model download.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelProgress {
    /// The file being downloaded (path in the repository).
    pub file: String,
    /// Its index, from 0.
    pub file_index: usize,
    /// How many files the model has.
    pub file_count: usize,
    /// Bytes of the model on disk so far (finished files, resumed parts and new bytes).
    pub done_bytes: u64,
    /// All the model's bytes (exact once every length is known, else partly the catalog's
    /// approximate sizes).
    pub total_bytes: u64,
    /// Download speed over the last seconds.
    pub bytes_per_sec: f64,
    /// Time left at that speed.
    pub eta: Option<Duration>,
}

/// One file of a finished download.
#[derive(Clone, Debug, PartialEq)]
pub struct FileReport {
    /// Where it is.
    pub dest: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// Whether it was there already (nothing downloaded).
    pub already_there: bool,
    /// What its SHA-256 was checked against (`None` when it was there already).
    pub checked: Option<Checked>,
    /// Bytes resumed from an earlier, interrupted download.
    pub resumed_from: u64,
}

/// Size of a catalog file as best known: exact, else the Hub's rounded MB, else 0.
fn estimated_size(file: &CatalogFile) -> u64 {
    file.size_bytes
        .or(file.approx_size_mb.map(|mb| mb.saturating_mul(1_000_000)))
        .unwrap_or(0)
}

/// Downloads every file of `model` that is not there yet into `models_dir` (see the module
/// docs): free space checked first, then each file fetched, resumed, retried and verified
/// ([`fetch_file`]). `on_progress` is called at most every 100 ms and after each file.
pub fn download_model(
    model: &CatalogModel,
    models_dir: &Path,
    options: &HubOptions,
    cancel: &CancelToken,
    on_progress: &mut dyn FnMut(&ModelProgress),
) -> Result<Vec<FileReport>, DownloadError> {
    if model.files.is_empty() {
        return Err(DownloadError::Catalog(format!(
            "catalog entry {} lists no files",
            model.id
        )));
    }
    if model.repo.split('/').count() != 2 || model.repo.split('/').any(str::is_empty) {
        return Err(DownloadError::Catalog(format!(
            "catalog entry {}: bad repository {:?}",
            model.id, model.repo
        )));
    }
    struct Planned<'a> {
        file: &'a CatalogFile,
        dest: PathBuf,
        present: Option<u64>,
        size: u64,
    }
    let mut plan = Vec::new();
    for file in &model.files {
        let dest = file_dest(model, file, models_dir)?;
        let present = std::fs::metadata(&dest)
            .ok()
            .filter(|m| m.is_file() && file.size_bytes.is_none_or(|s| s == m.len()))
            .map(|m| m.len());
        let size = present.unwrap_or_else(|| estimated_size(file));
        plan.push(Planned {
            file,
            dest,
            present,
            size,
        });
    }
    let dir = model_dir(model, models_dir)?;
    if options.check_disk_space {
        let needed: u64 = plan
            .iter()
            .filter(|p| p.present.is_none())
            .map(|p| {
                let part = std::fs::metadata(part_path(&p.dest)).map_or(0, |m| m.len());
                p.size.saturating_sub(part)
            })
            .sum();
        check_disk_space(&dir, needed)?;
    }
    let agent = options.agent().map_err(DownloadError::Catalog)?;
    let revision = model.revision.as_deref().unwrap_or(DEFAULT_REVISION);
    let file_count = plan.len();
    let mut sizes: Vec<u64> = plan.iter().map(|p| p.size).collect();
    let mut reports = Vec::new();
    let mut meter: Option<RateMeter> = None;
    let mut last_report: Option<Instant> = None;
    for (index, planned) in plan.iter().enumerate() {
        let done_before: u64 = sizes.iter().take(index).sum();
        if let Some(bytes) = planned.present {
            reports.push(FileReport {
                dest: planned.dest.clone(),
                bytes,
                already_there: true,
                checked: None,
                resumed_from: 0,
            });
            continue;
        }
        let job = FileJob {
            url: resolve_url(&options.endpoint, &model.repo, revision, &planned.file.path),
            dest: planned.dest.clone(),
            sha256: planned.file.sha256.clone(),
            size: planned.file.size_bytes,
        };
        let mut on_bytes = |bytes: u64, total: Option<u64>| {
            if let Some(total) = total
                && let Some(size) = sizes.get_mut(index)
            {
                *size = total;
            }
            let now = Instant::now();
            let done = done_before + bytes;
            let meter = meter.get_or_insert_with(|| RateMeter::new(now, done));
            meter.record(now, done);
            if last_report.is_some_and(|t| now.duration_since(t) < REPORT_EVERY) {
                return;
            }
            last_report = Some(now);
            let total_bytes: u64 = sizes.iter().sum::<u64>().max(done);
            let speed = meter.bytes_per_sec();
            on_progress(&ModelProgress {
                file: planned.file.path.clone(),
                file_index: index,
                file_count,
                done_bytes: done,
                total_bytes,
                bytes_per_sec: speed,
                eta: eta(total_bytes.saturating_sub(done), speed),
            });
        };
        let done = fetch_file(&agent, options, &job, cancel, &mut on_bytes)?;
        if let Some(size) = sizes.get_mut(index) {
            *size = done.bytes;
        }
        if done.checked != Checked::Unchecked {
            write_sha_note(&planned.dest, &done.sha256);
        }
        reports.push(FileReport {
            dest: planned.dest.clone(),
            bytes: done.bytes,
            already_there: false,
            checked: Some(done.checked),
            resumed_from: done.resumed_from,
        });
    }
    for planned in plan.iter().filter(|p| p.file.convert) {
        let converted = kiln_inference::io::convert::converted_path(&planned.dest);
        if !converted.is_file() {
            kiln_inference::io::convert::torch_to_safetensors(&planned.dest, &converted).map_err(
                |e| DownloadError::Catalog(format!("converting {}: {e}", planned.file.path)),
            )?;
        }
    }
    let total: u64 = sizes.iter().sum();
    on_progress(&ModelProgress {
        file: plan.last().map(|p| p.file.path.clone()).unwrap_or_default(),
        file_index: file_count.saturating_sub(1),
        file_count,
        done_bytes: total,
        total_bytes: total,
        bytes_per_sec: meter.as_ref().map_or(0.0, RateMeter::bytes_per_sec),
        eta: Some(Duration::ZERO),
    });
    Ok(reports)
}

/// What `verify` found for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Its SHA-256 matches the catalog's (or the one noted at download).
    Verified,
    /// It is there, with the right length when known, but there is no SHA-256 to check against.
    Unchecked,
    /// Not on disk (a `.part` file may hold some bytes).
    Missing,
    /// Wrong length.
    WrongSize {
        /// Expected length.
        expected: u64,
        /// Length on disk.
        actual: u64,
    },
    /// Wrong SHA-256.
    WrongChecksum {
        /// Expected SHA-256.
        expected: String,
        /// SHA-256 on disk.
        actual: String,
    },
    /// It could not be read.
    Unreadable(String),
}

impl FileStatus {
    /// Whether the file is fine (verified or at least complete).
    pub fn ok(&self) -> bool {
        matches!(self, FileStatus::Verified | FileStatus::Unchecked)
    }
}

/// SHA-256 of a file, stopping early when cancelled.
pub fn sha256_file(path: &Path, cancel: &CancelToken) -> Result<String, DownloadError> {
    let io = |e| DownloadError::io("reading", path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Checks every file of `model`: length, then SHA-256 against the catalog or the note written
/// at download. Reads whole files: call off the UI thread.
pub fn verify_model(
    model: &CatalogModel,
    models_dir: &Path,
    cancel: &CancelToken,
) -> Result<Vec<(PathBuf, FileStatus)>, DownloadError> {
    let mut out = Vec::new();
    for file in &model.files {
        let dest = file_dest(model, file, models_dir)?;
        let status = match std::fs::metadata(&dest) {
            Err(_) => FileStatus::Missing,
            Ok(meta) if !meta.is_file() => FileStatus::Missing,
            Ok(meta) => match file.size_bytes {
                Some(expected) if expected != meta.len() => FileStatus::WrongSize {
                    expected,
                    actual: meta.len(),
                },
                _ => {
                    let expected = file
                        .sha256
                        .as_ref()
                        .map(|s| s.to_ascii_lowercase())
                        .or_else(|| read_sha_note(&dest));
                    match expected {
                        None => FileStatus::Unchecked,
                        Some(expected) => match sha256_file(&dest, cancel) {
                            Err(DownloadError::Cancelled) => return Err(DownloadError::Cancelled),
                            Err(e) => FileStatus::Unreadable(e.to_string()),
                            Ok(actual) if actual == expected => FileStatus::Verified,
                            Ok(actual) => FileStatus::WrongChecksum { expected, actual },
                        },
                    }
                }
            },
        };
        out.push((dest, status));
    }
    Ok(out)
}

/// Removes the model's files (and `.part` files and checksum notes), then its folders while
/// they are empty, up to the models folder. Returns the files removed.
pub fn remove_model(
    model: &CatalogModel,
    models_dir: &Path,
) -> Result<Vec<PathBuf>, DownloadError> {
    let mut removed = Vec::new();
    let mut dirs = Vec::new();
    for file in &model.files {
        let dest = file_dest(model, file, models_dir)?;
        for path in [part_path(&dest), sha_note_path(&dest), dest.clone()] {
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DownloadError::io("removing", &path, e)),
            }
        }
        if let Some(parent) = dest.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    // Deepest first; stop at the models folder. Folders that are not empty stay.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let mut current = Some(dir.as_path());
        while let Some(dir) = current {
            if dir == models_dir
                || !dir.starts_with(models_dir)
                || std::fs::remove_dir(dir).is_err()
            {
                break;
            }
            current = dir.parent();
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::catalog::Catalog;

    #[test]
    fn files_land_in_kind_folders() {
        let catalog = Catalog::builtin();
        let models = Path::new("/m");
        let base = catalog.get("sdxl-base-1.0").unwrap();
        let file = base.files.first().unwrap();
        assert_eq!(
            file_dest(base, file, models).unwrap(),
            PathBuf::from("/m/checkpoints/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors")
        );
        let tagger = catalog.get("tagger-wd-swinv2-v3").unwrap();
        let onnx = tagger.files.first().unwrap();
        assert_eq!(
            file_dest(tagger, onnx, models).unwrap(),
            PathBuf::from("/m/taggers/wd-swinv2-tagger-v3/model.onnx")
        );
        // Every built-in entry has a valid layout, and no two entries share a file.
        let mut seen = std::collections::HashSet::new();
        for model in &catalog.models {
            assert_ne!(kind_folder(&model.kind), "other", "{}", model.id);
            for file in &model.files {
                let dest = file_dest(model, file, models).unwrap();
                assert!(
                    seen.insert(dest.clone()),
                    "{} shares {}",
                    model.id,
                    dest.display()
                );
            }
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let mut model = CatalogModel {
            id: "x".into(),
            kind: "lora".into(),
            repo: "a/b".into(),
            files: vec![CatalogFile {
                path: "../../etc/passwd".into(),
                ..CatalogFile::default()
            }],
            ..CatalogModel::default()
        };
        let file = model.files.first().unwrap().clone();
        assert!(file_dest(&model, &file, Path::new("/m")).is_err());
        model.folder = Some("..".into());
        let ok_file = CatalogFile {
            path: "a.safetensors".into(),
            ..CatalogFile::default()
        };
        assert!(file_dest(&model, &ok_file, Path::new("/m")).is_err());
        assert!(safe_relative("/abs").is_none());
        assert!(safe_relative("a\\b").is_none());
        assert!(safe_relative("dir/file.onnx").is_some());
    }

    #[test]
    fn state_verify_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let content = b"weights".to_vec();
        let sha = format!("{:x}", Sha256::digest(&content));
        let model = CatalogModel {
            id: "tiny".into(),
            kind: "lora".into(),
            repo: "kiln/tiny".into(),
            files: vec![
                CatalogFile {
                    path: "tiny.safetensors".into(),
                    sha256: Some(sha.clone()),
                    size_bytes: Some(content.len() as u64),
                    ..CatalogFile::default()
                },
                CatalogFile {
                    path: "sub/config.json".into(),
                    local: Some("config.json".into()),
                    ..CatalogFile::default()
                },
            ],
            ..CatalogModel::default()
        };
        assert_eq!(install_state(&model, &models), InstallState::Missing);
        let weights = file_dest(&model, model.files.first().unwrap(), &models).unwrap();
        let config = file_dest(&model, model.files.get(1).unwrap(), &models).unwrap();
        assert_eq!(config, models.join("loras/tiny/config.json"));
        std::fs::create_dir_all(weights.parent().unwrap()).unwrap();
        std::fs::write(part_path(&weights), b"wei").unwrap();
        assert_eq!(
            install_state(&model, &models),
            InstallState::Partial { bytes: 3 }
        );
        std::fs::write(&weights, &content).unwrap();
        std::fs::write(&config, b"{}").unwrap();
        std::fs::remove_file(part_path(&weights)).unwrap();
        assert_eq!(install_state(&model, &models), InstallState::Installed);

        let cancel = CancelToken::default();
        let statuses = verify_model(&model, &models, &cancel).unwrap();
        assert_eq!(
            statuses.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            [FileStatus::Verified, FileStatus::Unchecked]
        );
        // A note written at download makes the second file checkable; a changed byte shows.
        write_sha_note(&config, &format!("{:x}", Sha256::digest(b"{}")));
        std::fs::write(&weights, b"weightz").unwrap();
        let statuses = verify_model(&model, &models, &cancel).unwrap();
        assert!(matches!(
            statuses.first().unwrap().1,
            FileStatus::WrongChecksum { .. }
        ));
        assert_eq!(statuses.get(1).unwrap().1, FileStatus::Verified);

        let removed = remove_model(&model, &models).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}"); // two files and one note
        assert!(!models.join("loras").exists(), "empty folders are removed");
        assert!(models.exists(), "the models folder stays");
    }
}
