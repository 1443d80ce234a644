//! Latent → RGB approximation for live previews (a 4×3 linear map per family, no network).

use crate::io::family::Family;
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use image::RgbImage;

/// Rows: latent channels 0–3; columns: R, G, B (FORMATS §4.5).
const SD_FACTORS: [[f32; 3]; 4] = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
];
const SDXL_FACTORS: [[f32; 3]; 4] = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
];
const SDXL_BIAS: [f32; 3] = [0.1084, -0.0175, -0.0011];

/// A latent-resolution RGB preview of UNet-space latents `[1, 4, h, w]`.
pub fn latents_to_rgb(latents: &Tensor, family: Family) -> Result<RgbImage> {
    let (_, c, h, w) = latents.dims4()?;
    if c != 4 {
        return Err(Error::InvalidArgument(format!(
            "preview needs 4 latent channels, got {c}"
        )));
    }
    let (factors, bias) = if family.is_sdxl() {
        (SDXL_FACTORS, SDXL_BIAS)
    } else {
        (SD_FACTORS, [0.0; 3])
    };
    let data: Vec<f32> = latents
        .get(0)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let plane = h * w;
    let mut out = Vec::with_capacity(plane * 3);
    for p in 0..plane {
        for (rgb, b) in bias.iter().enumerate() {
            let mut v = *b;
            for (ch, row) in factors.iter().enumerate() {
                v += data.get(ch * plane + p).copied().unwrap_or(0.0) * row[rgb];
            }
            out.push((((v + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out)
        .ok_or_else(|| Error::Image("preview size mismatch".into()))
}
