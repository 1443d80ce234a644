//! transformers `Dinov2Backbone` (ViT with a CLS token, layer scale and bicubic-interpolated
//! position embeddings), the encoder of Depth Anything. Field names follow the checkpoint keys
//! under `backbone.` (`embeddings.…`, `encoder.layer.N.…`, `layernorm`).

use super::config::BackboneConfig;
use crate::Result;
use crate::kernels::conv::Conv2d;
use crate::vision::interpolate::{Mode, interpolate};
use crate::vision::layers::conv2d;
use candle_core::Tensor;
use candle_nn::{
    Conv2dConfig, LayerNorm, LayerNormConfig, Linear, Module, VarBuilder, layer_norm, linear,
};

/// transformers `Dinov2Embeddings` (the mask token is never used at inference).
#[derive(Debug)]
struct Embeddings {
    cls_token: Tensor,
    position_embeddings: Tensor,
    projection: Conv2d,
    patch_size: usize,
}

impl Embeddings {
    fn new(vb: VarBuilder, cfg: &BackboneConfig) -> Result<Self> {
        let grid = cfg.image_size / cfg.patch_size;
        let cls_token = vb.get((1, 1, cfg.hidden_size), "cls_token")?;
        let position_embeddings =
            vb.get((1, grid * grid + 1, cfg.hidden_size), "position_embeddings")?;
        let projection = conv2d(
            cfg.num_channels,
            cfg.hidden_size,
            cfg.patch_size,
            Conv2dConfig {
                stride: cfg.patch_size,
                ..Default::default()
            },
            vb.pp("patch_embeddings").pp("projection"),
        )?;
        Ok(Embeddings {
            cls_token,
            position_embeddings,
            projection,
            patch_size: cfg.patch_size,
        })
    }

    /// `interpolate_pos_encoding`: the stored grid resized (bicubic, float32) to the input's.
    fn position_encoding(&self, patches: usize, height: usize, width: usize) -> Result<Tensor> {
        let (_, n_positions, dim) = self.position_embeddings.dims3()?;
        let n_positions = n_positions - 1;
        if patches == n_positions && height == width {
            return Ok(self.position_embeddings.clone());
        }
        let side = (n_positions as f64).sqrt() as usize;
        let class_pos = self.position_embeddings.narrow(1, 0, 1)?;
        let grid = self
            .position_embeddings
            .narrow(1, 1, n_positions)?
            .reshape((1, side, side, dim))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        let (new_h, new_w) = (height / self.patch_size, width / self.patch_size);
        let grid = interpolate(&grid, (new_h, new_w), Mode::Bicubic, false)?;
        let grid = grid
            .permute((0, 2, 3, 1))?
            .reshape((1, new_h * new_w, dim))?;
        Ok(Tensor::cat(&[class_pos, grid], 1)?)
    }

    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (batch, _, height, width) = pixels.dims4()?;
        let patches = self
            .projection
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let n_patches = patches.dim(1)?;
        let dim = patches.dim(2)?;
        let cls = self.cls_token.broadcast_as((batch, 1, dim))?;
        let embeddings = Tensor::cat(&[&cls, &patches.contiguous()?], 1)?;
        let positions = self.position_encoding(n_patches, height, width)?;
        Ok(embeddings.broadcast_add(&positions)?)
    }
}

/// transformers `Dinov2Attention` (`attention.attention.{query,key,value}`,
/// `attention.output.dense`).
#[derive(Debug)]
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: VarBuilder, cfg: &BackboneConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let inner = vb.pp("attention");
        Ok(Attention {
            query: linear(h, h, inner.pp("query"))?,
            key: linear(h, h, inner.pp("key"))?,
            value: linear(h, h, inner.pp("value"))?,
            dense: linear(h, h, vb.pp("output").pp("dense"))?,
            heads: cfg.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, tokens, dim) = x.dims3()?;
        let head_dim = dim / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((batch, tokens, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let flat = |t: Tensor| t.reshape((batch * self.heads, tokens, head_dim));
        let scale = (head_dim as f64).powf(-0.5);
        // Kiln's blocked attention (exact softmax per row, no N×N matrix at once).
        let out = crate::kernels::attention::attention(&flat(q)?, &flat(k)?, &flat(v)?, scale)?
            .reshape((batch, self.heads, tokens, head_dim))?
            .transpose(1, 2)?
            .reshape((batch, tokens, dim))?;
        Ok(self.dense.forward(&out)?)
    }
}

/// transformers `Dinov2Layer`: pre-norm attention and MLP, each scaled by `layer_scaleN.lambda1`.
#[derive(Debug)]
struct Layer {
    norm1: LayerNorm,
    attention: Attention,
    layer_scale1: Tensor,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_scale2: Tensor,
}

impl Layer {
    fn new(vb: VarBuilder, cfg: &BackboneConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let ln = LayerNormConfig {
            eps: cfg.layer_norm_eps,
            ..Default::default()
        };
        let hidden = cfg.mlp_hidden();
        Ok(Layer {
            norm1: layer_norm(h, ln, vb.pp("norm1"))?,
            attention: Attention::new(vb.pp("attention"), cfg)?,
            layer_scale1: vb.get(h, "layer_scale1.lambda1")?,
            norm2: layer_norm(h, ln, vb.pp("norm2"))?,
            fc1: linear(h, hidden, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(hidden, h, vb.pp("mlp").pp("fc2"))?,
            layer_scale2: vb.get(h, "layer_scale2.lambda1")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let attended = self.attention.forward(&self.norm1.forward(x)?)?;
        let x = (attended.broadcast_mul(&self.layer_scale1)? + x)?;
        let mlp = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?)?;
        Ok((mlp.broadcast_mul(&self.layer_scale2)? + x)?)
    }
}

/// transformers `Dinov2Backbone` with `reshape_hidden_states=False`: the hidden states after
/// the layers in `out_indices` (1-based; 0 = the embeddings), through the final layer norm when
/// `apply_layernorm`.
#[derive(Debug)]
pub struct Dinov2Backbone {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    layernorm: LayerNorm,
    out_indices: Vec<usize>,
    apply_layernorm: bool,
}

impl Dinov2Backbone {
    /// Loads the backbone from `vb` (the `backbone.` prefix).
    pub fn new(vb: VarBuilder, cfg: &BackboneConfig) -> Result<Self> {
        let embeddings = Embeddings::new(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(vb.pp("encoder").pp("layer").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        let layernorm = layer_norm(
            cfg.hidden_size,
            LayerNormConfig {
                eps: cfg.layer_norm_eps,
                ..Default::default()
            },
            vb.pp("layernorm"),
        )?;
        Ok(Dinov2Backbone {
            embeddings,
            layers,
            layernorm,
            out_indices: cfg.out_indices.clone(),
            apply_layernorm: cfg.apply_layernorm,
        })
    }

    /// The selected hidden states `[B, 1 + patches, hidden]` of normalised pixels `[B, 3, H, W]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = self.embeddings.forward(pixels)?;
        let mut features = Vec::with_capacity(self.out_indices.len());
        let mut keep = |index: usize, x: &Tensor| -> Result<()> {
            if self.out_indices.contains(&index) {
                features.push(if self.apply_layernorm {
                    self.layernorm.forward(x)?
                } else {
                    x.clone()
                });
            }
            Ok(())
        };
        keep(0, &x)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            keep(i + 1, &x)?;
        }
        // Stage order, whatever the order of `out_indices` (as transformers' stage names).
        Ok(features)
    }
}
