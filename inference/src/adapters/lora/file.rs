//! Reading a LoRA-family `.safetensors` file into modules (FORMATS §5).
//!
//! Keys are grouped by module: everything before a known suffix (`.lora_down.weight`,
//! `.lora_A.weight`, `.hada_w1_a`, `.lokr_w2_b`, `.alpha`, …) is the module's name as the file
//! spells it. Which model layer a name means is decided later, by [`super::names`].

use crate::io::weights::{open_safetensors, refuse_pickle};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The factors of one adapted layer.
#[derive(Clone, Debug)]
pub enum Factors {
    /// Low rank: `ΔW = up · down` (`mid` = LoCon Tucker core).
    LoRA {
        /// `[r, in(, k, k)]`.
        down: Tensor,
        /// `[out, r(, 1, 1)]`.
        up: Tensor,
        /// Optional Tucker core `[r, r, k, k]`.
        mid: Option<Tensor>,
    },
    /// LoHa: `ΔW = (w1a · w1b) ⊙ (w2a · w2b)`.
    LoHa {
        /// `[out, r]`.
        w1a: Tensor,
        /// `[r, in·k·k]`.
        w1b: Tensor,
        /// `[out, r]`.
        w2a: Tensor,
        /// `[r, in·k·k]`.
        w2b: Tensor,
    },
    /// LoKr: `ΔW = w1 ⊗ w2` (each factor full or a product of two).
    LoKr {
        /// First factor.
        w1: Factor,
        /// Second factor.
        w2: Factor,
    },
    /// A full difference `ΔW` (LyCORIS "full").
    Full(Tensor),
}

/// A LoKr factor: a matrix, or the product `a · b` of two.
#[derive(Clone, Debug)]
pub enum Factor {
    /// Stored whole.
    Full(Tensor),
    /// Stored as `a · b`; `b.shape[0]` is the rank.
    Product(Tensor, Tensor),
}

/// One adapted layer as stored in the file.
#[derive(Clone, Debug)]
pub struct Module {
    /// The name before the suffixes (`lora_unet_…`, `unet.down_blocks.0…`).
    pub name: String,
    /// Its factors.
    pub factors: Factors,
    /// `alpha` when stored (kohya, LyCORIS).
    pub alpha: Option<f32>,
    /// Whether a DoRA magnitude was stored (ignored, as diffusers does).
    pub dora: bool,
}

/// A parsed LoRA file.
#[derive(Clone, Debug)]
pub struct LoraFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its layers, in name order.
    pub modules: Vec<Module>,
    /// Keys with a module suffix Kiln knows but the parts did not form a layer it can apply
    /// (e.g. a LoHa with Tucker cores), or suffixes it does not know at all.
    pub unsupported: Vec<String>,
    /// `lora_adapter_metadata` / `adapter_config`-style alphas by component prefix
    /// ("unet", "text_encoder", "text_encoder_2", or "" for all): `(r, lora_alpha)` plus per-module
    /// overrides.
    pub peft: BTreeMap<String, PeftScale>,
}

/// PEFT's scale settings for one component.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeftScale {
    /// Default rank.
    pub r: Option<f32>,
    /// Default alpha.
    pub alpha: Option<f32>,
    /// rsLoRA: scale `alpha / √r`.
    pub rslora: bool,
    /// Rank per module pattern.
    pub rank_pattern: BTreeMap<String, f32>,
    /// Alpha per module pattern.
    pub alpha_pattern: BTreeMap<String, f32>,
}

/// Key suffixes, longest first where one ends another.
const SUFFIXES: [(&str, Part); 22] = [
    (".lora_down.weight", Part::Down),
    (".lora_up.weight", Part::Up),
    (".lora_mid.weight", Part::Mid),
    (".lora_A.default.weight", Part::Down),
    (".lora_B.default.weight", Part::Up),
    (".lora_A.weight", Part::Down),
    (".lora_B.weight", Part::Up),
    ("_lora.down.weight", Part::Down),
    ("_lora.up.weight", Part::Up),
    (".lora_magnitude_vector", Part::Dora),
    (".dora_scale", Part::Dora),
    (".alpha", Part::Alpha),
    (".hada_w1_a", Part::HadaW1A),
    (".hada_w1_b", Part::HadaW1B),
    (".hada_w2_a", Part::HadaW2A),
    (".hada_w2_b", Part::HadaW2B),
    (".lokr_w1_a", Part::LokrW1A),
    (".lokr_w1_b", Part::LokrW1B),
    (".lokr_w2_a", Part::LokrW2A),
    (".lokr_w2_b", Part::LokrW2B),
    (".lokr_w1", Part::LokrW1),
    (".lokr_w2", Part::LokrW2),
];

/// Suffixes of parts Kiln recognises but does not apply.
const UNSUPPORTED_SUFFIXES: [&str; 6] = [
    ".hada_t1", ".hada_t2", ".lokr_t2", ".diff_b", ".w_norm", ".b_norm",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Down,
    Up,
    Mid,
    Alpha,
    Dora,
    HadaW1A,
    HadaW1B,
    HadaW2A,
    HadaW2B,
    LokrW1,
    LokrW1A,
    LokrW1B,
    LokrW2,
    LokrW2A,
    LokrW2B,
    Diff,
}

/// Splits a key into module name and part.
fn split_key(key: &str) -> Option<(String, Part)> {
    for (suffix, part) in SUFFIXES {
        if let Some(stem) = key.strip_suffix(suffix) {
            // Old diffusers attention processors: `…attn1.processor.to_q_lora.down.weight`.
            let stem = if suffix.starts_with("_lora.") {
                old_processor_name(stem)
            } else {
                stem.to_string()
            };
            return Some((stem, part));
        }
    }
    key.strip_suffix(".diff")
        .map(|stem| (stem.to_string(), Part::Diff))
}

/// `…attn1.processor.to_q` → `…attn1.to_q`; `to_out` → `to_out.0`.
fn old_processor_name(stem: &str) -> String {
    let stem = stem.replace(".processor.", ".");
    match stem.strip_suffix(".to_out") {
        Some(base) => format!("{base}.to_out.0"),
        None => stem,
    }
}

impl LoraFile {
    /// Reads and groups every tensor of a LoRA file (in f32, on the CPU).
    pub fn open(path: &Path) -> Result<LoraFile> {
        refuse_pickle(path)?;
        let st = open_safetensors(&[path.to_path_buf()])?;
        let mut parts: BTreeMap<String, BTreeMap<Part, Tensor>> = BTreeMap::new();
        let mut unsupported = Vec::new();
        for (key, _) in st.tensors() {
            let Some((name, part)) = split_key(&key) else {
                unsupported.push(key);
                continue;
            };
            if UNSUPPORTED_SUFFIXES.iter().any(|s| key.ends_with(s)) {
                unsupported.push(key);
                continue;
            }
            let tensor = st.load(&key, &Device::Cpu)?.to_dtype(DType::F32)?;
            parts.entry(name).or_default().insert(part, tensor);
        }
        for key in st.tensors().into_iter().map(|(k, _)| k) {
            if UNSUPPORTED_SUFFIXES.iter().any(|s| key.ends_with(s)) {
                // Tucker cores and norm deltas: the whole module is skipped, not half-applied.
                if let Some(module) = UNSUPPORTED_SUFFIXES
                    .iter()
                    .find_map(|s| key.strip_suffix(s))
                {
                    parts.remove(module);
                }
            }
        }
        let mut modules = Vec::with_capacity(parts.len());
        for (name, mut p) in parts {
            let alpha = match p.remove(&Part::Alpha) {
                Some(a) => Some(scalar(&a, path, &name)?),
                None => None,
            };
            let dora = p.remove(&Part::Dora).is_some();
            match assemble(p) {
                Some(factors) => modules.push(Module {
                    name,
                    factors,
                    alpha,
                    dora,
                }),
                None => unsupported.push(name),
            }
        }
        unsupported.sort();
        unsupported.dedup();
        let peft = peft_scales(&metadata_of(path)?);
        if modules.is_empty() {
            return Err(Error::Lora {
                detail: "no LoRA, LoHa or LoKr layers found (is this a LoRA file?)".into(),
                path: path.to_path_buf(),
            });
        }
        Ok(LoraFile {
            path: path.to_path_buf(),
            modules,
            unsupported,
            peft,
        })
    }
}

/// Builds the factors from a module's parts, or `None` when they are incomplete.
fn assemble(mut p: BTreeMap<Part, Tensor>) -> Option<Factors> {
    if let (Some(down), Some(up)) = (p.remove(&Part::Down), p.remove(&Part::Up)) {
        let mid = p.remove(&Part::Mid);
        return Some(Factors::LoRA { down, up, mid });
    }
    if let (Some(w1a), Some(w1b), Some(w2a), Some(w2b)) = (
        p.remove(&Part::HadaW1A),
        p.remove(&Part::HadaW1B),
        p.remove(&Part::HadaW2A),
        p.remove(&Part::HadaW2B),
    ) {
        return Some(Factors::LoHa { w1a, w1b, w2a, w2b });
    }
    let w1 = factor(&mut p, Part::LokrW1, Part::LokrW1A, Part::LokrW1B);
    let w2 = factor(&mut p, Part::LokrW2, Part::LokrW2A, Part::LokrW2B);
    if let (Some(w1), Some(w2)) = (w1, w2) {
        return Some(Factors::LoKr { w1, w2 });
    }
    p.remove(&Part::Diff).map(Factors::Full)
}

fn factor(p: &mut BTreeMap<Part, Tensor>, full: Part, a: Part, b: Part) -> Option<Factor> {
    if let Some(w) = p.remove(&full) {
        return Some(Factor::Full(w));
    }
    match (p.remove(&a), p.remove(&b)) {
        (Some(a), Some(b)) => Some(Factor::Product(a, b)),
        _ => None,
    }
}

fn scalar(t: &Tensor, path: &Path, name: &str) -> Result<f32> {
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    match values.as_slice() {
        [v] if v.is_finite() => Ok(*v),
        _ => Err(Error::Lora {
            detail: format!("{name}.alpha is not a finite scalar"),
            path: path.to_path_buf(),
        }),
    }
}

/// The safetensors `__metadata__` strings.
fn metadata_of(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io(e, path))?;
    let len = u64::from_le_bytes(len) as usize;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(e, path))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| Error::InvalidFile {
            format: "safetensors",
            detail: format!("header is not JSON: {e}"),
            path: path.to_path_buf(),
        })?;
    let mut out = BTreeMap::new();
    if let Some(meta) = json.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(out)
}

/// PEFT scales from diffusers' `lora_adapter_metadata` (a JSON object: either one LoraConfig, or
/// one per component under `unet.`/`text_encoder.`/`text_encoder_2.`-prefixed keys).
fn peft_scales(metadata: &BTreeMap<String, String>) -> BTreeMap<String, PeftScale> {
    let mut out = BTreeMap::new();
    let Some(text) = metadata.get("lora_adapter_metadata") else {
        return out;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return out;
    };
    let mut grouped: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (key, value) in map {
        let (component, field) = match key.rsplit_once('.') {
            Some((c, f)) if !c.contains('.') || c.starts_with("text_encoder") => {
                (c.to_string(), f.to_string())
            }
            _ => (String::new(), key.clone()),
        };
        // A value that is itself an object keyed by component (`{"unet": {...}}`).
        if let serde_json::Value::Object(inner) = &value
            && field != "rank_pattern"
            && field != "alpha_pattern"
        {
            grouped
                .entry(key.clone())
                .or_default()
                .extend(inner.clone());
            continue;
        }
        grouped.entry(component).or_default().insert(field, value);
    }
    for (component, fields) in grouped {
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(serde_json::Value::as_f64)
                .map(|v| v as f32)
        };
        let pattern = |k: &str| -> BTreeMap<String, f32> {
            fields
                .get(k)
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()? as f32)))
                        .collect()
                })
                .unwrap_or_default()
        };
        out.insert(
            component,
            PeftScale {
                r: num("r"),
                alpha: num("lora_alpha"),
                rslora: fields
                    .get("use_rslora")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                rank_pattern: pattern("rank_pattern"),
                alpha_pattern: pattern("alpha_pattern"),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_module_and_part() {
        let cases = [
            (
                "lora_unet_a_b.lora_down.weight",
                "lora_unet_a_b",
                Part::Down,
            ),
            ("unet.x.to_q.lora_A.weight", "unet.x.to_q", Part::Down),
            ("lora_te_x.alpha", "lora_te_x", Part::Alpha),
            ("lora_unet_y.lokr_w1", "lora_unet_y", Part::LokrW1),
            ("lora_unet_y.lokr_w1_a", "lora_unet_y", Part::LokrW1A),
            (
                "unet.down.attn1.processor.to_out_lora.up.weight",
                "unet.down.attn1.to_out.0",
                Part::Up,
            ),
            ("lora_unet_z.diff", "lora_unet_z", Part::Diff),
        ];
        for (key, name, part) in cases {
            assert_eq!(split_key(key), Some((name.to_string(), part)), "{key}");
        }
        assert_eq!(split_key("something_else"), None);
    }

    #[test]
    fn peft_metadata_per_component() {
        let mut meta = BTreeMap::new();
        meta.insert(
            "lora_adapter_metadata".to_string(),
            r#"{"unet.r": 4, "unet.lora_alpha": 8, "text_encoder.r": 2, "text_encoder.lora_alpha": 2, "text_encoder.use_rslora": true}"#.to_string(),
        );
        let scales = peft_scales(&meta);
        assert_eq!(scales["unet"].r, Some(4.0));
        assert_eq!(scales["unet"].alpha, Some(8.0));
        assert!(scales["text_encoder"].rslora);
    }
}
