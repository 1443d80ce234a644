//! Soft edges and photo scribbles: controlnet_aux's `HEDdetector` (the `ControlNetHED_Apache2`
//! network of `lllyasviel/Annotators/ControlNetHED.pth`) and its `scribble=True`
//! post-processing (`nms` at 127 with σ = 3, Gaussian blur σ = 3, threshold 4), with OpenCV's
//! border rules and its bit-exact 8-bit Gaussian blur.
//!
//! Kiln loads the same tensor names from safetensors (`norm`, `blockN.convs.M.weight`,
//! `blockN.projection.weight`, with biases); widths and convolutions per block come from the
//! shapes. The network runs at the image's own size (controlnet_aux first resizes to 512 on the
//! short side, multiples of 64).

use super::layers::conv2d;
use crate::kernels::conv::Conv2d;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use image::{GrayImage, RgbImage};
use std::path::Path;

use super::interpolate::{Mode, interpolate_planes};
use super::lineart::rgb_tensor;

/// The file name controlnet_aux downloads (as safetensors).
pub const HED_FILE: &str = "ControlNetHED.safetensors";

/// One `DoubleConvBlock`: 3×3 convs with ReLU, and a 1×1 projection to one channel.
#[derive(Debug)]
struct Block {
    convs: Vec<Conv2d>,
    projection: Conv2d,
}

/// controlnet_aux `ControlNetHED_Apache2`.
#[derive(Debug)]
pub struct HedNet {
    norm: Tensor,
    blocks: Vec<Block>,
    device: Device,
}

impl HedNet {
    /// Loads a safetensors file with controlnet_aux's key names.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let st = crate::io::weights::open_safetensors(&[path.to_path_buf()])?;
        let shape = |name: &str| -> Result<Vec<usize>> {
            st.get(name)
                .map(|v| v.shape().to_vec())
                .map_err(|_| Error::UnknownCheckpoint {
                    detail: format!("HED: no tensor {name} (expected ControlNetHED weights)"),
                    path: path.to_path_buf(),
                })
        };
        let mut layout = Vec::new();
        let mut in_channels = 3;
        for b in 1..=5 {
            let mut convs = Vec::new();
            for m in 0.. {
                let name = format!("block{b}.convs.{m}.weight");
                if st.get(&name).is_err() {
                    break;
                }
                let dims = shape(&name)?;
                let &[out, inp, 3, 3] = dims.as_slice() else {
                    return Err(Error::UnknownCheckpoint {
                        detail: format!("HED: {name} has shape {dims:?}"),
                        path: path.to_path_buf(),
                    });
                };
                if inp != in_channels {
                    return Err(Error::UnknownCheckpoint {
                        detail: format!("HED: {name} takes {inp} channels, expected {in_channels}"),
                        path: path.to_path_buf(),
                    });
                }
                convs.push((inp, out));
                in_channels = out;
            }
            if convs.is_empty() {
                shape(&format!("block{b}.convs.0.weight"))?;
            }
            layout.push(convs);
        }
        let vb = VarBuilder::from_backend(Box::new(st), DType::F32, device.clone());
        let norm = vb.get((1, 3, 1, 1), "norm")?;
        let pad1 = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let blocks = layout
            .iter()
            .enumerate()
            .map(|(b, convs)| {
                let vb = vb.pp(format!("block{}", b + 1));
                let last = convs.last().map(|c| c.1).unwrap_or(1);
                Ok(Block {
                    convs: convs
                        .iter()
                        .enumerate()
                        .map(|(m, &(i, o))| conv2d(i, o, 3, pad1, vb.pp("convs").pp(m)))
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                    projection: conv2d(last, 1, 1, Default::default(), vb.pp("projection"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HedNet {
            norm,
            blocks,
            device: device.clone(),
        })
    }

    /// The five side outputs (`[1, 1, h_i, w_i]`) for `[1, 3, H, W]` input in 0..255.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = x.broadcast_sub(&self.norm)?;
        let mut projections = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                let (_, _, hh, ww) = h.dims4()?;
                if hh < 2 || ww < 2 {
                    return Err(Error::InvalidArgument(
                        "image too small for the HED network (at least 16x16)".into(),
                    ));
                }
                h = h.max_pool2d(2)?;
            }
            for conv in &block.convs {
                h = conv.forward(&h)?.relu()?;
            }
            projections.push(block.projection.forward(&h)?);
        }
        Ok(projections)
    }

    /// The soft edge map: sigmoid of the mean of the side outputs resized to the image
    /// (`cv2.resize` bilinear), times 255, truncated.
    pub fn soft_edges(&self, image: &RgbImage) -> Result<GrayImage> {
        let (w, h) = image.dimensions();
        let x = rgb_tensor(image, (w, h), 1.0, &self.device)?;
        let (wu, hu) = (w as usize, h as usize);
        let mut sums = vec![0f32; wu * hu];
        let sides = self.forward(&x)?;
        for side in &sides {
            let (_, _, sh, sw) = side.dims4()?;
            let data = side.flatten_all()?.to_vec1::<f32>()?;
            let up = interpolate_planes(&data, 1, (sh, sw), (hu, wu), Mode::Bilinear, false);
            for (s, v) in sums.iter_mut().zip(up) {
                *s += v;
            }
        }
        let n = sides.len().max(1) as f32;
        let pixels = sums
            .iter()
            .map(|&s| {
                let mean = f64::from(s / n);
                let edge = 1.0 / (1.0 + (-mean).exp());
                (edge * 255.0).clamp(0.0, 255.0) as u8
            })
            .collect();
        GrayImage::from_raw(w, h, pixels)
            .ok_or_else(|| Error::InvalidArgument("HED output size".into()))
    }

    /// The scribble guide of a photo: [`HedNet::soft_edges`] then [`scribble_from_edges`].
    pub fn scribble(&self, image: &RgbImage) -> Result<GrayImage> {
        Ok(scribble_from_edges(&self.soft_edges(image)?))
    }
}

/// controlnet_aux's `scribble=True` steps on a soft edge map: `nms(x, 127, 3.0)`, then
/// `cv2.GaussianBlur(·, (0, 0), 3.0)` and 255 where the blur exceeds 4.
pub fn scribble_from_edges(edges: &GrayImage) -> GrayImage {
    let (w, h) = (edges.width() as usize, edges.height() as usize);
    let thin = nms(edges.as_raw(), w, h, 127.0, 3.0);
    let blurred = gaussian_blur_u8(&thin, w, h, 3.0);
    let pixels = blurred
        .iter()
        .map(|&v| if v > 4 { 255 } else { 0 })
        .collect();
    GrayImage::from_raw(w as u32, h as u32, pixels)
        .unwrap_or_else(|| GrayImage::new(w as u32, h as u32))
}

/// OpenCV `BORDER_REFLECT_101` index.
fn reflect101(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let n = n as isize;
    let mut i = i;
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * (n - 1) - i;
        } else {
            return i as usize;
        }
    }
}

/// OpenCV's Gaussian kernel (`getGaussianKernel`, sigma > 0), in double.
fn gaussian_kernel(n: usize, sigma: f64) -> Vec<f64> {
    let scale = -0.5 / (sigma * sigma);
    let half = (n as f64 - 1.0) * 0.5;
    let raw: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - half;
            (scale * x * x).exp()
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|v| v / sum).collect()
}

/// Kernel size OpenCV picks for `ksize = (0, 0)`: `cvRound(σ·(3 for 8-bit, 4 otherwise)·2 + 1) | 1`.
fn kernel_size(sigma: f64, eight_bit: bool) -> usize {
    let factor = if eight_bit { 3.0 } else { 4.0 };
    ((sigma * factor * 2.0 + 1.0).round() as usize) | 1
}

/// `cv2.GaussianBlur` of a float image (BORDER_REFLECT_101), separable: rows then columns.
fn gaussian_blur_f32(data: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    let n = kernel_size(sigma, false);
    let kernel: Vec<f32> = gaussian_kernel(n, sigma)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let r = (n / 2) as isize;
    let mut rows = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0f32;
            for (k, kv) in kernel.iter().enumerate() {
                let xx = reflect101(x as isize + k as isize - r, w);
                s += kv * data[y * w + xx];
            }
            rows[y * w + x] = s;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0f32;
            for (k, kv) in kernel.iter().enumerate() {
                let yy = reflect101(y as isize + k as isize - r, h);
                s += kv * rows[yy * w + x];
            }
            out[y * w + x] = s;
        }
    }
    out
}

/// OpenCV's 8-bit Gaussian kernel in fixed point with 8 fraction bits
/// (`getGaussianKernelFixedPoint_ED`: error diffusion from the outside in, the centre takes the
/// rest so the taps sum to exactly 256).
fn gaussian_kernel_q8(n: usize, sigma: f64) -> Vec<u32> {
    let kernel = gaussian_kernel(n, sigma);
    let half = n / 2;
    let mut out = vec![0u32; n];
    let mut err = 0f64;
    let mut sum = 0i64;
    for i in 0..half {
        let adjusted = kernel[i] * 256.0 + err;
        let v = adjusted.round_ties_even() as i64;
        err = adjusted - v as f64;
        out[i] = v.max(0) as u32;
        out[n - 1 - i] = v.max(0) as u32;
        sum += v;
    }
    out[half] = (256 - 2 * sum).max(0) as u32;
    out
}

/// `cv2.GaussianBlur` of an 8-bit image with `ksize = (0, 0)`: OpenCV's bit-exact fixed-point
/// path (Q8 taps, rows then columns, rounded once at the end), BORDER_REFLECT_101.
pub fn gaussian_blur_u8(data: &[u8], w: usize, h: usize, sigma: f64) -> Vec<u8> {
    let n = kernel_size(sigma, true);
    let kernel = gaussian_kernel_q8(n, sigma);
    let r = (n / 2) as isize;
    let mut rows = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0u32;
            for (k, kv) in kernel.iter().enumerate() {
                let xx = reflect101(x as isize + k as isize - r, w);
                s += kv * u32::from(data[y * w + xx]);
            }
            rows[y * w + x] = s;
        }
    }
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0u64;
            for (k, kv) in kernel.iter().enumerate() {
                let yy = reflect101(y as isize + k as isize - r, h);
                s += u64::from(*kv) * u64::from(rows[yy * w + x]);
            }
            out[y * w + x] = ((s + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    out
}

/// controlnet_aux `nms(x, t, s)`: blur (float), keep pixels that are maxima along one of the
/// four directions (`cv2.dilate` with 3-pixel line kernels; outside pixels ignored), 255 where
/// the kept value exceeds `t`.
fn nms(data: &[u8], w: usize, h: usize, t: f32, sigma: f64) -> Vec<u8> {
    let x: Vec<f32> = data.iter().map(|&v| f32::from(v)).collect();
    let x = gaussian_blur_f32(&x, w, h, sigma);
    let at = |xx: isize, yy: isize| -> Option<f32> {
        (xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h)
            .then(|| x[yy as usize * w + xx as usize])
    };
    const DIRECTIONS: [(isize, isize); 4] = [(1, 0), (0, 1), (1, 1), (1, -1)];
    let mut out = vec![0u8; w * h];
    for yy in 0..h as isize {
        for xx in 0..w as isize {
            let v = x[yy as usize * w + xx as usize];
            let is_max = DIRECTIONS.iter().any(|&(dx, dy)| {
                let a = at(xx - dx, yy - dy).unwrap_or(f32::NEG_INFINITY);
                let b = at(xx + dx, yy + dy).unwrap_or(f32::NEG_INFINITY);
                v.max(a).max(b) == v
            });
            if is_max && v > t {
                out[yy as usize * w + xx as usize] = 255;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_kernel_sums_to_one_and_a_flat_image_stays_flat() {
        let k = gaussian_kernel_q8(19, 3.0);
        assert_eq!(k.iter().sum::<u32>(), 256);
        assert_eq!(kernel_size(3.0, true), 19);
        assert_eq!(kernel_size(3.0, false), 25);
        let flat = vec![200u8; 30 * 20];
        assert!(
            gaussian_blur_u8(&flat, 30, 20, 3.0)
                .iter()
                .all(|&v| v == 200)
        );
    }

    #[test]
    fn a_thick_bright_line_thins_to_a_scribble() {
        let edges = GrayImage::from_fn(40, 40, |x, _| {
            image::Luma([if (18..23).contains(&x) { 255 } else { 0 }])
        });
        let s = scribble_from_edges(&edges);
        assert_eq!(s.get_pixel(20, 20).0[0], 255);
        assert_eq!(s.get_pixel(2, 20).0[0], 0);
        assert!(s.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    }
}
