//! 2-D convolution for the UNet and VAE: a CPU f32 path that builds im2col tiles of whole
//! output rows with row copies and multiplies them with one single-threaded gemm per tile,
//! writing straight into the NCHW output (tiles run in parallel on rayon); candle's
//! `conv2d` everywhere else.

use super::bf16::{PackedA, matmul_a_packed_raw, pack_kn};
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
        let packed = if super::weight_precision() == super::Precision::Bf16
            && matches!(weight.device(), Device::Cpu)
        {
            let values: Vec<f32> = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let k = in_ch * kernel * kernel;
            Some(std::sync::Arc::new(PackedA::new(&values, out_ch, k)))
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
                let (c_out, c_in, k) = self.dims;
                let x = x.to_dtype(DType::F32)?;
                conv2d_cpu(
                    &x,
                    Weights::Bf16(packed, c_out, c_in, k),
                    self.stride,
                    self.padding,
                )?
            }
            (None, Some(weight)) => {
                let fast = matches!(x.device(), Device::Cpu)
                    && x.dtype() == DType::F32
                    && weight.dtype() == DType::F32;
                if fast {
                    conv2d_cpu(x, Weights::F32(weight), self.stride, self.padding)?
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

/// The weights of [`conv2d_cpu`]: f32 `[out, in, k, k]`, or packed bf16 rows with their shape.
enum Weights<'a> {
    F32(&'a Tensor),
    Bf16(&'a PackedA, usize, usize, usize),
}

fn conv2d_cpu(x: &Tensor, weights: Weights, stride: usize, padding: usize) -> Result<Tensor> {
    let (b, c_in, h, w) = x.dims4()?;
    let (c_out, wc_in, k, kw) = match weights {
        Weights::F32(weight) => weight.dims4()?,
        Weights::Bf16(_, c_out, c_in, k) => (c_out, c_in, k, k),
    };
    if wc_in != c_in || k != kw || stride == 0 || h + 2 * padding < k || w + 2 * padding < k {
        return match weights {
            Weights::F32(weight) => Ok(x.conv2d(weight, padding, stride, 1, 1)?),
            Weights::Bf16(..) => Err(crate::Error::InvalidArgument(format!(
                "conv: input {c_in}×{h}×{w} does not fit a {wc_in}-channel {k}×{kw} kernel"
            ))),
        };
    }
    let out_h = (h + 2 * padding - k) / stride + 1;
    let out_w = (w + 2 * padding - k) / stride + 1;
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
    let (weights, packed) = match weights {
        Weights::F32(weight) => (weight.flatten_all()?.to_vec1::<f32>()?, None),
        Weights::Bf16(packed, ..) => (Vec::new(), Some(packed)),
    };
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
    bands.par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(col, packed_col), &(bi, y0, rows)| {
            let image = &input[bi * c_in * h * w..(bi + 1) * c_in * h * w];
            let tile = rows * out_w;
            col.clear();
            col.resize(k_size * tile, 0.0);
            im2col_band(image, g, y0, rows, col);
            let Some(dst) = image_ptrs.get(bi) else {
                return;
            };
            if let Some(packed) = packed {
                pack_kn(col, k_size, tile, packed_col);
                // SAFETY: as for the f32 gemm below: this band alone writes the elements
                // (co, y0·out_w + p) for co < c_out, p < tile (row stride `plane`) of image `bi`.
                unsafe {
                    matmul_a_packed_raw(packed, packed_col, tile, dst.0.add(y0 * out_w), plane)
                };
                return;
            }
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
        },
    );
    Ok(Tensor::from_vec(out, (b, c_out, out_h, out_w), x.device())?)
}

/// A raw pointer that may cross threads (each task writes a disjoint region; see above).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
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
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev).unwrap();
            let ours = conv2d_cpu(&x, Weights::F32(&wt), stride, padding).unwrap();
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
}
