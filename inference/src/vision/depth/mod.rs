//! Depth Anything (V1/V2) relative depth for ControlNet depth guides: transformers'
//! `DepthAnythingForDepthEstimation` (DINOv2 ViT-S/B/L backbone + DPT head) loaded from the
//! Hugging Face layout (`depth-anything/Depth-Anything-V2-Small-hf`: `config.json`,
//! `model.safetensors`, `preprocessor_config.json`).
//!
//! The original repository's layout (`pretrained.…`/`depth_head.…` keys, one safetensors file,
//! e.g. `depth_anything_v2_vits_fp32.safetensors`) loads too ([`original`]), preprocessed as the
//! transformers version.
//!
//! The guide follows transformers' `depth-estimation` pipeline: `DPTImageProcessor`
//! preprocessing (keep-aspect resize to multiples of 14 with Pillow's bicubic, ImageNet
//! normalisation), the network, `post_process_depth_estimation` (bicubic back to the input
//! size), then min-max normalisation to 0–255 (truncated, as `astype("uint8")`).

pub mod config;
mod dinov2;
mod dpt;
pub mod original;

use crate::io::weights::Weights;
use crate::vision::interpolate::{Mode, interpolate_planes};
use crate::vision::resample::{PilFilter, resize_like_pil};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use config::{DepthConfig, ProcessorConfig};
use dinov2::Dinov2Backbone;
use dpt::DptDecoder;
use image::{GrayImage, RgbImage};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The weights file of a Depth Anything folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A loaded Depth Anything model.
#[derive(Debug)]
pub struct DepthAnything {
    backbone: Dinov2Backbone,
    decoder: DptDecoder,
    processor: ProcessorConfig,
    patch_size: usize,
    device: Device,
}

/// The folder and weights file of a Depth Anything model given as a folder or as its
/// `model.safetensors`.
fn model_files(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.to_path_buf(), path.join(WEIGHTS_FILE))
    } else {
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (folder, path.to_path_buf())
    }
}

/// Whether `folder` holds a transformers Depth Anything model (`config.json` with
/// `model_type` "depth_anything", and `model.safetensors`).
pub fn is_depth_anything_folder(folder: &Path) -> bool {
    if !folder.join(WEIGHTS_FILE).is_file() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(folder.join("config.json")) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("model_type")?.as_str().map(|s| s == "depth_anything"))
        .unwrap_or(false)
}

impl DepthAnything {
    /// Loads a transformers-layout model from its folder (or its `model.safetensors`, with
    /// `config.json` beside it).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (folder, weights) = model_files(path);
        let st = crate::io::weights::open_safetensors(std::slice::from_ref(&weights))?;
        if st.get(original::MARKER).is_ok() {
            // The original repository's layout: config from the shapes, transformers' names.
            let (cfg, map) = original::read(&st, &weights)?;
            let mapped = Weights::mapped(Arc::new(st), map, "depth anything");
            let vb = mapped.var_builder(DType::F32, device);
            return Self::build(vb, &cfg, ProcessorConfig::default(), device);
        }
        let config_path = folder.join("config.json");
        if !config_path.is_file() {
            return Err(Error::UnknownCheckpoint {
                detail: "Depth Anything needs the config.json of its Hugging Face folder next to \
                         model.safetensors (e.g. depth-anything/Depth-Anything-V2-Small-hf)"
                    .into(),
                path: path.to_path_buf(),
            });
        }
        let cfg = DepthConfig::load(&config_path)?;
        let processor = ProcessorConfig::load_or_default(&folder.join("preprocessor_config.json"))?;
        let vb = VarBuilder::from_backend(Box::new(st), DType::F32, device.clone());
        Self::build(vb, &cfg, processor, device)
    }

    fn build(
        vb: VarBuilder,
        cfg: &DepthConfig,
        processor: ProcessorConfig,
        device: &Device,
    ) -> Result<Self> {
        let backbone = Dinov2Backbone::new(vb.pp("backbone"), &cfg.backbone_config)?;
        let decoder = DptDecoder::new(vb.clone(), cfg)?;
        Ok(DepthAnything {
            backbone,
            decoder,
            processor,
            patch_size: cfg.patch_size,
            device: device.clone(),
        })
    }

    /// The normalised network input `[1, 3, h, w]` for `image`.
    pub fn pixel_values(&self, image: &RgbImage) -> Result<Tensor> {
        let (height, width) = (image.height() as usize, image.width() as usize);
        let (in_h, in_w) = self.processor.input_size(height, width);
        if in_h < self.patch_size || in_w < self.patch_size {
            return Err(Error::InvalidArgument(format!(
                "image {width}x{height} is too small or too narrow for depth estimation"
            )));
        }
        let filter = match self.processor.resample {
            1 => PilFilter::Lanczos,
            _ => PilFilter::Bicubic,
        };
        let resized = if (in_h, in_w) == (height, width) {
            image.clone()
        } else {
            resize_like_pil(image, in_w as u32, in_h as u32, filter)
        };
        let p = &self.processor;
        let plane = in_h * in_w;
        let mut data = vec![0f32; 3 * plane];
        for (i, pixel) in resized.pixels().enumerate() {
            for c in 0..3 {
                let mut v = f32::from(pixel.0[c]);
                if p.do_rescale {
                    v *= p.rescale_factor as f32;
                }
                if p.do_normalize {
                    let mean = p.image_mean.get(c).copied().unwrap_or(0.0) as f32;
                    let std = p.image_std.get(c).copied().unwrap_or(1.0) as f32;
                    v = (v - mean) / std;
                }
                data[c * plane + i] = v;
            }
        }
        Ok(Tensor::from_vec(data, (1, 3, in_h, in_w), &self.device)?)
    }

    /// The network's raw depth `[h, w]` at its input size for normalised pixels.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = pixels.dims4()?;
        let (patch_h, patch_w) = (h / self.patch_size, w / self.patch_size);
        let hidden = self.backbone.forward(pixels)?;
        Ok(self
            .decoder
            .forward(&hidden, patch_h, patch_w)?
            .squeeze(0)?)
    }

    /// Relative depth at the image's size (larger = nearer), as
    /// `post_process_depth_estimation` returns it: row-major `height × width` floats.
    pub fn predict(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let pixels = self.pixel_values(image)?;
        let depth = self.forward(&pixels)?;
        let (h, w) = depth.dims2()?;
        let data = depth.flatten_all()?.to_vec1::<f32>()?;
        let size = (image.height() as usize, image.width() as usize);
        Ok(interpolate_planes(
            &data,
            1,
            (h, w),
            size,
            Mode::Bicubic,
            false,
        ))
    }

    /// The depth guide: [`DepthAnything::predict`] min-max normalised to 0–255 (near = white).
    pub fn guide(&self, image: &RgbImage) -> Result<GrayImage> {
        let depth = self.predict(image)?;
        Ok(normalise_to_gray(&depth, image.width(), image.height()))
    }
}

/// transformers' depth-estimation pipeline: `(d - min) / (max - min) * 255` truncated to u8
/// (all black when the map is flat).
pub fn normalise_to_gray(depth: &[f32], width: u32, height: u32) -> GrayImage {
    let (min, max) = depth
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = max - min;
    let pixels = depth
        .iter()
        .map(|&v| {
            if range > 0.0 && range.is_finite() {
                (((v - min) / range) * 255.0).clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect();
    GrayImage::from_raw(width, height, pixels).unwrap_or_else(|| GrayImage::new(width, height))
}
