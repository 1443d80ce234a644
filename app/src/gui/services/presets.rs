//! Preset work off the UI thread, as one-off tasks: listing the presets and decoding their
//! thumbnails, resolving a preset against the model library (opens model headers, hashes LoRA
//! files), and writes to the user presets (save, edit, import, export, delete).
//!
//! Automatic captions are not done here: they run on the worker thread, in the job itself
//! (see [`crate::gui::services::job_runner`]).

use crate::gui::state::presets::{PresetDraft, PresetWrite};
use crate::library::models::ModelEntry;
use crate::library::presets::template::check_template;
use crate::library::presets::{
    LocalizedText, ModelLibrary, Preset, PresetEntry, PresetError, PresetStore, ResolveRequest,
    Resolved, make_thumbnail, preset_from_recipe, resolve,
};
use crate::library::settings::Language;
use egui::ColorImage;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The presets as listed, with the thumbnails that needed decoding.
#[derive(Debug)]
pub struct PresetListing {
    /// Presets in gallery order.
    pub entries: Vec<PresetEntry>,
    /// Broken user files, one line each.
    pub issues: Vec<String>,
    /// Decoded thumbnails `(id, key, pixels)` for ids whose PNG changed or was not known.
    pub thumbnails: Vec<(String, u64, ColorImage)>,
}

/// The key of a thumbnail's PNG bytes.
pub fn thumbnail_key(png: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    png.hash(&mut hasher);
    hasher.finish()
}

/// Lists the presets; decodes the thumbnails whose key differs from `known` (id → key).
pub fn list_presets(store: &PresetStore, known: &HashMap<String, u64>) -> PresetListing {
    let list = store.list();
    let issues = list
        .issues
        .iter()
        .map(|issue| issue.error.to_string())
        .collect();
    let mut thumbnails = Vec::new();
    for entry in &list.presets {
        let Some(png) = &entry.thumbnail_png else {
            continue;
        };
        let key = thumbnail_key(png);
        if known.get(entry.id()) == Some(&key) {
            continue;
        }
        if let Ok(image) = image::load_from_memory(png) {
            let rgba = image.to_rgba8();
            let size = [rgba.width() as usize, rgba.height() as usize];
            let pixels = ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
            thumbnails.push((entry.id().to_owned(), key, pixels));
        }
    }
    PresetListing {
        entries: list.presets,
        issues,
        thumbnails,
    }
}

/// What to resolve a preset for.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolvePurpose {
    /// Fill the Generate form.
    Apply,
    /// Run it on this photo (a job).
    Run(PathBuf),
}

/// A preset resolved (or not) for the form or a photo.
#[derive(Debug)]
pub struct PresetResolution {
    /// The preset.
    pub preset: Preset,
    /// Why it was resolved.
    pub purpose: ResolvePurpose,
    /// The user's prompt the template was filled with (empty for photos: their caption).
    pub subject: String,
    /// The recipe and warnings, or why not.
    pub result: Result<Resolved, PresetError>,
}

/// Everything a resolve task needs, cloned from the UI state.
#[derive(Clone, Debug)]
pub struct ResolveInput {
    /// The preset.
    pub preset: Preset,
    /// Apply or run.
    pub purpose: ResolvePurpose,
    /// The user's prompt (apply only).
    pub subject: String,
    /// The form's init image (apply only: sets the size and strength).
    pub init_image: Option<PathBuf>,
    /// The form's model, used when the preset's is not in the library and the family fits.
    pub fallback_model: Option<PathBuf>,
    /// Model folders.
    pub dirs: Vec<PathBuf>,
    /// The library as scanned.
    pub entries: Vec<ModelEntry>,
}

/// Resolves a preset without a caption (the worker captions photos in the job).
pub fn resolve_preset(input: ResolveInput) -> PresetResolution {
    let library = ModelLibrary::from_entries(input.dirs, input.entries);
    let (prompt, init_image) = match &input.purpose {
        ResolvePurpose::Apply => (input.subject.clone(), input.init_image.clone()),
        ResolvePurpose::Run(photo) => (String::new(), Some(photo.clone())),
    };
    let photo_problem = match &input.purpose {
        ResolvePurpose::Run(photo) => check_photo(photo).err(),
        ResolvePurpose::Apply => None,
    };
    let result = match photo_problem {
        Some(problem) => Err(problem),
        None => {
            let request = ResolveRequest {
                prompt,
                init_image,
                caption: None,
                model_override: None,
                fallback_model: input.fallback_model,
            };
            resolve(&input.preset, &request, &library)
        }
    };
    PresetResolution {
        preset: input.preset,
        purpose: input.purpose,
        subject: input.subject,
        result,
    }
}

/// Whether a dropped file is an image Kiln can read.
fn check_photo(path: &Path) -> Result<(), PresetError> {
    image::image_dimensions(path)
        .map(|_| ())
        .map_err(|e| PresetError::Other(format!("not a readable image ({e}): {}", path.display())))
}

/// The outcome of a write: a line for the user, or the error (a conflict becomes a question).
#[derive(Debug)]
pub struct PresetWritten {
    /// The write (repeated with overwrite after "replace").
    pub write: PresetWrite,
    /// The preset id or folder written, or why not.
    pub result: Result<String, PresetError>,
}

/// A thumbnail PNG from an image file (the last output).
fn thumbnail_from(path: &Path) -> Result<Vec<u8>, PresetError> {
    let image = image::open(path).map_err(|e| {
        PresetError::Other(format!("cannot read the image ({e}): {}", path.display()))
    })?;
    make_thumbnail(&image)
}

/// Carries out a write to the user presets.
pub fn write_preset(
    store: &PresetStore,
    write: PresetWrite,
    overwrite: bool,
    language: Language,
) -> PresetWritten {
    let result = match &write {
        PresetWrite::SaveNew {
            draft,
            recipe,
            thumbnail_from: source,
        } => save_new(store, draft, recipe, source.as_deref(), overwrite, language),
        PresetWrite::Update {
            preset,
            thumbnail_from: source,
        } => update(store, preset, source.as_deref(), overwrite),
        PresetWrite::Import(path) => store
            .import(path, overwrite)
            .map(|entry| entry.name(language).to_owned()),
        PresetWrite::Export { id, dir } => store
            .export(id, dir, overwrite)
            .map(|_| dir.display().to_string()),
    };
    PresetWritten { write, result }
}

fn save_new(
    store: &PresetStore,
    draft: &PresetDraft,
    recipe: &kiln_inference::Recipe,
    thumbnail_source: Option<&Path>,
    overwrite: bool,
    language: Language,
) -> Result<String, PresetError> {
    let id = if overwrite {
        crate::library::presets::store::slugify(&draft.name)
    } else {
        store.free_id(&draft.name)
    };
    let name = localized(&draft.name, language);
    let mut preset = preset_from_recipe(&id, name, recipe, Some(draft.template.trim()))?;
    preset.description = localized(&draft.description, language);
    let thumbnail = match thumbnail_source {
        Some(path) => Some(thumbnail_from(path)?),
        None => None,
    };
    store.save(&preset, thumbnail.as_deref(), overwrite)?;
    Ok(draft.name.clone())
}

fn update(
    store: &PresetStore,
    preset: &Preset,
    thumbnail_source: Option<&Path>,
    overwrite: bool,
) -> Result<String, PresetError> {
    let thumbnail = match thumbnail_source {
        Some(path) => Some(thumbnail_from(path)?),
        // A built-in edited for the first time takes its thumbnail along.
        None => store
            .get(&preset.id)
            .ok()
            .filter(|entry| entry.is_builtin())
            .and_then(|entry| entry.thumbnail_png.map(|png| png.into_owned())),
    };
    store.save(preset, thumbnail.as_deref(), overwrite)?;
    Ok(preset.id.clone())
}

/// Text typed in the UI language: English is the fallback every preset needs, so a Chinese
/// name fills both.
fn localized(text: &str, language: Language) -> LocalizedText {
    let text = text.trim();
    match language {
        Language::English => LocalizedText::new(text, None),
        Language::SimplifiedChinese => LocalizedText::new(text, Some(text)),
    }
}

/// Applies the edit dialog's fields to a preset, in the UI language (the other language's
/// text is kept).
pub fn edited(preset: &Preset, draft: &PresetDraft, language: Language) -> Preset {
    let mut preset = preset.clone();
    let (name, description) = (draft.name.trim(), draft.description.trim());
    match language {
        Language::English => {
            preset.name.en = name.to_owned();
            preset.description.en = description.to_owned();
        }
        Language::SimplifiedChinese => {
            preset.name.zh_cn = Some(name.to_owned());
            preset.description.zh_cn = Some(description.to_owned());
            if preset.name.en.trim().is_empty() {
                preset.name.en = name.to_owned();
            }
        }
    }
    preset.prompt = draft.template.trim().to_owned();
    preset
}

/// Why a draft cannot be saved yet.
#[derive(Clone, Debug, PartialEq)]
pub enum DraftProblem {
    /// The name is empty.
    NoName,
    /// The template is not valid (the core's message).
    Template(String),
}

/// Checks a draft before it is saved.
pub fn draft_problem(draft: &PresetDraft) -> Option<DraftProblem> {
    if draft.name.trim().is_empty() {
        return Some(DraftProblem::NoName);
    }
    check_template(draft.template.trim())
        .err()
        .map(DraftProblem::Template)
}

/// Deletes a user preset: its id, or why not.
pub fn delete_preset(store: &PresetStore, id: &str) -> Result<String, PresetError> {
    store.delete(id).map(|()| id.to_owned())
}

/// The user presets folder inside the config folder.
pub fn user_presets_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(crate::library::presets::store::USER_PRESETS_DIR)
}
