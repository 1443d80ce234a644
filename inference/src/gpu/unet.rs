//! diffusers' `UNet2DConditionModel` (SD1.x, SD2.x, SDXL) on the GPU: the same layers as
//! [`crate::unet`], weights uploaded once (f32), every activation on the GPU during a pass.
//! The sinusoidal time features are computed on the CPU (a few hundred values) and uploaded;
//! everything else runs in [`super::ops`] kernels.

use super::layers::{Conv, Linear, Loader, Norm};
use super::{Gpu, GpuTensor};
use crate::io::weights::Weights;
use crate::unet::TextTimeInputs;
use crate::unet::config::UNetConfig;
use crate::unet::resnet::timestep_embedding;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// GroupNorm ε inside the transformers (diffusers' `Transformer2DModel`).
const TRANSFORMER_GN_EPS: f32 = 1e-6;
/// LayerNorm ε of the transformer blocks.
const LN_EPS: f32 = 1e-5;

struct ResBlock {
    norm1: Norm,
    conv1: Conv,
    time: Linear,
    norm2: Norm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

struct Block {
    norm1: Norm,
    attn1: Attention,
    norm2: Norm,
    attn2: Attention,
    norm3: Norm,
    ff_in: Linear,
    ff_out: Linear,
}

/// Linear or 1×1 convolution, as `use_linear_projection` says.
enum Projection {
    Linear(Linear),
    Conv(Conv),
}

struct Transformer {
    norm: Norm,
    proj_in: Projection,
    blocks: Vec<Block>,
    proj_out: Projection,
}

struct Level {
    resnets: Vec<ResBlock>,
    attentions: Vec<Transformer>,
    sampler: Option<Conv>,
}

/// The UNet with its weights on the GPU.
pub struct GpuUNet {
    gpu: Arc<Gpu>,
    config: UNetConfig,
    conv_in: Conv,
    time: (Linear, Linear),
    add: Option<(Linear, Linear)>,
    down: Vec<Level>,
    mid: (ResBlock, Option<Transformer>, ResBlock),
    up: Vec<Level>,
    norm_out: Norm,
    conv_out: Conv,
}

impl Loader<'_> {
    /// A down or up block `p`: `layers` resnets (each followed by a transformer when the level
    /// has attention) and the sampler `(name, stride)` when there is one.
    fn level(
        &self,
        p: &str,
        level: &crate::unet::config::LevelConfig,
        layers: usize,
        sampler: Option<(&str, usize)>,
        linear: bool,
    ) -> Result<Level> {
        Ok(Level {
            resnets: (0..layers)
                .map(|j| self.unet_resnet(&format!("{p}.resnets.{j}")))
                .collect::<Result<_>>()?,
            attentions: if level.attention {
                (0..layers)
                    .map(|j| {
                        self.transformer(
                            &format!("{p}.attentions.{j}"),
                            level.heads,
                            level.transformer_depth,
                            linear,
                        )
                    })
                    .collect::<Result<_>>()?
            } else {
                Vec::new()
            },
            sampler: match sampler {
                Some((name, stride)) => {
                    Some(self.conv(&format!("{p}.{name}.0.conv"), stride, 1)?)
                }
                None => None,
            },
        })
    }

    fn unet_resnet(&self, p: &str) -> Result<ResBlock> {
        let shortcut = format!("{p}.conv_shortcut");
        Ok(ResBlock {
            norm1: self.norm(&format!("{p}.norm1"))?,
            conv1: self.conv(&format!("{p}.conv1"), 1, 1)?,
            time: self.linear(&format!("{p}.time_emb_proj"))?,
            norm2: self.norm(&format!("{p}.norm2"))?,
            conv2: self.conv(&format!("{p}.conv2"), 1, 1)?,
            shortcut: if self.has(&format!("{shortcut}.weight")) {
                Some(self.conv(&shortcut, 1, 0)?)
            } else {
                None
            },
        })
    }

    fn unet_attention(&self, p: &str, heads: usize) -> Result<Attention> {
        Ok(Attention {
            q: self.linear(&format!("{p}.to_q"))?,
            k: self.linear(&format!("{p}.to_k"))?,
            v: self.linear(&format!("{p}.to_v"))?,
            out: self.linear(&format!("{p}.to_out.0"))?,
            heads,
        })
    }

    fn projection(&self, p: &str, linear: bool) -> Result<Projection> {
        Ok(if linear {
            Projection::Linear(self.linear(p)?)
        } else {
            Projection::Conv(self.conv(p, 1, 0)?)
        })
    }

    fn transformer(
        &self,
        p: &str,
        heads: usize,
        depth: usize,
        linear: bool,
    ) -> Result<Transformer> {
        let blocks = (0..depth)
            .map(|d| {
                let b = format!("{p}.transformer_blocks.{d}");
                Ok(Block {
                    norm1: self.norm(&format!("{b}.norm1"))?,
                    attn1: self.unet_attention(&format!("{b}.attn1"), heads)?,
                    norm2: self.norm(&format!("{b}.norm2"))?,
                    attn2: self.unet_attention(&format!("{b}.attn2"), heads)?,
                    norm3: self.norm(&format!("{b}.norm3"))?,
                    ff_in: self.linear(&format!("{b}.ff.net.0.proj"))?,
                    ff_out: self.linear(&format!("{b}.ff.net.2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Transformer {
            norm: self.norm(&format!("{p}.norm"))?,
            proj_in: self.projection(&format!("{p}.proj_in"), linear)?,
            blocks,
            proj_out: self.projection(&format!("{p}.proj_out"), linear)?,
        })
    }
}

impl GpuUNet {
    /// Uploads a UNet (`weights` under diffusers names).
    pub fn new(gpu: Arc<Gpu>, weights: &Weights, config: &UNetConfig) -> Result<Self> {
        let l = Loader { gpu: &gpu, weights };
        let linear = config.use_linear_projection;
        let levels = config.down.len();
        let last = levels.saturating_sub(1);
        let down = config
            .down
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let sampler = (i < last).then_some(("downsamplers", 2));
                l.level(
                    &format!("down_blocks.{i}"),
                    level,
                    config.layers_per_block,
                    sampler,
                    linear,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let up = config
            .up
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let sampler = (i < last).then_some(("upsamplers", 1));
                l.level(
                    &format!("up_blocks.{i}"),
                    level,
                    config.layers_per_block + 1,
                    sampler,
                    linear,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mid = (
            l.unet_resnet("mid_block.resnets.0")?,
            match config.mid {
                Some((depth, heads)) => {
                    Some(l.transformer("mid_block.attentions.0", heads, depth, linear)?)
                }
                None => None,
            },
            l.unet_resnet("mid_block.resnets.1")?,
        );
        let add = match &config.text_time {
            Some(_) => Some((
                l.linear("add_embedding.linear_1")?,
                l.linear("add_embedding.linear_2")?,
            )),
            None => None,
        };
        Ok(GpuUNet {
            conv_in: l.conv("conv_in", 1, 1)?,
            time: (
                l.linear("time_embedding.linear_1")?,
                l.linear("time_embedding.linear_2")?,
            ),
            add,
            down,
            mid,
            up,
            norm_out: l.norm("conv_norm_out")?,
            conv_out: l.conv("conv_out", 1, 1)?,
            config: config.clone(),
            gpu,
        })
    }

    fn linear(&self, l: &Linear, x: &GpuTensor) -> Result<GpuTensor> {
        l.forward(&self.gpu, x)
    }

    fn conv(&self, c: &Conv, x: &GpuTensor) -> Result<GpuTensor> {
        c.forward(&self.gpu, x)
    }

    fn group_norm(&self, n: &Norm, x: &GpuTensor, eps: f32, silu: bool) -> Result<GpuTensor> {
        self.gpu
            .group_norm(x, self.config.norm_num_groups, &n.gamma, &n.beta, eps, silu)
    }

    fn resnet(&self, r: &ResBlock, x: &GpuTensor, temb_silu: &GpuTensor) -> Result<GpuTensor> {
        let eps = self.config.norm_eps as f32;
        let h = self.conv(&r.conv1, &self.group_norm(&r.norm1, x, eps, true)?)?;
        let t = self.linear(&r.time, temb_silu)?;
        let h = self.gpu.add_per_channel(&h, &t)?;
        let h = self.conv(&r.conv2, &self.group_norm(&r.norm2, &h, eps, true)?)?;
        let skip = match &r.shortcut {
            Some(s) => self.conv(s, x)?,
            None => x.clone(),
        };
        self.gpu.add(&skip, &h)
    }

    /// Multi-head attention of `x [B, N, C]` over `context [B, M, Cc]` (itself when `None`).
    fn attention(
        &self,
        a: &Attention,
        x: &GpuTensor,
        context: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        let kv = context.unwrap_or(x);
        let q = self.linear(&a.q, x)?;
        let k = self.linear(&a.k, kv)?;
        let v = self.linear(&a.v, kv)?;
        let split = |t: &GpuTensor| -> Result<GpuTensor> {
            let [b, n, c]: [usize; 3] = t
                .shape()
                .try_into()
                .map_err(|_| Error::InvalidArgument("attention input".into()))?;
            let d = c / a.heads;
            let heads = self.gpu.swap_middle(&t.reshape(&[b, n, a.heads, d])?)?;
            heads.reshape(&[b * a.heads, n, d])
        };
        let (b, n, c) = (q.shape()[0], q.shape()[1], q.shape()[2]);
        let d = c / a.heads;
        let o = self
            .gpu
            .attention(&split(&q)?, &split(&k)?, &split(&v)?, (d as f32).powf(-0.5))?;
        let o = self
            .gpu
            .swap_middle(&o.reshape(&[b, a.heads, n, d])?)?
            .reshape(&[b, n, c])?;
        self.linear(&a.out, &o)
    }

    fn transformer(
        &self,
        t: &Transformer,
        x: &GpuTensor,
        context: &GpuTensor,
    ) -> Result<GpuTensor> {
        let [b, c, h, w]: [usize; 4] = x
            .shape()
            .try_into()
            .map_err(|_| Error::InvalidArgument("transformer input".into()))?;
        let normed = self.group_norm(&t.norm, x, TRANSFORMER_GN_EPS, false)?;
        let to_tokens =
            |s: GpuTensor| -> Result<GpuTensor> { self.gpu.transpose(&s.reshape(&[b, c, h * w])?) };
        let mut hidden = match &t.proj_in {
            Projection::Conv(conv) => to_tokens(self.conv(conv, &normed)?)?,
            Projection::Linear(lin) => self.linear(lin, &to_tokens(normed)?)?,
        };
        for block in &t.blocks {
            let n1 = self
                .gpu
                .layer_norm(&hidden, &block.norm1.gamma, &block.norm1.beta, LN_EPS)?;
            hidden = self
                .gpu
                .add(&self.attention(&block.attn1, &n1, None)?, &hidden)?;
            let n2 = self
                .gpu
                .layer_norm(&hidden, &block.norm2.gamma, &block.norm2.beta, LN_EPS)?;
            hidden = self
                .gpu
                .add(&self.attention(&block.attn2, &n2, Some(context))?, &hidden)?;
            let n3 = self
                .gpu
                .layer_norm(&hidden, &block.norm3.gamma, &block.norm3.beta, LN_EPS)?;
            let ff = self.gpu.geglu(&self.linear(&block.ff_in, &n3)?)?;
            hidden = self.gpu.add(&self.linear(&block.ff_out, &ff)?, &hidden)?;
        }
        let to_spatial =
            |s: GpuTensor| -> Result<GpuTensor> { self.gpu.transpose(&s)?.reshape(&[b, c, h, w]) };
        let out = match &t.proj_out {
            Projection::Conv(conv) => self.conv(conv, &to_spatial(hidden)?)?,
            Projection::Linear(lin) => to_spatial(self.linear(lin, &hidden)?)?,
        };
        self.gpu.add(&out, x)
    }

    /// The time embedding (plus SDXL's added text/time embedding), after SiLU, `[B, 4·C0]`.
    fn time_embedding(
        &self,
        batch: usize,
        timestep: f32,
        text_time: Option<&TextTimeInputs>,
    ) -> Result<GpuTensor> {
        let cfg = &self.config;
        let first = cfg.down.first().map_or(0, |l| l.channels);
        let sinusoid = timestep_embedding(
            &vec![timestep; batch],
            first,
            cfg.flip_sin_to_cos,
            cfg.freq_shift,
            &Device::Cpu,
        )?;
        let up = |t: &Tensor| -> Result<GpuTensor> {
            let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            self.gpu.upload(&values, t.dims())
        };
        let mlp = |pair: &(Linear, Linear), x: &GpuTensor| -> Result<GpuTensor> {
            let h = self.gpu.silu(&self.linear(&pair.0, x)?)?;
            self.linear(&pair.1, &h)
        };
        let mut emb = mlp(&self.time, &up(&sinusoid)?)?;
        if let (Some(add), Some(tt_cfg)) = (&self.add, &cfg.text_time) {
            let tt = text_time.ok_or_else(|| {
                Error::InvalidArgument(
                    "this UNet needs pooled text embeddings and time ids (SDXL)".into(),
                )
            })?;
            let (b, k) = tt.time_ids.dims2()?;
            let ids: Vec<f32> = tt.time_ids.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let time_embeds = timestep_embedding(
                &ids,
                tt_cfg.time_embed_dim,
                cfg.flip_sin_to_cos,
                cfg.freq_shift,
                &Device::Cpu,
            )?
            .reshape((b, k * tt_cfg.time_embed_dim))?;
            let add_in = Tensor::cat(&[&tt.text_embeds.to_dtype(DType::F32)?, &time_embeds], 1)?;
            emb = self.gpu.add(&emb, &mlp(add, &up(&add_in)?)?)?;
        }
        self.gpu.silu(&emb)
    }

    /// Predicts noise (or v) for `sample [B, C, h, w]` at `timestep` with `context [B, M, Cc]`
    /// (CPU tensors in and out).
    pub fn forward(
        &self,
        sample: &Tensor,
        timestep: f32,
        context: &Tensor,
        text_time: Option<&TextTimeInputs>,
    ) -> Result<Tensor> {
        let up = |t: &Tensor| -> Result<GpuTensor> {
            let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            self.gpu.upload(&values, t.dims())
        };
        let b = sample.dim(0)?;
        let temb = self.time_embedding(b, timestep, text_time)?;
        let context = up(context)?;
        let mut x = self.conv(&self.conv_in, &up(sample)?)?;
        let mut skips = vec![x.clone()];
        for level in &self.down {
            for (j, r) in level.resnets.iter().enumerate() {
                x = self.resnet(r, &x, &temb)?;
                if let Some(t) = level.attentions.get(j) {
                    x = self.transformer(t, &x, &context)?;
                }
                skips.push(x.clone());
            }
            if let Some(ds) = &level.sampler {
                x = self.conv(ds, &x)?;
                skips.push(x.clone());
            }
        }
        x = self.resnet(&self.mid.0, &x, &temb)?;
        if let Some(t) = &self.mid.1 {
            x = self.transformer(t, &x, &context)?;
        }
        x = self.resnet(&self.mid.2, &x, &temb)?;
        for level in &self.up {
            for (j, r) in level.resnets.iter().enumerate() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| Error::InvalidArgument("unet: skips exhausted".into()))?;
                x = self.resnet(r, &self.gpu.concat_channels(&x, &skip)?, &temb)?;
                if let Some(t) = level.attentions.get(j) {
                    x = self.transformer(t, &x, &context)?;
                }
            }
            if let Some(us) = &level.sampler {
                x = self.conv(us, &self.gpu.upsample2x(&x)?)?;
            }
        }
        let eps = self.config.norm_eps as f32;
        let x = self.conv(
            &self.conv_out,
            &self.group_norm(&self.norm_out, &x, eps, true)?,
        )?;
        let shape = x.shape().to_vec();
        Ok(Tensor::from_vec(
            self.gpu.download(&x)?,
            shape,
            &Device::Cpu,
        )?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::io::weights::open_safetensors;

    fn check(fixture: &str, sdxl: bool) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(fixture)
            .join("unet");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let config = UNetConfig::from_json(&config).unwrap();
        let st =
            Arc::new(open_safetensors(&[dir.join("diffusion_pytorch_model.safetensors")]).unwrap());
        let weights = Weights::identity(st, "unet");
        let cpu =
            crate::unet::UNet::new(weights.var_builder(DType::F32, &Device::Cpu), &config).unwrap();
        let gpu =
            GpuUNet::new(Arc::new(super::super::ops::tests::gpu()), &weights, &config).unwrap();
        let values = super::super::ops::tests::values;
        let sample = Tensor::from_vec(
            values(2 * config.in_channels * 8 * 6, 31),
            (2, config.in_channels, 8, 6),
            &Device::Cpu,
        )
        .unwrap();
        let ctx_dim = config.cross_attention_dim;
        let context =
            Tensor::from_vec(values(2 * 7 * ctx_dim, 32), (2, 7, ctx_dim), &Device::Cpu).unwrap();
        let text_time = config.text_time.as_ref().map(|tt| {
            let pooled = tt.input_dim - 6 * tt.time_embed_dim;
            TextTimeInputs {
                text_embeds: Tensor::from_vec(values(2 * pooled, 33), (2, pooled), &Device::Cpu)
                    .unwrap(),
                time_ids: Tensor::new(
                    &[[64f32, 48., 0., 0., 64., 48.], [64., 48., 0., 0., 64., 48.]],
                    &Device::Cpu,
                )
                .unwrap(),
            }
        });
        assert_eq!(text_time.is_some(), sdxl);
        let hooks = crate::unet::UNetHooks::default();
        let want = cpu
            .forward(&sample, 411.0, &context, text_time.as_ref(), &hooks)
            .unwrap();
        let got = gpu
            .forward(&sample, 411.0, &context, text_time.as_ref())
            .unwrap();
        assert_eq!(got.dims(), want.dims());
        let diff: f32 = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        let scale: f32 = want
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(scale > 0.01, "trivial output");
        assert!(
            diff < 1e-3 * (1.0 + scale),
            "{fixture}: GPU UNet differs by {diff} (scale {scale})"
        );
    }

    #[test]
    fn the_gpu_unet_matches_the_cpu_unet() {
        check("tiny-sd15", false);
        check("tiny-sdxl", true);
    }
}
