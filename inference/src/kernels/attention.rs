//! Scaled dot-product attention with bounded memory.
//!
//! Softmax rows are independent, so processing the queries in blocks is exact: the full `N×N`
//! score matrix of a 4096-token self-attention never exists at once. On the CPU in f32 each
//! (head, block of [`QUERY_BLOCK`] queries) is one task: `S = scale·Q Kᵀ` with a single-threaded
//! gemm into a scratch row block that stays in cache, a softmax over each row (vectorised exp,
//! chosen at run time), then `O = P V`. Tasks run in parallel on rayon. Other dtypes and devices
//! use candle ops on blocks of rows.

use crate::Result;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Largest score block (all heads of one block together) kept in memory at once by the
/// generic path.
const SCORE_BUDGET_BYTES: usize = 64 << 20;

/// Queries per task of the fused CPU path.
const QUERY_BLOCK: usize = 32;

/// `softmax(q kᵀ · scale) v` for `q [B, Nq, d]`, `k, v [B, Nk, d]` (B = batch × heads).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    if matches!(q.device(), Device::Cpu)
        && q.dtype() == DType::F32
        && k.dtype() == DType::F32
        && v.dtype() == DType::F32
    {
        return fused_cpu(q, k, v, scale as f32);
    }
    blocked(q, k, v, scale)
}

/// Generic path: candle ops on blocks of query rows.
pub fn blocked(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, nq, _) = q.dims3()?;
    let nk = k.dim(1)?;
    let kt = k.t()?.contiguous()?;
    let bytes_per_row = b * nk * q.dtype().size_in_bytes();
    let rows = (SCORE_BUDGET_BYTES / bytes_per_row.max(1)).clamp(1, nq);
    let q = (q * scale)?;
    if rows >= nq {
        return block(&q, &kt, v);
    }
    let mut outs = Vec::with_capacity(nq.div_ceil(rows));
    let mut start = 0;
    while start < nq {
        let len = rows.min(nq - start);
        outs.push(block(&q.narrow(1, start, len)?, &kt, v)?);
        start += len;
    }
    Ok(Tensor::cat(&outs, 1)?)
}

fn block(q: &Tensor, kt: &Tensor, v: &Tensor) -> Result<Tensor> {
    let scores = q.matmul(kt)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(v)?)
}

fn fused_cpu(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    let (b, nq, d) = q.dims3()?;
    let (kb, nk, kd) = k.dims3()?;
    let (vb, vn, dv) = v.dims3()?;
    if kb != b || vb != b || kd != d || vn != nk {
        return Err(crate::Error::InvalidArgument(format!(
            "attention shapes q {:?} k {:?} v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let qv: Vec<f32> = q.flatten_all()?.to_vec1()?;
    let kv: Vec<f32> = k.flatten_all()?.to_vec1()?;
    let vv: Vec<f32> = v.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; b * nq * dv];
    out.par_chunks_mut(QUERY_BLOCK * dv)
        .enumerate()
        .for_each_init(Vec::new, |scores, (chunk_index, out_block)| {
            // A chunk covers rows of all heads laid end to end; attend_rows splits it at head
            // boundaries.
            let first_row_global = chunk_index * QUERY_BLOCK;
            attend_rows(
                &qv,
                &kv,
                &vv,
                (nq, nk, d, dv),
                first_row_global,
                out_block,
                scale,
                scores,
            );
        });
    Ok(Tensor::from_vec(out, (b, nq, dv), q.device())?)
}

/// Computes output rows `first_row_global ..` (rows of all heads laid end to end) into `out`.
#[allow(clippy::too_many_arguments)]
fn attend_rows(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (nq, nk, d, dv): (usize, usize, usize, usize),
    first_row_global: usize,
    out: &mut [f32],
    scale: f32,
    scores: &mut Vec<f32>,
) {
    let mut inv_sums: Vec<f32> = Vec::with_capacity(QUERY_BLOCK);
    let rows_total = out.len() / dv;
    let mut done = 0;
    while done < rows_total {
        let row_global = first_row_global + done;
        let head = row_global / nq;
        let row = row_global % nq;
        // Stay within one head.
        let rows = (rows_total - done).min(nq - row);
        let q_block = &q[(head * nq + row) * d..(head * nq + row + rows) * d];
        let k_head = &k[head * nk * d..(head + 1) * nk * d];
        let v_head = &v[head * nk * dv..(head + 1) * nk * dv];
        let out_block = &mut out[done * dv..(done + rows) * dv];
        scores.resize(rows * nk, 0.0);
        // SAFETY: every pointer/stride pair below describes a matrix that lies inside the
        // slice it points into: q_block is rows×d row-major, k_head is nk×d row-major (read as
        // its transpose d×nk), scores is rows×nk, v_head is nk×dv and out_block rows×dv.
        unsafe {
            gemm::gemm(
                rows,
                nk,
                d,
                scores.as_mut_ptr(),
                1,
                nk as isize,
                false,
                q_block.as_ptr(),
                1,
                d as isize,
                k_head.as_ptr(),
                d as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        // Unnormalised probabilities; each output row is divided by its sum after `P V`
        // (dv values per row instead of nk).
        inv_sums.clear();
        inv_sums.extend(scores.chunks_mut(nk).map(exp_rows_in_place));
        // SAFETY: as above.
        unsafe {
            gemm::gemm(
                rows,
                dv,
                nk,
                out_block.as_mut_ptr(),
                1,
                dv as isize,
                false,
                scores.as_ptr(),
                1,
                nk as isize,
                v_head.as_ptr(),
                1,
                dv as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (out_row, inv) in out_block.chunks_mut(dv).zip(inv_sums.iter()) {
            out_row.iter_mut().for_each(|x| *x *= inv);
        }
        done += rows;
    }
}

/// Numerically stable softmax of one row, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    let inv = exp_rows_in_place(row);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Replaces a row by `exp(x − max)` and returns `1 / Σ` (NaN for an all-−∞ or NaN row).
fn exp_rows_in_place(row: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { exp_row_avx512(row) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { exp_row_avx2(row) };
        }
    }
    exp_row_generic(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn exp_row_avx512(row: &mut [f32]) -> f32 {
    exp_row_generic(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_row_avx2(row: &mut [f32]) -> f32 {
    exp_row_generic(row)
}

/// Lanes of the per-lane max and sum accumulators (lets the compiler vectorise reductions).
const LANES: usize = 16;

/// Plain code written so the compiler vectorises it for whichever features the caller enables.
#[inline(always)]
fn exp_row_generic(row: &mut [f32]) -> f32 {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(maxes.iter())
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if !max.is_finite() {
        // All −∞ (fully masked): NaN out, as candle's softmax gives (a NaN input propagates
        // through exp and the sum on its own).
        row.iter_mut().for_each(|x| *x = f32::NAN);
        return f32::NAN;
    }
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, x) in sums.iter_mut().zip(chunk.iter_mut()) {
            let e = exp_approx(*x - max);
            *x = e;
            *s += e;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        let e = exp_approx(*x - max);
        *x = e;
        sum += e;
    }
    1.0 / sum
}

/// `exp(x)` for `x ≤ 0`, Cephes-style: `2^n · p(r)` with a degree-6 polynomial; relative
/// error about 1e-7 (within an ulp or two of libm), branch-free so it vectorises.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = x.mul_add(std::f32::consts::LOG2_E, 0.5).floor();
    // r = x − n·ln2 in two parts for accuracy.
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let r2 = r * r;
    let y = p.mul_add(r2, r) + 1.0;
    // 2^n via the exponent bits (n ∈ [-126, 0]).
    let bits = ((n as i32 + 127) as u32) << 23;
    y * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_accurate() {
        let mut worst = 0f64;
        for i in 0..100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let want = (x as f64).exp();
            let got = exp_approx(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
    }

    #[test]
    fn fused_equals_plain() {
        let dev = Device::Cpu;
        for (b, nq, nk, d) in [
            (2, 4096, 4096, 8),
            (3, 77, 77, 16),
            (4, 100, 77, 40),
            (1, 33, 5, 3),
        ] {
            let q = Tensor::randn(0f32, 1.0, (b, nq, d), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (b, nk, d), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, (b, nk, d), &dev).unwrap();
            let fused = attention(&q, &k, &v, 0.35).unwrap();
            let plain = block(&(&q * 0.35).unwrap(), &k.t().unwrap(), &v).unwrap();
            let diff = (fused - plain).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "{b}x{nq}x{nk}x{d}");
        }
    }

    #[test]
    fn blocked_equals_plain() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, 4096, 8), &dev).unwrap();
        let blocked = blocked(&q, &k, &v, 0.35).unwrap();
        let plain = block(&(&q * 0.35).unwrap(), &k.t().unwrap(), &v).unwrap();
        let diff = (blocked - plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
