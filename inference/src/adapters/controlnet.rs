//! ControlNet (FORMATS §6): a copy of the UNet encoder that reads a guide image and returns
//! residuals for the UNet's skip features and mid block.
//!
//! Loads diffusers folders (`config.json` + `diffusion_pytorch_model[.fp16].safetensors`) and
//! single files in the LDM layout (`control_model.` prefix optional; names mapped by
//! [`crate::io::ldm::controlnet_component`]).

use crate::io::ldm::controlnet_component;
use crate::io::model::component_weight_files;
use crate::io::weights::{Weights, open_safetensors};
use crate::kernels::conv::Conv2d;
use crate::unet::TextTimeInputs;
use crate::unet::config::UNetConfig;
use crate::unet::model::Encoder;
use crate::unet::resnet::conv3x3;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ControlNet settings beyond the UNet fields of its `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlNetConfig {
    /// The encoder's UNet configuration.
    pub unet: UNetConfig,
    /// Channels of the guide image (3).
    pub conditioning_channels: usize,
    /// Widths of the guide-embedding convs (`[16, 32, 96, 256]` in the originals).
    pub embedding_channels: Vec<usize>,
    /// Guide channels are BGR rather than RGB.
    pub bgr: bool,
    /// Residuals are averaged over space ("shuffle" ControlNets).
    pub global_pool: bool,
}

impl ControlNetConfig {
    /// Reads a diffusers ControlNet `config.json` value.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let unet = UNetConfig::from_json(value)?;
        let embedding_channels = match value.get("conditioning_embedding_out_channels") {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().map(|n| n as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "controlnet config: conditioning_embedding_out_channels must be integers"
                            .into(),
                    )
                })?,
            _ => vec![16, 32, 96, 256],
        };
        if embedding_channels.is_empty() {
            return Err(Error::InvalidArgument(
                "controlnet config: empty conditioning_embedding_out_channels".into(),
            ));
        }
        Ok(ControlNetConfig {
            unet,
            conditioning_channels: value
                .get("conditioning_channels")
                .and_then(|v| v.as_u64())
                .map_or(3, |n| n as usize),
            embedding_channels,
            bgr: value
                .get("controlnet_conditioning_channel_order")
                .and_then(|v| v.as_str())
                == Some("bgr"),
            global_pool: value
                .get("global_pool_conditions")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }
}

/// `controlnet_cond_embedding`: guide image → features at latent resolution.
#[derive(Debug)]
struct CondEmbedding {
    conv_in: Conv2d,
    blocks: Vec<Conv2d>,
    conv_out: Conv2d,
}

impl CondEmbedding {
    fn new(vb: VarBuilder, config: &ControlNetConfig, out_channels: usize) -> Result<Self> {
        let ch = &config.embedding_channels;
        let first = ch.first().copied().unwrap_or(16);
        let conv_in = conv3x3(config.conditioning_channels, first, 1, vb.pp("conv_in"))?;
        let mut blocks = Vec::new();
        for (i, pair) in ch.windows(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            blocks.push(conv3x3(a, a, 1, vb.pp("blocks").pp(2 * i))?);
            blocks.push(conv3x3(a, b, 2, vb.pp("blocks").pp(2 * i + 1))?);
        }
        let last = ch.last().copied().unwrap_or(first);
        let conv_out = conv3x3(last, out_channels, 1, vb.pp("conv_out"))?;
        Ok(CondEmbedding {
            conv_in,
            blocks,
            conv_out,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(x)?.silu()?;
        for block in &self.blocks {
            x = block.forward(&x)?.silu()?;
        }
        self.conv_out.forward(&x)
    }
}

/// A loaded ControlNet.
#[derive(Debug)]
pub struct ControlNet {
    encoder: Encoder,
    cond_embedding: CondEmbedding,
    down_convs: Vec<Conv2d>,
    mid_conv: Conv2d,
    config: ControlNetConfig,
    /// The file or folder it came from.
    pub path: PathBuf,
}

impl ControlNet {
    /// Builds the network from weights under diffusers names.
    pub fn new(vb: VarBuilder, config: &ControlNetConfig, path: &Path) -> Result<Self> {
        let unet = &config.unet;
        let encoder = Encoder::new(&vb, unet, &mut |_| Ok(()))?;
        let first = unet.down.first().map(|l| l.channels).unwrap_or(0);
        let cond_embedding = CondEmbedding::new(vb.pp("controlnet_cond_embedding"), config, first)?;
        // One zero conv per skip feature: conv_in, then each level's resnets and downsampler.
        let mut widths = vec![first];
        for (i, level) in unet.down.iter().enumerate() {
            widths.extend(std::iter::repeat_n(level.channels, unet.layers_per_block));
            if i + 1 < unet.down.len() {
                widths.push(level.channels);
            }
        }
        let mut down_convs = Vec::with_capacity(widths.len());
        for (i, &c) in widths.iter().enumerate() {
            down_convs.push(Conv2d::new(
                c,
                c,
                1,
                1,
                0,
                vb.pp("controlnet_down_blocks").pp(i),
            )?);
        }
        let last = unet.down.last().map(|l| l.channels).unwrap_or(0);
        let mid_conv = Conv2d::new(last, last, 1, 1, 0, vb.pp("controlnet_mid_block"))?;
        Ok(ControlNet {
            encoder,
            cond_embedding,
            down_convs,
            mid_conv,
            config: config.clone(),
            path: path.to_path_buf(),
        })
    }

    /// Loads a diffusers folder or a single `.safetensors` file (f32 on `device`).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (weights, config) = if path.is_dir() {
            let config_path = path.join("config.json");
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(e, &config_path))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
                    format: "JSON",
                    detail: e.to_string(),
                    path: config_path.clone(),
                })?;
            if value.get("_class_name").and_then(|v| v.as_str()) != Some("ControlNetModel") {
                return Err(not_a_controlnet(
                    path,
                    "config.json is not a ControlNetModel",
                ));
            }
            let files = component_weight_files(path, "diffusion_pytorch_model")?;
            let st = Arc::new(open_safetensors(&files)?);
            (
                Weights::identity(st, "controlnet"),
                ControlNetConfig::from_json(&crate::io::model::without_nulls(&value))?,
            )
        } else {
            let st = Arc::new(open_safetensors(&[path.to_path_buf()])?);
            let header = crate::io::weights::header_of(&st);
            let (tensors, value) = controlnet_component(&header, path)?;
            (
                Weights::mapped(st, tensors, "controlnet"),
                ControlNetConfig::from_json(&value)?,
            )
        };
        ControlNet::new(weights.var_builder(DType::F32, device), &config, path)
    }

    /// The configuration.
    pub fn config(&self) -> &ControlNetConfig {
        &self.config
    }

    /// Residuals for the UNet's skip features and mid block, each scaled (guess mode: by
    /// `logspace(−1, 0, n)·scale`, the mid residual by `scale`). `guide` is `[B, 3, H, W]` in
    /// [0, 1] RGB at the output size.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f32,
        context: &Tensor,
        text_time: Option<&TextTimeInputs>,
        guide: &Tensor,
        scale: f32,
        guess_mode: bool,
    ) -> Result<(Vec<Tensor>, Tensor)> {
        let enc = &self.encoder;
        let device = sample.device().clone();
        let sample = sample.to_dtype(enc.dtype)?;
        let context = context.to_dtype(enc.dtype)?;
        let b = sample.dim(0)?;
        let temb = enc.time_embed(&vec![timestep; b], text_time, &device)?;
        let temb_silu = temb.silu()?;
        let guide = guide.to_dtype(enc.dtype)?;
        let guide = if self.config.bgr {
            Tensor::cat(
                &[
                    &guide.narrow(1, 2, 1)?,
                    &guide.narrow(1, 1, 1)?,
                    &guide.narrow(1, 0, 1)?,
                ],
                1,
            )?
        } else {
            guide
        };
        let x = (enc.conv_in.forward(&sample)? + self.cond_embedding.forward(&guide)?)?;
        let (x, skips) = enc.down(x, &temb_silu, &context, None)?;
        let x = enc.mid(x, &temb_silu, &context, None)?;
        let n = skips.len() + 1;
        let scales: Vec<f64> = if guess_mode {
            (0..n)
                .map(|i| {
                    let t = if n > 1 {
                        i as f64 / (n - 1) as f64
                    } else {
                        1.0
                    };
                    10f64.powf(-1.0 + t) * f64::from(scale)
                })
                .collect()
        } else {
            vec![f64::from(scale); n]
        };
        let mut down = Vec::with_capacity(skips.len());
        for ((skip, conv), s) in skips.iter().zip(&self.down_convs).zip(&scales) {
            down.push(self.pool((conv.forward(skip)? * *s)?)?);
        }
        let mid_scale = scales.last().copied().unwrap_or(f64::from(scale));
        let mid = self.pool((self.mid_conv.forward(&x)? * mid_scale)?)?;
        Ok((down, mid))
    }

    fn pool(&self, t: Tensor) -> Result<Tensor> {
        if self.config.global_pool {
            Ok(t.mean_keepdim(2)?.mean_keepdim(3)?)
        } else {
            Ok(t)
        }
    }
}

fn not_a_controlnet(path: &Path, detail: &str) -> Error {
    Error::UnknownCheckpoint {
        detail: format!("not a ControlNet: {detail}"),
        path: path.to_path_buf(),
    }
}
