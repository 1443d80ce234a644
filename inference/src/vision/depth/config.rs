//! Depth Anything configuration: transformers' `config.json` (`DepthAnythingConfig` with a
//! `dinov2` backbone config) and `preprocessor_config.json` (`DPTImageProcessor`), each in two
//! steps: a serde mirror with transformers' defaults, then a checked runtime config.

use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The DINOv2 backbone (transformers `Dinov2Config`, defaults as `DepthAnythingConfig` sets them).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct BackboneConfig {
    /// Token width (384 ViT-S, 768 ViT-B, 1024 ViT-L).
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width = `hidden_size · mlp_ratio` unless `intermediate_size` says otherwise.
    pub mlp_ratio: f64,
    /// Side of the square image the position embeddings were trained for.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// Hidden states handed to the neck (1-based layer numbers; 0 = embeddings).
    pub out_indices: Vec<usize>,
    /// The same as stage names (`stageN`), used when `out_indices` is absent.
    pub out_features: Vec<String>,
    /// Final layer norm on each selected hidden state.
    pub apply_layernorm: bool,
    /// Must be false (Depth Anything reshapes in the neck).
    pub reshape_hidden_states: bool,
    /// SwiGLU MLP (ViT-g only): not supported.
    pub use_swiglu_ffn: bool,
    /// Activation of the MLP: "gelu" only.
    pub hidden_act: String,
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig {
            hidden_size: 384,
            num_hidden_layers: 12,
            num_attention_heads: 6,
            mlp_ratio: 4.0,
            image_size: 518,
            patch_size: 14,
            num_channels: 3,
            layer_norm_eps: 1e-6,
            out_indices: Vec::new(),
            out_features: Vec::new(),
            apply_layernorm: true,
            reshape_hidden_states: false,
            use_swiglu_ffn: false,
            hidden_act: "gelu".into(),
        }
    }
}

impl BackboneConfig {
    /// MLP hidden width.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }
}

/// transformers `DepthAnythingConfig`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DepthConfig {
    /// "depth_anything".
    pub model_type: String,
    /// The DINOv2 backbone.
    pub backbone_config: BackboneConfig,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Width of the backbone features entering the neck.
    pub reassemble_hidden_size: usize,
    /// Up/down-sampling of each reassembled feature map (4, 2, 1, 0.5).
    pub reassemble_factors: Vec<f64>,
    /// Channels of each reassembled feature map.
    pub neck_hidden_sizes: Vec<usize>,
    /// Channels of the fusion stage.
    pub fusion_hidden_size: usize,
    /// Fused map the head reads (−1 = the last).
    pub head_in_index: i64,
    /// Channels of the head's second convolution.
    pub head_hidden_size: usize,
    /// "relative" (ReLU) or "metric" (sigmoid · max_depth).
    pub depth_estimation_type: String,
    /// Scale of the head's output.
    pub max_depth: Option<f64>,
}

impl Default for DepthConfig {
    fn default() -> Self {
        DepthConfig {
            model_type: "depth_anything".into(),
            backbone_config: BackboneConfig::default(),
            patch_size: 14,
            reassemble_hidden_size: 384,
            reassemble_factors: vec![4.0, 2.0, 1.0, 0.5],
            neck_hidden_sizes: vec![48, 96, 192, 384],
            fusion_hidden_size: 64,
            head_in_index: -1,
            head_hidden_size: 32,
            depth_estimation_type: "relative".into(),
            max_depth: None,
        }
    }
}

fn bad_config(detail: impl Into<String>, path: &Path) -> Error {
    Error::UnknownCheckpoint {
        detail: format!("Depth Anything config: {}", detail.into()),
        path: path.to_path_buf(),
    }
}

impl DepthConfig {
    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(e, path))?;
        let mut cfg: DepthConfig = serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
            format: "config.json",
            detail: e.to_string(),
            path: path.to_path_buf(),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Validates the combination and fills in `out_indices` from `out_features` (or the
    /// Depth Anything default, the last four layers).
    pub fn check(&mut self, path: &Path) -> Result<()> {
        if self.model_type != "depth_anything" {
            return Err(bad_config(
                format!(
                    "model_type is {:?}, not \"depth_anything\"",
                    self.model_type
                ),
                path,
            ));
        }
        let bb = &mut self.backbone_config;
        if bb.out_indices.is_empty() {
            bb.out_indices = bb
                .out_features
                .iter()
                .filter_map(|f| f.strip_prefix("stage")?.parse().ok())
                .collect();
        }
        if bb.out_indices.is_empty() {
            let n = bb.num_hidden_layers;
            bb.out_indices = (n.saturating_sub(3)..=n).collect();
        }
        let n_maps = self.neck_hidden_sizes.len();
        let problems = [
            (
                bb.use_swiglu_ffn,
                "SwiGLU backbones (ViT-g) are not supported".to_string(),
            ),
            (
                bb.reshape_hidden_states,
                "reshape_hidden_states must be false".into(),
            ),
            (
                bb.hidden_act != "gelu",
                format!("activation {:?} (only gelu)", bb.hidden_act),
            ),
            (
                bb.num_attention_heads == 0
                    || !bb.hidden_size.is_multiple_of(bb.num_attention_heads),
                "hidden_size is not a multiple of num_attention_heads".into(),
            ),
            (
                bb.patch_size == 0 || bb.patch_size != self.patch_size,
                "backbone and model patch sizes differ".into(),
            ),
            (
                bb.out_indices.len() != n_maps || self.reassemble_factors.len() != n_maps,
                "out_indices, neck_hidden_sizes and reassemble_factors need one entry each".into(),
            ),
            (
                bb.out_indices.iter().any(|&i| i > bb.num_hidden_layers),
                "an out index is beyond the last layer".into(),
            ),
            (
                self.reassemble_hidden_size != bb.hidden_size,
                "reassemble_hidden_size differs from the backbone width".into(),
            ),
            (n_maps == 0, "no feature maps".into()),
            (
                !matches!(self.depth_estimation_type.as_str(), "relative" | "metric"),
                format!("depth_estimation_type {:?}", self.depth_estimation_type),
            ),
            (
                self.head_in_index >= n_maps as i64 || self.head_in_index < -(n_maps as i64),
                "head_in_index out of range".into(),
            ),
        ];
        if let Some((_, why)) = problems.into_iter().find(|(bad, _)| *bad) {
            return Err(bad_config(why, path));
        }
        Ok(())
    }
}

/// transformers `DPTImageProcessor` settings (`preprocessor_config.json`), defaults as in
/// `depth-anything/Depth-Anything-V2-Small-hf`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Target size before the aspect and multiple rules.
    pub size: Size,
    /// Keep the aspect ratio (scale both sides by the factor closest to 1).
    pub keep_aspect_ratio: bool,
    /// Round each side to a multiple of this.
    pub ensure_multiple_of: usize,
    /// Resize at all.
    pub do_resize: bool,
    /// Multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// 1/255.
    pub rescale_factor: f64,
    /// Subtract mean, divide by std.
    pub do_normalize: bool,
    /// ImageNet mean.
    pub image_mean: Vec<f64>,
    /// ImageNet std.
    pub image_std: Vec<f64>,
    /// PIL filter id (3 = bicubic).
    pub resample: u32,
    /// Padding to a multiple of `size_divisor` (false for Depth Anything).
    pub do_pad: bool,
}

/// `{"height": …, "width": …}`.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Size {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            size: Size {
                height: 518,
                width: 518,
            },
            keep_aspect_ratio: true,
            ensure_multiple_of: 14,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: vec![0.485, 0.456, 0.406],
            image_std: vec![0.229, 0.224, 0.225],
            resample: 3,
            do_pad: false,
        }
    }
}

impl ProcessorConfig {
    /// Reads `preprocessor_config.json` when it exists (the defaults otherwise).
    pub fn load_or_default(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Ok(ProcessorConfig::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(e, path))?;
        let cfg: ProcessorConfig = serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
            format: "preprocessor_config.json",
            detail: e.to_string(),
            path: path.to_path_buf(),
        })?;
        let bad = |why: &str| bad_config(format!("preprocessor: {why}"), path);
        if cfg.image_mean.len() != 3 || cfg.image_std.len() != 3 {
            return Err(bad("image_mean and image_std need three values"));
        }
        if cfg.image_std.contains(&0.0) {
            return Err(bad("image_std has a zero"));
        }
        if cfg.do_pad {
            return Err(bad("do_pad is not supported"));
        }
        if cfg.size.height == 0 || cfg.size.width == 0 || cfg.ensure_multiple_of == 0 {
            return Err(bad("size and ensure_multiple_of must be positive"));
        }
        Ok(cfg)
    }

    /// The network input size `(height, width)` for an image of `(height, width)`:
    /// transformers' `get_resize_output_image_size` (DPT).
    pub fn input_size(&self, height: usize, width: usize) -> (usize, usize) {
        if !self.do_resize {
            return (height, width);
        }
        let multiple = self.ensure_multiple_of as f64;
        let constrain = |value: f64| -> usize {
            // Python's round() (half to even) of value / multiple.
            let x = round_half_even(value / multiple) * multiple;
            let x = if x < 0.0 {
                (value / multiple).ceil() * multiple
            } else {
                x
            };
            x as usize
        };
        let mut scale_h = self.size.height as f64 / height as f64;
        let mut scale_w = self.size.width as f64 / width as f64;
        if self.keep_aspect_ratio {
            if (1.0 - scale_w).abs() < (1.0 - scale_h).abs() {
                scale_h = scale_w;
            } else {
                scale_w = scale_h;
            }
        }
        (
            constrain(scale_h * height as f64),
            constrain(scale_w * width as f64),
        )
    }
}

/// Python 3's `round(x)` for finite `x`: to nearest, ties to even.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_follow_transformers() {
        let p = ProcessorConfig::default();
        // Upscaling keeps the side that changes least (the long side ends at 518).
        assert_eq!(p.input_size(64, 64), (518, 518));
        assert_eq!(p.input_size(64, 96), (350, 518));
        assert_eq!(p.input_size(192, 256), (392, 518));
        // Downscaling likewise: 600×360 → 518 wide.
        assert_eq!(p.input_size(360, 600), (308, 518));
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(-0.4), 0.0);
    }
}
