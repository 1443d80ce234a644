//! IP-Adapter image projections, loaded from the original `image_proj.*` keys: the plain
//! `ImageProjection` (Linear to T·C tokens + LayerNorm) and the Plus Resampler (diffusers
//! `IPAdapterPlusImageProjection`: learned latents attend to the encoder's hidden states through
//! 4 Perceiver blocks, then `proj_out` and `norm_out`).

use crate::{Error, Result};
use candle_core::{D, Tensor};
use candle_nn::{LayerNorm, Linear, Module, VarBuilder};

/// Head width of the Resampler's attention (fixed at 64 in the released models and diffusers).
const DIM_HEAD: usize = 64;

/// Plain IP-Adapter projection: `image_embeds [B, E]` → `[B, T, C]`.
#[derive(Debug)]
pub struct ImageProjection {
    proj: Linear,
    norm: LayerNorm,
    tokens: usize,
    context_dim: usize,
    embed_dim: usize,
}

impl ImageProjection {
    /// `vb` at `image_proj`; `proj.weight [T·C, E]`, `norm.weight [C]`.
    pub fn new(vb: VarBuilder, proj_shape: (usize, usize), context_dim: usize) -> Result<Self> {
        let (rows, embed_dim) = proj_shape;
        if context_dim == 0 || !rows.is_multiple_of(context_dim) {
            return Err(Error::InvalidArgument(format!(
                "IP-Adapter image projection has {rows} outputs, not a multiple of its \
                 {context_dim}-wide tokens"
            )));
        }
        Ok(ImageProjection {
            proj: candle_nn::linear(embed_dim, rows, vb.pp("proj"))?,
            norm: candle_nn::layer_norm(context_dim, 1e-5, vb.pp("norm"))?,
            tokens: rows / context_dim,
            context_dim,
            embed_dim,
        })
    }

    /// Width of the `image_embeds` it reads.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// Image tokens of `image_embeds [B, E]`.
    pub fn forward(&self, image_embeds: &Tensor) -> Result<Tensor> {
        let b = image_embeds.dim(0)?;
        let x = self
            .proj
            .forward(image_embeds)?
            .reshape((b, self.tokens, self.context_dim))?;
        Ok(self.norm.forward(&x)?)
    }
}

/// One Resampler block: `PerceiverAttention` (`layers.i.0`) and a feed-forward (`layers.i.1`).
#[derive(Debug)]
struct ResamplerBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    to_q: Linear,
    to_kv: Linear,
    to_out: Linear,
    ff_norm: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    heads: usize,
}

impl ResamplerBlock {
    fn new(vb: VarBuilder, dim: usize, heads: usize) -> Result<Self> {
        let inner = heads * DIM_HEAD;
        let attn = vb.pp("0");
        let ff = vb.pp("1");
        Ok(ResamplerBlock {
            norm1: candle_nn::layer_norm(dim, 1e-5, attn.pp("norm1"))?,
            norm2: candle_nn::layer_norm(dim, 1e-5, attn.pp("norm2"))?,
            to_q: candle_nn::linear_no_bias(dim, inner, attn.pp("to_q"))?,
            to_kv: candle_nn::linear_no_bias(dim, 2 * inner, attn.pp("to_kv"))?,
            to_out: candle_nn::linear_no_bias(inner, dim, attn.pp("to_out"))?,
            ff_norm: candle_nn::layer_norm(dim, 1e-5, ff.pp("0"))?,
            ff_in: candle_nn::linear_no_bias(dim, 4 * dim, ff.pp("1"))?,
            ff_out: candle_nn::linear_no_bias(4 * dim, dim, ff.pp("3"))?,
            heads,
        })
    }

    /// `x [B, N, D]` (projected image features), `latents [B, Q, D]`.
    fn forward(&self, x: &Tensor, latents: &Tensor) -> Result<Tensor> {
        let x_n = self.norm1.forward(x)?;
        let lat_n = self.norm2.forward(latents)?;
        let (b, q_len, _) = lat_n.dims3()?;
        let kv_in = Tensor::cat(&[&x_n, &lat_n], 1)?;
        let kv_len = kv_in.dim(1)?;
        let inner = self.heads * DIM_HEAD;
        let kv = self.to_kv.forward(&kv_in)?;
        let heads = |t: Tensor, len: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, self.heads, DIM_HEAD))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = heads(self.to_q.forward(&lat_n)?, q_len)?;
        let k = heads(kv.narrow(D::Minus1, 0, inner)?, kv_len)?;
        let v = heads(kv.narrow(D::Minus1, inner, inner)?, kv_len)?;
        let scores = (q.matmul(&k.t()?)? * (DIM_HEAD as f64).powf(-0.5))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, q_len, inner))?;
        let latents = (self.to_out.forward(&out)? + latents)?;
        let h = self
            .ff_in
            .forward(&self.ff_norm.forward(&latents)?)?
            .gelu_erf()?;
        Ok((self.ff_out.forward(&h)? + latents)?)
    }
}

/// IP-Adapter Plus Resampler: `hidden_states [B, N, E]` → `[B, Q, C]`.
#[derive(Debug)]
pub struct Resampler {
    latents: Tensor,
    proj_in: Linear,
    blocks: Vec<ResamplerBlock>,
    proj_out: Linear,
    norm_out: LayerNorm,
    embed_dim: usize,
}

/// Shapes of a Resampler read from the file.
#[derive(Clone, Copy, Debug)]
pub struct ResamplerShape {
    /// Number of queries (output tokens).
    pub queries: usize,
    /// Inner width D.
    pub dim: usize,
    /// Width of the encoder hidden states it reads.
    pub embed_dim: usize,
    /// Output (context) width C.
    pub output_dim: usize,
    /// Attention heads (`to_q` rows / 64).
    pub heads: usize,
    /// Number of blocks.
    pub depth: usize,
}

impl Resampler {
    /// `vb` at `image_proj`.
    pub fn new(vb: VarBuilder, shape: ResamplerShape) -> Result<Self> {
        let blocks = (0..shape.depth)
            .map(|i| ResamplerBlock::new(vb.pp("layers").pp(i), shape.dim, shape.heads))
            .collect::<Result<Vec<_>>>()?;
        Ok(Resampler {
            latents: vb.get((1, shape.queries, shape.dim), "latents")?,
            proj_in: candle_nn::linear(shape.embed_dim, shape.dim, vb.pp("proj_in"))?,
            blocks,
            proj_out: candle_nn::linear(shape.dim, shape.output_dim, vb.pp("proj_out"))?,
            norm_out: candle_nn::layer_norm(shape.output_dim, 1e-5, vb.pp("norm_out"))?,
            embed_dim: shape.embed_dim,
        })
    }

    /// Width of the encoder hidden states it reads.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// Image tokens of encoder hidden states `[B, N, E]`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let b = hidden.dim(0)?;
        let mut latents = self.latents.repeat((b, 1, 1))?;
        let x = self.proj_in.forward(hidden)?;
        for block in &self.blocks {
            latents = block.forward(&x, &latents)?;
        }
        Ok(self.norm_out.forward(&self.proj_out.forward(&latents)?)?)
    }
}
