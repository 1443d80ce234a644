//! Finding a model's parts on disk: a diffusers folder or a single-file checkpoint.
//!
//! The result, [`ModelFiles`], gives each component (unet, vae, text_encoder, text_encoder_2)
//! as a diffusers config JSON plus [`Weights`] under diffusers names, so everything after this
//! point is the same for both layouts.

use crate::io::family::{Family, ModelKind};
use crate::io::weights::{Weights, open_safetensors, refuse_pickle};
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One model component: its config and weights.
#[derive(Clone)]
pub struct Component {
    /// diffusers / transformers `config.json` content.
    pub config: serde_json::Value,
    /// Weights under diffusers names.
    pub weights: Weights,
}

/// Tokenizer files of a folder, if it has them.
#[derive(Clone, Debug, Default)]
pub struct TokenizerFiles {
    /// `vocab.json` and `merges.txt`.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Padding token id (49407 for CLIP-L, 0 for OpenCLIP-style `"!"`).
    pub pad_id: u32,
}

/// A model located on disk.
#[derive(Clone)]
pub struct ModelFiles {
    /// The path the user gave.
    pub path: PathBuf,
    /// Family and variant.
    pub kind: ModelKind,
    /// Components by diffusers name.
    pub components: BTreeMap<String, Component>,
    /// `scheduler/scheduler_config.json` content (family default for single files).
    pub scheduler_config: Option<String>,
    /// Tokenizer for `text_encoder`.
    pub tokenizer: TokenizerFiles,
    /// Tokenizer for `text_encoder_2`.
    pub tokenizer_2: TokenizerFiles,
    /// SDXL: a missing negative prompt means zero embeddings.
    pub force_zeros_for_empty_prompt: bool,
    /// The file to hash for the A1111 `Model hash` (single file, or the folder's UNet file).
    pub hash_file: PathBuf,
}

/// CLIP-L style padding (`<|endoftext|>`).
pub const PAD_EOS: u32 = 49407;
/// OpenCLIP style padding (`"!"`).
pub const PAD_EXCLAMATION: u32 = 0;

impl ModelFiles {
    /// Opens a diffusers folder or a single `.safetensors` checkpoint.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            open_folder(path)
        } else if path.is_file() {
            refuse_pickle(path)?;
            open_single_file(path)
        } else {
            Err(Error::io(
                std::io::Error::new(std::io::ErrorKind::NotFound, "model not found"),
                path,
            ))
        }
    }

    /// A component by name, or a clear error.
    pub fn component(&self, name: &str) -> Result<&Component> {
        self.components
            .get(name)
            .ok_or_else(|| Error::UnknownCheckpoint {
                detail: format!("the model has no {name}"),
                path: self.path.clone(),
            })
    }

    /// AutoV2 hash: first 10 hex chars of SHA-256 of the whole file.
    pub fn autov2_hash(&self) -> Result<String> {
        Ok(sha256_file(&self.hash_file)?.chars().take(10).collect())
    }
}

/// A config object without its `null` entries, so serde defaults apply to them (published
/// configs write e.g. `"upcast_attention": null`).
pub fn without_nulls(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
    sha256_stream(file, path)
}

/// A1111's LoRA hash (kohya "addnet" hash, FORMATS §1.1): the first 12 hex digits of the
/// SHA-256 of a safetensors file's bytes after its header.
pub fn lora_short_hash(path: &Path) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io(e, path))?;
    let start = 8u64.saturating_add(u64::from_le_bytes(len));
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(e, path))?;
    let full = sha256_stream(file, path)?;
    Ok(full.chars().take(12).collect())
}

fn sha256_stream(mut file: std::fs::File, path: &Path) -> Result<String> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(e, path))?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(e, path))?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
        format: "JSON",
        detail: e.to_string(),
        path: path.to_path_buf(),
    })
}

/// The safetensors files of a component folder: plain, `.fp16` variant, or sharded by index.
pub(crate) fn component_weight_files(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    for variant in ["", ".fp16", ".bf16"] {
        let file = dir.join(format!("{stem}{variant}.safetensors"));
        if file.is_file() {
            return Ok(vec![file]);
        }
        let index = dir.join(format!("{stem}.safetensors.index{variant}.json"));
        if index.is_file() {
            let json = read_json(&index)?;
            let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
                return Err(Error::InvalidFile {
                    format: "safetensors index",
                    detail: "no weight_map".into(),
                    path: index,
                });
            };
            let mut shards: Vec<PathBuf> = map
                .values()
                .filter_map(|v| v.as_str())
                .map(|s| dir.join(s))
                .collect();
            shards.sort();
            shards.dedup();
            return Ok(shards);
        }
    }
    let pickles = ["bin", "ckpt", "pt"]
        .iter()
        .any(|ext| dir.join(format!("{stem}.{ext}")).is_file());
    let detail = if pickles {
        format!(
            "{stem} is only present as a pickle (.bin); Kiln loads .safetensors only \
             (re-save the folder with safe_serialization=True)"
        )
    } else {
        format!("no {stem}.safetensors")
    };
    Err(Error::UnknownCheckpoint {
        detail,
        path: dir.to_path_buf(),
    })
}

fn load_component(root: &Path, name: &str, stem: &str) -> Result<Option<Component>> {
    let dir = root.join(name);
    if !dir.is_dir() {
        return Ok(None);
    }
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(Error::UnknownCheckpoint {
            detail: format!("{name}/config.json is missing"),
            path: root.to_path_buf(),
        });
    }
    let config = read_json(&config_path)?;
    let files = component_weight_files(&dir, stem)?;
    let st = Arc::new(open_safetensors(&files)?);
    Ok(Some(Component {
        config,
        weights: Weights::identity(st, name),
    }))
}

fn tokenizer_files(root: &Path, name: &str, default_pad: u32) -> TokenizerFiles {
    let dir = root.join(name);
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    let files = (vocab.is_file() && merges.is_file()).then_some((vocab, merges));
    let pad_id = std::fs::read_to_string(dir.join("special_tokens_map.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            let pad = v.get("pad_token")?;
            let text = pad.as_str().or_else(|| pad.get("content")?.as_str())?;
            Some(if text == "!" {
                PAD_EXCLAMATION
            } else {
                PAD_EOS
            })
        })
        .unwrap_or(default_pad);
    TokenizerFiles { files, pad_id }
}

fn open_folder(root: &Path) -> Result<ModelFiles> {
    let index_path = root.join("model_index.json");
    if !index_path.is_file() {
        return Err(Error::UnknownCheckpoint {
            detail: "folder has no model_index.json (expected a diffusers pipeline folder)".into(),
            path: root.to_path_buf(),
        });
    }
    let index = read_json(&index_path)?;
    let class = index
        .get("_class_name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let mut components = BTreeMap::new();
    for (name, stem) in [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
        ("text_encoder_2", "model"),
    ] {
        let listed = index
            .get(name)
            .is_some_and(|v| v.is_array() && !v.get(0).is_some_and(|x| x.is_null()));
        match load_component(root, name, stem)? {
            Some(c) => {
                components.insert(name.to_string(), c);
            }
            None if listed => {
                return Err(Error::UnknownCheckpoint {
                    detail: format!(
                        "model_index.json lists {name} but the {name}/ folder is missing"
                    ),
                    path: root.to_path_buf(),
                });
            }
            None => {}
        }
    }
    for needed in ["unet", "vae"] {
        if !components.contains_key(needed) {
            return Err(Error::UnknownCheckpoint {
                detail: format!("the {needed}/ folder is missing"),
                path: root.to_path_buf(),
            });
        }
    }
    let unet_cfg = components
        .get("unet")
        .map(|c| c.config.clone())
        .unwrap_or_default();
    let family = folder_family(&class, &components, root)?;
    let in_channels = unet_cfg
        .get("in_channels")
        .and_then(|v| v.as_u64())
        .unwrap_or(4);
    let scheduler_path = root.join("scheduler").join("scheduler_config.json");
    let scheduler_config = std::fs::read_to_string(&scheduler_path).ok();
    let v_prediction = scheduler_config
        .as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| {
            v.get("prediction_type")?
                .as_str()
                .map(|p| p == "v_prediction")
        });
    let mut kind = ModelKind::new(family);
    kind.inpainting = in_channels == 9;
    kind.v_prediction = v_prediction;
    let second_pad = if family == Family::Sd1 {
        PAD_EOS
    } else {
        PAD_EXCLAMATION
    };
    let first_pad = if family == Family::Sd2 {
        PAD_EXCLAMATION
    } else {
        PAD_EOS
    };
    let hash_file = component_weight_files(&root.join("unet"), "diffusion_pytorch_model")?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(ModelFiles {
        path: root.to_path_buf(),
        kind,
        components,
        scheduler_config,
        tokenizer: tokenizer_files(root, "tokenizer", first_pad),
        tokenizer_2: tokenizer_files(root, "tokenizer_2", second_pad),
        force_zeros_for_empty_prompt: index
            .get("force_zeros_for_empty_prompt")
            .and_then(|v| v.as_bool())
            .unwrap_or(family.is_sdxl()),
        hash_file,
    })
}

fn folder_family(
    class: &str,
    components: &BTreeMap<String, Component>,
    root: &Path,
) -> Result<Family> {
    let has = |n: &str| components.contains_key(n);
    match class {
        c if c.starts_with("StableDiffusionXL") => Ok(if has("text_encoder") {
            Family::Sdxl
        } else {
            Family::SdxlRefiner
        }),
        c if c.starts_with("StableDiffusion") && !c.contains("Video") && !c.contains('3') => {
            // SD2's OpenCLIP-H text encoder uses exact gelu; SD1's CLIP-L uses quick_gelu.
            let act = components
                .get("text_encoder")
                .and_then(|c| c.config.get("hidden_act")?.as_str().map(str::to_string))
                .unwrap_or_default();
            Ok(if act == "gelu" {
                Family::Sd2
            } else {
                Family::Sd1
            })
        }
        other => Err(Error::UnknownCheckpoint {
            detail: format!("unsupported pipeline class {other:?}"),
            path: root.to_path_buf(),
        }),
    }
}

fn open_single_file(path: &Path) -> Result<ModelFiles> {
    let files = vec![path.to_path_buf()];
    let st = Arc::new(open_safetensors(&files)?);
    let header = crate::io::weights::header_of(&st);
    let single = crate::io::ldm::inspect_single_file(&header, path)?;
    let family = single.kind.family;
    let mut components = BTreeMap::new();
    for c in single.components {
        components.insert(
            c.name.to_string(),
            Component {
                config: c.config,
                weights: Weights::mapped(st.clone(), c.tensors, c.name),
            },
        );
    }
    let scheduler_config = Some(default_scheduler_config(&single.kind).to_string());
    let (first_pad, second_pad) = match family {
        Family::Sd2 => (PAD_EXCLAMATION, PAD_EXCLAMATION),
        _ => (PAD_EOS, PAD_EXCLAMATION),
    };
    Ok(ModelFiles {
        path: path.to_path_buf(),
        kind: single.kind,
        components,
        scheduler_config,
        tokenizer: TokenizerFiles {
            files: None,
            pad_id: first_pad,
        },
        tokenizer_2: TokenizerFiles {
            files: None,
            pad_id: second_pad,
        },
        force_zeros_for_empty_prompt: family.is_sdxl(),
        hash_file: path.to_path_buf(),
    })
}

/// The scheduler config diffusers' single-file loader uses for each family.
fn default_scheduler_config(kind: &ModelKind) -> String {
    // diffusers' single-file default for SD2 is the 2.1 (v-prediction) config.
    let v_prediction = kind.v_prediction.unwrap_or(kind.family == Family::Sd2);
    let prediction = if v_prediction {
        "v_prediction"
    } else {
        "epsilon"
    };
    if kind.family.is_sdxl() {
        format!(
            r#"{{"_class_name":"EulerDiscreteScheduler","beta_end":0.012,"beta_schedule":"scaled_linear","beta_start":0.00085,"interpolation_type":"linear","num_train_timesteps":1000,"prediction_type":"{prediction}","sample_max_value":1.0,"set_alpha_to_one":false,"skip_prk_steps":true,"steps_offset":1,"timestep_spacing":"leading","trained_betas":null,"use_karras_sigmas":false}}"#
        )
    } else {
        format!(
            r#"{{"_class_name":"PNDMScheduler","beta_end":0.012,"beta_schedule":"scaled_linear","beta_start":0.00085,"num_train_timesteps":1000,"prediction_type":"{prediction}","set_alpha_to_one":false,"skip_prk_steps":true,"steps_offset":1,"trained_betas":null,"clip_sample":false}}"#
        )
    }
}
