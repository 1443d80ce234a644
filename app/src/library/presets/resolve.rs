//! From a preset to a [`Recipe`]: the base model and LoRAs found in the model library by catalog
//! id and name hints, the prompt filled from the template (the user's prompt, else the photo's
//! automatic caption), sampling settings, and for an input photo its size and strength.
//!
//! Missing files are errors that name the file and the catalog id to download, except the
//! optional ControlNet (a warning: the photo runs without it); features Kiln does not have yet
//! (face preservation, ControlNet types without a preprocessor) are warnings.

use super::caption::{caption_image, caption_wanted};
use super::error::{ModelRole, PresetError};
use super::lookup::{ModelLibrary, lora_spec};
use super::schema::{ControlKind, ControlNetSpec, Preset};
use super::template::fill_template;
use crate::library::catalog::Catalog;
use crate::library::models::ModelFileKind;
use kiln_inference::Recipe;
use kiln_inference::io::family::Family;
use kiln_inference::io::model::ModelFiles;
use kiln_inference::recipe::{ControlSpec, InitImage, ModelRef, Preprocessor};
use std::fmt;
use std::path::{Path, PathBuf};

/// Strength used on photos when a preset has no `[image]` table.
pub const DEFAULT_PRESET_STRENGTH: f32 = 0.5;

/// What to resolve a preset with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolveRequest {
    /// The user's prompt (may be empty).
    pub prompt: String,
    /// Input photo for image-to-image.
    pub init_image: Option<PathBuf>,
    /// Caption of the photo, used for `{prompt}` when `prompt` is empty. [`resolve`] leaves it
    /// as given; [`resolve_with_caption`] fills it when the preset asks for one.
    pub caption: Option<String>,
    /// Use this model instead of the preset's (CLI `--model`).
    pub model_override: Option<PathBuf>,
    /// Use this model when the preset's is not in the library (the app's current model),
    /// provided its family matches.
    pub fallback_model: Option<PathBuf>,
}

/// Something the user should know about a resolved preset.
#[derive(Clone, Debug, PartialEq)]
pub enum PresetWarning {
    /// The preset wants a ControlNet type whose preprocessor Kiln does not have yet.
    ControlNetUnavailable {
        /// The guide type.
        kind: ControlKind,
    },
    /// The preset's ControlNet model is not in the library; the photo runs without it.
    ControlNetMissing {
        /// The guide type.
        kind: ControlKind,
        /// Catalog id to download.
        catalog_id: Option<String>,
        /// One line about the download (name, id, URL, size), when the catalog knows it.
        download: Option<String>,
    },
    /// The preset wants face preservation, which this Kiln does not have yet.
    FacePreservationUnavailable,
    /// The photo was not captioned; the prompt is the template alone.
    CaptionSkipped {
        /// Why.
        reason: String,
        /// Tagger to download, when that is why.
        catalog_id: Option<String>,
    },
    /// The preset's base model is not in the library; the current model is used instead.
    UsingFallbackModel {
        /// What the preset asked for (hints).
        wanted: String,
        /// The model used.
        used: PathBuf,
    },
    /// The model's family differs from the preset's.
    FamilyMismatch {
        /// The preset's family.
        preset: Family,
        /// The model's family.
        model: Family,
    },
}

impl fmt::Display for PresetWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresetWarning::ControlNetUnavailable { kind } => write!(
                f,
                "this preset keeps the photo's shape with a {} ControlNet, whose preprocessor \
                 Kiln does not have yet (not available yet): running without it",
                kind.id()
            ),
            PresetWarning::ControlNetMissing { kind, download, .. } => {
                write!(
                    f,
                    "this preset keeps the photo's shape with a {} ControlNet, which is not in \
                     the model library: running without it",
                    kind.id()
                )?;
                match download {
                    Some(download) => write!(f, " (download {download})"),
                    None => Ok(()),
                }
            }
            PresetWarning::FacePreservationUnavailable => f.write_str(
                "this preset preserves faces, which Kiln does not have yet (not available \
                 yet): running without it",
            ),
            PresetWarning::CaptionSkipped { reason, .. } => {
                write!(f, "the photo was not captioned ({reason})")
            }
            PresetWarning::UsingFallbackModel { wanted, used } => write!(
                f,
                "the preset's model ({wanted}) is not in the library; using {}",
                used.display()
            ),
            PresetWarning::FamilyMismatch { preset, model } => write!(
                f,
                "the preset is made for {} models, the model is {}",
                preset.label(),
                model.label()
            ),
        }
    }
}

/// A resolved preset: a recipe ready for the engine (seed still 0: the caller picks it).
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The recipe.
    pub recipe: Recipe,
    /// Things to tell the user.
    pub warnings: Vec<PresetWarning>,
}

/// Hints for a model: the preset's own, then the catalog entry's file and repository names.
fn all_hints(hints: &[String], catalog_id: Option<&str>) -> Vec<String> {
    let mut all = hints.to_vec();
    if let Some(entry) = catalog_id.and_then(|id| Catalog::builtin().get(id)) {
        all.extend(entry.name_hints());
    }
    all
}

/// The "missing" error for a model with these hints.
pub(super) fn missing(
    preset: &Preset,
    role: ModelRole,
    hints: &[String],
    catalog_id: Option<&str>,
    library: &ModelLibrary,
) -> PresetError {
    let entry = catalog_id.and_then(|id| Catalog::builtin().get(id));
    let shown: Vec<String> = match entry {
        Some(entry) => entry
            .files
            .iter()
            .filter(|f| !f.path.ends_with(".json") && !f.path.ends_with(".csv"))
            .map(|f| f.path.clone())
            .chain(hints.iter().cloned())
            .collect(),
        None => hints.to_vec(),
    };
    let mut shown_unique: Vec<String> = Vec::new();
    for name in shown {
        if !shown_unique.contains(&name) {
            shown_unique.push(name);
        }
    }
    PresetError::MissingModel {
        preset: preset.id.clone(),
        role,
        catalog_id: catalog_id.map(str::to_owned),
        download: entry.map(|e| e.describe()),
        hints: shown_unique,
        searched: library.dirs().to_vec(),
    }
}

/// Opens a model the user chose, for its family.
fn open_model(path: &Path) -> Result<Family, PresetError> {
    ModelFiles::open(path)
        .map(|files| files.kind.family)
        .map_err(|e| PresetError::Other(e.to_string()))
}

/// The base model: override, else the preset's (found by hints), else the fallback.
fn base_model(
    preset: &Preset,
    request: &ResolveRequest,
    library: &ModelLibrary,
    warnings: &mut Vec<PresetWarning>,
) -> Result<ModelRef, PresetError> {
    let chosen = |path: &Path| -> Result<ModelRef, PresetError> {
        let family = open_model(path)?;
        Ok(ModelRef {
            path: path.to_path_buf(),
            hash: None,
            family: Some(family.id().to_owned()),
        })
    };
    if let Some(path) = &request.model_override {
        return chosen(path);
    }
    let Some(spec) = &preset.model else {
        return match &request.fallback_model {
            Some(path) => chosen(path),
            None => Err(PresetError::Other(format!(
                "preset {:?} names no base model; choose a model",
                preset.id
            ))),
        };
    };
    let hints = all_hints(&spec.hints, spec.catalog.as_deref());
    let kinds = [ModelFileKind::Checkpoint, ModelFileKind::DiffusersFolder];
    if let Some(entry) = library.find(&kinds, Some(preset.family), &hints) {
        return Ok(ModelRef {
            path: entry.path.clone(),
            hash: entry.hash.clone(),
            family: Some(entry.family.unwrap_or(preset.family).id().to_owned()),
        });
    }
    if let Some(path) = &request.fallback_model {
        let model = chosen(path)?;
        if model.family.as_deref() == Some(preset.family.id()) {
            warnings.push(PresetWarning::UsingFallbackModel {
                wanted: spec
                    .catalog
                    .clone()
                    .unwrap_or_else(|| spec.hints.join(", ")),
                used: path.clone(),
            });
            return Ok(model);
        }
    }
    Err(missing(
        preset,
        ModelRole::Base,
        &spec.hints,
        spec.catalog.as_deref(),
        library,
    ))
}

/// The output size: the preset's (or the family's native one); for a photo, the photo's aspect
/// ratio at about the same pixel count, both sides multiples of 8.
fn output_size(
    preset: &Preset,
    family: Family,
    init: Option<&Path>,
) -> Result<(u32, u32), PresetError> {
    let (native_w, native_h) = family.native_size();
    let width = preset.width.unwrap_or(native_w);
    let height = preset.height.unwrap_or(native_h);
    let Some(path) = init else {
        return Ok((width, height));
    };
    let (photo_w, photo_h) = image::image_dimensions(path).map_err(|e| {
        PresetError::Other(format!("cannot read init image ({e}): {}", path.display()))
    })?;
    Ok(fit_area(
        photo_w,
        photo_h,
        u64::from(width) * u64::from(height),
    ))
}

/// `(w, h)` with the aspect ratio of `photo_w × photo_h` and about `area` pixels, both sides
/// multiples of 8 (at least 8).
pub fn fit_area(photo_w: u32, photo_h: u32, area: u64) -> (u32, u32) {
    let aspect = f64::from(photo_w.max(1)) / f64::from(photo_h.max(1));
    let height = (area as f64 / aspect).sqrt();
    let width = height * aspect;
    let round8 = |v: f64| ((v / 8.0).round().max(1.0) * 8.0) as u32;
    (round8(width), round8(height))
}

/// Appends each trigger word the prompt lacks (compared ignoring case).
fn with_triggers(prompt: String, triggers: &[String]) -> String {
    let mut prompt = prompt;
    for trigger in triggers {
        let trigger = trigger.trim();
        if trigger.is_empty() || prompt.to_lowercase().contains(&trigger.to_lowercase()) {
            continue;
        }
        if prompt.trim().is_empty() {
            prompt = trigger.to_owned();
        } else {
            prompt = format!("{prompt}, {trigger}");
        }
    }
    prompt
}

/// The ControlNet a preset wants on `photo`: the model found by hints (a diffusers ControlNet
/// as its folder), the photo as the image to preprocess. `None`, with a warning, when the
/// guide type has no preprocessor yet or the model is not in the library.
fn control_for(
    control: &ControlNetSpec,
    photo: &Path,
    family: Family,
    library: &ModelLibrary,
    warnings: &mut Vec<PresetWarning>,
) -> Option<ControlSpec> {
    let preprocessor = match control.kind {
        ControlKind::Canny => Preprocessor::Canny,
        kind => {
            warnings.push(PresetWarning::ControlNetUnavailable { kind });
            return None;
        }
    };
    let hints = all_hints(&control.hints, control.catalog.as_deref());
    let Some(entry) = library.find(&[ModelFileKind::ControlNet], Some(family), &hints) else {
        let catalog_entry = control
            .catalog
            .as_deref()
            .and_then(|id| Catalog::builtin().get(id));
        warnings.push(PresetWarning::ControlNetMissing {
            kind: control.kind,
            catalog_id: control.catalog.clone(),
            download: catalog_entry.map(|e| e.describe()),
        });
        return None;
    };
    let folder = entry
        .path
        .parent()
        .filter(|dir| dir.join("config.json").is_file());
    Some(ControlSpec {
        model: folder.map_or_else(|| entry.path.clone(), Path::to_path_buf),
        image: photo.to_path_buf(),
        preprocessor,
        scale: control.scale,
        ..ControlSpec::default()
    })
}

/// Resolves a preset into a recipe using `request.caption` as given (no tagger is run). Call
/// off the UI thread: it opens model headers and reads image sizes.
pub fn resolve(
    preset: &Preset,
    request: &ResolveRequest,
    library: &ModelLibrary,
) -> Result<Resolved, PresetError> {
    let mut warnings = Vec::new();
    let model = base_model(preset, request, library, &mut warnings)?;
    let family = model
        .family
        .as_deref()
        .and_then(|id| id.parse::<Family>().ok())
        .unwrap_or(preset.family);
    if family != preset.family {
        if !preset.loras.is_empty() {
            return Err(PresetError::Other(format!(
                "preset {:?} uses LoRAs made for {} models; {} is a {} model",
                preset.id,
                preset.family.label(),
                model.path.display(),
                family.label()
            )));
        }
        warnings.push(PresetWarning::FamilyMismatch {
            preset: preset.family,
            model: family,
        });
    }

    let mut loras = Vec::new();
    let mut triggers = Vec::new();
    for lora in &preset.loras {
        let hints = all_hints(&lora.hints, lora.catalog.as_deref());
        let Some(entry) = library.find(&[ModelFileKind::Lora], Some(family), &hints) else {
            return Err(missing(
                preset,
                ModelRole::Lora,
                &lora.hints,
                lora.catalog.as_deref(),
                library,
            ));
        };
        loras.push(lora_spec(&entry.path, lora.weight));
        triggers.extend(lora.triggers.iter().cloned());
    }

    let user_prompt = request.prompt.trim();
    let subject = if user_prompt.is_empty() {
        request.caption.as_deref().unwrap_or("").trim()
    } else {
        user_prompt
    };
    let prompt = with_triggers(fill_template(&preset.prompt, subject), &triggers);

    let init_path = request.init_image.as_deref();
    let (width, height) = output_size(preset, family, init_path)?;
    let init = init_path.map(|path| InitImage {
        path: path.to_path_buf(),
        strength: preset
            .image
            .as_ref()
            .map_or(DEFAULT_PRESET_STRENGTH, |i| i.strength),
    });
    let mut controls = Vec::new();
    if let (Some(path), Some(image)) = (init_path, &preset.image) {
        if let Some(control) = &image.controlnet {
            controls.extend(control_for(control, path, family, library, &mut warnings));
        }
        if image.preserve_face {
            warnings.push(PresetWarning::FacePreservationUnavailable);
        }
    }

    let defaults = Recipe::default();
    let recipe = Recipe {
        model,
        prompt,
        negative: preset.negative.clone(),
        sampler: preset.sampler.unwrap_or(defaults.sampler),
        steps: preset.steps.unwrap_or(defaults.steps),
        cfg: preset.cfg.unwrap_or(defaults.cfg),
        width,
        height,
        init,
        clip_skip: preset.clip_skip.unwrap_or(defaults.clip_skip),
        loras,
        controls,
        ..defaults
    };
    Ok(Resolved { recipe, warnings })
}

/// [`resolve`], first captioning the photo when the preset auto-captions, a photo is given, the
/// prompt is empty and no caption was passed. A caption that cannot be made (no tagger in the
/// library, unreadable photo) is a warning; the prompt is then the template alone. Call off
/// the UI thread: the tagger runs here.
pub fn resolve_with_caption(
    preset: &Preset,
    request: &ResolveRequest,
    library: &ModelLibrary,
) -> Result<Resolved, PresetError> {
    let mut request = request.clone();
    let mut caption_warning = None;
    if request.caption.is_none()
        && let (Some(spec), Some(image)) =
            (caption_wanted(preset, &request.prompt), &request.init_image)
    {
        match caption_image(preset, image, spec, library) {
            Ok(caption) => request.caption = Some(caption),
            Err(error) => {
                let catalog_id = match &error {
                    PresetError::MissingModel { catalog_id, .. } => catalog_id.clone(),
                    _ => None,
                };
                caption_warning = Some(PresetWarning::CaptionSkipped {
                    reason: error.to_string(),
                    catalog_id,
                });
            }
        }
    }
    let mut resolved = resolve(preset, &request, library)?;
    resolved.warnings.extend(caption_warning);
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_keep_their_aspect_at_the_preset_pixel_count() {
        assert_eq!(fit_area(4000, 3000, 1024 * 1024), (1184, 888));
        assert_eq!(fit_area(64, 64, 1024 * 1024), (1024, 1024));
        assert_eq!(fit_area(96, 64, 64 * 64), (80, 56));
        let (w, h) = fit_area(1, 10_000, 64 * 64);
        assert!(w >= 8 && h % 8 == 0);
    }

    #[test]
    fn triggers_are_added_once() {
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_triggers(
                "a fox, clay animation".into(),
                &t(&["Clay Animation", "Clay"])
            ),
            "a fox, clay animation"
        );
        assert_eq!(
            with_triggers("a fox".into(), &t(&["KidsRedmAF", "Kids Book"])),
            "a fox, KidsRedmAF, Kids Book"
        );
        assert_eq!(with_triggers(String::new(), &t(&["x"])), "x");
    }
}
