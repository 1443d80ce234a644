//! Automatic captions: a preset with `[image.auto_caption]` turns a photo into booru-style tags
//! (WD14 tagger, [`kiln_inference::vision::tagger`]) that fill `{prompt}` when the user typed
//! nothing. Every caption goes through [`caption_image`].

use super::error::{ModelRole, PresetError};
use super::lookup::ModelLibrary;
use super::resolve::missing;
use super::schema::{AutoCaption, Preset};
use crate::library::catalog::Catalog;
use crate::library::models::ModelFileKind;
use kiln_inference::vision::{Tagger, Thresholds};
use std::path::{Path, PathBuf};

/// The preset's caption settings when a caption would be used: the preset auto-captions and
/// the user's prompt is empty.
pub fn caption_wanted<'a>(preset: &'a Preset, prompt: &str) -> Option<&'a AutoCaption> {
    if !prompt.trim().is_empty() {
        return None;
    }
    preset.image.as_ref()?.auto_caption.as_ref()
}

/// The tagger for `spec` in the library: its `.onnx` file (`selected_tags.csv` is beside it).
pub fn find_tagger(
    preset: &Preset,
    spec: &AutoCaption,
    library: &ModelLibrary,
) -> Result<PathBuf, PresetError> {
    let catalog_id = spec.catalog_id();
    let mut hints = spec.hints.clone();
    if let Some(entry) = catalog_id.and_then(|id| Catalog::builtin().get(id)) {
        hints.extend(entry.name_hints());
    }
    let Some(entry) = library.find(&[ModelFileKind::Onnx], None, &hints) else {
        return Err(missing(
            preset,
            ModelRole::Tagger,
            &spec.hints,
            catalog_id,
            library,
        ));
    };
    Ok(entry.path.clone())
}

/// Captions `image` with the preset's tagger: tags above the thresholds, joined by ", ". Call
/// off the UI thread.
pub fn caption_image(
    preset: &Preset,
    image: &Path,
    spec: &AutoCaption,
    library: &ModelLibrary,
) -> Result<String, PresetError> {
    let tagger = find_tagger(preset, spec, library)?;
    run_tagger(&tagger, image, spec)
}

/// Loads the tagger and runs it on the image.
fn run_tagger(tagger: &Path, image: &Path, spec: &AutoCaption) -> Result<String, PresetError> {
    let photo = image::open(image).map_err(|e| {
        PresetError::Other(format!("cannot read init image ({e}): {}", image.display()))
    })?;
    let tagger = Tagger::load(tagger).map_err(|e| PresetError::Other(e.to_string()))?;
    let thresholds = Thresholds {
        general: spec.general,
        character: spec.character,
    };
    tagger
        .caption(&photo, thresholds)
        .map_err(|e| PresetError::Other(e.to_string()))
}
