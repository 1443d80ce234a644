//! The original Depth Anything V2 layout (`depth_anything_v2_vit{s,b,l}.pth` of the
//! DepthAnything/Depth-Anything-V2 repository, as safetensors: `pretrained.…` DINOv2 and
//! `depth_head.…` DPT keys, e.g. the `depth_anything_v2_vits_fp32.safetensors` files ComfyUI
//! users have): the names transformers' conversion script maps, the config read from the shapes.
//! The model then runs exactly as its transformers conversion would.

use super::config::{BackboneConfig, DepthConfig};
use crate::io::ldm::{KeyTransform, MappedTensor};
use crate::{Error, Result};
use candle_core::safetensors::MmapedSafetensors;
use std::collections::BTreeMap;
use std::path::Path;

/// A key only the original layout has.
pub const MARKER: &str = "pretrained.cls_token";

/// The transformers names of one stored tensor (three for a fused `qkv`).
fn to_transformers(name: &str, hidden: usize) -> Vec<(String, KeyTransform)> {
    let same = |n: String| vec![(n, KeyTransform::Identity)];
    if let Some(rest) = name.strip_prefix("pretrained.") {
        let fixed = match rest {
            "cls_token" => Some("backbone.embeddings.cls_token".to_string()),
            "pos_embed" => Some("backbone.embeddings.position_embeddings".to_string()),
            _ => None,
        };
        if let Some(n) = fixed {
            return same(n);
        }
        if let Some(p) = rest.strip_prefix("patch_embed.proj.") {
            return same(format!(
                "backbone.embeddings.patch_embeddings.projection.{p}"
            ));
        }
        if let Some(p) = rest.strip_prefix("norm.") {
            return same(format!("backbone.layernorm.{p}"));
        }
        if let Some(block) = rest.strip_prefix("blocks.") {
            let Some((index, inner)) = block.split_once('.') else {
                return Vec::new();
            };
            let layer = format!("backbone.encoder.layer.{index}");
            if let Some(p) = inner.strip_prefix("attn.qkv.") {
                return ["query", "key", "value"]
                    .iter()
                    .enumerate()
                    .map(|(i, part)| {
                        (
                            format!("{layer}.attention.attention.{part}.{p}"),
                            KeyTransform::Rows {
                                start: i * hidden,
                                len: hidden,
                            },
                        )
                    })
                    .collect();
            }
            let mapped = match inner {
                "ls1.gamma" => "layer_scale1.lambda1".to_string(),
                "ls2.gamma" => "layer_scale2.lambda1".to_string(),
                other => match other.strip_prefix("attn.proj.") {
                    Some(p) => format!("attention.output.dense.{p}"),
                    None => other.to_string(),
                },
            };
            return same(format!("{layer}.{mapped}"));
        }
        return Vec::new();
    }
    let Some(rest) = name.strip_prefix("depth_head.") else {
        return Vec::new();
    };
    if let Some(p) = rest.strip_prefix("projects.") {
        return same(format!(
            "neck.reassemble_stage.layers.{}",
            with_projection(p)
        ));
    }
    if let Some(p) = rest.strip_prefix("resize_layers.") {
        return same(format!("neck.reassemble_stage.layers.{}", with_resize(p)));
    }
    let Some(scratch) = rest.strip_prefix("scratch.") else {
        return Vec::new();
    };
    if let Some(p) = scratch.strip_prefix("output_conv1.") {
        return same(format!("head.conv1.{p}"));
    }
    if let Some(p) = scratch.strip_prefix("output_conv2.0.") {
        return same(format!("head.conv2.{p}"));
    }
    if let Some(p) = scratch.strip_prefix("output_conv2.2.") {
        return same(format!("head.conv3.{p}"));
    }
    for i in 1..=4usize {
        if let Some(p) = scratch.strip_prefix(&format!("layer{i}_rn.")) {
            return same(format!("neck.convs.{}.{p}", i - 1));
        }
        if let Some(p) = scratch.strip_prefix(&format!("refinenet{i}.")) {
            let layer = format!("neck.fusion_stage.layers.{}", 4 - i);
            let inner = if let Some(q) = p.strip_prefix("out_conv.") {
                format!("projection.{q}")
            } else {
                p.replace("resConfUnit1.", "residual_layer1.")
                    .replace("resConfUnit2.", "residual_layer2.")
                    .replace("conv1.", "convolution1.")
                    .replace("conv2.", "convolution2.")
            };
            return same(format!("{layer}.{inner}"));
        }
    }
    Vec::new()
}

/// `N.rest` → `N.projection.rest`.
fn with_projection(p: &str) -> String {
    match p.split_once('.') {
        Some((i, rest)) => format!("{i}.projection.{rest}"),
        None => p.to_string(),
    }
}

/// `N.rest` → `N.resize.rest`.
fn with_resize(p: &str) -> String {
    match p.split_once('.') {
        Some((i, rest)) => format!("{i}.resize.{rest}"),
        None => p.to_string(),
    }
}

/// The config and transformers-name map of an original-layout file.
pub fn read(
    st: &MmapedSafetensors,
    path: &Path,
) -> Result<(DepthConfig, BTreeMap<String, MappedTensor>)> {
    let shape = |name: &str| -> Result<Vec<usize>> {
        st.get(name)
            .map(|v| v.shape().to_vec())
            .map_err(|_| Error::UnknownCheckpoint {
                detail: format!("Depth Anything (original layout): no tensor {name}"),
                path: path.to_path_buf(),
            })
    };
    let hidden = *shape(MARKER)?.last().unwrap_or(&0);
    let patch = *shape("pretrained.patch_embed.proj.weight")?
        .last()
        .unwrap_or(&0);
    let positions = shape("pretrained.pos_embed")?.get(1).copied().unwrap_or(1);
    let layers = (0..)
        .take_while(|i| {
            st.get(&format!("pretrained.blocks.{i}.norm1.weight"))
                .is_ok()
        })
        .count();
    let mlp = shape("pretrained.blocks.0.mlp.fc1.weight")?
        .first()
        .copied()
        .unwrap_or(0);
    let neck: Vec<usize> = (0..4)
        .map(|i| {
            Ok(shape(&format!("depth_head.projects.{i}.weight"))?
                .first()
                .copied()
                .unwrap_or(0))
        })
        .collect::<Result<_>>()?;
    let fusion = shape("depth_head.scratch.layer1_rn.weight")?
        .first()
        .copied()
        .unwrap_or(0);
    let head_hidden = shape("depth_head.scratch.output_conv2.0.weight")?
        .first()
        .copied()
        .unwrap_or(0);
    if hidden == 0 || patch == 0 || layers == 0 {
        return Err(Error::UnknownCheckpoint {
            detail: "Depth Anything (original layout): empty backbone".into(),
            path: path.to_path_buf(),
        });
    }
    // The intermediate layers of the original DPT head (ViT-S/B, ViT-L, ViT-G), 1-based.
    let out_indices = match layers {
        12 => vec![3, 6, 9, 12],
        24 => vec![5, 12, 18, 24],
        40 => vec![10, 20, 30, 40],
        n => (n.saturating_sub(3).max(1)..=n).collect(),
    };
    // DINOv2 heads are 64 wide (ViT-S/B/L/G: 6/12/16/24 heads); narrower test models use 8.
    let head_width = if hidden >= 64 { 64 } else { 8 };
    let grid = (((positions.max(1) - 1) as f64).sqrt()) as usize;
    let backbone = BackboneConfig {
        hidden_size: hidden,
        num_hidden_layers: layers,
        num_attention_heads: (hidden / head_width).max(1),
        mlp_ratio: mlp as f64 / hidden as f64,
        image_size: grid * patch,
        patch_size: patch,
        out_indices,
        ..Default::default()
    };
    let mut cfg = DepthConfig {
        backbone_config: backbone,
        patch_size: patch,
        reassemble_hidden_size: hidden,
        neck_hidden_sizes: neck,
        fusion_hidden_size: fusion,
        head_hidden_size: head_hidden,
        ..Default::default()
    };
    cfg.check(path)?;
    let mut map = BTreeMap::new();
    for (name, _) in st.tensors() {
        for (target, transform) in to_transformers(&name, hidden) {
            map.insert(
                target,
                MappedTensor {
                    source: name.clone(),
                    transform,
                },
            );
        }
    }
    Ok((cfg, map))
}
