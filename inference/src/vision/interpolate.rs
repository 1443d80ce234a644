//! PyTorch-exact `F.interpolate` for float planes (`bilinear` and `bicubic`, both
//! `align_corners` settings), as the preprocessor networks and their post-processing use it.
//! OpenCV's `cv2.resize(…, INTER_LINEAR)` on float images is the same as bilinear with
//! `align_corners=False`.
//!
//! Index rules from ATen's `UpSample.h` (`area_pixel_compute_source_index`,
//! `guard_index_and_lambda`, `get_cubic_upsample_coefficients` with A = −0.75).

use crate::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// Interpolation mode of [`interpolate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `mode="bilinear"`.
    Bilinear,
    /// `mode="bicubic"` (A = −0.75, border taps clamped).
    Bicubic,
}

/// Source coordinate of output index `dst` (ATen `area_pixel_compute_source_index`).
fn source_index(scale: f32, dst: usize, align_corners: bool, cubic: bool) -> f32 {
    if align_corners {
        scale * dst as f32
    } else {
        let src = scale * (dst as f32 + 0.5) - 0.5;
        if !cubic && src < 0.0 { 0.0 } else { src }
    }
}

/// Input-per-output step (ATen `area_pixel_compute_scale` without a given scale factor).
fn scale(input: usize, output: usize, align_corners: bool) -> f32 {
    if align_corners {
        if output > 1 {
            (input as f32 - 1.0) / (output as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        input as f32 / output as f32
    }
}

/// Taps of one axis: per output index, (input indices, weights).
fn taps(
    input: usize,
    output: usize,
    align_corners: bool,
    mode: Mode,
) -> Vec<([usize; 4], [f32; 4])> {
    let step = scale(input, output, align_corners);
    let last = input.saturating_sub(1) as isize;
    (0..output)
        .map(|dst| match mode {
            Mode::Bilinear => {
                let src = source_index(step, dst, align_corners, false);
                let i0 = (src.floor() as isize).clamp(0, last);
                let lambda1 = src - i0 as f32;
                let i1 = if i0 < last { i0 + 1 } else { i0 };
                (
                    [i0 as usize, i1 as usize, 0, 0],
                    [1.0 - lambda1, lambda1, 0.0, 0.0],
                )
            }
            Mode::Bicubic => {
                let src = source_index(step, dst, align_corners, true);
                let index = (src.floor() as isize).min(last);
                let t = (src - index as f32).clamp(0.0, 1.0);
                let mut indices = [0usize; 4];
                for (k, slot) in indices.iter_mut().enumerate() {
                    *slot = (index - 1 + k as isize).clamp(0, last) as usize;
                }
                (indices, cubic_coefficients(t))
            }
        })
        .collect()
}

/// ATen `get_cubic_upsample_coefficients` with A = −0.75.
fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let conv1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let conv2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let x2 = 1.0 - t;
    [conv2(t + 1.0), conv1(t), conv1(x2), conv2(x2 + 1.0)]
}

/// Resizes `channels` planes of `height × width` floats (channel-major) to
/// `out_height × out_width`, like `F.interpolate(x, size=(out_height, out_width), mode,
/// align_corners)` on a `[1, C, H, W]` float tensor.
pub fn interpolate_planes(
    data: &[f32],
    channels: usize,
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    mode: Mode,
    align_corners: bool,
) -> Vec<f32> {
    let rows = taps(height, out_height, align_corners, mode);
    let cols = taps(width, out_width, align_corners, mode);
    let n_taps = match mode {
        Mode::Bilinear => 2,
        Mode::Bicubic => 4,
    };
    let mut out = vec![0f32; channels * out_height * out_width];
    if height == 0 || width == 0 {
        return out;
    }
    out.par_chunks_mut(out_width.max(1))
        .enumerate()
        .for_each(|(row_index, out_row)| {
            let (c, y) = (row_index / out_height, row_index % out_height);
            let plane = &data[c * height * width..(c + 1) * height * width];
            let Some((ys, wys)) = rows.get(y) else {
                return;
            };
            for (x, value) in out_row.iter_mut().enumerate() {
                let Some((xs, wxs)) = cols.get(x) else {
                    continue;
                };
                let mut sum = 0f32;
                for k in 0..n_taps {
                    let line = &plane[ys[k] * width..(ys[k] + 1) * width];
                    let mut inner = 0f32;
                    for j in 0..n_taps {
                        inner += line[xs[j]] * wxs[j];
                    }
                    sum += inner * wys[k];
                }
                *value = sum;
            }
        });
    out
}

/// [`interpolate_planes`] on a `[1, C, H, W]` (or `[C, H, W]`) f32 tensor.
pub fn interpolate(
    x: &Tensor,
    size: (usize, usize),
    mode: Mode,
    align_corners: bool,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (c, h, w) = match dims.as_slice() {
        [1, c, h, w] | [c, h, w] => (*c, *h, *w),
        _ => {
            return Err(crate::Error::InvalidArgument(format!(
                "interpolate expects [1, C, H, W], got {dims:?}"
            )));
        }
    };
    let data = x
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    let out = interpolate_planes(&data, c, (h, w), size, mode, align_corners);
    let mut shape = dims;
    let n = shape.len();
    shape[n - 2] = size.0;
    shape[n - 1] = size.1;
    Ok(Tensor::from_vec(out, shape, &Device::Cpu)?.to_device(x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_identity() {
        let data: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
        for mode in [Mode::Bilinear, Mode::Bicubic] {
            for align in [false, true] {
                let out = interpolate_planes(&data, 1, (3, 4), (3, 4), mode, align);
                assert_eq!(out, data, "{mode:?} {align}");
            }
        }
    }

    #[test]
    fn align_corners_keeps_the_corners_and_bicubic_weights_sum_to_one() {
        let data = vec![0.0, 1.0, 2.0, 3.0];
        let out = interpolate_planes(&data, 1, (2, 2), (3, 3), Mode::Bilinear, true);
        assert_eq!(out, vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
        for t in [0.0, 0.25, 0.5, 0.9] {
            let sum: f32 = cubic_coefficients(t).iter().sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
        // torch 2.15: F.interpolate(torch.arange(8.).view(1, 1, 1, 8), size=(1, 16),
        // mode="bicubic", align_corners=False), and size=(1, 5) with align_corners=True.
        let ramp: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let up = interpolate_planes(&ramp, 1, (1, 8), (1, 16), Mode::Bicubic, false);
        let torch: [f64; 16] = [
            -0.10546875,
            0.19140625,
            0.66796875,
            1.296875,
            1.703125,
            2.296875,
            2.703125,
            3.296875,
            3.703125,
            4.296875,
            4.703125,
            5.296875,
            5.703125,
            6.33203125,
            6.80859375,
            7.10546875,
        ];
        for (a, b) in up.iter().zip(torch) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{up:?}");
        }
        let down = interpolate_planes(&ramp, 1, (1, 8), (1, 5), Mode::Bicubic, true);
        for (a, b) in down.iter().zip([0.0, 1.703125, 3.5, 5.296875, 7.0]) {
            assert!((a - b).abs() < 1e-6, "{down:?}");
        }
    }
}
