//! The spatio-temporal building blocks of Stable Video Diffusion, shared by the UNet and the
//! temporal VAE decoder: diffusers `TemporalResnetBlock`, `SpatioTemporalResBlock` and
//! `AlphaBlender` (`models/resnet.py`).
//!
//! Video tensors are frame-major images, `[B·F, C, H, W]` with the frames of one clip next to
//! each other, as diffusers flattens them; `frames` says how to split the first dimension.

use crate::Result;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use crate::unet::resnet::{NormConfig, ResBlock};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// GroupNorm groups of every SVD block (hard-coded to 32 in diffusers).
pub const GROUPS: usize = 32;

/// A `Conv3d` with kernel `(3, 1, 1)` and padding `(1, 0, 0)`: a 1-D convolution over the frames
/// of each pixel, as three `[Cout, Cin]` matrices applied to the previous, current and next
/// frame (zero frames outside the clip).
#[derive(Debug)]
pub struct TemporalConv {
    /// `[3·Cout, Cin]`: the taps for frame f−1, f, f+1 stacked.
    taps: Tensor,
    bias: Tensor,
    out_ch: usize,
}

impl TemporalConv {
    /// Loads `weight [Cout, Cin, 3, 1, 1]` and `bias [Cout]`.
    pub fn new(in_ch: usize, out_ch: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_ch, in_ch, 3, 1, 1), "weight")?;
        let bias = vb.get(out_ch, "bias")?;
        // [Cout, Cin, 3] → [3, Cout, Cin] → [3·Cout, Cin].
        let taps = weight
            .reshape((out_ch, in_ch, 3))?
            .permute((2, 0, 1))?
            .reshape((3 * out_ch, in_ch))?
            .contiguous()?;
        Ok(TemporalConv { taps, bias, out_ch })
    }

    /// Convolves `x [B·F, Cin, H, W]` over its `frames`. One tap at a time, so at most one
    /// product of the output's size exists besides the output.
    pub fn forward(&self, x: &Tensor, frames: usize) -> Result<Tensor> {
        let (bf, c, h, w) = x.dims4()?;
        let frames = frames.max(1);
        let b = bf / frames;
        let co = self.out_ch;
        let tap = |k: usize, input: &Tensor| -> Result<Tensor> {
            let weight = self.taps.narrow(0, k * co, co)?;
            let n = input.dim(0)?;
            Ok(weight.broadcast_left(n)?.matmul(input)?)
        };
        let flat = x.reshape((bf, c, h * w))?;
        // Centre tap plus bias on every frame.
        let mut out = tap(1, &flat)?
            .broadcast_add(&self.bias.reshape((1, co, 1))?)?
            .reshape((b, frames, co, h * w))?;
        if frames > 1 {
            let clips = flat.reshape((b, frames, c, h * w))?;
            let zero = Tensor::zeros((b, 1, co, h * w), out.dtype(), out.device())?;
            // Frame f reads frame f−1 through tap 0 …
            let earlier = clips
                .narrow(1, 0, frames - 1)?
                .reshape((b * (frames - 1), c, h * w))?;
            let previous = tap(0, &earlier)?.reshape((b, frames - 1, co, h * w))?;
            out = (out + Tensor::cat(&[&zero, &previous], 1)?)?;
            drop(previous);
            // … and frame f+1 through tap 2.
            let later = clips
                .narrow(1, 1, frames - 1)?
                .reshape((b * (frames - 1), c, h * w))?;
            let next = tap(2, &later)?.reshape((b, frames - 1, co, h * w))?;
            out = (out + Tensor::cat(&[&next, &zero], 1)?)?;
        }
        Ok(out.reshape((bf, co, h, w))?)
    }
}

/// GroupNorm over a whole clip (the statistics span all frames, as a 5-D `[B, C, F, H, W]`
/// GroupNorm does), optionally followed by SiLU.
fn clip_group_norm(norm: &GroupNorm, x: &Tensor, frames: usize, silu: bool) -> Result<Tensor> {
    let (bf, c, h, w) = x.dims4()?;
    let b = bf / frames.max(1);
    let clip = x
        .reshape((b, frames, c, h * w))?
        .transpose(1, 2)?
        .contiguous()?;
    let y = if silu {
        norm.forward_silu(&clip)?
    } else {
        norm.forward(&clip)?
    };
    Ok(y.transpose(1, 2)?.contiguous()?.reshape((bf, c, h, w))?)
}

/// diffusers `TemporalResnetBlock`: two clip-wide norm–SiLU–temporal-conv stages with a
/// per-frame time embedding between them (input and output widths are equal in SVD).
#[derive(Debug)]
pub struct TemporalResBlock {
    norm1: GroupNorm,
    conv1: TemporalConv,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: TemporalConv,
}

impl TemporalResBlock {
    /// Loads a block of `channels` with an optional time embedding of width `temb_ch`.
    pub fn new(vb: VarBuilder, channels: usize, temb_ch: Option<usize>, eps: f64) -> Result<Self> {
        let time_emb_proj = match temb_ch {
            Some(t) => Some(crate::kernels::linear::linear(
                t,
                channels,
                vb.pp("time_emb_proj"),
            )?),
            None => None,
        };
        Ok(TemporalResBlock {
            norm1: GroupNorm::new(GROUPS, channels, eps, vb.pp("norm1"))?,
            conv1: TemporalConv::new(channels, channels, vb.pp("conv1"))?,
            time_emb_proj,
            norm2: GroupNorm::new(GROUPS, channels, eps, vb.pp("norm2"))?,
            conv2: TemporalConv::new(channels, channels, vb.pp("conv2"))?,
        })
    }

    /// `x [B·F, C, H, W]`, `temb_silu [B·F, T]` (SiLU already applied).
    pub fn forward(&self, x: &Tensor, temb_silu: Option<&Tensor>, frames: usize) -> Result<Tensor> {
        let h = clip_group_norm(&self.norm1, x, frames, true)?;
        let mut h = self.conv1.forward(&h, frames)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb_silu) {
            h = h.broadcast_add(&proj.forward(t)?.unsqueeze(2)?.unsqueeze(3)?)?;
        }
        let h = clip_group_norm(&self.norm2, &h, frames, true)?;
        let h = self.conv2.forward(&h, frames)?;
        Ok((x + h)?)
    }
}

/// diffusers `AlphaBlender` with SVD's strategies: `alpha·spatial + (1 − alpha)·temporal`, with
/// `alpha = sigmoid(mix_factor)` (`learned_with_images` on video frames, and `learned`), or
/// `1 − sigmoid(mix_factor)` when `switch_spatial_to_temporal_mix` (the VAE decoder).
#[derive(Debug, Clone, Copy)]
pub struct AlphaBlender {
    alpha: f32,
}

impl AlphaBlender {
    /// Loads `mix_factor`.
    pub fn new(vb: VarBuilder, switch: bool) -> Result<Self> {
        let mix: Vec<f32> = vb
            .get(1, "mix_factor")?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let m = mix.first().copied().unwrap_or(0.0);
        let sigmoid = 1.0 / (1.0 + (-m).exp());
        Ok(AlphaBlender {
            alpha: if switch { 1.0 - sigmoid } else { sigmoid },
        })
    }

    /// Blends the two paths.
    pub fn forward(&self, spatial: &Tensor, temporal: &Tensor) -> Result<Tensor> {
        let a = f64::from(self.alpha);
        Ok(((spatial * a)? + (temporal * (1.0 - a))?)?)
    }
}

/// diffusers `SpatioTemporalResBlock`: a `ResnetBlock2D` per frame, then a temporal block,
/// blended by an [`AlphaBlender`].
#[derive(Debug)]
pub struct SpatioTemporalResBlock {
    spatial_res_block: ResBlock,
    temporal_res_block: TemporalResBlock,
    time_mixer: AlphaBlender,
}

/// Settings of a [`SpatioTemporalResBlock`].
#[derive(Debug, Clone, Copy)]
pub struct StResConfig {
    /// Time-embedding width (`None` in the VAE).
    pub temb_ch: Option<usize>,
    /// Epsilon of the spatial block.
    pub eps: f64,
    /// Epsilon of the temporal block.
    pub temporal_eps: f64,
    /// The VAE's `switch_spatial_to_temporal_mix`.
    pub switch: bool,
}

impl SpatioTemporalResBlock {
    /// Loads a block mapping `in_ch` to `out_ch`.
    pub fn new(vb: VarBuilder, in_ch: usize, out_ch: usize, cfg: StResConfig) -> Result<Self> {
        Ok(SpatioTemporalResBlock {
            spatial_res_block: ResBlock::new(
                vb.pp("spatial_res_block"),
                in_ch,
                out_ch,
                cfg.temb_ch,
                NormConfig {
                    groups: GROUPS,
                    eps: cfg.eps,
                },
            )?,
            temporal_res_block: TemporalResBlock::new(
                vb.pp("temporal_res_block"),
                out_ch,
                cfg.temb_ch,
                cfg.temporal_eps,
            )?,
            time_mixer: AlphaBlender::new(vb.pp("time_mixer"), cfg.switch)?,
        })
    }

    /// `x [B·F, C, H, W]`, `temb_silu [B·F, T]`.
    pub fn forward(&self, x: &Tensor, temb_silu: Option<&Tensor>, frames: usize) -> Result<Tensor> {
        let spatial = self.spatial_res_block.forward(x, temb_silu)?;
        let temporal = self
            .temporal_res_block
            .forward(&spatial, temb_silu, frames)?;
        self.time_mixer.forward(&spatial, &temporal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn temporal_conv_matches_a_direct_sum() {
        let device = Device::Cpu;
        let (b, f, ci, co, hw) = (2, 3, 2, 3, 2);
        let weight = Tensor::arange(0f32, (co * ci * 3) as f32, &device)
            .unwrap()
            .reshape((co, ci, 3, 1, 1))
            .unwrap();
        let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &device).unwrap();
        let map: HashMap<String, Tensor> = [
            ("weight".to_string(), weight.clone()),
            ("bias".to_string(), bias),
        ]
        .into_iter()
        .collect();
        let vb = VarBuilder::from_tensors(map, DType::F32, &device);
        let conv = TemporalConv::new(ci, co, vb).unwrap();
        let x = Tensor::arange(0f32, (b * f * ci * hw) as f32, &device)
            .unwrap()
            .reshape((b * f, ci, 1, hw))
            .unwrap();
        let y: Vec<f32> = conv
            .forward(&x, f)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let wv: Vec<f32> = weight.flatten_all().unwrap().to_vec1().unwrap();
        let bv = [0.5f32, -1.0, 2.0];
        for bi in 0..b {
            for fi in 0..f {
                for o in 0..co {
                    for p in 0..hw {
                        let mut want = bv[o];
                        for k in 0..3 {
                            let src = fi as isize + k as isize - 1;
                            if src < 0 || src >= f as isize {
                                continue;
                            }
                            for i in 0..ci {
                                let xi = ((bi * f + src as usize) * ci + i) * hw + p;
                                want += wv[(o * ci + i) * 3 + k] * xv[xi];
                            }
                        }
                        let got = y[((bi * f + fi) * co + o) * hw + p];
                        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
                    }
                }
            }
        }
    }
}
