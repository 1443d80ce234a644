//! The model catalog (`assets/catalog.toml`, embedded): curated models with their Hugging Face
//! repository and files, licence, family, kind and the presets that need them.
//!
//! Presets name catalog ids; when a preset's model is missing, the catalog says what to download.
//! The model manager (issue 8) builds its downloads on the same entries.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::LazyLock;

/// Environment variable naming a catalog file to use instead of the built-in one (tests,
/// organisations with their own mirror of the models).
pub const CATALOG_ENV: &str = "KILN_CATALOG";

/// The catalog as shipped in the binary.
const CATALOG_TOML: &str = include_str!("../../../assets/catalog.toml");

/// File stems that say nothing about the model (the folder or repository names it instead).
const GENERIC_STEMS: [&str; 6] = [
    "diffusion_pytorch_model",
    "model",
    "pytorch_lora_weights",
    "adapter_model",
    "pytorch_model",
    "config",
];

/// Every curated model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Format version of the catalog file.
    pub schema: u32,
    /// The entries, in file order.
    #[serde(default, rename = "model")]
    pub models: Vec<CatalogModel>,
}

/// One downloadable model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogModel {
    /// Stable id (`sdxl-base-1.0`, `lora-clay-animation-redmond-sdxl`, …).
    pub id: String,
    /// Name shown to users.
    pub name: String,
    /// `checkpoint`, `lora`, `controlnet`, `vae`, `ip-adapter`, `tagger`, `face`, `video`,
    /// `taesd`, `preprocessor`.
    pub kind: String,
    /// Model family id (`sd1`, `sdxl`, …) when it applies.
    pub family: Option<String>,
    /// Hugging Face Hub repository, `owner/name`.
    pub repo: String,
    /// Files to download, paths relative to the repository root.
    pub files: Vec<CatalogFile>,
    /// Licence id as the model card states it.
    pub license: String,
    /// Where the licence text is.
    pub license_url: Option<String>,
    /// The licence forbids commercial use.
    pub non_commercial: bool,
    /// LoRA trigger words from the model card.
    pub trigger_words: Vec<String>,
    /// Built-in presets that use this model.
    pub presets: Vec<String>,
    /// Anything a user should know before downloading.
    pub notes: Option<String>,
    /// Git revision (branch, tag or commit) to download; `main` when absent.
    pub revision: Option<String>,
    /// Folder name in the model library (under the kind's folder); the repository's name when
    /// absent.
    pub folder: Option<String>,
    /// The Hub gates the files: accept the licence on the model page and use a Hub token.
    pub gated: bool,
    /// Offered first when the library has no model at all.
    pub recommended: bool,
}

/// One file of a catalog model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogFile {
    /// Path in the repository.
    pub path: String,
    /// Exact size in bytes, when known.
    pub size_bytes: Option<u64>,
    /// SHA-256 (hex), when known.
    pub sha256: Option<String>,
    /// Size as the Hub lists it, in MB (for "needs about N GB" hints).
    pub approx_size_mb: Option<u64>,
    /// Path inside the model's library folder when it differs from `path` (e.g. a repository
    /// sub-folder dropped).
    pub local: Option<String>,
    /// A PyTorch pickle published in no other form: after the download it is converted once to
    /// `.safetensors` beside it (`kiln models convert`, a data-only reader), which is what
    /// Kiln loads.
    pub convert: bool,
}

static BUILTIN: LazyLock<Result<Catalog, String>> =
    LazyLock::new(|| Catalog::from_toml(CATALOG_TOML));

impl Catalog {
    /// The catalog shipped with Kiln. Empty if the embedded file does not parse (a test makes
    /// sure it does; see [`Catalog::builtin_error`]).
    pub fn builtin() -> &'static Catalog {
        static EMPTY: Catalog = Catalog {
            schema: 0,
            models: Vec::new(),
        };
        BUILTIN.as_ref().unwrap_or(&EMPTY)
    }

    /// Why the embedded catalog did not parse, if it did not.
    pub fn builtin_error() -> Option<&'static str> {
        BUILTIN.as_ref().err().map(String::as_str)
    }

    /// Parses catalog TOML.
    pub fn from_toml(text: &str) -> Result<Catalog, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads a catalog file.
    pub fn load_file(path: &Path) -> Result<Catalog, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read catalog ({e}): {}", path.display()))?;
        Catalog::from_toml(&text).map_err(|e| format!("invalid catalog {}: {e}", path.display()))
    }

    /// The catalog file named by `KILN_CATALOG` when set, else the built-in catalog.
    pub fn from_env() -> Result<Catalog, String> {
        match std::env::var_os(CATALOG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Catalog::load_file(Path::new(&path)),
            None => match Catalog::builtin_error() {
                Some(error) => Err(format!("the built-in catalog does not parse: {error}")),
                None => Ok(Catalog::builtin().clone()),
            },
        }
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&CatalogModel> {
        self.models.iter().find(|m| m.id == id)
    }
}

impl CatalogModel {
    /// Approximate download size in MB (sum of the known file sizes).
    pub fn approx_size_mb(&self) -> u64 {
        self.files
            .iter()
            .map(|f| {
                f.size_bytes
                    .map(|b| b.div_ceil(1_000_000))
                    .or(f.approx_size_mb)
                    .unwrap_or(0)
            })
            .sum()
    }

    /// `https://huggingface.co/<repo>`.
    pub fn url(&self) -> String {
        format!("https://huggingface.co/{}", self.repo)
    }

    /// Names a local copy is likely to have: the stems of its weight files (unless generic,
    /// like `model` or `diffusion_pytorch_model`), the repository's name and the catalog id.
    pub fn name_hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        for file in &self.files {
            let path = Path::new(&file.path);
            let weights = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("safetensors" | "onnx" | "ckpt" | "pt" | "bin" | "pth" | "sft")
            );
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let base = stem.split('.').next().unwrap_or_default();
            if weights && !base.is_empty() && !GENERIC_STEMS.contains(&base) {
                hints.push(stem.to_owned());
            }
        }
        if let Some(name) = self.repo.rsplit('/').next().filter(|n| !n.is_empty()) {
            hints.push(name.to_owned());
        }
        hints.push(self.id.clone());
        hints.dedup();
        hints
    }

    /// One line for messages: "ClayAnimation.Redmond (SDXL LoRA) — catalog id
    /// lora-clay-animation-redmond-sdxl, https://huggingface.co/…, about 171 MB".
    pub fn describe(&self) -> String {
        let size = match self.approx_size_mb() {
            0 => String::new(),
            mb if mb >= 1000 => format!(", about {:.1} GB", mb as f64 / 1000.0),
            mb => format!(", about {mb} MB"),
        };
        format!(
            "{} — catalog id {}, {}{size}",
            self.name,
            self.id,
            self.url()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_ids_are_unique() {
        assert_eq!(Catalog::builtin_error(), None);
        let catalog = Catalog::builtin();
        assert_eq!(catalog.schema, 1);
        assert!(catalog.models.len() >= 8);
        let mut ids: Vec<&str> = catalog.models.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate catalog ids");
        for model in &catalog.models {
            assert!(
                !model.repo.is_empty() && model.repo.contains('/'),
                "{}",
                model.id
            );
            assert!(!model.files.is_empty(), "{} lists no files", model.id);
            assert!(!model.license.is_empty(), "{} has no licence", model.id);
            assert!(
                [
                    "checkpoint",
                    "lora",
                    "controlnet",
                    "vae",
                    "ip-adapter",
                    "tagger",
                    "face",
                    "video",
                    "taesd",
                    "preprocessor",
                    "instantid"
                ]
                .contains(&model.kind.as_str()),
                "{}: unknown kind {}",
                model.id,
                model.kind
            );
            for file in &model.files {
                let lower = file.path.to_ascii_lowercase();
                // A pickle only where it is converted to safetensors right after the download.
                assert!(
                    [".safetensors", ".onnx", ".json", ".csv", ".txt"]
                        .iter()
                        .any(|ext| lower.ends_with(ext))
                        || (file.convert && lower.ends_with(".bin")),
                    "{}: only safetensors, ONNX and small text files, never pickles: {}",
                    model.id,
                    file.path
                );
                if let Some(sha) = &file.sha256 {
                    assert_eq!(sha.len(), 64, "{}", model.id);
                    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()), "{}", model.id);
                }
            }
        }
    }

    #[test]
    fn catalog_has_the_model_managers_list() {
        let catalog = Catalog::builtin();
        for id in [
            "sd15",
            "sdxl-base-1.0",
            "realvisxl-v4.0",
            "sdxl-turbo",
            "lcm-lora-sd15",
            "lcm-lora-sdxl",
            "lora-clay-animation-redmond-sdxl",
            "controlnet-canny-sd15",
            "controlnet-canny-sdxl-1.0",
            "controlnet-depth-sd15",
            "controlnet-depth-sdxl-1.0",
            "ip-adapter-sd15",
            "ip-adapter-sdxl-vit-h",
            "instantid",
            "antelopev2",
            "svd-xt",
            "taesd",
            "taesdxl",
            "tagger-wd-swinv2-v3",
            "depth-anything-v2-small",
        ] {
            assert!(catalog.get(id).is_some(), "catalog lacks {id}");
        }
        assert!(catalog.get("antelopev2").unwrap().non_commercial);
        let recommended: Vec<&CatalogModel> =
            catalog.models.iter().filter(|m| m.recommended).collect();
        assert_eq!(recommended.len(), 1);
        assert_eq!(recommended[0].kind, "checkpoint");
    }

    #[test]
    fn name_hints_skip_generic_stems() {
        let catalog = Catalog::builtin();
        let tagger = catalog.get("tagger-wd-swinv2-v3").unwrap();
        assert_eq!(
            tagger.name_hints(),
            ["wd-swinv2-tagger-v3", "tagger-wd-swinv2-v3"]
        );
        let base = catalog.get("sdxl-base-1.0").unwrap();
        assert_eq!(
            base.name_hints(),
            [
                "sd_xl_base_1.0",
                "stable-diffusion-xl-base-1.0",
                "sdxl-base-1.0"
            ]
        );
        assert!(
            base.describe().contains("about 6.9 GB"),
            "{}",
            base.describe()
        );
    }
}
