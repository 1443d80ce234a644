//! The model library: what is in a models folder (checkpoints, diffusers folders, LoRAs,
//! ControlNets, VAEs, embeddings, IP-Adapters, ONNX models), which family each belongs to and
//! why a file cannot be used; existing A1111/Forge, ComfyUI and Fooocus installs
//! ([`detect_layout`], [`find_external_installs`]); AutoV2 hashes computed in the background
//! ([`HashJobs`]).
//!
//! Classification reads only safetensors headers (a few kB to a few MB), never the weights; the
//! key patterns follow A1111/ComfyUI's own detection and `kiln_inference::io::ldm`.

mod classify;
mod hash_jobs;
mod layout;

pub use hash_jobs::HashJobs;
pub use layout::{ExternalLayout, detect_layout, find_external_installs};

use kiln_inference::io::family::Family;
use std::path::{Path, PathBuf};

/// Deepest sub-folder [`scan_folder`] looks into (the folder itself is depth 0).
const MAX_SCAN_DEPTH: usize = 4;

/// Pickle-based weight files: listed, never loaded.
const PICKLE_EXTENSIONS: [&str; 5] = ["ckpt", "pt", "pth", "bin", "pkl"];

/// What a model file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelFileKind {
    /// A single-file checkpoint (UNet + VAE + text encoders).
    Checkpoint,
    /// A diffusers model folder (`model_index.json`).
    DiffusersFolder,
    /// A LoRA (kohya, PEFT, LoHa, LoKr).
    Lora,
    /// A ControlNet (LDM or diffusers layout).
    ControlNet,
    /// A standalone VAE.
    Vae,
    /// A textual-inversion embedding.
    Embedding,
    /// An IP-Adapter.
    IpAdapter,
    /// An ONNX model (face detection and other vision models).
    Onnx,
    /// Something else, or a file that could not be read.
    Unknown,
}

impl ModelFileKind {
    /// Every kind, in the order the models panel groups them.
    pub const ALL: [ModelFileKind; 9] = [
        ModelFileKind::Checkpoint,
        ModelFileKind::DiffusersFolder,
        ModelFileKind::Lora,
        ModelFileKind::ControlNet,
        ModelFileKind::Vae,
        ModelFileKind::Embedding,
        ModelFileKind::IpAdapter,
        ModelFileKind::Onnx,
        ModelFileKind::Unknown,
    ];

    /// A stable id for translation keys and logs: `checkpoint`, `diffusers`, `lora`,
    /// `controlnet`, `vae`, `embedding`, `ip-adapter`, `onnx`, `unknown`.
    pub fn id(self) -> &'static str {
        match self {
            ModelFileKind::Checkpoint => "checkpoint",
            ModelFileKind::DiffusersFolder => "diffusers",
            ModelFileKind::Lora => "lora",
            ModelFileKind::ControlNet => "controlnet",
            ModelFileKind::Vae => "vae",
            ModelFileKind::Embedding => "embedding",
            ModelFileKind::IpAdapter => "ip-adapter",
            ModelFileKind::Onnx => "onnx",
            ModelFileKind::Unknown => "unknown",
        }
    }

    /// Whether Kiln can generate with it as the base model.
    pub fn is_base_model(self) -> bool {
        matches!(
            self,
            ModelFileKind::Checkpoint | ModelFileKind::DiffusersFolder
        )
    }
}

/// One model found on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelEntry {
    /// The file, or the folder of a diffusers model.
    pub path: PathBuf,
    /// Display name: file stem, or the folder name for diffusers folders and generic file
    /// names such as `diffusion_pytorch_model.safetensors`.
    pub name: String,
    /// What it is.
    pub kind: ModelFileKind,
    /// Family, when it can be told from the header.
    pub family: Option<Family>,
    /// Size on disk (a folder: all its files).
    pub size_bytes: u64,
    /// Why it cannot be used (pickle, damaged file, unsupported model …); `None` when usable.
    pub problem: Option<String>,
    /// AutoV2 hash, filled in later from [`HashJobs`].
    pub hash: Option<String>,
}

impl ModelEntry {
    /// Whether the entry can be used (no problem found).
    pub fn usable(&self) -> bool {
        self.problem.is_none()
    }
}

/// File stems that say nothing about the model; the parent folder names it instead.
const GENERIC_STEMS: [&str; 5] = [
    "diffusion_pytorch_model",
    "model",
    "pytorch_lora_weights",
    "adapter_model",
    "pytorch_model",
];

/// Display name of a model file: its stem, or its folder's name when the stem is generic.
fn display_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = stem.split('.').next().unwrap_or_default();
    if GENERIC_STEMS.contains(&base)
        && let Some(folder) = path.parent().and_then(Path::file_name)
    {
        return folder.to_string_lossy().into_owned();
    }
    stem
}

fn lowercase_extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Lists the models under `dir` (sub-folders to depth 4, hidden ones skipped, symlinks
/// followed), sorted by name (case-insensitive), then path. A folder with `model_index.json` is
/// one diffusers model; `.safetensors` files are classified from their header; pickles
/// (`.ckpt`, `.pt`, `.pth`, `.bin`, `.pkl`) are listed with a problem; `.onnx` files as ONNX.
/// Other files are ignored, unreadable folders skipped; a missing `dir` gives an empty list.
///
/// Reads headers and folder listings: call off the UI thread.
pub fn scan_folder(dir: &Path) -> Vec<ModelEntry> {
    let mut entries = Vec::new();
    if dir.join("model_index.json").is_file() {
        entries.push(classify::diffusers_folder(dir));
    } else {
        walk(dir, 0, &mut entries);
    }
    entries.sort_by(|a, b| (a.name.to_lowercase(), &a.path).cmp(&(b.name.to_lowercase(), &b.path)));
    entries
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<ModelEntry>) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        // `metadata` follows symlinks: linked model folders are common.
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if path.join("model_index.json").is_file() {
                out.push(classify::diffusers_folder(&path));
            } else if depth < MAX_SCAN_DEPTH {
                walk(&path, depth + 1, out);
            }
            continue;
        }
        let extension = lowercase_extension(&path);
        let entry = match extension.as_str() {
            "safetensors" | "sft" => classify::safetensors_file(&path, metadata.len()),
            "onnx" => ModelEntry {
                name: display_name(&path),
                kind: ModelFileKind::Onnx,
                family: None,
                size_bytes: metadata.len(),
                problem: None,
                hash: None,
                path,
            },
            ext if PICKLE_EXTENSIONS.contains(&ext) => classify::pickle_file(&path, metadata.len()),
            _ => continue,
        };
        out.push(entry);
    }
}

#[cfg(test)]
mod tests;
