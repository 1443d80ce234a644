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
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Which file a loaded tagger came from: path, length and modification time (a replaced file
/// is loaded again).
type TaggerKey = (PathBuf, u64, Option<SystemTime>);

/// The last tagger loaded: a batch of captioned photos loads it once, not once per photo.
static LAST_TAGGER: Mutex<Option<(TaggerKey, Arc<Tagger>)>> = Mutex::new(None);

/// The tagger at `path`, from [`LAST_TAGGER`] when it is the same file.
fn load_tagger(path: &Path) -> Result<Arc<Tagger>, PresetError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PresetError::Other(format!("cannot read tagger ({e}): {}", path.display())))?;
    let key: TaggerKey = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut last = LAST_TAGGER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached, tagger)) = last.as_ref()
        && *cached == key
    {
        return Ok(tagger.clone());
    }
    // Drop the old one first: two taggers at once would double the memory.
    *last = None;
    let tagger = Arc::new(Tagger::load(path).map_err(|e| PresetError::Other(e.to_string()))?);
    *last = Some((key, tagger.clone()));
    Ok(tagger)
}

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
    let tagger = load_tagger(tagger)?;
    let thresholds = Thresholds {
        general: spec.general,
        character: spec.character,
    };
    tagger
        .caption(&photo, thresholds)
        .map_err(|e| PresetError::Other(e.to_string()))
}

#[cfg(test)]
mod cache_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_tagger_file_is_loaded_once_and_a_replaced_one_again() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-tagger");
        let dir = tempfile::tempdir().unwrap();
        for file in ["model.onnx", "selected_tags.csv"] {
            std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
        }
        let model = dir.path().join("model.onnx");
        let first = load_tagger(&model).unwrap();
        let again = load_tagger(&model).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Another model file under the same name (a different length): loaded afresh.
        std::fs::copy(fixture.join("model-v2-384.onnx"), &model).unwrap();
        let replaced = load_tagger(&model).unwrap();
        assert!(!Arc::ptr_eq(&first, &replaced));
        assert!(load_tagger(&dir.path().join("gone.onnx")).is_err());
    }
}
