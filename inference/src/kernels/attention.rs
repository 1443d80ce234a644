//! Scaled dot-product attention with bounded memory.
//!
//! Softmax rows are independent, so processing the queries in blocks is exact: the full `N×N`
//! score matrix of a 4096-token self-attention never exists at once. On the CPU in f32 each
//! (head, block of [`QUERY_BLOCK`] queries) is one task: `S = scale·Q Kᵀ` with a single-threaded
//! gemm into a scratch row block that stays in cache, a softmax over each row (vectorised exp,
//! chosen at run time), then `O = P V`. Tasks run in parallel on rayon. Other dtypes and devices
//! use candle ops on blocks of rows.

use super::Precision;
use super::bf16::{MR, NR, Slice, TileInit, gemm_slice, pack_rows, pair};
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

/// Multi-head attention on token-major tensors with the heads side by side in the channels,
/// as the projections produce them: `q [B, N, H·d]`, `k, v [B, M, H·d]` → `[B, N, H·d]`, no
/// head transposes or copies. On the CPU in f32: `precision` [`Precision::F32`] runs the
/// fused f32 kernel on strided heads; [`Precision::Bf16`] multiplies in bf16 (f32 sums) with an
/// online softmax over key chunks ([`multi_head_bf16`]). Other dtypes and devices split the
/// heads and use [`attention`].
pub fn multi_head(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    scale: f64,
    precision: Precision,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let m = k.dim(1)?;
    if heads == 0 || c % heads != 0 || k.dims3()? != (b, m, c) || v.dims3()? != (b, m, c) {
        return Err(crate::Error::InvalidArgument(format!(
            "attention shapes q {:?} k {:?} v {:?} with {heads} heads",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let d = c / heads;
    let fast =
        matches!(q.device(), Device::Cpu) && [q, k, v].iter().all(|t| t.dtype() == DType::F32);
    if !fast {
        let split = |t: &Tensor, len: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, heads, d))?
                .transpose(1, 2)?
                .reshape((b * heads, len, d))?
                .contiguous()?)
        };
        let out = attention(&split(q, n)?, &split(k, m)?, &split(v, m)?, scale)?;
        return Ok(out
            .reshape((b, heads, n, d))?
            .transpose(1, 2)?
            .reshape((b, n, c))?);
    }
    let dims = Heads { b, n, m, heads, d };
    let mut out = vec![0f32; b * n * c];
    let out_ptr = OutPtr(out.as_mut_ptr());
    super::with_f32(q, |q| -> Result<()> {
        super::with_f32(k, |k| -> Result<()> {
            super::with_f32(v, |v| match precision {
                Precision::F32 => multi_head_f32(q, k, v, dims, scale as f32, &out_ptr),
                Precision::Bf16 | Precision::Int8 => multi_head_bf16(
                    (q, k, v),
                    dims,
                    scale as f32,
                    &out_ptr,
                    super::bf16::simd_available(),
                ),
            })?
        })?
    })??;
    Ok(Tensor::from_vec(out, (b, n, c), q.device())?)
}

/// Sizes of a [`multi_head`] call.
#[derive(Clone, Copy, Debug)]
struct Heads {
    b: usize,
    n: usize,
    m: usize,
    heads: usize,
    d: usize,
}

/// The output of [`multi_head`], written by tasks owning disjoint (rows, head) blocks.
struct OutPtr(*mut f32);
// SAFETY: every task writes only its own rows × head columns (see the users).
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// The f32 path of [`multi_head`]: one task per (image, head, [`QUERY_BLOCK`] queries).
fn multi_head_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    Heads { b, n, m, heads, d }: Heads,
    scale: f32,
    out: &OutPtr,
) -> Result<()> {
    let c = heads * d;
    if q.len() < b * n * c || k.len() < b * m * c || v.len() < b * m * c {
        return Err(crate::Error::InvalidArgument(
            "attention: short inputs".into(),
        ));
    }
    let tiles = n.div_ceil(QUERY_BLOCK);
    (0..b * heads * tiles).into_par_iter().for_each_init(
        Vec::new,
        |scores: &mut Vec<f32>, task| {
            let (bh, row0) = (task / tiles, (task % tiles) * QUERY_BLOCK);
            let (bi, h) = (bh / heads, bh % heads);
            let rows = QUERY_BLOCK.min(n - row0);
            scores.resize(rows * m, 0.0);
            let q0 = q[(bi * n + row0) * c + h * d..].as_ptr();
            let k0 = k[bi * m * c + h * d..].as_ptr();
            let v0 = v[bi * m * c + h * d..].as_ptr();
            let o0 = out.get().wrapping_add((bi * n + row0) * c + h * d);
            // SAFETY: Q rows row0..row0+rows (stride c, d values each), K and V rows 0..m of
            // image bi (stride c) lie inside the slices (length checked above); scores is
            // rows × m; the output block (rows × d at stride c) belongs to this task alone.
            unsafe {
                gemm::gemm(
                    rows,
                    m,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    q0,
                    1,
                    c as isize,
                    k0,
                    c as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let inv: Vec<f32> = scores.chunks_mut(m).map(exp_rows_in_place).collect();
            // SAFETY: as above.
            unsafe {
                gemm::gemm(
                    rows,
                    d,
                    m,
                    o0,
                    1,
                    c as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    m as isize,
                    v0,
                    1,
                    c as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
                for (r, &s) in inv.iter().enumerate() {
                    for x in std::slice::from_raw_parts_mut(o0.add(r * c), d) {
                        *x *= s;
                    }
                }
            }
        },
    );
    Ok(())
}

/// Queries per task of the bf16 path (one B panel).
const Q_TILE: usize = NR;
/// Keys per online-softmax step of the bf16 path.
const KEY_CHUNK: usize = 128;

/// The bf16 path of [`multi_head`]. K (keys × d) and Vᵀ (d × keys) of every (image, head)
/// are packed as bf16 pairs once; each task takes 32 queries of one head as a B panel and
/// walks the keys in chunks: `Sᵀ = K Qᵀ` (f32 sums), running max and sum per query, `P` as
/// bf16 pairs, `Oᵀ += Vᵀ Pᵀ`, then `O = Oᵀ / sum` into the output columns of the head.
fn multi_head_bf16(
    (q, k, v): (&[f32], &[f32], &[f32]),
    Heads { b, n, m, heads, d }: Heads,
    scale: f32,
    out: &OutPtr,
    simd: bool,
) -> Result<()> {
    let c = heads * d;
    if q.len() < b * n * c || k.len() < b * m * c || v.len() < b * m * c || m == 0 {
        return Err(crate::Error::InvalidArgument(
            "attention: short inputs".into(),
        ));
    }
    let dp = d.div_ceil(2);
    let (key_rows, value_rows, key_pairs) = (
        m.next_multiple_of(MR),
        d.next_multiple_of(MR),
        m.div_ceil(2),
    );
    let mut kpack = vec![0u32; b * heads * key_rows * dp];
    let mut vpack = vec![0u32; b * heads * value_rows * key_pairs];
    kpack
        .par_chunks_mut(key_rows * dp)
        .zip(vpack.par_chunks_mut(value_rows * key_pairs))
        .enumerate()
        .for_each(|(bh, (kp, vp))| {
            let (bi, h) = (bh / heads, bh % heads);
            for (j, row) in kp.chunks_mut(dp).take(m).enumerate() {
                let at = (bi * m + j) * c + h * d;
                pack_rows(&k[at..at + d], 1, d, row);
            }
            for jp in 0..key_pairs {
                let lo = (bi * m + 2 * jp) * c + h * d;
                let hi = (2 * jp + 1 < m).then_some(lo + c);
                for dd in 0..d {
                    vp[dd * key_pairs + jp] = pair(v[lo + dd], hi.map_or(0.0, |hi| v[hi + dd]));
                }
            }
        });
    let tiles = n.div_ceil(Q_TILE);
    let log2_scale = scale * std::f32::consts::LOG2_E;
    (0..b * heads * tiles).into_par_iter().for_each_init(
        || BlockScratch::new(dp, value_rows),
        |s, task| {
            let (bh, row0) = (task / tiles, (task % tiles) * Q_TILE);
            let (bi, h) = (bh / heads, bh % heads);
            let lanes = Q_TILE.min(n - row0);
            for t in 0..dp {
                for lane in 0..Q_TILE {
                    s.q[t * NR + lane] = if lane < lanes {
                        let at = (bi * n + row0 + lane) * c + h * d + 2 * t;
                        pair(q[at], if 2 * t + 1 < d { q[at + 1] } else { 0.0 })
                    } else {
                        0
                    };
                }
            }
            s.o.fill(0.0);
            s.max.fill(f32::NEG_INFINITY);
            s.sum.fill(0.0);
            let kp = &kpack[bh * key_rows * dp..(bh + 1) * key_rows * dp];
            let vp = &vpack[bh * value_rows * key_pairs..(bh + 1) * value_rows * key_pairs];
            for j0 in (0..m).step_by(KEY_CHUNK) {
                let keys = KEY_CHUNK.min(m - j0);
                let scores = Slice {
                    a: kp[j0 * dp..].as_ptr(),
                    a_rs: dp,
                    rows: keys,
                    b: s.q.as_ptr(),
                    b_ps: 0,
                    kc: dp,
                    n: NR,
                    c: s.scores.as_mut_ptr(),
                    c_rs: NR,
                };
                // SAFETY: K rows j0.. padded to MR lie in kp (key_rows rows of dp); the Q
                // panel is dp × NR; scores holds KEY_CHUNK × NR.
                unsafe { gemm_slice(&scores, TileInit::Zero, simd) };
                softmax_step(s, keys, log2_scale, d, simd);
                let values = Slice {
                    a: vp[j0 / 2..].as_ptr(),
                    a_rs: key_pairs,
                    rows: d,
                    b: s.p.as_ptr(),
                    b_ps: 0,
                    kc: keys.div_ceil(2),
                    n: NR,
                    c: s.o.as_mut_ptr(),
                    c_rs: NR,
                };
                // SAFETY: Vᵀ rows (d padded to MR) × pairs j0/2 .. j0/2 + kc lie in vp;
                // p holds kc × NR; o is value_rows × NR.
                unsafe { gemm_slice(&values, TileInit::Load, simd) };
            }
            let o0 = out.get().wrapping_add((bi * n + row0) * c + h * d);
            for lane in 0..lanes {
                let inv = 1.0 / s.sum[lane];
                for dd in 0..d {
                    // SAFETY: row row0+lane < n, column h·d+dd < c of image bi: inside
                    // the output, in the block this task alone writes.
                    unsafe { *o0.add(lane * c + dd) = s.o[dd * NR + lane] * inv };
                }
            }
        },
    );
    Ok(())
}

/// Per-task buffers of [`multi_head_bf16`].
struct BlockScratch {
    /// Q panel: pairs over d × NR queries.
    q: Vec<u32>,
    /// Sᵀ: KEY_CHUNK keys × NR queries.
    scores: Vec<f32>,
    /// Pᵀ as bf16 pairs: KEY_CHUNK/2 × NR.
    p: Vec<u32>,
    /// Oᵀ: d (padded) × NR.
    o: Vec<f32>,
    /// Running max (log2 units) and sum per query.
    max: [f32; NR],
    sum: [f32; NR],
}

impl BlockScratch {
    fn new(dp: usize, value_rows: usize) -> Self {
        BlockScratch {
            q: vec![0; dp * NR],
            scores: vec![0.0; KEY_CHUNK * NR],
            p: vec![0; KEY_CHUNK.div_ceil(2) * NR],
            o: vec![0.0; value_rows * NR],
            max: [f32::NEG_INFINITY; NR],
            sum: [0.0; NR],
        }
    }
}

/// `x` rounded to the nearest bf16 value, as f32.
fn round_bf16(x: f32) -> f32 {
    super::bf16::from_bf16(super::bf16::to_bf16(x))
}

/// One online-softmax step over `keys` rows of `s.scores`: new running max per query,
/// rescaling of the sum and of Oᵀ's `d` rows, and `Pᵀ = 2^(scale·log2e·S − max)` as bf16 pairs
/// of consecutive keys (zero past `keys`).
fn softmax_step(s: &mut BlockScratch, keys: usize, log2_scale: f32, d: usize, simd: bool) {
    if simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (the caller checked).
        unsafe {
            avx512::softmax_step(s, keys, log2_scale, d)
        };
        return;
    }
    let mut new_max = s.max;
    for row in s.scores.chunks(NR).take(keys) {
        for (m, &x) in new_max.iter_mut().zip(row) {
            *m = m.max(x * log2_scale);
        }
    }
    let mut alpha = [0f32; NR];
    for lane in 0..NR {
        alpha[lane] = (s.max[lane] - new_max[lane]).exp2();
        s.sum[lane] *= alpha[lane];
    }
    s.max = new_max;
    for row in s.o.chunks_mut(NR).take(d) {
        for (x, a) in row.iter_mut().zip(&alpha) {
            *x *= a;
        }
    }
    for (i, dst) in s.p.chunks_mut(NR).take(keys.div_ceil(2)).enumerate() {
        for (lane, slot) in dst.iter_mut().enumerate() {
            let prob = |r: usize| {
                if r < keys {
                    (s.scores[r * NR + lane] * log2_scale - new_max[lane]).exp2()
                } else {
                    0.0
                }
            };
            // The sum takes the probabilities as rounded for `P V`, so the weights of each
            // output sum to one exactly.
            let (p0, p1) = (round_bf16(prob(2 * i)), round_bf16(prob(2 * i + 1)));
            s.sum[lane] += p0 + p1;
            *slot = pair(p0, p1);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BlockScratch, NR};
    use crate::kernels::bf16::avx512::interleave;
    use std::arch::x86_64::*;

    /// `2^x` for x ≤ 0 (−∞ → 0): `2^n · p(x − n)` with `n = round(x)` and a degree-6
    /// polynomial on [−½, ½], relative error below 1e-6.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn exp2(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-150.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        let f = _mm512_sub_ps(x, n);
        let mut p = _mm512_set1_ps(1.535_336_2e-4);
        for c in [
            1.339_887_4e-3,
            9.618_437e-3,
            5.550_332_5e-2,
            2.402_264_8e-1,
            6.931_472e-1,
            1.0,
        ] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// The AVX-512 body of [`super::softmax_step`].
    ///
    /// # Safety
    /// Needs avx512f, avx512bw and avx512bf16.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn softmax_step(s: &mut BlockScratch, keys: usize, log2_scale: f32, d: usize) {
        let c = _mm512_set1_ps(log2_scale);
        // SAFETY: every pointer below stays inside its buffer: scores has KEY_CHUNK ≥ keys
        // rows of NR, o has ≥ d rows of NR, p has ≥ keys/2 rows of NR, max/sum hold NR.
        unsafe {
            let load2 = |p: *const f32| (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let sp = s.scores.as_ptr();
            let (mut m0, mut m1) = load2(s.max.as_ptr());
            let (old0, old1) = (m0, m1);
            for r in 0..keys {
                let (x0, x1) = load2(sp.add(r * NR));
                m0 = _mm512_max_ps(m0, _mm512_mul_ps(x0, c));
                m1 = _mm512_max_ps(m1, _mm512_mul_ps(x1, c));
            }
            let a0 = exp2(_mm512_sub_ps(old0, m0));
            let a1 = exp2(_mm512_sub_ps(old1, m1));
            let (mut l0, mut l1) = load2(s.sum.as_ptr());
            l0 = _mm512_mul_ps(l0, a0);
            l1 = _mm512_mul_ps(l1, a1);
            _mm512_storeu_ps(s.max.as_mut_ptr(), m0);
            _mm512_storeu_ps(s.max.as_mut_ptr().add(16), m1);
            let op = s.o.as_mut_ptr();
            for r in 0..d {
                let at = op.add(r * NR);
                _mm512_storeu_ps(at, _mm512_mul_ps(_mm512_loadu_ps(at), a0));
                _mm512_storeu_ps(at.add(16), _mm512_mul_ps(_mm512_loadu_ps(at.add(16)), a1));
            }
            let pp = s.p.as_mut_ptr();
            // Round to nearest even at bf16 precision, staying f32 (inputs are finite, ≥ 0).
            let round = |x: __m512| {
                let bits = _mm512_castps_si512(x);
                let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
                let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
                let rounded = _mm512_add_epi32(bits, bias);
                _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(-65536)))
            };
            let prob = |r: usize, x: __m512, m: __m512| {
                if r < keys {
                    exp2(_mm512_fmsub_ps(x, c, m))
                } else {
                    _mm512_setzero_ps()
                }
            };
            for i in 0..keys.div_ceil(2) {
                let (x0, x1) = load2(sp.add(2 * i * NR));
                let (y0, y1) = if 2 * i + 1 < keys {
                    load2(sp.add((2 * i + 1) * NR))
                } else {
                    (_mm512_setzero_ps(), _mm512_setzero_ps())
                };
                // Rounded to bf16 before summing, so each output's weights sum to one.
                let (p0, p1) = (round(prob(2 * i, x0, m0)), round(prob(2 * i, x1, m1)));
                let (q0, q1) = (
                    round(prob(2 * i + 1, y0, m0)),
                    round(prob(2 * i + 1, y1, m1)),
                );
                l0 = _mm512_add_ps(l0, _mm512_add_ps(p0, q0));
                l1 = _mm512_add_ps(l1, _mm512_add_ps(p1, q1));
                _mm512_storeu_si512(pp.add(i * NR).cast(), interleave(p0, q0));
                _mm512_storeu_si512(pp.add(i * NR + 16).cast(), interleave(p1, q1));
            }
            _mm512_storeu_ps(s.sum.as_mut_ptr(), l0);
            _mm512_storeu_ps(s.sum.as_mut_ptr().add(16), l1);
        }
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

    /// Plain multi-head attention on `[B, N, H·d]` tensors through [`block`].
    fn plain_heads(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Tensor {
        let (b, n, c) = q.dims3().unwrap();
        let m = k.dim(1).unwrap();
        let d = c / heads;
        let split = |t: &Tensor, len: usize| {
            t.reshape((b, len, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((b * heads, len, d))
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let out = block(
            &(split(q, n) * scale).unwrap(),
            &split(k, m).t().unwrap(),
            &split(v, m),
        )
        .unwrap();
        out.reshape((b, heads, n, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, n, c))
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn multi_head_equals_plain_heads() {
        use crate::kernels::bf16::{from_bf16, to_bf16};
        let dev = Device::Cpu;
        let round = |t: &Tensor| -> Tensor {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let v: Vec<f32> = v.iter().map(|&x| from_bf16(to_bf16(x))).collect();
            Tensor::from_vec(v, t.dims(), &dev).unwrap()
        };
        // (b, n, m, heads, d): self-attention over several key chunks, cross-attention with
        // an odd key count, odd head width, fewer queries than a tile.
        for (b, n, m, heads, d) in [
            (2, 300, 300, 2, 40),
            (2, 100, 77, 3, 16),
            (1, 33, 5, 2, 7),
            (1, 5, 129, 1, 8),
        ] {
            let c = heads * d;
            let q = Tensor::randn(0f32, 1.0, (b, n, c), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (b, m, c), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, (b, m, c), &dev).unwrap();
            let scale = (d as f64).powf(-0.5);
            let f32_out = multi_head(&q, &k, &v, heads, scale, Precision::F32).unwrap();
            let want = plain_heads(&q, &k, &v, heads, scale);
            assert!(
                max_diff(&f32_out, &want) < 1e-5,
                "f32 {b} {n} {m} {heads} {d}"
            );
            // bf16: against the plain computation on bf16-rounded inputs; the probabilities
            // are rounded to bf16 too (relative 2^-9), so allow a few thousandths.
            let want = plain_heads(&round(&q), &round(&k), &round(&v), heads, scale);
            let dims = Heads { b, n, m, heads, d };
            let (qv, kv, vv) = [&q, &k, &v]
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .into();
            for simd in [false, crate::kernels::bf16::simd_available()] {
                let mut out = vec![f32::NAN; b * n * c];
                let ptr = OutPtr(out.as_mut_ptr());
                multi_head_bf16((&qv, &kv, &vv), dims, scale as f32, &ptr, simd).unwrap();
                let out = Tensor::from_vec(out, (b, n, c), &dev).unwrap();
                let diff = max_diff(&out, &want);
                assert!(
                    diff < 1.5e-2,
                    "bf16 {b} {n} {m} {heads} {d} simd={simd}: {diff}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_exp2_is_accurate() {
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut worst = 0f64;
        for i in 0..10_000 {
            let x = -140.0 * i as f32 / 10_000.0;
            let mut out = [0f32; 16];
            // SAFETY: avx512f checked above; out holds 16 values.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), avx512::exp2(_mm512_set1_ps(x))) };
            let want = (x as f64).exp2();
            if want > 1e-37 {
                worst = worst.max(((out[0] as f64 - want) / want).abs());
            }
        }
        assert!(worst < 1e-6, "relative error {worst}");
    }
}
