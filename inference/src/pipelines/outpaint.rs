//! Outpainting: the canvas grows on some sides and the new area is generated as an inpainting
//! job. [`prepare`] makes the job's inputs from the original picture and an [`OutpaintSpec`]:
//!
//! - the **padded init image**: the original at its place; the new area filled by extending
//!   the edge pixels outwards (clamped) and blurring that heavily ([`fill_sigma`]);
//! - the **generation mask** (white = repaint, binary): the new area plus a band of
//!   `overlap` pixels into the original along every extended side;
//! - the **paste-back alpha**: 255 over the new area, falling smoothly (smoothstep) to 0 across
//!   the overlap band, 0 beyond it. After generation the result is blended over the padded
//!   init through it, so the original pixels outside the band come back exactly and the seam
//!   is hidden in the band.
//!
//! Why this fill. At strength 1.0 (the default for outpainting) neither kind of checkpoint
//! sees the fill under the mask: ordinary 4-channel checkpoints start from pure noise there
//! (and blend the noised original latents back outside the mask, diffusers'
//! `StableDiffusionInpaintPipeline`), 9-channel inpainting checkpoints get the masked image with
//! the masked pixels set to grey. The fill still matters in two places: the VAE encodes the
//! whole init image, so the latents just outside the mask feel the pixels next to them (a flat
//! or noisy fill would leak a hard edge or speckle into them; a blurred continuation of the
//! edge colours does not), and at strength < 1 the fill is where denoising starts, where
//! blurred edge colours give the right average colour and light without structure the model
//! would have to keep (mirroring copies objects; noise in pixels survives as noise).
//!
//! Sizes: the output is `original + left + right` by `original + top + bottom`, each rounded
//! up to a multiple of 8 ([`plan`]); the rounding pixels go to the right (bottom) side when it
//! grows, else to the left (top) side, else to the right (bottom).

use crate::recipe::OutpaintSpec;
use crate::{Error, Result};
use image::{GrayImage, RgbImage};

/// Largest side of an outpainted image, as the engine's size check.
pub const MAX_SIDE: u32 = 8192;

/// Where the original sits in the extended image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutpaintPlan {
    /// Pixels added on the left (after rounding).
    pub left: u32,
    /// Pixels added on the right (after rounding).
    pub right: u32,
    /// Pixels added at the top (after rounding).
    pub top: u32,
    /// Pixels added at the bottom (after rounding).
    pub bottom: u32,
    /// Width of the original.
    pub original_width: u32,
    /// Height of the original.
    pub original_height: u32,
    /// Overlap band into the original, in pixels.
    pub overlap: u32,
}

impl OutpaintPlan {
    /// Width of the extended image (a multiple of 8).
    pub fn width(&self) -> u32 {
        self.left + self.original_width + self.right
    }

    /// Height of the extended image (a multiple of 8).
    pub fn height(&self) -> u32 {
        self.top + self.original_height + self.bottom
    }

    /// How far `(x, y)` (extended-image pixels) lies inside the original from the nearest
    /// extended side, in pixels (0 on the first row or column of the original); `None` in the
    /// new area. Sides that did not grow do not count.
    pub fn depth(&self, x: u32, y: u32) -> Option<u32> {
        let (x0, y0) = (self.left, self.top);
        let (x1, y1) = (x0 + self.original_width, y0 + self.original_height);
        if x < x0 || y < y0 || x >= x1 || y >= y1 {
            return None;
        }
        let mut depth = u32::MAX;
        if self.left > 0 {
            depth = depth.min(x - x0);
        }
        if self.right > 0 {
            depth = depth.min(x1 - 1 - x);
        }
        if self.top > 0 {
            depth = depth.min(y - y0);
        }
        if self.bottom > 0 {
            depth = depth.min(y1 - 1 - y);
        }
        Some(depth)
    }
}

/// The inputs of an outpainting job.
#[derive(Clone, Debug)]
pub struct Outpaint {
    /// Sizes and placement.
    pub plan: OutpaintPlan,
    /// The padded init image (original pixels unchanged; the new area filled).
    pub init: RgbImage,
    /// The generation mask: 255 over the new area and the overlap band, 0 elsewhere.
    pub mask: GrayImage,
    /// The paste-back alpha: 255 over the new area, smoothstep to 0 across the band.
    pub alpha: GrayImage,
}

/// `value` rounded up to a multiple of 8, with the extra pixels.
fn round_up_8(value: u64) -> (u64, u64) {
    let rounded = value.div_ceil(8) * 8;
    (rounded, rounded - value)
}

/// Splits the rounding pixels of one axis between its two sides (see the module docs).
fn grow_axis(before: u32, after: u32, extra: u32) -> (u32, u32) {
    if after > 0 || before == 0 {
        (before, after + extra)
    } else {
        (before + extra, after)
    }
}

/// Sizes and placement of extending a `width × height` picture by `spec`; refuses an empty
/// extension and results over [`MAX_SIDE`].
pub fn plan(width: u32, height: u32, spec: &OutpaintSpec) -> Result<OutpaintPlan> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidArgument(format!(
            "outpainting needs a picture, got {width}x{height} pixels"
        )));
    }
    if spec.left == 0 && spec.right == 0 && spec.top == 0 && spec.bottom == 0 {
        return Err(Error::InvalidArgument(
            "outpainting: extend at least one side (left, right, top or bottom > 0)".into(),
        ));
    }
    let wide = u64::from(width) + u64::from(spec.left) + u64::from(spec.right);
    let tall = u64::from(height) + u64::from(spec.top) + u64::from(spec.bottom);
    let (full_width, extra_x) = round_up_8(wide);
    let (full_height, extra_y) = round_up_8(tall);
    if full_width > u64::from(MAX_SIDE) || full_height > u64::from(MAX_SIDE) {
        return Err(Error::InvalidArgument(format!(
            "outpainting: the extended image would be {full_width}x{full_height} pixels, more \
             than {MAX_SIDE} on a side"
        )));
    }
    // Both fit in u32 now (≤ MAX_SIDE).
    let (left, right) = grow_axis(spec.left, spec.right, extra_x as u32);
    let (top, bottom) = grow_axis(spec.top, spec.bottom, extra_y as u32);
    Ok(OutpaintPlan {
        left,
        right,
        top,
        bottom,
        original_width: width,
        original_height: height,
        overlap: spec.overlap,
    })
}

/// The blur (Gaussian sigma, pixels) of the fill: a quarter of the widest extension, between
/// 4 and 64 pixels.
pub fn fill_sigma(plan: &OutpaintPlan) -> f32 {
    let widest = plan.left.max(plan.right).max(plan.top).max(plan.bottom);
    (widest as f32 / 4.0).clamp(4.0, 64.0)
}

/// The job's inputs for extending `original` by `spec`.
pub fn prepare(original: &RgbImage, spec: &OutpaintSpec) -> Result<Outpaint> {
    let plan = plan(original.width(), original.height(), spec)?;
    let (width, height) = (plan.width(), plan.height());
    let clamp_x = |x: u32| x.saturating_sub(plan.left).min(plan.original_width - 1);
    let clamp_y = |y: u32| y.saturating_sub(plan.top).min(plan.original_height - 1);
    let extended = RgbImage::from_fn(width, height, |x, y| {
        *original.get_pixel(clamp_x(x), clamp_y(y))
    });
    let blurred = box_blur3(&extended, fill_sigma(&plan));
    let init = RgbImage::from_fn(width, height, |x, y| match plan.depth(x, y) {
        Some(_) => *original.get_pixel(x - plan.left, y - plan.top),
        None => *blurred.get_pixel(x, y),
    });
    let overlap = plan.overlap;
    let mask = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([match plan.depth(x, y) {
            Some(depth) if depth >= overlap => 0,
            _ => 255,
        }])
    });
    let alpha = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([match plan.depth(x, y) {
            None => 255,
            Some(depth) => band_alpha(depth, overlap),
        }])
    });
    Ok(Outpaint {
        plan,
        init,
        mask,
        alpha,
    })
}

/// Paste-back alpha at `depth` pixels into the original: smoothstep from 255 (depth 0) to 0
/// (depth ≥ `overlap`), sampled at pixel centres.
pub fn band_alpha(depth: u32, overlap: u32) -> u8 {
    if depth >= overlap {
        return 0;
    }
    let t = 1.0 - (depth as f32 + 0.5) / overlap as f32;
    let smooth = t * t * (3.0 - 2.0 * t);
    (smooth * 255.0).round().clamp(1.0, 255.0) as u8
}

/// An approximate Gaussian blur of `sigma` pixels: three box blurs per axis, edges clamped.
fn box_blur3(image: &RgbImage, sigma: f32) -> RgbImage {
    // Three boxes of width w have variance 3 (w² - 1) / 12 = σ².
    let radius = (((4.0 * sigma * sigma + 1.0).sqrt() - 1.0) / 2.0)
        .round()
        .max(1.0) as usize;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut data: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
    let mut line = Vec::new();
    for _ in 0..3 {
        for y in 0..height {
            blur_line(&mut data, y * width * 3, 3, width, radius, &mut line);
        }
        for x in 0..width {
            blur_line(&mut data, x * 3, width * 3, height, radius, &mut line);
        }
    }
    let raw = data
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage::from_raw(image.width(), image.height(), raw).unwrap_or_else(|| image.clone())
}

/// One box blur of `radius` over `count` RGB pixels starting at `start`, `stride` apart.
fn blur_line(
    data: &mut [f32],
    start: usize,
    stride: usize,
    count: usize,
    radius: usize,
    line: &mut Vec<f32>,
) {
    line.clear();
    for i in 0..count {
        let at = start + i * stride;
        line.extend_from_slice(data.get(at..at + 3).unwrap_or(&[0.0; 3]));
    }
    let scale = 1.0 / (2 * radius + 1) as f32;
    let last = count.saturating_sub(1);
    let pixel = |i: isize, c: usize| {
        let i = i.clamp(0, last as isize) as usize;
        line.get(i * 3 + c).copied().unwrap_or(0.0)
    };
    for c in 0..3 {
        let r = radius as isize;
        let mut sum: f32 = (-r..=r).map(|i| pixel(i, c)).sum();
        for i in 0..count {
            if let Some(v) = data.get_mut(start + i * stride + c) {
                *v = sum * scale;
            }
            let i = i as isize;
            sum += pixel(i + r + 1, c) - pixel(i - r, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(left: u32, right: u32, top: u32, bottom: u32, overlap: u32) -> OutpaintSpec {
        OutpaintSpec {
            left,
            right,
            top,
            bottom,
            overlap,
        }
    }

    #[test]
    fn sizes_round_up_to_multiples_of_8_on_the_growing_side() {
        let p = plan(64, 64, &spec(10, 0, 0, 20, 16)).unwrap();
        // 64 + 10 = 74 → 80: the right side does not grow, so the left takes the 6.
        assert_eq!((p.left, p.right, p.width()), (16, 0, 80));
        assert_eq!((p.top, p.bottom, p.height()), (0, 24, 88));
        // A picture that is not a multiple of 8 grows on the right even when only the top
        // was asked for.
        let p = plan(61, 40, &spec(0, 0, 8, 0, 16)).unwrap();
        assert_eq!((p.left, p.right, p.width(), p.height()), (0, 3, 64, 48));
        assert!(plan(64, 64, &spec(0, 0, 0, 0, 16)).is_err());
        assert!(plan(64, 64, &spec(9000, 0, 0, 0, 16)).is_err());
    }

    #[test]
    fn the_original_is_kept_and_the_masks_cover_the_new_area_and_the_band() {
        let original = RgbImage::from_fn(40, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
        let out = prepare(&original, &spec(16, 0, 0, 8, 8)).unwrap();
        assert_eq!(out.init.dimensions(), (56, 40));
        for (x, y, p) in original.enumerate_pixels() {
            assert_eq!(out.init.get_pixel(x + 16, y), p);
        }
        // New area: repainted, fully pasted.
        assert_eq!(out.mask.get_pixel(3, 3).0, [255]);
        assert_eq!(out.alpha.get_pixel(3, 3).0, [255]);
        assert_eq!(out.mask.get_pixel(30, 38).0, [255]);
        // The band: repainted, alpha falling from the edge inwards.
        let band: Vec<u8> = (16..26).map(|x| out.alpha.get_pixel(x, 10).0[0]).collect();
        assert!(band.windows(2).all(|w| w[0] >= w[1]), "{band:?}");
        assert!(band[0] > 240 && band[7] < 15 && band[8] == 0, "{band:?}");
        assert_eq!(out.mask.get_pixel(23, 10).0, [255]);
        assert_eq!(out.mask.get_pixel(24, 10).0, [0]);
        // The right side and the top did not grow: no band there.
        assert_eq!(out.mask.get_pixel(55, 10).0, [0]);
        assert_eq!(out.mask.get_pixel(40, 0).0, [0]);
        // The fill continues the edge colours, smoothly.
        let edge = original.get_pixel(0, 10).0;
        let fill = out.init.get_pixel(14, 10).0;
        assert!((i32::from(fill[2]) - i32::from(edge[2])).abs() <= 1);
        assert!((i32::from(fill[1]) - i32::from(edge[1])).abs() < 40);
    }

    #[test]
    fn no_overlap_means_a_hard_edge_at_the_original() {
        let original = RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]));
        let out = prepare(&original, &spec(0, 8, 0, 0, 0)).unwrap();
        assert_eq!(out.mask.get_pixel(15, 3).0, [0]);
        assert_eq!(out.alpha.get_pixel(15, 3).0, [0]);
        assert_eq!(out.mask.get_pixel(16, 3).0, [255]);
        // A flat picture extends into the same flat colour.
        assert!(out.init.pixels().all(|p| p.0 == [1, 2, 3]));
    }
}
