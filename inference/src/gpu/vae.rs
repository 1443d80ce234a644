//! The SD-family VAE decoder on the GPU: the same layers as [`crate::vae`]'s decoder (diffusers
//! names, old attention names accepted), weights uploaded once, every activation kept on the
//! GPU until the image is read back.

use super::layers::{Conv, Linear, Loader, Norm};
use super::{Gpu, GpuTensor};
use crate::io::weights::Weights;
use crate::vae::VaeConfig;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// GroupNorm ε of the VAE (diffusers).
const EPS: f32 = 1e-6;

struct ResBlock {
    norm1: Norm,
    conv1: Conv,
    norm2: Norm,
    conv2: Conv,
    shortcut: Option<Conv>,
}

struct Attention {
    norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

struct Level {
    resnets: Vec<ResBlock>,
    upsample: Option<Conv>,
}

/// The decoder (and `post_quant_conv`) with its weights on the GPU.
pub struct GpuVaeDecoder {
    gpu: Arc<Gpu>,
    post_quant: Option<Conv>,
    conv_in: Conv,
    mid: (ResBlock, Option<Attention>, ResBlock),
    levels: Vec<Level>,
    norm_out: Norm,
    conv_out: Conv,
    groups: usize,
}

impl Loader<'_> {
    fn vae_resnet(&self, prefix: &str) -> Result<ResBlock> {
        let shortcut = format!("{prefix}.conv_shortcut");
        Ok(ResBlock {
            norm1: self.norm(&format!("{prefix}.norm1"))?,
            conv1: self.conv(&format!("{prefix}.conv1"), 1, 1)?,
            norm2: self.norm(&format!("{prefix}.norm2"))?,
            conv2: self.conv(&format!("{prefix}.conv2"), 1, 1)?,
            shortcut: if self.has(&format!("{shortcut}.weight")) {
                Some(self.conv(&shortcut, 1, 0)?)
            } else {
                None
            },
        })
    }

    fn vae_attention(&self, prefix: &str) -> Result<Attention> {
        // Old diffusers files name the projections query/key/value/proj_attn.
        let name = |new: &str, old: &str| {
            if self.has(&format!("{prefix}.{new}.weight")) {
                format!("{prefix}.{new}")
            } else {
                format!("{prefix}.{old}")
            }
        };
        Ok(Attention {
            norm: self.norm(&format!("{prefix}.group_norm"))?,
            q: self.linear(&name("to_q", "query"))?,
            k: self.linear(&name("to_k", "key"))?,
            v: self.linear(&name("to_v", "value"))?,
            out: self.linear(&name("to_out.0", "proj_attn"))?,
        })
    }
}

impl GpuVaeDecoder {
    /// Uploads the decoder of a VAE (`weights` under diffusers names: `decoder.*`,
    /// `post_quant_conv.*`).
    pub fn new(gpu: Arc<Gpu>, weights: &Weights, config: &VaeConfig) -> Result<Self> {
        let l = Loader { gpu: &gpu, weights };
        let levels = config.block_out_channels.len();
        let mid = (
            l.vae_resnet("decoder.mid_block.resnets.0")?,
            if config.mid_block_add_attention {
                Some(l.vae_attention("decoder.mid_block.attentions.0")?)
            } else {
                None
            },
            l.vae_resnet("decoder.mid_block.resnets.1")?,
        );
        let levels = (0..levels)
            .map(|i| {
                Ok(Level {
                    resnets: (0..=config.layers_per_block)
                        .map(|j| l.vae_resnet(&format!("decoder.up_blocks.{i}.resnets.{j}")))
                        .collect::<Result<Vec<_>>>()?,
                    upsample: if i + 1 < levels {
                        Some(l.conv(&format!("decoder.up_blocks.{i}.upsamplers.0.conv"), 1, 1)?)
                    } else {
                        None
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuVaeDecoder {
            post_quant: if config.use_post_quant_conv {
                Some(l.conv("post_quant_conv", 1, 0)?)
            } else {
                None
            },
            conv_in: l.conv("decoder.conv_in", 1, 1)?,
            mid,
            levels,
            norm_out: l.norm("decoder.conv_norm_out")?,
            conv_out: l.conv("decoder.conv_out", 1, 1)?,
            groups: config.norm_num_groups,
            gpu,
        })
    }

    fn conv(&self, c: &Conv, x: &GpuTensor) -> Result<GpuTensor> {
        c.forward(&self.gpu, x)
    }

    fn norm(&self, n: &Norm, x: &GpuTensor, silu: bool) -> Result<GpuTensor> {
        self.gpu
            .group_norm(x, self.groups, &n.gamma, &n.beta, EPS, silu)
    }

    fn resnet(&self, r: &ResBlock, x: &GpuTensor) -> Result<GpuTensor> {
        let h = self.conv(&r.conv1, &self.norm(&r.norm1, x, true)?)?;
        let h = self.conv(&r.conv2, &self.norm(&r.norm2, &h, true)?)?;
        let skip = match &r.shortcut {
            Some(s) => self.conv(s, x)?,
            None => x.clone(),
        };
        self.gpu.add(&skip, &h)
    }

    fn attention(&self, a: &Attention, x: &GpuTensor) -> Result<GpuTensor> {
        let [b, c, h, w]: [usize; 4] = x
            .shape()
            .try_into()
            .map_err(|_| Error::InvalidArgument("attention input".into()))?;
        let tokens = self
            .gpu
            .transpose(&self.norm(&a.norm, x, false)?.reshape(&[b, c, h * w])?)?;
        let q = a.q.forward(&self.gpu, &tokens)?;
        let k = a.k.forward(&self.gpu, &tokens)?;
        let v = a.v.forward(&self.gpu, &tokens)?;
        let attended = self.gpu.attention(&q, &k, &v, (c as f32).powf(-0.5))?;
        let out = a.out.forward(&self.gpu, &attended)?;
        let out = self.gpu.transpose(&out)?.reshape(&[b, c, h, w])?;
        self.gpu.add(&out, x)
    }

    /// Decodes latents `[B, C, h, w]` (already divided by the scaling factor) to an image
    /// `[B, 3, 8h, 8w]` in about [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let z = z.to_dtype(DType::F32)?;
        let values: Vec<f32> = z.flatten_all()?.to_vec1()?;
        let mut x = self.gpu.upload(&values, z.dims())?;
        if let Some(p) = &self.post_quant {
            x = self.conv(p, &x)?;
        }
        x = self.conv(&self.conv_in, &x)?;
        x = self.resnet(&self.mid.0, &x)?;
        if let Some(a) = &self.mid.1 {
            x = self.attention(a, &x)?;
        }
        x = self.resnet(&self.mid.2, &x)?;
        for level in &self.levels {
            for r in &level.resnets {
                x = self.resnet(r, &x)?;
            }
            if let Some(up) = &level.upsample {
                x = self.conv(up, &self.gpu.upsample2x(&x)?)?;
            }
        }
        let x = self.conv(&self.conv_out, &self.norm(&self.norm_out, &x, true)?)?;
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

    #[test]
    fn the_gpu_decoder_matches_the_cpu_decoder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tiny-sd15/vae");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let config = VaeConfig::from_json(&config).unwrap();
        let st =
            Arc::new(open_safetensors(&[dir.join("diffusion_pytorch_model.safetensors")]).unwrap());
        let weights = Weights::identity(st, "vae");
        let cpu =
            crate::vae::Vae::new(weights.var_builder(DType::F32, &Device::Cpu), &config).unwrap();
        let gpu = Arc::new(super::super::ops::tests::gpu());
        let decoder = GpuVaeDecoder::new(gpu, &weights, &config).unwrap();
        let z = Tensor::from_vec(
            super::super::ops::tests::values(2 * config.latent_channels * 6 * 5, 21),
            (2, config.latent_channels, 6, 5),
            &Device::Cpu,
        )
        .unwrap();
        let z = (z * 4.0).unwrap();
        let want = cpu.decode(&z).unwrap();
        let got = decoder.decode(&z).unwrap();
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
        // In pixels: 1e-3 of the [-1, 1] range is an eighth of a level.
        assert!(diff < 1e-3, "GPU decode differs by {diff}");
        let spread: f32 = want
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(spread > 0.05, "the decode is not trivial");
    }
}
