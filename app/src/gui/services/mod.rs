//! Background work for the UI, each concern on its own thread with channels polled in `logic`:
//! one-off tasks, token counting, the gallery index, thumbnails, and the worker's saver and
//! runner.

pub mod batch;
pub mod clipboard;
pub mod comic;
pub mod downloads;
pub mod gallery;
pub mod job_runner;
pub mod portrait;
pub mod presets;
pub mod saver;
pub mod tasks;
pub mod thumbnails;
pub mod tokens;
pub mod video;

use crate::worker::Runner;
use kiln_inference::{CancelToken, Engine, Output, Progress, Recipe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Settings the worker's engine follows from one job to the next (set by the UI thread).
#[derive(Clone, Debug, Default)]
pub struct RunnerSwitches {
    /// Live previews on.
    pub previews: Arc<AtomicBool>,
    /// Weight precision: 0 fp32, 1 bf16, 2 int8 (a change reloads the model at the next job).
    pub precision: Arc<AtomicU8>,
    /// Compute device: 0 auto, 1 CPU, 2 GPU (a change reloads the model at the next job).
    pub device: Arc<AtomicU8>,
}

impl RunnerSwitches {
    /// Switches set as `settings` say.
    pub fn from_settings(settings: &crate::library::settings::Settings) -> Self {
        let switches = RunnerSwitches::default();
        switches.update(settings);
        switches
    }

    /// Follows changed settings.
    pub fn update(&self, settings: &crate::library::settings::Settings) {
        use crate::library::settings::Precision;
        self.previews.store(settings.previews, Ordering::Relaxed);
        let code = match settings.precision {
            Precision::Fp32 => 0,
            Precision::Bf16 => 1,
            Precision::Int8 => 2,
        };
        self.precision.store(code, Ordering::Relaxed);
        let device = match settings.device {
            crate::library::settings::ComputeDevice::Auto => 0,
            crate::library::settings::ComputeDevice::Cpu => 1,
            crate::library::settings::ComputeDevice::Gpu => 2,
        };
        self.device.store(device, Ordering::Relaxed);
    }
}

/// The real runner: the inference [`Engine`], with previews and precision switchable between
/// jobs.
pub struct EngineRunner {
    engine: Engine,
    switches: RunnerSwitches,
}

impl EngineRunner {
    /// An engine following `switches`; TAESD weights for sharper previews are looked up in
    /// `taesd_dirs` (the model folders).
    pub fn new(switches: RunnerSwitches, taesd_dirs: Vec<std::path::PathBuf>) -> Self {
        let mut engine = Engine::new();
        // pre=depth|lineart|scribble find their networks in the model folders too.
        engine.preprocessors.model_dirs = taesd_dirs.clone();
        engine.taesd_dirs = taesd_dirs;
        EngineRunner { engine, switches }
    }

    /// Previews and precision as the settings say now.
    fn follow_switches(&mut self) {
        self.engine.previews = self.switches.previews.load(Ordering::Relaxed);
        use kiln_inference::engine::Precision;
        self.engine.precision = match self.switches.precision.load(Ordering::Relaxed) {
            1 => Precision::Bf16,
            2 => Precision::Int8,
            _ => Precision::F32,
        };
        self.engine.compute = match self.switches.device.load(Ordering::Relaxed) {
            1 => kiln_inference::gpu::ComputeDevice::Cpu,
            2 => kiln_inference::gpu::ComputeDevice::Wgpu,
            _ => kiln_inference::gpu::ComputeDevice::Auto,
        };
    }
}

impl Runner for EngineRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.follow_switches();
        self.engine.run(recipe, on_progress, cancel)
    }

    fn engine(&mut self) -> Option<&mut Engine> {
        self.follow_switches();
        Some(&mut self.engine)
    }
}

#[cfg(test)]
mod switch_tests {
    use super::*;
    use crate::library::settings::{Precision, Settings};

    #[test]
    fn switches_follow_the_settings() {
        let mut settings = Settings {
            previews: false,
            precision: Precision::Fp32,
            ..Settings::default()
        };
        let switches = RunnerSwitches::from_settings(&settings);
        assert!(!switches.previews.load(Ordering::Relaxed));
        assert_eq!(switches.precision.load(Ordering::Relaxed), 0);
        settings.precision = Precision::Bf16;
        settings.previews = true;
        switches.clone().update(&settings);
        assert_eq!(switches.precision.load(Ordering::Relaxed), 1);
        settings.precision = Precision::Int8;
        switches.update(&settings);
        assert_eq!(switches.precision.load(Ordering::Relaxed), 2);
        assert!(switches.previews.load(Ordering::Relaxed));
    }
}
