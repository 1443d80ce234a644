//! diffusers `TransformerSpatioTemporalModel` (`models/transformers/transformer_temporal.py`):
//! a `BasicTransformerBlock` over the pixels of each frame, then a
//! `TemporalBasicTransformerBlock` over the frames of each pixel, blended by an `AlphaBlender`.
//!
//! Memory stays bounded at 1024×576×25 frames: the spatial block runs on a few frames at a
//! time and the temporal block on a few thousand pixels at a time (both exact, since their
//! rows are independent), so the 8× wide feed-forward activations never exist for the whole
//! clip at once.

use super::blocks::{AlphaBlender, GROUPS};
use crate::Result;
use crate::kernels::linear::Linear;
use crate::kernels::norm::GroupNorm;
use crate::unet::attention::{Attention, AttnSite, UNetPart};
use crate::unet::resnet::timestep_embedding;
use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

/// Feed-forward activations allowed per chunk (f32 values, 8 per token and channel).
const CHUNK_VALUES: usize = 48 << 20;

/// Rows per chunk of at most `budget` activations, for rows of `row_values` each.
fn rows_per_chunk(budget: usize, row_values: usize) -> usize {
    (budget / row_values.max(1)).max(1)
}

/// Runs `f` on slices of at most `chunk` rows of `x` along dimension 0 and concatenates.
fn by_rows(
    x: &Tensor,
    chunk: usize,
    mut f: impl FnMut(&Tensor, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let n = x.dim(0)?;
    if n <= chunk {
        return f(x, 0);
    }
    let mut parts = Vec::with_capacity(n.div_ceil(chunk));
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        parts.push(f(&x.narrow(0, start, len)?, start)?);
        start += len;
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// GEGLU feed-forward (`FeedForward(dim, dim_out, activation_fn="geglu")`, inner = 4·dim).
#[derive(Debug)]
struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    fn new(vb: VarBuilder, dim: usize, dim_out: usize) -> Result<Self> {
        let inner = dim * 4;
        Ok(FeedForward {
            proj: crate::kernels::linear::linear(dim, inner * 2, vb.pp("net").pp("0").pp("proj"))?,
            out: crate::kernels::linear::linear(inner, dim_out, vb.pp("net").pp("2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        Ok(self.out.forward(&crate::kernels::elementwise::geglu(&h)?)?)
    }
}

fn site(cross: bool) -> AttnSite {
    AttnSite {
        index: 0,
        cross,
        part: UNetPart::Mid,
    }
}

/// diffusers `BasicTransformerBlock` (layer norms, self-attention, cross-attention, GEGLU).
#[derive(Debug)]
struct SpatialBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl SpatialBlock {
    fn new(vb: VarBuilder, dim: usize, heads: usize, context_dim: usize) -> Result<Self> {
        Ok(SpatialBlock {
            norm1: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: Attention::new(vb.pp("attn1"), dim, dim, heads, false, site(false))?,
            norm2: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: Attention::new(vb.pp("attn2"), dim, context_dim, heads, false, site(true))?,
            norm3: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff: FeedForward::new(vb.pp("ff"), dim, dim)?,
        })
    }

    /// `x [N, S, C]` (N frames), `context [N, M, Cc]`.
    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = (self.attn1.forward_default(&self.norm1.forward(x)?, None)? + x)?;
        let x = (self
            .attn2
            .forward_default(&self.norm2.forward(&x)?, Some(context))?
            + &x)?;
        Ok((self.ff.forward(&self.norm3.forward(&x)?)? + &x)?)
    }
}

/// diffusers `TemporalBasicTransformerBlock` with `time_mix_inner_dim == dim`.
#[derive(Debug)]
struct TemporalBlock {
    norm_in: LayerNorm,
    ff_in: FeedForward,
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl TemporalBlock {
    fn new(vb: VarBuilder, dim: usize, heads: usize, context_dim: usize) -> Result<Self> {
        Ok(TemporalBlock {
            norm_in: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm_in"))?,
            ff_in: FeedForward::new(vb.pp("ff_in"), dim, dim)?,
            norm1: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: Attention::new(vb.pp("attn1"), dim, dim, heads, false, site(false))?,
            norm2: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: Attention::new(vb.pp("attn2"), dim, context_dim, heads, false, site(true))?,
            norm3: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff: FeedForward::new(vb.pp("ff"), dim, dim)?,
        })
    }

    /// `x [P, F, C]`: the frames of P pixels; `key, value [P, M, C]`: the projected context of
    /// each pixel's clip (the clip's first frame).
    fn forward(&self, x: &Tensor, key: &Tensor, value: &Tensor) -> Result<Tensor> {
        let x = (self.ff_in.forward(&self.norm_in.forward(x)?)? + x)?;
        let x = (self.attn1.forward_default(&self.norm1.forward(&x)?, None)? + &x)?;
        let q = self.attn2.query(&self.norm2.forward(&x)?)?;
        let attended = self.attn2.attend(&q, key, value)?;
        let x = (self.attn2.out(&attended)? + &x)?;
        Ok((self.ff.forward(&self.norm3.forward(&x)?)? + &x)?)
    }
}

/// diffusers `TransformerSpatioTemporalModel` (linear projections, `inner_dim == channels`).
#[derive(Debug)]
pub struct TransformerSpatioTemporal {
    norm: GroupNorm,
    proj_in: Linear,
    blocks: Vec<SpatialBlock>,
    temporal_blocks: Vec<TemporalBlock>,
    time_pos_linear_1: Linear,
    time_pos_linear_2: Linear,
    time_mixer: AlphaBlender,
    proj_out: Linear,
    channels: usize,
}

impl TransformerSpatioTemporal {
    /// Loads a model of `depth` block pairs on `channels` with `heads` heads.
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        heads: usize,
        depth: usize,
        context_dim: usize,
    ) -> Result<Self> {
        let blocks = (0..depth)
            .map(|k| {
                SpatialBlock::new(
                    vb.pp("transformer_blocks").pp(k),
                    channels,
                    heads,
                    context_dim,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let temporal_blocks = (0..depth)
            .map(|k| {
                TemporalBlock::new(
                    vb.pp("temporal_transformer_blocks").pp(k),
                    channels,
                    heads,
                    context_dim,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tpe = vb.pp("time_pos_embed");
        Ok(TransformerSpatioTemporal {
            norm: GroupNorm::new(GROUPS, channels, 1e-6, vb.pp("norm"))?,
            proj_in: crate::kernels::linear::linear(channels, channels, vb.pp("proj_in"))?,
            blocks,
            temporal_blocks,
            time_pos_linear_1: crate::kernels::linear::linear(
                channels,
                channels * 4,
                tpe.pp("linear_1"),
            )?,
            time_pos_linear_2: crate::kernels::linear::linear(
                channels * 4,
                channels,
                tpe.pp("linear_2"),
            )?,
            time_mixer: AlphaBlender::new(vb.pp("time_mixer"), false)?,
            proj_out: crate::kernels::linear::linear(channels, channels, vb.pp("proj_out"))?,
            channels,
        })
    }

    /// `x [B·F, C, H, W]`; `context [B, M, Cc]` (one context per clip, used by every frame;
    /// diffusers repeats it per frame and the temporal blocks read the first frame's copy).
    pub fn forward(&self, x: &Tensor, context: &Tensor, frames: usize) -> Result<Tensor> {
        self.forward_chunked(x, context, frames, CHUNK_VALUES)
    }

    /// [`Self::forward`] with feed-forward chunks of about `chunk_values` activations.
    fn forward_chunked(
        &self,
        x: &Tensor,
        context: &Tensor,
        frames: usize,
        chunk_values: usize,
    ) -> Result<Tensor> {
        let (bf, c, h, w) = x.dims4()?;
        let b = bf / frames.max(1);
        let s = h * w;
        let m = context.dim(1)?;
        let device = x.device();
        let tokens = self
            .norm
            .forward(x)?
            .reshape((bf, c, s))?
            .transpose(1, 2)?
            .contiguous()?;
        let mut hidden = self.proj_in.forward(&tokens)?;

        // Frame-position embedding: sinusoids of 0..F, through time_pos_embed → [F, C].
        let positions: Vec<f32> = (0..frames).map(|f| f as f32).collect();
        let sinusoid = timestep_embedding(&positions, self.channels, true, 0.0, device)?
            .to_dtype(x.dtype())?;
        let frame_emb = self
            .time_pos_linear_2
            .forward(&self.time_pos_linear_1.forward(&sinusoid)?.silu()?)?;
        let frame_emb = frame_emb.unsqueeze(0)?.unsqueeze(2)?; // [1, F, 1, C]

        // Per-frame context for the spatial blocks.
        let frame_context =
            context
                .unsqueeze(1)?
                .repeat((1, frames, 1, 1))?
                .reshape((bf, m, context.dim(2)?))?;
        let spatial_chunk = rows_per_chunk(chunk_values, s * c * 8);
        let temporal_chunk = rows_per_chunk(chunk_values, frames * c * 8);

        for (block, temporal) in self.blocks.iter().zip(&self.temporal_blocks) {
            hidden = by_rows(&hidden, spatial_chunk, |rows, start| {
                block.forward(rows, &frame_context.narrow(0, start, rows.dim(0)?)?)
            })?;
            // [B·F, S, C] + frame embedding, regrouped as [B·S, F, C].
            let mixed = hidden
                .reshape((b, frames, s, c))?
                .broadcast_add(&frame_emb)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * s, frames, c))?;
            let (key, value) = temporal.attn2.key_value(context)?; // [B, M, C]
            let mixed = by_rows(&mixed, temporal_chunk, |rows, start| {
                let n = rows.dim(0)?;
                // The clip of each row (rows are pixel-major within a clip).
                let ids: Vec<u32> = (start..start + n).map(|r| (r / s) as u32).collect();
                let ids = Tensor::new(ids.as_slice(), device)?;
                let k = key.index_select(&ids, 0)?;
                let v = value.index_select(&ids, 0)?;
                temporal.forward(rows, &k, &v)
            })?;
            let mixed = mixed
                .reshape((b, s, frames, c))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((bf, s, c))?;
            hidden = self.time_mixer.forward(&hidden, &mixed)?;
        }
        let out = self.proj_out.forward(&hidden)?;
        let out = out.transpose(1, 2)?.contiguous()?.reshape((bf, c, h, w))?;
        Ok((out + x)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::io::weights::{Weights, open_safetensors};
    use candle_core::{DType, Device};

    /// Row chunks (several frames' and several pixels' rows, crossing clip boundaries) give
    /// the unchunked result. Weights: `down_blocks.0.attentions.0` of the tiny SVD fixture.
    #[test]
    fn chunked_rows_match_one_pass() {
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-svd/unet/diffusion_pytorch_model.safetensors"
        ));
        let st = std::sync::Arc::new(open_safetensors(&[path]).unwrap());
        let device = Device::Cpu;
        let vb = Weights::identity(st, "unet").var_builder(DType::F32, &device);
        let model = TransformerSpatioTemporal::new(
            vb.pp("down_blocks").pp(0).pp("attentions").pp(0),
            32,
            2,
            1,
            32,
        )
        .unwrap();
        let (b, frames) = (2, 3);
        let x = Tensor::randn(0f32, 1.0, (b * frames, 32, 4, 5), &device).unwrap();
        let context = Tensor::randn(0f32, 1.0, (b, 1, 32), &device).unwrap();
        let whole = model.forward(&x, &context, frames).unwrap();
        // 20 pixels × 32 channels × 8 per frame row; 3 frames × 32 × 8 per pixel row.
        for budget in [1, 2 * 32 * 8 * 3 + 5, 7 * 3 * 32 * 8] {
            let chunked = model.forward_chunked(&x, &context, frames, budget).unwrap();
            let diff: f32 = (&chunked - &whole)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(diff < 1e-5, "budget {budget}: {diff}");
        }
    }
}
