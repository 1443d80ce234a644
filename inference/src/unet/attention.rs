//! diffusers `Attention`, `BasicTransformerBlock` and `Transformer2DModel`, with a hook that
//! lets later features (IP-Adapter, InstantID, consistent self-attention) replace any attention
//! layer by its index in diffusers' `attn_processors` order (down → up → mid; attn1 then attn2).

use crate::Result;
use crate::kernels::Precision;
use crate::kernels::attention::multi_head;
use crate::kernels::conv::Conv2d;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use candle_core::{DType, Tensor};
use candle_nn::{LayerNorm, Module, VarBuilder};

/// Where an attention layer sits in the UNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnSite {
    /// Index in diffusers' `attn_processors` order.
    pub index: usize,
    /// `attn2` (cross-attention) rather than `attn1`.
    pub cross: bool,
    /// Which part of the UNet.
    pub part: UNetPart,
}

/// A part of the UNet, with the level for down and up blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UNetPart {
    /// `down_blocks.{level}`.
    Down(usize),
    /// `mid_block`.
    Mid,
    /// `up_blocks.{level}`.
    Up(usize),
}

/// Replaces the default computation of chosen attention layers (regional prompts in
/// `unet::regional`; IP-Adapter and consistent self-attention later).
pub trait AttentionProcessor: Send + Sync {
    /// Returns `Some(output)` to replace the layer's output (after `to_out`), `None` to run the
    /// default. `hidden` is `[B, N, C]` with `N = grid.0 · grid.1` tokens in row-major order of
    /// the layer's `(height, width)` feature grid; `context` is the cross-attention context
    /// (`None` for attn1).
    fn process(
        &self,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        context: Option<&Tensor>,
        grid: (usize, usize),
    ) -> Result<Option<Tensor>>;
}

/// diffusers `Attention` (no bias on q/k/v, bias on `to_out.0`).
#[derive(Debug)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
    upcast: bool,
    /// Products of `attend` in bf16 (the layer was built in bf16 precision) or f32.
    precision: Precision,
    /// Position of this layer.
    pub site: AttnSite,
}

impl Attention {
    /// Loads an attention layer of width `query_dim` reading a context of `context_dim`.
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: usize,
        heads: usize,
        upcast: bool,
        site: AttnSite,
    ) -> Result<Self> {
        let head_dim = query_dim / heads;
        Ok(Attention {
            to_q: crate::kernels::linear::linear_no_bias(query_dim, query_dim, vb.pp("to_q"))?,
            to_k: crate::kernels::linear::linear_no_bias(context_dim, query_dim, vb.pp("to_k"))?,
            to_v: crate::kernels::linear::linear_no_bias(context_dim, query_dim, vb.pp("to_v"))?,
            to_out: crate::kernels::linear::linear(query_dim, query_dim, vb.pp("to_out").pp("0"))?,
            heads,
            head_dim,
            upcast,
            precision: crate::kernels::weight_precision(),
            site,
        })
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Query projection of `[B, N, C]`.
    pub fn query(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.to_q.forward(x)?)
    }

    /// Key and value projections of a context `[B, M, Cc]`.
    pub fn key_value(&self, context: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.to_k.forward(context)?, self.to_v.forward(context)?))
    }

    /// Multi-head scaled dot-product attention of projected `q [B,N,C]`, `k, v [B,M,C]`,
    /// returning `[B, N, C]` before the output projection.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let dtype = q.dtype();
        let scale = (self.head_dim as f64).powf(-0.5);
        if self.upcast && dtype != DType::F32 {
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            let out = multi_head(
                &f32(q)?,
                &f32(k)?,
                &f32(v)?,
                self.heads,
                scale,
                self.precision,
            )?;
            return Ok(out.to_dtype(dtype)?);
        }
        multi_head(q, k, v, self.heads, scale, self.precision)
    }

    /// Output projection.
    pub fn out(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.to_out.forward(x)?)
    }

    /// Default forward: self-attention when `context` is `None`.
    pub fn forward_default(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let q = self.query(x)?;
        let (k, v) = self.key_value(context.unwrap_or(x))?;
        self.out(&self.attend(&q, &k, &v)?)
    }

    fn forward(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        processor: Option<&dyn AttentionProcessor>,
        grid: (usize, usize),
    ) -> Result<Tensor> {
        if let Some(p) = processor
            && let Some(out) = p.process(&self.site, self, x, context, grid)?
        {
            return Ok(out);
        }
        self.forward_default(x, context)
    }
}

/// GEGLU feed-forward: `a, g = split(Linear(C → 8C)); Linear(a · gelu(g))`.
#[derive(Debug)]
struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let inner = dim * 4;
        Ok(FeedForward {
            proj: crate::kernels::linear::linear(dim, inner * 2, vb.pp("net").pp("0").pp("proj"))?,
            out: crate::kernels::linear::linear(inner, dim, vb.pp("net").pp("2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        Ok(self.out.forward(&crate::kernels::elementwise::geglu(&h)?)?)
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward.
#[derive(Debug)]
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl TransformerBlock {
    fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        processor: Option<&dyn AttentionProcessor>,
        grid: (usize, usize),
    ) -> Result<Tensor> {
        let x = (self
            .attn1
            .forward(&self.norm1.forward(x)?, None, processor, grid)?
            + x)?;
        let x = (self
            .attn2
            .forward(&self.norm2.forward(&x)?, Some(context), processor, grid)?
            + &x)?;
        Ok((self.ff.forward(&self.norm3.forward(&x)?)? + &x)?)
    }
}

/// Linear or 1×1-conv projection, depending on `use_linear_projection`.
#[derive(Debug)]
enum Projection {
    Linear(Linear),
    Conv(Conv2d),
}

/// Settings shared by every Transformer2D of a UNet.
#[derive(Clone, Copy, Debug)]
pub struct TransformerConfig {
    /// Context width.
    pub context_dim: usize,
    /// Linear proj_in/out.
    pub linear_projection: bool,
    /// GroupNorm groups.
    pub groups: usize,
    /// Attention in f32.
    pub upcast: bool,
}

/// diffusers `Transformer2DModel` (continuous input).
#[derive(Debug)]
pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl Transformer2D {
    /// Loads a transformer of `depth` blocks; `next_site` is the next attn_processors index and
    /// is advanced by 2 per block.
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        heads: usize,
        depth: usize,
        cfg: TransformerConfig,
        part: UNetPart,
        next_site: &mut usize,
    ) -> Result<Self> {
        let projection = |name: &str| -> Result<Projection> {
            Ok(if cfg.linear_projection {
                Projection::Linear(crate::kernels::linear::linear(
                    channels,
                    channels,
                    vb.pp(name),
                )?)
            } else {
                Projection::Conv(crate::unet::resnet::conv1x1(
                    channels,
                    channels,
                    vb.pp(name),
                )?)
            })
        };
        let mut blocks = Vec::with_capacity(depth);
        for k in 0..depth {
            let bvb = vb.pp("transformer_blocks").pp(k);
            let site1 = AttnSite {
                index: *next_site,
                cross: false,
                part,
            };
            let site2 = AttnSite {
                index: *next_site + 1,
                cross: true,
                part,
            };
            *next_site += 2;
            blocks.push(TransformerBlock {
                norm1: candle_nn::layer_norm(channels, 1e-5, bvb.pp("norm1"))?,
                attn1: Attention::new(
                    bvb.pp("attn1"),
                    channels,
                    channels,
                    heads,
                    cfg.upcast,
                    site1,
                )?,
                norm2: candle_nn::layer_norm(channels, 1e-5, bvb.pp("norm2"))?,
                attn2: Attention::new(
                    bvb.pp("attn2"),
                    channels,
                    cfg.context_dim,
                    heads,
                    cfg.upcast,
                    site2,
                )?,
                norm3: candle_nn::layer_norm(channels, 1e-5, bvb.pp("norm3"))?,
                ff: FeedForward::new(bvb.pp("ff"), channels)?,
            });
        }
        Ok(Transformer2D {
            norm: GroupNorm::new(cfg.groups, channels, 1e-6, vb.pp("norm"))?,
            proj_in: projection("proj_in")?,
            blocks,
            proj_out: projection("proj_out")?,
        })
    }

    /// `x [B,C,H,W]`, `context [B,M,Cc]`.
    pub fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        processor: Option<&dyn AttentionProcessor>,
    ) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.forward(x)?;
        let tokens =
            |t: Tensor| -> Result<Tensor> { Ok(t.permute((0, 2, 3, 1))?.reshape((b, h * w, c))?) };
        let mut hidden = match &self.proj_in {
            Projection::Conv(conv) => tokens(conv.forward(&normed)?)?,
            Projection::Linear(lin) => lin.forward(&tokens(normed)?)?,
        };
        for block in &self.blocks {
            hidden = block.forward(&hidden, context, processor, (h, w))?;
        }
        let spatial = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, h, w, c))?
                .permute((0, 3, 1, 2))?
                .contiguous()?)
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&spatial(hidden)?)?,
            Projection::Linear(lin) => spatial(lin.forward(&hidden)?)?,
        };
        Ok((out + x)?)
    }
}
