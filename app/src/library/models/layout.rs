//! Existing installs of other Stable Diffusion apps whose model folders Kiln can offer to use:
//! A1111 and Forge (`models/Stable-diffusion`, `models/Lora`, …), ComfyUI (`models/checkpoints`,
//! `models/loras`, …), Fooocus (ComfyUI-like folders plus its own files) and Stability Matrix's
//! shared folder (`Data/Models/StableDiffusion`, …).

use std::path::{Path, PathBuf};

/// App names, as [`ExternalLayout::app`] holds them.
const A1111: &str = "A1111/Forge";
const COMFYUI: &str = "ComfyUI";
const FOOOCUS: &str = "Fooocus";
const STABILITY_MATRIX: &str = "Stability Matrix";

/// Files only a Fooocus checkout has.
const FOOOCUS_MARKERS: [&str; 2] = ["fooocus_version.py", "entry_with_update.py"];

/// Folder names (lower case) under the places searched that may hold an install.
const INSTALL_NAME_HINTS: [&str; 7] = [
    "webui",
    "forge",
    "comfy",
    "fooocus",
    "stable-diffusion",
    "stable_diffusion",
    "stabilitymatrix",
];

/// Sub-folders of a matching folder that may be the install itself (portable packages).
const NESTED_INSTALLS: [&str; 4] = ["webui", "ComfyUI", "Fooocus", "stable-diffusion-webui"];

/// Folders under the home folder where people put such installs.
const SEARCH_PLACES: [&str; 12] = [
    "",
    "Documents",
    "AI",
    "ai",
    "Desktop",
    "Downloads",
    "apps",
    "Applications",
    "Projects",
    "src",
    "git",
    "github",
];

/// Model folders of another app's install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalLayout {
    /// The install's folder.
    pub root: PathBuf,
    /// Which app: "A1111/Forge", "ComfyUI", "Fooocus" or "Stability Matrix".
    pub app: &'static str,
    /// Checkpoint folders (only those that exist).
    pub checkpoints: Vec<PathBuf>,
    /// LoRA folders (LyCORIS included).
    pub loras: Vec<PathBuf>,
    /// ControlNet folders.
    pub controlnets: Vec<PathBuf>,
    /// VAE folders.
    pub vaes: Vec<PathBuf>,
}

impl ExternalLayout {
    /// Every folder of the layout, checkpoints first.
    pub fn all_dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.checkpoints
            .iter()
            .chain(&self.loras)
            .chain(&self.controlnets)
            .chain(&self.vaes)
    }
}

/// The folders among `relative` (to `root`) that exist.
fn existing(root: &Path, relative: &[&str]) -> Vec<PathBuf> {
    relative
        .iter()
        .map(|r| root.join(r))
        .filter(|p| p.is_dir())
        .collect()
}

fn layout_at(root: &Path) -> Option<ExternalLayout> {
    let layout =
        |app, checkpoints: &[&str], loras: &[&str], controlnets: &[&str], vaes: &[&str]| {
            Some(ExternalLayout {
                root: root.to_path_buf(),
                app,
                checkpoints: existing(root, checkpoints),
                loras: existing(root, loras),
                controlnets: existing(root, controlnets),
                vaes: existing(root, vaes),
            })
        };
    if root.join("models/Stable-diffusion").is_dir() {
        return layout(
            A1111,
            &["models/Stable-diffusion"],
            &["models/Lora", "models/LyCORIS"],
            &["models/ControlNet", "extensions/sd-webui-controlnet/models"],
            &["models/VAE"],
        );
    }
    if root.join("models/checkpoints").is_dir() {
        // Older Fooocus releases: `launch.py` next to its prompt-expansion model folder.
        let fooocus = FOOOCUS_MARKERS.iter().any(|m| root.join(m).is_file())
            || (root.join("launch.py").is_file() && root.join("models/prompt_expansion").is_dir());
        let app = if fooocus { FOOOCUS } else { COMFYUI };
        return layout(
            app,
            &["models/checkpoints"],
            &["models/loras"],
            &["models/controlnet"],
            &["models/vae"],
        );
    }
    for models in ["Data/Models", "Models"] {
        let models = root.join(models);
        if models.join("StableDiffusion").is_dir() {
            let sub = |names: &[&str]| existing(&models, names);
            return Some(ExternalLayout {
                root: root.to_path_buf(),
                app: STABILITY_MATRIX,
                checkpoints: sub(&["StableDiffusion"]),
                loras: sub(&["Lora", "LyCORIS"]),
                controlnets: sub(&["ControlNet"]),
                vaes: sub(&["VAE"]),
            });
        }
    }
    None
}

/// The layout of an install at `root` (or of the install whose `models` folder `root` is):
/// A1111/Forge when `models/Stable-diffusion` exists; Fooocus when `models/checkpoints` exists
/// next to Fooocus' own files; ComfyUI when `models/checkpoints` exists otherwise; Stability
/// Matrix for `Data/Models/StableDiffusion`. `None` when none applies. A few `stat`s.
pub fn detect_layout(root: &Path) -> Option<ExternalLayout> {
    layout_at(root).or_else(|| {
        let name = root.file_name()?.to_string_lossy().to_lowercase();
        if name == "models" {
            layout_at(root.parent()?)
        } else {
            None
        }
    })
}

/// Installs of A1111/Forge, ComfyUI, Fooocus or Stability Matrix in the usual places under the
/// home folder (the home folder itself, Documents, AI, Desktop, Downloads, …): folders whose
/// name looks like one (`stable-diffusion-webui`, `ComfyUI_windows_portable`, …) and their
/// usual nested install folder. One listing per place, no deep scans.
pub fn find_external_installs() -> Vec<ExternalLayout> {
    match directories::BaseDirs::new() {
        Some(dirs) => find_external_installs_in(dirs.home_dir()),
        None => Vec::new(),
    }
}

/// [`find_external_installs`] with `home` as the home folder.
pub(crate) fn find_external_installs_in(home: &Path) -> Vec<ExternalLayout> {
    let mut found: Vec<ExternalLayout> = Vec::new();
    let mut seen_roots = std::collections::HashSet::new();
    let mut searched = std::collections::HashSet::new();
    for place in SEARCH_PLACES {
        let base = if place.is_empty() {
            home.to_path_buf()
        } else {
            home.join(place)
        };
        // `AI` and `ai` are one folder on case-insensitive file systems.
        let key = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
        if !searched.insert(key) {
            continue;
        }
        let Ok(listing) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut candidates: Vec<PathBuf> = listing
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy().to_lowercase();
                INSTALL_NAME_HINTS.iter().any(|hint| name.contains(hint))
            })
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        candidates.sort();
        for candidate in candidates {
            let layout = detect_layout(&candidate).or_else(|| {
                NESTED_INSTALLS
                    .iter()
                    .find_map(|nested| detect_layout(&candidate.join(nested)))
            });
            if let Some(layout) = layout {
                let key =
                    std::fs::canonicalize(&layout.root).unwrap_or_else(|_| layout.root.clone());
                if seen_roots.insert(key) {
                    found.push(layout);
                }
            }
        }
    }
    found
}
