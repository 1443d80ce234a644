//! diffusers `ResnetBlock2D`, `Downsample2D`, `Upsample2D` and the timestep embedding.
//! The VAE reuses the resnet without a time embedding.

use crate::Result;
use crate::kernels::conv::Conv2d;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder};

/// Group-norm settings shared by a block.
#[derive(Clone, Copy, Debug)]
pub struct NormConfig {
    /// Number of groups.
    pub groups: usize,
    /// Epsilon.
    pub eps: f64,
}

/// 3×3 convolution with padding 1 (and the given stride).
pub fn conv3x3(in_ch: usize, out_ch: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    Conv2d::new(in_ch, out_ch, 3, stride, 1, vb)
}

/// 1×1 convolution.
pub fn conv1x1(in_ch: usize, out_ch: usize, vb: VarBuilder) -> Result<Conv2d> {
    Conv2d::new(in_ch, out_ch, 1, 1, 0, vb)
}

/// diffusers `ResnetBlock2D`: two norm-act-conv stages plus an optional time embedding.
#[derive(Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl ResBlock {
    /// Loads a block mapping `in_ch` to `out_ch`; `temb_ch` is the time-embedding width (UNet).
    pub fn new(
        vb: VarBuilder,
        in_ch: usize,
        out_ch: usize,
        temb_ch: Option<usize>,
        norm: NormConfig,
    ) -> Result<Self> {
        let time_emb_proj = match temb_ch {
            Some(t) => Some(crate::kernels::linear::linear(
                t,
                out_ch,
                vb.pp("time_emb_proj"),
            )?),
            None => None,
        };
        let conv_shortcut = if in_ch != out_ch {
            Some(conv1x1(in_ch, out_ch, vb.pp("conv_shortcut"))?)
        } else {
            None
        };
        Ok(ResBlock {
            norm1: GroupNorm::new(norm.groups, in_ch, norm.eps, vb.pp("norm1"))?,
            conv1: conv3x3(in_ch, out_ch, 1, vb.pp("conv1"))?,
            time_emb_proj,
            norm2: GroupNorm::new(norm.groups, out_ch, norm.eps, vb.pp("norm2"))?,
            conv2: conv3x3(out_ch, out_ch, 1, vb.pp("conv2"))?,
            conv_shortcut,
        })
    }

    /// `x [B,C,H,W]`, `temb [B,T]` (already passed through SiLU by the caller, once per UNet
    /// pass, as diffusers applies `nonlinearity(temb)` inside each block).
    pub fn forward(&self, x: &Tensor, temb_silu: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb_silu) {
            let t = proj.forward(t)?.unsqueeze(2)?.unsqueeze(3)?;
            h = h.broadcast_add(&t)?;
        }
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// diffusers `Downsample2D` with a conv: 3×3, stride 2, padding 1.
#[derive(Debug)]
pub struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    /// Loads `downsamplers.0`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Downsample {
            conv: conv3x3(channels, channels, 2, vb.pp("conv"))?,
        })
    }

    /// Halves the spatial size (rounding up).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}

/// diffusers `Upsample2D`: nearest-neighbour upsampling then a 3×3 conv.
#[derive(Debug)]
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    /// Loads `upsamplers.0`.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Upsample {
            conv: conv3x3(channels, channels, 1, vb.pp("conv"))?,
        })
    }

    /// Upsamples to `size` (h, w) — twice the input unless the skip connection says otherwise.
    pub fn forward(&self, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let up = if size == (2 * h, 2 * w) {
            x.upsample_nearest2d(2 * h, 2 * w)?
        } else {
            x.upsample_nearest2d(size.0, size.1)?
        };
        self.conv.forward(&up)
    }
}

/// diffusers `get_timestep_embedding` for a batch of timesteps, computed in float32.
pub fn timestep_embedding(
    timesteps: &[f32],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: &Device,
) -> Result<Tensor> {
    let half = dim / 2;
    let denom = half as f32 - freq_shift as f32;
    let ln_10000 = (10000f32).ln();
    let freqs: Vec<f32> = (0..half)
        .map(|k| (-ln_10000 * k as f32 / denom).exp())
        .collect();
    let mut data = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
        let (first, second): (Vec<f32>, Vec<f32>) = if flip_sin_to_cos {
            (
                args.iter().map(|a| a.cos()).collect(),
                args.iter().map(|a| a.sin()).collect(),
            )
        } else {
            (
                args.iter().map(|a| a.sin()).collect(),
                args.iter().map(|a| a.cos()).collect(),
            )
        };
        data.extend(first);
        data.extend(second);
        if dim % 2 == 1 {
            data.push(0.0);
        }
    }
    Ok(Tensor::from_vec(data, (timesteps.len(), dim), device)?)
}

/// diffusers `TimestepEmbedding`: Linear, SiLU, Linear.
#[derive(Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    /// Loads `linear_1`/`linear_2`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(TimestepEmbedding {
            linear_1: crate::kernels::linear::linear(in_dim, out_dim, vb.pp("linear_1"))?,
            linear_2: crate::kernels::linear::linear(out_dim, out_dim, vb.pp("linear_2"))?,
        })
    }

    /// Projects a sinusoid embedding.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)?)
    }
}

/// Casts to the compute dtype of a layer when needed.
pub fn to_dtype(x: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(if x.dtype() == dtype {
        x.clone()
    } else {
        x.to_dtype(dtype)?
    })
}
