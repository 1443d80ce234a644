//! diffusers `UNetSpatioTemporalConditionModel` (`models/unets/unet_spatio_temporal_condition.py`
//! with the `*SpatioTemporal` blocks of `unet_3d_blocks.py`): the SVD denoiser. Frames are
//! denoised together; time and added time ids (fps − 1, motion bucket, noise augmentation) are
//! embedded once per clip and shared by its frames.

use super::blocks::{GROUPS, SpatioTemporalResBlock, StResConfig};
use super::transformer::TransformerSpatioTemporal;
use crate::kernels::conv::Conv2d;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use crate::unet::resnet::{Downsample, Upsample, conv3x3, timestep_embedding};
use crate::{Error, Result};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// An int or a per-level list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum PerLevel {
    One(usize),
    Each(Vec<usize>),
}

impl PerLevel {
    fn expand(&self, levels: usize, field: &str) -> Result<Vec<usize>> {
        match self {
            PerLevel::One(v) => Ok(vec![*v; levels]),
            PerLevel::Each(v) if v.len() == levels => Ok(v.clone()),
            PerLevel::Each(v) => Err(Error::InvalidArgument(format!(
                "svd unet config: {field} has {} entries for {levels} levels",
                v.len()
            ))),
        }
    }
}

/// Mirror of the SVD `unet/config.json`.
#[derive(Clone, Debug, Deserialize)]
struct SvdUNetJson {
    #[serde(default = "eight")]
    in_channels: usize,
    #[serde(default = "four")]
    out_channels: usize,
    down_block_types: Vec<String>,
    up_block_types: Vec<String>,
    block_out_channels: Vec<usize>,
    #[serde(default = "two_fifty_six")]
    addition_time_embed_dim: usize,
    #[serde(default = "seven_sixty_eight")]
    projection_class_embeddings_input_dim: usize,
    #[serde(default = "two_levels")]
    layers_per_block: PerLevel,
    #[serde(default = "ten_twenty_four")]
    cross_attention_dim: PerLevel,
    #[serde(default = "one_level")]
    transformer_layers_per_block: PerLevel,
    num_attention_heads: PerLevel,
    #[serde(default = "twenty_five")]
    num_frames: usize,
}

fn eight() -> usize {
    8
}
fn four() -> usize {
    4
}
fn two_fifty_six() -> usize {
    256
}
fn seven_sixty_eight() -> usize {
    768
}
fn two_levels() -> PerLevel {
    PerLevel::One(2)
}
fn one_level() -> PerLevel {
    PerLevel::One(1)
}
fn ten_twenty_four() -> PerLevel {
    PerLevel::One(1024)
}
fn twenty_five() -> usize {
    25
}

/// One level of the SVD UNet.
#[derive(Clone, Debug, PartialEq)]
pub struct SvdLevel {
    /// Output channels.
    pub channels: usize,
    /// Cross-attention transformers on this level (down and up).
    pub attention: bool,
    /// Attention heads.
    pub heads: usize,
    /// Resnets per down block (the up block has one more).
    pub layers: usize,
    /// Transformer block pairs per transformer.
    pub transformer_depth: usize,
    /// Context width.
    pub context_dim: usize,
}

/// Validated SVD UNet configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SvdUNetConfig {
    /// Latent + conditioning channels in (8).
    pub in_channels: usize,
    /// Channels out (4).
    pub out_channels: usize,
    /// Levels, top first (down order).
    pub levels: Vec<SvdLevel>,
    /// Which up levels (in up order) have attention.
    pub up_attention: Vec<bool>,
    /// Sinusoid width per added time id.
    pub addition_time_embed_dim: usize,
    /// Input width of `add_embedding`.
    pub add_embedding_input: usize,
    /// Frames the model was trained with (14 SVD, 25 SVD-XT).
    pub num_frames: usize,
}

impl SvdUNetConfig {
    /// Parses and checks a `unet/config.json` value.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let json: SvdUNetJson = serde_json::from_value(crate::io::model::without_nulls(value))
            .map_err(|e| Error::InvalidArgument(format!("svd unet config: {e}")))?;
        let n = json.block_out_channels.len();
        if n == 0 || json.down_block_types.len() != n || json.up_block_types.len() != n {
            return Err(Error::InvalidArgument(
                "svd unet config: block types and channels disagree".into(),
            ));
        }
        if json.block_out_channels.iter().any(|c| c % GROUPS != 0) {
            return Err(Error::InvalidArgument(format!(
                "svd unet config: channels {:?} are not multiples of 32",
                json.block_out_channels
            )));
        }
        let heads = json.num_attention_heads.expand(n, "num_attention_heads")?;
        let layers = json.layers_per_block.expand(n, "layers_per_block")?;
        let depth = json
            .transformer_layers_per_block
            .expand(n, "transformer_layers_per_block")?;
        let context = json.cross_attention_dim.expand(n, "cross_attention_dim")?;
        let mut levels = Vec::with_capacity(n);
        for (i, kind) in json.down_block_types.iter().enumerate() {
            let attention = match kind.as_str() {
                "CrossAttnDownBlockSpatioTemporal" => true,
                "DownBlockSpatioTemporal" => false,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "svd unet config: unsupported down block {other}"
                    )));
                }
            };
            if heads[i] == 0 || !json.block_out_channels[i].is_multiple_of(heads[i]) {
                return Err(Error::InvalidArgument(format!(
                    "svd unet config: {} heads do not split {} channels",
                    heads[i], json.block_out_channels[i]
                )));
            }
            levels.push(SvdLevel {
                channels: json.block_out_channels[i],
                attention,
                heads: heads[i],
                layers: layers[i],
                transformer_depth: depth[i],
                context_dim: context[i],
            });
        }
        let up_attention = json
            .up_block_types
            .iter()
            .map(|kind| match kind.as_str() {
                "CrossAttnUpBlockSpatioTemporal" => Ok(true),
                "UpBlockSpatioTemporal" => Ok(false),
                other => Err(Error::InvalidArgument(format!(
                    "svd unet config: unsupported up block {other}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SvdUNetConfig {
            in_channels: json.in_channels,
            out_channels: json.out_channels,
            levels,
            up_attention,
            addition_time_embed_dim: json.addition_time_embed_dim,
            add_embedding_input: json.projection_class_embeddings_input_dim,
            num_frames: json.num_frames,
        })
    }

    fn first(&self) -> usize {
        self.levels.first().map(|l| l.channels).unwrap_or(0)
    }
}

/// A down, mid or up block: resnets with optional transformers after each, and a resampler.
#[derive(Debug)]
struct Block {
    resnets: Vec<SpatioTemporalResBlock>,
    attentions: Vec<TransformerSpatioTemporal>,
    downsample: Option<Downsample>,
    upsample: Option<Upsample>,
}

/// Linear, SiLU, Linear.
#[derive(Debug)]
struct Embedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl Embedding {
    fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Embedding {
            linear_1: crate::kernels::linear::linear(in_dim, out_dim, vb.pp("linear_1"))?,
            linear_2: crate::kernels::linear::linear(out_dim, out_dim, vb.pp("linear_2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)?)
    }
}

/// The SVD denoising UNet.
#[derive(Debug)]
pub struct SvdUNet {
    conv_in: Conv2d,
    time_embedding: Embedding,
    add_embedding: Embedding,
    down: Vec<Block>,
    mid: Block,
    up: Vec<Block>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    config: SvdUNetConfig,
    dtype: DType,
}

fn st_res(temb: usize, eps: f64) -> StResConfig {
    StResConfig {
        temb_ch: Some(temb),
        eps,
        temporal_eps: eps,
        switch: false,
    }
}

impl SvdUNet {
    /// Loads the UNet weights (diffusers names).
    pub fn new(vb: VarBuilder, config: &SvdUNetConfig) -> Result<Self> {
        let first = config.first();
        let temb = first * 4;
        let n = config.levels.len();
        let mut down = Vec::with_capacity(n);
        let mut in_ch = first;
        for (i, level) in config.levels.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            // CrossAttnDownBlockSpatioTemporal resnets use eps 1e-6, DownBlockSpatioTemporal 1e-5.
            let eps = if level.attention { 1e-6 } else { 1e-5 };
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..level.layers {
                let rin = if j == 0 { in_ch } else { level.channels };
                resnets.push(SpatioTemporalResBlock::new(
                    bvb.pp("resnets").pp(j),
                    rin,
                    level.channels,
                    st_res(temb, eps),
                )?);
                if level.attention {
                    attentions.push(TransformerSpatioTemporal::new(
                        bvb.pp("attentions").pp(j),
                        level.channels,
                        level.heads,
                        level.transformer_depth,
                        level.context_dim,
                    )?);
                }
            }
            let downsample = if i + 1 < n {
                Some(Downsample::new(
                    bvb.pp("downsamplers").pp(0),
                    level.channels,
                )?)
            } else {
                None
            };
            down.push(Block {
                resnets,
                attentions,
                downsample,
                upsample: None,
            });
            in_ch = level.channels;
        }

        let Some(last) = config.levels.last() else {
            return Err(Error::InvalidArgument("svd unet config: no levels".into()));
        };
        let mvb = vb.pp("mid_block");
        let mid = Block {
            resnets: vec![
                SpatioTemporalResBlock::new(
                    mvb.pp("resnets").pp(0),
                    last.channels,
                    last.channels,
                    st_res(temb, 1e-5),
                )?,
                SpatioTemporalResBlock::new(
                    mvb.pp("resnets").pp(1),
                    last.channels,
                    last.channels,
                    st_res(temb, 1e-5),
                )?,
            ],
            attentions: vec![TransformerSpatioTemporal::new(
                mvb.pp("attentions").pp(0),
                last.channels,
                last.heads,
                last.transformer_depth,
                last.context_dim,
            )?],
            downsample: None,
            upsample: None,
        };

        let reversed: Vec<&SvdLevel> = config.levels.iter().rev().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_ch = last.channels;
        for (i, level) in reversed.iter().enumerate() {
            let bvb = vb.pp("up_blocks").pp(i);
            let prev_out = out_ch;
            out_ch = level.channels;
            let skip_in = reversed
                .get((i + 1).min(n - 1))
                .map(|l| l.channels)
                .unwrap_or(0);
            let layers = level.layers + 1;
            let attention = config.up_attention.get(i).copied().unwrap_or(false);
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers {
                let res_skip = if j == layers - 1 { skip_in } else { out_ch };
                let rin = if j == 0 { prev_out } else { out_ch };
                resnets.push(SpatioTemporalResBlock::new(
                    bvb.pp("resnets").pp(j),
                    rin + res_skip,
                    out_ch,
                    st_res(temb, 1e-6),
                )?);
                if attention {
                    attentions.push(TransformerSpatioTemporal::new(
                        bvb.pp("attentions").pp(j),
                        out_ch,
                        level.heads,
                        level.transformer_depth,
                        level.context_dim,
                    )?);
                }
            }
            let upsample = if i + 1 < n {
                Some(Upsample::new(bvb.pp("upsamplers").pp(0), out_ch)?)
            } else {
                None
            };
            up.push(Block {
                resnets,
                attentions,
                downsample: None,
                upsample,
            });
        }

        Ok(SvdUNet {
            conv_in: conv3x3(config.in_channels, first, 1, vb.pp("conv_in"))?,
            time_embedding: Embedding::new(vb.pp("time_embedding"), first, temb)?,
            add_embedding: Embedding::new(
                vb.pp("add_embedding"),
                config.add_embedding_input,
                temb,
            )?,
            down,
            mid,
            up,
            conv_norm_out: GroupNorm::new(GROUPS, first, 1e-5, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(first, config.out_channels, 1, vb.pp("conv_out"))?,
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SvdUNetConfig {
        &self.config
    }

    /// Predicts for `sample [B, F, C, h, w]` at `timestep` with the image embeddings
    /// `context [B, M, Cc]` and `added_time_ids [B, k]`; returns `[B, F, Cout, h, w]`.
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f32,
        context: &Tensor,
        added_time_ids: &Tensor,
    ) -> Result<Tensor> {
        let (b, frames, c, h, w) = sample.dims5()?;
        let device = sample.device().clone();
        let in_dtype = sample.dtype();
        let first = self.config.first();

        let sinusoid = timestep_embedding(&vec![timestep; b], first, true, 0.0, &device)?
            .to_dtype(self.dtype)?;
        let emb = self.time_embedding.forward(&sinusoid)?;
        let (ib, k) = added_time_ids.dims2()?;
        let dim = self.config.addition_time_embed_dim;
        if ib != b || k * dim != self.config.add_embedding_input {
            return Err(Error::InvalidArgument(format!(
                "svd unet: {k} added time ids × {dim} do not fill add_embedding's {} inputs",
                self.config.add_embedding_input
            )));
        }
        let ids: Vec<f32> = added_time_ids
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let time_embeds = timestep_embedding(&ids, dim, true, 0.0, &device)?
            .reshape((b, k * dim))?
            .to_dtype(self.dtype)?;
        let emb = (emb + self.add_embedding.forward(&time_embeds)?)?;
        // One embedding per frame (repeat_interleave), SiLU'd once for every resnet.
        let temb = emb
            .unsqueeze(1)?
            .repeat((1, frames, 1))?
            .reshape((b * frames, ()))?;
        let temb_silu = temb.silu()?;
        let context = context.to_dtype(self.dtype)?;

        let x = sample
            .to_dtype(self.dtype)?
            .reshape((b * frames, c, h, w))?;
        let mut x = self.conv_in.forward(&x)?;
        let mut skips = vec![x.clone()];
        for block in &self.down {
            for (j, resnet) in block.resnets.iter().enumerate() {
                x = resnet.forward(&x, Some(&temb_silu), frames)?;
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(&x, &context, frames)?;
                }
                skips.push(x.clone());
            }
            if let Some(ds) = &block.downsample {
                x = ds.forward(&x)?;
                skips.push(x.clone());
            }
        }

        if let Some(r) = self.mid.resnets.first() {
            x = r.forward(&x, Some(&temb_silu), frames)?;
        }
        for (attn, resnet) in self
            .mid
            .attentions
            .iter()
            .zip(self.mid.resnets.iter().skip(1))
        {
            x = attn.forward(&x, &context, frames)?;
            x = resnet.forward(&x, Some(&temb_silu), frames)?;
        }

        for block in &self.up {
            for (j, resnet) in block.resnets.iter().enumerate() {
                let Some(skip) = skips.pop() else {
                    return Err(Error::InvalidArgument(
                        "svd unet: skip connections exhausted".into(),
                    ));
                };
                x = Tensor::cat(&[&x, &skip], 1)?;
                x = resnet.forward(&x, Some(&temb_silu), frames)?;
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(&x, &context, frames)?;
                }
            }
            if let Some(us) = &block.upsample {
                let size = match skips.last() {
                    Some(s) => (s.dim(2)?, s.dim(3)?),
                    None => (x.dim(2)? * 2, x.dim(3)? * 2),
                };
                x = us.forward(&x, size)?;
            }
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        let x = self.conv_out.forward(&x)?;
        let (_, co, oh, ow) = x.dims4()?;
        Ok(x.reshape((b, frames, co, oh, ow))?.to_dtype(in_dtype)?)
    }
}
