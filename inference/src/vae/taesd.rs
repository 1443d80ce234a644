//! TAESD: the tiny autoencoder's decoder, for live previews (FORMATS §4.4).
//!
//! Accepts the original `taesd_decoder.safetensors` (Sequential indices; index 0 is the
//! Clamp, so the first conv is `1.*`) and diffusers `AutoencoderTiny` (`decoder.layers.i` =
//! original index − 1; its [−1,1] output mapping is simply not applied). Consumes UNet-space latents
//! directly (scale 1).

use crate::kernels::conv::Conv2d;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// `ReLU(conv(ReLU(conv(ReLU(conv(x))))) + skip(x))`.
#[derive(Debug)]
struct Block {
    convs: [Conv2d; 3],
    skip: Option<Conv2d>,
}

impl Block {
    fn new(vb: VarBuilder, in_ch: usize, out_ch: usize) -> Result<Self> {
        let c = vb.pp("conv");
        let skip = if in_ch != out_ch || vb.contains_tensor("skip.weight") {
            Some(Conv2d::new(in_ch, out_ch, 1, 1, 0, vb.pp("skip"))?)
        } else {
            None
        };
        Ok(Block {
            convs: [
                Conv2d::new(in_ch, out_ch, 3, 1, 1, c.pp(0))?,
                Conv2d::new(out_ch, out_ch, 3, 1, 1, c.pp(2))?,
                Conv2d::new(out_ch, out_ch, 3, 1, 1, c.pp(4))?,
            ],
            skip,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [a, b, c] = &self.convs;
        let h = a.forward(x)?.relu()?;
        let h = b.forward(&h)?.relu()?;
        let h = c.forward(&h)?;
        let skip = match &self.skip {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        Ok((h + skip)?.relu()?)
    }
}

#[derive(Debug)]
enum Layer {
    Conv(Conv2d),
    Relu,
    Block(Block),
    Upsample,
}

/// Blocks per level after the first conv (original layout 3–5, 8–10, 13–15, 18).
const BLOCKS: [usize; 4] = [3, 3, 3, 1];

/// The TAESD decoder: latents `[B,4,h,w]` → RGB `[B,3,8h,8w]` in about [0,1].
#[derive(Debug)]
pub struct TaesdDecoder {
    layers: Vec<Layer>,
    dtype: DType,
}

impl TaesdDecoder {
    /// Loads the decoder from either layout (detected from the tensor names under `vb`).
    /// Channel counts are read from the first conv, so reduced-width variants load too.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let (vb, diffusers) = if vb.contains_tensor("decoder.layers.0.weight") {
            (vb.pp("decoder").pp("layers"), true)
        } else if vb.contains_tensor("1.weight") {
            (vb, false)
        } else {
            return Err(Error::InvalidArgument(
                "TAESD: no `1.weight` or `decoder.layers.0.weight` tensor".into(),
            ));
        };
        let first_key = if diffusers { "0.weight" } else { "1.weight" };
        let (channels, latent, _, _) = vb.get_unchecked(first_key)?.dims4()?;
        // Original Sequential index → key prefix under `vb`.
        let at = |i: usize| vb.pp(if diffusers { i - 1 } else { i });
        let mut layers = vec![
            Layer::Conv(Conv2d::new(latent, channels, 3, 1, 1, at(1))?),
            Layer::Relu,
        ];
        let mut index = 3;
        for (level, &blocks) in BLOCKS.iter().enumerate() {
            for _ in 0..blocks {
                layers.push(Layer::Block(Block::new(at(index), channels, channels)?));
                index += 1;
            }
            let last = level + 1 == BLOCKS.len();
            if !last {
                layers.push(Layer::Upsample);
                index += 1;
            }
            let out = if last { 3 } else { channels };
            layers.push(Layer::Conv(Conv2d::new(channels, out, 3, 1, 1, at(index))?));
            index += 1;
        }
        Ok(TaesdDecoder {
            layers,
            dtype: vb.dtype(),
        })
    }

    /// Loads a decoder from a single `.safetensors` file or a diffusers `AutoencoderTiny`
    /// folder (its `diffusion_pytorch_model.safetensors`).
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let file = if path.is_dir() {
            path.join("diffusion_pytorch_model.safetensors")
        } else {
            path.to_path_buf()
        };
        let st = crate::io::weights::open_safetensors(&[file])?;
        TaesdDecoder::new(VarBuilder::from_backend(
            Box::new(st),
            dtype,
            device.clone(),
        ))
    }

    /// Decodes UNet-space latents `[B,4,h,w]` to RGB `[B,3,8h,8w]` in [0,1] (f32, not
    /// clamped: the network's output can overshoot slightly).
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let x = latents.to_dtype(self.dtype)?;
        let mut x = ((x / 3.0)?.tanh()? * 3.0)?;
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c) => c.forward(&x)?,
                Layer::Relu => x.relu()?,
                Layer::Block(b) => b.forward(&x)?,
                Layer::Upsample => {
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(2 * h, 2 * w)?
                }
            };
        }
        // The Sequential outputs [0,1] in both layouts (diffusers' `DecoderTiny.forward` maps
        // to [−1,1] only after its `layers`), so no remapping is needed here.
        Ok(x.to_dtype(DType::F32)?)
    }

    /// Decodes the first latent of the batch to an 8-bit image (clamped to [0,1]).
    pub fn decode_to_image(&self, latents: &Tensor) -> Result<RgbImage> {
        let rgb = self.decode(&latents.narrow(0, 0, 1)?)?;
        let (_, _, h, w) = rgb.dims4()?;
        let data: Vec<u8> = (rgb.get(0)?.clamp(0f32, 1f32)? * 255.0)?
            .round()?
            .permute((1, 2, 0))?
            .flatten_all()?
            .to_dtype(DType::U8)?
            .to_vec1()?;
        RgbImage::from_raw(w as u32, h as u32, data)
            .ok_or_else(|| Error::Image("TAESD preview size mismatch".into()))
    }
}

/// Whether `dir` is a diffusers `AutoencoderTiny` folder with weights.
fn is_diffusers_tiny(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return false;
    };
    let class = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("_class_name")?.as_str().map(str::to_string));
    class.as_deref() == Some("AutoencoderTiny")
        && dir.join("diffusion_pytorch_model.safetensors").is_file()
}

/// The TAESD candidate directly in `dir`: `taesd[xl]_decoder.safetensors`, or a diffusers
/// folder `taesd[xl]/`.
fn taesd_in(dir: &Path, name: &str) -> Option<PathBuf> {
    let file = dir.join(format!("{name}_decoder.safetensors"));
    if file.is_file() {
        return Some(file);
    }
    let folder = dir.join(name);
    is_diffusers_tiny(&folder).then_some(folder)
}

/// Finds TAESD decoder weights (`taesdxl` for SDXL, `taesd` otherwise) in `model_dirs` or
/// their immediate subfolders: a single `taesd[xl]_decoder.safetensors` file or a diffusers
/// `AutoencoderTiny` folder named `taesd[xl]`. Earlier dirs win; the dir itself beats its
/// subfolders (visited in name order).
pub fn find_taesd(model_dirs: &[PathBuf], sdxl: bool) -> Option<PathBuf> {
    let name = if sdxl { "taesdxl" } else { "taesd" };
    for dir in model_dirs {
        if let Some(found) = taesd_in(dir, name) {
            return Some(found);
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        if let Some(found) = subdirs.iter().find_map(|d| taesd_in(d, name)) {
            return Some(found);
        }
    }
    None
}
