//! Scaled dot-product attention with bounded memory.
//!
//! Softmax rows are independent, so processing the queries in blocks is exact: the full
//! `N×N` score matrix of a 4096-token self-attention never exists at once. Each block's scores
//! stay within [`SCORE_BUDGET_BYTES`].

use crate::Result;
use candle_core::Tensor;

/// Largest score block (all heads of one block together) kept in memory at once.
const SCORE_BUDGET_BYTES: usize = 64 << 20;

/// `softmax(q kᵀ · scale) v` for `q [B, Nq, d]`, `k, v [B, Nk, d]` (B = batch × heads).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, nq, _) = q.dims3()?;
    let nk = k.dim(1)?;
    let kt = k.t()?.contiguous()?;
    let bytes_per_row = b * nk * q.dtype().size_in_bytes();
    let rows = (SCORE_BUDGET_BYTES / bytes_per_row.max(1)).clamp(1, nq);
    if rows >= nq {
        return block(q, &kt, v, scale);
    }
    let mut outs = Vec::with_capacity(nq.div_ceil(rows));
    let mut start = 0;
    while start < nq {
        let len = rows.min(nq - start);
        outs.push(block(&q.narrow(1, start, len)?, &kt, v, scale)?);
        start += len;
    }
    Ok(Tensor::cat(&outs, 1)?)
}

fn block(q: &Tensor, kt: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let scores = (q.matmul(kt)? * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn blocked_equals_plain() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let blocked = attention(&q, &k, &v, 0.35).unwrap();
        let plain = block(&q, &k.t().unwrap(), &v, 0.35).unwrap();
        let diff = (blocked - plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
