//! diffusers `UNet2DConditionModel` for SD1.x, SD2.x and SDXL (text_time conditioning),
//! with hooks: extra residuals (ControlNet) and an attention processor (IP-Adapter, InstantID,
//! consistent self-attention).

use crate::Result;
use crate::kernels::conv::Conv2d;
use crate::kernels::norm::GroupNorm;
use crate::unet::attention::{AttentionProcessor, Transformer2D, TransformerConfig, UNetPart};
use crate::unet::config::UNetConfig;
use crate::unet::resnet::{
    Downsample, NormConfig, ResBlock, TimestepEmbedding, Upsample, conv3x3, timestep_embedding,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

/// Optional inputs that later features feed into a UNet pass.
#[derive(Default)]
pub struct UNetHooks<'a> {
    /// ControlNet residuals added to the down-path skip features (one per skip).
    pub down_residuals: Option<&'a [Tensor]>,
    /// ControlNet residual added to the mid-block output.
    pub mid_residual: Option<&'a Tensor>,
    /// Replacement attention for chosen layers.
    pub attention: Option<&'a dyn AttentionProcessor>,
}

/// SDXL added conditioning for one pass.
#[derive(Clone, Debug)]
pub struct TextTimeInputs {
    /// Pooled text embedding `[B, P]`.
    pub text_embeds: Tensor,
    /// Micro-conditioning ids `[B, k]` (6 for base, 5 for the refiner).
    pub time_ids: Tensor,
}

#[derive(Debug)]
pub(crate) struct Level {
    resnets: Vec<ResBlock>,
    attentions: Vec<Transformer2D>,
    downsample: Option<Downsample>,
    upsample: Option<Upsample>,
}

/// The encoder half shared by the UNet and ControlNet: input conv, time (and SDXL added)
/// embeddings, down blocks and mid block.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub(crate) conv_in: Conv2d,
    time_embedding: TimestepEmbedding,
    add_embedding: Option<TimestepEmbedding>,
    down: Vec<Level>,
    mid_resnets: Vec<ResBlock>,
    mid_attention: Option<Transformer2D>,
    pub(crate) config: UNetConfig,
    pub(crate) dtype: DType,
}

/// The denoising UNet.
#[derive(Debug)]
pub struct UNet {
    encoder: Encoder,
    up: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// Building-block settings derived from the config.
fn block_configs(config: &UNetConfig) -> (NormConfig, TransformerConfig) {
    (
        NormConfig {
            groups: config.norm_num_groups,
            eps: config.norm_eps,
        },
        TransformerConfig {
            context_dim: config.cross_attention_dim,
            linear_projection: config.use_linear_projection,
            groups: config.norm_num_groups,
            upcast: config.upcast_attention,
        },
    )
}

impl Encoder {
    /// Loads the encoder under `vb`. Attention sites are numbered as diffusers registers them
    /// (down, then up, then mid): `build_up` runs between the down and mid blocks.
    pub(crate) fn new(
        vb: &VarBuilder,
        config: &UNetConfig,
        build_up: &mut dyn FnMut(&mut usize) -> Result<()>,
    ) -> Result<Self> {
        let first = config.down.first().map(|l| l.channels).unwrap_or(0);
        let temb = config.time_embed_dim();
        let (norm, tcfg) = block_configs(config);
        let conv_in = conv3x3(config.in_channels, first, 1, vb.pp("conv_in"))?;
        let time_embedding = TimestepEmbedding::new(vb.pp("time_embedding"), first, temb)?;
        let add_embedding = match &config.text_time {
            Some(tt) => Some(TimestepEmbedding::new(
                vb.pp("add_embedding"),
                tt.input_dim,
                temb,
            )?),
            None => None,
        };
        let mut site = 0usize;
        let levels = config.down.len();
        let mut down = Vec::with_capacity(levels);
        let mut in_ch = first;
        for (i, level) in config.down.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..config.layers_per_block {
                let rin = if j == 0 { in_ch } else { level.channels };
                resnets.push(ResBlock::new(
                    bvb.pp("resnets").pp(j),
                    rin,
                    level.channels,
                    Some(temb),
                    norm,
                )?);
                if level.attention {
                    attentions.push(Transformer2D::new(
                        bvb.pp("attentions").pp(j),
                        level.channels,
                        level.heads,
                        level.transformer_depth,
                        tcfg,
                        UNetPart::Down(i),
                        &mut site,
                    )?);
                }
            }
            let downsample = if i + 1 < levels {
                Some(Downsample::new(
                    bvb.pp("downsamplers").pp(0),
                    level.channels,
                )?)
            } else {
                None
            };
            down.push(Level {
                resnets,
                attentions,
                downsample,
                upsample: None,
            });
            in_ch = level.channels;
        }
        build_up(&mut site)?;
        let last = config.down.last().map(|l| l.channels).unwrap_or(0);
        let mvb = vb.pp("mid_block");
        let mid_attention = match config.mid {
            Some((depth, heads)) => Some(Transformer2D::new(
                mvb.pp("attentions").pp(0),
                last,
                heads,
                depth,
                tcfg,
                UNetPart::Mid,
                &mut site,
            )?),
            None => None,
        };
        let mid_resnets = vec![
            ResBlock::new(mvb.pp("resnets").pp(0), last, last, Some(temb), norm)?,
            ResBlock::new(mvb.pp("resnets").pp(1), last, last, Some(temb), norm)?,
        ];
        Ok(Encoder {
            conv_in,
            time_embedding,
            add_embedding,
            down,
            mid_resnets,
            mid_attention,
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// Runs the down blocks from `x` (the conv_in output); returns the last feature and all
    /// skip features (conv_in output first).
    pub(crate) fn down(
        &self,
        x: Tensor,
        temb_silu: &Tensor,
        context: &Tensor,
        processor: Option<&dyn AttentionProcessor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut x = x;
        let mut skips = vec![x.clone()];
        for level in &self.down {
            for (j, resnet) in level.resnets.iter().enumerate() {
                x = resnet.forward(&x, Some(temb_silu))?;
                if let Some(attn) = level.attentions.get(j) {
                    x = attn.forward(&x, context, processor)?;
                }
                skips.push(x.clone());
            }
            if let Some(ds) = &level.downsample {
                x = ds.forward(&x)?;
                skips.push(x.clone());
            }
        }
        Ok((x, skips))
    }

    /// Runs the mid block.
    pub(crate) fn mid(
        &self,
        x: Tensor,
        temb_silu: &Tensor,
        context: &Tensor,
        processor: Option<&dyn AttentionProcessor>,
    ) -> Result<Tensor> {
        let mut x = x;
        if let Some(first) = self.mid_resnets.first() {
            x = first.forward(&x, Some(temb_silu))?;
        }
        if let Some(attn) = &self.mid_attention {
            x = attn.forward(&x, context, processor)?;
        }
        if let Some(second) = self.mid_resnets.get(1) {
            x = second.forward(&x, Some(temb_silu))?;
        }
        Ok(x)
    }
}

impl UNet {
    /// Loads the UNet weights (diffusers names) described by `config`.
    pub fn new(vb: VarBuilder, config: &UNetConfig) -> Result<Self> {
        let first = config.down.first().map(|l| l.channels).unwrap_or(0);
        let temb = config.time_embed_dim();
        let (norm, tcfg) = block_configs(config);
        let levels = config.down.len();
        let mut up = Vec::with_capacity(levels);
        let mut build_up = |site: &mut usize| -> Result<()> {
            let reversed: Vec<usize> = config.down.iter().rev().map(|l| l.channels).collect();
            let mut out_ch = reversed.first().copied().unwrap_or(0);
            for (i, level) in config.up.iter().enumerate() {
                let bvb = vb.pp("up_blocks").pp(i);
                let prev_out = out_ch;
                out_ch = level.channels;
                let skip_in = reversed.get((i + 1).min(levels - 1)).copied().unwrap_or(0);
                let layers = config.layers_per_block + 1;
                let mut resnets = Vec::new();
                let mut attentions = Vec::new();
                for j in 0..layers {
                    let res_skip = if j == layers - 1 { skip_in } else { out_ch };
                    let rin = if j == 0 { prev_out } else { out_ch };
                    resnets.push(ResBlock::new(
                        bvb.pp("resnets").pp(j),
                        rin + res_skip,
                        out_ch,
                        Some(temb),
                        norm,
                    )?);
                    if level.attention {
                        attentions.push(Transformer2D::new(
                            bvb.pp("attentions").pp(j),
                            out_ch,
                            level.heads,
                            level.transformer_depth,
                            tcfg,
                            UNetPart::Up(i),
                            site,
                        )?);
                    }
                }
                let upsample = if i + 1 < levels {
                    Some(Upsample::new(bvb.pp("upsamplers").pp(0), out_ch)?)
                } else {
                    None
                };
                up.push(Level {
                    resnets,
                    attentions,
                    downsample: None,
                    upsample,
                });
            }
            Ok(())
        };
        let encoder = Encoder::new(&vb, config, &mut build_up)?;
        Ok(UNet {
            encoder,
            up,
            conv_norm_out: GroupNorm::new(
                config.norm_num_groups,
                first,
                config.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: conv3x3(first, config.out_channels, 1, vb.pp("conv_out"))?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.encoder.config
    }

    /// Predicts noise (or v) for `sample [B,C,h,w]` at `timestep` with `context [B,M,Cc]`.
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f32,
        context: &Tensor,
        text_time: Option<&TextTimeInputs>,
        hooks: &UNetHooks,
    ) -> Result<Tensor> {
        let enc = &self.encoder;
        let device = sample.device().clone();
        let in_dtype = sample.dtype();
        let sample = sample.to_dtype(enc.dtype)?;
        let context = context.to_dtype(enc.dtype)?;
        let b = sample.dim(0)?;
        let temb = enc.time_embed(&vec![timestep; b], text_time, &device)?;
        let temb_silu = temb.silu()?;
        let processor = hooks.attention;

        let x = enc.conv_in.forward(&sample)?;
        let (x, mut skips) = enc.down(x, &temb_silu, &context, processor)?;
        if let Some(residuals) = hooks.down_residuals {
            if residuals.len() != skips.len() {
                return Err(crate::Error::InvalidArgument(format!(
                    "{} ControlNet residuals for {} UNet skips",
                    residuals.len(),
                    skips.len()
                )));
            }
            for (skip, r) in skips.iter_mut().zip(residuals) {
                *skip = (&*skip + r.to_dtype(enc.dtype)?)?;
            }
        }
        let mut x = enc.mid(x, &temb_silu, &context, processor)?;
        if let Some(r) = hooks.mid_residual {
            x = (x + r.to_dtype(enc.dtype)?)?;
        }

        for level in &self.up {
            for (j, resnet) in level.resnets.iter().enumerate() {
                let Some(skip) = skips.pop() else {
                    return Err(crate::Error::InvalidArgument(
                        "unet: skip connections exhausted".into(),
                    ));
                };
                x = Tensor::cat(&[&x, &skip], 1)?;
                x = resnet.forward(&x, Some(&temb_silu))?;
                if let Some(attn) = level.attentions.get(j) {
                    x = attn.forward(&x, &context, processor)?;
                }
            }
            if let Some(us) = &level.upsample {
                // Upsample to the size of the next skip feature (diffusers' upsample_size).
                let size = match skips.last() {
                    Some(s) => (s.dim(2)?, s.dim(3)?),
                    None => (x.dim(2)? * 2, x.dim(3)? * 2),
                };
                x = us.forward(&x, size)?;
            }
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        Ok(self.conv_out.forward(&x)?.to_dtype(in_dtype)?)
    }
}

impl Encoder {
    /// Time embedding (plus SDXL's added text/time embedding) for each batch entry.
    pub(crate) fn time_embed(
        &self,
        timesteps: &[f32],
        text_time: Option<&TextTimeInputs>,
        device: &Device,
    ) -> Result<Tensor> {
        let first = self.config.down.first().map(|l| l.channels).unwrap_or(0);
        let sinusoid = timestep_embedding(
            timesteps,
            first,
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
            device,
        )?
        .to_dtype(self.dtype)?;
        let mut emb = self.time_embedding.forward(&sinusoid)?;
        if let (Some(add), Some(tt_cfg)) = (&self.add_embedding, &self.config.text_time) {
            let Some(tt) = text_time else {
                return Err(crate::Error::InvalidArgument(
                    "this UNet needs pooled text embeddings and time ids (SDXL)".into(),
                ));
            };
            let (b, k) = tt.time_ids.dims2()?;
            let ids: Vec<f32> = tt.time_ids.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let time_embeds = timestep_embedding(
                &ids,
                tt_cfg.time_embed_dim,
                self.config.flip_sin_to_cos,
                self.config.freq_shift,
                device,
            )?
            .reshape((b, k * tt_cfg.time_embed_dim))?;
            let add_in = Tensor::cat(&[&tt.text_embeds.to_dtype(DType::F32)?, &time_embeds], 1)?
                .to_dtype(self.dtype)?;
            emb = (emb + add.forward(&add_in)?)?;
        }
        Ok(emb)
    }
}
