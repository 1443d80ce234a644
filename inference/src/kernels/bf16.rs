//! bf16 matrix multiply with f32 accumulation: `C[M,N] = A[M,K] · Bᵀ` where `B [N,K]` is a
//! weight packed once ([`PackedB`]) and `A` is f32 activations rounded to bf16 on the fly.
//!
//! On x86-64 CPUs with AVX512-BF16 the inner loop is `vdpbf16ps` (two bf16 products summed into
//! each f32 lane): B is packed in panels of 32 columns × K/2 pairs, A in blocks of 8 rows, and an
//! 8×32 micro-kernel keeps 16 accumulators in registers. Other CPUs use a portable loop over the
//! same packed data (bf16 widened to f32), so results agree up to summation order.

use rayon::prelude::*;

/// Columns per B panel (two 16-lane vectors).
const NR: usize = 32;
/// Rows per micro-kernel call.
const MR: usize = 8;
/// Rows of A per parallel task.
const MC: usize = 64;

/// f32 → bf16 with round-to-nearest-even (NaN kept quiet), as `torch.bfloat16` rounds.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// bf16 → f32 (exact).
#[inline]
pub fn from_bf16(x: u16) -> f32 {
    f32::from_bits(u32::from(x) << 16)
}

/// A weight `B [N, K]` packed for [`matmul`]: panels of [`NR`] columns, each `K/2` pairs deep,
/// every pair of a column stored as one `u32` (low half = even k).
#[derive(Clone, Debug)]
pub struct PackedB {
    n: usize,
    k: usize,
    /// `ceil(K/2)`.
    pairs: usize,
    data: Vec<u32>,
}

impl PackedB {
    /// Packs a row-major `[n, k]` f32 matrix (a Linear weight `[out, in]`).
    pub fn new(b: &[f32], n: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels * pairs * NR];
        for (p, panel) in data.chunks_mut(pairs * NR).enumerate() {
            for kp in 0..pairs {
                for lane in 0..NR {
                    let col = p * NR + lane;
                    if col >= n {
                        continue;
                    }
                    let at = |kk: usize| {
                        if kk < k {
                            b.get(col * k + kk).copied().unwrap_or(0.0)
                        } else {
                            0.0
                        }
                    };
                    let lo = u32::from(to_bf16(at(2 * kp)));
                    let hi = u32::from(to_bf16(at(2 * kp + 1)));
                    if let Some(slot) = panel.get_mut(kp * NR + lane) {
                        *slot = lo | (hi << 16);
                    }
                }
            }
        }
        PackedB { n, k, pairs, data }
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction depth.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// `A` as bf16 pairs, rows padded to a multiple of [`MR`] (a conv weight `[out, in·k·k]`,
/// packed once).
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    pairs: usize,
    data: Vec<u32>,
}

impl PackedA {
    /// Packs a row-major `[m, k]` f32 matrix.
    pub fn new(a: &[f32], m: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let mut data = vec![0u32; m.div_ceil(MR) * MR * pairs];
        pack_rows(a, m, k, &mut data);
        PackedA { m, pairs, data }
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// Rows of `a [m, k]` as bf16 pairs into `dst` (`pairs` values per row).
fn pack_rows(a: &[f32], m: usize, k: usize, dst: &mut [u32]) {
    let pairs = k.div_ceil(2);
    for r in 0..m {
        let src = a.get(r * k..(r + 1) * k).unwrap_or_default();
        let Some(row) = dst.get_mut(r * pairs..(r + 1) * pairs) else {
            return;
        };
        for (kp, slot) in row.iter_mut().enumerate() {
            let lo = src.get(2 * kp).copied().unwrap_or(0.0);
            let hi = src.get(2 * kp + 1).copied().unwrap_or(0.0);
            *slot = u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16);
        }
    }
}

/// Packs `b` given as `[k, n]` row-major (an im2col matrix: one row per reduction index) into
/// the panel layout of [`PackedB`] (`out` is resized).
pub fn pack_kn(b: &[f32], k: usize, n: usize, out: &mut Vec<u32>) {
    let pairs = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    out.clear();
    out.resize(panels * pairs * NR, 0);
    for kp in 0..pairs {
        let lo_row = b.get(2 * kp * n..(2 * kp + 1) * n).unwrap_or_default();
        let hi_row = if 2 * kp + 1 < k {
            b.get((2 * kp + 1) * n..(2 * kp + 2) * n)
                .unwrap_or_default()
        } else {
            &[]
        };
        for p in 0..panels {
            let base = (p * pairs + kp) * NR;
            let Some(dst) = out.get_mut(base..base + NR) else {
                continue;
            };
            for (lane, slot) in dst.iter_mut().enumerate() {
                let col = p * NR + lane;
                let lo = lo_row.get(col).copied().unwrap_or(0.0);
                let hi = hi_row.get(col).copied().unwrap_or(0.0);
                *slot = u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16);
            }
        }
    }
}

/// The single-threaded core: `C[rows, n] = A · B` for packed `a` (`rows` valid rows, padded
/// to [`MR`]) and panel-packed `b`; each finished tile row segment goes to `store(row, col0,
/// values)`.
pub fn gemm_packed(
    a: &[u32],
    rows: usize,
    b: &[u32],
    n: usize,
    pairs: usize,
    store: &mut dyn FnMut(usize, usize, &[f32]),
) {
    let use_simd = simd_available();
    let mut tile = [0f32; MR * NR];
    for p in 0..n.div_ceil(NR) {
        let Some(panel) = b.get(p * pairs * NR..(p + 1) * pairs * NR) else {
            return;
        };
        let cols = (n - p * NR).min(NR);
        for mb in (0..rows).step_by(MR) {
            let Some(a_rows) = a.get(mb * pairs..(mb + MR) * pairs) else {
                return;
            };
            if use_simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `simd_available` checked avx512f + avx512bf16 at run time; the slices
                // hold MR rows × pairs and pairs × NR values.
                unsafe {
                    avx512::kernel(a_rows, panel, pairs, &mut tile)
                };
            } else {
                portable_kernel(a_rows, panel, pairs, &mut tile);
            }
            for r in 0..(rows - mb).min(MR) {
                store(mb + r, p * NR, &tile[r * NR..r * NR + cols]);
            }
        }
    }
}

/// `C = A · Bᵀ` with `A [m, k]` row-major f32 and `C [m, n]` row-major f32 (overwritten);
/// row blocks run in parallel.
pub fn matmul(a: &[f32], m: usize, b: &PackedB, c: &mut [f32]) {
    let (n, k, pairs) = (b.n, b.k, b.pairs);
    if m == 0 || n == 0 {
        return;
    }
    c.par_chunks_mut(MC * n)
        .enumerate()
        .for_each(|(block, c_block)| {
            let row0 = block * MC;
            let rows = (m - row0).min(MC);
            let mut a_pack = vec![0u32; rows.div_ceil(MR) * MR * pairs];
            let a_block = a.get(row0 * k..(row0 + rows) * k).unwrap_or_default();
            pack_rows(a_block, rows, k, &mut a_pack);
            gemm_packed(&a_pack, rows, &b.data, n, pairs, &mut |r, col0, values| {
                if let Some(dst) = c_block.get_mut(r * n + col0..r * n + col0 + values.len()) {
                    dst.copy_from_slice(values);
                }
            });
        });
}

/// [`matmul_a_packed`] writing through a raw pointer, for callers whose tasks own interleaved
/// regions of one output buffer (a band of rows in every channel plane of a convolution).
///
/// # Safety
/// For every `r < a.m()` and `j < n`, `c.add(r * row_stride + j)` must be valid for writes and
/// not accessed by anyone else during the call.
pub unsafe fn matmul_a_packed_raw(
    a: &PackedA,
    b: &[u32],
    n: usize,
    c: *mut f32,
    row_stride: usize,
) {
    gemm_packed(&a.data, a.m, b, n, a.pairs, &mut |r, col0, values| {
        for (j, v) in values.iter().enumerate() {
            // SAFETY: r < a.m and col0 + j < n, which the caller guarantees are writable.
            unsafe { *c.add(r * row_stride + col0 + j) = *v };
        }
    });
}

/// `C [a.m, n] = A · B` for a pre-packed `A` and `b` packed by [`pack_kn`] from `[k, n]`; row
/// `r` of C is written at `c[r * row_stride ..]` (single-threaded; the caller parallelises).
pub fn matmul_a_packed(a: &PackedA, b: &[u32], n: usize, c: &mut [f32], row_stride: usize) {
    gemm_packed(&a.data, a.m, b, n, a.pairs, &mut |r, col0, values| {
        let at = r * row_stride + col0;
        if let Some(dst) = c.get_mut(at..at + values.len()) {
            dst.copy_from_slice(values);
        }
    });
}

/// Whether the AVX512-BF16 kernel can run here.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The micro-kernel in plain Rust: `tile[r][j] = Σ_kp a[r][kp]·b[kp][j]` over bf16 pairs.
fn portable_kernel(a: &[u32], b: &[u32], pairs: usize, tile: &mut [f32; MR * NR]) {
    tile.fill(0.0);
    for r in 0..MR {
        let row = &a[r * pairs..(r + 1) * pairs];
        let out = &mut tile[r * NR..(r + 1) * NR];
        for (kp, &ap) in row.iter().enumerate() {
            let (a0, a1) = (from_bf16(ap as u16), from_bf16((ap >> 16) as u16));
            let bp = &b[kp * NR..(kp + 1) * NR];
            for (o, &bv) in out.iter_mut().zip(bp) {
                *o += a0 * from_bf16(bv as u16) + a1 * from_bf16((bv >> 16) as u16);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// 8×32 tile over `pairs` bf16 pairs with `vdpbf16ps`.
    ///
    /// # Safety
    /// Needs avx512f and avx512bf16; `a` holds `MR·pairs` values, `b` holds `pairs·NR`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn kernel(a: &[u32], b: &[u32], pairs: usize, tile: &mut [f32; MR * NR]) {
        debug_assert!(a.len() >= MR * pairs && b.len() >= pairs * NR);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let ap = a.as_ptr();
        let bp = b.as_ptr();
        for kp in 0..pairs {
            // SAFETY: kp < pairs, so both loads stay inside `b` (checked above).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_si512(bp.add(kp * NR).cast()),
                    _mm512_loadu_si512(bp.add(kp * NR + 16).cast()),
                )
            };
            // SAFETY: both are 512-bit vectors; bf16 pairs are just reinterpreted bits.
            let (b0, b1): (__m512bh, __m512bh) = unsafe {
                (
                    std::mem::transmute::<__m512i, __m512bh>(b0),
                    std::mem::transmute::<__m512i, __m512bh>(b1),
                )
            };
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: r < MR and kp < pairs: inside `a`.
                let av = unsafe { *ap.add(r * pairs + kp) };
                // SAFETY: as above, a bit reinterpretation of a 512-bit vector.
                let av = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(av as i32))
                };
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        let out = tile.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: the tile has MR·NR floats.
            unsafe {
                _mm512_storeu_ps(out.add(r * NR), row[0]);
                _mm512_storeu_ps(out.add(r * NR + 16), row[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let r = |x: f32| from_bf16(to_bf16(x));
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| r(a[i * k + t]) * r(b[j * k + t])).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (down).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn matches_the_reference_on_odd_shapes() {
        for (m, n, k) in [(1, 1, 1), (9, 33, 7), (70, 40, 64), (13, 100, 321)] {
            let a = values(m * k, 1);
            let b = values(n * k, 2);
            let packed = PackedB::new(&b, n, k);
            let mut c = vec![f32::NAN; m * n];
            matmul(&a, m, &packed, &mut c);
            let want = reference(&a, &b, m, n, k);
            for (x, y) in c.iter().zip(&want) {
                assert!(
                    (x - y).abs() <= 1e-4 * (k as f32).sqrt(),
                    "{m}x{n}x{k}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn packed_a_with_kn_packed_b_matches_the_reference() {
        for (m, n, k) in [(5, 40, 27), (16, 64, 9), (1, 3, 2)] {
            let a = values(m * k, 5);
            let b = values(n * k, 6); // [n, k]
            // The same B as [k, n].
            let mut kn = vec![0f32; k * n];
            for j in 0..n {
                for t in 0..k {
                    kn[t * n + j] = b[j * k + t];
                }
            }
            let mut packed_b = Vec::new();
            pack_kn(&kn, k, n, &mut packed_b);
            let stride = n + 3;
            let mut c = vec![f32::NAN; m * stride];
            matmul_a_packed(&PackedA::new(&a, m, k), &packed_b, n, &mut c, stride);
            let want = reference(&a, &b, m, n, k);
            for i in 0..m {
                for j in 0..n {
                    let (x, y) = (c[i * stride + j], want[i * n + j]);
                    assert!((x - y).abs() <= 1e-4 * (k as f32).sqrt(), "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn the_portable_kernel_agrees_with_the_simd_one() {
        let (pairs, a, b) = (37, values(MR * 37, 3), values(37 * NR, 4));
        let a: Vec<u32> = a
            .iter()
            .map(|v| v.to_bits())
            .map(|v| (v >> 16) | (v & 0xffff_0000))
            .collect();
        let b: Vec<u32> = b
            .iter()
            .map(|v| v.to_bits())
            .map(|v| (v >> 16) | (v & 0xffff_0000))
            .collect();
        let mut portable = [0f32; MR * NR];
        portable_kernel(&a, &b, pairs, &mut portable);
        if simd_available() {
            let mut simd = [0f32; MR * NR];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: checked at run time; sizes as required.
            unsafe {
                avx512::kernel(&a, &b, pairs, &mut simd)
            };
            for (x, y) in portable.iter().zip(&simd) {
                assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "{x} vs {y}");
            }
        }
    }
}
