//! A Linear layer whose weight is either a plain f32 tensor (candle matmul) or, when built
//! inside [`super::with_precision`]`(Bf16, …)`, packed once into bf16 panels for
//! [`super::bf16::matmul`] (half the memory, `vdpbf16ps` speed; activations stay f32); with
//! `Int8` the panels hold int8 values and per-output scales (a quarter of f32), dequantized to
//! bf16 for each product.

use super::Precision;
use super::bf16::{PackedB, matmul};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// `y = x Wᵀ + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Option<Tensor>,
    packed: Option<Arc<PackedB>>,
    bias: Option<Tensor>,
    /// The bias as f32 values, added by the bf16 kernel (packed layers only).
    bias_values: Option<Arc<Vec<f32>>>,
}

/// A Linear layer with bias under `vb` (`weight [out, in]`, `bias [out]`).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bias = vb.get(out_dim, "bias")?;
    Linear::load(in_dim, out_dim, vb, Some(bias))
}

/// A Linear layer without bias under `vb`.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::load(in_dim, out_dim, vb, None)
}

impl Linear {
    fn load(in_dim: usize, out_dim: usize, vb: VarBuilder, bias: Option<Tensor>) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let precision = super::weight_precision();
        if precision.packs() && matches!(weight.device(), Device::Cpu) {
            let values: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let bias_values = match &bias {
                Some(b) => Some(Arc::new(b.to_dtype(DType::F32)?.to_vec1::<f32>()?)),
                None => None,
            };
            return Ok(Linear {
                weight: None,
                packed: Some(Arc::new(match precision {
                    Precision::Int8 => PackedB::new_int8(&values, out_dim, in_dim),
                    _ => PackedB::new(&values, out_dim, in_dim),
                })),
                bias,
                bias_values,
            });
        }
        Ok(Linear {
            weight: Some(weight),
            packed: None,
            bias,
            bias_values: None,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match (&self.packed, &self.weight) {
            (Some(packed), _) => {
                let dims = x.dims().to_vec();
                let k = dims.last().copied().unwrap_or(0);
                if k != packed.k() {
                    candle_core::bail!("linear: input width {k}, weight expects {}", packed.k());
                }
                let m = x.elem_count() / k.max(1);
                let mut out = vec![0f32; m * packed.n()];
                let bias = self.bias_values.as_deref().map(Vec::as_slice);
                super::with_f32(&x.to_dtype(DType::F32)?, |input| {
                    matmul(input, m, packed, bias, &mut out)
                })?;
                let mut shape = dims;
                if let Some(last) = shape.last_mut() {
                    *last = packed.n();
                }
                // The kernel added the bias.
                return Tensor::from_vec(out, shape, x.device())?.to_dtype(x.dtype());
            }
            (None, Some(w)) => match x.dims() {
                [b1, b2, _, _] => x.matmul(&w.broadcast_left((*b1, *b2))?.t()?)?,
                [bsize, _, _] => x.matmul(&w.broadcast_left(*bsize)?.t()?)?,
                _ => x.matmul(&w.t()?)?,
            },
            (None, None) => candle_core::bail!("linear layer without weights"),
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}
