//! Text-to-image and image-to-image for SD1.x, SD2.x and SDXL, following diffusers'
//! `StableDiffusion(XL)Pipeline` and `…Img2ImgPipeline` step for step (RNG draw order included).

use crate::adapters::controlnet::ControlNet;
use crate::io::family::{Family, ModelKind};
use crate::io::model::ModelFiles;
use crate::kernels::{Precision, with_precision};
use crate::pipelines::conditioning::{Conditioning, Encoder, Layer, chunk_count, encode_with};
use crate::pipelines::regions::RegionRequest;
use crate::sampling::rng::TorchRng;
use crate::sampling::scheduler::{Scheduler, SchedulerConfig};
use crate::text::clip::{ClipTextConfig, ClipTextModel};
use crate::text::tokenizer::ClipTokenizer;
use crate::unet::regional::{RegionLayer, RegionalAttention, RowRegions};
use crate::unet::{TextTimeInputs, UNet, UNetConfig, UNetHooks};
use crate::vae::tiled::{needs_tiling, tiled_decode};
use crate::vae::{Vae, VaeConfig};
use crate::{CancelToken, Error, Result, SamplerKind};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;

mod batch;
mod loras;
use loras::Sources;

/// What to generate (one image).
#[derive(Clone, Debug, Default)]
pub struct GenerateRequest {
    /// Positive prompt (A1111 syntax).
    pub prompt: String,
    /// Negative prompt; `None` = not given.
    pub negative: Option<String>,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Steps (before img2img strength).
    pub steps: usize,
    /// Guidance scale; ≤ 1 disables CFG.
    pub cfg: f32,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Init image (already at width×height) and strength.
    pub init: Option<(RgbImage, f32)>,
    /// A1111 clip skip (1 = none).
    pub clip_skip: u32,
    /// Seed.
    pub seed: u64,
    /// ControlNets with their guides, applied together (residuals summed).
    pub controls: Vec<ControlRequest>,
    /// ControlNet guess mode: ControlNets see only the conditional half, residuals are scaled
    /// from 0.1 (shallow) to 1.0 (mid).
    pub guess_mode: bool,
    /// Inpainting mask at the output size (white = repaint; binarised at 50 %); needs `init`.
    pub mask: Option<image::GrayImage>,
    /// Regional prompts, coverage at the output size (`docs/REGIONAL.md`).
    pub regions: Vec<RegionRequest>,
    /// IP-Adapters with their image tokens, applied together in every cross-attention.
    pub ip_adapters: Vec<crate::adapters::ip_adapter::IpAdapterRequest>,
}

/// Latent-space state of a masked (inpainting) generation.
struct Inpaint {
    /// `[1, 1, h, w]`, 1 = repaint.
    mask: Tensor,
    /// Clean latents of the init image (blended back outside the mask by 4-channel UNets).
    image_latents: Option<Tensor>,
    /// The noise the initial latents were made with (re-noises `image_latents` each step).
    noise: Tensor,
    /// Extra UNet input of 9-channel inpainting UNets: mask and masked-image latents.
    extra: Option<Tensor>,
}

/// One ControlNet with its guide for a generation.
#[derive(Clone, Debug)]
pub struct ControlRequest {
    /// The network.
    pub net: std::sync::Arc<ControlNet>,
    /// Guide image at the output size (RGB).
    pub guide: RgbImage,
    /// Inpainting guide (diffusers `make_inpaint_condition`): pixels where this mask (output
    /// size) is at least 50 % are −1 in the guide instead of their colour.
    pub masked: Option<image::GrayImage>,
    /// What the network attends to instead of the prompt: `[1, T, C]` tokens for the
    /// conditional row and for the unconditional one (InstantID's IdentityNet reads the face
    /// tokens).
    pub context: Option<(Tensor, Tensor)>,
    /// Residual scale.
    pub scale: f32,
    /// First fraction of the steps it acts on.
    pub start: f32,
    /// Last fraction of the steps it acts on.
    pub end: f32,
}

/// diffusers' `controlnet_keep`: step `i` of `n` uses the ControlNet unless
/// `i/n < start` or `(i+1)/n > end`.
pub fn control_active(i: usize, n: usize, start: f32, end: f32) -> bool {
    let n = n.max(1) as f64;
    !((i as f64) / n < f64::from(start) || (i as f64 + 1.0) / n > f64::from(end))
}

/// One finished step, for progress reporting.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub total: usize,
    /// Current latents `[1, 4, h, w]` (for previews).
    pub latents: Tensor,
}

/// A loaded Stable Diffusion model.
pub struct StableDiffusion {
    kind: ModelKind,
    tokenizer: ClipTokenizer,
    text_encoder: Option<(ClipTextModel, u32)>,
    text_encoder_2: Option<(ClipTextModel, u32)>,
    unet: UNet,
    vae: Vae,
    scheduler_config: SchedulerConfig,
    force_zeros_for_empty_prompt: bool,
    device: Device,
    /// Where the adaptable parts came from, to rebuild them with LoRA patches.
    sources: Sources,
    /// Weight precision of the UNet and VAE.
    precision: Precision,
    /// The UNet and VAE decoder on the GPU, when [`Self::use_gpu`] attached them.
    gpu: Option<GpuParts>,
}

/// The parts a GPU runs.
struct GpuParts {
    unet: crate::gpu::unet::GpuUNet,
    vae: crate::gpu::vae::GpuVaeDecoder,
    adapter: String,
    /// Why the GPU stopped being used (out of memory, a lost device): from then on this model
    /// runs on the CPU.
    failed: std::sync::Mutex<Option<String>>,
}

impl GpuParts {
    /// Still usable.
    fn usable(&self) -> bool {
        self.failed.lock().map(|f| f.is_none()).unwrap_or(false)
    }

    /// Runs `gpu`; a GPU error marks the GPU unusable and runs `cpu` instead.
    fn or_cpu<T>(
        &self,
        gpu: impl FnOnce() -> Result<T>,
        cpu: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if !self.usable() {
            return cpu();
        }
        match gpu() {
            Err(Error::Gpu(reason)) => {
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some(reason);
                }
                cpu()
            }
            other => other,
        }
    }
}

fn load_clip(
    files: &ModelFiles,
    name: &'static str,
    with_projection: bool,
    device: &Device,
    pad: u32,
    sources: &mut Sources,
    precision: Precision,
) -> Result<Option<(ClipTextModel, u32)>> {
    let Some(component) = files.components.get(name) else {
        return Ok(None);
    };
    let cfg = ClipTextConfig::from_json(&component.config)?;
    // In bf16 the Linear weights are packed as bf16 (half the memory); a cache of the f32
    // tensors would then be a second copy, so LoRA changes read the mapped file again.
    let weights = match precision {
        Precision::F32 => component.weights.clone().with_cache(),
        Precision::Bf16 | Precision::Int8 => component.weights.clone(),
    };
    let vb = weights.var_builder(DType::F32, device);
    let model = with_precision(precision, || ClipTextModel::new(vb, &cfg, with_projection))?;
    sources.add_text(name, weights, cfg, with_projection);
    Ok(Some((model, pad)))
}

impl StableDiffusion {
    /// Loads every part of the model in f32. `on_stage` names each part as it loads.
    pub fn load(
        files: &ModelFiles,
        device: &Device,
        on_stage: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        Self::load_with(files, device, Precision::F32, on_stage)
    }

    /// Loads the model with the weights of the UNet, the VAE and the text encoders' Linear
    /// layers in `precision` (embeddings and norms stay f32).
    pub fn load_with(
        files: &ModelFiles,
        device: &Device,
        precision: Precision,
        on_stage: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let kind = files.kind;
        if kind.family == Family::Svd {
            return Err(Error::InvalidArgument(
                "this is a video model (SVD); use `kiln video`".into(),
            ));
        }
        on_stage("tokenizer");
        let tokenizer = match &files.tokenizer.files {
            Some((vocab, merges)) => ClipTokenizer::from_files(vocab, merges)?,
            None => match &files.tokenizer_2.files {
                Some((vocab, merges)) => ClipTokenizer::from_files(vocab, merges)?,
                None => ClipTokenizer::bundled()?,
            },
        };
        on_stage("text encoder");
        let sdxl = kind.family.is_sdxl();
        let mut sources = Sources::default();
        let text_encoder = load_clip(
            files,
            "text_encoder",
            false,
            device,
            files.tokenizer.pad_id,
            &mut sources,
            precision,
        )?;
        let text_encoder_2 = load_clip(
            files,
            "text_encoder_2",
            true,
            device,
            files.tokenizer_2.pad_id,
            &mut sources,
            precision,
        )?;
        if text_encoder.is_none() && text_encoder_2.is_none() {
            return Err(Error::UnknownCheckpoint {
                detail: "no text encoder".into(),
                path: files.path.clone(),
            });
        }
        if sdxl && text_encoder_2.is_none() {
            return Err(Error::UnknownCheckpoint {
                detail: "SDXL model without text_encoder_2".into(),
                path: files.path.clone(),
            });
        }
        on_stage("unet");
        let unet_c = files.component("unet")?;
        let unet_cfg = UNetConfig::from_json(&unet_c.config)?;
        // The cache lets LoRA changes rebuild the UNet without reading the file again; with
        // packed bf16 weights it would keep a second, f32 copy of every layer, so bf16 models
        // read the (memory-mapped) file again on a LoRA change instead.
        let unet_weights = match precision {
            Precision::F32 => unet_c.weights.clone().with_cache(),
            Precision::Bf16 | Precision::Int8 => unet_c.weights.clone(),
        };
        let unet = with_precision(precision, || {
            UNet::new(unet_weights.var_builder(DType::F32, device), &unet_cfg)
        })?;
        let unet_source = match precision {
            Precision::F32 => loras::UnetWeights::Kept(unet_weights),
            Precision::Bf16 | Precision::Int8 => loras::UnetWeights::Reopen(files.path.clone()),
        };
        sources.set_unet(unet_source, unet_cfg);
        on_stage("vae");
        let vae_c = files.component("vae")?;
        let vae_cfg = VaeConfig::from_json(&vae_c.config)?;
        let vae = with_precision(precision, || {
            Vae::new(vae_c.weights.var_builder(DType::F32, device), &vae_cfg)
        })?;
        let scheduler_config = match &files.scheduler_config {
            Some(text) => SchedulerConfig::from_json_str(text)?,
            None if sdxl => SchedulerConfig::sdxl_default(),
            None => SchedulerConfig::sd15_default(),
        };
        Ok(StableDiffusion {
            kind,
            tokenizer,
            text_encoder,
            text_encoder_2,
            unet,
            vae,
            scheduler_config,
            force_zeros_for_empty_prompt: files.force_zeros_for_empty_prompt,
            device: device.clone(),
            sources,
            precision,
            gpu: None,
        })
    }

    /// Family and variant.
    pub fn kind(&self) -> &ModelKind {
        &self.kind
    }

    /// The tokenizer (for token counts).
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// Pixels per latent cell.
    pub fn vae_scale_factor(&self) -> usize {
        self.vae.config().scale_factor()
    }

    /// The VAE (previews and tests).
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// Uploads the UNet and the VAE decoder of `files` (this model's files) to `gpu`: from
    /// then on the denoising loop and the decode run there (f32), except for what the GPU path
    /// does not do yet — LoRA-patched UNets, ControlNets, IP-Adapters/InstantID and regional
    /// prompts run the CPU UNet, tiled decodes the CPU decoder.
    pub fn use_gpu(
        &mut self,
        gpu: std::sync::Arc<crate::gpu::Gpu>,
        files: &ModelFiles,
    ) -> Result<()> {
        let unet_c = files.component("unet")?;
        let unet_cfg = UNetConfig::from_json(&unet_c.config)?;
        let vae_c = files.component("vae")?;
        let vae_cfg = VaeConfig::from_json(&vae_c.config)?;
        let adapter = gpu.adapter_name();
        let unet = crate::gpu::unet::GpuUNet::new(gpu.clone(), &unet_c.weights, &unet_cfg)?;
        let vae = crate::gpu::vae::GpuVaeDecoder::new(gpu, &vae_c.weights, &vae_cfg)?;
        self.gpu = Some(GpuParts {
            unet,
            vae,
            adapter,
            failed: std::sync::Mutex::new(None),
        });
        Ok(())
    }

    /// The GPU adapter the model runs on, if any.
    pub fn gpu_adapter(&self) -> Option<&str> {
        self.gpu.as_ref().map(|g| g.adapter.as_str())
    }

    /// Why the GPU was given up for the CPU (out of GPU memory, …), if it was.
    pub fn gpu_failure(&self) -> Option<String> {
        self.gpu
            .as_ref()
            .and_then(|g| g.failed.lock().ok().and_then(|f| f.clone()))
    }

    /// Weight precision of the UNet and VAE.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The UNet (tests).
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    fn encoders(&self) -> Vec<(Encoder<'_>, Layer)> {
        let sdxl = self.kind.family.is_sdxl();
        let mut out = Vec::new();
        for (model, pad) in [&self.text_encoder, &self.text_encoder_2]
            .into_iter()
            .flatten()
        {
            let layer = if sdxl {
                Layer::Penultimate { skip: 1 }
            } else {
                Layer::WithFinalNorm { skip: 1 }
            };
            out.push((
                Encoder {
                    model,
                    pad_id: *pad,
                },
                layer,
            ));
            if !sdxl {
                break;
            }
        }
        out
    }

    /// Encodes a prompt (SD: one encoder; SDXL: both, concatenated), padded to `min_chunks`.
    pub fn encode_prompt(
        &self,
        prompt: &str,
        clip_skip: u32,
        min_chunks: usize,
    ) -> Result<Conditioning> {
        let skip = clip_skip.max(1) as usize;
        let mut contexts = Vec::new();
        let mut pooled = None;
        for (encoder, layer) in self.encoders() {
            let layer = match layer {
                Layer::Penultimate { .. } => Layer::Penultimate { skip },
                Layer::WithFinalNorm { .. } => Layer::WithFinalNorm { skip },
            };
            let (context, p) = encode_with(
                &self.tokenizer,
                &encoder,
                prompt,
                layer,
                min_chunks,
                &self.device,
            )?;
            contexts.push(context);
            pooled = Some(p);
        }
        let context = Tensor::cat(&contexts, 2)?;
        let pooled = if self.kind.family.is_sdxl() {
            pooled
        } else {
            None
        };
        Ok(Conditioning { context, pooled })
    }

    fn chunks_needed(&self, prompt: &str) -> usize {
        self.encoders()
            .iter()
            .map(|(e, _)| chunk_count(&self.tokenizer, prompt, e.pad_id))
            .max()
            .unwrap_or(1)
    }

    /// Positive and negative conditioning with equal chunk counts.
    fn conditioning(&self, req: &GenerateRequest) -> Result<(Conditioning, Conditioning)> {
        self.conditioning_padded(req, 1)
    }

    /// [`Self::conditioning`] padded to at least `min_chunks` chunks (batches of prompts).
    fn conditioning_padded(
        &self,
        req: &GenerateRequest,
        min_chunks: usize,
    ) -> Result<(Conditioning, Conditioning)> {
        let neg_text = req.negative.clone().unwrap_or_default();
        let chunks = self
            .chunks_needed(&req.prompt)
            .max(self.chunks_needed(&neg_text))
            .max(min_chunks);
        let positive = self.encode_prompt(&req.prompt, req.clip_skip, chunks)?;
        let zero_negative = req.negative.is_none()
            && self.kind.family.is_sdxl()
            && self.force_zeros_for_empty_prompt;
        let negative = if zero_negative {
            Conditioning {
                context: positive.context.zeros_like()?,
                pooled: match &positive.pooled {
                    Some(p) => Some(p.zeros_like()?),
                    None => None,
                },
            }
        } else {
            // diffusers applies clip skip to the positive prompt only (SD and SDXL alike).
            self.encode_prompt(&neg_text, 1, chunks)?
        };
        Ok((positive, negative))
    }

    /// The regional-prompt attention processor of a request (`None` without regions). Region
    /// prompts are encoded like the prompt (clip skip included), their negatives like the
    /// negative; opacity = coverage / 255 · weight. With CFG, row 0 (unconditional) gets the
    /// regions that have their own negative, row 1 every region; without CFG, row 0 every region.
    fn regional_attention(
        &self,
        req: &GenerateRequest,
        use_cfg: bool,
    ) -> Result<Option<RegionalAttention>> {
        if req.regions.is_empty() {
            return Ok(None);
        }
        let mut cond = Vec::with_capacity(req.regions.len());
        let mut uncond = Vec::new();
        for (i, region) in req.regions.iter().enumerate() {
            if region.coverage.dimensions() != (req.width, req.height) {
                return Err(Error::InvalidArgument(format!(
                    "region {} coverage is {}x{}, expected {}x{}",
                    i + 1,
                    region.coverage.width(),
                    region.coverage.height(),
                    req.width,
                    req.height
                )));
            }
            let alpha: std::sync::Arc<[f32]> = region
                .coverage
                .as_raw()
                .iter()
                .map(|&v| f32::from(v) / 255.0 * region.weight)
                .collect();
            let context = self
                .encode_prompt(&region.prompt, req.clip_skip, 1)?
                .context;
            if use_cfg && let Some(negative) = &region.negative {
                uncond.push(RegionLayer {
                    context: self.encode_prompt(negative, 1, 1)?.context,
                    alpha: alpha.clone(),
                });
            }
            cond.push(RegionLayer { context, alpha });
        }
        let mut rows = Vec::with_capacity(2);
        if !uncond.is_empty() {
            rows.push(RowRegions {
                row: 0,
                layers: uncond,
            });
        }
        rows.push(RowRegions {
            row: usize::from(use_cfg),
            layers: cond,
        });
        let pixels = (req.height as usize, req.width as usize);
        Ok(Some(RegionalAttention::new(pixels, rows)?))
    }

    /// SDXL micro-conditioning ids for a `height × width` output.
    fn time_ids(&self, height: u32, width: u32, negative: bool) -> Result<Option<Tensor>> {
        let Some(tt) = &self.unet.config().text_time else {
            return Ok(None);
        };
        let pooled_dim = self
            .text_encoder_2
            .as_ref()
            .and_then(|(m, _)| m.projection_dim())
            .unwrap_or(0);
        let ids_count = (tt.input_dim.saturating_sub(pooled_dim)) / tt.time_embed_dim.max(1);
        let (h, w) = (height as f32, width as f32);
        let ids: Vec<f32> = if ids_count == 5 {
            // Refiner: aesthetic score 6.0 (negative 2.5).
            vec![h, w, 0.0, 0.0, if negative { 2.5 } else { 6.0 }]
        } else {
            vec![h, w, 0.0, 0.0, h, w]
        };
        let n = ids.len();
        Ok(Some(Tensor::from_vec(ids, (1, n), &self.device)?))
    }

    /// Converts an RGB image to a `[1,3,H,W]` tensor in [-1,1].
    fn image_tensor(&self, image: &RgbImage) -> Result<Tensor> {
        let (w, h) = image.dimensions();
        let data: Vec<f32> = image
            .as_raw()
            .iter()
            .map(|&v| v as f32 / 255.0 * 2.0 - 1.0)
            .collect();
        Ok(
            Tensor::from_vec(data, (h as usize, w as usize, 3), &self.device)?
                .permute((2, 0, 1))?
                .unsqueeze(0)?
                .contiguous()?,
        )
    }

    /// Extra UNet input of 9-channel inpainting models when no mask is given: a mask of ones
    /// and the latents of an all-masked (zero) image, so the whole picture is generated
    /// (the A1111 convention for txt2img/img2img with inpainting checkpoints).
    fn inpaint_channels(
        &self,
        req: &GenerateRequest,
        h: usize,
        w: usize,
        sf: f64,
    ) -> Result<Option<Tensor>> {
        let in_channels = self.unet.config().in_channels;
        let latent_channels = self.vae.config().latent_channels;
        if in_channels == latent_channels {
            return Ok(None);
        }
        if in_channels != 2 * latent_channels + 1 {
            return Err(Error::InvalidArgument(format!(
                "unsupported UNet with {in_channels} input channels"
            )));
        }
        let blank = Tensor::zeros(
            (1, 3, req.height as usize, req.width as usize),
            DType::F32,
            &self.device,
        )?;
        let masked = (self.vae.encode(&blank)?.mean * sf)?;
        let mask = Tensor::ones((1, 1, h, w), DType::F32, &self.device)?;
        Ok(Some(Tensor::cat(&[&mask, &masked], 1)?))
    }

    /// Initial latents without a mask: noise, or the noised init image (img2img).
    fn initial_latents(
        &self,
        req: &GenerateRequest,
        scheduler: &mut Scheduler,
        rng: &mut TorchRng,
        (h, w): (usize, usize),
    ) -> Result<Tensor> {
        let sf = self.vae.config().scaling_factor;
        let latent_channels = self.vae.config().latent_channels;
        match &req.init {
            None => {
                let noise = rng.randn_tensor(&[1, latent_channels, h, w])?;
                Ok((noise * scheduler.init_noise_sigma())?)
            }
            Some((image, strength)) => {
                self.check_init(req, image, *strength)?;
                scheduler.set_strength(*strength)?;
                let dist = self.vae.encode(&self.image_tensor(image)?)?;
                let sample_noise = rng.randn_tensor(dist.mean.dims())?;
                let z = (dist.sample(&sample_noise)? * sf)?;
                let noise = rng.randn_tensor(z.dims())?;
                scheduler.add_noise(&z, &noise, 0)
            }
        }
    }

    fn check_init(&self, req: &GenerateRequest, image: &RgbImage, strength: f32) -> Result<()> {
        if !(strength > 0.0 && strength <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "strength must be in (0, 1], got {strength}"
            )));
        }
        if image.dimensions() != (req.width, req.height) {
            return Err(Error::InvalidArgument(format!(
                "init image is {}x{}, expected {}x{}",
                image.width(),
                image.height(),
                req.width,
                req.height
            )));
        }
        Ok(())
    }

    /// A VAE latent sample of `image` (`[-1, 1]`), scaled, drawing its noise from `rng`.
    fn encode_sample(&self, image: &Tensor, rng: &mut TorchRng) -> Result<Tensor> {
        let dist = self.vae.encode(image)?;
        let noise = rng.randn_tensor(dist.mean.dims())?;
        Ok((dist.sample(&noise)? * self.vae.config().scaling_factor)?)
    }

    /// Initial latents and inpainting state for a masked generation, in diffusers'
    /// `StableDiffusionInpaintPipeline` order of random draws: init-image latents (4-channel
    /// UNets, or strength < 1), noise, masked-image latents.
    fn masked_latents(
        &self,
        req: &GenerateRequest,
        mask: &image::GrayImage,
        scheduler: &mut Scheduler,
        rng: &mut TorchRng,
    ) -> Result<(Tensor, Inpaint)> {
        let Some((image, strength)) = &req.init else {
            return Err(Error::InvalidArgument(
                "an inpainting mask needs an init image".into(),
            ));
        };
        self.check_init(req, image, *strength)?;
        if mask.dimensions() != (req.width, req.height) {
            return Err(Error::InvalidArgument(format!(
                "mask is {}x{}, expected {}x{}",
                mask.width(),
                mask.height(),
                req.width,
                req.height
            )));
        }
        scheduler.set_strength(*strength)?;
        let (width, height) = (req.width as usize, req.height as usize);
        let factor = self.vae_scale_factor();
        let binary: Vec<f32> = mask
            .as_raw()
            .iter()
            .map(|&v| if f32::from(v) / 255.0 < 0.5 { 0.0 } else { 1.0 })
            .collect();
        // Nearest-neighbour downsampling, as torch's `interpolate(mode="nearest")`.
        let (h, w) = (height / factor, width / factor);
        let small: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = (i / w * factor, i % w * factor);
                binary.get(y * width + x).copied().unwrap_or(0.0)
            })
            .collect();
        let full = Tensor::from_vec(binary, (1, 1, height, width), &self.device)?;
        let latent_mask = Tensor::from_vec(small, (1, 1, h, w), &self.device)?;
        let init = self.image_tensor(image)?;
        let latent_channels = self.vae.config().latent_channels;
        let four_channel = self.unet.config().in_channels == latent_channels;
        let strength_max = *strength >= 1.0;
        let image_latents = if four_channel || !strength_max {
            Some(self.encode_sample(&init, rng)?)
        } else {
            None
        };
        let noise = rng.randn_tensor(&[1, latent_channels, h, w])?;
        let latents = match (&image_latents, strength_max) {
            (Some(z), false) => scheduler.add_noise(z, &noise, 0)?,
            _ => (&noise * scheduler.init_noise_sigma())?,
        };
        let masked_image = init.broadcast_mul(&(1.0 - &full)?)?;
        let masked_latents = self.encode_sample(&masked_image, rng)?;
        let extra = if four_channel {
            None
        } else {
            Some(Tensor::cat(&[&latent_mask, &masked_latents], 1)?)
        };
        Ok((
            latents,
            Inpaint {
                mask: latent_mask,
                image_latents,
                noise,
                extra,
            },
        ))
    }

    /// Guide tensors `[B, 3, H, W]` in [0, 1], one per ControlNet (doubled for CFG unless in
    /// guess mode).
    fn control_guides(&self, req: &GenerateRequest, use_cfg: bool) -> Result<Vec<Tensor>> {
        let mut guides = Vec::with_capacity(req.controls.len());
        for control in &req.controls {
            if control.guide.dimensions() != (req.width, req.height) {
                return Err(Error::InvalidArgument(format!(
                    "ControlNet guide is {}x{}, expected {}x{}",
                    control.guide.width(),
                    control.guide.height(),
                    req.width,
                    req.height
                )));
            }
            let (w, h) = control.guide.dimensions();
            let guide = Tensor::from_vec(
                control.guide.as_raw().clone(),
                (h as usize, w as usize, 3),
                &self.device,
            )?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .to_dtype(DType::F32)?;
            let mut guide = (guide / 255.0)?;
            if let Some(mask) = &control.masked {
                if mask.dimensions() != (w, h) {
                    return Err(Error::InvalidArgument(format!(
                        "ControlNet inpainting mask is {}x{}, expected {w}x{h}",
                        mask.width(),
                        mask.height()
                    )));
                }
                let keep: Vec<f32> = mask
                    .as_raw()
                    .iter()
                    .map(|&v| if v >= 128 { 0.0 } else { 1.0 })
                    .collect();
                let keep = Tensor::from_vec(keep, (1, 1, h as usize, w as usize), &self.device)?;
                // keep·x + (1 − keep)·(−1)
                guide =
                    (guide.broadcast_mul(&keep)? + (keep - 1.0)?.broadcast_as(guide.shape())?)?;
            }
            guides.push(if use_cfg && !req.guess_mode {
                Tensor::cat(&[&guide, &guide], 0)?
            } else {
                guide
            });
        }
        Ok(guides)
    }

    /// Summed ControlNet residuals for step `i` of `total`, or `None` when no ControlNet acts.
    #[allow(clippy::too_many_arguments)]
    fn control_residuals(
        &self,
        req: &GenerateRequest,
        guides: &[Tensor],
        i: usize,
        total: usize,
        latent_in: &Tensor,
        t: f32,
        context: &Tensor,
        text_time: Option<&TextTimeInputs>,
        use_cfg: bool,
    ) -> Result<Option<(Vec<Tensor>, Tensor)>> {
        let mut sum: Option<(Vec<Tensor>, Tensor)> = None;
        let cond_only = use_cfg && req.guess_mode;
        for (control, guide) in req.controls.iter().zip(guides) {
            if !control_active(i, total, control.start, control.end) || control.scale == 0.0 {
                continue;
            }
            let own_context;
            let context = match &control.context {
                Some((positive, negative)) => {
                    own_context = if use_cfg {
                        Tensor::cat(&[negative, positive], 0)?
                    } else {
                        positive.clone()
                    };
                    &own_context
                }
                None => context,
            };
            let (down, mid) = if cond_only {
                let half = |t: &Tensor| t.narrow(0, 1, 1);
                let tt = match text_time {
                    Some(tt) => Some(TextTimeInputs {
                        text_embeds: half(&tt.text_embeds)?,
                        time_ids: half(&tt.time_ids)?,
                    }),
                    None => None,
                };
                let (down, mid) = control.net.forward(
                    latent_in,
                    t,
                    &half(context)?,
                    tt.as_ref(),
                    guide,
                    control.scale,
                    true,
                )?;
                let pad =
                    |r: Tensor| -> Result<Tensor> { Ok(Tensor::cat(&[&r.zeros_like()?, &r], 0)?) };
                (
                    down.into_iter().map(pad).collect::<Result<Vec<_>>>()?,
                    pad(mid)?,
                )
            } else {
                let input = if use_cfg {
                    Tensor::cat(&[latent_in, latent_in], 0)?
                } else {
                    latent_in.clone()
                };
                control.net.forward(
                    &input,
                    t,
                    context,
                    text_time,
                    guide,
                    control.scale,
                    req.guess_mode,
                )?
            };
            sum = Some(match sum {
                None => (down, mid),
                Some((sd, sm)) => (
                    sd.iter()
                        .zip(&down)
                        .map(|(a, b)| Ok((a + b)?))
                        .collect::<Result<Vec<_>>>()?,
                    (sm + mid)?,
                ),
            });
        }
        Ok(sum)
    }

    /// Runs the denoising loop and decodes one image.
    pub fn generate(
        &self,
        req: &GenerateRequest,
        on_step: &mut dyn FnMut(StepInfo),
        cancel: &CancelToken,
    ) -> Result<RgbImage> {
        let factor = self.vae_scale_factor() as u32;
        if req.width == 0
            || req.height == 0
            || !req.width.is_multiple_of(8)
            || !req.height.is_multiple_of(8)
        {
            return Err(Error::BadSize {
                width: req.width,
                height: req.height,
            });
        }
        if req.steps == 0 {
            return Err(Error::InvalidArgument("steps must be at least 1".into()));
        }
        let (h, w) = (
            (req.height / factor) as usize,
            (req.width / factor) as usize,
        );
        let (positive, negative) = self.conditioning(req)?;
        let use_cfg = req.cfg > 1.0;
        let mut rng = TorchRng::new(req.seed);
        let mut scheduler = Scheduler::new(req.sampler, &self.scheduler_config, req.steps)?;
        let sf = self.vae.config().scaling_factor;

        let (mut latents, inpaint) = match &req.mask {
            Some(mask) => {
                let (latents, inpaint) =
                    self.masked_latents(req, mask, &mut scheduler, &mut rng)?;
                (latents, Some(inpaint))
            }
            None => (
                self.initial_latents(req, &mut scheduler, &mut rng, (h, w))?,
                None,
            ),
        };

        let context = if use_cfg {
            Tensor::cat(&[&negative.context, &positive.context], 0)?
        } else {
            positive.context.clone()
        };
        let text_time = match (
            &positive.pooled,
            self.time_ids(req.height, req.width, false)?,
        ) {
            (Some(pooled), Some(ids)) => Some(if use_cfg {
                let neg_ids = self
                    .time_ids(req.height, req.width, true)?
                    .unwrap_or(ids.clone());
                let neg_pooled = negative.pooled.clone().unwrap_or(pooled.zeros_like()?);
                TextTimeInputs {
                    text_embeds: Tensor::cat(&[&neg_pooled, pooled], 0)?,
                    time_ids: Tensor::cat(&[&neg_ids, &ids], 0)?,
                }
            } else {
                TextTimeInputs {
                    text_embeds: pooled.clone(),
                    time_ids: ids,
                }
            }),
            _ => None,
        };

        let inpaint_extra = match &inpaint {
            Some(state) => state.extra.clone(),
            None => self.inpaint_channels(req, h, w, sf)?,
        };
        let guides = self.control_guides(req, use_cfg)?;
        let regional = self.regional_attention(req, use_cfg)?;
        let attention =
            crate::adapters::ip_adapter::attention_processor(&req.ip_adapters, use_cfg, regional)?;
        let total = scheduler.len();
        let timesteps: Vec<f64> = scheduler.timesteps().to_vec();
        for (i, t) in timesteps.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let model_in = scheduler.scale_model_input(&latents, i)?;
            let control = self.control_residuals(
                req,
                &guides,
                i,
                total,
                &model_in,
                *t as f32,
                &context,
                text_time.as_ref(),
                use_cfg,
            )?;
            let model_in = match &inpaint_extra {
                Some(extra) => Tensor::cat(&[&model_in, extra], 1)?,
                None => model_in,
            };
            let model_in = if use_cfg {
                Tensor::cat(&[&model_in, &model_in], 0)?
            } else {
                model_in
            };
            let mut hooks = match &control {
                Some((down, mid)) => UNetHooks {
                    down_residuals: Some(down),
                    mid_residual: Some(mid),
                    ..UNetHooks::default()
                },
                None => UNetHooks::default(),
            };
            hooks.attention = attention.as_deref();
            let gpu_unet = self.gpu.as_ref().filter(|_| {
                control.is_none() && attention.is_none() && !self.sources.unet_patched()
            });
            let cpu_unet = || {
                self.unet
                    .forward(&model_in, *t as f32, &context, text_time.as_ref(), &hooks)
            };
            let out = match gpu_unet {
                Some(g) => g.or_cpu(
                    || {
                        g.unet
                            .forward(&model_in, *t as f32, &context, text_time.as_ref())
                    },
                    cpu_unet,
                )?,
                None => cpu_unet()?,
            };
            let guided = if use_cfg {
                let uncond = out.get(0)?.unsqueeze(0)?;
                let cond = out.get(1)?.unsqueeze(0)?;
                (&uncond + ((cond - &uncond)? * req.cfg as f64)?)?
            } else {
                out
            };
            latents = scheduler.step(&guided, i, &latents, &mut rng)?;
            if let Some(Inpaint {
                mask,
                image_latents: Some(clean),
                noise,
                ..
            }) = &inpaint
                && inpaint_extra.is_none()
            {
                // 4-channel UNets: outside the mask, the init image noised to the next level.
                let proper = if i + 1 < total {
                    scheduler.add_noise(clean, noise, i + 1)?
                } else {
                    clean.clone()
                };
                let keep = (1.0 - mask)?;
                latents = (proper.broadcast_mul(&keep)? + latents.broadcast_mul(mask)?)?;
            }
            on_step(StepInfo {
                step: i + 1,
                total,
                latents: latents.clone(),
            });
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let z = (latents / sf)?;
        let (_, _, lh, lw) = z.dims4()?;
        let decoded = if needs_tiling(lh, lw, self.precision()) {
            tiled_decode(&self.vae, &z)?
        } else if let Some(g) = &self.gpu {
            g.or_cpu(|| g.vae.decode(&z), || self.vae.decode(&z))?
        } else {
            self.vae.decode(&z)?
        };
        tensor_to_image(&decoded)
    }
}

/// diffusers postprocess: `clamp(x/2 + 0.5, 0, 1)`, `round(x·255)` → RGB8 (first image).
pub fn tensor_to_image(decoded: &Tensor) -> Result<RgbImage> {
    let img = decoded.get(0)?.to_dtype(DType::F32)?;
    let (c, h, w) = img.dims3()?;
    if c != 3 {
        return Err(Error::InvalidArgument(format!("decoder gave {c} channels")));
    }
    let img = ((img / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
    let hwc: Vec<f32> = img.permute((1, 2, 0))?.flatten_all()?.to_vec1()?;
    let bytes: Vec<u8> = hwc.iter().map(|v| (v * 255.0).round() as u8).collect();
    RgbImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| Error::Image("decoded image has the wrong size".into()))
}
