//! diffusers `AutoencoderKLTemporalDecoder` (`models/autoencoders/autoencoder_kl_temporal_decoder.py`):
//! the image encoder of `AutoencoderKL` and a decoder whose resnets are spatio-temporal and
//! whose output passes a final temporal convolution (`time_conv_out`). There is no
//! `post_quant_conv`. The decoder sees the frames of one chunk together, so the chunk size
//! changes the result (as in diffusers' `decode_chunk_size`).

use super::blocks::{GROUPS, SpatioTemporalResBlock, StResConfig, TemporalConv};
use crate::kernels::conv::Conv2d;
use crate::kernels::norm::GroupNorm;
use crate::unet::resnet::{conv1x1, conv3x3};
use crate::vae::{Encoder, MidAttention, VAE_EPS, VaeConfig};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

fn decoder_res() -> StResConfig {
    StResConfig {
        temb_ch: None,
        eps: 1e-6,
        temporal_eps: 1e-5,
        switch: true,
    }
}

/// diffusers `TemporalDecoder`.
#[derive(Debug)]
struct TemporalDecoder {
    conv_in: Conv2d,
    mid_resnets: Vec<SpatioTemporalResBlock>,
    mid_attention: MidAttention,
    levels: Vec<(Vec<SpatioTemporalResBlock>, Option<Conv2d>)>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    time_conv_out: TemporalConv,
}

impl TemporalDecoder {
    fn new(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let top = reversed.first().copied().unwrap_or(0);
        let bottom = reversed.last().copied().unwrap_or(0);
        let mvb = vb.pp("mid_block");
        let mid_resnets = (0..cfg.layers_per_block)
            .map(|j| SpatioTemporalResBlock::new(mvb.pp("resnets").pp(j), top, top, decoder_res()))
            .collect::<Result<Vec<_>>>()?;
        let mid_attention = MidAttention::new(mvb.pp("attentions").pp(0), top, GROUPS)?;
        let mut levels = Vec::new();
        let mut out_ch = top;
        for (i, &ch) in reversed.iter().enumerate() {
            let prev = out_ch;
            out_ch = ch;
            let bvb = vb.pp("up_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| {
                    let rin = if j == 0 { prev } else { out_ch };
                    SpatioTemporalResBlock::new(bvb.pp("resnets").pp(j), rin, out_ch, decoder_res())
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
            levels.push((resnets, upsample));
        }
        Ok(TemporalDecoder {
            conv_in: conv3x3(cfg.latent_channels, top, 1, vb.pp("conv_in"))?,
            mid_resnets,
            mid_attention,
            levels,
            conv_norm_out: GroupNorm::new(GROUPS, bottom, VAE_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv3x3(bottom, cfg.out_channels, 1, vb.pp("conv_out"))?,
            time_conv_out: TemporalConv::new(
                cfg.out_channels,
                cfg.out_channels,
                vb.pp("time_conv_out"),
            )?,
        })
    }

    /// `z [F, 4, h, w]`: the frames of one clip chunk.
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let frames = z.dim(0)?;
        let mut x = self.conv_in.forward(z)?;
        // MidBlockTemporalDecoder: resnet, then (attention, resnet) pairs.
        if let Some(first) = self.mid_resnets.first() {
            x = first.forward(&x, None, frames)?;
        }
        for resnet in self.mid_resnets.iter().skip(1) {
            x = self.mid_attention.forward(&x)?;
            x = resnet.forward(&x, None, frames)?;
        }
        for (resnets, upsample) in &self.levels {
            for r in resnets {
                x = r.forward(&x, None, frames)?;
            }
            if let Some(up) = upsample {
                let (_, _, h, w) = x.dims4()?;
                x = up.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)?;
            }
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        let x = self.conv_out.forward(&x)?;
        self.time_conv_out.forward(&x, frames)
    }
}

/// The SVD autoencoder.
#[derive(Debug)]
pub struct TemporalVae {
    encoder: Encoder,
    quant_conv: Conv2d,
    decoder: TemporalDecoder,
    config: VaeConfig,
    dtype: DType,
}

impl TemporalVae {
    /// Loads the VAE (diffusers names) described by `config` (a `vae/config.json` of
    /// `AutoencoderKLTemporalDecoder`; its missing `up_block_types` do not matter).
    pub fn new(vb: VarBuilder, config: &VaeConfig) -> Result<Self> {
        if config.norm_num_groups != GROUPS {
            return Err(Error::InvalidArgument(format!(
                "temporal vae: {} norm groups (SVD uses 32)",
                config.norm_num_groups
            )));
        }
        use crate::kernels::{Precision, with_precision};
        let lc = config.latent_channels;
        let encoder = with_precision(Precision::F32, || Encoder::new(vb.pp("encoder"), config))?;
        let quant_conv = with_precision(Precision::F32, || {
            conv1x1(2 * lc, 2 * lc, vb.pp("quant_conv"))
        })?;
        Ok(TemporalVae {
            encoder,
            quant_conv,
            decoder: TemporalDecoder::new(vb.pp("decoder"), config)?,
            config: config.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The latent mean (`latent_dist.mode()`) of images `[B, 3, H, W]` in [-1, 1].
    pub fn encode_mode(&self, image: &Tensor) -> Result<Tensor> {
        let x = image.to_dtype(self.dtype)?;
        let moments = self.quant_conv.forward(&self.encoder.forward(&x)?)?;
        Ok(moments
            .narrow(1, 0, self.config.latent_channels)?
            .to_dtype(DType::F32)?)
    }

    /// Decodes the latents `[F, 4, h, w]` (already divided by the scaling factor) of one chunk
    /// of frames, decoded together, to images in about [-1, 1].
    pub fn decode_chunk(&self, z: &Tensor) -> Result<Tensor> {
        let z = z.to_dtype(self.dtype)?;
        Ok(self.decoder.forward(&z)?.to_dtype(DType::F32)?)
    }
}
