//! Small raster helpers for the comic page: coverage blending and anti-aliased shapes given by a
//! signed distance (pixels, positive inside), so straight, slanted and round edges all get one
//! pixel of anti-aliasing.

use image::RgbImage;

/// Blends `color` over the pixel at `(x, y)` with `alpha` in 0..=1; outside the image: nothing.
pub(crate) fn blend(image: &mut RgbImage, x: i64, y: i64, color: [u8; 3], alpha: f32) {
    if alpha <= 0.0 || x < 0 || y < 0 {
        return;
    }
    let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
        return;
    };
    let Some(pixel) = image.get_pixel_mut_checked(x, y) else {
        return;
    };
    let alpha = alpha.min(1.0);
    for (channel, &target) in pixel.0.iter_mut().zip(&color) {
        let value = f32::from(*channel) * (1.0 - alpha) + f32::from(target) * alpha;
        *channel = value.round().clamp(0.0, 255.0) as u8;
    }
}

/// Integer pixel range `[start, end)` covering `[low, high]` plus one pixel, clamped to `0..max`.
pub(crate) fn pixel_span(low: f32, high: f32, max: u32) -> std::ops::Range<u32> {
    let start = (low.floor() - 1.0).max(0.0) as u32;
    let end = ((high.ceil() + 1.0).max(0.0) as u32).min(max);
    start.min(end)..end
}

/// Fills the shape `distance(x, y) > -0.5` (distance in pixels, positive inside, sampled at
/// pixel centres) inside the box `(x0, y0, x1, y1)` with `color`, anti-aliased.
pub(crate) fn fill(
    image: &mut RgbImage,
    bounds: (f32, f32, f32, f32),
    color: [u8; 3],
    distance: impl Fn(f32, f32) -> f32,
) {
    let (x0, y0, x1, y1) = bounds;
    for y in pixel_span(y0, y1, image.height()) {
        for x in pixel_span(x0, x1, image.width()) {
            let d = distance(x as f32 + 0.5, y as f32 + 0.5);
            let coverage = (d + 0.5).clamp(0.0, 1.0);
            blend(image, i64::from(x), i64::from(y), color, coverage);
        }
    }
}

/// Approximate signed distance to the ellipse with centre `(cx, cy)` and semi-axes `(a, b)`:
/// exact on the outline's normal near the outline, which is all anti-aliasing needs.
pub(crate) fn ellipse_distance(x: f32, y: f32, cx: f32, cy: f32, a: f32, b: f32) -> f32 {
    let (dx, dy) = (x - cx, y - cy);
    let g = (dx / a).powi(2) + (dy / b).powi(2) - 1.0;
    let gradient = 2.0 * ((dx / (a * a)).powi(2) + (dy / (b * b)).powi(2)).sqrt();
    -g / gradient.max(1e-6)
}

/// Signed distance to the box `(x0, y0, x1, y1)` (positive inside; the minimum over its four
/// sides, exact inside).
pub(crate) fn rect_distance(x: f32, y: f32, bounds: (f32, f32, f32, f32)) -> f32 {
    let (x0, y0, x1, y1) = bounds;
    (x - x0).min(x1 - x).min(y - y0).min(y1 - y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_anti_aliased_and_clipped() {
        let mut image = RgbImage::new(20, 20);
        // A box from 4.5 to 10.0: pixel 4 is half covered, 5..=9 fully, 10 not at all.
        let bounds = (4.5, 4.5, 10.0, 10.0);
        fill(&mut image, bounds, [200, 200, 200], |x, y| {
            rect_distance(x, y, bounds)
        });
        assert_eq!(image.get_pixel(7, 7).0, [200; 3]);
        assert_eq!(image.get_pixel(4, 7).0, [100; 3]);
        assert_eq!(image.get_pixel(10, 7).0, [0; 3]);
        // Shapes reaching past the edges are clipped, not a panic.
        fill(&mut image, (-50.0, -50.0, 90.0, 90.0), [9, 9, 9], |_, _| {
            1.0
        });
        assert!(image.pixels().all(|p| p.0 == [9; 3]));
    }

    #[test]
    fn ellipse_distance_is_near_exact_at_the_outline() {
        assert!((ellipse_distance(10.0, 0.0, 0.0, 0.0, 10.0, 5.0)).abs() < 1e-4);
        assert!((ellipse_distance(11.0, 0.0, 0.0, 0.0, 10.0, 5.0) + 1.0).abs() < 0.1);
        assert!((ellipse_distance(0.0, 4.0, 0.0, 0.0, 10.0, 5.0) - 1.0).abs() < 0.2);
        assert!(ellipse_distance(0.0, 0.0, 0.0, 0.0, 10.0, 5.0) > 4.0);
    }
}
