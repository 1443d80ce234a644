//! Background work for the UI, each concern on its own thread with channels polled in `logic`:
//! one-off tasks, token counting, the gallery index, thumbnails, and the worker's saver and
//! runner.

pub mod clipboard;
pub mod gallery;
pub mod job_runner;
pub mod presets;
pub mod saver;
pub mod tasks;
pub mod thumbnails;
pub mod tokens;

use crate::worker::Runner;
use kiln_inference::{CancelToken, Engine, Output, Progress, Recipe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The real runner: the inference [`Engine`], with live previews switchable between jobs.
pub struct EngineRunner {
    engine: Engine,
    previews: Arc<AtomicBool>,
}

impl EngineRunner {
    /// An engine whose previews follow `previews`; TAESD weights for sharper previews are
    /// looked up in `taesd_dirs` (the model folders).
    pub fn new(previews: Arc<AtomicBool>, taesd_dirs: Vec<std::path::PathBuf>) -> Self {
        let mut engine = Engine::new();
        engine.taesd_dirs = taesd_dirs;
        EngineRunner { engine, previews }
    }
}

impl Runner for EngineRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.engine.previews = self.previews.load(Ordering::Relaxed);
        self.engine.run(recipe, on_progress, cancel)
    }
}
