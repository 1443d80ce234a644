//! CLIP vision encoder in the transformers layout (`CLIPVisionModelWithProjection`: a folder
//! with `config.json` + `model.safetensors`) and transformers' `CLIPImageProcessor` (shortest
//! side to the model's image size with Pillow bicubic, centre crop, `/255`, CLIP mean/std).
//! IP-Adapter uses `image_embeds` (plain) or `hidden_states[-2]` (Plus).

use crate::io::weights::{Weights, open_safetensors};
use crate::vision::resample::{PilFilter, resize_like_pil};
use crate::{Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};
use image::RgbImage;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// OpenAI CLIP normalisation mean (RGB).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP normalisation standard deviation (RGB).
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// transformers `CLIPVisionConfig` fields Kiln uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipVisionConfig {
    /// Width of the residual stream (1280 for ViT-H/14).
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input side in pixels (224).
    pub image_size: usize,
    /// Patch side in pixels (14).
    pub patch_size: usize,
    /// Output size of `visual_projection` (`image_embeds`).
    #[serde(default)]
    pub projection_dim: Option<usize>,
    /// `gelu` (OpenCLIP) or `quick_gelu` (OpenAI CLIP).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_act() -> String {
    "quick_gelu".into()
}

fn default_eps() -> f64 {
    1e-5
}

impl ClipVisionConfig {
    /// Reads a vision `config.json` (or a full `CLIPConfig` with a `vision_config`).
    pub fn from_json(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let value = value.get("vision_config").unwrap_or(value);
        let config: ClipVisionConfig =
            serde_json::from_value(crate::io::model::without_nulls(value)).map_err(|e| {
                Error::InvalidFile {
                    format: "CLIP vision config",
                    detail: e.to_string(),
                    path: path.to_path_buf(),
                }
            })?;
        let bad = |detail: String| Error::InvalidFile {
            format: "CLIP vision config",
            detail,
            path: path.to_path_buf(),
        };
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(format!(
                "hidden_size {} is not divisible by {} heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if config.patch_size == 0
            || config.image_size == 0
            || !config.image_size.is_multiple_of(config.patch_size)
        {
            return Err(bad(format!(
                "image_size {} is not a multiple of patch_size {}",
                config.image_size, config.patch_size
            )));
        }
        if !matches!(config.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(bad(format!(
                "unsupported activation {:?}",
                config.hidden_act
            )));
        }
        Ok(config)
    }
}

#[derive(Debug)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    quick_gelu: bool,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &ClipVisionConfig) -> Result<Self> {
        let d = c.hidden_size;
        let attn = vb.pp("self_attn");
        Ok(EncoderLayer {
            layer_norm1: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            q_proj: candle_nn::linear(d, d, attn.pp("q_proj"))?,
            k_proj: candle_nn::linear(d, d, attn.pp("k_proj"))?,
            v_proj: candle_nn::linear(d, d, attn.pp("v_proj"))?,
            out_proj: candle_nn::linear(d, d, attn.pp("out_proj"))?,
            layer_norm2: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: candle_nn::linear(d, c.intermediate_size, vb.pp("mlp").pp("fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, d, vb.pp("mlp").pp("fc2"))?,
            heads: c.num_attention_heads,
            quick_gelu: c.hidden_act == "quick_gelu",
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let h = self.layer_norm1.forward(x)?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, n, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.q_proj.forward(&h)?)?;
        let k = split(self.k_proj.forward(&h)?)?;
        let v = split(self.v_proj.forward(&h)?)?;
        let scores = (q.matmul(&k.t()?)? * (head_dim as f64).powf(-0.5))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let attn = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
        let x = (x + self.out_proj.forward(&attn)?)?;
        let h = self.fc1.forward(&self.layer_norm2.forward(&x)?)?;
        let h = if self.quick_gelu {
            (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
        } else {
            h.gelu_erf()?
        };
        Ok((x + self.fc2.forward(&h)?)?)
    }
}

/// A CLIP vision transformer with its projection.
#[derive(Debug)]
pub struct ClipVisionModel {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
    visual_projection: Option<Linear>,
    config: ClipVisionConfig,
}

impl ClipVisionModel {
    /// Loads an encoder folder (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let weights_path = dir.join("model.safetensors");
        if !dir.is_dir() || !config_path.is_file() || !weights_path.is_file() {
            return Err(Error::InvalidArgument(format!(
                "not a CLIP image encoder folder (it needs config.json and model.safetensors, \
                 e.g. h94/IP-Adapter `models/image_encoder`, catalog id \
                 `ip-adapter-image-encoder-vit-h`): {dir:?}"
            )));
        }
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(e, &config_path))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
                format: "JSON",
                detail: e.to_string(),
                path: config_path.clone(),
            })?;
        let config = ClipVisionConfig::from_json(&value, &config_path)?;
        let st = Arc::new(open_safetensors(&[weights_path])?);
        let weights = Weights::identity(st, "image_encoder");
        Self::new(weights.var_builder(DType::F32, device), &config)
    }

    /// Builds the model from weights under transformers names (`vision_model.*`,
    /// `visual_projection.weight`; a bare `CLIPVisionModel` without the prefix is accepted).
    pub fn new(vb: VarBuilder, config: &ClipVisionConfig) -> Result<Self> {
        let vm = if vb.contains_tensor("vision_model.embeddings.class_embedding") {
            vb.pp("vision_model")
        } else {
            vb.clone()
        };
        let d = config.hidden_size;
        let emb = vm.pp("embeddings");
        let patches = (config.image_size / config.patch_size).pow(2);
        let patch_embedding = candle_nn::conv2d_no_bias(
            3,
            d,
            config.patch_size,
            Conv2dConfig {
                stride: config.patch_size,
                ..Default::default()
            },
            emb.pp("patch_embedding"),
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::new(vm.pp("encoder").pp("layers").pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        let visual_projection = match config.projection_dim {
            Some(p) if vb.contains_tensor("visual_projection.weight") => {
                Some(candle_nn::linear_no_bias(d, p, vb.pp("visual_projection"))?)
            }
            _ => None,
        };
        Ok(ClipVisionModel {
            class_embedding: emb.get(d, "class_embedding")?,
            patch_embedding,
            position_embedding: emb
                .pp("position_embedding")
                .get((patches + 1, d), "weight")?,
            pre_layrnorm: candle_nn::layer_norm(d, config.layer_norm_eps, vm.pp("pre_layrnorm"))?,
            layers,
            post_layernorm: candle_nn::layer_norm(
                d,
                config.layer_norm_eps,
                vm.pp("post_layernorm"),
            )?,
            visual_projection,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// Embeddings after `pre_layrnorm` (`hidden_states[0]`) of pixels `[B, 3, S, S]`.
    fn embed(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let d = self.config.hidden_size;
        let patches = self
            .patch_embedding
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let class = self.class_embedding.reshape((1, 1, d))?.repeat((b, 1, 1))?;
        let x = Tensor::cat(&[&class, &patches], 1)?
            .broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        Ok(self.pre_layrnorm.forward(&x)?)
    }

    /// `image_embeds`: the projected, post-LayerNormed class token `[B, projection_dim]`.
    pub fn image_embeds(&self, pixels: &Tensor) -> Result<Tensor> {
        let Some(projection) = &self.visual_projection else {
            return Err(Error::InvalidArgument(
                "this image encoder has no visual_projection (a CLIPVisionModelWithProjection is \
                 needed for plain IP-Adapters)"
                    .into(),
            ));
        };
        let mut x = self.embed(pixels)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let pooled = self
            .post_layernorm
            .forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        Ok(projection.forward(&pooled)?)
    }

    /// `hidden_states[-2]`: the output of the second-to-last layer, `[B, tokens, hidden]`.
    pub fn penultimate_hidden_states(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut x = self.embed(pixels)?;
        let keep = self.layers.len().saturating_sub(1);
        for layer in self.layers.iter().take(keep) {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}

/// transformers `CLIPImageProcessor` (PIL backend) for a model of input side `size`:
/// shortest side → `size` (long side `int(size · long / short)`) with Pillow bicubic, centre
/// crop `size × size` (top `(h − size) // 2`), `/255`, `(x − mean) / std`. Returns
/// `[1, 3, size, size]`.
pub fn preprocess(image: &RgbImage, size: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::InvalidArgument(
            "the IP-Adapter image is empty".into(),
        ));
    }
    let s = size as u32;
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
    let (new_w, new_h) = if w <= h { (s, new_long) } else { (new_long, s) };
    let resized = if (new_w, new_h) == (w, h) {
        image.clone()
    } else {
        resize_like_pil(image, new_w, new_h, PilFilter::Bicubic)
    };
    let top = (new_h.saturating_sub(s) / 2) as usize;
    let left = (new_w.saturating_sub(s) / 2) as usize;
    let plane = size * size;
    let mut data = vec![0f32; plane * 3];
    let raw = resized.as_raw();
    let stride = new_w as usize * 3;
    for y in 0..size {
        for x in 0..size {
            for c in 0..3 {
                let v = raw
                    .get((top + y) * stride + (left + x) * 3 + c)
                    .copied()
                    .unwrap_or(0);
                let rescaled = (f64::from(v) * (1.0 / 255.0)) as f32;
                if let Some(slot) = data.get_mut(c * plane + y * size + x) {
                    *slot = (rescaled - CLIP_MEAN[c]) / CLIP_STD[c];
                }
            }
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, size, size), device)?)
}
