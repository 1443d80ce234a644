//! diffusers schedulers: Euler, Euler ancestral, DPM++ 2M (Karras), DDIM, LCM.
//! (Work in progress: API skeleton so the crate builds.)

use candle_core::Tensor;
use serde::Deserialize;

use super::rng::TorchRng;
use crate::{Error, Result, SamplerKind};

/// A diffusers `scheduler/scheduler_config.json`.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct SchedulerConfig {
    /// `_class_name`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
}

impl SchedulerConfig {
    /// Parses `scheduler_config.json`.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("invalid scheduler_config.json: {e}")))
    }
    /// SD1.5 `PNDMScheduler` config.
    pub fn sd15_default() -> Self {
        Self::default()
    }
    /// SDXL base `EulerDiscreteScheduler` config.
    pub fn sdxl_default() -> Self {
        Self::default()
    }
}

/// A configured sampler.
#[derive(Debug)]
pub struct Scheduler {
    timesteps: Vec<f64>,
}

impl Scheduler {
    /// Builds the schedule.
    pub fn new(_kind: SamplerKind, _config: &SchedulerConfig, _steps: usize) -> Result<Self> {
        Err(Error::InvalidArgument("scheduler not implemented yet".into()))
    }
    /// UNet timesteps.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }
    /// Steps to run.
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }
    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }
    /// Initial noise scale.
    pub fn init_noise_sigma(&self) -> f64 {
        1.0
    }
    /// Solver order.
    pub fn order(&self) -> usize {
        1
    }
    /// img2img strength.
    pub fn set_strength(&mut self, _strength: f32) -> Result<()> {
        Ok(())
    }
    /// Scales the UNet input.
    pub fn scale_model_input(&self, sample: &Tensor, _index: usize) -> Result<Tensor> {
        Ok(sample.clone())
    }
    /// One sampler step.
    pub fn step(
        &mut self,
        _model_output: &Tensor,
        _index: usize,
        sample: &Tensor,
        _rng: &mut TorchRng,
    ) -> Result<Tensor> {
        Ok(sample.clone())
    }
    /// Noises an image latent.
    pub fn add_noise(&self, original: &Tensor, _noise: &Tensor, _index: usize) -> Result<Tensor> {
        Ok(original.clone())
    }
}
