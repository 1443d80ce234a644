//! The networks behind the model-based ControlNet preprocessors ("annotators"): which file each
//! needs, where Kiln looks for it, how it loads, and the message when it is missing.
//!
//! | preprocessor | network | looked for in the model folders (and their sub-folders) |
//! |---|---|---|
//! | depth | Depth Anything V1/V2 | a folder with `config.json` (`"model_type": "depth_anything"`) and `model.safetensors`, or an original-layout `depth_anything_v2_vit*.safetensors` |
//! | lineart | controlnet_aux line-art `Generator` | `sk_model.safetensors` (`sk_model2.safetensors`: coarse) |
//! | scribble (photo) | controlnet_aux HED | `ControlNetHED.safetensors` |

use super::depth::{DepthAnything, is_depth_anything_folder};
use super::hed::{HED_FILE, HedNet};
use super::lineart::{LINEART_COARSE_FILE, LINEART_FILE, LineartNet};
use crate::{Error, Result};
use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deepest sub-folder of a model folder searched (the folder itself is depth 0).
const MAX_SEARCH_DEPTH: usize = 3;

/// A preprocessor network kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// Depth Anything (depth).
    DepthAnything,
    /// controlnet_aux line art (lineart).
    Lineart,
    /// controlnet_aux coarse line art (`sk_model2`).
    LineartCoarse,
    /// controlnet_aux HED (scribble from a photo).
    Hed,
}

impl Network {
    /// The safetensors file name looked for (`None`: a folder).
    fn file_name(self) -> Option<&'static str> {
        match self {
            Network::DepthAnything => None,
            Network::Lineart => Some(LINEART_FILE),
            Network::LineartCoarse => Some(LINEART_COARSE_FILE),
            Network::Hed => Some(HED_FILE),
        }
    }

    /// What to get, for the error when the model is missing.
    pub fn missing_message(self, pickle: Option<&Path>) -> String {
        let convert = |pth: &str, st: &str| {
            format!(
                "{pth} is a Python pickle, which Kiln never loads: convert it once in a trusted \
                 Python environment with `python -c \"import torch; from safetensors.torch import \
                 save_file; save_file(torch.load('{pth}', map_location='cpu'), '{st}')\"`"
            )
        };
        let found = pickle
            .map(|p| format!(" Found {} (a pickle, not loaded).", p.display()))
            .unwrap_or_default();
        match self {
            Network::DepthAnything => format!(
                "the depth preprocessor needs Depth Anything V2: download config.json, \
                 model.safetensors and preprocessor_config.json of \
                 depth-anything/Depth-Anything-V2-Small-hf (catalog id depth-anything-v2-small) \
                 into a folder inside a model folder (or an original-layout \
                 depth_anything_v2_vits.safetensors file), or give its path.{found}"
            ),
            Network::Lineart | Network::LineartCoarse => {
                let (pth, st) = if self == Network::Lineart {
                    ("sk_model.pth", LINEART_FILE)
                } else {
                    ("sk_model2.pth", LINEART_COARSE_FILE)
                };
                format!(
                    "the lineart preprocessor needs controlnet_aux's line-art weights as {st} in \
                     a model folder (or give the file's path). lllyasviel/Annotators has {pth}; {}.{found}",
                    convert(pth, st)
                )
            }
            Network::Hed => format!(
                "scribble from a photo needs controlnet_aux's HED weights as {HED_FILE} in a \
                 model folder (or give the file's path); drawings on a plain background need no \
                 model. lllyasviel/Annotators has ControlNetHED.pth; {}.{found}",
                convert("ControlNetHED.pth", HED_FILE)
            ),
        }
    }

    fn pickle_name(self) -> Option<&'static str> {
        match self {
            Network::DepthAnything => None,
            Network::Lineart => Some("sk_model.pth"),
            Network::LineartCoarse => Some("sk_model2.pth"),
            Network::Hed => Some("ControlNetHED.pth"),
        }
    }
}

/// A loaded preprocessor network.
#[derive(Debug)]
pub enum Annotator {
    /// Depth Anything.
    Depth(Box<DepthAnything>),
    /// Line art (either variant).
    Lineart(LineartNet),
    /// HED.
    Hed(HedNet),
}

impl Annotator {
    /// Loads `network` from `path` (a folder for Depth Anything, a safetensors file otherwise).
    pub fn load(network: Network, path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::io(
                std::io::Error::new(std::io::ErrorKind::NotFound, "preprocessor model not found"),
                path,
            ));
        }
        Ok(match network {
            Network::DepthAnything => {
                Annotator::Depth(Box::new(DepthAnything::load(path, device)?))
            }
            Network::Lineart | Network::LineartCoarse => {
                Annotator::Lineart(LineartNet::load(path, device)?)
            }
            Network::Hed => Annotator::Hed(HedNet::load(path, device)?),
        })
    }
}

/// Sub-folders of `dir` in name order, hidden ones skipped.
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    dirs
}

/// A Depth Anything V2 file in the original layout directly in `dir`
/// (`depth_anything_v2_vit*.safetensors`, the smallest name first: ViT-S before ViT-L).
fn original_depth_file(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy().to_ascii_lowercase();
                    n.starts_with("depth_anything_v2_vit") && n.ends_with(".safetensors")
                })
        })
        .collect();
    files.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase());
        let rank = match name.as_deref().and_then(|n| n.get(21..22)) {
            Some("s") => 0,
            Some("b") => 1,
            Some("l") => 2,
            _ => 3,
        };
        (rank, p.clone())
    });
    files.into_iter().next()
}

/// What a search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A usable model.
    Model(PathBuf),
    /// Only the pickle version of the file.
    PickleOnly(PathBuf),
    /// Nothing.
    Nothing,
}

/// Looks for `network`'s model in `dirs` and their sub-folders (breadth-first per folder, up to
/// 3 levels, in name order; earlier folders win).
pub fn find_model(network: Network, dirs: &[PathBuf]) -> Found {
    let mut pickle = None;
    for root in dirs {
        let mut level = vec![root.clone()];
        for depth in 0..=MAX_SEARCH_DEPTH {
            let mut next = Vec::new();
            for dir in &level {
                match network.file_name() {
                    None => {
                        if is_depth_anything_folder(dir) {
                            return Found::Model(dir.clone());
                        }
                        if let Some(file) = original_depth_file(dir) {
                            return Found::Model(file);
                        }
                    }
                    Some(name) => {
                        let file = dir.join(name);
                        if file.is_file() {
                            return Found::Model(file);
                        }
                    }
                }
                if pickle.is_none()
                    && let Some(p) = network.pickle_name().map(|n| dir.join(n))
                    && p.is_file()
                {
                    pickle = Some(p);
                }
                if depth < MAX_SEARCH_DEPTH {
                    next.extend(subfolders(dir));
                }
            }
            level = next;
        }
    }
    pickle.map_or(Found::Nothing, Found::PickleOnly)
}

/// Loaded preprocessor networks, by file, and the folders searched for them. The engine keeps
/// one so a second job reuses the loaded network.
#[derive(Debug, Default)]
pub struct Preprocessors {
    /// Folders searched for the networks (the model folders); empty = only explicit paths.
    pub model_dirs: Vec<PathBuf>,
    loaded: HashMap<PathBuf, Arc<Annotator>>,
}

impl Preprocessors {
    /// Preprocessors searching `model_dirs`.
    pub fn new(model_dirs: Vec<PathBuf>) -> Self {
        Preprocessors {
            model_dirs,
            loaded: HashMap::new(),
        }
    }

    /// The path of `network`'s model: `explicit` if given, else the first found in the model
    /// folders; the error says which file to get.
    pub fn locate(&self, network: Network, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = explicit {
            return Ok(path.to_path_buf());
        }
        match find_model(network, &self.model_dirs) {
            Found::Model(path) => Ok(path),
            Found::PickleOnly(p) => Err(Error::Refused(network.missing_message(Some(&p)))),
            Found::Nothing => Err(Error::InvalidArgument(network.missing_message(None))),
        }
    }

    /// The loaded network (loads it on first use).
    pub fn network(
        &mut self,
        network: Network,
        explicit: Option<&Path>,
        device: &Device,
    ) -> Result<Arc<Annotator>> {
        let path = self.locate(network, explicit)?;
        if let Some(loaded) = self.loaded.get(&path) {
            return Ok(loaded.clone());
        }
        let annotator = Arc::new(Annotator::load(network, &path, device)?);
        // One network per kind stays loaded.
        self.loaded.clear();
        self.loaded.insert(path, annotator.clone());
        Ok(annotator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_in_sub_folders_and_reports_pickles() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("annotators/lllyasviel");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("sk_model.pth"), b"pickle").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        assert_eq!(
            find_model(Network::Lineart, &dirs),
            Found::PickleOnly(nested.join("sk_model.pth"))
        );
        let err = Preprocessors::new(dirs.clone())
            .locate(Network::Lineart, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sk_model.safetensors") && err.contains("save_file"),
            "{err}"
        );
        std::fs::write(nested.join(LINEART_FILE), b"x").unwrap();
        assert_eq!(
            find_model(Network::Lineart, &dirs),
            Found::Model(nested.join(LINEART_FILE))
        );
        assert_eq!(find_model(Network::Hed, &dirs), Found::Nothing);
        let depth = Preprocessors::new(dirs)
            .locate(Network::DepthAnything, None)
            .unwrap_err()
            .to_string();
        assert!(depth.contains("Depth-Anything-V2-Small-hf"), "{depth}");
    }
}
