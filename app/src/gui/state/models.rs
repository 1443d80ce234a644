//! What the Models panel shows: the scanned model files, detected external installs (A1111,
//! ComfyUI, Fooocus) and AutoV2 hashes as they arrive from the background hasher.

use crate::library::models::{ExternalLayout, ModelEntry};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// The Models panel's state.
#[derive(Default)]
pub struct ModelsState {
    /// Model files found in the model folders.
    pub entries: Vec<ModelEntry>,
    /// Other apps' installs found on this machine.
    pub externals: Vec<ExternalLayout>,
    /// Whether a scan is running.
    pub scanning: bool,
    /// Whether a scan has finished at least once.
    pub scanned: bool,
    /// AutoV2 hashes (or why they failed) by model path.
    pub hashes: HashMap<PathBuf, Result<String, String>>,
    /// Hashes asked for.
    pub hash_requested: HashSet<PathBuf>,
    /// Scan errors (unreadable folders).
    pub errors: Vec<String>,
}

impl ModelsState {
    /// The entries usable as a generation model (checkpoints without a problem).
    pub fn checkpoints(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.kind.is_base_model() && entry.usable())
    }

    /// The entry of `path`, if scanned.
    pub fn entry(&self, path: &std::path::Path) -> Option<&ModelEntry> {
        self.entries.iter().find(|entry| entry.path == path)
    }

    /// The hash of `path`: from the scan, else from the hasher.
    pub fn hash(&self, path: &std::path::Path) -> Option<&str> {
        if let Some(hash) = self.entry(path).and_then(|e| e.hash.as_deref()) {
            return Some(hash);
        }
        match self.hashes.get(path) {
            Some(Ok(hash)) => Some(hash),
            _ => None,
        }
    }
}
