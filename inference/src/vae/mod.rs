//! diffusers `AutoencoderKL`: the VAE that maps images to latents and back.

pub mod preview;
pub mod taesd;
pub mod tiled;

use crate::kernels::conv::Conv2d;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use crate::unet::resnet::{NormConfig, ResBlock, conv1x1, conv3x3};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use candle_nn::{Module, VarBuilder};
use serde::Deserialize;

/// Mirror of diffusers `vae/config.json` (fields Kiln reads).
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    /// Image channels (3).
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out (3).
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level (decoder has one more).
    #[serde(default = "one")]
    pub layers_per_block: usize,
    /// Latent channels (4).
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// GroupNorm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latent scaling factor (0.18215 SD1/2, 0.13025 SDXL).
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
    /// Whether the mid blocks have attention.
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    /// Whether `quant_conv` exists.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether `post_quant_conv` exists.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// The model must run in f32 (SDXL).
    #[serde(default)]
    pub force_upcast: bool,
}

fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn sd_scale() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

impl VaeConfig {
    /// Parses a `vae/config.json` value and checks it.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let config: VaeConfig = serde_json::from_value(crate::io::model::without_nulls(value))
            .map_err(|e| Error::InvalidArgument(format!("vae config: {e}")))?;
        if config.block_out_channels.is_empty()
            || config
                .block_out_channels
                .iter()
                .any(|c| c % config.norm_num_groups != 0)
        {
            return Err(Error::InvalidArgument(format!(
                "vae config: channels {:?} do not split into {} groups",
                config.block_out_channels, config.norm_num_groups
            )));
        }
        Ok(config)
    }

    /// Pixels per latent cell (8 for every SD VAE).
    pub fn scale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

pub(crate) const VAE_EPS: f64 = 1e-6;

/// Single-head self-attention over all pixels (the VAE mid block).
#[derive(Debug)]
pub(crate) struct MidAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    /// bf16 products when built in bf16 precision (the decoder), f32 otherwise.
    precision: crate::kernels::Precision,
}

impl MidAttention {
    pub(crate) fn new(vb: VarBuilder, channels: usize, groups: usize) -> Result<Self> {
        // Old diffusers files name the projections query/key/value/proj_attn.
        let name = |new: &str, old: &str| -> String {
            if vb.contains_tensor(&format!("{new}.weight"))
                || !vb.contains_tensor(&format!("{old}.weight"))
            {
                new.to_string()
            } else {
                old.to_string()
            }
        };
        Ok(MidAttention {
            group_norm: GroupNorm::new(groups, channels, VAE_EPS, vb.pp("group_norm"))?,
            to_q: crate::kernels::linear::linear(channels, channels, vb.pp(name("to_q", "query")))?,
            to_k: crate::kernels::linear::linear(channels, channels, vb.pp(name("to_k", "key")))?,
            to_v: crate::kernels::linear::linear(channels, channels, vb.pp(name("to_v", "value")))?,
            to_out: crate::kernels::linear::linear(
                channels,
                channels,
                vb.pp(name("to_out.0", "proj_attn")),
            )?,
            precision: crate::kernels::weight_precision(),
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .group_norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.to_q.forward(&tokens)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        let scale = (c as f64).powf(-0.5);
        let out = crate::kernels::attention::multi_head(&q, &k, &v, 1, scale, self.precision)?;
        let out = self.to_out.forward(&out)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        Ok((out + x)?)
    }
}

#[derive(Debug)]
struct MidBlock {
    resnet0: ResBlock,
    attention: Option<MidAttention>,
    resnet1: ResBlock,
}

impl MidBlock {
    fn new(vb: VarBuilder, channels: usize, norm: NormConfig, attention: bool) -> Result<Self> {
        Ok(MidBlock {
            resnet0: ResBlock::new(vb.pp("resnets").pp(0), channels, channels, None, norm)?,
            attention: if attention {
                Some(MidAttention::new(
                    vb.pp("attentions").pp(0),
                    channels,
                    norm.groups,
                )?)
            } else {
                None
            },
            resnet1: ResBlock::new(vb.pp("resnets").pp(1), channels, channels, None, norm)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.resnet0.forward(x, None)?;
        if let Some(a) = &self.attention {
            x = a.forward(&x)?;
        }
        self.resnet1.forward(&x, None)
    }
}

#[derive(Debug)]
struct EncoderLevel {
    resnets: Vec<ResBlock>,
    downsample: Option<Conv2d>,
}

/// The VAE encoder: image `[B,3,H,W]` in [-1,1] → latent moments.
#[derive(Debug)]
pub(crate) struct Encoder {
    conv_in: Conv2d,
    levels: Vec<EncoderLevel>,
    mid: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    pub(crate) fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let norm = NormConfig {
            groups: cfg.norm_num_groups,
            eps: VAE_EPS,
        };
        let chans = &cfg.block_out_channels;
        let first = chans.first().copied().unwrap_or(0);
        let last = chans.last().copied().unwrap_or(0);
        let mut levels = Vec::new();
        let mut in_ch = first;
        for (i, &out_ch) in chans.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    let rin = if j == 0 { in_ch } else { out_ch };
                    ResBlock::new(bvb.pp("resnets").pp(j), rin, out_ch, None, norm)
                })
                .collect::<Result<Vec<_>>>()?;
            let downsample = if i + 1 < chans.len() {
                Some(Conv2d::new(
                    out_ch,
                    out_ch,
                    3,
                    2,
                    0,
                    bvb.pp("downsamplers").pp(0).pp("conv"),
                )?)
            } else {
                None
            };
            levels.push(EncoderLevel {
                resnets,
                downsample,
            });
            in_ch = out_ch;
        }
        Ok(Encoder {
            conv_in: conv3x3(cfg.in_channels, first, 1, vb.pp("conv_in"))?,
            levels,
            mid: MidBlock::new(vb.pp("mid_block"), last, norm, cfg.mid_block_add_attention)?,
            conv_norm_out: GroupNorm::new(norm.groups, last, VAE_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(last, 2 * cfg.latent_channels, 1, vb.pp("conv_out"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for level in &self.levels {
            for r in &level.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(ds) = &level.downsample {
                // Asymmetric zero pad (right 1, bottom 1), then a stride-2 conv without padding.
                let padded = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
                x = ds.forward(&padded)?;
            }
        }
        let x = self.mid.forward(&x)?;
        let x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.forward(&x)
    }
}

#[derive(Debug)]
struct DecoderLevel {
    resnets: Vec<ResBlock>,
    upsample: Option<Conv2d>,
}

/// The VAE decoder: latent → image in [-1,1].
#[derive(Debug)]
struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    levels: Vec<DecoderLevel>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let norm = NormConfig {
            groups: cfg.norm_num_groups,
            eps: VAE_EPS,
        };
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let top = reversed.first().copied().unwrap_or(0);
        let bottom = reversed.last().copied().unwrap_or(0);
        let mut levels = Vec::new();
        let mut out_ch = top;
        for (i, &ch) in reversed.iter().enumerate() {
            let prev = out_ch;
            out_ch = ch;
            let bvb = vb.pp("up_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| {
                    let rin = if j == 0 { prev } else { out_ch };
                    ResBlock::new(bvb.pp("resnets").pp(j), rin, out_ch, None, norm)
                })
                .collect::<Result<Vec<_>>>()?;
            let upsample = if i + 1 < reversed.len() {
                Some(conv3x3(
                    out_ch,
                    out_ch,
                    1,
                    bvb.pp("upsamplers").pp(0).pp("conv"),
                )?)
            } else {
                None
            };
            levels.push(DecoderLevel { resnets, upsample });
        }
        Ok(Decoder {
            conv_in: conv3x3(cfg.latent_channels, top, 1, vb.pp("conv_in"))?,
            mid: MidBlock::new(vb.pp("mid_block"), top, norm, cfg.mid_block_add_attention)?,
            levels,
            conv_norm_out: GroupNorm::new(norm.groups, bottom, VAE_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(bottom, cfg.out_channels, 1, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let x = self.conv_in.forward(z)?;
        let mut x = self.mid.forward(&x)?;
        for level in &self.levels {
            for r in &level.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(up) = &level.upsample {
                let (_, _, h, w) = x.dims4()?;
                x = up.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)?;
            }
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.forward(&x)
    }
}

/// Latent distribution returned by the encoder.
#[derive(Debug)]
pub struct LatentDist {
    /// Mean `[B, 4, h, w]`.
    pub mean: Tensor,
    /// Log-variance, clamped to [-30, 20] as diffusers does.
    pub logvar: Tensor,
}

impl LatentDist {
    /// `mean + exp(0.5·logvar)·noise` (diffusers `DiagonalGaussianDistribution.sample`).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        let std = (&self.logvar * 0.5)?.exp()?;
        Ok((&self.mean + (std * noise)?)?)
    }
}

/// The autoencoder.
#[derive(Debug)]
pub struct Vae {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    config: VaeConfig,
    dtype: DType,
}

impl Vae {
    /// Loads the VAE (diffusers names). The encoder (and its quant conv) always keep f32
    /// weights: it runs once per image, and bf16 weights there move img2img results more than
    /// the decoder's do; the decoder follows [`crate::kernels::with_precision`].
    pub fn new(vb: VarBuilder, config: &VaeConfig) -> Result<Self> {
        use crate::kernels::{Precision, with_precision};
        let lc = config.latent_channels;
        let encoder = with_precision(Precision::F32, || Encoder::new(vb.pp("encoder"), config))?;
        let quant_conv = with_precision(Precision::F32, || {
            config
                .use_quant_conv
                .then(|| conv1x1(2 * lc, 2 * lc, vb.pp("quant_conv")))
                .transpose()
        })?;
        Ok(Vae {
            encoder,
            decoder: Decoder::new(vb.pp("decoder"), config)?,
            quant_conv,
            post_quant_conv: if config.use_post_quant_conv {
                Some(conv1x1(lc, lc, vb.pp("post_quant_conv"))?)
            } else {
                None
            },
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Encodes an image `[B,3,H,W]` in [-1,1].
    pub fn encode(&self, image: &Tensor) -> Result<LatentDist> {
        let x = image.to_dtype(self.dtype)?;
        let mut moments = self.encoder.forward(&x)?;
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        let moments = moments.to_dtype(DType::F32)?;
        let lc = self.config.latent_channels;
        Ok(LatentDist {
            mean: moments.narrow(1, 0, lc)?,
            logvar: moments.narrow(1, lc, lc)?.clamp(-30f32, 20f32)?,
        })
    }

    /// Decodes latents (already divided by the scaling factor) to an image in about [-1,1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut z = z.to_dtype(self.dtype)?;
        if let Some(p) = &self.post_quant_conv {
            z = p.forward(&z)?;
        }
        Ok(self.decoder.forward(&z)?.to_dtype(DType::F32)?)
    }
}
