//! `scheduler/scheduler_config.json` as diffusers writes it, and how each scheduler class reads it.
//!
//! diffusers builds the scheduler a user picks with `TargetClass.from_config(model_config)`: keys
//! present in the model's JSON (and accepted by the target class) are passed on, every other
//! parameter takes the **target class's** default (the keys the source class had defaulted are
//! listed in `_use_default_values` and dropped). So the fields here are `Option`s: `None` means
//! "absent from the JSON", and [`SchedulerConfig::resolve`] applies the per-class defaults
//! (FORMATS §3.2). Unknown keys are ignored.

use serde::Deserialize;

use crate::{Error, Result, SamplerKind};

/// A diffusers `scheduler_config.json`. `None` = the key was absent (or `null`).
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SchedulerConfig {
    /// `_class_name` of the scheduler the model ships (e.g. `PNDMScheduler`).
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// Training steps `T` (1000 for every SD family).
    pub num_train_timesteps: Option<usize>,
    /// First beta of the training schedule.
    pub beta_start: Option<f64>,
    /// Last beta of the training schedule.
    pub beta_end: Option<f64>,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: Option<String>,
    /// Explicit betas, overriding `beta_start/end/schedule`.
    pub trained_betas: Option<Vec<f64>>,
    /// `epsilon`, `v_prediction` or `sample`.
    pub prediction_type: Option<String>,
    /// `linspace`, `leading` or `trailing`; absent means the target class's default.
    pub timestep_spacing: Option<String>,
    /// Offset added to `leading` timesteps (1 for SD1.5 and SDXL).
    pub steps_offset: Option<i64>,
    /// DDIM/LCM: use ᾱ = 1 (else ᾱ₀) before the first training step.
    pub set_alpha_to_one: Option<bool>,
    /// DDIM/LCM: clamp the predicted x₀ to `±clip_sample_range`.
    pub clip_sample: Option<bool>,
    /// DDIM/LCM clamp range.
    pub clip_sample_range: Option<f64>,
    /// Euler: Karras sigmas (DPM++ 2M takes it from the sampler kind instead).
    pub use_karras_sigmas: Option<bool>,
    /// Euler: `linear` (supported) or `log_linear` (rejected).
    pub interpolation_type: Option<String>,
    /// Zero-terminal-SNR rescaling (rejected when true).
    pub rescale_betas_zero_snr: Option<bool>,
    /// Euler: `discrete` or `continuous` (continuous only changes v-prediction timesteps).
    pub timestep_type: Option<String>,
    /// Euler Karras: lower sigma bound instead of the schedule's.
    pub sigma_min: Option<f64>,
    /// Euler Karras: upper sigma bound instead of the schedule's.
    pub sigma_max: Option<f64>,
    /// Euler/DPM: last sigma `zero` or `sigma_min`.
    pub final_sigmas_type: Option<String>,
    /// DPM: first-order last step when there are fewer than 15 steps.
    pub lower_order_final: Option<bool>,
    /// DPM: always first-order last step.
    pub euler_at_final: Option<bool>,
    /// DDIM/DPM/LCM dynamic thresholding (rejected when true).
    pub thresholding: Option<bool>,
    /// LCM: length of the distillation schedule (50).
    pub original_inference_steps: Option<usize>,
    /// LCM: timestep scaling of the boundary condition (10).
    pub timestep_scaling: Option<f64>,
}

impl SchedulerConfig {
    /// Parses the text of a `scheduler_config.json`. Keys listed in `_use_default_values` (found
    /// in configs dumped from a live diffusers scheduler, never in saved files) count as absent.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let invalid = |e: serde_json::Error| {
            Error::InvalidArgument(format!("invalid scheduler_config.json: {e}"))
        };
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
        if let Some(object) = value.as_object_mut()
            && let Some(serde_json::Value::Array(defaulted)) = object.remove("_use_default_values")
        {
            for key in defaulted.iter().filter_map(|k| k.as_str()) {
                object.remove(key);
            }
        }
        serde_json::from_value(value).map_err(invalid)
    }

    /// The `runwayml/stable-diffusion-v1-5` `PNDMScheduler` config (no `timestep_spacing` key).
    pub fn sd15_default() -> Self {
        Self {
            class_name: "PNDMScheduler".into(),
            num_train_timesteps: Some(1000),
            beta_start: Some(0.00085),
            beta_end: Some(0.012),
            beta_schedule: Some("scaled_linear".into()),
            set_alpha_to_one: Some(false),
            steps_offset: Some(1),
            clip_sample: Some(false),
            ..Self::default()
        }
    }

    /// The `stable-diffusion-xl-base-1.0` `EulerDiscreteScheduler` config (`leading`, offset 1).
    pub fn sdxl_default() -> Self {
        Self {
            class_name: "EulerDiscreteScheduler".into(),
            num_train_timesteps: Some(1000),
            beta_start: Some(0.00085),
            beta_end: Some(0.012),
            beta_schedule: Some("scaled_linear".into()),
            clip_sample: Some(false),
            interpolation_type: Some("linear".into()),
            prediction_type: Some("epsilon".into()),
            set_alpha_to_one: Some(false),
            steps_offset: Some(1),
            timestep_spacing: Some("leading".into()),
            use_karras_sigmas: Some(false),
            ..Self::default()
        }
    }

    /// The parameters diffusers' `from_config` gives the scheduler class of `kind`.
    pub(crate) fn resolve(&self, kind: SamplerKind) -> Result<Resolved> {
        let lcm = kind == SamplerKind::Lcm;
        let leading_default = matches!(kind, SamplerKind::Ddim | SamplerKind::Lcm);
        let betas = match &self.trained_betas {
            Some(betas) => BetaSchedule::Trained(betas.clone()),
            None => {
                let default_schedule = if lcm { "scaled_linear" } else { "linear" };
                let start = self
                    .beta_start
                    .unwrap_or(if lcm { 0.00085 } else { 0.0001 });
                let end = self.beta_end.unwrap_or(if lcm { 0.012 } else { 0.02 });
                match self.beta_schedule.as_deref().unwrap_or(default_schedule) {
                    "linear" => BetaSchedule::Linear { start, end },
                    "scaled_linear" => BetaSchedule::ScaledLinear { start, end },
                    "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
                    other => return Err(unsupported("beta_schedule", other)),
                }
            }
        };
        let prediction = match self.prediction_type.as_deref().unwrap_or("epsilon") {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::Velocity,
            "sample" if kind != SamplerKind::EulerAncestral => Prediction::Sample,
            other => return Err(unsupported("prediction_type", other)),
        };
        let spacing = match self
            .timestep_spacing
            .as_deref()
            .unwrap_or(if leading_default {
                "leading"
            } else {
                "linspace"
            }) {
            "linspace" => Spacing::Linspace,
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            other => return Err(unsupported("timestep_spacing", other)),
        };
        if self.rescale_betas_zero_snr == Some(true) {
            return Err(unsupported("rescale_betas_zero_snr", "true"));
        }
        let uses_thresholding = matches!(
            kind,
            SamplerKind::Ddim
                | SamplerKind::Lcm
                | SamplerKind::DpmPlusPlus2M
                | SamplerKind::DpmPlusPlus2MKarras
        );
        if uses_thresholding && self.thresholding == Some(true) {
            return Err(unsupported("thresholding", "true"));
        }
        let euler = kind == SamplerKind::Euler;
        let dpm = matches!(
            kind,
            SamplerKind::DpmPlusPlus2M | SamplerKind::DpmPlusPlus2MKarras
        );
        if euler && !matches!(self.interpolation_type.as_deref(), None | Some("linear")) {
            return Err(unsupported(
                "interpolation_type",
                self.interpolation_type.as_deref().unwrap_or_default(),
            ));
        }
        let continuous_timesteps = euler
            && match self.timestep_type.as_deref().unwrap_or("discrete") {
                "discrete" => false,
                "continuous" => true,
                other => return Err(unsupported("timestep_type", other)),
            };
        let final_sigma_min = (euler || dpm)
            && match self.final_sigmas_type.as_deref().unwrap_or("zero") {
                "zero" => false,
                "sigma_min" => true,
                other => return Err(unsupported("final_sigmas_type", other)),
            };
        let karras = match kind {
            SamplerKind::Euler => self.use_karras_sigmas.unwrap_or(false),
            SamplerKind::DpmPlusPlus2MKarras => true,
            _ => false,
        };
        let num_train_timesteps = self.num_train_timesteps.unwrap_or(1000);
        if num_train_timesteps < 2 {
            return Err(Error::InvalidArgument(format!(
                "scheduler num_train_timesteps must be at least 2, got {num_train_timesteps}"
            )));
        }
        if let Some(betas) = &self.trained_betas
            && betas.len() != num_train_timesteps
        {
            return Err(Error::InvalidArgument(format!(
                "scheduler trained_betas has {} values, expected num_train_timesteps = {num_train_timesteps}",
                betas.len()
            )));
        }
        Ok(Resolved {
            num_train_timesteps,
            betas,
            prediction,
            spacing,
            steps_offset: self.steps_offset.unwrap_or(0),
            set_alpha_to_one: self.set_alpha_to_one.unwrap_or(true),
            clip_sample: match kind {
                SamplerKind::Ddim => self.clip_sample.unwrap_or(true),
                SamplerKind::Lcm => self.clip_sample.unwrap_or(false),
                _ => false,
            },
            clip_sample_range: self.clip_sample_range.unwrap_or(1.0),
            karras,
            // DPMSolverMultistepScheduler has no sigma_min/sigma_max parameters, but `from_config`
            // keeps keys of compatible classes as hidden config, which its Karras code reads.
            sigma_min: self.sigma_min,
            sigma_max: self.sigma_max,
            continuous_timesteps,
            final_sigma_min,
            lower_order_final: self.lower_order_final.unwrap_or(true),
            euler_at_final: self.euler_at_final.unwrap_or(false),
            original_inference_steps: self.original_inference_steps.unwrap_or(50),
            timestep_scaling: self.timestep_scaling.unwrap_or(10.0),
        })
    }
}

fn unsupported(key: &str, value: &str) -> Error {
    Error::InvalidArgument(format!(
        "scheduler_config.json: {key} = {value} is not supported"
    ))
}

/// How the training betas are made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum BetaSchedule {
    /// `torch.linspace(start, end, T, float32)`.
    Linear { start: f64, end: f64 },
    /// `torch.linspace(√start, √end, T, float32)²`.
    ScaledLinear { start: f64, end: f64 },
    /// Glide cosine schedule (`betas_for_alpha_bar`).
    SquaredCosCapV2,
    /// Given betas.
    Trained(Vec<f64>),
}

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prediction {
    Epsilon,
    Velocity,
    Sample,
}

/// `timestep_spacing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spacing {
    Linspace,
    Leading,
    Trailing,
}

/// Config values as one scheduler class sees them (defaults applied).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Resolved {
    pub num_train_timesteps: usize,
    pub betas: BetaSchedule,
    pub prediction: Prediction,
    pub spacing: Spacing,
    pub steps_offset: i64,
    pub set_alpha_to_one: bool,
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    pub karras: bool,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    pub continuous_timesteps: bool,
    pub final_sigma_min: bool,
    pub lower_order_final: bool,
    pub euler_at_final: bool,
    pub original_inference_steps: usize,
    pub timestep_scaling: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_follows_from_config_rule() {
        let sd15 = SchedulerConfig::sd15_default();
        let sdxl = SchedulerConfig::sdxl_default();
        let spacing = |c: &SchedulerConfig, k| c.resolve(k).expect("resolve").spacing;
        // SD1.5's PNDM JSON has no timestep_spacing: each class keeps its own default.
        assert_eq!(spacing(&sd15, SamplerKind::Euler), Spacing::Linspace);
        assert_eq!(
            spacing(&sd15, SamplerKind::EulerAncestral),
            Spacing::Linspace
        );
        assert_eq!(
            spacing(&sd15, SamplerKind::DpmPlusPlus2M),
            Spacing::Linspace
        );
        assert_eq!(spacing(&sd15, SamplerKind::Ddim), Spacing::Leading);
        assert_eq!(spacing(&sd15, SamplerKind::Lcm), Spacing::Leading);
        for kind in SamplerKind::ALL {
            assert_eq!(spacing(&sdxl, kind), Spacing::Leading);
        }
    }

    #[test]
    fn json_round_trip_and_unknown_keys() {
        let text = r#"{"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
            "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,
            "steps_offset": 1, "trained_betas": null, "clip_sample": false}"#;
        let config = SchedulerConfig::from_json_str(text).expect("parse");
        assert_eq!(config, SchedulerConfig::sd15_default());
        assert!(SchedulerConfig::from_json_str("[1, 2]").is_err());
        // A config dumped from a live PNDMScheduler: its defaulted spacing does not count.
        let dumped = r#"{"_class_name": "PNDMScheduler", "timestep_spacing": "leading",
            "_use_default_values": ["timestep_spacing"], "steps_offset": 1}"#;
        let config = SchedulerConfig::from_json_str(dumped).expect("parse");
        assert_eq!(config.timestep_spacing, None);
        assert_eq!(config.steps_offset, Some(1));
    }

    #[test]
    fn class_defaults() {
        let empty = SchedulerConfig::default();
        let ddim = empty.resolve(SamplerKind::Ddim).expect("ddim");
        assert!(ddim.clip_sample && ddim.set_alpha_to_one);
        assert_eq!(
            ddim.betas,
            BetaSchedule::Linear {
                start: 0.0001,
                end: 0.02
            }
        );
        let lcm = empty.resolve(SamplerKind::Lcm).expect("lcm");
        assert!(!lcm.clip_sample);
        assert_eq!(
            lcm.betas,
            BetaSchedule::ScaledLinear {
                start: 0.00085,
                end: 0.012
            }
        );
        let karras = empty
            .resolve(SamplerKind::DpmPlusPlus2MKarras)
            .expect("karras");
        assert!(karras.karras);
        let v = SchedulerConfig {
            prediction_type: Some("sample".into()),
            ..SchedulerConfig::default()
        };
        assert!(v.resolve(SamplerKind::EulerAncestral).is_err());
        assert!(v.resolve(SamplerKind::Euler).is_ok());
        let zsnr = SchedulerConfig {
            rescale_betas_zero_snr: Some(true),
            ..SchedulerConfig::default()
        };
        assert!(zsnr.resolve(SamplerKind::Euler).is_err());
    }
}
