//! Scribble guides from drawings: ControlNet scribble models expect white strokes on black.
//! A drawing is any picture on a plain background (the canvas sketch layer: white strokes on
//! black; a pencil sketch: dark strokes on white paper); its strokes are every pixel that differs
//! clearly from the background colour. Photos go through HED instead ([`super::hed`]).

use image::{GrayImage, RgbImage};

/// What a scribble guide is made from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScribbleSource {
    /// A drawing when [`looks_like_drawing`], a photo otherwise.
    #[default]
    Auto,
    /// A drawing on a plain background: binarised, no model.
    Sketch,
    /// A photo: HED edges with controlnet_aux's scribble post-processing (needs the HED model).
    Photo,
}

impl ScribbleSource {
    /// Parses `auto`, `sketch` or `photo`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(ScribbleSource::Auto),
            "sketch" => Some(ScribbleSource::Sketch),
            "photo" => Some(ScribbleSource::Photo),
            _ => None,
        }
    }
}

/// Share of pixels that must be within [`BACKGROUND_TOLERANCE`] of the background colour for a
/// picture to count as a drawing.
pub const DRAWING_BACKGROUND_SHARE: f64 = 0.6;
/// Largest per-channel difference from the background colour that is still background.
pub const BACKGROUND_TOLERANCE: u8 = 12;
/// Smallest per-channel difference from the background colour that is a stroke.
pub const STROKE_CONTRAST: u8 = 48;

/// The most common colour of `image`, with each channel quantised to 8 levels for counting and
/// then averaged over the pixels of the winning bin.
pub fn background_colour(image: &RgbImage) -> [u8; 3] {
    let bin = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0;
        (usize::from(r >> 5) << 6) | (usize::from(g >> 5) << 3) | usize::from(b >> 5)
    };
    let mut counts = vec![0usize; 512];
    for p in image.pixels() {
        counts[bin(p)] += 1;
    }
    let best = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, usize::MAX - i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for p in image.pixels().filter(|p| bin(p) == best) {
        for (total, &v) in sum.iter_mut().zip(&p.0) {
            *total += u64::from(v);
        }
        n += 1;
    }
    let n = n.max(1);
    [0, 1, 2].map(|c| ((sum[c] + n / 2) / n) as u8)
}

fn distance(p: [u8; 3], background: [u8; 3]) -> u8 {
    (0..3)
        .map(|c| p[c].abs_diff(background[c]))
        .max()
        .unwrap_or(0)
}

/// Whether `image` is a drawing: at least [`DRAWING_BACKGROUND_SHARE`] of its pixels are the
/// background colour (within [`BACKGROUND_TOLERANCE`]).
pub fn looks_like_drawing(image: &RgbImage) -> bool {
    let total = image.pixels().len();
    if total == 0 {
        return false;
    }
    let background = background_colour(image);
    let plain = image
        .pixels()
        .filter(|p| distance(p.0, background) <= BACKGROUND_TOLERANCE)
        .count();
    plain as f64 >= DRAWING_BACKGROUND_SHARE * total as f64
}

/// The scribble guide of a drawing: 255 where a pixel differs from the background colour by
/// at least [`STROKE_CONTRAST`] in some channel, 0 elsewhere.
pub fn sketch_scribble(image: &RgbImage) -> GrayImage {
    let background = background_colour(image);
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let stroke = distance(image.get_pixel(x, y).0, background) >= STROKE_CONTRAST;
        image::Luma([if stroke { 255 } else { 0 }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawing(paper: [u8; 3], ink: [u8; 3]) -> RgbImage {
        RgbImage::from_fn(48, 32, |x, y| {
            // A diagonal stroke two pixels wide with a soft edge.
            let d = (x as i32 - y as i32).abs();
            if d <= 1 {
                image::Rgb(ink)
            } else if d == 2 {
                image::Rgb([0, 1, 2].map(|c| ((u16::from(paper[c]) + u16::from(ink[c])) / 2) as u8))
            } else {
                image::Rgb(paper)
            }
        })
    }

    #[test]
    fn dark_strokes_on_paper_and_white_strokes_on_black_give_the_same_guide() {
        let pencil = drawing([250, 248, 240], [40, 40, 60]);
        let canvas = drawing([0, 0, 0], [255, 255, 255]);
        assert!(looks_like_drawing(&pencil) && looks_like_drawing(&canvas));
        let a = sketch_scribble(&pencil);
        let b = sketch_scribble(&canvas);
        assert_eq!(a, b);
        assert_eq!(a.get_pixel(10, 10).0[0], 255);
        assert_eq!(a.get_pixel(10, 30).0[0], 0);
        // Stroke pixels plus their soft edge: about 5 pixels per row.
        let on = a.pixels().filter(|p| p.0[0] == 255).count();
        assert!((32 * 3..=32 * 5).contains(&on), "{on}");
    }

    #[test]
    fn a_gradient_is_not_a_drawing() {
        let photo = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, 128])
        });
        assert!(!looks_like_drawing(&photo));
        assert_eq!(
            ScribbleSource::from_name("sketch"),
            Some(ScribbleSource::Sketch)
        );
        assert_eq!(ScribbleSource::from_name("pencil"), None);
    }
}
