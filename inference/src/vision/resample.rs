//! Pillow-exact 8-bit resampling (`Image.resize` with BICUBIC or LANCZOS): the references
//! (WD14 taggers, diffusers' image processors) resize with Pillow, and the `image` crate's
//! filters differ by several levels at edges.

use image::{GrayImage, RgbImage};

/// Pillow's resampling filters that Kiln reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PilFilter {
    /// `Image.BICUBIC` (a = −0.5, support 2).
    Bicubic,
    /// `Image.LANCZOS` (a = 3, support 3).
    Lanczos,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            PilFilter::Bicubic => 2.0,
            PilFilter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            PilFilter::Bicubic => bicubic(x),
            PilFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// PIL's bicubic kernel (a = −0.5), support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point bits of PIL's 8-bit resampling (`32 - 8 - 2`).
const RESAMPLE_PRECISION_BITS: u32 = 22;

/// The source span and fixed-point weights of each output pixel along one axis, as PIL's
/// `precompute_coeffs` + `normalize_coeffs_8bpc` compute them (support scaled when shrinking).
fn taps(in_size: u32, out_size: u32, filter: PilFilter) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let one = f64::from(1u32 << RESAMPLE_PRECISION_BITS);
    (0..out_size)
        .map(|out| {
            let center = (f64::from(out) + 0.5) * scale;
            // C's `(int)` truncates toward zero; the clamps follow.
            let min = ((center - support + 0.5) as i64).max(0);
            let max = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let weights: Vec<f64> = (min..max)
                .map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            (usize::try_from(min).unwrap_or(0), fixed)
        })
        .collect()
}

/// One PIL 8-bit resampling pass along rows: `input` holds `lines` lines of `in_len` RGB
/// pixels, `pixel_stride`/`line_stride` (in pixels) say how to walk them; the output has
/// `taps.len()` pixels per line, laid out with the same orientation.
fn resample_pass(
    input: &[u8],
    lines: usize,
    (pixel_stride, line_stride): (usize, usize),
    taps: &[(usize, Vec<i32>)],
    (out_pixel_stride, out_line_stride): (usize, usize),
) -> Vec<u8> {
    let mut output = vec![0u8; lines * taps.len() * 3];
    for line in 0..lines {
        for (out, (start, weights)) in taps.iter().enumerate() {
            let mut sums = [1i64 << (RESAMPLE_PRECISION_BITS - 1); 3];
            for (offset, weight) in weights.iter().enumerate() {
                let at = ((start + offset) * pixel_stride + line * line_stride) * 3;
                let Some(pixel) = input.get(at..at + 3) else {
                    break;
                };
                for (sum, value) in sums.iter_mut().zip(pixel) {
                    *sum += i64::from(*weight) * i64::from(*value);
                }
            }
            let at = (out * out_pixel_stride + line * out_line_stride) * 3;
            if let Some(pixel) = output.get_mut(at..at + 3) {
                for (value, sum) in pixel.iter_mut().zip(sums) {
                    // PIL's clip8: arithmetic shift, then clamp to 0..=255.
                    *value = (sum >> RESAMPLE_PRECISION_BITS).clamp(0, 255) as u8;
                }
            }
        }
    }
    output
}

/// `Image.resize((width, height), filter)` of an RGB image, bit-exact with Pillow: horizontal
/// pass, rounding to 8 bits, vertical pass. Axes whose size does not change are skipped, as
/// Pillow skips them.
pub fn resize_like_pil(image: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
    let (in_width, in_height) = image.dimensions();
    let (in_w, in_h, w) = (in_width as usize, in_height as usize, width as usize);
    let horizontal = if width != in_width {
        let taps = taps(in_width, width, filter);
        resample_pass(image.as_raw(), in_h, (1, in_w), &taps, (1, w))
    } else {
        image.as_raw().clone()
    };
    let resized = if height != in_height {
        let taps = taps(in_height, height, filter);
        resample_pass(&horizontal, w, (w, 1), &taps, (w, 1))
    } else {
        horizontal
    };
    RgbImage::from_raw(width, height, resized).unwrap_or_else(|| RgbImage::new(width, height))
}

/// [`resize_like_pil`] for a gray image (Pillow's "L" mode uses the same 8-bit path).
pub fn resize_gray_like_pil(
    image: &GrayImage,
    width: u32,
    height: u32,
    filter: PilFilter,
) -> GrayImage {
    let rgb = RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let v = image.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let out = resize_like_pil(&rgb, width, height, filter);
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([out.get_pixel(x, y).0[0]])
    })
}
