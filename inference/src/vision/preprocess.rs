//! ControlNet guide preprocessors (FORMATS §6): each turns an RGB image into a guide image of
//! the same size ([`preprocess`]). Canny follows OpenCV's `cv2.Canny` (3×3 Sobel with replicated
//! borders, L1 magnitude, the 22.5°/67.5° direction sectors, 8-connected hysteresis), run on the
//! colour image as diffusers' examples and the A1111 ControlNet extension do: per pixel, the
//! channel with the largest gradient decides. Depth (Depth Anything), lineart (controlnet_aux
//! line art) and scribble from a photo (controlnet_aux HED) run a network
//! ([`super::annotators`]); scribble from a drawing needs none ([`super::scribble`]).

use super::annotators::{Annotator, Network, Preprocessors};
use super::scribble::{ScribbleSource, looks_like_drawing, sketch_scribble};
use crate::recipe::Preprocessor;
use crate::{Error, Result};
use candle_core::Device;
use image::{GrayImage, RgbImage};
use std::path::Path;

/// Canny thresholds used when none are given (diffusers' examples, A1111's defaults).
pub const CANNY_LOW: f32 = 100.0;
/// See [`CANNY_LOW`].
pub const CANNY_HIGH: f32 = 200.0;

/// Settings of the preprocessors beyond the kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreprocessOptions {
    /// Canny low threshold.
    pub canny_low: f32,
    /// Canny high threshold.
    pub canny_high: f32,
    /// What a scribble is made from.
    pub scribble: ScribbleSource,
    /// Line art: the coarse network (`sk_model2`) instead of the realistic one.
    pub lineart_coarse: bool,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        PreprocessOptions {
            canny_low: CANNY_LOW,
            canny_high: CANNY_HIGH,
            scribble: ScribbleSource::Auto,
            lineart_coarse: false,
        }
    }
}

/// The network `preprocessor` needs for `image`, if any.
pub fn network_for(
    preprocessor: Preprocessor,
    image: &RgbImage,
    options: &PreprocessOptions,
) -> Option<Network> {
    match preprocessor {
        Preprocessor::None | Preprocessor::Canny | Preprocessor::Inpaint => None,
        Preprocessor::Depth => Some(Network::DepthAnything),
        Preprocessor::Lineart if options.lineart_coarse => Some(Network::LineartCoarse),
        Preprocessor::Lineart => Some(Network::Lineart),
        Preprocessor::Scribble => match options.scribble {
            ScribbleSource::Sketch => None,
            ScribbleSource::Photo => Some(Network::Hed),
            ScribbleSource::Auto => (!looks_like_drawing(image)).then_some(Network::Hed),
        },
    }
}

/// The guide for `image` made by `preprocessor` (same size, three equal channels), with the
/// network it needs taken from `model` (a file or folder) or, when `None`, from nowhere: a
/// model-based preprocessor then fails with a message saying which file to get.
pub fn preprocess(
    preprocessor: Preprocessor,
    image: &RgbImage,
    model: Option<&Path>,
) -> Result<RgbImage> {
    let mut networks = Preprocessors::default();
    guide_with(
        &mut networks,
        preprocessor,
        image,
        model,
        &PreprocessOptions::default(),
        &Device::Cpu,
    )
}

/// [`preprocess`] with options, networks found in (and cached by) `networks`.
pub fn guide_with(
    networks: &mut Preprocessors,
    preprocessor: Preprocessor,
    image: &RgbImage,
    model: Option<&Path>,
    options: &PreprocessOptions,
    device: &Device,
) -> Result<RgbImage> {
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::InvalidArgument("the guide image is empty".into()));
    }
    let Some(network) = network_for(preprocessor, image, options) else {
        return Ok(match preprocessor {
            Preprocessor::Canny => {
                gray_to_rgb(&canny(image, options.canny_low, options.canny_high))
            }
            Preprocessor::Scribble => gray_to_rgb(&sketch_scribble(image)),
            // The mask is the generation's: the image is shown as it is ([`inpaint_preview`]
            // shows it with a mask).
            _ => image.clone(),
        });
    };
    let annotator = networks.network(network, model, device)?;
    let gray = match (annotator.as_ref(), preprocessor) {
        (Annotator::Depth(net), Preprocessor::Depth) => net.guide(image)?,
        (Annotator::Lineart(net), Preprocessor::Lineart) => net.guide(image)?,
        (Annotator::Hed(net), Preprocessor::Scribble) => net.scribble(image)?,
        _ => {
            return Err(Error::InvalidArgument(format!(
                "the model given is not the {} preprocessor's",
                preprocessor.name()
            )));
        }
    };
    Ok(gray_to_rgb(&gray))
}

/// The guide for `image` made by `preprocessor` without a model file (none, canny, scribble from
/// a drawing); see [`preprocess`].
pub fn guide(image: &RgbImage, preprocessor: Preprocessor) -> Result<RgbImage> {
    preprocess(preprocessor, image, None)
}

/// A viewable picture of an inpainting guide (`pre=inpaint`): `image` with the pixels the
/// ControlNet sees as −1 (where `mask`, same size, is at least 50 %) shown black; `None` when
/// the sizes differ.
pub fn inpaint_preview(image: &RgbImage, mask: &GrayImage) -> Option<RgbImage> {
    if image.dimensions() != mask.dimensions() {
        return None;
    }
    let mut preview = image.clone();
    for (pixel, m) in preview.pixels_mut().zip(mask.pixels()) {
        if m.0[0] >= 128 {
            *pixel = image::Rgb([0, 0, 0]);
        }
    }
    Some(preview)
}

/// A one-channel image stacked into three (how guides are fed to ControlNets).
pub fn gray_to_rgb(gray: &GrayImage) -> RgbImage {
    RgbImage::from_fn(gray.width(), gray.height(), |x, y| {
        let v = gray.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    })
}

/// OpenCV's RGB → gray (`cv2.cvtColor(…, COLOR_RGB2GRAY)`: 15-bit fixed point, rounded).
pub fn to_gray(image: &RgbImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0;
        let v = (u32::from(r) * 9798 + u32::from(g) * 19235 + u32::from(b) * 3735 + 16384) >> 15;
        image::Luma([v.min(255) as u8])
    })
}

/// Canny edges of a colour image (white edges on black), like `cv2.Canny(rgb, low, high)`.
pub fn canny(image: &RgbImage, low: f32, high: f32) -> GrayImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let channels: Vec<Vec<u8>> = (0..3)
        .map(|c| image.pixels().map(|p| p.0[c]).collect())
        .collect();
    canny_channels(&channels, w, h, low, high)
}

/// Canny edges of a gray image, like `cv2.Canny(gray, low, high)`.
pub fn canny_gray(gray: &GrayImage, low: f32, high: f32) -> GrayImage {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    canny_channels(&[gray.as_raw().clone()], w, h, low, high)
}

/// Sobel derivatives of one channel with replicated borders.
fn sobel(p: &[u8], w: usize, h: usize) -> (Vec<i32>, Vec<i32>) {
    let at = |x: isize, y: isize| -> i32 {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        i32::from(p.get(y * w + x).copied().unwrap_or(0))
    };
    let mut dx = vec![0i32; w * h];
    let mut dy = vec![0i32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = (at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2 * at(x - 1, y) + at(x - 1, y + 1));
            let gy = (at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2 * at(x, y - 1) + at(x + 1, y - 1));
            let i = y as usize * w + x as usize;
            dx[i] = gx;
            dy[i] = gy;
        }
    }
    (dx, dy)
}

fn canny_channels(channels: &[Vec<u8>], w: usize, h: usize, low: f32, high: f32) -> GrayImage {
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let (low, high) = (low.floor() as i32, high.floor() as i32);
    if w == 0 || h == 0 {
        return GrayImage::new(w as u32, h as u32);
    }
    // Per pixel, the channel with the largest L1 magnitude (the first on ties).
    let mut dx = vec![0i32; w * h];
    let mut dy = vec![0i32; w * h];
    let mut mag = vec![0i32; w * h];
    for (c, channel) in channels.iter().enumerate() {
        let (cx, cy) = sobel(channel, w, h);
        for i in 0..w * h {
            let m = cx[i].abs() + cy[i].abs();
            if c == 0 || m > mag[i] {
                mag[i] = m;
                dx[i] = cx[i];
                dy[i] = cy[i];
            }
        }
    }
    // Magnitude outside the image is 0.
    let m_at = |x: isize, y: isize| -> i32 {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    const SHIFT: u32 = 15;
    // tan(22.5°) in Q15, rounded.
    const TG22: i64 = 13573;
    // 0 = candidate (weak), 2 = strong, 1 = not an edge.
    let mut map = vec![1u8; w * h];
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let m = mag[i];
            if m <= low {
                continue;
            }
            let (xi, yi) = (x as isize, y as isize);
            let (sx, sy) = (dx[i], dy[i]);
            let xs = i64::from(sx.abs());
            let ys = i64::from(sy.abs()) << SHIFT;
            let tg22x = xs * TG22;
            let keep = if ys < tg22x {
                m > m_at(xi - 1, yi) && m >= m_at(xi + 1, yi)
            } else {
                let tg67x = tg22x + (xs << (SHIFT + 1));
                if ys > tg67x {
                    m > m_at(xi, yi - 1) && m >= m_at(xi, yi + 1)
                } else {
                    let s: isize = if (sx ^ sy) < 0 { -1 } else { 1 };
                    m > m_at(xi - s, yi - 1) && m > m_at(xi + s, yi + 1)
                }
            };
            if keep {
                if m > high {
                    map[i] = 2;
                    stack.push(i);
                } else {
                    map[i] = 0;
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        for (ox, oy) in [
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ] {
            let (nx, ny) = (x + ox, y + oy);
            if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            if map[j] == 0 {
                map[j] = 2;
                stack.push(j);
            }
        }
    }
    let pixels = map.iter().map(|&v| if v == 2 { 255 } else { 0 }).collect();
    GrayImage::from_raw(w as u32, h as u32, pixels).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bright_square_has_a_closed_outline() {
        let img = RgbImage::from_fn(32, 32, |x, y| {
            if (8..24).contains(&x) && (8..24).contains(&y) {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let edges = canny(&img, 100.0, 200.0);
        let on = edges.pixels().filter(|p| p.0[0] == 255).count();
        // One-pixel outline on each side of the step, about 4 × 16 pixels.
        assert!((56..=72).contains(&on), "{on} edge pixels");
        assert_eq!(edges.get_pixel(0, 0).0[0], 0);
        assert_eq!(edges.get_pixel(16, 16).0[0], 0);
    }

    #[test]
    fn model_preprocessors_without_a_model_say_what_to_get() {
        let img = RgbImage::new(8, 8);
        let err = guide(&img, Preprocessor::Depth).unwrap_err();
        assert!(
            err.to_string().contains("Depth-Anything-V2-Small-hf"),
            "{err}"
        );
        let err = guide(&img, Preprocessor::Lineart).unwrap_err();
        assert!(err.to_string().contains("sk_model.safetensors"), "{err}");
        assert_eq!(guide(&img, Preprocessor::None).unwrap(), img);
        // A plain picture is a (blank) drawing: no model needed.
        let blank = guide(&img, Preprocessor::Scribble).unwrap();
        assert!(blank.pixels().all(|p| p.0 == [0, 0, 0]));
        let photo = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 8) as u8, 99])
        });
        let err = guide(&photo, Preprocessor::Scribble).unwrap_err();
        assert!(
            err.to_string().contains("ControlNetHED.safetensors"),
            "{err}"
        );
    }
    #[test]
    fn an_inpaint_guide_previews_its_masked_pixels_black() {
        let img = RgbImage::from_fn(4, 2, |x, _| image::Rgb([200, (x * 50) as u8, 9]));
        // The mask comes at generation: the image passes as it is.
        assert_eq!(guide(&img, Preprocessor::Inpaint).unwrap(), img);
        let mask = GrayImage::from_raw(4, 2, vec![0, 127, 128, 255, 0, 0, 0, 0]).unwrap();
        let preview = inpaint_preview(&img, &mask).unwrap();
        assert_eq!(preview.get_pixel(1, 0), img.get_pixel(1, 0));
        assert_eq!(preview.get_pixel(2, 0).0, [0, 0, 0]);
        assert_eq!(preview.get_pixel(3, 0).0, [0, 0, 0]);
        assert_eq!(preview.get_pixel(3, 1), img.get_pixel(3, 1));
        assert!(inpaint_preview(&img, &GrayImage::new(2, 2)).is_none());
    }
}
