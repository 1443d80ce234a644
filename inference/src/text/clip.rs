//! CLIP text encoders in the transformers layout (`CLIPTextModel`, `CLIPTextModelWithProjection`).
//!
//! Covers CLIP ViT-L/14 (quick_gelu) and OpenCLIP ViT-H/bigG converted to HF names (exact-erf
//! gelu). The model returns every hidden state so callers can pick SD1's last layer with final
//! LayerNorm, SDXL's penultimate layer without it, or a clip-skipped layer.

use crate::kernels::linear::Linear;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

/// transformers `CLIPTextConfig` fields Kiln uses (`config.json` of a text encoder folder).
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Vocabulary size (49408).
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Number of positions (77).
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (CLIP-L) or `gelu` (OpenCLIP).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Output size of `text_projection` (WithProjection models).
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

fn default_vocab() -> usize {
    49408
}
fn default_positions() -> usize {
    77
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl ClipTextConfig {
    /// Parses a transformers `config.json` (unknown keys ignored) and checks it.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let config: ClipTextConfig = serde_json::from_value(crate::io::model::without_nulls(value))
            .map_err(|e| Error::InvalidArgument(format!("text encoder config: {e}")))?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(Error::InvalidArgument(format!(
                "text encoder config: hidden_size {} is not divisible by {} heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if !matches!(config.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(Error::InvalidArgument(format!(
                "text encoder config: unsupported activation {:?}",
                config.hidden_act
            )));
        }
        Ok(config)
    }
}

#[derive(Debug)]
struct ClipAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

impl ClipAttention {
    fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let d = config.hidden_size;
        Ok(ClipAttention {
            q_proj: crate::kernels::linear::linear(d, d, vb.pp("q_proj"))?,
            k_proj: crate::kernels::linear::linear(d, d, vb.pp("k_proj"))?,
            v_proj: crate::kernels::linear::linear(d, d, vb.pp("v_proj"))?,
            out_proj: crate::kernels::linear::linear(d, d, vb.pp("out_proj"))?,
            heads: config.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor, causal_mask: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, n, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let scale = (head_dim as f64).powf(-0.5);
        let q = split(self.q_proj.forward(x)?)?;
        let k = split(self.k_proj.forward(x)?)?;
        let v = split(self.v_proj.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(causal_mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
        Ok(self.out_proj.forward(&out)?)
    }
}

#[derive(Debug)]
struct ClipLayer {
    layer_norm1: LayerNorm,
    self_attn: ClipAttention,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    quick_gelu: bool,
}

impl ClipLayer {
    fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        Ok(ClipLayer {
            layer_norm1: candle_nn::layer_norm(d, eps, vb.pp("layer_norm1"))?,
            self_attn: ClipAttention::new(vb.pp("self_attn"), config)?,
            layer_norm2: candle_nn::layer_norm(d, eps, vb.pp("layer_norm2"))?,
            fc1: crate::kernels::linear::linear(
                d,
                config.intermediate_size,
                vb.pp("mlp").pp("fc1"),
            )?,
            fc2: crate::kernels::linear::linear(
                config.intermediate_size,
                d,
                vb.pp("mlp").pp("fc2"),
            )?,
            quick_gelu: config.hidden_act == "quick_gelu",
        })
    }

    fn forward(&self, x: &Tensor, causal_mask: &Tensor) -> Result<Tensor> {
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(x)?, causal_mask)?;
        let x = (x + h)?;
        let h = self.fc1.forward(&self.layer_norm2.forward(&x)?)?;
        let h = if self.quick_gelu {
            (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
        } else {
            h.gelu_erf()?
        };
        Ok((x + self.fc2.forward(&h)?)?)
    }
}

/// Output of one text-encoder pass.
#[derive(Debug)]
pub struct ClipOutput {
    /// `hidden_states[0]` = embeddings, `hidden_states[k]` = output of layer k (no final LN).
    pub hidden_states: Vec<Tensor>,
    /// Final LayerNorm applied to the last hidden state (`last_hidden_state`).
    pub last_hidden_state: Tensor,
    /// `text_projection(final_ln(last)[eos])` for WithProjection models, else the pooled row.
    pub pooled: Tensor,
}

/// A CLIP text transformer.
#[derive(Debug)]
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<ClipLayer>,
    final_layer_norm: LayerNorm,
    text_projection: Option<Linear>,
    config: ClipTextConfig,
}

/// Token id that marks the end of text (the pooled position is its first occurrence).
pub const EOS_TOKEN: u32 = 49407;

impl ClipTextModel {
    /// Loads from weights under HF names (`text_model.*`, optional `text_projection`).
    /// Files written by transformers 5.x for `CLIPTextModel` omit the `text_model.` level;
    /// both layouts are accepted.
    pub fn new(vb: VarBuilder, config: &ClipTextConfig, with_projection: bool) -> Result<Self> {
        let tm = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb.clone()
        };
        let d = config.hidden_size;
        let emb = tm.pp("embeddings");
        let token_embedding =
            candle_nn::embedding(config.vocab_size, d, emb.pp("token_embedding"))?;
        let position_embedding = emb
            .pp("position_embedding")
            .get((config.max_position_embeddings, d), "weight")?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| ClipLayer::new(tm.pp("encoder").pp("layers").pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm =
            candle_nn::layer_norm(d, config.layer_norm_eps, tm.pp("final_layer_norm"))?;
        let text_projection = match (with_projection, config.projection_dim) {
            (true, Some(p)) => Some(crate::kernels::linear::linear_no_bias(
                d,
                p,
                vb.pp("text_projection"),
            )?),
            (true, None) => {
                return Err(Error::InvalidArgument(
                    "text encoder 2 config lacks projection_dim".into(),
                ));
            }
            (false, _) => None,
        };
        Ok(ClipTextModel {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm,
            text_projection,
            config: config.clone(),
        })
    }

    /// Applies the final LayerNorm (for clip-skipped hidden states).
    pub fn final_layer_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.final_layer_norm.forward(hidden)?)
    }

    /// Output width of `text_projection`, if the model has one.
    pub fn projection_dim(&self) -> Option<usize> {
        self.text_projection
            .as_ref()
            .and(self.config.projection_dim)
    }

    /// Hidden width.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Encodes a batch of token rows (`[B, n]`, n ≤ 77); all layers run because the pooled
    /// output needs the last one.
    pub fn forward(&self, tokens: &[Vec<u32>], device: &Device) -> Result<ClipOutput> {
        let b = tokens.len();
        let n = tokens.first().map(Vec::len).unwrap_or(0);
        if n == 0 || n > self.config.max_position_embeddings || tokens.iter().any(|t| t.len() != n)
        {
            return Err(Error::InvalidArgument(format!(
                "text encoder needs rows of equal length ≤ {}",
                self.config.max_position_embeddings
            )));
        }
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (b, n), device)?;
        let positions = self.position_embedding.narrow(0, 0, n)?;
        let mut x = self
            .token_embedding
            .forward(&ids)?
            .broadcast_add(&positions.to_dtype(self.token_embedding.embeddings().dtype())?)?;
        let mask = causal_mask(n, x.dtype(), device)?;
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        hidden_states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(&x, &mask)?;
            hidden_states.push(x.clone());
        }
        let last_hidden_state = self.final_layer_norm.forward(&x)?;
        let mut pooled_rows = Vec::with_capacity(b);
        for (row, ids) in tokens.iter().enumerate() {
            let eos = ids.iter().position(|&t| t == EOS_TOKEN).unwrap_or(n - 1);
            pooled_rows.push(last_hidden_state.get(row)?.get(eos)?);
        }
        let pooled = Tensor::stack(&pooled_rows, 0)?;
        let pooled = match &self.text_projection {
            Some(p) => p.forward(&pooled)?,
            None => pooled,
        };
        Ok(ClipOutput {
            hidden_states,
            last_hidden_state,
            pooled,
        })
    }
}

fn causal_mask(n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (n, n), device)?.to_dtype(dtype)?)
}
