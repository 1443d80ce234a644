//! Telling model files apart from their safetensors header alone.
//!
//! Order of the checks: LoRA (`lora_*`, `.lora_down.`, `.lora_A.`, LoHa/LoKr), ControlNet
//! (`control_model.`, `controlnet_*`, `input_hint_block.`), IP-Adapter (`image_proj.`,
//! `ip_adapter.`), embedding (`emb_params`, `string_to_param.*`, `clip_l`/`clip_g`), standalone
//! VAE (`first_stage_model.*` without a UNet, or `encoder.*` + `decoder.*`), and otherwise a
//! checkpoint as `kiln_inference::io::ldm::inspect_single_file` reads it.

use super::{ModelEntry, ModelFileKind, display_name};
use kiln_inference::io::family::Family;
use kiln_inference::io::ldm::{Header, TensorMeta, inspect_single_file};
use kiln_inference::io::model::ModelFiles;
use std::io::Read;
use std::ops::Bound;
use std::path::Path;

/// Largest safetensors header accepted (the Hugging Face limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Deepest sub-folder counted in a diffusers folder's size.
const MAX_SIZE_DEPTH: usize = 3;

/// The problem text of pickle files.
pub(super) const PICKLE_PROBLEM: &str = "pickle: convert to safetensors (pickle files can run \
                                         code when loaded, so Kiln never opens them)";

/// Reads and checks a safetensors header: the JSON is well formed and every tensor's data lies
/// inside the file (a truncated download fails here). The error is a short reason.
pub(super) fn read_header(path: &Path, file_len: u64) -> Result<Header, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| format!("not a safetensors file: only {file_len} bytes long"))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len.saturating_add(8) > file_len {
        return Err(format!(
            "corrupt safetensors header: header length {header_len} does not fit a \
             {file_len}-byte file (truncated, or not safetensors)"
        ));
    }
    let mut json = Vec::new();
    file.take(header_len)
        .read_to_end(&mut json)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| format!("corrupt safetensors header (not JSON: {e})"))?;
    let Some(object) = value.as_object() else {
        return Err("corrupt safetensors header (not a JSON object)".into());
    };
    let data_len = file_len - 8 - header_len;
    let mut header = Header::new();
    let mut data_end = 0u64;
    for (name, info) in object {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype").and_then(|d| d.as_str());
        let shape: Option<Vec<usize>> =
            info.get("shape")
                .and_then(|s| s.as_array())
                .and_then(|dims| {
                    dims.iter()
                        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                        .collect()
                });
        let offsets = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)));
        let (Some(dtype), Some(shape), Some((begin, end))) = (dtype, shape, offsets) else {
            return Err(format!(
                "corrupt safetensors header (bad entry for tensor {name:?})"
            ));
        };
        if begin > end {
            return Err(format!(
                "corrupt safetensors header (bad offsets of {name:?})"
            ));
        }
        data_end = data_end.max(end);
        header.insert(
            name.clone(),
            TensorMeta {
                dtype: dtype.to_owned(),
                shape,
            },
        );
    }
    if data_end > data_len {
        return Err(format!(
            "truncated file: the tensors need {data_end} bytes of data, the file holds \
             {data_len} (incomplete download?)"
        ));
    }
    Ok(header)
}

fn has_prefix(header: &Header, prefix: &str) -> bool {
    header
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .next()
        .is_some_and(|(name, _)| name.starts_with(prefix))
}

/// The family whose cross-attention context has this width.
fn family_from_context_width(width: usize) -> Option<Family> {
    match width {
        768 => Some(Family::Sd1),
        1024 => Some(Family::Sd2),
        2048 => Some(Family::Sdxl),
        1280 => Some(Family::SdxlRefiner),
        _ => None,
    }
}

/// Input width (second dimension) of the first tensor whose name passes `test`.
fn input_width(header: &Header, test: impl Fn(&str) -> bool) -> Option<usize> {
    header
        .iter()
        .find(|(name, meta)| meta.shape.len() == 2 && test(name))
        .and_then(|(_, meta)| meta.shape.get(1).copied())
}

fn is_lora(header: &Header) -> bool {
    header.keys().any(|n| {
        n.starts_with("lora_")
            || n.contains(".lora_down.")
            || n.contains(".lora_up.")
            || n.contains(".lora_A.")
            || n.contains(".lora_B.")
            || n.contains(".hada_w1_")
            || n.contains(".lokr_w1")
    })
}

/// SDXL LoRAs train two text encoders (`lora_te1_`/`lora_te2_`); otherwise the width of a
/// cross-attention key projection tells the family.
fn lora_family(header: &Header) -> Option<Family> {
    if has_prefix(header, "lora_te2_") || has_prefix(header, "lora_te1_") {
        return Some(Family::Sdxl);
    }
    let width = input_width(header, |n| {
        (n.contains("attn2_to_k") || n.contains("attn2.to_k"))
            && (n.ends_with("lora_down.weight") || n.ends_with("lora_A.weight"))
    })?;
    family_from_context_width(width)
}

fn is_controlnet(header: &Header) -> bool {
    has_prefix(header, "control_model.")
        || has_prefix(header, "controlnet_")
        || has_prefix(header, "input_hint_block.")
        || header.keys().any(|n| {
            n.contains("controlnet_cond_embedding.") || n.contains("controlnet_down_blocks.")
        })
}

fn controlnet_family(header: &Header) -> Option<Family> {
    if header
        .keys()
        .any(|n| n.contains("label_emb.") || n.contains("add_embedding."))
    {
        return Some(Family::Sdxl);
    }
    family_from_context_width(input_width(header, |n| n.ends_with("attn2.to_k.weight"))?)
}

fn is_ip_adapter(header: &Header) -> bool {
    has_prefix(header, "image_proj.") || has_prefix(header, "ip_adapter.")
}

fn ip_adapter_family(header: &Header) -> Option<Family> {
    family_from_context_width(input_width(header, |n| n.ends_with("to_k_ip.weight"))?)
}

fn is_embedding(header: &Header) -> bool {
    header.keys().all(|n| {
        matches!(n.as_str(), "emb_params" | "clip_l" | "clip_g")
            || n.starts_with("string_to_param.")
    })
}

fn embedding_family(header: &Header) -> Option<Family> {
    if header.contains_key("clip_g") {
        return Some(Family::Sdxl);
    }
    let (_, meta) = header.iter().next()?;
    family_from_context_width(*meta.shape.last()?)
}

fn is_vae(header: &Header) -> bool {
    let ldm_vae =
        has_prefix(header, "first_stage_model.") && !has_prefix(header, "model.diffusion_model.");
    ldm_vae
        || (header.contains_key("encoder.conv_in.weight")
            && header.contains_key("decoder.conv_in.weight"))
}

/// Classifies a `.safetensors` file from its header.
pub(super) fn safetensors_file(path: &Path, size_bytes: u64) -> ModelEntry {
    let mut entry = ModelEntry {
        path: path.to_path_buf(),
        name: display_name(path),
        kind: ModelFileKind::Unknown,
        family: None,
        size_bytes,
        problem: None,
        hash: None,
    };
    let header = match read_header(path, size_bytes) {
        Ok(header) if header.is_empty() => {
            entry.problem = Some("the file holds no tensors".into());
            return entry;
        }
        Ok(header) => header,
        Err(problem) => {
            entry.problem = Some(problem);
            return entry;
        }
    };
    (entry.kind, entry.family) = if is_lora(&header) {
        (ModelFileKind::Lora, lora_family(&header))
    } else if is_controlnet(&header) {
        (ModelFileKind::ControlNet, controlnet_family(&header))
    } else if is_ip_adapter(&header) {
        (ModelFileKind::IpAdapter, ip_adapter_family(&header))
    } else if is_embedding(&header) {
        (ModelFileKind::Embedding, embedding_family(&header))
    } else if is_vae(&header) {
        (ModelFileKind::Vae, None)
    } else {
        match inspect_single_file(&header, path) {
            Ok(single) => (ModelFileKind::Checkpoint, Some(single.kind.family)),
            Err(error) => {
                entry.problem = Some(error.to_string());
                let kind = if has_prefix(&header, "model.diffusion_model.") {
                    ModelFileKind::Checkpoint
                } else {
                    ModelFileKind::Unknown
                };
                (kind, None)
            }
        }
    };
    entry
}

/// A pickle file: listed with its problem; the kind is guessed from its folder's name.
pub(super) fn pickle_file(path: &Path, size_bytes: u64) -> ModelEntry {
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .map(|f| f.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let kind = if folder.contains("lora") || folder.contains("lycoris") {
        ModelFileKind::Lora
    } else if folder.contains("controlnet") {
        ModelFileKind::ControlNet
    } else if folder.contains("vae") {
        ModelFileKind::Vae
    } else if folder.contains("embedding") {
        ModelFileKind::Embedding
    } else if super::lowercase_extension(path) == "ckpt"
        || folder.contains("stable-diffusion")
        || folder.contains("checkpoint")
    {
        ModelFileKind::Checkpoint
    } else {
        ModelFileKind::Unknown
    };
    ModelEntry {
        path: path.to_path_buf(),
        name: display_name(path),
        kind,
        family: None,
        size_bytes,
        problem: Some(PICKLE_PROBLEM.into()),
        hash: None,
    }
}

/// Total size of the files under `dir`.
fn folder_size(dir: &Path, depth: usize) -> u64 {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .map(|entry| match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_dir() && depth < MAX_SIZE_DEPTH => folder_size(&entry.path(), depth + 1),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

/// A diffusers folder, checked by opening it as the engine would (headers only).
pub(super) fn diffusers_folder(dir: &Path) -> ModelEntry {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.to_string_lossy().into_owned());
    let (family, problem) = match ModelFiles::open(dir) {
        Ok(files) => (Some(files.kind.family), None),
        Err(error) => (None, Some(error.to_string())),
    };
    ModelEntry {
        path: dir.to_path_buf(),
        name,
        kind: ModelFileKind::DiffusersFolder,
        family,
        size_bytes: folder_size(dir, 0),
        problem,
        hash: None,
    }
}
