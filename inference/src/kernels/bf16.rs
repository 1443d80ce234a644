//! bf16 matrix multiply with f32 accumulation: `C[M,N] = A[M,K] · B[K,N]` with both operands
//! rounded to bf16 (round to nearest even, as `torch.bfloat16`) and products summed in f32.
//!
//! Layouts: A is row-major bf16 *pairs* (`u32` = two consecutive k, low half first), rows
//! padded to a multiple of [`MR`]; B is packed in panels of [`NR`] columns, each panel
//! `pairs × NR` (pair-major), so a slice of K is a contiguous run of a panel.
//!
//! The product runs in K slices of at most [`KC`] pairs: a B micro-panel (`KC·NR·4` bytes)
//! stays in L1 while every row block of A passes over it, and the slice of A is reused from L2
//! by every panel. Each 8×32 tile starts from zero, a bias (per row or per column) or the
//! values C already holds (later slices), and is stored with masks, so callers write straight
//! into their output (a convolution's NCHW planes, a Linear's rows) with no extra pass.
//!
//! On x86-64 CPUs with AVX512-BF16 the inner loop is `vdpbf16ps` (16 accumulators in
//! registers); other CPUs run a portable loop over the same packed data, so results agree up
//! to summation order.

use rayon::prelude::*;

/// Columns per B panel (two 16-lane vectors).
pub(crate) const NR: usize = 32;
/// Rows per micro-kernel call.
pub(crate) const MR: usize = 8;
/// Rows of A per parallel task of [`matmul`].
const MC: usize = 64;
/// Columns of C per chunk of [`matmul`] (a multiple of [`NR`]).
const NC: usize = 256;
/// Largest K slice, in pairs (a 20 KiB B micro-panel).
pub(crate) const KC: usize = 160;

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

/// Two f32 values as one bf16 pair (`lo` in the low half).
#[inline]
pub(crate) fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// The K slices `[k0, k0 + kc)` of a `pairs`-deep product: balanced, each at most [`KC`].
pub(crate) fn k_slices(pairs: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = pairs.div_ceil(KC).max(1);
    let step = pairs.div_ceil(count).max(1);
    (0..pairs)
        .step_by(step)
        .map(move |k0| (k0, step.min(pairs - k0)))
}

/// Packed weight values: bf16 pairs, or int8 pairs with one scale per output channel
/// (dequantized to bf16 pairs when a product needs them).
#[derive(Clone, Debug)]
enum Store {
    /// bf16 pairs as `u32` (low half = even k).
    Bf16(Vec<u32>),
    /// The same slots as int8 pairs, and one scale per output channel (`layout` says which
    /// channel a slot belongs to).
    Int8 {
        q: Vec<[i8; 2]>,
        scales: Vec<f32>,
        layout: Int8Layout,
    },
}

/// Which output channel a slot of an int8 [`Store`] belongs to.
#[derive(Clone, Copy, Debug)]
enum Int8Layout {
    /// B panels: slot `i` is column `(i / (pairs·NR))·NR + i % NR`.
    Panels { pairs: usize },
    /// A rows: slot `i` is row `i / pairs`.
    Rows { pairs: usize },
}

impl Int8Layout {
    /// Slots sharing one row of the layout: a panel row of [`NR`] columns, or a weight row.
    fn width(self) -> usize {
        match self {
            Int8Layout::Panels { .. } => NR,
            Int8Layout::Rows { pairs } => pairs,
        }
    }

    /// The scale of slot `lane` of layout row `row` (0 for padding).
    fn scale(self, scales: &[f32], row: usize, lane: usize) -> f32 {
        let channel = match self {
            Int8Layout::Panels { pairs } => row / pairs.max(1) * NR + lane,
            Int8Layout::Rows { .. } => row,
        };
        scales.get(channel).copied().unwrap_or(0.0)
    }
}

/// Per-channel symmetric int8 scales: `max |w| / 127` of each row of `w [channels, k]`
/// (1 for an all-zero row).
fn int8_scales(w: &[f32], channels: usize, k: usize) -> Vec<f32> {
    (0..channels)
        .map(|c| {
            let row = w.get(c * k..(c + 1) * k).unwrap_or_default();
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max > 0.0 { max / 127.0 } else { 1.0 }
        })
        .collect()
}

/// `w / scale` rounded to int8.
fn quantize(w: f32, scale: f32) -> i8 {
    (w / scale).round().clamp(-127.0, 127.0) as i8
}

impl Store {
    /// Bytes held.
    fn bytes(&self) -> usize {
        match self {
            Store::Bf16(d) => d.len() * 4,
            Store::Int8 { q, scales, .. } => q.len() * 2 + scales.len() * 4,
        }
    }

    /// The values as bf16 pairs: borrowed, or dequantized (`q · scale`, rounded to bf16).
    fn bf16(&self) -> std::borrow::Cow<'_, [u32]> {
        match self {
            Store::Bf16(d) => std::borrow::Cow::Borrowed(d),
            Store::Int8 { q, scales, layout } => {
                // Row by row (a panel row of NR columns, or a weight row): scale to f32, then
                // round to bf16 pairs with the same packer as f32 weights.
                let width = layout.width().max(1);
                let rows_per_task = (16384 / width).max(1);
                let mut out = vec![0u32; q.len()];
                out.par_chunks_mut(width * rows_per_task)
                    .zip(q.par_chunks(width * rows_per_task))
                    .enumerate()
                    .for_each_init(Vec::new, |tmp: &mut Vec<f32>, (task, (dst, src))| {
                        for (r, (d, s)) in dst.chunks_mut(width).zip(src.chunks(width)).enumerate()
                        {
                            let row = task * rows_per_task + r;
                            tmp.clear();
                            for (lane, &[lo, hi]) in s.iter().enumerate() {
                                let scale = layout.scale(scales, row, lane);
                                tmp.push(f32::from(lo) * scale);
                                tmp.push(f32::from(hi) * scale);
                            }
                            pack_rows(tmp, 1, tmp.len(), d);
                        }
                    });
                std::borrow::Cow::Owned(out)
            }
        }
    }
}

/// A weight `B [N, K]` packed for [`matmul`]: panels of [`NR`] columns, each `K/2` pairs deep,
/// every pair of a column stored as one `u32` (low half = even k).
#[derive(Clone, Debug)]
pub struct PackedB {
    n: usize,
    k: usize,
    /// `ceil(K/2)`.
    pairs: usize,
    data: Store,
}

impl PackedB {
    /// Packs a row-major `[n, k]` f32 matrix (a Linear weight `[out, in]`).
    pub fn new(b: &[f32], n: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels * pairs * NR];
        for (p, panel) in data.chunks_mut(pairs * NR).enumerate() {
            for lane in 0..NR {
                let col = p * NR + lane;
                if col >= n {
                    break;
                }
                let row = b.get(col * k..(col + 1) * k).unwrap_or_default();
                for kp in 0..pairs {
                    let lo = row.get(2 * kp).copied().unwrap_or(0.0);
                    let hi = row.get(2 * kp + 1).copied().unwrap_or(0.0);
                    if let Some(slot) = panel.get_mut(kp * NR + lane) {
                        *slot = pair(lo, hi);
                    }
                }
            }
        }
        PackedB {
            n,
            k,
            pairs,
            data: Store::Bf16(data),
        }
    }

    /// Packs a row-major `[n, k]` f32 matrix as int8 with one scale per output column (half
    /// the bytes of [`Self::new`]); products dequantize it to bf16 first.
    pub fn new_int8(b: &[f32], n: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let scales = int8_scales(b, n, k);
        let mut q = vec![[0i8; 2]; panels * pairs * NR];
        for (p, panel) in q.chunks_mut(pairs * NR).enumerate() {
            for lane in 0..NR {
                let col = p * NR + lane;
                let (Some(row), Some(&s)) = (b.get(col * k..(col + 1) * k), scales.get(col)) else {
                    break;
                };
                for kp in 0..pairs {
                    let lo = row.get(2 * kp).map_or(0, |&v| quantize(v, s));
                    let hi = row.get(2 * kp + 1).map_or(0, |&v| quantize(v, s));
                    if let Some(slot) = panel.get_mut(kp * NR + lane) {
                        *slot = [lo, hi];
                    }
                }
            }
        }
        PackedB {
            n,
            k,
            pairs,
            data: Store::Int8 {
                q,
                scales,
                layout: Int8Layout::Panels { pairs },
            },
        }
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
        self.data.bytes()
    }
}

/// `A` as bf16 pairs, rows padded to a multiple of [`MR`] (a conv weight `[out, in·k·k]`,
/// packed once).
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    pairs: usize,
    data: Store,
}

impl PackedA {
    /// Packs a row-major `[m, k]` f32 matrix.
    pub fn new(a: &[f32], m: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let mut data = vec![0u32; m.div_ceil(MR) * MR * pairs];
        pack_rows(a, m, k, &mut data);
        PackedA {
            m,
            pairs,
            data: Store::Bf16(data),
        }
    }

    /// Packs a row-major `[m, k]` f32 matrix as int8 with one scale per row (half the bytes of
    /// [`Self::new`]); products dequantize it to bf16 first.
    pub fn new_int8(a: &[f32], m: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let scales = int8_scales(a, m, k);
        let mut q = vec![[0i8; 2]; m.div_ceil(MR) * MR * pairs];
        for (r, (row, &s)) in a.chunks(k.max(1)).zip(&scales).enumerate().take(m) {
            for kp in 0..pairs {
                let lo = row.get(2 * kp).map_or(0, |&v| quantize(v, s));
                let hi = row.get(2 * kp + 1).map_or(0, |&v| quantize(v, s));
                if let Some(slot) = q.get_mut(r * pairs + kp) {
                    *slot = [lo, hi];
                }
            }
        }
        PackedA {
            m,
            pairs,
            data: Store::Int8 {
                q,
                scales,
                layout: Int8Layout::Rows { pairs },
            },
        }
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Pairs per row.
    pub(crate) fn pairs(&self) -> usize {
        self.pairs
    }

    /// The packed rows (`m` rounded up to [`MR`] rows of `pairs` values) as bf16 pairs
    /// (dequantized when stored as int8).
    pub(crate) fn data(&self) -> std::borrow::Cow<'_, [u32]> {
        self.data.bf16()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.bytes()
    }
}

/// Rows of `a [m, k]` as bf16 pairs into `dst` (`ceil(k/2)` values per row).
pub(crate) fn pack_rows(a: &[f32], m: usize, k: usize, dst: &mut [u32]) {
    let pairs = k.div_ceil(2);
    let simd = simd_available();
    for r in 0..m {
        let (Some(src), Some(row)) = (
            a.get(r * k..(r + 1) * k),
            dst.get_mut(r * pairs..(r + 1) * pairs),
        ) else {
            return;
        };
        if simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has the features (checked at run time).
            unsafe {
                avx512::pack_row(src, row)
            };
        } else {
            for (kp, slot) in row.iter_mut().enumerate() {
                let lo = src.get(2 * kp).copied().unwrap_or(0.0);
                let hi = src.get(2 * kp + 1).copied().unwrap_or(0.0);
                *slot = pair(lo, hi);
            }
        }
    }
}

/// How the accumulators of a tile start.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TileInit {
    /// From zero.
    Zero,
    /// From the values C already holds (every K slice after the first).
    Load,
    /// From one value per row (a convolution's per-channel bias), pointing at row 0's.
    Row(*const f32),
    /// From one value per column (a Linear bias), pointing at column 0's.
    Col(*const f32),
}

/// The operands of one K slice of a product, as raw parts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slice {
    /// Pair `k0` of row 0 of A; rows `a_rs` values apart, readable up to a multiple of [`MR`]
    /// rows.
    pub a: *const u32,
    pub a_rs: usize,
    /// Rows of C to compute.
    pub rows: usize,
    /// Pair `k0` of panel 0 of B; panels `b_ps` values apart, `NR` values per pair.
    pub b: *const u32,
    pub b_ps: usize,
    /// Pairs in the slice.
    pub kc: usize,
    /// Columns of C.
    pub n: usize,
    /// `C[0][0]`, rows `c_rs` values apart.
    pub c: *mut f32,
    pub c_rs: usize,
}

/// `C = init + A[.., k0..k0+kc] · B[k0..k0+kc, ..]` over all tiles: panels outer, row blocks
/// inner, so the B micro-panel stays in L1.
///
/// # Safety
/// The pointers of `s` must describe readable A (`ceil(rows/MR)·MR` rows × `kc` pairs), B
/// (`ceil(n/NR)` panels × `kc` pairs × `NR`) and, for `init`, bias values (`rows` or `n`);
/// C must be writable (and readable for [`TileInit::Load`]) at `rows × n` and not used by
/// anyone else meanwhile. `simd` only where [`simd_available`].
pub(crate) unsafe fn gemm_slice(s: &Slice, init: TileInit, simd: bool) {
    for p in 0..s.n.div_ceil(NR) {
        let cols = (s.n - p * NR).min(NR);
        let b = s.b.wrapping_add(p * s.b_ps);
        let mut mb = 0;
        while mb < s.rows {
            let rows = (s.rows - mb).min(MR);
            let tile_init = match init {
                TileInit::Row(bias) => TileInit::Row(bias.wrapping_add(mb)),
                TileInit::Col(bias) => TileInit::Col(bias.wrapping_add(p * NR)),
                other => other,
            };
            let tile = Tile {
                a: s.a.wrapping_add(mb * s.a_rs),
                a_rs: s.a_rs,
                b,
                kc: s.kc,
                c: s.c.wrapping_add(mb * s.c_rs + p * NR),
                c_rs: s.c_rs,
                rows,
                cols,
            };
            if simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: features checked by the caller; the tile lies inside the slice the
                // caller vouched for.
                unsafe {
                    avx512::kernel(&tile, tile_init)
                };
            } else {
                // SAFETY: as above.
                unsafe { portable_kernel(&tile, tile_init) };
            }
            mb += MR;
        }
    }
}

/// One 8×32 tile of [`gemm_slice`].
pub(crate) struct Tile {
    a: *const u32,
    a_rs: usize,
    b: *const u32,
    kc: usize,
    c: *mut f32,
    c_rs: usize,
    /// Valid rows (≤ MR) and columns (≤ NR).
    rows: usize,
    cols: usize,
}

/// `C = A · Bᵀ (+ bias)` with `A [m, k]` row-major f32, `b` the packed `[n, k]` weight and
/// `C [m, n]` row-major f32 (overwritten); blocks of [`MC`] rows run in parallel.
pub fn matmul(a: &[f32], m: usize, b: &PackedB, bias: Option<&[f32]>, c: &mut [f32]) {
    let (n, k, pairs) = (b.n, b.k, b.pairs);
    if m == 0 || n == 0 {
        return;
    }
    let fits = a.len() >= m * k && c.len() >= m * n && bias.is_none_or(|v| v.len() >= n);
    if !fits {
        return;
    }
    let simd = simd_available();
    let b_data = b.data.bf16();
    c[..m * n].par_chunks_mut(MC * n).enumerate().for_each_init(
        Vec::new,
        |a_pack: &mut Vec<u32>, (block, c_block)| {
            let row0 = block * MC;
            let rows = (m - row0).min(MC);
            a_pack.resize(rows.div_ceil(MR) * MR * pairs, 0);
            pack_rows(&a[row0 * k..(row0 + rows) * k], rows, k, a_pack);
            // Column chunks outer: the chunk of C stays in L2 across the K slices.
            for j0 in (0..n).step_by(NC) {
                for (k0, kc) in k_slices(pairs) {
                    let slice = Slice {
                        a: a_pack.as_ptr().wrapping_add(k0),
                        a_rs: pairs,
                        rows,
                        b: b_data.as_ptr().wrapping_add(j0 / NR * pairs * NR + k0 * NR),
                        b_ps: pairs * NR,
                        kc,
                        n: NC.min(n - j0),
                        c: c_block.as_mut_ptr().wrapping_add(j0),
                        c_rs: n,
                    };
                    let init = match (k0, bias) {
                        (0, Some(v)) => TileInit::Col(v.as_ptr().wrapping_add(j0)),
                        (0, None) => TileInit::Zero,
                        _ => TileInit::Load,
                    };
                    // SAFETY: a_pack holds ceil(rows/MR)·MR rows × pairs; b.data holds every
                    // panel × pairs × NR (j0 is a multiple of NR); c_block is rows × n and
                    // columns j0.. of this chunk lie inside it; the bias has n values
                    // (checked above).
                    unsafe { gemm_slice(&slice, init, simd) };
                }
            }
        },
    );
}

/// Whether the AVX512-BF16 kernel can run here.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The micro-kernel in plain Rust, over the same packed data.
///
/// # Safety
/// As for [`gemm_slice`], for one tile.
unsafe fn portable_kernel(t: &Tile, init: TileInit) {
    let mut tile = [0f32; MR * NR];
    for r in 0..t.rows {
        for j in 0..t.cols {
            // SAFETY: r < rows, j < cols: inside C and the bias (caller's contract).
            tile[r * NR + j] = unsafe {
                match init {
                    TileInit::Zero => 0.0,
                    TileInit::Load => *t.c.add(r * t.c_rs + j),
                    TileInit::Row(bias) => *bias.add(r),
                    TileInit::Col(bias) => *bias.add(j),
                }
            };
        }
    }
    for r in 0..t.rows {
        for kp in 0..t.kc {
            // SAFETY: r < MR rows, kp < kc pairs of A; kp·NR + NR ≤ kc·NR values of B.
            let (ap, bp) = unsafe {
                (
                    *t.a.add(r * t.a_rs + kp),
                    std::slice::from_raw_parts(t.b.add(kp * NR), NR),
                )
            };
            let (a0, a1) = (from_bf16(ap as u16), from_bf16((ap >> 16) as u16));
            for (o, &bv) in tile[r * NR..(r + 1) * NR].iter_mut().zip(bp) {
                *o += a0 * from_bf16(bv as u16) + a1 * from_bf16((bv >> 16) as u16);
            }
        }
    }
    for r in 0..t.rows {
        for j in 0..t.cols {
            // SAFETY: inside C.
            unsafe { *t.c.add(r * t.c_rs + j) = tile[r * NR + j] };
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{MR, NR, Tile, TileInit};
    use std::arch::x86_64::*;

    /// The low `n` (≤ 16) lanes.
    #[inline(always)]
    pub fn lanes(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// bf16 pairs of 16 + 16 values: lane `j` of the result is `(lo[j], hi[j])`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    pub fn interleave(lo: __m512, hi: __m512) -> __m512i {
        /// `lo[0..16] ++ hi[0..16]` (bf16) → pairs `(lo[j], hi[j])`.
        const PAIRS: [u16; 32] = {
            let mut idx = [0u16; 32];
            let mut j = 0;
            while j < 16 {
                idx[2 * j] = j as u16;
                idx[2 * j + 1] = 16 + j as u16;
                j += 1;
            }
            idx
        };
        // SAFETY: a 64-byte read of a 64-byte constant; the transmute reinterprets the bits
        // of a 512-bit vector.
        unsafe {
            let mixed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_permutexvar_epi16(_mm512_loadu_si512(PAIRS.as_ptr().cast()), mixed)
        }
    }

    /// One row of f32 as bf16 pairs (consecutive values pair up, so no shuffle is needed).
    ///
    /// # Safety
    /// Needs avx512f, avx512bw and avx512bf16; `dst.len() == src.len().div_ceil(2)`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pack_row(src: &[f32], dst: &mut [u32]) {
        let k = src.len();
        let mut i = 0;
        while i < k {
            let left = k - i;
            let (m0, m1) = (lanes(left.min(16)), lanes(left.saturating_sub(16)));
            // SAFETY: masked loads read only the `left` valid values from i on; the masked
            // store writes ceil(min(left, 32) / 2) ≤ dst.len() − i/2 values.
            unsafe {
                let lo = _mm512_maskz_loadu_ps(m0, src.as_ptr().add(i));
                let hi = _mm512_maskz_loadu_ps(m1, src.as_ptr().wrapping_add(i + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_mask_storeu_epi32(
                    dst.as_mut_ptr().add(i / 2).cast(),
                    lanes(left.min(32).div_ceil(2)),
                    v,
                );
            }
            i += 32;
        }
    }

    /// 8×32 tile over `kc` bf16 pairs with `vdpbf16ps`.
    ///
    /// # Safety
    /// Needs avx512f and avx512bf16; the tile's pointers as [`super::gemm_slice`] requires.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn kernel(t: &Tile, init: TileInit) {
        let (m0, m1) = (lanes(t.cols.min(16)), lanes(t.cols.saturating_sub(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        match init {
            TileInit::Zero => {}
            TileInit::Load => {
                for (r, row) in acc.iter_mut().enumerate() {
                    let (k0, k1) = if r < t.rows { (m0, m1) } else { (0, 0) };
                    let at = t.c.wrapping_add(r * t.c_rs);
                    // SAFETY: masked: only valid rows/columns of C are read.
                    unsafe {
                        row[0] = _mm512_maskz_loadu_ps(k0, at);
                        row[1] = _mm512_maskz_loadu_ps(k1, at.wrapping_add(16));
                    }
                }
            }
            TileInit::Row(bias) => {
                for (r, row) in acc.iter_mut().enumerate() {
                    if r < t.rows {
                        // SAFETY: r < rows values of the bias.
                        let v = _mm512_set1_ps(unsafe { *bias.add(r) });
                        *row = [v, v];
                    }
                }
            }
            TileInit::Col(bias) => {
                // SAFETY: masked: `cols` values of the bias.
                let (v0, v1) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(m0, bias),
                        _mm512_maskz_loadu_ps(m1, bias.wrapping_add(16)),
                    )
                };
                for row in acc.iter_mut() {
                    *row = [v0, v1];
                }
            }
        }
        let (ap, bp) = (t.a, t.b);
        for kp in 0..t.kc {
            // SAFETY: kp < kc: inside the B micro-panel.
            let (b0, b1): (__m512bh, __m512bh) = unsafe {
                (
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        bp.add(kp * NR).cast(),
                    )),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        bp.add(kp * NR + 16).cast(),
                    )),
                )
            };
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: r < MR (A is padded to MR rows), kp < kc.
                let av = unsafe { *ap.add(r * t.a_rs + kp) };
                // SAFETY: a bit reinterpretation of a 512-bit vector.
                let av = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(av as i32))
                };
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let (k0, k1) = if r < t.rows { (m0, m1) } else { (0, 0) };
            let at = t.c.wrapping_add(r * t.c_rs);
            // SAFETY: masked: only valid rows/columns of C are written.
            unsafe {
                _mm512_mask_storeu_ps(at, k0, row[0]);
                _mm512_mask_storeu_ps(at.wrapping_add(16), k1, row[1]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn values(len: usize, seed: u32) -> Vec<f32> {
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
    fn k_slices_cover_the_depth() {
        for pairs in [1, 5, KC, KC + 1, 3 * KC - 7, 2304] {
            let slices: Vec<_> = k_slices(pairs).collect();
            assert_eq!(slices.first().map(|s| s.0), Some(0));
            let mut next = 0;
            for (k0, kc) in slices {
                assert_eq!(k0, next);
                assert!(kc > 0 && kc <= KC);
                next = k0 + kc;
            }
            assert_eq!(next, pairs);
        }
    }

    #[test]
    fn the_simd_row_packer_rounds_like_the_scalar_one() {
        if !simd_available() {
            return;
        }
        for k in [1, 2, 15, 16, 17, 31, 32, 33, 64, 101] {
            let src = values(k, 9);
            let mut simd = vec![0u32; k.div_ceil(2)];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: checked at run time; sizes as required.
            unsafe {
                avx512::pack_row(&src, &mut simd)
            };
            let scalar: Vec<u32> = (0..k.div_ceil(2))
                .map(|kp| pair(src[2 * kp], src.get(2 * kp + 1).copied().unwrap_or(0.0)))
                .collect();
            assert_eq!(simd, scalar, "k = {k}");
        }
    }

    /// `w` as the int8 path stores it: per-row `max|w|/127` scales, rounded, scaled back.
    fn int8_roundtrip(w: &[f32], rows: usize, k: usize) -> Vec<f32> {
        let scales = int8_scales(w, rows, k);
        w.iter()
            .enumerate()
            .map(|(i, &v)| {
                let s = scales[i / k];
                f32::from(quantize(v, s)) * s
            })
            .collect()
    }

    #[test]
    fn int8_weights_multiply_like_their_dequantized_values_in_half_the_bytes() {
        for (m, n, k) in [(9, 33, 7), (70, 40, 64), (13, 50, 700)] {
            let a = values(m * k, 4);
            let mut b = values(n * k, 5);
            b[3] = 4.0; // one outlier: its column's scale is coarser, the others' are not
            let int8 = PackedB::new_int8(&b, n, k);
            let bf16 = PackedB::new(&b, n, k);
            assert!(int8.bytes() <= bf16.bytes() / 2 + 4 * n, "{m}×{n}×{k}");
            let want = reference(&a, &int8_roundtrip(&b, n, k), m, n, k);
            let mut c = vec![f32::NAN; m * n];
            matmul(&a, m, &int8, None, &mut c);
            for (got, want) in c.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{got} vs {want}"
                );
            }
            // And the rows of A (a convolution's weight) dequantize to the same values.
            let rows = PackedA::new_int8(&b, n, k);
            let direct = PackedA::new(&int8_roundtrip(&b, n, k), n, k);
            assert_eq!(rows.data(), direct.data());
            assert!(rows.bytes() <= direct.bytes() / 2 + 4 * n);
        }
    }

    #[test]
    fn matches_the_reference_on_odd_shapes() {
        // (13, 100, 700): several K slices; (70, 40, 64): several row blocks and a partial panel.
        for (m, n, k) in [
            (1, 1, 1),
            (9, 33, 7),
            (70, 40, 64),
            (13, 100, 321),
            (13, 50, 700),
        ] {
            let a = values(m * k, 1);
            let b = values(n * k, 2);
            let bias = values(n, 3);
            let packed = PackedB::new(&b, n, k);
            let want = reference(&a, &b, m, n, k);
            for with_bias in [false, true] {
                let mut c = vec![f32::NAN; m * n];
                matmul(&a, m, &packed, with_bias.then_some(&bias[..]), &mut c);
                for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                    let y = if with_bias { y + bias[i % n] } else { *y };
                    assert!(
                        (x - y).abs() <= 1e-4 * (k as f32).sqrt(),
                        "{m}x{n}x{k}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_portable_kernel_agrees_with_the_simd_one() {
        // Two K slices, a partial panel and a partial row block, with a row bias.
        let (m, n, k) = (13, 45, 2 * 2 * KC + 6);
        let pairs = k.div_ceil(2);
        let a = PackedA::new(&values(m * k, 3), m, k);
        let b = PackedB::new(&values(n * k, 4), n, k);
        let bias = values(m, 5);
        let (a_data, b_data) = (a.data(), b.data.bf16());
        let run = |simd: bool| {
            let mut c = vec![f32::NAN; m * n];
            for (k0, kc) in k_slices(pairs) {
                let slice = Slice {
                    a: a_data.as_ptr().wrapping_add(k0),
                    a_rs: pairs,
                    rows: m,
                    b: b_data.as_ptr().wrapping_add(k0 * NR),
                    b_ps: pairs * NR,
                    kc,
                    n,
                    c: c.as_mut_ptr(),
                    c_rs: n,
                };
                let init = if k0 == 0 {
                    TileInit::Row(bias.as_ptr())
                } else {
                    TileInit::Load
                };
                // SAFETY: the operands are as gemm_slice requires.
                unsafe { gemm_slice(&slice, init, simd) };
            }
            c
        };
        let portable = run(false);
        assert!(portable.iter().all(|x| x.is_finite()));
        if simd_available() {
            for (x, y) in portable.iter().zip(&run(true)) {
                assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{x} vs {y}");
            }
        }
    }
}
