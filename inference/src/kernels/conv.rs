//! 2-D convolution for the UNet and VAE: a CPU f32 path that builds im2col tiles of whole
//! output rows with row copies and multiplies them with one single-threaded gemm per tile,
//! writing straight into the NCHW output (tiles run in parallel on rayon); a bf16 path (weights
//! packed once) that packs the input straight into bf16 panels, one K slice at a time, with
//! no im2col buffer; candle's `conv2d` everywhere else.

use super::bf16::{self, MR, NR, PackedA, Slice, TileInit};
use crate::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// Output pixels per tile (rounded to whole output rows).
const TILE_PIXELS: usize = 1024;

/// A convolution layer (`weight [out, in, k, k]`, optional bias), square kernel.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// f32 weight `[out, in, k, k]`; `None` when packed.
    weight: Option<Tensor>,
    /// The weight as bf16 `[out, in·k·k]` rows when built in bf16 precision.
    packed: Option<std::sync::Arc<PackedA>>,
    /// `(out, in, k)`.
    dims: (usize, usize, usize),
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Loads `weight` (and `bias`) under `vb`.
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get((out_ch, in_ch, kernel, kernel), "weight")?;
        let bias = if vb.contains_tensor("bias") {
            Some(vb.get(out_ch, "bias")?)
        } else {
            None
        };
        // The first and last convolutions (a few input or output channels: UNet and VAE
        // conv_in/conv_out) stay f32: they cost little (see `conv2d_direct`), fill the bf16
        // tiles poorly, and their rounding would reach every layer or the image unfiltered.
        let small = out_ch < MR || in_ch * kernel * kernel < 64;
        let precision = super::weight_precision();
        let packed = if precision.packs() && matches!(weight.device(), Device::Cpu) && !small {
            let values: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let k = in_ch * kernel * kernel;
            Some(std::sync::Arc::new(match precision {
                super::Precision::Int8 => PackedA::new_int8(&values, out_ch, k),
                _ => PackedA::new(&values, out_ch, k),
            }))
        } else {
            None
        };
        // Packed weights replace the f32 copy.
        let weight = packed.is_none().then_some(weight);
        Ok(Conv2d {
            weight,
            packed,
            dims: (out_ch, in_ch, kernel),
            bias,
            stride,
            padding,
        })
    }

    /// Convolves `x [B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = match (&self.packed, &self.weight) {
            (Some(packed), _) => {
                let x = x.to_dtype(DType::F32)?;
                let bias = match &self.bias {
                    Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
                    None => None,
                };
                let geometry = (self.dims, self.stride, self.padding);
                // The bias is added by the kernel.
                return conv2d_bf16(
                    &x,
                    packed,
                    geometry,
                    bias.as_deref(),
                    bf16::simd_available(),
                );
            }
            (None, Some(weight)) => {
                let fast = matches!(x.device(), Device::Cpu)
                    && x.dtype() == DType::F32
                    && weight.dtype() == DType::F32;
                if fast {
                    conv2d_cpu(x, weight, self.stride, self.padding)?
                } else {
                    x.conv2d(weight, self.padding, self.stride, 1, 1)?
                }
            }
            (None, None) => {
                return Err(crate::Error::InvalidArgument("conv without weights".into()));
            }
        };
        Ok(match &self.bias {
            Some(b) => out.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
            None => out,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Conv2d::forward(self, x).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// Geometry of one convolution.
#[derive(Clone, Copy)]
struct Geometry {
    c_in: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    out_w: usize,
}

/// f32 convolution of `x` with `weight [out, in, k, k]`.
fn conv2d_cpu(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (b, c_in, h, w) = x.dims4()?;
    let (c_out, wc_in, k, kw) = weight.dims4()?;
    if wc_in != c_in || k != kw || stride == 0 || h + 2 * padding < k || w + 2 * padding < k {
        return Ok(x.conv2d(weight, padding, stride, 1, 1)?);
    }
    let out_h = (h + 2 * padding - k) / stride + 1;
    let out_w = (w + 2 * padding - k) / stride + 1;
    if c_out < MR && stride == 1 {
        let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let weights: Vec<f32> = weight.flatten_all()?.to_vec1()?;
        let out = conv2d_direct(&input, &weights, (b, c_in, h, w), (c_out, k, padding));
        return Ok(Tensor::from_vec(out, (b, c_out, out_h, out_w), x.device())?);
    }
    let g = Geometry {
        c_in,
        h,
        w,
        k,
        stride,
        padding,
        out_w,
    };
    let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let weights = weight.flatten_all()?.to_vec1::<f32>()?;
    let k_size = c_in * k * k;
    let plane = out_h * out_w;
    let rows_per_tile = (TILE_PIXELS / out_w.max(1)).clamp(1, out_h);
    let tiles_per_image = out_h.div_ceil(rows_per_tile);
    let mut out = vec![0f32; b * c_out * plane];
    // Each task owns a band of output rows of one image across all output channels; split the
    // output buffer per image, then hand out (image, band) pairs.
    let images: Vec<&mut [f32]> = out.chunks_mut(c_out * plane).collect();
    let bands: Vec<(usize, usize, usize)> = (0..b)
        .flat_map(|bi| {
            (0..tiles_per_image).map(move |t| {
                let y0 = t * rows_per_tile;
                (bi, y0, rows_per_tile.min(out_h - y0))
            })
        })
        .collect();
    let image_ptrs: Vec<SendPtr> = images
        .into_iter()
        .map(|s| SendPtr(s.as_mut_ptr()))
        .collect();
    bands
        .par_iter()
        .for_each_init(Vec::new, |col, &(bi, y0, rows)| {
            let image = &input[bi * c_in * h * w..(bi + 1) * c_in * h * w];
            let tile = rows * out_w;
            col.clear();
            col.resize(k_size * tile, 0.0);
            im2col_band(image, g, y0, rows, col);
            let Some(dst) = image_ptrs.get(bi) else {
                return;
            };
            // SAFETY: the band writes rows y0..y0+rows of every output channel plane of image bi:
            // element (co, p) at dst + co*plane + y0*out_w + p, p < tile. Bands of one image are
            // disjoint row ranges, images are disjoint chunks, so no two tasks write the same
            // element; all reads are inside `weights` (c_out×k_size) and `col` (k_size×tile).
            unsafe {
                gemm::gemm(
                    c_out,
                    tile,
                    k_size,
                    dst.0.add(y0 * out_w),
                    1,
                    plane as isize,
                    false,
                    weights.as_ptr(),
                    1,
                    k_size as isize,
                    col.as_ptr(),
                    1,
                    tile as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    Ok(Tensor::from_vec(out, (b, c_out, out_h, out_w), x.device())?)
}

/// A raw pointer that may cross threads (each task writes a disjoint region; see above).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}
// SAFETY: used only for disjoint writes as documented at the use site.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// Fills `col [c_in·k·k, rows·out_w]` for output rows `y0 .. y0+rows` of one image.
fn im2col_band(image: &[f32], g: Geometry, y0: usize, rows: usize, col: &mut [f32]) {
    let tile = rows * g.out_w;
    for ci in 0..g.c_in {
        let channel = &image[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row_index = (ci * g.k + ky) * g.k + kx;
                let dst_row = &mut col[row_index * tile..(row_index + 1) * tile];
                for r in 0..rows {
                    let oy = y0 + r;
                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                    let dst = &mut dst_row[r * g.out_w..(r + 1) * g.out_w];
                    if iy < 0 || iy >= g.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &channel[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let offset = kx as isize - g.padding as isize;
                    if g.stride == 1 {
                        // dst[ox] = src[ox + offset] where in range.
                        let lo = (-offset).max(0) as usize;
                        let hi = ((g.w as isize - offset).min(g.out_w as isize)).max(0) as usize;
                        dst[..lo.min(g.out_w)].fill(0.0);
                        if hi > lo {
                            let s = (lo as isize + offset) as usize;
                            dst[lo..hi].copy_from_slice(&src[s..s + (hi - lo)]);
                        }
                        if hi < g.out_w {
                            dst[hi.max(lo)..].fill(0.0);
                        }
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * g.stride) as isize + offset;
                            *d = if ix >= 0 && ix < g.w as isize {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Stride-1 convolution for a few output channels (a model's conv_out): each output row is
/// a sum of shifted input rows times scalar weights, vectorised along the row; rows run in
/// parallel. `x [b, c_in, h, w]`, `weights [c_out, c_in, k, k]`.
fn conv2d_direct(
    x: &[f32],
    weights: &[f32],
    (b, c_in, h, w): (usize, usize, usize, usize),
    (c_out, k, padding): (usize, usize, usize),
) -> Vec<f32> {
    let out_h = h + 2 * padding - k + 1;
    let out_w = w + 2 * padding - k + 1;
    let mut out = vec![0f32; b * c_out * out_h * out_w];
    out.par_chunks_mut(out_w.max(1))
        .enumerate()
        .for_each(|(row_index, dst)| {
            let oy = row_index % out_h;
            let co = row_index / out_h % c_out;
            let bi = row_index / (out_h * c_out);
            for ci in 0..c_in {
                let channel = &x[(bi * c_in + ci) * h * w..(bi * c_in + ci + 1) * h * w];
                for ky in 0..k {
                    let iy = (oy + ky) as isize - padding as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src = &channel[iy as usize * w..(iy as usize + 1) * w];
                    for kx in 0..k {
                        let wv = weights[((co * c_in + ci) * k + ky) * k + kx];
                        // dst[ox] += wv · src[ox + kx − padding] where the source exists.
                        let lo = padding.saturating_sub(kx);
                        let hi = (w + padding - kx).min(out_w);
                        if hi > lo {
                            let s0 = lo + kx - padding;
                            axpy(&mut dst[lo..hi], wv, &src[s0..s0 + (hi - lo)]);
                        }
                    }
                }
            }
        });
    out
}

/// `dst += a · src`.
fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has the feature.
        return unsafe { axpy_avx512(dst, a, src) };
    }
    axpy_plain(dst, a, src);
}

#[inline(always)]
fn axpy_plain(dst: &mut [f32], a: f32, src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.mul_add(a, *d);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn axpy_avx512(dst: &mut [f32], a: f32, src: &[f32]) {
    axpy_plain(dst, a, src);
}

/// Output pixels per task of the bf16 path (16 panels: a K slice of B stays in L2).
const BAND: usize = 512;
/// Most output channels per task of the bf16 path (a K slice of A stays in L2).
const M_CHUNK: usize = 640;

/// Geometry of one bf16 convolution (one image).
#[derive(Clone, Copy, Debug)]
struct Shape {
    c_in: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    out_w: usize,
}

/// bf16 convolution of `x [B, C, H, W]` (f32) with packed weights `[out, in·k·k]`, plus the
/// per-channel bias. Tasks are (image, band of [`BAND`] output pixels, block of output
/// channels); each packs its input pixels straight into bf16 panels one K slice at a time and
/// runs [`bf16::gemm_slice`] into the NCHW output (bias added by the first slice).
fn conv2d_bf16(
    x: &Tensor,
    packed: &PackedA,
    ((c_out, c_in, k), stride, padding): ((usize, usize, usize), usize, usize),
    bias: Option<&[f32]>,
    simd: bool,
) -> Result<Tensor> {
    let (b, x_c, h, w) = x.dims4()?;
    if x_c != c_in
        || stride == 0
        || h + 2 * padding < k
        || w + 2 * padding < k
        || packed.m() != c_out
        || packed.pairs() != (c_in * k * k).div_ceil(2)
        || bias.is_some_and(|v| v.len() != c_out)
    {
        return Err(crate::Error::InvalidArgument(format!(
            "conv: input {x_c}×{h}×{w} does not fit a {c_in}-channel {k}×{k} kernel"
        )));
    }
    let out_h = (h + 2 * padding - k) / stride + 1;
    let out_w = (w + 2 * padding - k) / stride + 1;
    let plane = out_h * out_w;
    let shape = Shape {
        c_in,
        h,
        w,
        k,
        stride,
        padding,
        out_w,
    };
    let chunk = c_out.div_ceil(c_out.div_ceil(M_CHUNK)).next_multiple_of(MR);
    let tasks: Vec<(usize, usize, usize)> = (0..b)
        .flat_map(|bi| {
            (0..plane)
                .step_by(BAND)
                .flat_map(move |q0| (0..c_out).step_by(chunk).map(move |m0| (bi, q0, m0)))
        })
        .collect();
    let mut out = vec![0f32; b * c_out * plane];
    let out_ptr = SendPtr(out.as_mut_ptr());
    let pairs = packed.pairs();
    let weights = packed.data();
    super::with_f32(x, |input| {
        tasks
            .par_iter()
            .for_each_init(Vec::new, |buf: &mut Vec<u32>, &(bi, q0, m0)| {
                let Some(image) = input.get(bi * c_in * h * w..(bi + 1) * c_in * h * w) else {
                    return;
                };
                let nb = BAND.min(plane - q0);
                let rows = chunk.min(c_out - m0);
                for (k0, kc) in bf16::k_slices(pairs) {
                    buf.resize(nb.div_ceil(NR) * kc * NR, 0);
                    pack_input(image, shape, (q0, nb), (k0, kc), buf, simd);
                    let slice = Slice {
                        a: weights.as_ptr().wrapping_add(m0 * pairs + k0),
                        a_rs: pairs,
                        rows,
                        b: buf.as_ptr(),
                        b_ps: kc * NR,
                        kc,
                        n: nb,
                        c: out_ptr.get().wrapping_add((bi * c_out + m0) * plane + q0),
                        c_rs: plane,
                    };
                    let init = match (k0, bias) {
                        (0, Some(v)) => TileInit::Row(v.as_ptr().wrapping_add(m0)),
                        (0, None) => TileInit::Zero,
                        _ => TileInit::Load,
                    };
                    // SAFETY: A holds c_out rounded up to MR rows of `pairs` (m0 is a multiple
                    // of MR); buf holds the band's panels × kc × NR; this task alone writes
                    // channels m0..m0+rows, pixels q0..q0+nb of image bi (tasks are disjoint);
                    // the bias has c_out values.
                    unsafe { bf16::gemm_slice(&slice, init, simd) };
                }
            });
    })?;
    Ok(Tensor::from_vec(out, (b, c_out, out_h, out_w), x.device())?)
}

/// Packs input pixels `q0 .. q0+nb` (output pixel order) of one image, K pairs `k0 .. k0+kc`,
/// as B panels for [`bf16::gemm_slice`]: `buf[(panel·kc + kp)·NR + lane]` is the bf16 pair of
/// reduction indices `2(k0+kp)`, `+1` (index = `(ci·k + ky)·k + kx`) for the panel's pixel
/// `lane`, zero outside the image, the band or K.
fn pack_input(
    image: &[f32],
    s: Shape,
    (q0, nb): (usize, usize),
    (k0, kc): (usize, usize),
    buf: &mut [u32],
    simd: bool,
) {
    let taps = s.k * s.k;
    let k_size = s.c_in * taps;
    // Per reduction index of the slice: offset of its tap in the image and which tap it is
    // (None past K).
    let index: Vec<Option<(isize, usize)>> = (2 * k0..2 * (k0 + kc))
        .map(|kidx| {
            (kidx < k_size).then(|| {
                let (ci, tap) = (kidx / taps, kidx % taps);
                let (ky, kx) = (tap / s.k, tap % s.k);
                ((ci * s.h * s.w + ky * s.w + kx) as isize, tap)
            })
        })
        .collect();
    let mut masks = vec![0u32; taps];
    for (p, panel) in buf.chunks_mut(kc * NR).enumerate() {
        let first = q0 + p * NR;
        let lanes = nb.saturating_sub(p * NR).min(NR);
        // Per lane: offset of the pixel's tap (0, 0) in the image (can be negative).
        let mut base = [0i32; NR];
        masks.fill(0);
        for (lane, slot) in base.iter_mut().enumerate().take(lanes) {
            let q = first + lane;
            let (oy, ox) = (q / s.out_w, q % s.out_w);
            let iy0 = (oy * s.stride) as isize - s.padding as isize;
            let ix0 = (ox * s.stride) as isize - s.padding as isize;
            *slot = (iy0 * s.w as isize + ix0) as i32;
            for (tap, mask) in masks.iter_mut().enumerate() {
                let (iy, ix) = (iy0 + (tap / s.k) as isize, ix0 + (tap % s.k) as isize);
                if iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w {
                    *mask |= 1 << lane;
                }
            }
        }
        // One output row, stride 1: the lanes read consecutive input values.
        let contiguous =
            s.stride == 1 && lanes == NR && first / s.out_w == (first + NR - 1) / s.out_w;
        if simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has the features; every unmasked lane reads image[offset + base]
            // with the tap inside the image (mask), so inside `image`.
            unsafe {
                avx512::pack_panel(image, &index, &masks, &base, contiguous, panel)
            };
            continue;
        }
        for (kp, dst) in panel.chunks_mut(NR).enumerate() {
            let value = |kidx: usize, lane: usize| -> f32 {
                match index.get(kidx).copied().flatten() {
                    Some((offset, tap)) if masks[tap] & (1 << lane) != 0 => {
                        let at = offset + base[lane] as isize;
                        image.get(at as usize).copied().unwrap_or(0.0)
                    }
                    _ => 0.0,
                }
            };
            for (lane, slot) in dst.iter_mut().enumerate() {
                *slot = bf16::pair(value(2 * kp, lane), value(2 * kp + 1, lane));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::NR;
    use crate::kernels::bf16::avx512::interleave;
    use std::arch::x86_64::*;

    /// The AVX-512 body of [`super::pack_input`] for one panel.
    ///
    /// # Safety
    /// Needs avx512f, avx512bw and avx512bf16; `image[offset + base[lane]]` must be in bounds
    /// for every lane whose bit is set in the tap's mask; `panel` holds `index.len()/2 · NR`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pack_panel(
        image: &[f32],
        index: &[Option<(isize, usize)>],
        masks: &[u32],
        base: &[i32; NR],
        contiguous: bool,
        panel: &mut [u32],
    ) {
        let ptr = image.as_ptr();
        // SAFETY: base has 32 values.
        let (base0, base1) = unsafe {
            (
                _mm512_loadu_si512(base.as_ptr().cast()),
                _mm512_loadu_si512(base.as_ptr().add(16).cast()),
            )
        };
        let fetch = |kidx: usize| -> (__m512, __m512) {
            let Some(&Some((offset, tap))) = index.get(kidx) else {
                return (_mm512_setzero_ps(), _mm512_setzero_ps());
            };
            let mask = masks.get(tap).copied().unwrap_or(0);
            let (m0, m1) = (mask as __mmask16, (mask >> 16) as __mmask16);
            // SAFETY: only lanes whose tap lies inside the image are read (caller's contract);
            // masked-off lanes are not accessed.
            unsafe {
                if contiguous {
                    let at = ptr.wrapping_offset(offset + base[0] as isize);
                    (
                        _mm512_maskz_loadu_ps(m0, at),
                        _mm512_maskz_loadu_ps(m1, at.wrapping_add(16)),
                    )
                } else {
                    let row = ptr.wrapping_offset(offset);
                    (
                        _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m0, base0, row),
                        _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m1, base1, row),
                    )
                }
            }
        };
        for (kp, dst) in panel.chunks_exact_mut(NR).enumerate() {
            let (lo0, lo1) = fetch(2 * kp);
            let (hi0, hi1) = fetch(2 * kp + 1);
            // SAFETY: dst has NR = 32 values.
            unsafe {
                _mm512_storeu_si512(dst.as_mut_ptr().cast(), interleave(lo0, hi0));
                _mm512_storeu_si512(dst.as_mut_ptr().add(16).cast(), interleave(lo1, hi1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_conv2d() {
        let dev = Device::Cpu;
        for (b, c_in, c_out, h, w, k, stride, padding) in [
            (2, 8, 16, 17, 23, 3, 1, 1),
            (1, 5, 7, 16, 16, 3, 2, 1),
            (1, 4, 6, 9, 14, 3, 2, 0),
            (2, 6, 3, 40, 40, 1, 1, 0),
            (1, 3, 4, 70, 5, 3, 1, 1),
            (2, 9, 3, 11, 13, 3, 1, 1),
            (1, 2, 5, 6, 7, 3, 1, 0),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev).unwrap();
            let ours = conv2d_cpu(&x, &wt, stride, padding).unwrap();
            let theirs = x.conv2d(&wt, padding, stride, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let diff = (ours - theirs)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 1e-4,
                "{b} {c_in} {c_out} {h} {w} {k} {stride} {padding}: {diff}"
            );
        }
    }

    #[test]
    fn bf16_matches_the_rounded_f32_convolution() {
        use crate::kernels::bf16::{from_bf16, to_bf16};
        let dev = Device::Cpu;
        let round = |t: &Tensor| -> Tensor {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let v: Vec<f32> = v.iter().map(|&x| from_bf16(to_bf16(x))).collect();
            Tensor::from_vec(v, t.dims(), &dev).unwrap()
        };
        // Odd widths (panels across output rows), stride 2, 1×1, channels not a multiple of
        // MR, more than M_CHUNK channels, K in two slices (40·9 = 360: 180 pairs).
        for (b, c_in, c_out, h, w, k, stride, padding) in [
            (2, 8, 16, 17, 23, 3, 1, 1),
            (1, 5, 7, 16, 16, 3, 2, 1),
            (1, 4, 6, 9, 14, 3, 2, 0),
            (2, 6, 3, 40, 40, 1, 1, 0),
            (1, 3, 4, 70, 5, 3, 1, 1),
            (1, 40, 13, 33, 64, 3, 1, 1),
            (2, 3, 700, 4, 4, 3, 1, 1),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev).unwrap();
            let bias: Vec<f32> = (0..c_out).map(|i| i as f32 * 0.25 - 1.0).collect();
            let packed = PackedA::new(
                &wt.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                c_out,
                c_in * k * k,
            );
            let want = round(&x)
                .conv2d(&round(&wt), padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(
                    &Tensor::new(bias.as_slice(), &dev)
                        .unwrap()
                        .reshape((1, c_out, 1, 1))
                        .unwrap(),
                )
                .unwrap();
            let tol = 1e-4 * ((c_in * k * k) as f32).sqrt() * 4.0;
            for simd in [false, crate::kernels::bf16::simd_available()] {
                let ours = conv2d_bf16(
                    &x,
                    &packed,
                    ((c_out, c_in, k), stride, padding),
                    Some(&bias),
                    simd,
                )
                .unwrap();
                assert_eq!(ours.dims(), want.dims());
                let diff = (&ours - &want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    diff < tol,
                    "{b} {c_in} {c_out} {h} {w} {k} {stride} {padding} simd={simd}: {diff}"
                );
            }
        }
    }
}
