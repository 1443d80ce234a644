//! Line art from a picture: controlnet_aux's `LineartDetector` network (`Generator(3, 1, 3)` of
//! "Learning to generate line drawings", the `sk_model.pth` / coarse `sk_model2.pth` weights of
//! `lllyasviel/Annotators`) with its output formula `255 − uint8(clip(out · 255))` (black lines
//! on white become white lines on black).
//!
//! Kiln loads the same tensor names from safetensors (`model0.1.weight`, `model1.0.weight`,
//! `model2.N.conv_block.{1,5}.weight`, `model3.{0,3}.weight`, `model4.1.weight`, with biases);
//! widths and the number of residual blocks are read from the shapes. The network runs at the
//! image's own size (controlnet_aux first resizes to 512 on the short side, multiples of 64):
//! sides are padded to a multiple of 4 by replicating the last row/column and the result cropped.

use super::layers::{ConvTranspose2d, conv_transpose2d, conv2d};
use crate::kernels::conv::Conv2d;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};
use image::{GrayImage, RgbImage};
use std::path::Path;

/// The file name controlnet_aux downloads for realistic line art (as safetensors).
pub const LINEART_FILE: &str = "sk_model.safetensors";
/// The coarse variant's file name.
pub const LINEART_COARSE_FILE: &str = "sk_model2.safetensors";

/// `nn.ReflectionPad2d(pad)` of a `[B, C, H, W]` tensor.
pub(crate) fn reflection_pad(x: &Tensor, pad: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if pad == 0 {
        return Ok(x.clone());
    }
    if pad >= h || pad >= w {
        return Err(Error::InvalidArgument(format!(
            "image too small for the line-art network ({w}x{h} at some stage)"
        )));
    }
    let indices = |n: usize| -> Result<Tensor> {
        let n = n as i64;
        let p = pad as i64;
        let idx: Vec<u32> = (-p..n + p)
            .map(|i| {
                let r = if i < 0 {
                    -i
                } else if i >= n {
                    2 * (n - 1) - i
                } else {
                    i
                };
                r as u32
            })
            .collect();
        let len = idx.len();
        Ok(Tensor::from_vec(idx, len, x.device())?)
    };
    let x = x.index_select(&indices(h)?, 2)?;
    Ok(x.index_select(&indices(w)?, 3)?)
}

/// `nn.InstanceNorm2d(affine=False, eps=1e-5)`: per-channel normalisation over H×W.
pub(crate) fn instance_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim((2, 3))?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim((2, 3))?;
    Ok(centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?)
}

/// controlnet_aux `ResidualBlock`: x + IN(conv(pad(relu(IN(conv(pad(x))))))).
#[derive(Debug)]
struct ResidualBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResidualBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = instance_norm(&self.conv1.forward(&reflection_pad(x, 1)?)?)?.relu()?;
        let h = instance_norm(&self.conv2.forward(&reflection_pad(&h, 1)?)?)?;
        Ok((x + h)?)
    }
}

/// controlnet_aux lineart `Generator` (sigmoid output).
#[derive(Debug)]
pub struct LineartNet {
    model0: Conv2d,
    down: Vec<Conv2d>,
    blocks: Vec<ResidualBlock>,
    up: Vec<ConvTranspose2d>,
    model4: Conv2d,
    device: Device,
}

/// `[out, in, k, k]` of a stored tensor.
fn conv_shape(st: &candle_core::safetensors::MmapedSafetensors, name: &str) -> Result<Vec<usize>> {
    let view = st.get(name).map_err(|_| Error::MissingWeight {
        component: "lineart".into(),
        name: name.into(),
    })?;
    Ok(view.shape().to_vec())
}

impl LineartNet {
    /// Loads a safetensors file with controlnet_aux's key names.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let st = crate::io::weights::open_safetensors(&[path.to_path_buf()])?;
        let first = conv_shape(&st, "model0.1.weight")?;
        let &[width, in_channels, 7, 7] = first.as_slice() else {
            return Err(Error::UnknownCheckpoint {
                detail: format!(
                    "lineart: model0.1.weight has shape {first:?}, expected [C, 3, 7, 7]"
                ),
                path: path.to_path_buf(),
            });
        };
        let n_blocks = (0..)
            .take_while(|i| st.get(&format!("model2.{i}.conv_block.1.weight")).is_ok())
            .count();
        let vb = VarBuilder::from_backend(Box::new(st), DType::F32, device.clone());
        let same = |pad: usize, stride: usize| Conv2dConfig {
            padding: pad,
            stride,
            ..Default::default()
        };
        let model0 = conv2d(in_channels, width, 7, same(0, 1), vb.pp("model0.1"))?;
        let down = vec![
            conv2d(width, width * 2, 3, same(1, 2), vb.pp("model1.0"))?,
            conv2d(width * 2, width * 4, 3, same(1, 2), vb.pp("model1.3"))?,
        ];
        let wide = width * 4;
        let blocks = (0..n_blocks)
            .map(|i| {
                let b = vb.pp(format!("model2.{i}.conv_block"));
                Ok(ResidualBlock {
                    conv1: conv2d(wide, wide, 3, same(0, 1), b.pp("1"))?,
                    conv2: conv2d(wide, wide, 3, same(0, 1), b.pp("5"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let up_cfg = ConvTranspose2dConfig {
            padding: 1,
            output_padding: 1,
            stride: 2,
            dilation: 1,
        };
        let up = vec![
            conv_transpose2d(wide, width * 2, 3, up_cfg, vb.pp("model3.0"))?,
            conv_transpose2d(width * 2, width, 3, up_cfg, vb.pp("model3.3"))?,
        ];
        let model4 = conv2d(width, 1, 7, same(0, 1), vb.pp("model4.1"))?;
        Ok(LineartNet {
            model0,
            down,
            blocks,
            up,
            model4,
            device: device.clone(),
        })
    }

    /// The network's output in [0, 1] (`[1, 1, H, W]`) for `[1, 3, H, W]` input in [0, 1]
    /// (H and W multiples of 4).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = instance_norm(&self.model0.forward(&reflection_pad(x, 3)?)?)?.relu()?;
        for conv in &self.down {
            h = instance_norm(&conv.forward(&h)?)?.relu()?;
        }
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        for conv in &self.up {
            h = instance_norm(&conv.forward(&h)?)?.relu()?;
        }
        let out = self.model4.forward(&reflection_pad(&h, 3)?)?;
        Ok(candle_nn::ops::sigmoid(&out)?)
    }

    /// The line-art guide of `image` (white lines on black), same size.
    pub fn guide(&self, image: &RgbImage) -> Result<GrayImage> {
        let (w, h) = image.dimensions();
        let (pw, ph) = (w.div_ceil(4) * 4, h.div_ceil(4) * 4);
        let x = rgb_tensor(image, (pw, ph), 1.0 / 255.0, &self.device)?;
        let out = self.forward(&x)?;
        let (_, _, oh, ow) = out.dims4()?;
        let values = out.flatten_all()?.to_vec1::<f32>()?;
        let pixel = |x: u32, y: u32| -> u8 {
            let v = values
                .get(y as usize * ow + x as usize)
                .copied()
                .unwrap_or(0.0);
            255 - (v * 255.0).clamp(0.0, 255.0) as u8
        };
        if (ow, oh) != (pw as usize, ph as usize) {
            return Err(Error::InvalidArgument(format!(
                "line-art network returned {ow}x{oh} for {pw}x{ph}"
            )));
        }
        Ok(GrayImage::from_fn(w, h, |x, y| image::Luma([pixel(x, y)])))
    }
}

/// `[1, 3, ph, pw]` f32 tensor of `image` times `scale`, padded right and bottom by repeating
/// the last column and row.
pub(crate) fn rgb_tensor(
    image: &RgbImage,
    (pw, ph): (u32, u32),
    scale: f32,
    device: &Device,
) -> Result<Tensor> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::InvalidArgument("empty image".into()));
    }
    let plane = (pw * ph) as usize;
    let mut data = vec![0f32; 3 * plane];
    for y in 0..ph {
        for x in 0..pw {
            let p = image.get_pixel(x.min(w - 1), y.min(h - 1)).0;
            let i = (y * pw + x) as usize;
            for c in 0..3 {
                data[c * plane + i] = f32::from(p[c]) * scale;
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (1, 3, ph as usize, pw as usize),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_pad_mirrors_without_the_edge() {
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = Tensor::cat(&[&x, &x, &x], 2).unwrap();
        let padded = reflection_pad(&x, 2).unwrap();
        let row: Vec<f32> = padded
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
    }
}
