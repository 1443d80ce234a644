//! Image-side inpainting steps around the denoising loop: the crop of "only masked" mode
//! (diffusers' `padding_mask_crop` region rule) and pasting the result back over the original
//! through a (blurred) mask, as A1111 does.

use crate::vision::resample::{PilFilter, resize_gray_like_pil, resize_like_pil};
use image::{GrayImage, RgbImage, imageops};

/// A crop rectangle `[x0, x1) × [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Left.
    pub x0: u32,
    /// Top.
    pub y0: u32,
    /// Right (exclusive).
    pub x1: u32,
    /// Bottom (exclusive).
    pub y1: u32,
}

impl Region {
    /// Width.
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    /// Height.
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// The region around the mask's white pixels, `pad` pixels larger on each side, grown to the
/// aspect ratio `width : height` within the image (diffusers' `get_crop_region`). `None` when
/// the mask is empty.
pub fn crop_region(mask: &GrayImage, pad: u32, width: u32, height: u32) -> Option<Region> {
    let (w, h) = mask.dimensions();
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > 0 {
            bbox = Some(match bbox {
                None => (x, y, x + 1, y + 1),
                Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x + 1), d.max(y + 1)),
            });
        }
    }
    let (x0, y0, x1, y1) = bbox?;
    let (mut x0, mut y0) = (
        i64::from(x0.saturating_sub(pad)),
        i64::from(y0.saturating_sub(pad)),
    );
    let (mut x1, mut y1) = (i64::from((x1 + pad).min(w)), i64::from((y1 + pad).min(h)));
    let (w, h) = (i64::from(w), i64::from(h));
    let crop_ratio = (x1 - x0) as f64 / (y1 - y0) as f64;
    let target_ratio = f64::from(width) / f64::from(height);
    if crop_ratio > target_ratio {
        let desired = (x1 - x0) as f64 / target_ratio;
        (y0, y1) = grow_axis(y0, y1, (desired - (y1 - y0) as f64) as i64, h);
    } else {
        let desired = (y1 - y0) as f64 * target_ratio;
        (x0, x1) = grow_axis(x0, x1, (desired - (x1 - x0) as f64) as i64, w);
    }
    let clamp = |v: i64, hi: i64| v.clamp(0, hi) as u32;
    Some(Region {
        x0: clamp(x0, w),
        y0: clamp(y0, h),
        x1: clamp(x1, w),
        y1: clamp(y1, h),
    })
}

/// `[lo, hi)` grown by `diff` (half on each side), shifted back inside `[0, size)`.
fn grow_axis(lo: i64, hi: i64, diff: i64, size: i64) -> (i64, i64) {
    let (mut lo, mut hi) = (lo - diff / 2, hi + diff - diff / 2);
    if hi >= size {
        let over = hi - size;
        hi -= over;
        lo -= over;
    }
    if lo < 0 {
        hi -= lo;
        lo = 0;
    }
    (lo, hi.min(size))
}

/// `image` cropped to `region` and resized to `width × height` (Lanczos).
pub fn crop_resize(image: &RgbImage, region: Region, width: u32, height: u32) -> RgbImage {
    let crop = imageops::crop_imm(image, region.x0, region.y0, region.width(), region.height());
    imageops::resize(
        &crop.to_image(),
        width,
        height,
        imageops::FilterType::Lanczos3,
    )
}

/// The mask cropped to `region`, resized to `width × height` (Pillow's Lanczos) and
/// binarised at 50 %, as diffusers' mask processor does.
pub fn crop_resize_mask(mask: &GrayImage, region: Region, width: u32, height: u32) -> GrayImage {
    let crop = imageops::crop_imm(mask, region.x0, region.y0, region.width(), region.height());
    let resized = resize_gray_like_pil(&crop.to_image(), width, height, PilFilter::Lanczos);
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if resized.get_pixel(x, y).0[0] >= 128 {
            255
        } else {
            0
        }])
    })
}

/// `generated` (covering `region` of `original`, at any size) pasted over `original` where the
/// mask is white, its edge softened by a Gaussian blur of `blur` pixels.
pub fn paste_back(
    original: &RgbImage,
    generated: &RgbImage,
    mask: &GrayImage,
    region: Region,
    blur: u32,
) -> RgbImage {
    let generated = if generated.dimensions() == (region.width(), region.height()) {
        generated.clone()
    } else {
        resize_like_pil(
            generated,
            region.width(),
            region.height(),
            PilFilter::Lanczos,
        )
    };
    let alpha = if blur > 0 {
        imageops::blur(mask, blur as f32)
    } else {
        mask.clone()
    };
    let mut out = original.clone();
    for (x, y, px) in generated.enumerate_pixels() {
        let (ox, oy) = (x + region.x0, y + region.y0);
        let a = f32::from(alpha.get_pixel(ox, oy).0[0]) / 255.0;
        if a <= 0.0 {
            continue;
        }
        let dst = out.get_pixel_mut(ox, oy);
        for c in 0..3 {
            let v = f32::from(dst.0[c]) * (1.0 - a) + f32::from(px.0[c]) * a;
            dst.0[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_with_box(w: u32, h: u32, b: (u32, u32, u32, u32)) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            image::Luma([if x >= b.0 && x < b.2 && y >= b.1 && y < b.3 {
                255
            } else {
                0
            }])
        })
    }

    #[test]
    fn the_region_pads_the_box_and_takes_the_target_aspect() {
        let mask = mask_with_box(200, 100, (90, 40, 110, 60));
        let r = crop_region(&mask, 10, 64, 64).unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (80, 30, 120, 70));
        // A wide target widens the crop.
        let r = crop_region(&mask, 10, 128, 64).unwrap();
        assert_eq!((r.width(), r.height()), (80, 40));
        // Near the border it shifts inside the image.
        let mask = mask_with_box(200, 100, (0, 0, 10, 10));
        let r = crop_region(&mask, 4, 64, 64).unwrap();
        assert_eq!((r.x0, r.y0), (0, 0));
        assert_eq!(r.width(), r.height());
        assert!(crop_region(&GrayImage::new(8, 8), 4, 8, 8).is_none());
    }

    #[test]
    fn paste_back_changes_only_the_masked_pixels() {
        let original = RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30]));
        let generated = RgbImage::from_pixel(8, 8, image::Rgb([200, 200, 200]));
        let mask = mask_with_box(16, 16, (4, 4, 8, 8));
        let region = Region {
            x0: 2,
            y0: 2,
            x1: 10,
            y1: 10,
        };
        let out = paste_back(&original, &generated, &mask, region, 0);
        assert_eq!(out.get_pixel(5, 5).0, [200, 200, 200]);
        assert_eq!(out.get_pixel(2, 2).0, [10, 20, 30]);
        assert_eq!(out.get_pixel(12, 12).0, [10, 20, 30]);
        let soft = paste_back(&original, &generated, &mask, region, 2);
        let edge = soft.get_pixel(3, 5).0[0];
        assert!(edge > 10 && edge < 200, "feathered edge {edge}");
    }
}
