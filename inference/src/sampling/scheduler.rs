//! diffusers schedulers: Euler, Euler ancestral, DPM++ 2M (Karras), DDIM, LCM.
//!
//! One [`Scheduler`] type reproduces, for the [`SamplerKind`] picked, what
//! `TargetClass.from_config(model_scheduler_config)` does in diffusers 0.42
//! (`EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`, `DPMSolverMultistepScheduler`
//! with `dpmsolver++`/midpoint/order 2, `DDIMScheduler` with η = 0, `LCMScheduler`):
//! `set_timesteps`, `scale_model_input`, `step`, `add_noise`, `init_noise_sigma`, and img2img's
//! `get_timesteps` + `set_begin_index` (FORMATS §3.2–3.4).
//!
//! Numerics follow diffusers: the tables are float32 tensors or float64 numpy arrays exactly where
//! diffusers has them (see [`super::schedule`]); per-step scalars (σ, ᾱ, λ, …) are float32 0-d
//! tensor arithmetic there, hence `f32` here; the per-element update is float32, one rounding
//! per torch operation, in diffusers' order of operations.

use candle_core::{DType, Tensor};

use super::rng::TorchRng;
use super::schedule::{
    alphas_cumprod, betas, karras_sigmas, log_f32, np_arange, np_interp_arange, np_linspace,
    sigma_to_t, training_sigmas,
};
pub use super::scheduler_config::SchedulerConfig;
use super::scheduler_config::{BetaSchedule, Prediction, Resolved, Spacing};
use crate::{Error, Result, SamplerKind};

/// A sampler configured for one run: timesteps, sigmas and the multistep state.
#[derive(Clone, Debug)]
pub struct Scheduler {
    kind: SamplerKind,
    config: Resolved,
    /// `num_inference_steps` as requested (DDIM's step size and LCM's last step use it).
    steps: usize,
    alphas_cumprod: Vec<f32>,
    /// DDIM/LCM: ᾱ before the first training step (`set_alpha_to_one`).
    final_alpha_cumprod: f32,
    /// All timesteps of the schedule (float32 for the Euler family, integers otherwise).
    all_timesteps: Vec<f64>,
    /// Euler family and DPM: one sigma per timestep plus the final one; empty otherwise.
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    /// img2img: first timestep run (`set_begin_index`).
    begin: usize,
    /// The index `step` expects next (multistep state is only valid in order).
    next_index: usize,
    /// DPM: the previous step's x₀ prediction.
    previous_x0: Option<Vec<f32>>,
    /// DPM: `lower_order_nums`.
    lower_order_nums: usize,
}

impl Scheduler {
    /// Builds the schedule of `kind` for `steps` inference steps from a model's scheduler config.
    pub fn new(kind: SamplerKind, config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let config = config.resolve(kind)?;
        let train_steps = config.num_train_timesteps;
        if steps == 0 || steps > train_steps {
            return Err(Error::InvalidArgument(format!(
                "steps must be between 1 and {train_steps}, got {steps}"
            )));
        }
        let betas = betas(&config.betas, train_steps);
        let alphas_cumprod = alphas_cumprod(&betas);
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        let mut scheduler = Self {
            kind,
            config,
            steps,
            alphas_cumprod,
            final_alpha_cumprod,
            all_timesteps: Vec::new(),
            sigmas: Vec::new(),
            init_noise_sigma: 1.0,
            begin: 0,
            next_index: 0,
            previous_x0: None,
            lower_order_nums: 0,
        };
        match kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => scheduler.set_euler_timesteps()?,
            SamplerKind::DpmPlusPlus2M | SamplerKind::DpmPlusPlus2MKarras => {
                scheduler.set_dpm_timesteps()
            }
            SamplerKind::Ddim => scheduler.set_ddim_timesteps(),
            SamplerKind::Lcm => scheduler.set_lcm_timesteps()?,
        }
        if scheduler.all_timesteps.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{steps} steps give an empty schedule"
            )));
        }
        Ok(scheduler)
    }

    /// Timesteps the UNet gets, one per step still to run (after [`Self::set_strength`]).
    /// Fractional for the Euler family; the values are exactly diffusers' float32/int64 ones,
    /// so casting to `f32` loses nothing.
    pub fn timesteps(&self) -> &[f64] {
        &self.all_timesteps[self.begin..]
    }

    /// Number of steps to run.
    pub fn len(&self) -> usize {
        self.all_timesteps.len() - self.begin
    }

    /// True when no step is left to run (never after a successful `new`/`set_strength`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Factor applied to the initial `randn` latents (txt2img).
    pub fn init_noise_sigma(&self) -> f64 {
        f64::from(self.init_noise_sigma)
    }

    /// Model evaluations per timestep (diffusers' `scheduler.order`; 1 for all these classes).
    pub fn order(&self) -> usize {
        1
    }

    /// img2img: keeps the last steps as diffusers' `get_timesteps(num_inference_steps, strength)`
    /// (`init = min(int(n·strength), n)`, `t_start = max(n − init, 0)`) and `set_begin_index`.
    /// Afterwards [`Self::timesteps`], [`Self::len`] and every `index` refer to the kept steps.
    pub fn set_strength(&mut self, strength: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::InvalidArgument(format!(
                "strength must be between 0 and 1, got {strength}"
            )));
        }
        // The user's decimal, as the Python float diffusers would get (0.3f32 → 0.3, not
        // 0.30000001192…), so that `int(n * strength)` truncates the same way.
        let strength = strength
            .to_string()
            .parse::<f64>()
            .unwrap_or(f64::from(strength));
        let n = self.steps;
        let init = ((n as f64 * strength) as usize).min(n);
        let t_start = (n - init) * self.order();
        if init == 0 || t_start >= self.all_timesteps.len() {
            return Err(Error::InvalidArgument(format!(
                "strength {strength} with {n} steps leaves no step to run; raise the strength or the steps"
            )));
        }
        self.begin = t_start;
        self.reset_state();
        Ok(())
    }

    /// The UNet input for step `index`: `x / sqrt(σ² + 1)` for the Euler family, `x` otherwise.
    pub fn scale_model_input(&self, sample: &Tensor, index: usize) -> Result<Tensor> {
        let position = self.position(index)?;
        match self.kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let sigma = self.sigmas[position];
                let divisor = (sigma * sigma + 1.0).sqrt();
                map_tensor(sample, sample.dtype(), |x| x / divisor)
            }
            _ => Ok(sample.clone()),
        }
    }

    /// One denoising step: the sample for the next timestep from the model output at step
    /// `index`. Euler ancestral draws `randn` of the sample's size from `rng` every step and LCM
    /// on every step but the last, as diffusers does, so seeds reproduce.
    pub fn step(
        &mut self,
        model_output: &Tensor,
        index: usize,
        sample: &Tensor,
        rng: &mut TorchRng,
    ) -> Result<Tensor> {
        let position = self.position(index)?;
        if model_output.dims() != sample.dims() {
            return Err(Error::InvalidArgument(format!(
                "model output shape {:?} differs from sample shape {:?}",
                model_output.dims(),
                sample.dims()
            )));
        }
        if index == 0 {
            self.reset_state();
        } else if index != self.next_index {
            return Err(Error::InvalidArgument(format!(
                "scheduler steps must run in order: expected step {}, got {index}",
                self.next_index
            )));
        }
        let output = to_f32_vec(model_output)?;
        let current = to_f32_vec(sample)?;
        let next = match self.kind {
            SamplerKind::Euler => self.euler_step(position, &output, &current),
            SamplerKind::EulerAncestral => {
                self.euler_ancestral_step(position, &output, &current, rng)
            }
            SamplerKind::DpmPlusPlus2M | SamplerKind::DpmPlusPlus2MKarras => {
                self.dpm_step(position, &output, &current)
            }
            SamplerKind::Ddim => self.ddim_step(position, &output, &current)?,
            SamplerKind::Lcm => self.lcm_step(position, &output, &current, rng)?,
        };
        self.next_index = index + 1;
        let next = Tensor::from_vec(next, sample.dims(), sample.device())?;
        Ok(next.to_dtype(model_output.dtype())?)
    }

    /// img2img: noises `original` to the level of step `index` (0 = the first kept timestep):
    /// `x + σ·noise` for the Euler family, `sqrt(ᾱ)·x + sqrt(1 − ᾱ)·noise` otherwise.
    pub fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        let position = self.position(index)?;
        if original.dims() != noise.dims() {
            return Err(Error::InvalidArgument(format!(
                "noise shape {:?} differs from latent shape {:?}",
                noise.dims(),
                original.dims()
            )));
        }
        let x = to_f32_vec(original)?;
        let z = to_f32_vec(noise)?;
        let noisy: Vec<f32> = match self.kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let sigma = self.sigmas[position];
                x.iter().zip(&z).map(|(&x, &z)| x + z * sigma).collect()
            }
            SamplerKind::DpmPlusPlus2M | SamplerKind::DpmPlusPlus2MKarras => {
                let (alpha, sigma) = vp_alpha_sigma(self.sigmas[position]);
                x.iter()
                    .zip(&z)
                    .map(|(&x, &z)| alpha * x + sigma * z)
                    .collect()
            }
            SamplerKind::Ddim | SamplerKind::Lcm => {
                let alpha_prod = self.alpha_at(self.all_timesteps[position] as i64)?;
                let (a, b) = (alpha_prod.sqrt(), (1.0 - alpha_prod).sqrt());
                x.iter().zip(&z).map(|(&x, &z)| a * x + b * z).collect()
            }
        };
        let noisy = Tensor::from_vec(noisy, original.dims(), original.device())?;
        Ok(noisy.to_dtype(original.dtype())?)
    }

    /// Position in the full schedule of kept step `index`.
    /// For the Euler sampler: the denoised estimate x0 the step at `index` moves `sample`
    /// toward, with σ of this step and of the next. Stepping from a changed x0′ instead gives
    /// `step(…) + (1 − σ_next/σ)·(x0′ − x0)`, which lets a pipeline steer x0 (motion masks,
    /// looping clips) without changing the sampler.
    pub fn euler_denoised(
        &self,
        model_output: &Tensor,
        index: usize,
        sample: &Tensor,
    ) -> Result<(Vec<f32>, f32, f32)> {
        if self.kind != SamplerKind::Euler {
            return Err(Error::InvalidArgument(format!(
                "x0 steering needs the Euler sampler, not {:?}",
                self.kind
            )));
        }
        let position = self.position(index)?;
        let sigma = self.sigmas[position];
        let x0 = self.euler_x0(sigma, &to_f32_vec(model_output)?, &to_f32_vec(sample)?);
        Ok((x0, sigma, self.sigmas[position + 1]))
    }

    fn position(&self, index: usize) -> Result<usize> {
        if index >= self.len() {
            return Err(Error::InvalidArgument(format!(
                "step {index} is past the last of {} steps",
                self.len()
            )));
        }
        Ok(self.begin + index)
    }

    fn reset_state(&mut self) {
        self.next_index = 0;
        self.previous_x0 = None;
        self.lower_order_nums = 0;
    }

    /// `alphas_cumprod[t]` with Python indexing (negative counts from the end), or
    /// `final_alpha_cumprod` where diffusers uses it (`prev_t < 0`) — see callers.
    fn alpha_at(&self, t: i64) -> Result<f32> {
        let n = self.alphas_cumprod.len() as i64;
        let index = if t < 0 { t + n } else { t };
        usize::try_from(index)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .ok_or_else(|| Error::InvalidArgument(format!("timestep {t} is outside the schedule")))
    }

    fn training_sigmas(&self) -> Vec<f32> {
        training_sigmas(&self.alphas_cumprod)
    }

    /// `((1 − ᾱ₀) / ᾱ₀) ** 0.5` (`final_sigmas_type = "sigma_min"`) or 0.
    fn final_sigma(&self) -> f32 {
        if self.config.final_sigma_min {
            let a = self.alphas_cumprod[0];
            ((1.0 - a) / a).sqrt()
        } else {
            0.0
        }
    }

    // ---------------------------------------------------------------- set_timesteps

    /// `EulerDiscreteScheduler` / `EulerAncestralDiscreteScheduler.set_timesteps`.
    fn set_euler_timesteps(&mut self) -> Result<()> {
        let n = self.steps;
        let train_steps = self.config.num_train_timesteps;
        // float32 timesteps, as numpy has them.
        let timesteps: Vec<f32> = match self.config.spacing {
            Spacing::Linspace => np_linspace(0.0, (train_steps - 1) as f64, n, true)
                .into_iter()
                .rev()
                .map(|t| t as f32)
                .collect(),
            Spacing::Leading => {
                let ratio = train_steps / n;
                (0..n)
                    .rev()
                    .map(|i| (i * ratio) as f32 + self.config.steps_offset as f32)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = train_steps as f64 / n as f64;
                np_arange(train_steps as f64, 0.0, -ratio)
                    .into_iter()
                    .map(|t| t.round_ties_even() as f32 - 1.0)
                    .collect()
            }
        };
        let table = self.training_sigmas();
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| np_interp_arange(f64::from(t), &table))
            .collect();
        let mut timesteps: Vec<f64> = timesteps.into_iter().map(f64::from).collect();
        let karras = self.config.karras && self.kind == SamplerKind::Euler;
        if karras {
            let (Some(&last), Some(&first)) = (sigmas.last(), sigmas.first()) else {
                return Ok(());
            };
            let sigma_min = self.config.sigma_min.unwrap_or(last);
            let sigma_max = self.config.sigma_max.unwrap_or(first);
            sigmas = karras_sigmas(sigma_min, sigma_max, n);
            let log_sigmas = log_f32(&table);
            timesteps = sigmas
                .iter()
                .map(|&s| f64::from(sigma_to_t(s, &log_sigmas) as f32))
                .collect();
        }
        let final_sigma = if self.kind == SamplerKind::Euler {
            self.final_sigma()
        } else {
            0.0
        };
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
        sigmas.push(final_sigma);
        if self.kind == SamplerKind::Euler
            && self.config.continuous_timesteps
            && self.config.prediction == Prediction::Velocity
        {
            timesteps = sigmas[..sigmas.len() - 1]
                .iter()
                .map(|&s| f64::from(0.25 * s.ln()))
                .collect();
        }
        let max_sigma = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.init_noise_sigma = match self.config.spacing {
            Spacing::Linspace | Spacing::Trailing => max_sigma,
            Spacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
        };
        self.all_timesteps = timesteps;
        self.sigmas = sigmas;
        Ok(())
    }

    /// `DPMSolverMultistepScheduler.set_timesteps` (`lambda_min_clipped = −∞`).
    fn set_dpm_timesteps(&mut self) {
        let n = self.steps;
        let train_steps = self.config.num_train_timesteps;
        let last_timestep = train_steps;
        let mut timesteps: Vec<f64> = match self.config.spacing {
            Spacing::Linspace => {
                let mut t: Vec<f64> = np_linspace(0.0, (last_timestep - 1) as f64, n + 1, true)
                    .into_iter()
                    .map(f64::round_ties_even)
                    .rev()
                    .collect();
                t.pop();
                t
            }
            Spacing::Leading => {
                let ratio = last_timestep / (n + 1);
                (1..=n)
                    .rev()
                    .map(|i| (i * ratio) as f64 + self.config.steps_offset as f64)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = train_steps as f64 / n as f64;
                np_arange(last_timestep as f64, 0.0, -ratio)
                    .into_iter()
                    .map(|t| t.round_ties_even() - 1.0)
                    .collect()
            }
        };
        let table = self.training_sigmas();
        let sigmas: Vec<f64> = if self.config.karras {
            let log_sigmas = log_f32(&table);
            let sigma_min = self.config.sigma_min.unwrap_or(f64::from(table[0]));
            let sigma_max = self
                .config
                .sigma_max
                .unwrap_or(f64::from(table[train_steps - 1]));
            let sigmas = karras_sigmas(sigma_min, sigma_max, n);
            let round = self.config.betas != BetaSchedule::SquaredCosCapV2;
            timesteps = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &log_sigmas);
                    // `.round()` (except for the cosine schedule), then `.to(int64)`.
                    if round {
                        t.round_ties_even()
                    } else {
                        t.trunc()
                    }
                })
                .collect();
            sigmas
        } else {
            timesteps
                .iter()
                .map(|&t| np_interp_arange(t, &table))
                .collect()
        };
        let mut sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).collect();
        sigmas.push(self.final_sigma());
        self.all_timesteps = timesteps;
        self.sigmas = sigmas;
        self.init_noise_sigma = 1.0;
    }

    /// `DDIMScheduler.set_timesteps`.
    fn set_ddim_timesteps(&mut self) {
        let n = self.steps;
        let train_steps = self.config.num_train_timesteps;
        self.all_timesteps = match self.config.spacing {
            Spacing::Linspace => np_linspace(0.0, (train_steps - 1) as f64, n, true)
                .into_iter()
                .map(f64::round_ties_even)
                .rev()
                .collect(),
            Spacing::Leading => {
                let ratio = train_steps / n;
                (0..n)
                    .rev()
                    .map(|i| (i * ratio) as f64 + self.config.steps_offset as f64)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = train_steps as f64 / n as f64;
                np_arange(train_steps as f64, 0.0, -ratio)
                    .into_iter()
                    .map(|t| t.round_ties_even() - 1.0)
                    .collect()
            }
        };
        self.init_noise_sigma = 1.0;
    }

    /// `LCMScheduler.set_timesteps` (strength 1; img2img goes through `set_strength`).
    fn set_lcm_timesteps(&mut self) -> Result<()> {
        let n = self.steps;
        let original_steps = self.config.original_inference_steps;
        let train_steps = self.config.num_train_timesteps;
        if original_steps == 0 || original_steps > train_steps || n > original_steps {
            return Err(Error::InvalidArgument(format!(
                "LCM runs at most original_inference_steps = {original_steps} steps, got {n}"
            )));
        }
        let k = train_steps / original_steps;
        // Distillation timesteps i·k − 1, i = 1…original_steps, in descending order.
        let origin: Vec<i64> = (1..=original_steps)
            .rev()
            .map(|i| (i * k) as i64 - 1)
            .collect();
        self.all_timesteps = np_linspace(0.0, origin.len() as f64, n, false)
            .into_iter()
            .filter_map(|x| origin.get(x.floor() as usize).map(|&t| t as f64))
            .collect();
        self.init_noise_sigma = 1.0;
        Ok(())
    }

    // ---------------------------------------------------------------- steps

    /// x₀ of the Euler family from σ (`sample` prediction: the output itself).
    fn euler_x0(&self, sigma: f32, output: &[f32], sample: &[f32]) -> Vec<f32> {
        match self.config.prediction {
            Prediction::Epsilon => zip_map(sample, output, |x, e| x - sigma * e),
            Prediction::Velocity => {
                let variance = sigma * sigma + 1.0;
                let c_out = -sigma / variance.sqrt();
                zip_map(sample, output, |x, v| v * c_out + x / variance)
            }
            Prediction::Sample => output.to_vec(),
        }
    }

    /// `EulerDiscreteScheduler.step` (s_churn 0).
    fn euler_step(&self, position: usize, output: &[f32], sample: &[f32]) -> Vec<f32> {
        let sigma = self.sigmas[position];
        let dt = self.sigmas[position + 1] - sigma;
        let x0 = self.euler_x0(sigma, output, sample);
        zip_map(sample, &x0, |x, x0| {
            let derivative = (x - x0) / sigma;
            x + derivative * dt
        })
    }

    /// `EulerAncestralDiscreteScheduler.step`.
    fn euler_ancestral_step(
        &self,
        position: usize,
        output: &[f32],
        sample: &[f32],
        rng: &mut TorchRng,
    ) -> Vec<f32> {
        let sigma_from = self.sigmas[position];
        let sigma_to = self.sigmas[position + 1];
        let from2 = sigma_from * sigma_from;
        let to2 = sigma_to * sigma_to;
        let sigma_up = (to2 * (from2 - to2) / from2).sqrt();
        let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
        let dt = sigma_down - sigma_from;
        let x0 = self.euler_x0(sigma_from, output, sample);
        let noise = rng.randn(sample.len());
        sample
            .iter()
            .zip(&x0)
            .zip(&noise)
            .map(|((&x, &x0), &z)| {
                let derivative = (x - x0) / sigma_from;
                let prev = x + derivative * dt;
                prev + z * sigma_up
            })
            .collect()
    }

    /// `DPMSolverMultistepScheduler.step` (dpmsolver++, midpoint, order 2).
    fn dpm_step(&mut self, position: usize, output: &[f32], sample: &[f32]) -> Vec<f32> {
        let last = self.all_timesteps.len() - 1;
        let lower_order_final = position == last
            && (self.config.euler_at_final
                || (self.config.lower_order_final && self.all_timesteps.len() < 15)
                || !self.config.final_sigma_min);
        // convert_model_output: the x₀ prediction.
        let (alpha_s0, sigma_s0) = vp_alpha_sigma(self.sigmas[position]);
        let x0 = match self.config.prediction {
            Prediction::Epsilon => zip_map(sample, output, |x, e| (x - sigma_s0 * e) / alpha_s0),
            Prediction::Velocity => zip_map(sample, output, |x, v| alpha_s0 * x - sigma_s0 * v),
            Prediction::Sample => output.to_vec(),
        };
        let (alpha_t, sigma_t) = vp_alpha_sigma(self.sigmas[position + 1]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let h = lambda_t - lambda_s0;
        let sample_coefficient = sigma_t / sigma_s0;
        let x0_coefficient = alpha_t * ((-h).exp() - 1.0);
        let previous = self.previous_x0.take();
        let next = match previous {
            Some(m1) if self.lower_order_nums >= 1 && !lower_order_final && position >= 1 => {
                let (alpha_s1, sigma_s1) = vp_alpha_sigma(self.sigmas[position - 1]);
                let lambda_s1 = alpha_s1.ln() - sigma_s1.ln();
                let h_0 = lambda_s0 - lambda_s1;
                let r0 = h_0 / h;
                let d1_coefficient = 1.0 / r0;
                let half_coefficient = 0.5 * x0_coefficient;
                sample
                    .iter()
                    .zip(&x0)
                    .zip(&m1)
                    .map(|((&x, &m0), &m1)| {
                        let d1 = d1_coefficient * (m0 - m1);
                        sample_coefficient * x - x0_coefficient * m0 - half_coefficient * d1
                    })
                    .collect()
            }
            _ => zip_map(sample, &x0, |x, m0| {
                sample_coefficient * x - x0_coefficient * m0
            }),
        };
        self.lower_order_nums = (self.lower_order_nums + 1).min(2);
        self.previous_x0 = Some(x0);
        next
    }

    /// x₀ and ε predictions of DDIM/LCM at `ᾱ_t` (clamped x₀ if `clip_sample`).
    fn alpha_x0_eps(
        &self,
        alpha_prod: f32,
        output: &[f32],
        sample: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let beta_prod = 1.0 - alpha_prod;
        let (sqrt_alpha, sqrt_beta) = (alpha_prod.sqrt(), beta_prod.sqrt());
        let (mut x0, eps) = match self.config.prediction {
            Prediction::Epsilon => (
                zip_map(sample, output, |x, e| (x - sqrt_beta * e) / sqrt_alpha),
                output.to_vec(),
            ),
            Prediction::Sample => (
                output.to_vec(),
                zip_map(sample, output, |x, x0| (x - sqrt_alpha * x0) / sqrt_beta),
            ),
            Prediction::Velocity => (
                zip_map(sample, output, |x, v| sqrt_alpha * x - sqrt_beta * v),
                zip_map(sample, output, |x, v| sqrt_alpha * v + sqrt_beta * x),
            ),
        };
        if self.config.clip_sample {
            let range = self.config.clip_sample_range as f32;
            for value in &mut x0 {
                *value = value.clamp(-range, range);
            }
        }
        (x0, eps)
    }

    /// `DDIMScheduler.step` with η = 0.
    fn ddim_step(&self, position: usize, output: &[f32], sample: &[f32]) -> Result<Vec<f32>> {
        let t = self.all_timesteps[position] as i64;
        let prev_t = t - (self.config.num_train_timesteps / self.steps) as i64;
        let alpha_prod = self.alpha_at(t)?;
        let alpha_prod_prev = if prev_t >= 0 {
            self.alpha_at(prev_t)?
        } else {
            self.final_alpha_cumprod
        };
        let (x0, eps) = self.alpha_x0_eps(alpha_prod, output, sample);
        // std_dev_t = η·sqrt(variance) = 0, so the direction is sqrt(1 − ᾱ_prev − 0²).
        let direction_coefficient = (1.0 - alpha_prod_prev).sqrt();
        let sqrt_alpha_prev = alpha_prod_prev.sqrt();
        Ok(zip_map(&x0, &eps, |x0, e| {
            sqrt_alpha_prev * x0 + direction_coefficient * e
        }))
    }

    /// `LCMScheduler.step`: noise is drawn on every step but the last.
    fn lcm_step(
        &self,
        position: usize,
        output: &[f32],
        sample: &[f32],
        rng: &mut TorchRng,
    ) -> Result<Vec<f32>> {
        let t = self.all_timesteps[position] as i64;
        let prev_t = match self.all_timesteps.get(position + 1) {
            Some(&prev) => prev as i64,
            None => t,
        };
        let alpha_prod = self.alpha_at(t)?;
        let alpha_prod_prev = if prev_t >= 0 {
            self.alpha_at(prev_t)?
        } else {
            self.final_alpha_cumprod
        };
        // get_scalings_for_boundary_condition_discrete, σ_data = 0.5, on a float32 timestep.
        let scaled = t as f32 * self.config.timestep_scaling as f32;
        let c_skip = 0.25 / (scaled * scaled + 0.25);
        let c_out = scaled / (scaled * scaled + 0.25).sqrt();
        let (x0, _) = self.alpha_x0_eps(alpha_prod, output, sample);
        let denoised = zip_map(&x0, sample, |x0, x| c_out * x0 + c_skip * x);
        if position + 1 == self.steps {
            return Ok(denoised);
        }
        let noise = rng.randn(sample.len());
        let (a, b) = (alpha_prod_prev.sqrt(), (1.0 - alpha_prod_prev).sqrt());
        Ok(zip_map(&denoised, &noise, |d, z| a * d + b * z))
    }
}

/// DPM's `_sigma_to_alpha_sigma_t`: `α = 1/sqrt(σ² + 1)`, `σ_t = σ·α` (float32).
fn vp_alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}

fn to_f32_vec(tensor: &Tensor) -> Result<Vec<f32>> {
    Ok(tensor
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn map_tensor(tensor: &Tensor, dtype: DType, f: impl Fn(f32) -> f32) -> Result<Tensor> {
    let values: Vec<f32> = to_f32_vec(tensor)?.into_iter().map(f).collect();
    Ok(Tensor::from_vec(values, tensor.dims(), tensor.device())?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/refs")
            .join(name);
        assert!(
            path.exists(),
            "missing committed fixture {}",
            path.display()
        );
        path
    }

    fn make(kind: SamplerKind, config: &SchedulerConfig, steps: usize) -> Scheduler {
        Scheduler::new(kind, config, steps).expect("scheduler")
    }

    fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tolerance, "{what}[{i}]: {g} vs {w}");
        }
    }

    fn sigmas(scheduler: &Scheduler) -> Vec<f64> {
        scheduler.sigmas.iter().map(|&s| f64::from(s)).collect()
    }

    // FORMATS §3.2 golden values (SD1.5 = PNDM config, SDXL = Euler leading config).

    #[test]
    fn golden_sd15_euler_20() {
        let s = make(SamplerKind::Euler, &SchedulerConfig::sd15_default(), 20);
        let t = s.timesteps();
        assert_close(&t[..3], &[999.0, 946.4211, 893.8421], 1e-4, "t");
        assert_close(&t[18..], &[52.5789, 0.0], 1e-4, "t");
        let sigma = sigmas(&s);
        assert_close(&sigma[..3], &[14.61465, 10.74685, 8.08154], 1e-5, "sigma");
        assert_close(&sigma[18..], &[0.23217, 0.02917, 0.0], 1e-5, "sigma");
        assert!((s.init_noise_sigma() - 14.61465).abs() < 1e-5);
        assert_eq!(s.len(), 20);
        assert_eq!(s.order(), 1);
    }

    #[test]
    fn golden_sdxl_euler_leading() {
        let s = make(SamplerKind::Euler, &SchedulerConfig::sdxl_default(), 20);
        let want: Vec<f64> = (0..20).rev().map(|i| f64::from(i * 50 + 1)).collect();
        assert_close(s.timesteps(), &want, 0.0, "t");
        assert_close(&sigmas(&s)[..2], &[11.02834, 8.39069], 1e-5, "sigma");
        assert!((s.init_noise_sigma() - 11.07358).abs() < 1e-5);
        let s30 = make(SamplerKind::Euler, &SchedulerConfig::sdxl_default(), 30);
        assert_eq!(s30.timesteps()[0], 958.0);
    }

    #[test]
    fn golden_dpm_linspace_and_karras_20() {
        let sd15 = SchedulerConfig::sd15_default();
        let s = make(SamplerKind::DpmPlusPlus2M, &sd15, 20);
        // round(linspace(0, 999, 21)) reversed, last dropped: 999, 949, 899 … 100, 50.
        let want = [
            999.0, 949.0, 899.0, 849.0, 799.0, 749.0, 699.0, 649.0, 599.0, 549.0, 500.0, 450.0,
            400.0, 350.0, 300.0, 250.0, 200.0, 150.0, 100.0, 50.0,
        ];
        assert_close(s.timesteps(), &want, 0.0, "dpm t");
        assert_eq!(s.init_noise_sigma(), 1.0);

        let k = make(SamplerKind::DpmPlusPlus2MKarras, &sd15, 20);
        let want = [
            999.0, 962.0, 921.0, 876.0, 827.0, 772.0, 710.0, 640.0, 561.0, 474.0, 380.0, 285.0,
            197.0, 123.0, 69.0, 35.0, 15.0, 6.0, 2.0, 0.0,
        ];
        assert_close(k.timesteps(), &want, 0.0, "karras t");
        let sigma = sigmas(&k);
        assert_close(
            &sigma[..3],
            &[14.6146, 11.7254, 9.3402],
            1e-4,
            "karras sigma",
        );
        assert_close(&sigma[18..], &[0.0485, 0.0292, 0.0], 1e-4, "karras sigma");
    }

    #[test]
    fn golden_trailing_and_lcm() {
        let trailing = SchedulerConfig {
            timestep_spacing: Some("trailing".into()),
            ..SchedulerConfig::sdxl_default()
        };
        for kind in [
            SamplerKind::Euler,
            SamplerKind::EulerAncestral,
            SamplerKind::Ddim,
        ] {
            let s = make(kind, &trailing, 4);
            assert_close(
                s.timesteps(),
                &[999.0, 749.0, 499.0, 249.0],
                0.0,
                "trailing",
            );
        }
        // Trailing Euler a: init sigma is σ_max itself.
        let s = make(SamplerKind::EulerAncestral, &trailing, 4);
        assert!((s.init_noise_sigma() - 14.614_647).abs() < 1e-5);

        let sd15 = SchedulerConfig::sd15_default();
        let lcm4 = make(SamplerKind::Lcm, &sd15, 4);
        assert_close(
            lcm4.timesteps(),
            &[999.0, 759.0, 499.0, 259.0],
            0.0,
            "lcm 4",
        );
        let lcm8 = make(SamplerKind::Lcm, &sd15, 8);
        let want = [999.0, 879.0, 759.0, 639.0, 499.0, 379.0, 259.0, 139.0];
        assert_close(lcm8.timesteps(), &want, 0.0, "lcm 8");
        assert!(Scheduler::new(SamplerKind::Lcm, &sd15, 51).is_err());
    }

    #[test]
    fn ddim_leading_and_img2img_strength() {
        let sd15 = SchedulerConfig::sd15_default();
        let mut s = make(SamplerKind::Ddim, &sd15, 20);
        assert_eq!(s.timesteps()[0], 951.0);
        assert_eq!(s.timesteps()[19], 1.0);
        // n = 20, strength 0.6: init = 12, t_start = 8.
        s.set_strength(0.6).expect("strength");
        assert_eq!(s.len(), 12);
        assert_eq!(s.timesteps()[0], 551.0);
        // 0.3 · 10 is 3.0000000000000004 in Python: init 3, t_start 7 (not 0.30000001f32 · 10).
        let mut s = make(SamplerKind::Euler, &sd15, 10);
        s.set_strength(0.3).expect("strength");
        assert_eq!(s.len(), 3);
        assert!(s.set_strength(0.05).is_err());
        assert!(s.set_strength(1.5).is_err());
        assert!(
            s.scale_model_input(
                &Tensor::zeros(4, DType::F32, &candle_core::Device::Cpu).expect("t"),
                3
            )
            .is_err()
        );
    }

    #[test]
    fn steps_must_run_in_order() {
        let device = candle_core::Device::Cpu;
        let mut s = make(
            SamplerKind::DpmPlusPlus2M,
            &SchedulerConfig::sd15_default(),
            4,
        );
        let x = Tensor::ones((1, 4, 2, 2), DType::F32, &device).expect("x");
        let mut rng = TorchRng::new(0);
        let x = s.step(&x, 0, &x, &mut rng).expect("step 0");
        assert!(s.step(&x, 2, &x, &mut rng).is_err());
        assert!(s.step(&x, 1, &x, &mut rng).is_ok());
    }

    /// `tests/fixtures/refs/schedules.json` (make_fixtures.py): diffusers timesteps, sigmas,
    /// init_noise_sigma and img2img kept timesteps for every sampler on the SD1.5 and SDXL configs.
    #[test]
    fn matches_schedules_fixture() {
        let path = fixture("schedules.json");
        let text = std::fs::read_to_string(&path).expect("read schedules.json");
        let refs: serde_json::Value = serde_json::from_str(&text).expect("json");
        let schedules = refs["schedules"].as_array().expect("schedules");
        for entry in schedules {
            let base = entry["base"].as_str().expect("base");
            let sampler = entry["sampler"].as_str().expect("sampler");
            let steps = entry["steps"].as_u64().expect("steps") as usize;
            let what = format!("{base}/{sampler}/{steps}");
            let base_config = refs["configs"][base]["base_config"].to_string();
            let config = SchedulerConfig::from_json_str(&base_config).expect("config");
            let kind = SamplerKind::from_cli_name(sampler).expect("sampler name");
            let scheduler = make(kind, &config, steps);
            let timesteps: Vec<f64> =
                serde_json::from_value(entry["timesteps"].clone()).expect("timesteps");
            assert_close(
                scheduler.timesteps(),
                &timesteps,
                1e-4,
                &format!("{what} t"),
            );
            if let Some(want) = entry["sigmas"].as_array() {
                let want: Vec<f64> = want.iter().map(|v| v.as_f64().expect("sigma")).collect();
                let got = sigmas(&scheduler);
                assert_eq!(got.len(), want.len(), "{what} sigmas");
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1e-3),
                        "{what} sigma {g} vs {w}"
                    );
                }
            }
            let init = entry["init_noise_sigma"]
                .as_f64()
                .expect("init_noise_sigma");
            assert!(
                (scheduler.init_noise_sigma() - init).abs() <= 1e-5 * init,
                "{what} init"
            );
            assert_eq!(
                scheduler.order() as u64,
                entry["order"].as_u64().expect("order")
            );
            for img2img in entry["img2img"].as_array().expect("img2img") {
                let strength = img2img["strength"].as_f64().expect("strength") as f32;
                let num_steps = img2img["num_steps"].as_u64().expect("num_steps") as usize;
                let kept: Vec<f64> =
                    serde_json::from_value(img2img["timesteps"].clone()).expect("kept");
                let mut s = scheduler.clone();
                let result = s.set_strength(strength);
                if num_steps == 0 {
                    assert!(
                        result.is_err(),
                        "{what} strength {strength}: expected no steps"
                    );
                    continue;
                }
                result.expect("set_strength");
                assert_eq!(s.len(), num_steps, "{what} strength {strength}");
                assert_close(
                    s.timesteps(),
                    &kept,
                    1e-4,
                    &format!("{what} img2img {strength}"),
                );
            }
        }
        assert!(
            schedules.len() >= 72,
            "schedules.json has {} entries",
            schedules.len()
        );
    }

    /// `tests/fixtures/refs/sampler_steps.safetensors` (`tests/fixtures/make_sampler_steps.py`):
    /// diffusers trajectories with a fake UNet, `model_out = 0.1·model_in + sin(i)`; the RNG is
    /// shared with the scheduler exactly as the pipelines share it.
    #[test]
    fn matches_sampler_steps_fixture() {
        let path = fixture("sampler_steps.safetensors");
        let bytes = std::fs::read(&path).expect("read sampler_steps.safetensors");
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let metadata = metadata.metadata().clone().expect("metadata");
        let configs: serde_json::Value =
            serde_json::from_str(&metadata["configs"]).expect("configs");
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(&metadata["cases"]).expect("cases");
        let tensors =
            candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).expect("load");
        let reference = |name: &str| -> Option<Vec<f32>> {
            tensors.get(name).map(|t| to_f32_vec(t).expect("f32"))
        };
        let mut worst = 0f64;
        for case in &cases {
            let name = case["name"].as_str().expect("name");
            let config_text = configs[case["config"].as_str().expect("config")].to_string();
            let config = SchedulerConfig::from_json_str(&config_text).expect("config");
            let kind = SamplerKind::from_cli_name(case["sampler"].as_str().expect("sampler"))
                .expect("sampler name");
            let steps = case["steps"].as_u64().expect("steps") as usize;
            let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).expect("shape");
            let numel: usize = shape.iter().product();
            let mut rng = TorchRng::new(case["seed"].as_u64().expect("seed"));
            let mut scheduler = make(kind, &config, steps);
            let device = candle_core::Device::Cpu;
            let tensor = |v: Vec<f32>| Tensor::from_vec(v, shape.as_slice(), &device).expect("t");
            let mut x = match case["strength"].as_f64() {
                None => {
                    let sigma = scheduler.init_noise_sigma() as f32;
                    tensor(rng.randn(numel).into_iter().map(|v| v * sigma).collect())
                }
                Some(strength) => {
                    scheduler.set_strength(strength as f32).expect("strength");
                    let z = tensor(rng.randn(numel));
                    let noise = tensor(rng.randn(numel));
                    scheduler.add_noise(&z, &noise, 0).expect("add_noise")
                }
            };
            let timesteps: Vec<f64> =
                serde_json::from_value(case["timesteps"].clone()).expect("timesteps");
            assert_close(scheduler.timesteps(), &timesteps, 1e-4, name);
            let mut compare = |got: &Tensor, key: String| {
                let want = reference(&key).unwrap_or_else(|| panic!("missing {key}"));
                let got = to_f32_vec(got).expect("f32");
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
                for (g, w) in got.iter().zip(&want) {
                    let error = f64::from((g - w).abs() / scale);
                    worst = worst.max(error);
                    assert!(error <= 1e-5, "{key}: {g} vs {w}");
                }
            };
            compare(&x, format!("{name}.x_init"));
            for i in 0..scheduler.len() {
                let model_in = scheduler.scale_model_input(&x, i).expect("scale");
                if tensors.contains_key(&format!("{name}.model_in.{i}")) {
                    compare(&model_in, format!("{name}.model_in.{i}"));
                }
                let offset = (i as f64).sin() as f32;
                let values = to_f32_vec(&model_in).expect("f32");
                let model_out = tensor(values.into_iter().map(|v| v * 0.1 + offset).collect());
                x = scheduler.step(&model_out, i, &x, &mut rng).expect("step");
                compare(&x, format!("{name}.out.{i}"));
            }
        }
        eprintln!(
            "{} sampler cases; worst error / max|x| = {worst:e}",
            cases.len()
        );
        assert!(!cases.is_empty());
    }
}
