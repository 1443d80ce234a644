//! Stable Video Diffusion as one file (`svd.safetensors`, `svd_xt.safetensors`, as Stability
//! publishes them, in the generative-models layout): the UNet under `model.diffusion_model.`,
//! the temporal VAE decoder under `first_stage_model.decoder.`, the VAE encoder of the
//! conditioning frame under `conditioner.embedders.N.encoder.` and the OpenCLIP ViT-H image
//! encoder under `conditioner.embedders.N.open_clip.model.visual.`.
//!
//! Each tensor name is rewritten to its diffusers name (the renaming of diffusers'
//! `convert_svd_to_diffusers.py` and its temporal-VAE conversion), then each component's
//! `config.json` is read off the renamed shapes. What the weights cannot tell follows the
//! published SVD configs: attention heads of width 64 (8 for tiny widths, as for other single
//! files), VAE scaling factor 0.18215, 25 frames when the file name says `xt`, else 14, and
//! SVD's Euler scheduler.

use crate::io::ldm::{
    KeyTransform, MappedTensor, head_count, map_vae_name, resnet_module, split_index,
    vae_resnet_module,
};
use crate::io::weights::{Weights, header_of, open_safetensors};
use crate::{Error, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const UNET_PREFIX: &str = "model.diffusion_model.";
const DECODER_PREFIX: &str = "first_stage_model.";

/// SVD's `scheduler/scheduler_config.json` (the same for SVD and SVD-XT).
pub const SCHEDULER_CONFIG: &str = r#"{
  "_class_name": "EulerDiscreteScheduler",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "interpolation_type": "linear",
  "num_train_timesteps": 1000,
  "prediction_type": "v_prediction",
  "set_alpha_to_one": false,
  "sigma_max": 700.0,
  "sigma_min": 0.002,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "timestep_spacing": "leading",
  "timestep_type": "continuous",
  "trained_betas": null,
  "use_karras_sigmas": true
}"#;

/// One component of the file: its diffusers config and weights under diffusers names.
pub struct Part {
    /// What diffusers would write in the component's `config.json`.
    pub config: Value,
    /// The weights, looked up by diffusers name.
    pub weights: Weights,
}

/// The components of an SVD file.
pub struct SvdFile {
    /// `UNetSpatioTemporalConditionModel`.
    pub unet: Part,
    /// `AutoencoderKLTemporalDecoder`.
    pub vae: Part,
    /// `CLIPVisionModelWithProjection`.
    pub image_encoder: Part,
}

/// Whether the safetensors file at `path` holds a spatio-temporal (SVD) UNet.
pub fn is_svd_file(path: &Path) -> bool {
    path.is_file()
        && open_safetensors(&[path.to_path_buf()]).is_ok_and(|st| {
            st.tensors()
                .iter()
                .any(|(name, _)| name.starts_with(UNET_PREFIX) && name.contains(".time_stack."))
        })
}

type Map = BTreeMap<String, MappedTensor>;

fn identity(source: &str) -> MappedTensor {
    MappedTensor {
        source: source.to_string(),
        transform: KeyTransform::Identity,
    }
}

fn not_svd(detail: impl Into<String>, path: &Path) -> Error {
    Error::UnknownCheckpoint {
        detail: detail.into(),
        path: path.to_path_buf(),
    }
}

/// A `VideoResBlock` tensor (`rest` after the block path) → its name under the diffusers
/// `SpatioTemporalResBlock`: the spatial half, the temporal half (`time_stack`) or the mixer.
fn video_resnet(rest: &str, spatial: impl Fn(&str) -> Option<&'static str>) -> Option<String> {
    if rest == "time_mixer.mix_factor" || rest == "mix_factor" {
        return Some("time_mixer.mix_factor".into());
    }
    let (half, inner) = match rest.strip_prefix("time_stack.") {
        Some(inner) => ("temporal_res_block", inner),
        None => ("spatial_res_block", rest),
    };
    let (module, leaf) = inner.rsplit_once('.')?;
    let renamed = if half == "temporal_res_block" {
        resnet_module(module)?
    } else {
        spatial(module)?
    };
    Some(format!("{half}.{renamed}.{leaf}"))
}

/// A `SpatialVideoTransformer` tensor (`rest` after the block path) → diffusers
/// `TransformerSpatioTemporalModel` name (same names but the temporal blocks and time
/// embedding).
fn video_transformer(rest: &str) -> String {
    let rest = match rest.strip_prefix("time_pos_embed.") {
        Some(r) => match r.split_once('.') {
            Some(("0", leaf)) => format!("time_pos_embed.linear_1.{leaf}"),
            Some(("2", leaf)) => format!("time_pos_embed.linear_2.{leaf}"),
            _ => format!("time_pos_embed.{r}"),
        },
        None => rest.to_string(),
    };
    match rest.strip_prefix("time_stack.") {
        Some(r) => format!("temporal_transformer_blocks.{r}"),
        None => rest,
    }
}

/// UNet tensor name (prefix stripped) → diffusers name; `layers` = resnets per level.
fn unet_name(name: &str, layers: usize) -> Option<String> {
    let top = [
        ("time_embed.0.", "time_embedding.linear_1."),
        ("time_embed.2.", "time_embedding.linear_2."),
        ("label_emb.0.0.", "add_embedding.linear_1."),
        ("label_emb.0.2.", "add_embedding.linear_2."),
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ];
    for (from, to) in top {
        if let Some(leaf) = name.strip_prefix(from) {
            return Some(format!("{to}{leaf}"));
        }
    }
    if let Some(rest) = name.strip_prefix("input_blocks.") {
        let (i, rest) = split_index(rest)?;
        let block = (i.checked_sub(1)?) / (layers + 1);
        let layer = (i - 1) % (layers + 1);
        if let Some(leaf) = rest.strip_prefix("0.op.") {
            return Some(format!("down_blocks.{block}.downsamplers.0.conv.{leaf}"));
        }
        let (part, rest) = split_index(rest)?;
        return match part {
            0 => video_resnet(rest, resnet_module)
                .map(|r| format!("down_blocks.{block}.resnets.{layer}.{r}")),
            1 => Some(format!(
                "down_blocks.{block}.attentions.{layer}.{}",
                video_transformer(rest)
            )),
            _ => None,
        };
    }
    if let Some(rest) = name.strip_prefix("middle_block.") {
        let (part, rest) = split_index(rest)?;
        return match part {
            0 | 2 => video_resnet(rest, resnet_module)
                .map(|r| format!("mid_block.resnets.{}.{r}", part / 2)),
            1 => Some(format!(
                "mid_block.attentions.0.{}",
                video_transformer(rest)
            )),
            _ => None,
        };
    }
    if let Some(rest) = name.strip_prefix("output_blocks.") {
        let (i, rest) = split_index(rest)?;
        let (block, layer) = (i / (layers + 1), i % (layers + 1));
        let (part, rest) = split_index(rest)?;
        if part > 0 && rest.starts_with("conv.") {
            let leaf = rest.strip_prefix("conv.")?;
            return Some(format!("up_blocks.{block}.upsamplers.0.conv.{leaf}"));
        }
        return match part {
            0 => video_resnet(rest, resnet_module)
                .map(|r| format!("up_blocks.{block}.resnets.{layer}.{r}")),
            1 => Some(format!(
                "up_blocks.{block}.attentions.{layer}.{}",
                video_transformer(rest)
            )),
            _ => None,
        };
    }
    None
}

/// Temporal VAE decoder tensor name (after `first_stage_model.`) → diffusers name; `levels` =
/// number of `decoder.up.N` blocks.
fn decoder_name(name: &str, levels: usize) -> Option<String> {
    let rest = name.strip_prefix("decoder.")?;
    if let Some(leaf) = rest.strip_prefix("conv_out.time_mix_conv.") {
        return Some(format!("decoder.time_conv_out.{leaf}"));
    }
    if let Some(leaf) = rest.strip_prefix("norm_out.") {
        return Some(format!("decoder.conv_norm_out.{leaf}"));
    }
    if rest.starts_with("conv_in.") || rest.starts_with("conv_out.") {
        return Some(name.to_string());
    }
    if let Some(mid) = rest.strip_prefix("mid.") {
        if let Some(attention) = mid.strip_prefix("attn_1.") {
            let (module, leaf) = attention.rsplit_once('.')?;
            let module = match module {
                "norm" => "group_norm",
                "q" => "to_q",
                "k" => "to_k",
                "v" => "to_v",
                "proj_out" => "to_out.0",
                _ => return None,
            };
            return Some(format!("decoder.mid_block.attentions.0.{module}.{leaf}"));
        }
        let r = mid.strip_prefix("block_")?;
        let (k, rest) = r.split_once('.')?;
        let k = k.parse::<usize>().ok()?.checked_sub(1)?;
        return video_resnet(rest, vae_resnet_module)
            .map(|r| format!("decoder.mid_block.resnets.{k}.{r}"));
    }
    let (i, rest) = split_index(rest.strip_prefix("up.")?)?;
    let block = levels.checked_sub(1 + i)?;
    if let Some(leaf) = rest.strip_prefix("upsample.conv.") {
        return Some(format!(
            "decoder.up_blocks.{block}.upsamplers.0.conv.{leaf}"
        ));
    }
    let (j, rest) = split_index(rest.strip_prefix("block.")?)?;
    video_resnet(rest, vae_resnet_module)
        .map(|r| format!("decoder.up_blocks.{block}.resnets.{j}.{r}"))
}

/// OpenCLIP visual tower tensor name (after `visual.`) → transformers
/// `CLIPVisionModelWithProjection` name(s) with their transforms.
fn clip_vision_names(name: &str, source: &str, width: usize) -> Vec<(String, MappedTensor)> {
    let one = |to: String, transform: KeyTransform| {
        vec![(
            to,
            MappedTensor {
                source: source.to_string(),
                transform,
            },
        )]
    };
    let direct = |to: &str| one(to.to_string(), KeyTransform::Identity);
    match name {
        "conv1.weight" => return direct("vision_model.embeddings.patch_embedding.weight"),
        "class_embedding" => return direct("vision_model.embeddings.class_embedding"),
        "positional_embedding" => {
            return direct("vision_model.embeddings.position_embedding.weight");
        }
        "proj" => return one("visual_projection.weight".into(), KeyTransform::Transpose),
        _ => {}
    }
    for (from, to) in [
        ("ln_pre.", "vision_model.pre_layrnorm."),
        ("ln_post.", "vision_model.post_layernorm."),
    ] {
        if let Some(leaf) = name.strip_prefix(from) {
            return direct(&format!("{to}{leaf}"));
        }
    }
    let Some((i, rest)) = name
        .strip_prefix("transformer.resblocks.")
        .and_then(split_index)
    else {
        return Vec::new();
    };
    let layer = format!("vision_model.encoder.layers.{i}");
    if let Some(kind) = rest.strip_prefix("attn.in_proj_") {
        return ["q", "k", "v"]
            .iter()
            .enumerate()
            .map(|(n, p)| {
                (
                    format!("{layer}.self_attn.{p}_proj.{kind}"),
                    MappedTensor {
                        source: source.to_string(),
                        transform: KeyTransform::Rows {
                            start: n * width,
                            len: width,
                        },
                    },
                )
            })
            .collect();
    }
    let modules = [
        ("ln_1.", "layer_norm1."),
        ("ln_2.", "layer_norm2."),
        ("attn.out_proj.", "self_attn.out_proj."),
        ("mlp.c_fc.", "mlp.fc1."),
        ("mlp.c_proj.", "mlp.fc2."),
    ];
    for (from, to) in modules {
        if let Some(leaf) = rest.strip_prefix(from) {
            return direct(&format!("{layer}.{to}{leaf}"));
        }
    }
    Vec::new()
}

/// The first `conditioner.embedders.N.<what>` prefix present in `names`.
fn embedder_prefix(names: &[String], what: &str) -> Option<String> {
    names.iter().find_map(|n| {
        let rest = n.strip_prefix("conditioner.embedders.")?;
        let (i, rest) = split_index(rest)?;
        rest.starts_with(what)
            .then(|| format!("conditioner.embedders.{i}.{what}"))
    })
}

/// Highest `N` + 1 of `prefix N.` among `names`.
fn count(names: &[String], prefix: &str) -> usize {
    names
        .iter()
        .filter_map(|n| split_index(n.strip_prefix(prefix)?).map(|(i, _)| i + 1))
        .max()
        .unwrap_or(0)
}

/// Reads an SVD single file: each component's weights under diffusers names and its config.
pub fn open(path: &Path) -> Result<SvdFile> {
    let st = Arc::new(open_safetensors(&[path.to_path_buf()])?);
    let header = header_of(&st);
    let names: Vec<String> = header.keys().cloned().collect();
    let shape = |stored: &str| header.get(stored).map(|m| m.shape.clone());

    // UNet: resnets per level from the first downsampler's position.
    let unet_names: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix(UNET_PREFIX))
        .collect();
    if !unet_names.iter().any(|n| n.contains(".time_stack.")) {
        return Err(not_svd(
            "not a Stable Video Diffusion file: no spatio-temporal UNet (model.diffusion_model.…time_stack)",
            path,
        ));
    }
    let input_blocks = count(
        &unet_names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "input_blocks.",
    );
    let layers = (1..input_blocks)
        .find(|i| unet_names.contains(&format!("input_blocks.{i}.0.op.weight").as_str()))
        .map_or(input_blocks.saturating_sub(1), |i| i - 1);
    let mut unet = Map::new();
    for name in &unet_names {
        if let Some(to) = unet_name(name, layers) {
            unet.insert(to, identity(&format!("{UNET_PREFIX}{name}")));
        }
    }
    let unet_config = unet_config(&unet, &shape, layers, path)?;

    // VAE: decoder from first_stage_model, encoder (and quant_conv) from the conditioning
    // embedder's own autoencoder, or from first_stage_model when that is absent.
    let decoder_names: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix(DECODER_PREFIX))
        .filter(|n| n.starts_with("decoder."))
        .collect();
    let levels = count(
        &decoder_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        "decoder.up.",
    );
    if levels == 0 {
        return Err(not_svd(
            "the file has no temporal VAE decoder (first_stage_model.decoder.…)",
            path,
        ));
    }
    let mut vae = Map::new();
    for name in &decoder_names {
        if let Some(to) = decoder_name(name, levels) {
            vae.insert(to, identity(&format!("{DECODER_PREFIX}{name}")));
        }
    }
    let encoder_prefix = embedder_prefix(&names, "encoder.encoder.")
        .and_then(|p| p.strip_suffix("encoder.").map(str::to_string))
        .unwrap_or_else(|| DECODER_PREFIX.to_string());
    let encoder_names: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&encoder_prefix))
        .filter(|n| n.starts_with("encoder.") || n.starts_with("quant_conv."))
        .collect();
    let encoder_levels = count(
        &encoder_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        "encoder.down.",
    );
    for name in &encoder_names {
        if let Some(to) = map_vae_name(name, encoder_levels) {
            vae.insert(to, identity(&format!("{encoder_prefix}{name}")));
        }
    }
    if encoder_levels == 0 {
        return Err(not_svd(
            "the file has no VAE encoder for the conditioning frame (conditioner.embedders.N.encoder.encoder.… or first_stage_model.encoder.…)",
            path,
        ));
    }
    let vae_config = vae_config(&vae, &shape, path)?;

    // Image encoder: OpenCLIP ViT-H.
    let Some(visual) = embedder_prefix(&names, "open_clip.model.visual.") else {
        return Err(not_svd(
            "the file has no CLIP image encoder (conditioner.embedders.N.open_clip.model.visual.…); use the diffusers folder of the model instead",
            path,
        ));
    };
    let width = shape(&format!("{visual}class_embedding"))
        .and_then(|s| s.first().copied())
        .ok_or_else(|| not_svd("the image encoder has no class_embedding", path))?;
    let mut clip = Map::new();
    for name in &names {
        if let Some(rest) = name.strip_prefix(&visual) {
            clip.extend(clip_vision_names(rest, name, width));
        }
    }
    let clip_config = clip_config(&clip, &shape, width, path)?;

    Ok(SvdFile {
        unet: Part {
            config: unet_config,
            weights: Weights::mapped(st.clone(), unet, "unet"),
        },
        vae: Part {
            config: vae_config,
            weights: Weights::mapped(st.clone(), vae, "vae"),
        },
        image_encoder: Part {
            config: clip_config,
            weights: Weights::mapped(st, clip, "image_encoder"),
        },
    })
}

/// The stored shape of the tensor a diffusers name maps to.
fn mapped_shape(
    map: &Map,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    name: &str,
    path: &Path,
) -> Result<Vec<usize>> {
    let tensor = map
        .get(name)
        .ok_or_else(|| not_svd(format!("the file lacks {name} (diffusers name)"), path))?;
    shape(&tensor.source)
        .and_then(|s| tensor.transform.output_shape(&s))
        .ok_or_else(|| not_svd(format!("cannot read the shape of {}", tensor.source), path))
}

fn unet_config(
    map: &Map,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    layers: usize,
    path: &Path,
) -> Result<Value> {
    let names: Vec<String> = map.keys().cloned().collect();
    let levels = count(&names, "down_blocks.");
    let mut channels = Vec::new();
    let mut down = Vec::new();
    let mut up = Vec::new();
    for i in 0..levels {
        let conv = mapped_shape(
            map,
            shape,
            &format!("down_blocks.{i}.resnets.0.spatial_res_block.conv1.weight"),
            path,
        )?;
        channels.push(conv[0]);
        let attention = |side: &str, b: usize| {
            names
                .iter()
                .any(|n| n.starts_with(&format!("{side}.{b}.attentions.")))
        };
        down.push(if attention("down_blocks", i) {
            "CrossAttnDownBlockSpatioTemporal"
        } else {
            "DownBlockSpatioTemporal"
        });
        up.push(if attention("up_blocks", i) {
            "CrossAttnUpBlockSpatioTemporal"
        } else {
            "UpBlockSpatioTemporal"
        });
    }
    let context = names
        .iter()
        .find(|n| n.contains(".transformer_blocks.0.attn2.to_k.weight"))
        .map(|n| mapped_shape(map, shape, n, path))
        .transpose()?
        .and_then(|s| s.get(1).copied())
        .ok_or_else(|| not_svd("the UNet has no cross-attention", path))?;
    let depth = names
        .iter()
        .filter_map(|n| {
            let rest = n.strip_prefix("down_blocks.0.attentions.0.transformer_blocks.")?;
            split_index(rest).map(|(i, _)| i + 1)
        })
        .max()
        .unwrap_or(1);
    let conv_in = mapped_shape(map, shape, "conv_in.weight", path)?;
    let conv_out = mapped_shape(map, shape, "conv_out.weight", path)?;
    let added = mapped_shape(map, shape, "add_embedding.linear_1.weight", path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let frames = if file_name.contains("xt") { 25 } else { 14 };
    Ok(json!({
        "_class_name": "UNetSpatioTemporalConditionModel",
        "addition_time_embed_dim": added[1] / 3,
        "block_out_channels": channels,
        "cross_attention_dim": context,
        "down_block_types": down,
        "up_block_types": up,
        "in_channels": conv_in[1],
        "out_channels": conv_out[0],
        "layers_per_block": layers,
        "num_attention_heads": channels.iter().map(|&c| head_count(c)).collect::<Vec<_>>(),
        "num_frames": frames,
        "projection_class_embeddings_input_dim": added[1],
        "transformer_layers_per_block": depth,
    }))
}

fn vae_config(map: &Map, shape: &dyn Fn(&str) -> Option<Vec<usize>>, path: &Path) -> Result<Value> {
    let names: Vec<String> = map.keys().cloned().collect();
    let levels = count(&names, "encoder.down_blocks.");
    let mut channels = Vec::new();
    for i in 0..levels {
        let conv = mapped_shape(
            map,
            shape,
            &format!("encoder.down_blocks.{i}.resnets.0.conv1.weight"),
            path,
        )?;
        channels.push(conv[0]);
    }
    let resnets = names
        .iter()
        .filter_map(|n| {
            let rest = n.strip_prefix("encoder.down_blocks.0.resnets.")?;
            split_index(rest).map(|(i, _)| i + 1)
        })
        .max()
        .unwrap_or(1);
    let conv_in = mapped_shape(map, shape, "decoder.conv_in.weight", path)?;
    let image_in = mapped_shape(map, shape, "encoder.conv_in.weight", path)?;
    let image_out = mapped_shape(map, shape, "decoder.conv_out.weight", path)?;
    Ok(json!({
        "_class_name": "AutoencoderKLTemporalDecoder",
        "block_out_channels": channels,
        "down_block_types": vec!["DownEncoderBlock2D"; levels],
        "in_channels": image_in[1],
        "out_channels": image_out[0],
        "latent_channels": conv_in[1],
        "layers_per_block": resnets,
        "scaling_factor": 0.18215,
        "force_upcast": true,
    }))
}

fn clip_config(
    map: &Map,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    width: usize,
    path: &Path,
) -> Result<Value> {
    let names: Vec<String> = map.keys().cloned().collect();
    let layers = count(&names, "vision_model.encoder.layers.");
    let patch = mapped_shape(
        map,
        shape,
        "vision_model.embeddings.patch_embedding.weight",
        path,
    )?;
    let positions = mapped_shape(
        map,
        shape,
        "vision_model.embeddings.position_embedding.weight",
        path,
    )?;
    let fc1 = mapped_shape(
        map,
        shape,
        "vision_model.encoder.layers.0.mlp.fc1.weight",
        path,
    )?;
    let projection = mapped_shape(map, shape, "visual_projection.weight", path)?;
    let side = ((positions[0].saturating_sub(1)) as f64).sqrt().round() as usize;
    Ok(json!({
        "hidden_size": width,
        "intermediate_size": fc1[0],
        "num_hidden_layers": layers,
        "num_attention_heads": head_count(width),
        "patch_size": patch[2],
        "image_size": side * patch[2],
        "projection_dim": projection[0],
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "num_channels": patch[1],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unet_names_follow_diffusers_conversion() {
        let cases = [
            ("time_embed.0.weight", "time_embedding.linear_1.weight"),
            ("label_emb.0.2.bias", "add_embedding.linear_2.bias"),
            ("input_blocks.0.0.weight", "conv_in.weight"),
            (
                "input_blocks.1.0.in_layers.2.weight",
                "down_blocks.0.resnets.0.spatial_res_block.conv1.weight",
            ),
            (
                "input_blocks.2.0.time_stack.out_layers.3.bias",
                "down_blocks.0.resnets.1.temporal_res_block.conv2.bias",
            ),
            (
                "input_blocks.2.0.time_mixer.mix_factor",
                "down_blocks.0.resnets.1.time_mixer.mix_factor",
            ),
            (
                "input_blocks.3.0.op.weight",
                "down_blocks.0.downsamplers.0.conv.weight",
            ),
            (
                "input_blocks.4.1.time_stack.0.attn1.to_q.weight",
                "down_blocks.1.attentions.0.temporal_transformer_blocks.0.attn1.to_q.weight",
            ),
            (
                "input_blocks.4.1.time_pos_embed.2.weight",
                "down_blocks.1.attentions.0.time_pos_embed.linear_2.weight",
            ),
            (
                "middle_block.2.emb_layers.1.weight",
                "mid_block.resnets.1.spatial_res_block.time_emb_proj.weight",
            ),
            (
                "middle_block.1.proj_in.weight",
                "mid_block.attentions.0.proj_in.weight",
            ),
            (
                "output_blocks.2.1.conv.weight",
                "up_blocks.0.upsamplers.0.conv.weight",
            ),
            (
                "output_blocks.5.2.conv.bias",
                "up_blocks.1.upsamplers.0.conv.bias",
            ),
            (
                "output_blocks.5.1.transformer_blocks.0.ff.net.2.weight",
                "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.2.weight",
            ),
            (
                "output_blocks.3.0.skip_connection.weight",
                "up_blocks.1.resnets.0.spatial_res_block.conv_shortcut.weight",
            ),
            ("out.2.bias", "conv_out.bias"),
        ];
        for (from, to) in cases {
            assert_eq!(unet_name(from, 2).as_deref(), Some(to), "{from}");
        }
    }

    #[test]
    fn decoder_names_follow_the_temporal_vae_conversion() {
        let cases = [
            (
                "decoder.up.3.block.0.mix_factor",
                "decoder.up_blocks.0.resnets.0.time_mixer.mix_factor",
            ),
            (
                "decoder.up.0.block.2.time_stack.in_layers.0.weight",
                "decoder.up_blocks.3.resnets.2.temporal_res_block.norm1.weight",
            ),
            (
                "decoder.up.1.block.0.nin_shortcut.bias",
                "decoder.up_blocks.2.resnets.0.spatial_res_block.conv_shortcut.bias",
            ),
            (
                "decoder.up.2.upsample.conv.weight",
                "decoder.up_blocks.1.upsamplers.0.conv.weight",
            ),
            (
                "decoder.mid.block_2.time_stack.out_layers.3.weight",
                "decoder.mid_block.resnets.1.temporal_res_block.conv2.weight",
            ),
            (
                "decoder.mid.attn_1.proj_out.weight",
                "decoder.mid_block.attentions.0.to_out.0.weight",
            ),
            (
                "decoder.conv_out.time_mix_conv.weight",
                "decoder.time_conv_out.weight",
            ),
            ("decoder.conv_out.bias", "decoder.conv_out.bias"),
            ("decoder.norm_out.weight", "decoder.conv_norm_out.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(decoder_name(from, 4).as_deref(), Some(to), "{from}");
        }
    }

    #[test]
    fn open_clip_attention_is_split_into_q_k_v() {
        let mapped = clip_vision_names("transformer.resblocks.3.attn.in_proj_weight", "v.attn", 8);
        let names: Vec<&str> = mapped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "vision_model.encoder.layers.3.self_attn.q_proj.weight",
                "vision_model.encoder.layers.3.self_attn.k_proj.weight",
                "vision_model.encoder.layers.3.self_attn.v_proj.weight"
            ]
        );
        assert_eq!(
            mapped[2].1.transform,
            KeyTransform::Rows { start: 16, len: 8 }
        );
        let proj = clip_vision_names("proj", "v.proj", 8);
        assert_eq!(proj[0].1.transform, KeyTransform::Transpose);
    }
}
