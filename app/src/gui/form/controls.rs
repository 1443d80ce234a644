//! The Generate form's ControlNet rows and inpainting mask: what the user picked, turned into the
//! recipe's `controls`, `guess_mode` and `mask` by [`GenerateForm::to_recipe`], and restored
//! from recipes (files that are not on this computer are marked, and block Generate).

use super::{FormError, GenerateForm};
use crate::library::models::{ModelEntry, ModelFileKind};
use kiln_inference::io::family::Family;
use kiln_inference::recipe::{ControlSpec, MaskSpec, Preprocessor, RegionArea};
use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The ControlNet scale slider's range.
pub const CONTROL_SCALE_RANGE: RangeInclusive<f32> = 0.0..=2.0;
/// The mask blur slider's range, in pixels.
pub const MASK_BLUR_RANGE: RangeInclusive<u32> = 0..=64;
/// The "only masked" padding range, in pixels.
pub const MASK_PADDING_RANGE: RangeInclusive<u32> = 0..=256;

/// Every preprocessor, in the order the row's menu lists them.
pub const PREPROCESSORS: [Preprocessor; 6] = [
    Preprocessor::None,
    Preprocessor::Canny,
    Preprocessor::Scribble,
    Preprocessor::Lineart,
    Preprocessor::Depth,
    Preprocessor::Inpaint,
];

/// The path the engine loads for a library ControlNet: a diffusers ControlNet is listed as its
/// weights file (`…/name/diffusion_pytorch_model.safetensors`) but loads as its folder.
pub fn controlnet_load_path(entry_path: &Path) -> PathBuf {
    let generic = entry_path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("diffusion_pytorch_model"));
    match entry_path.parent() {
        Some(folder) if generic => folder.to_path_buf(),
        _ => entry_path.to_path_buf(),
    }
}

static NEXT_ROW_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh row id (unique in this process).
fn next_row_id() -> u64 {
    NEXT_ROW_ID.fetch_add(1, Ordering::Relaxed)
}

/// One ControlNet of the Generate form.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlRow {
    /// Unique in this process: the canvas keeps one guide layer per row by this id.
    pub id: u64,
    /// The ControlNet (diffusers folder or single file), once picked.
    pub model: Option<PathBuf>,
    /// What the row shows for the model: the library's name, else the file or folder name.
    pub label: String,
    /// The family the ControlNet was made for, once known.
    pub family: Option<Family>,
    /// The guide image (or the image to preprocess into one), once picked.
    pub image: Option<PathBuf>,
    /// How the guide is made from `image`.
    pub preprocessor: Preprocessor,
    /// Residual scale.
    pub scale: f32,
    /// First fraction of the steps it acts on.
    pub start: f32,
    /// Last fraction of the steps it acts on.
    pub end: f32,
    /// The model is not on this computer (a row restored from an image made elsewhere).
    pub model_missing: bool,
    /// The guide image is not on this computer.
    pub image_missing: bool,
}

impl Default for ControlRow {
    fn default() -> Self {
        let defaults = ControlSpec::default();
        ControlRow {
            id: next_row_id(),
            model: None,
            label: String::new(),
            family: None,
            image: None,
            preprocessor: defaults.preprocessor,
            scale: defaults.scale,
            start: defaults.start,
            end: defaults.end,
            model_missing: false,
            image_missing: false,
        }
    }
}

impl ControlRow {
    /// A row from a recipe's ControlNet.
    pub fn from_spec(spec: &ControlSpec, library: &[ModelEntry]) -> Self {
        let mut row = ControlRow {
            image: (!spec.image.as_os_str().is_empty()).then(|| spec.image.clone()),
            preprocessor: spec.preprocessor,
            scale: spec.scale,
            start: spec.start,
            end: spec.end,
            ..ControlRow::default()
        };
        if !spec.model.as_os_str().is_empty() {
            row.set_model(spec.model.clone(), library);
        }
        row
    }

    /// Sets the model; name and family come from the library when it lists the file.
    pub fn set_model(&mut self, path: PathBuf, library: &[ModelEntry]) {
        match library
            .iter()
            .find(|e| e.path == path || controlnet_load_path(&e.path) == path)
        {
            Some(entry) => {
                self.label.clone_from(&entry.name);
                self.family = entry.family;
            }
            None => {
                self.label = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                self.family = None;
            }
        }
        self.model = Some(path);
        self.model_missing = false;
    }

    /// Uses a library entry as the model.
    pub fn set_entry(&mut self, entry: &ModelEntry) {
        self.model = Some(controlnet_load_path(&entry.path));
        self.label.clone_from(&entry.name);
        self.family = entry.family;
        self.model_missing = false;
    }

    /// Sets the guide image (a file the user just chose, so it exists).
    pub fn set_image(&mut self, path: PathBuf) {
        self.image = Some(path);
        self.image_missing = false;
    }

    /// Whether the row's ControlNet was made for another family than `model` (both known).
    pub fn family_mismatch(&self, model: Option<Family>) -> bool {
        matches!((self.family, model), (Some(a), Some(b)) if a != b)
    }

    /// The recipe's ControlNet; `index` is the row's place, for the error.
    fn to_spec(&self, index: usize) -> Result<ControlSpec, FormError> {
        let row = index + 1;
        let Some(model) = &self.model else {
            return Err(FormError::ControlNetWithoutModel { row });
        };
        if self.model_missing {
            return Err(FormError::MissingFile {
                path: model.clone(),
            });
        }
        // An inpainting guide without an image of its own is made from the init image.
        let image = match &self.image {
            Some(image) if self.image_missing => {
                return Err(FormError::MissingFile {
                    path: image.clone(),
                });
            }
            Some(image) => image.clone(),
            None if self.preprocessor == Preprocessor::Inpaint => PathBuf::new(),
            None => return Err(FormError::ControlNetWithoutImage { row }),
        };
        let range_ok = (0.0..=1.0).contains(&self.start)
            && (0.0..=1.0).contains(&self.end)
            && self.start < self.end;
        if !range_ok || !self.scale.is_finite() {
            return Err(FormError::BadControlRange { row });
        }
        Ok(ControlSpec {
            model: model.clone(),
            image,
            preprocessor: self.preprocessor,
            scale: self.scale,
            start: self.start,
            end: self.end,
        })
    }
}

/// The inpainting part of the form: a mask for the init image.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskFields {
    /// The mask image (white = repaint), once picked.
    pub path: Option<PathBuf>,
    /// Blur of the pasted-back edge, in pixels.
    pub blur: u32,
    /// Generate a crop around the mask at full resolution.
    pub only_masked: bool,
    /// Context pixels around the mask in "only masked" mode.
    pub padding: u32,
    /// The mask file is not on this computer.
    pub missing: bool,
}

impl Default for MaskFields {
    fn default() -> Self {
        let defaults = MaskSpec::default();
        MaskFields {
            path: None,
            blur: 4,
            only_masked: defaults.only_masked,
            padding: defaults.padding,
            missing: false,
        }
    }
}

impl MaskFields {
    /// Sets the mask (a file the user just chose or made).
    pub fn set(&mut self, path: PathBuf) {
        self.path = Some(path);
        self.missing = false;
    }
}

impl GenerateForm {
    /// The recipe's ControlNets, in row order.
    pub fn recipe_controls(&self) -> Result<Vec<ControlSpec>, FormError> {
        self.controls
            .iter()
            .enumerate()
            .map(|(index, row)| row.to_spec(index))
            .collect()
    }

    /// The recipe's mask: only with an init image.
    pub fn recipe_mask(&self) -> Result<Option<MaskSpec>, FormError> {
        let (Some(_), Some(path)) = (&self.init, &self.mask.path) else {
            return Ok(None);
        };
        if self.mask.missing {
            return Err(FormError::MissingFile { path: path.clone() });
        }
        Ok(Some(MaskSpec {
            path: path.clone(),
            blur: self.mask.blur,
            only_masked: self.mask.only_masked,
            padding: self.mask.padding,
        }))
    }

    /// Sets the ControlNet rows from a recipe.
    pub(super) fn restore_controls(&mut self, controls: &[ControlSpec]) {
        self.controls = controls
            .iter()
            .map(|spec| ControlRow::from_spec(spec, &self.controlnet_library))
            .collect();
    }

    /// Sets the mask fields from a recipe's mask (cleared when it has none).
    pub(super) fn restore_mask(&mut self, mask: Option<&MaskSpec>) {
        self.mask = match mask {
            Some(spec) => MaskFields {
                path: Some(spec.path.clone()),
                blur: spec.blur,
                only_masked: spec.only_masked,
                padding: spec.padding,
                missing: false,
            },
            None => MaskFields {
                path: None,
                ..self.mask.clone()
            },
        };
    }

    /// Sets the library's ControlNet files (after a scan) and refreshes the rows' names and
    /// families from it.
    pub fn set_controlnet_library(&mut self, entries: &[ModelEntry]) {
        self.controlnet_library = entries
            .iter()
            .filter(|e| e.kind == ModelFileKind::ControlNet)
            .cloned()
            .collect();
        for row in &mut self.controls {
            if let Some(model) = row.model.clone() {
                let missing = row.model_missing;
                row.set_model(model, &self.controlnet_library);
                row.model_missing = missing;
            }
        }
    }

    /// Adds an empty ControlNet row and returns its id.
    pub fn add_control(&mut self) -> u64 {
        let row = ControlRow::default();
        let id = row.id;
        self.controls.push(row);
        id
    }

    /// The row with this id.
    pub fn control_mut(&mut self, id: u64) -> Option<&mut ControlRow> {
        self.controls.iter_mut().find(|r| r.id == id)
    }

    /// The files the form refers to that were restored rather than chosen: init image, mask,
    /// ControlNet models and guides. The app checks them on disk off the UI thread.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::new();
        files.extend(self.init.clone());
        files.extend(self.mask.path.clone());
        files.extend(self.overlay.clone());
        for region in &self.regions {
            if let RegionArea::Mask(path) = &region.area {
                files.push(path.clone());
            }
        }
        for row in &self.controls {
            files.extend(row.model.clone());
            files.extend(row.image.clone());
        }
        files
    }

    /// Marks the form's files that `missing` lists (and unmarks the others).
    pub fn mark_missing(&mut self, missing: &HashSet<PathBuf>) {
        let is_missing =
            |path: &Option<PathBuf>| path.as_ref().is_some_and(|p| missing.contains(p));
        self.init_missing = is_missing(&self.init);
        self.mask.missing = is_missing(&self.mask.path);
        if is_missing(&self.overlay) {
            // Text made on another computer: the result comes without it.
            self.overlay = None;
        }
        // A region whose mask is not here cannot be placed: it is left out.
        self.regions
            .retain(|r| !matches!(&r.area, RegionArea::Mask(path) if missing.contains(path)));
        for row in &mut self.controls {
            row.model_missing = is_missing(&row.model);
            row.image_missing = is_missing(&row.image);
        }
    }

    /// Sets the init image (a file the user just chose or made).
    pub fn set_init(&mut self, path: PathBuf) {
        self.init = Some(path);
        self.init_missing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::form::SeedMode;

    fn controlnet_entry(path: &str) -> ModelEntry {
        ModelEntry {
            path: PathBuf::from(path),
            name: "canny-sd15".into(),
            kind: ModelFileKind::ControlNet,
            family: Some(Family::Sd1),
            size_bytes: 1,
            problem: None,
            hash: None,
        }
    }

    #[test]
    fn a_diffusers_controlnet_loads_as_its_folder() {
        assert_eq!(
            controlnet_load_path(Path::new("/m/cn/diffusion_pytorch_model.fp16.safetensors")),
            PathBuf::from("/m/cn")
        );
        assert_eq!(
            controlnet_load_path(Path::new("/m/control_canny.safetensors")),
            PathBuf::from("/m/control_canny.safetensors")
        );
    }

    #[test]
    fn control_rows_and_the_mask_round_trip_through_recipes() {
        let mut form = GenerateForm::with_prompt("a fox");
        form.set_model(PathBuf::from("/m"), Some(Family::Sd1), None);
        form.set_controlnet_library(&[controlnet_entry(
            "/cn/canny/diffusion_pytorch_model.safetensors",
        )]);
        let id = form.add_control();
        assert_eq!(
            form.to_recipe(),
            Err(FormError::ControlNetWithoutModel { row: 1 })
        );
        let entry = form.controlnet_library[0].clone();
        let row = form.control_mut(id).unwrap();
        row.set_entry(&entry);
        assert_eq!(
            form.to_recipe(),
            Err(FormError::ControlNetWithoutImage { row: 1 })
        );
        let row = form.control_mut(id).unwrap();
        row.set_image(PathBuf::from("/guide.png"));
        row.preprocessor = Preprocessor::Canny;
        row.scale = 0.8;
        row.start = 0.1;
        row.end = 0.9;
        form.guess_mode = true;
        form.mask.set(PathBuf::from("/mask.png"));
        form.mask.only_masked = true;
        let recipe = form.to_recipe().unwrap();
        assert_eq!(recipe.mask, None, "no mask without an init image");
        form.set_init(PathBuf::from("/init.png"));
        form.seed_mode = SeedMode::Fixed;
        let recipe = form.to_recipe().unwrap();
        assert_eq!(recipe.controls.len(), 1);
        assert_eq!(recipe.controls[0].model, PathBuf::from("/cn/canny"));
        assert_eq!(recipe.controls[0].preprocessor, Preprocessor::Canny);
        assert!(recipe.guess_mode);
        assert_eq!(recipe.mask.as_ref().map(|m| m.only_masked), Some(true));

        let mut restored = GenerateForm::default();
        restored.set_controlnet_library(&form.controlnet_library);
        restored.apply_recipe(&recipe);
        assert_eq!(restored.controls[0].label, "canny-sd15");
        assert_eq!(restored.to_recipe().unwrap(), recipe);
        assert_eq!(restored.referenced_files().len(), 4);

        // Files not on this computer are marked and block Generate.
        let missing: HashSet<PathBuf> = [PathBuf::from("/guide.png")].into();
        restored.mark_missing(&missing);
        assert!(restored.controls[0].image_missing);
        assert_eq!(
            restored.to_recipe(),
            Err(FormError::MissingFile {
                path: PathBuf::from("/guide.png")
            })
        );
        restored.mark_missing(&HashSet::new());
        assert!(restored.to_recipe().is_ok());

        // A bad range names its row.
        restored.controls[0].start = 0.9;
        restored.controls[0].end = 0.5;
        assert_eq!(
            restored.to_recipe(),
            Err(FormError::BadControlRange { row: 1 })
        );
    }

    #[test]
    fn an_inpaint_row_without_an_image_uses_the_init_image() {
        let mut form = GenerateForm::with_prompt("a fox");
        form.set_model(PathBuf::from("/m"), Some(Family::Sd1), None);
        let id = form.add_control();
        let row = form.control_mut(id).unwrap();
        row.set_model(PathBuf::from("/cn/inpaint"), &[]);
        row.preprocessor = Preprocessor::Inpaint;
        assert!(PREPROCESSORS.contains(&Preprocessor::Inpaint));
        let recipe = form.to_recipe().unwrap();
        assert_eq!(recipe.controls[0].preprocessor, Preprocessor::Inpaint);
        assert_eq!(recipe.controls[0].image, PathBuf::new());
        // Restored, it stays without an image; other preprocessors still need one.
        let mut restored = GenerateForm::default();
        restored.apply_recipe(&recipe);
        assert_eq!(restored.controls[0].image, None);
        assert_eq!(restored.to_recipe().unwrap().controls, recipe.controls);
        restored.controls[0].preprocessor = Preprocessor::Canny;
        assert_eq!(
            restored.to_recipe(),
            Err(FormError::ControlNetWithoutImage { row: 1 })
        );
    }

    #[test]
    fn a_preset_brings_its_controlnet_to_the_form() {
        let mut form = GenerateForm::with_prompt("a fox");
        form.set_model(PathBuf::from("/m"), Some(Family::Sd1), None);
        form.set_init(PathBuf::from("/photo.png"));
        let preset = kiln_inference::Recipe {
            model: kiln_inference::recipe::ModelRef {
                path: PathBuf::from("/m"),
                ..Default::default()
            },
            controls: vec![ControlSpec {
                model: PathBuf::from("/cn/canny"),
                image: PathBuf::from("/photo.png"),
                preprocessor: Preprocessor::Canny,
                scale: 0.6,
                ..ControlSpec::default()
            }],
            ..kiln_inference::Recipe::default()
        };
        form.apply_preset(&preset);
        assert_eq!(form.controls.len(), 1);
        let recipe = form.to_recipe().unwrap();
        assert_eq!(recipe.controls, preset.controls);
        // A preset without a ControlNet leaves the user's rows alone.
        form.apply_preset(&kiln_inference::Recipe {
            controls: Vec::new(),
            ..preset
        });
        assert_eq!(form.controls.len(), 1);
    }
}
