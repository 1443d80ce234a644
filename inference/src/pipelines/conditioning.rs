//! Text conditioning: prompt → UNet context (and SDXL pooled embedding), per family.
//!
//! SD1.x/SD2.x: `last_hidden_state` (or a clip-skipped layer with final LayerNorm). SDXL:
//! concat of both encoders' `hidden_states[-2]` without final LayerNorm, pooled from encoder 2.
//! Prompts use A1111 syntax; a prompt without syntax encodes exactly as diffusers does.

use crate::Result;
use crate::text::clip::{ClipOutput, ClipTextModel};
use crate::text::prompt::{apply_weights, tokenize_prompt};
use crate::text::tokenizer::ClipTokenizer;
use candle_core::{Device, Tensor};

/// One text encoder with its tokenizer settings.
pub struct Encoder<'a> {
    /// The model.
    pub model: &'a ClipTextModel,
    /// Padding id for its tokenizer.
    pub pad_id: u32,
}

/// How the hidden state is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Layer {
    /// `final_LN(hidden_states[-skip])` (SD1/SD2; skip = A1111 clip skip, 1 = last).
    WithFinalNorm {
        /// A1111 clip skip (≥ 1).
        skip: usize,
    },
    /// `hidden_states[-(skip + 1)]` without final LN (SDXL; skip 1 = penultimate).
    Penultimate {
        /// A1111 clip skip (≥ 1).
        skip: usize,
    },
}

/// Encoded prompt: context `[1, 77·k, C]` and optional pooled `[1, P]`.
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// Cross-attention context.
    pub context: Tensor,
    /// Pooled text embedding (SDXL).
    pub pooled: Option<Tensor>,
}

fn select(output: &ClipOutput, layer: Layer, model: &ClipTextModel) -> Result<Tensor> {
    let n = output.hidden_states.len();
    match layer {
        Layer::WithFinalNorm { skip } if skip <= 1 => Ok(output.last_hidden_state.clone()),
        Layer::WithFinalNorm { skip } => {
            let idx = n.saturating_sub(skip).max(1);
            let h = output.hidden_states.get(idx).ok_or_else(|| {
                crate::Error::InvalidArgument(format!("clip skip {skip} too large"))
            })?;
            model.final_layer_norm(h)
        }
        Layer::Penultimate { skip } => {
            let idx = n.saturating_sub(skip.max(1) + 1).max(1);
            output
                .hidden_states
                .get(idx)
                .cloned()
                .ok_or_else(|| crate::Error::InvalidArgument(format!("clip skip {skip} too large")))
        }
    }
}

/// Encodes a prompt with one encoder: chunks of 77 tokens, A1111 weights when present.
/// Returns the context and the pooled output of the first chunk.
pub fn encode_with(
    tokenizer: &ClipTokenizer,
    encoder: &Encoder,
    prompt: &str,
    layer: Layer,
    min_chunks: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let mut chunks = tokenize_prompt(tokenizer, prompt, encoder.pad_id).chunks;
    let empty = tokenize_prompt(tokenizer, "", encoder.pad_id).chunks;
    while chunks.len() < min_chunks {
        chunks.extend(empty.iter().cloned());
    }
    let mut contexts = Vec::with_capacity(chunks.len());
    let mut pooled = None;
    for chunk in &chunks {
        let out = encoder.model.forward(&[chunk.tokens.to_vec()], device)?;
        let mut z = select(&out, layer, encoder.model)?;
        if chunk.weights.iter().any(|&w| w != 1.0) {
            z = apply_weights(&z, &chunk.weights)?;
        }
        contexts.push(z);
        if pooled.is_none() {
            pooled = Some(out.pooled);
        }
    }
    let context = Tensor::cat(&contexts, 1)?;
    let pooled = match pooled {
        Some(p) => p,
        None => {
            return Err(crate::Error::InvalidArgument(
                "empty prompt encoding".into(),
            ));
        }
    };
    Ok((context, pooled))
}

/// Number of 77-token chunks a prompt needs with this tokenizer.
pub fn chunk_count(tokenizer: &ClipTokenizer, prompt: &str, pad_id: u32) -> usize {
    tokenize_prompt(tokenizer, prompt, pad_id)
        .chunks
        .len()
        .max(1)
}
