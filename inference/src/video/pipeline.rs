//! diffusers `StableVideoDiffusionPipeline` (`pipelines/stable_video_diffusion/`): image to
//! video with SVD / SVD-XT folders.
//!
//! The still is encoded twice: by the CLIP image encoder (after SVD's own
//! `_resize_with_antialiasing` to 224×224: Gaussian blur then bicubic with aligned corners)
//! into one context token, and by the VAE (after `image + noise_aug_strength·randn`) into the
//! latent that is concatenated to every frame's noisy latent. Added time ids are
//! `[fps − 1, motion_bucket_id, noise_aug_strength]`. Classifier-free guidance uses zero
//! embeddings and zero latents, with a guidance scale per frame rising linearly from
//! `min_guidance` to `max_guidance`. The sampler is the model's `EulerDiscreteScheduler`
//! (Karras sigmas, v-prediction, continuous timesteps). Frames decode in chunks of
//! `decode_chunk` frames. Random numbers come from one torch-compatible generator in
//! diffusers' order (augmentation noise, then the initial latents).

use super::cost::{CostModel, VideoEstimate};
use super::unet::{SvdUNet, SvdUNetConfig};
use super::vae::TemporalVae;
use crate::adapters::ip_adapter::clip_vision::{
    CLIP_MEAN, CLIP_STD, ClipVisionConfig, ClipVisionModel,
};
use crate::io::model::component_weight_files;
use crate::io::weights::{Weights, open_safetensors};
use crate::kernels::{Precision, with_precision};
use crate::sampling::rng::TorchRng;
use crate::sampling::scheduler::{Scheduler, SchedulerConfig};
use crate::vae::VaeConfig;
use crate::vision::interpolate::{Mode, interpolate_planes};
use crate::vision::resample::{PilFilter, resize_like_pil};
use crate::{CancelToken, Error, Result, SamplerKind};
use candle_core::{DType, Device, Tensor};
use image::{GrayImage, RgbImage};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Settings of one clip (diffusers' `__call__` arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoParams {
    /// Frame width in pixels (multiple of 8).
    pub width: usize,
    /// Frame height in pixels (multiple of 8).
    pub height: usize,
    /// Frames to generate (the model's `num_frames` when `None`).
    pub frames: Option<usize>,
    /// Denoising steps.
    pub steps: usize,
    /// Seed of the torch-compatible generator.
    pub seed: u64,
    /// Frames per second the clip is conditioned on (the UNet sees `fps − 1`).
    pub fps: u32,
    /// Motion bucket id (more motion when higher; 127 by default).
    pub motion_bucket_id: u32,
    /// Noise added to the conditioning image (0.02 by default).
    pub noise_aug_strength: f32,
    /// Guidance of the first frame.
    pub min_guidance: f32,
    /// Guidance of the last frame.
    pub max_guidance: f32,
    /// Frames decoded together (all when `None`).
    pub decode_chunk: Option<usize>,
    /// Motion brush: white where the clip may move, black where it stays the still (any size;
    /// scaled to the frame, edge softened). `None` lets everything move.
    pub motion_mask: Option<GrayImage>,
    /// Loop: the last frames are steered back to the first, so the clip can repeat seamlessly.
    pub loop_clip: bool,
}

impl Default for VideoParams {
    fn default() -> Self {
        VideoParams {
            width: 1024,
            height: 576,
            frames: None,
            steps: 25,
            seed: 0,
            fps: 7,
            motion_bucket_id: 127,
            noise_aug_strength: 0.02,
            min_guidance: 1.0,
            max_guidance: 3.0,
            decode_chunk: None,
            motion_mask: None,
            loop_clip: false,
        }
    }
}

/// What a running clip reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoProgress {
    /// A denoising step finished.
    Step {
        /// Steps done.
        step: usize,
        /// All steps.
        total: usize,
    },
    /// Frames were decoded.
    Decoded {
        /// Frames decoded so far.
        frames: usize,
        /// All frames.
        total: usize,
    },
}

/// A loaded SVD folder.
#[derive(Debug)]
pub struct SvdPipeline {
    unet: SvdUNet,
    unet_cost: CostModel,
    decoder_cost: CostModel,
    vae: TemporalVae,
    image_encoder: ClipVisionModel,
    scheduler_config: SchedulerConfig,
    image_mean: [f32; 3],
    image_std: [f32; 3],
    device: Device,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(e, path))?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
        format: "JSON",
        detail: e.to_string(),
        path: path.to_path_buf(),
    })
}

fn component(root: &Path, name: &str) -> Result<(serde_json::Value, Weights)> {
    let dir = root.join(name);
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(Error::UnknownCheckpoint {
            detail: format!("not a Stable Video Diffusion folder: {name}/config.json is missing"),
            path: root.to_path_buf(),
        });
    }
    let config = read_json(&config_path)?;
    let files: Vec<PathBuf> = component_weight_files(&dir, "diffusion_pytorch_model")?;
    let st = Arc::new(open_safetensors(&files)?);
    Ok((config, Weights::identity(st, name)))
}

/// Reads `image_mean`/`image_std` of `feature_extractor/preprocessor_config.json` (CLIP's when
/// absent).
fn normalisation(root: &Path) -> Result<([f32; 3], [f32; 3])> {
    let path = root
        .join("feature_extractor")
        .join("preprocessor_config.json");
    if !path.is_file() {
        return Ok((CLIP_MEAN, CLIP_STD));
    }
    let value = read_json(&path)?;
    let triple = |key: &str, default: [f32; 3]| -> [f32; 3] {
        match value.get(key).and_then(|v| v.as_array()) {
            Some(list) if list.len() == 3 => {
                let mut out = default;
                for (slot, v) in out.iter_mut().zip(list) {
                    if let Some(x) = v.as_f64() {
                        *slot = x as f32;
                    }
                }
                out
            }
            _ => default,
        }
    };
    Ok((
        triple("image_mean", CLIP_MEAN),
        triple("image_std", CLIP_STD),
    ))
}

/// What a folder or a single file provides before the models are built.
struct Parts {
    unet_json: serde_json::Value,
    unet_weights: Weights,
    vae_json: serde_json::Value,
    vae_weights: Weights,
    image_encoder: ClipVisionModel,
    scheduler_config: SchedulerConfig,
    image_mean: [f32; 3],
    image_std: [f32; 3],
}

impl Parts {
    /// A diffusers folder.
    fn folder(root: &Path, device: &Device) -> Result<Self> {
        let (unet_json, unet_weights) = component(root, "unet")?;
        let class = unet_json.get("_class_name").and_then(|v| v.as_str());
        if let Some(class) = class.filter(|c| *c != "UNetSpatioTemporalConditionModel") {
            return Err(Error::UnknownCheckpoint {
                detail: format!("not a Stable Video Diffusion folder: its unet is a {class}"),
                path: root.to_path_buf(),
            });
        }
        let (vae_json, vae_weights) = component(root, "vae")?;
        let image_encoder = ClipVisionModel::load(&root.join("image_encoder"), device)?;
        let scheduler_path = root.join("scheduler").join("scheduler_config.json");
        let text =
            std::fs::read_to_string(&scheduler_path).map_err(|e| Error::io(e, &scheduler_path))?;
        let scheduler_config = SchedulerConfig::from_json_str(&text)?;
        let (image_mean, image_std) = normalisation(root)?;
        Ok(Parts {
            unet_json,
            unet_weights,
            vae_json,
            vae_weights,
            image_encoder,
            scheduler_config,
            image_mean,
            image_std,
        })
    }

    /// A single file in Stability's layout ([`super::single_file`]).
    fn single_file(path: &Path, device: &Device) -> Result<Self> {
        let file = super::single_file::open(path)?;
        let clip_config = ClipVisionConfig::from_json(&file.image_encoder.config, path)?;
        let image_encoder = ClipVisionModel::new(
            file.image_encoder.weights.var_builder(DType::F32, device),
            &clip_config,
        )?;
        Ok(Parts {
            unet_json: file.unet.config,
            unet_weights: file.unet.weights,
            vae_json: file.vae.config,
            vae_weights: file.vae.weights,
            image_encoder,
            scheduler_config: SchedulerConfig::from_json_str(super::single_file::SCHEDULER_CONFIG)?,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        })
    }
}

impl SvdPipeline {
    /// Loads a diffusers SVD folder (`unet/`, `vae/`, `image_encoder/`, `feature_extractor/`,
    /// `scheduler/`) or a single `svd*.safetensors` file in float32 (the parity path).
    pub fn load(root: &Path, device: &Device) -> Result<Self> {
        Self::load_with_precision(root, device, Precision::F32)
    }

    /// [`Self::load`] with the UNet's and VAE decoder's weights stored and multiplied in
    /// `precision` (bf16 halves the UNet's 6 GiB and runs faster on CPUs with AVX512-BF16;
    /// activations, the VAE encoder and the image encoder stay float32).
    pub fn load_with_precision(root: &Path, device: &Device, precision: Precision) -> Result<Self> {
        let parts = if root.is_file() {
            Parts::single_file(root, device)?
        } else {
            Parts::folder(root, device)?
        };
        let Parts {
            unet_json,
            unet_weights,
            vae_json,
            vae_weights,
            image_encoder,
            scheduler_config,
            image_mean,
            image_std,
        } = parts;
        let unet_config = SvdUNetConfig::from_json(&unet_json)?;
        let unet_cost = CostModel::unet(&unet_weights);
        let unet = with_precision(precision, || {
            SvdUNet::new(unet_weights.var_builder(DType::F32, device), &unet_config)
        })?;
        let vae_config = VaeConfig::from_json(&vae_json)?;
        let decoder_cost = CostModel::decoder(&vae_weights);
        let vae = with_precision(precision, || {
            TemporalVae::new(vae_weights.var_builder(DType::F32, device), &vae_config)
        })?;
        Ok(SvdPipeline {
            unet,
            unet_cost,
            decoder_cost,
            vae,
            image_encoder,
            scheduler_config,
            image_mean,
            image_std,
            device: device.clone(),
        })
    }

    /// Frames the model was trained with (14 or 25).
    pub fn default_frames(&self) -> usize {
        self.unet.config().num_frames
    }

    /// What `params` will cost (FLOPs of a step and of the decode), for a time estimate before
    /// the clip starts.
    pub fn estimate(&self, params: &VideoParams) -> VideoEstimate {
        let frames = params.frames.unwrap_or(self.unet.config().num_frames);
        let scale = self.vae.config().scale_factor();
        let (h, w) = (params.height / scale, params.width / scale);
        let batch = if params.max_guidance > 1.0 { 2 } else { 1 };
        VideoEstimate {
            step_flops: self.unet_cost.flops(h, w, frames) * batch as f64,
            steps: params.steps,
            decode_flops: self.decoder_cost.flops(h, w, frames),
            frames,
        }
    }

    /// The CLIP image embedding `[1, 1, D]` of the still.
    pub fn image_embeddings(&self, image: &RgbImage) -> Result<Tensor> {
        let side = self.image_encoder.config().image_size;
        let (w, h) = (image.width() as usize, image.height() as usize);
        // pil_to_numpy (/255), then ·2 − 1.
        let mut planes = vec![0f32; 3 * h * w];
        for (x, y, pixel) in image.enumerate_pixels() {
            for c in 0..3 {
                planes[c * h * w + y as usize * w + x as usize] =
                    f32::from(pixel[c]) / 255.0 * 2.0 - 1.0;
            }
        }
        let resized = resize_with_antialiasing(&planes, 3, (h, w), (224, 224));
        if side != 224 {
            return Err(Error::InvalidArgument(format!(
                "the SVD image encoder must take 224×224 images, this one takes {side}×{side}"
            )));
        }
        let plane = 224 * 224;
        let mut pixels = vec![0f32; 3 * plane];
        for c in 0..3 {
            for i in 0..plane {
                let v = (resized[c * plane + i] + 1.0) / 2.0;
                pixels[c * plane + i] = (v - self.image_mean[c]) / self.image_std[c];
            }
        }
        let pixels = Tensor::from_vec(pixels, (1, 3, 224, 224), &self.device)?;
        Ok(self.image_encoder.image_embeds(&pixels)?.unsqueeze(1)?)
    }

    /// Runs the pipeline on `image`; returns the frames.
    pub fn run(
        &self,
        image: &RgbImage,
        params: &VideoParams,
        on_progress: &mut dyn FnMut(VideoProgress),
        cancel: &CancelToken,
    ) -> Result<Vec<RgbImage>> {
        let latents = self.sample(image, params, on_progress, cancel)?;
        self.decode(&latents, params, on_progress, cancel)
    }

    /// The denoising half of [`Self::run`]: the clip's latents `[frames, C, h, w]` (scaled by
    /// the VAE's scaling factor, as the sampler leaves them).
    pub fn sample(
        &self,
        image: &RgbImage,
        params: &VideoParams,
        on_progress: &mut dyn FnMut(VideoProgress),
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let frames = params.frames.unwrap_or(self.unet.config().num_frames);
        check_params(image, params, frames)?;
        let (width, height) = (params.width, params.height);
        let cfg = params.max_guidance > 1.0;
        let device = &self.device;

        let mut embeddings = self.image_embeddings(image)?;
        if cfg {
            embeddings = Tensor::cat(&[&embeddings.zeros_like()?, &embeddings], 0)?;
        }

        // video_processor.preprocess: Pillow Lanczos to the size, /255, ·2 − 1.
        let resized = if (image.width() as usize, image.height() as usize) == (width, height) {
            image.clone()
        } else {
            resize_like_pil(image, width as u32, height as u32, PilFilter::Lanczos)
        };
        let mut values = vec![0f32; 3 * height * width];
        for (x, y, pixel) in resized.enumerate_pixels() {
            for c in 0..3 {
                values[c * height * width + y as usize * width + x as usize] =
                    f32::from(pixel[c]) / 255.0 * 2.0 - 1.0;
            }
        }
        let still = Tensor::from_vec(values, (1, 3, height, width), device)?;
        let mut rng = TorchRng::new(params.seed);
        let noise = rng
            .randn_tensor(&[1, 3, height, width])?
            .to_device(device)?;
        let aug = f64::from(params.noise_aug_strength);
        let steer = Steering::new(params, frames, self, &still)?;
        let mut image_latents = self.vae.encode_mode(&(&still + (noise * aug)?)?)?;
        if cfg {
            image_latents = Tensor::cat(&[&image_latents.zeros_like()?, &image_latents], 0)?;
        }
        let image_latents = image_latents.unsqueeze(1)?.repeat((1, frames, 1, 1, 1))?;

        let ids = [
            params.fps as f32 - 1.0,
            params.motion_bucket_id as f32,
            params.noise_aug_strength,
        ];
        let batch = if cfg { 2 } else { 1 };
        let added_time_ids = Tensor::new(&ids, device)?
            .unsqueeze(0)?
            .repeat((batch, 1))?;

        let mut scheduler =
            Scheduler::new(SamplerKind::Euler, &self.scheduler_config, params.steps)?;
        let lc = self.vae.config().latent_channels;
        let scale = self.vae.config().scale_factor();
        let (lh, lw) = (height / scale, width / scale);
        let latents = rng
            .randn_tensor(&[1, frames, lc, lh, lw])?
            .to_device(device)?;
        let mut latents = (latents * scheduler.init_noise_sigma())?;

        let guidance = Tensor::from_vec(
            torch_linspace(params.min_guidance, params.max_guidance, frames),
            (1, frames, 1, 1, 1),
            device,
        )?;
        let timesteps: Vec<f64> = scheduler.timesteps().to_vec();
        let total = timesteps.len();
        for (i, &t) in timesteps.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let input = if cfg {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let input = scheduler.scale_model_input(&input, i)?;
            let input = Tensor::cat(&[&input, &image_latents], 2)?;
            let prediction = self
                .unet
                .forward(&input, t as f32, &embeddings, &added_time_ids)?;
            let prediction = if cfg {
                let uncond = prediction.narrow(0, 0, 1)?;
                let cond = prediction.narrow(0, 1, 1)?;
                (&uncond + (cond - &uncond)?.broadcast_mul(&guidance)?)?
            } else {
                prediction
            };
            let stepped = scheduler.step(&prediction, i, &latents, &mut rng)?;
            latents = match &steer {
                Some(steer) => steer.apply(&scheduler, &prediction, i, &latents, stepped)?,
                None => stepped,
            };
            on_progress(VideoProgress::Step { step: i + 1, total });
        }

        Ok(latents.squeeze(0)?)
    }

    /// The decoding half of [`Self::run`]: frames of `latents` (from [`Self::sample`]), decoded
    /// `params.decode_chunk` frames at a time.
    pub fn decode(
        &self,
        latents: &Tensor,
        params: &VideoParams,
        on_progress: &mut dyn FnMut(VideoProgress),
        cancel: &CancelToken,
    ) -> Result<Vec<RgbImage>> {
        // decode_latents: 1/scaling_factor · latents, chunk by chunk.
        let frames = latents.dim(0)?;
        let sf = 1.0 / self.vae.config().scaling_factor;
        let flat = (latents * sf)?;
        let chunk = params.decode_chunk.unwrap_or(frames).max(1);
        let mut out = Vec::with_capacity(frames);
        let mut start = 0;
        while start < frames {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let len = chunk.min(frames - start);
            let decoded = self.vae.decode_chunk(&flat.narrow(0, start, len)?)?;
            for f in 0..len {
                out.push(to_image(&decoded.get(f)?)?);
            }
            start += len;
            on_progress(VideoProgress::Decoded {
                frames: start,
                total: frames,
            });
        }
        Ok(out)
    }
}

/// Steering of the denoised estimate x0 at every step (Euler): the motion brush pulls x0 toward
/// the still's latent where the mask is black, the loop pulls the last frames' x0 toward the
/// first frame's. The sample moves as if the sampler had stepped from the steered x0, so the
/// noise already in the latents is kept and the last step lands exactly on the steered x0.
struct Steering {
    /// Per latent pixel: 1 where the clip may move, 0 where it stays the still (feathered).
    mask: Option<Vec<f32>>,
    /// The still's latent `[C, h, w]`, scaled like the frames' latents (only with a mask).
    still: Vec<f32>,
    /// Per frame: how far its x0 is pulled toward the first frame's (0 for most frames).
    loop_weights: Vec<f32>,
}

/// Share of the frames over which a looping clip turns back to its first frame.
const LOOP_RAMP_DIVISOR: usize = 3;

/// σ, in latent pixels, of the Gaussian that softens the motion brush's edge.
const MASK_FEATHER_SIGMA: f32 = 1.0;

impl Steering {
    fn new(
        params: &VideoParams,
        frames: usize,
        pipeline: &SvdPipeline,
        still: &Tensor,
    ) -> Result<Option<Self>> {
        let scale = pipeline.vae.config().scale_factor();
        let (lh, lw) = (params.height / scale, params.width / scale);
        let mask = params
            .motion_mask
            .as_ref()
            .map(|m| latent_mask(m, lw, lh))
            .filter(|m| m.iter().any(|&v| v < 1.0));
        let loop_weights = if params.loop_clip {
            loop_weights(frames)
        } else {
            vec![0.0; frames]
        };
        if mask.is_none() && loop_weights.iter().all(|&w| w == 0.0) {
            return Ok(None);
        }
        let still = match mask {
            Some(_) => {
                let sf = pipeline.vae.config().scaling_factor;
                (pipeline.vae.encode_mode(still)? * sf)?
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1()?
            }
            None => Vec::new(),
        };
        Ok(Some(Steering {
            mask,
            still,
            loop_weights,
        }))
    }

    /// `stepped` (the sampler's step of `sample`) moved to where stepping from the steered x0
    /// leads.
    fn apply(
        &self,
        scheduler: &Scheduler,
        prediction: &Tensor,
        index: usize,
        sample: &Tensor,
        stepped: Tensor,
    ) -> Result<Tensor> {
        let (x0, sigma, sigma_next) = scheduler.euler_denoised(prediction, index, sample)?;
        let mut target = x0.clone();
        let frames = self.loop_weights.len();
        let per_frame = x0.len() / frames.max(1);
        let (first, _) = x0.split_at(per_frame);
        for (f, &w) in self.loop_weights.iter().enumerate() {
            if w > 0.0 {
                for (t, &a) in target[f * per_frame..(f + 1) * per_frame]
                    .iter_mut()
                    .zip(first)
                {
                    *t += w * (a - *t);
                }
            }
        }
        if let Some(mask) = &self.mask {
            let plane = mask.len();
            for frame in target.chunks_mut(per_frame) {
                for (i, (t, &s)) in frame.iter_mut().zip(&self.still).enumerate() {
                    let m = mask[i % plane];
                    *t = m * *t + (1.0 - m) * s;
                }
            }
        }
        let keep = 1.0 - sigma_next / sigma;
        let mut values: Vec<f32> = stepped.flatten_all()?.to_vec1()?;
        for ((v, &t), &x) in values.iter_mut().zip(&target).zip(&x0) {
            *v += keep * (t - x);
        }
        Ok(Tensor::from_vec(values, stepped.dims(), stepped.device())?)
    }
}

/// Loop weights per frame: 0, then rising linearly over the last third of the frames to 1 on
/// the last frame (which so returns to the first).
fn loop_weights(frames: usize) -> Vec<f32> {
    let mut weights = vec![0f32; frames];
    if frames < 2 {
        return weights;
    }
    let ramp = (frames / LOOP_RAMP_DIVISOR).clamp(1, frames - 1);
    for j in 1..=ramp {
        weights[frames - 1 - ramp + j] = j as f32 / ramp as f32;
    }
    weights
}

/// The motion mask at latent size `w`×`h`, in 0..=1: area-averaged, then feathered by a
/// Gaussian of [`MASK_FEATHER_SIGMA`] latent pixels (edges clamped).
fn latent_mask(mask: &GrayImage, w: usize, h: usize) -> Vec<f32> {
    let small = image::imageops::resize(
        mask,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    let values: Vec<f32> = small.pixels().map(|p| f32::from(p[0]) / 255.0).collect();
    let kernel = gaussian(5, MASK_FEATHER_SIGMA);
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut rows = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, g)| g * values[y * w + clamp(x as isize + k as isize - 2, w)])
                .sum();
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, g)| g * rows[clamp(y as isize + k as isize - 2, h) * w + x])
                .sum::<f32>();
            // Snap rounding noise so a white mask leaves the clip bit-identical.
            out[y * w + x] = match out[y * w + x] {
                v if v > 0.999 => 1.0,
                v if v < 0.001 => 0.0,
                v => v,
            };
        }
    }
    out
}

/// Pixels of the frames decoded together by [`auto_decode_chunk`]: two 1024×576 frames, about
/// 5–6 GiB of decoder activations in float32 (measured: 4 frames at 512×288 peak at 2.8 GiB
/// over the weights).
const DECODE_BUDGET_PIXELS: usize = 2 * 1024 * 576;

/// A decode chunk that keeps the temporal decoder's memory bounded: every frame at small sizes,
/// two frames at 1024×576. (diffusers' default decodes all frames at once.)
pub fn auto_decode_chunk(width: usize, height: usize, frames: usize) -> usize {
    (DECODE_BUDGET_PIXELS / (width * height).max(1)).clamp(1, frames.max(1))
}

fn check_params(image: &RgbImage, params: &VideoParams, frames: usize) -> Result<()> {
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::InvalidArgument("the input image is empty".into()));
    }
    if params.width == 0
        || params.height == 0
        || !params.width.is_multiple_of(8)
        || !params.height.is_multiple_of(8)
    {
        return Err(Error::BadSize {
            width: params.width as u32,
            height: params.height as u32,
        });
    }
    if frames == 0 {
        return Err(Error::InvalidArgument("frames must be at least 1".into()));
    }
    if params.fps == 0 {
        return Err(Error::InvalidArgument("fps must be at least 1".into()));
    }
    if !(params.min_guidance.is_finite() && params.max_guidance.is_finite())
        || params.min_guidance > params.max_guidance
    {
        return Err(Error::InvalidArgument(format!(
            "the first frame's guidance ({}) must not exceed the last frame's ({})",
            params.min_guidance, params.max_guidance
        )));
    }
    if !params.noise_aug_strength.is_finite() || params.noise_aug_strength < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "noise augmentation must be 0 or more, got {}",
            params.noise_aug_strength
        )));
    }
    if params.decode_chunk == Some(0) {
        return Err(Error::InvalidArgument(
            "the decode chunk must be at least 1 frame".into(),
        ));
    }
    Ok(())
}

/// `torch.linspace(start, end, steps)` in float32 (ATen fills the first half from the start
/// and the second half back from the end).
fn torch_linspace(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

/// `[3, H, W]` in [-1, 1] → RGB (`x·0.5 + 0.5`, clamped, `·255` rounded).
fn to_image(frame: &Tensor) -> Result<RgbImage> {
    let (c, h, w) = frame.dims3()?;
    if c != 3 {
        return Err(Error::InvalidArgument(format!(
            "decoded frame has {c} channels"
        )));
    }
    let values: Vec<f32> = frame.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut image = RgbImage::new(w as u32, h as u32);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        for ch in 0..3 {
            let v = values[ch * h * w + y as usize * w + x as usize];
            let v = (v * 0.5 + 0.5).clamp(0.0, 1.0);
            pixel[ch] = (v * 255.0).round() as u8;
        }
    }
    Ok(image)
}

/// 1-D Gaussian of `size` taps (odd) and `sigma`, normalised (diffusers `_gaussian`, float32).
fn gaussian(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size / 2) as f32;
    let taps: Vec<f32> = (0..size)
        .map(|i| {
            let x = i as f32 - half;
            (-(x * x) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

/// Index of `i` (may be out of range by less than `n`) under reflect padding.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let mut i = i;
    if i < 0 {
        i = -i;
    }
    if i >= n {
        i = 2 * (n - 1) - i;
    }
    i.clamp(0, n - 1) as usize
}

/// diffusers `_resize_with_antialiasing` (from kornia) on channel-major planes: Gaussian blur
/// with σ = max((factor − 1) / 2, 0.001) per axis (reflect padding, horizontal pass first),
/// then `F.interpolate(mode="bicubic", align_corners=True)`.
fn resize_with_antialiasing(
    data: &[f32],
    channels: usize,
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let factors = (h as f64 / out_h as f64, w as f64 / out_w as f64);
    let sigmas = (
        ((factors.0 - 1.0) / 2.0).max(0.001),
        ((factors.1 - 1.0) / 2.0).max(0.001),
    );
    let mut ks = (
        (2.0 * 2.0 * sigmas.0).max(3.0) as usize,
        (2.0 * 2.0 * sigmas.1).max(3.0) as usize,
    );
    if ks.0.is_multiple_of(2) {
        ks.0 += 1;
    }
    if ks.1.is_multiple_of(2) {
        ks.1 += 1;
    }
    let kernel_y = gaussian(ks.0, sigmas.0 as f32);
    let kernel_x = gaussian(ks.1, sigmas.1 as f32);
    let (pad_y, pad_x) = ((ks.0 - 1) / 2, (ks.1 - 1) / 2);
    let plane = h * w;
    let mut horizontal = vec![0f32; channels * plane];
    for c in 0..channels {
        for y in 0..h {
            let row = &data[c * plane + y * w..c * plane + (y + 1) * w];
            for x in 0..w {
                let mut sum = 0f32;
                for (k, weight) in kernel_x.iter().enumerate() {
                    let src = reflect(x as isize + k as isize - pad_x as isize, w);
                    sum += row[src] * weight;
                }
                horizontal[c * plane + y * w + x] = sum;
            }
        }
    }
    let mut blurred = vec![0f32; channels * plane];
    for c in 0..channels {
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0f32;
                for (k, weight) in kernel_y.iter().enumerate() {
                    let src = reflect(y as isize + k as isize - pad_y as isize, h);
                    sum += horizontal[c * plane + src * w + x] * weight;
                }
                blurred[c * plane + y * w + x] = sum;
            }
        }
    }
    interpolate_planes(
        &blurred,
        channels,
        (h, w),
        (out_h, out_w),
        Mode::Bicubic,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_chunks_shrink_with_the_frame_size() {
        assert_eq!(auto_decode_chunk(64, 64, 14), 14);
        assert_eq!(auto_decode_chunk(1024, 576, 25), 2);
        assert_eq!(auto_decode_chunk(512, 288, 14), 8);
        assert_eq!(auto_decode_chunk(4096, 4096, 14), 1);
    }

    #[test]
    fn loops_ramp_back_to_the_first_frame() {
        let w = loop_weights(14);
        assert_eq!(&w[..10], &[0.0; 10]);
        assert_eq!(&w[10..], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(loop_weights(2), vec![0.0, 1.0]);
        assert_eq!(loop_weights(1), vec![0.0]);
    }

    #[test]
    fn motion_masks_are_feathered_at_latent_size() {
        let mask = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 0 } else { 255 }]));
        let m = latent_mask(&mask, 8, 8);
        assert_eq!(m.len(), 64);
        assert!(m[0] < 0.01 && m[7] > 0.99, "{m:?}");
        // The edge between columns 3 and 4 is soft.
        assert!(
            m[3] > 0.05 && m[3] < 0.5 && m[4] > 0.5 && m[4] < 0.95,
            "{m:?}"
        );
        let white = GrayImage::from_pixel(10, 6, image::Luma([255]));
        assert!(latent_mask(&white, 8, 8).iter().all(|&v| v >= 1.0));
    }

    #[test]
    fn linspace_ends_exactly() {
        let v = torch_linspace(1.0, 3.0, 5);
        assert_eq!(v, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(torch_linspace(2.0, 2.0, 1), vec![2.0]);
    }

    #[test]
    fn reflect_padding_mirrors_without_the_edge() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-2, 5), 2);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(2, 5), 2);
    }
}
