//! Group normalisation with an optional fused SiLU (diffusers' `norm → SiLU` pairs).
//!
//! In NCHW the channels of one group are one contiguous run of `C/G·H·W` values, so each
//! (image, group) is a task: one pass for the statistics (per-lane f64 accumulators), one pass
//! that normalises, applies the per-channel affine and, when asked, SiLU. Candle's op chain is
//! used for other dtypes and devices.

use crate::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder};
use rayon::prelude::*;

/// `GroupNorm(groups, channels, eps)` with learned per-channel scale and shift.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
    fallback: candle_nn::GroupNorm,
}

impl GroupNorm {
    /// Loads `weight` and `bias` of `channels` entries under `vb`.
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        let fallback =
            candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
        Ok(GroupNorm {
            weight,
            bias,
            groups,
            eps,
            fallback,
        })
    }

    /// Normalises `x [B, C, …]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, false)
    }

    /// Normalises then applies SiLU, in one pass over the output.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, true)
    }

    fn run(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let fast = matches!(x.device(), Device::Cpu)
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
            && x.rank() >= 2;
        if !fast {
            let y = self.fallback.forward(x)?;
            return Ok(if silu { y.silu()? } else { y });
        }
        let dims = x.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        if self.groups == 0 || c % self.groups != 0 {
            let y = self.fallback.forward(x)?;
            return Ok(if silu { y.silu()? } else { y });
        }
        let per_group = c / self.groups;
        let mut data: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let gamma: Vec<f32> = self.weight.to_vec1()?;
        let beta: Vec<f32> = self.bias.to_vec1()?;
        let eps = self.eps;
        let run_len = per_group * spatial;
        data.par_chunks_mut(run_len.max(1))
            .enumerate()
            .for_each(|(index, run)| {
                let group = index % self.groups;
                let first_channel = group * per_group;
                normalise_run(
                    run,
                    spatial,
                    &gamma[first_channel..first_channel + per_group],
                    &beta[first_channel..first_channel + per_group],
                    eps,
                    silu,
                );
            });
        debug_assert_eq!(data.len(), b * c * spatial);
        Ok(Tensor::from_vec(data, dims, x.device())?)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        GroupNorm::forward(self, x).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

const LANES: usize = 8;

fn normalise_run(
    run: &mut [f32],
    spatial: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    silu: bool,
) {
    let mut sums = [0f64; LANES];
    let mut squares = [0f64; LANES];
    let mut chunks = run.chunks_exact(LANES);
    for chunk in &mut chunks {
        for ((s, q), &x) in sums.iter_mut().zip(squares.iter_mut()).zip(chunk) {
            let x = f64::from(x);
            *s += x;
            *q += x * x;
        }
    }
    let mut sum: f64 = sums.iter().sum();
    let mut square: f64 = squares.iter().sum();
    for &x in chunks.remainder() {
        sum += f64::from(x);
        square += f64::from(x) * f64::from(x);
    }
    let n = run.len().max(1) as f64;
    let mean = sum / n;
    let var = (square / n - mean * mean).max(0.0);
    let inv_std = 1.0 / (var + eps).sqrt();
    for (channel, plane) in run.chunks_mut(spatial.max(1)).enumerate() {
        let (Some(&g), Some(&b)) = (gamma.get(channel), beta.get(channel)) else {
            continue;
        };
        let scale = (f64::from(g) * inv_std) as f32;
        let shift = (f64::from(b) - mean * f64::from(g) * inv_std) as f32;
        if silu {
            super::elementwise::affine_silu_in_place(plane, scale, shift);
        } else {
            for x in plane.iter_mut() {
                *x = *x * scale + shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_group_norm_and_silu() {
        let dev = Device::Cpu;
        for (b, c, h, w, groups) in [(2, 64, 9, 7, 32), (1, 32, 16, 16, 8), (3, 12, 1, 5, 4)] {
            let weight = Tensor::randn(1f32, 0.3, c, &dev).unwrap();
            let bias = Tensor::randn(0f32, 0.3, c, &dev).unwrap();
            let tensors = [
                ("weight".to_string(), weight.clone()),
                ("bias".to_string(), bias.clone()),
            ];
            let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &dev);
            let ours = GroupNorm::new(groups, c, 1e-5, vb).unwrap();
            let theirs = candle_nn::GroupNorm::new(weight, bias, c, groups, 1e-5).unwrap();
            let x = (Tensor::randn(0f32, 2.0, (b, c, h, w), &dev).unwrap() + 0.7).unwrap();
            let want = theirs.forward(&x).unwrap();
            let diff = |a: &Tensor, b: &Tensor| {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            assert!(diff(&ours.forward(&x).unwrap(), &want) < 1e-4);
            let want_silu = want.silu().unwrap();
            assert!(diff(&ours.forward_silu(&x).unwrap(), &want_silu) < 1e-4);
        }
    }
}
