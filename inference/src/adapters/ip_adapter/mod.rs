//! IP-Adapter (Ye et al. 2023) for SD1.5 and SDXL, plain and Plus, in the original file layout
//! (`image_proj.*` + `ip_adapter.{N}.to_k_ip/to_v_ip.weight`, N = diffusers' `attn_processors`
//! index of each attn2), with a transformers CLIP vision encoder.
//!
//! Follows diffusers: `load_ip_adapter` (key conversion, `_convert_ip_adapter_*_to_diffusers`),
//! `encode_image` / `prepare_ip_adapter_image_embeds` (plain: `image_embeds`, negative = zeros;
//! Plus: `hidden_states[-2]`, negative = the encoder on an all-zero pixel tensor) and
//! `IPAdapterAttnProcessor2_0`: in every cross-attention layer
//! `out = to_out(Attn(q, K_text, V_text) + Σ scale·Attn(q, to_k_ip(tokens), to_v_ip(tokens)))`.
//! Parity fixture: `tests/fixtures/make_ip_adapter.py` (`refs/ip_adapter/cases.json`).

pub mod clip_vision;
pub mod projection;

use crate::io::weights::{Weights, open_safetensors};
use crate::unet::attention::{Attention, AttentionProcessor, AttnSite};
use crate::unet::regional::RegionalAttention;
use crate::{Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use clip_vision::ClipVisionModel;
use image::RgbImage;
use projection::{ImageProjection, Resampler, ResamplerShape};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which image projection an adapter has.
#[derive(Debug)]
pub enum Projection {
    /// Linear + LayerNorm over CLIP `image_embeds` (4 tokens).
    Plain(ImageProjection),
    /// The Resampler over CLIP `hidden_states[-2]` (16 tokens in the released models).
    Plus(Resampler),
}

/// A loaded IP-Adapter: its image projection and the extra key/value projections of every
/// cross-attention layer.
#[derive(Debug)]
pub struct IpAdapter {
    projection: Projection,
    /// `attn_processors` index → (`to_k_ip`, `to_v_ip`).
    layers: BTreeMap<usize, (Linear, Linear)>,
    context_dim: usize,
    path: PathBuf,
    device: Device,
}

fn bad_file(path: &Path, detail: impl Into<String>) -> Error {
    Error::InvalidFile {
        format: "IP-Adapter",
        detail: detail.into(),
        path: path.to_path_buf(),
    }
}

impl IpAdapter {
    /// Loads an adapter in the original layout (`.safetensors`; pickled `.bin` files are
    /// refused with a conversion hint).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(
                std::io::Error::new(std::io::ErrorKind::NotFound, "IP-Adapter file not found"),
                path,
            ));
        }
        let st = Arc::new(open_safetensors(&[path.to_path_buf()])?);
        let weights = Weights::identity(st, "ip_adapter");
        let vb = weights.var_builder(DType::F32, device);
        let shape = |name: &str| weights.shape_of(name);
        let proj_vb = vb.pp("image_proj");
        let (projection, context_dim) = if let Some(dims) = shape("image_proj.proj.weight") {
            let [rows, embed] = dims[..] else {
                return Err(bad_file(path, "image_proj.proj.weight is not a matrix"));
            };
            let Some(&[context]) = shape("image_proj.norm.weight").as_deref() else {
                return Err(bad_file(path, "image_proj.norm.weight is missing"));
            };
            (
                Projection::Plain(ImageProjection::new(proj_vb, (rows, embed), context)?),
                context,
            )
        } else if let Some(latents) = shape("image_proj.latents") {
            let [_, queries, dim] = latents[..] else {
                return Err(bad_file(path, "image_proj.latents is not [1, Q, D]"));
            };
            let Some([_, embed_dim]) = shape("image_proj.proj_in.weight").map(two) else {
                return Err(bad_file(path, "image_proj.proj_in.weight is missing"));
            };
            let Some([output_dim, _]) = shape("image_proj.proj_out.weight").map(two) else {
                return Err(bad_file(path, "image_proj.proj_out.weight is missing"));
            };
            let Some([q_rows, _]) = shape("image_proj.layers.0.0.to_q.weight").map(two) else {
                return Err(bad_file(
                    path,
                    "image_proj.layers.0.0.to_q.weight is missing",
                ));
            };
            let depth = (0..)
                .take_while(|i| weights.contains(&format!("image_proj.layers.{i}.0.to_q.weight")))
                .count();
            if q_rows == 0 || !q_rows.is_multiple_of(64) {
                return Err(bad_file(
                    path,
                    "Resampler to_q rows are not a multiple of 64",
                ));
            }
            let shape = ResamplerShape {
                queries,
                dim,
                embed_dim,
                output_dim,
                heads: q_rows / 64,
                depth,
            };
            (
                Projection::Plus(Resampler::new(proj_vb, shape)?),
                output_dim,
            )
        } else if weights.contains("image_proj.proj.0.weight")
            || weights.contains("image_proj.perceiver_resampler.proj_in.weight")
        {
            return Err(bad_file(
                path,
                "IP-Adapter Full-face and FaceID variants are not supported (plain and Plus are)",
            ));
        } else {
            return Err(bad_file(
                path,
                "no image_proj weights: not an IP-Adapter in the original layout",
            ));
        };
        let mut layers = BTreeMap::new();
        for name in weights.names() {
            let Some(rest) = name.strip_prefix("ip_adapter.") else {
                continue;
            };
            let Some((index, "to_k_ip.weight")) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let Some([hidden, ctx]) = weights.shape_of(&name).map(two) else {
                return Err(bad_file(path, format!("{name} is not a matrix")));
            };
            if ctx != context_dim {
                return Err(bad_file(
                    path,
                    format!("{name} reads {ctx}-wide tokens, the projection makes {context_dim}"),
                ));
            }
            let layer = vb.pp("ip_adapter").pp(index);
            layers.insert(
                index,
                (
                    candle_nn::linear_no_bias(ctx, hidden, layer.pp("to_k_ip"))?,
                    candle_nn::linear_no_bias(ctx, hidden, layer.pp("to_v_ip"))?,
                ),
            );
        }
        if layers.is_empty() {
            return Err(bad_file(path, "no ip_adapter.N.to_k_ip weights"));
        }
        Ok(IpAdapter {
            projection,
            layers,
            context_dim,
            path: path.to_path_buf(),
            device: device.clone(),
        })
    }

    /// Whether this is a Plus adapter (Resampler over `hidden_states[-2]`).
    pub fn is_plus(&self) -> bool {
        matches!(self.projection, Projection::Plus(_))
    }

    /// Width of the image tokens (the UNet's `cross_attention_dim`).
    pub fn context_dim(&self) -> usize {
        self.context_dim
    }

    /// Number of cross-attention layers with weights.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Image tokens `[1, T, C]` for `image` and the unconditional tokens diffusers pairs with
    /// them (plain: projection of zero embeddings; Plus: the encoder on zero pixels).
    pub fn image_tokens(&self, encoder: &ClipVisionModel, image: &RgbImage) -> Result<ImageTokens> {
        let config = encoder.config();
        let pixels = clip_vision::preprocess(image, config.image_size, &self.device)?;
        let (positive, negative) = match &self.projection {
            Projection::Plain(proj) => {
                if config.projection_dim != Some(proj.embed_dim()) {
                    return Err(self.encoder_mismatch(encoder));
                }
                let embeds = encoder.image_embeds(&pixels)?;
                (proj.forward(&embeds)?, proj.forward(&embeds.zeros_like()?)?)
            }
            Projection::Plus(resampler) => {
                if config.hidden_size != resampler.embed_dim() {
                    return Err(self.encoder_mismatch(encoder));
                }
                let hidden = encoder.penultimate_hidden_states(&pixels)?;
                let zeros = encoder.penultimate_hidden_states(&pixels.zeros_like()?)?;
                (resampler.forward(&hidden)?, resampler.forward(&zeros)?)
            }
        };
        Ok(ImageTokens { positive, negative })
    }

    /// Tokens of a face embedding `[E]` for an adapter whose Resampler reads one `E`-wide
    /// token (InstantID: the raw 512-d ArcFace embedding); the unconditional tokens are the
    /// Resampler's output for zeros, as InstantID's pipeline pairs them.
    pub fn embedding_tokens(&self, embedding: &[f32]) -> Result<ImageTokens> {
        let Projection::Plus(resampler) = &self.projection else {
            return Err(bad_file(
                &self.path,
                "not a face adapter: its image projection is not a Resampler",
            ));
        };
        if resampler.embed_dim() != embedding.len() {
            return Err(bad_file(
                &self.path,
                format!(
                    "the Resampler reads {}-wide embeddings, the face embedding has {}",
                    resampler.embed_dim(),
                    embedding.len()
                ),
            ));
        }
        let x = Tensor::from_slice(embedding, (1, 1, embedding.len()), &self.device)?;
        Ok(ImageTokens {
            positive: resampler.forward(&x)?,
            negative: resampler.forward(&x.zeros_like()?)?,
        })
    }

    fn encoder_mismatch(&self, encoder: &ClipVisionModel) -> Error {
        Error::InvalidArgument(format!(
            "the image encoder (hidden {}, projection {:?}) does not fit this IP-Adapter; use the \
             encoder it was trained with (ViT-H for ip-adapter_sd15 / *_vit-h, ViT-bigG for \
             ip-adapter_sdxl): {:?}",
            encoder.config().hidden_size,
            encoder.config().projection_dim,
            self.path
        ))
    }
}

fn two(dims: Vec<usize>) -> [usize; 2] {
    match dims[..] {
        [a, b] => [a, b],
        _ => [0, 0],
    }
}

/// An adapter's image tokens for one image.
#[derive(Clone, Debug)]
pub struct ImageTokens {
    /// `[1, T, C]`.
    pub positive: Tensor,
    /// `[1, T, C]`, for the unconditional (CFG) row.
    pub negative: Tensor,
}

/// One IP-Adapter with its tokens and scale for a generation.
#[derive(Clone, Debug)]
pub struct IpAdapterRequest {
    /// The adapter.
    pub adapter: Arc<IpAdapter>,
    /// Its image tokens.
    pub tokens: ImageTokens,
    /// Weight of its attention term (diffusers `set_ip_adapter_scale`).
    pub scale: f32,
}

/// One adapter inside the processor: layers, tokens for the batch, scale.
struct Active {
    adapter: Arc<IpAdapter>,
    /// `[B, T, C]` in the batch's row order.
    tokens: Tensor,
    scale: f32,
}

/// Decoupled cross-attention for every attn2 (diffusers `IPAdapterAttnProcessor2_0`), on top of
/// the regional-prompt mix when regions are present.
pub struct IpAdapterAttention {
    active: Vec<Active>,
    regional: Option<RegionalAttention>,
}

impl std::fmt::Debug for IpAdapterAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpAdapterAttention")
            .field("adapters", &self.active.len())
            .field("regional", &self.regional.is_some())
            .finish()
    }
}

impl IpAdapterAttention {
    /// A processor for `requests`; with CFG the batch is `[uncond, cond]` and each adapter's
    /// tokens are `[negative, positive]`.
    pub fn new(
        requests: &[IpAdapterRequest],
        use_cfg: bool,
        regional: Option<RegionalAttention>,
    ) -> Result<Self> {
        let mut active = Vec::with_capacity(requests.len());
        for r in requests {
            let tokens = if use_cfg {
                Tensor::cat(&[&r.tokens.negative, &r.tokens.positive], 0)?
            } else {
                r.tokens.positive.clone()
            };
            active.push(Active {
                adapter: r.adapter.clone(),
                tokens,
                scale: r.scale,
            });
        }
        Ok(IpAdapterAttention { active, regional })
    }
}

/// The attention processor of a generation: IP-Adapters (with any regions inside), regions
/// alone, or none (the default path, unchanged).
pub fn attention_processor(
    requests: &[IpAdapterRequest],
    use_cfg: bool,
    regional: Option<RegionalAttention>,
) -> Result<Option<Box<dyn AttentionProcessor>>> {
    if requests.is_empty() {
        return Ok(regional.map(|r| Box::new(r) as Box<dyn AttentionProcessor>));
    }
    Ok(Some(Box::new(IpAdapterAttention::new(
        requests, use_cfg, regional,
    )?)))
}

impl AttentionProcessor for IpAdapterAttention {
    fn process(
        &self,
        site: &AttnSite,
        attn: &Attention,
        hidden: &Tensor,
        context: Option<&Tensor>,
        grid: (usize, usize),
    ) -> Result<Option<Tensor>> {
        let Some(context) = context else {
            return Ok(None);
        };
        if !site.cross {
            return Ok(None);
        }
        let q = attn.query(hidden)?;
        let (k, v) = attn.key_value(context)?;
        let mut out = attn.attend(&q, &k, &v)?;
        if let Some(regional) = &self.regional {
            out = regional.mix(attn, &q, out, context.dtype(), grid)?;
        }
        let dtype = hidden.dtype();
        for a in &self.active {
            if a.scale == 0.0 {
                continue;
            }
            let Some((to_k, to_v)) = a.adapter.layers.get(&site.index) else {
                return Err(Error::InvalidArgument(format!(
                    "the IP-Adapter has no weights for cross-attention layer {} of this model: \
                     it was made for another model family: {:?}",
                    site.index, a.adapter.path
                )));
            };
            let tokens = a.tokens.to_dtype(DType::F32)?;
            let k_ip = to_k.forward(&tokens)?.to_dtype(dtype)?;
            let v_ip = to_v.forward(&tokens)?.to_dtype(dtype)?;
            if k_ip.dim(0)? != q.dim(0)? {
                return Err(Error::InvalidArgument(format!(
                    "IP-Adapter tokens for a batch of {}, the UNet runs {}",
                    k_ip.dim(0)?,
                    q.dim(0)?
                )));
            }
            let ip = attn.attend(&q, &k_ip, &v_ip)?;
            out = (out + (ip * f64::from(a.scale))?)?;
        }
        Ok(Some(attn.out(&out)?))
    }
}
