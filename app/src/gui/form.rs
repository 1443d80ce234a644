//! The Generate panel's form: what the user has typed and picked, parsed into a [`Recipe`] only
//! when it is valid (`GenerateForm::to_recipe`); while it is not, Generate stays disabled and
//! its hover text gives the [`FormError`].

mod controls;

pub use controls::{
    CONTROL_SCALE_RANGE, ControlRow, MASK_BLUR_RANGE, MASK_PADDING_RANGE, MaskFields,
    PREPROCESSORS, controlnet_load_path,
};

use crate::library::models::{ModelEntry, ModelFileKind};
use kiln_inference::io::family::Family;
use kiln_inference::recipe::{InitImage, ModelRef, OutpaintSpec, RegionSpec};
use kiln_inference::text::prompt::extract_loras;
use kiln_inference::{LoraSpec, Recipe, SamplerKind};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Largest side the form accepts, in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Most images one job may make.
pub const MAX_BATCH: u32 = 64;
/// Most sampling steps.
pub const MAX_STEPS: usize = 150;
/// The LoRA weight slider's range (A1111's).
pub const LORA_WEIGHT_RANGE: RangeInclusive<f32> = -2.0..=2.0;
/// A new LoRA row's weight.
pub const DEFAULT_LORA_WEIGHT: f32 = 1.0;

/// How the seed of the next job is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeedMode {
    /// A new random seed for every job.
    #[default]
    Random,
    /// The seed in the form.
    Fixed,
}

/// Size presets by aspect ratio, fitted to the model family's native pixel count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    /// 1:1.
    Square,
    /// 4:3.
    Landscape4x3,
    /// 3:4.
    Portrait3x4,
    /// 16:9.
    Wide16x9,
    /// 9:16.
    Tall9x16,
    /// 3:2.
    Landscape3x2,
    /// 2:3.
    Portrait2x3,
}

impl Aspect {
    /// Every preset, in the order the panel lists them.
    pub const ALL: [Aspect; 7] = [
        Aspect::Square,
        Aspect::Landscape4x3,
        Aspect::Portrait3x4,
        Aspect::Wide16x9,
        Aspect::Tall9x16,
        Aspect::Landscape3x2,
        Aspect::Portrait2x3,
    ];

    /// Width and height parts of the ratio.
    pub fn ratio(self) -> (u32, u32) {
        match self {
            Aspect::Square => (1, 1),
            Aspect::Landscape4x3 => (4, 3),
            Aspect::Portrait3x4 => (3, 4),
            Aspect::Wide16x9 => (16, 9),
            Aspect::Tall9x16 => (9, 16),
            Aspect::Landscape3x2 => (3, 2),
            Aspect::Portrait2x3 => (2, 3),
        }
    }

    /// "16:9".
    pub fn label(self) -> String {
        let (w, h) = self.ratio();
        format!("{w}:{h}")
    }

    /// The size with this ratio whose area is closest to `native` (the family's training
    /// size), both sides rounded to multiples of 8.
    pub fn size_for(self, native: (u32, u32)) -> (u32, u32) {
        let area = f64::from(native.0) * f64::from(native.1);
        let (rw, rh) = self.ratio();
        let ratio = f64::from(rw) / f64::from(rh);
        let width = (area * ratio).sqrt();
        let height = width / ratio;
        (round_to_8(width), round_to_8(height))
    }

    /// The preset that produces exactly this size for `native`, if any.
    pub fn matching(size: (u32, u32), native: (u32, u32)) -> Option<Aspect> {
        Aspect::ALL.into_iter().find(|a| a.size_for(native) == size)
    }
}

/// Whether a width or height is one the form accepts: positive, a multiple of 8, at most
/// [`MAX_SIDE`].
pub fn valid_side(side: u32) -> bool {
    side > 0 && side <= MAX_SIDE && side.is_multiple_of(8)
}

fn round_to_8(value: f64) -> u32 {
    let rounded = (value / 8.0).round() * 8.0;
    // The values are at most a few thousand pixels; the cast cannot truncate.
    (rounded.clamp(8.0, f64::from(MAX_SIDE))) as u32
}

/// Why the form cannot become a recipe yet.
#[derive(Clone, Debug, PartialEq)]
pub enum FormError {
    /// No model picked.
    NoModel,
    /// Width or height not a positive multiple of 8, or too large.
    BadSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Steps outside 1..=MAX_STEPS.
    BadSteps,
    /// CFG scale not finite or out of range.
    BadCfg,
    /// Batch count outside 1..=MAX_BATCH.
    BadBatch,
    /// Init-image strength outside (0, 1].
    BadStrength,
    /// A `<lora:name:w>` tag in the prompt names no LoRA file of the model library.
    UnknownLora {
        /// The name in the tag.
        name: String,
    },
    /// A `<lora:name:w>` tag names a LoRA file that cannot be used.
    UnusableLora {
        /// The name in the tag.
        name: String,
        /// Why (from the library scan).
        problem: String,
    },
    /// A LoRA row's file is not on disk (restored from an older image).
    MissingLora {
        /// The LoRA's name.
        name: String,
    },
    /// A ControlNet row has no model yet.
    ControlNetWithoutModel {
        /// The row, counted from 1.
        row: usize,
    },
    /// A ControlNet row has no guide image yet.
    ControlNetWithoutImage {
        /// The row, counted from 1.
        row: usize,
    },
    /// A ControlNet row's start is not before its end (or the scale is not a number).
    BadControlRange {
        /// The row, counted from 1.
        row: usize,
    },
    /// A restored file (init image, mask, ControlNet model or guide) is not on disk.
    MissingFile {
        /// The file.
        path: PathBuf,
    },
}

impl FormError {
    /// The translation key of the message shown on the disabled Generate button.
    pub fn message_key(&self) -> &'static str {
        match self {
            FormError::NoModel => "form_error.no_model",
            FormError::BadSize { .. } => "form_error.bad_size",
            FormError::BadSteps => "form_error.bad_steps",
            FormError::BadCfg => "form_error.bad_cfg",
            FormError::BadBatch => "form_error.bad_batch",
            FormError::BadStrength => "form_error.bad_strength",
            FormError::UnknownLora { .. } => "form_error.unknown_lora",
            FormError::UnusableLora { .. } => "form_error.unusable_lora",
            FormError::MissingLora { .. } => "form_error.missing_lora",
            FormError::ControlNetWithoutModel { .. } => "form_error.controlnet_without_model",
            FormError::ControlNetWithoutImage { .. } => "form_error.controlnet_without_image",
            FormError::BadControlRange { .. } => "form_error.bad_control_range",
            FormError::MissingFile { .. } => "form_error.missing_file",
        }
    }
}

/// A LoRA the user added to the form: one row of the Generate panel's LoRA section.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraRow {
    /// The LoRA file.
    pub path: PathBuf,
    /// Its A1111 name (the file stem), written into recipes and PNG metadata.
    pub name: String,
    /// What the row shows: the library's display name, else the file stem.
    pub label: String,
    /// User weight (A1111's multiplier), [`LORA_WEIGHT_RANGE`] on the slider.
    pub weight: f32,
    /// The family it was trained for, once known.
    pub family: Option<Family>,
    /// The file was not found (a row restored from an image made elsewhere).
    pub missing: bool,
}

impl LoraRow {
    /// A row for `path` at `weight`, named after the file.
    pub fn new(path: PathBuf, weight: f32) -> Self {
        let name = file_stem(&path);
        LoraRow {
            label: name.clone(),
            name,
            path,
            weight,
            family: None,
            missing: false,
        }
    }

    /// A row for a library entry at the default weight.
    pub fn from_entry(entry: &ModelEntry) -> Self {
        LoraRow {
            label: entry.name.clone(),
            family: entry.family,
            ..LoraRow::new(entry.path.clone(), DEFAULT_LORA_WEIGHT)
        }
    }

    /// Whether the row's LoRA was made for another family than `model` (both known).
    pub fn family_mismatch(&self, model: Option<Family>) -> bool {
        matches!((self.family, model), (Some(lora), Some(model)) if lora != model)
    }
}

/// A file's stem, as A1111 names LoRAs (`clay_v2.safetensors` → `clay_v2`).
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The Generate form.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateForm {
    /// Diffusers folder or single-file checkpoint.
    pub model: Option<PathBuf>,
    /// The model's family, once known (sets the size presets).
    pub family: Option<Family>,
    /// The model's AutoV2 hash, once known.
    pub model_hash: Option<String>,
    /// Positive prompt (A1111 syntax).
    pub prompt: String,
    /// Negative prompt; empty means none.
    pub negative: String,
    /// Random or fixed seed.
    pub seed_mode: SeedMode,
    /// The fixed seed.
    pub seed: u64,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Sampling steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub cfg: f32,
    /// The size preset, `None` for a custom size.
    pub aspect: Option<Aspect>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Images per job.
    pub batch: u32,
    /// Optional init image (image-to-image).
    pub init: Option<PathBuf>,
    /// Denoising strength for the init image.
    pub strength: f32,
    /// A1111 clip skip (kept from restored recipes; 1 = last layer).
    pub clip_skip: u32,
    /// LoRAs added as rows (the prompt's `<lora:…>` tags come on top of these).
    pub loras: Vec<LoraRow>,
    /// The LoRA files of the model library, set by the app after each scan: the "Add LoRA"
    /// menu lists them and `<lora:name:w>` tags are looked up in them.
    pub lora_library: Vec<ModelEntry>,
    /// The init image is not on this computer (restored from an image made elsewhere).
    pub init_missing: bool,
    /// Inpainting: a mask for the init image.
    pub mask: MaskFields,
    /// ControlNets, applied together.
    pub controls: Vec<ControlRow>,
    /// ControlNet guess mode.
    pub guess_mode: bool,
    /// The ControlNet files of the model library, set by the app after each scan.
    pub controlnet_library: Vec<ModelEntry>,
    /// Outpainting of the init image (set up by the canvas's Extend).
    pub outpaint: Option<OutpaintSpec>,
    /// Text composited over every result (the canvas's text layers, kept crisp).
    pub overlay: Option<PathBuf>,
    /// Regional prompts (the canvas's region layers, as mask PNGs).
    pub regions: Vec<RegionSpec>,
    /// Face fix after generation (each face redone at a higher resolution).
    pub face_fix: bool,
    /// The face-fix settings: the strength slider, and a prompt or size kept from a restored
    /// recipe (the face models are looked up in the model folders).
    pub face_fix_settings: kiln_inference::recipe::FaceFixSpec,
}

impl Default for GenerateForm {
    fn default() -> Self {
        let defaults = Recipe::default();
        GenerateForm {
            model: None,
            family: None,
            model_hash: None,
            prompt: String::new(),
            negative: String::new(),
            seed_mode: SeedMode::Random,
            seed: 0,
            sampler: defaults.sampler,
            steps: defaults.steps,
            cfg: defaults.cfg,
            aspect: Some(Aspect::Square),
            width: defaults.width,
            height: defaults.height,
            batch: 1,
            init: None,
            strength: 0.75,
            clip_skip: 1,
            loras: Vec::new(),
            lora_library: Vec::new(),
            init_missing: false,
            mask: MaskFields::default(),
            controls: Vec::new(),
            guess_mode: false,
            controlnet_library: Vec::new(),
            outpaint: None,
            overlay: None,
            regions: Vec::new(),
            face_fix: false,
            face_fix_settings: Default::default(),
        }
    }
}

impl GenerateForm {
    /// A default form with this prompt.
    pub fn with_prompt(prompt: &str) -> Self {
        GenerateForm {
            prompt: prompt.to_owned(),
            ..GenerateForm::default()
        }
    }

    /// The family's native size, SD1.x's 512×512 while unknown.
    pub fn native_size(&self) -> (u32, u32) {
        self.family.unwrap_or(Family::Sd1).native_size()
    }

    /// Picks a size preset and sets width and height from it.
    pub fn set_aspect(&mut self, aspect: Aspect) {
        self.aspect = Some(aspect);
        (self.width, self.height) = aspect.size_for(self.native_size());
    }

    /// Sets the model; a preset size is re-fitted to the new family.
    pub fn set_model(&mut self, path: PathBuf, family: Option<Family>, hash: Option<String>) {
        self.model = Some(path);
        self.family = family;
        self.model_hash = hash;
        if let Some(aspect) = self.aspect {
            self.set_aspect(aspect);
        }
    }

    /// Parses the form; `random_seed` gives the seed in [`SeedMode::Random`].
    pub fn to_recipe_with(&self, random_seed: impl FnOnce() -> u64) -> Result<Recipe, FormError> {
        let model = self.model.clone().ok_or(FormError::NoModel)?;
        if !valid_side(self.width) || !valid_side(self.height) {
            return Err(FormError::BadSize {
                width: self.width,
                height: self.height,
            });
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(FormError::BadSteps);
        }
        if !self.cfg.is_finite() || !(0.0..=30.0).contains(&self.cfg) {
            return Err(FormError::BadCfg);
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(FormError::BadBatch);
        }
        let init = match &self.init {
            Some(path) if self.init_missing => {
                return Err(FormError::MissingFile { path: path.clone() });
            }
            Some(path) => {
                if !(self.strength > 0.0 && self.strength <= 1.0) {
                    return Err(FormError::BadStrength);
                }
                Some(InitImage {
                    path: path.clone(),
                    strength: self.strength,
                })
            }
            None => None,
        };
        let loras = self.recipe_loras()?;
        let controls = self.recipe_controls()?;
        let mask = self.recipe_mask()?;
        let seed = match self.seed_mode {
            SeedMode::Random => random_seed(),
            SeedMode::Fixed => self.seed,
        };
        let negative = self.negative.trim();
        Ok(Recipe {
            model: ModelRef {
                path: model,
                hash: self.model_hash.clone(),
                family: self.family.map(|f| f.id().to_owned()),
            },
            prompt: self.prompt.clone(),
            negative: (!negative.is_empty()).then(|| self.negative.clone()),
            seed,
            sampler: self.sampler,
            steps: self.steps,
            cfg: self.cfg,
            width: self.width,
            height: self.height,
            init,
            clip_skip: self.clip_skip.max(1),
            batch: self.batch,
            loras,
            controls,
            guess_mode: self.guess_mode,
            mask,
            outpaint: self.init.as_ref().and(self.outpaint),
            overlay: self.overlay.clone(),
            regions: self.regions.clone(),
            face_fix: self.face_fix.then(|| self.face_fix_settings.clone()),
            ..Recipe::default()
        })
    }

    /// The recipe's LoRAs: the rows in order, then the prompt's `<lora:name:w>` tags looked up
    /// in [`GenerateForm::lora_library`] (a tag naming a row's file sets that row's weight, as
    /// later sources win). The tags stay in the prompt; the engine's prompt parser drops them.
    /// No file is read: hashes are left to the engine.
    pub fn recipe_loras(&self) -> Result<Vec<LoraSpec>, FormError> {
        let mut loras = Vec::with_capacity(self.loras.len());
        for row in &self.loras {
            if row.missing {
                return Err(FormError::MissingLora {
                    name: row.name.clone(),
                });
            }
            loras.push(LoraSpec {
                path: row.path.clone(),
                weight: row.weight,
                name: row.name.clone(),
                hash: None,
            });
        }
        let (_, tags) = extract_loras(&self.prompt);
        for tag in tags {
            let entry = self.library_lora(&tag.name)?;
            let spec = LoraSpec {
                path: entry.path.clone(),
                weight: tag.weight,
                name: file_stem(&entry.path),
                hash: None,
            };
            match loras.iter_mut().find(|l| l.path == spec.path) {
                Some(existing) => existing.weight = spec.weight,
                None => loras.push(spec),
            }
        }
        Ok(loras)
    }

    /// The library LoRA a prompt tag names: its file stem or display name, ignoring case (as
    /// A1111 and `library::presets::lookup` match); usable files first, then by path.
    fn library_lora(&self, name: &str) -> Result<&ModelEntry, FormError> {
        let wanted = name.trim().to_lowercase();
        let found = self
            .lora_library
            .iter()
            .filter(|e| e.kind == ModelFileKind::Lora)
            .filter(|e| {
                e.name.to_lowercase() == wanted || file_stem(&e.path).to_lowercase() == wanted
            })
            .min_by_key(|e| (!e.usable(), e.path.clone()));
        match found {
            Some(entry) => match &entry.problem {
                Some(problem) => Err(FormError::UnusableLora {
                    name: name.to_owned(),
                    problem: problem.clone(),
                }),
                None => Ok(entry),
            },
            None => Err(FormError::UnknownLora {
                name: name.to_owned(),
            }),
        }
    }

    /// Sets the library's LoRA files (after a scan) and refreshes the rows from it: labels,
    /// families, and rows whose file the library lists are not missing.
    pub fn set_lora_library(&mut self, entries: &[ModelEntry]) {
        self.lora_library = entries
            .iter()
            .filter(|e| e.kind == ModelFileKind::Lora)
            .cloned()
            .collect();
        for row in &mut self.loras {
            if let Some(entry) = self.lora_library.iter().find(|e| e.path == row.path) {
                row.label.clone_from(&entry.name);
                row.family = entry.family;
                row.missing = false;
            }
        }
    }

    /// Adds a LoRA row (a file already in the rows is left as it is). Returns whether it was
    /// added.
    pub fn add_lora(&mut self, row: LoraRow) -> bool {
        if self.loras.iter().any(|r| r.path == row.path) {
            return false;
        }
        self.loras.push(row);
        true
    }

    /// A row for `path`: from the library when it lists the file, else named after the file.
    pub fn lora_row(&self, path: &Path, weight: f32) -> LoraRow {
        match self.lora_library.iter().find(|e| e.path == path) {
            Some(entry) => LoraRow {
                weight,
                ..LoraRow::from_entry(entry)
            },
            None => LoraRow::new(path.to_path_buf(), weight),
        }
    }

    /// Rows the app should look for on disk: not in the library, not yet known missing.
    pub fn unchecked_lora_paths(&self) -> Vec<PathBuf> {
        self.loras
            .iter()
            .filter(|r| !r.missing && !self.lora_library.iter().any(|e| e.path == r.path))
            .map(|r| r.path.clone())
            .collect()
    }

    /// Parses the form, drawing a fresh random seed in [`SeedMode::Random`].
    pub fn to_recipe(&self) -> Result<Recipe, FormError> {
        self.to_recipe_with(kiln_inference::recipe::random_seed)
    }

    /// Fills the form from a resolved style preset: model (when the recipe names one), prompt,
    /// negative, sampler, steps, CFG, size, clip skip, its LoRAs as the rows, its ControlNets
    /// (when it brings any; otherwise the user's rows stay) and, when the form has an init
    /// image, the preset's strength. Seed, batch, the init image and the mask stay.
    pub fn apply_preset(&mut self, recipe: &Recipe) {
        let family = recipe
            .model
            .family
            .as_deref()
            .and_then(|id| id.parse::<Family>().ok());
        if !recipe.model.path.as_os_str().is_empty()
            && self.model.as_deref() != Some(recipe.model.path.as_path())
        {
            self.model = Some(recipe.model.path.clone());
            self.model_hash.clone_from(&recipe.model.hash);
            self.family = family;
        } else if family.is_some() {
            self.family = family;
        }
        self.prompt.clone_from(&recipe.prompt);
        self.negative = recipe.negative.clone().unwrap_or_default();
        self.sampler = recipe.sampler;
        self.steps = recipe.steps;
        self.cfg = recipe.cfg;
        self.width = recipe.width;
        self.height = recipe.height;
        self.aspect = Aspect::matching((recipe.width, recipe.height), self.native_size());
        self.clip_skip = recipe.clip_skip.max(1);
        self.loras = recipe
            .loras
            .iter()
            .map(|spec| self.lora_row(&spec.path, spec.weight))
            .collect();
        if let (Some(_), Some(init)) = (&self.init, &recipe.init) {
            self.strength = init.strength;
        }
        if !recipe.controls.is_empty() {
            self.restore_controls(&recipe.controls);
            self.guess_mode = recipe.guess_mode;
        }
    }

    /// Restores everything from a recipe (the seed becomes fixed), ControlNets and mask
    /// included. The model is kept when the recipe names none. Restored files are not checked
    /// here: the app looks for [`GenerateForm::referenced_files`] on disk and marks the missing.
    pub fn apply_recipe(&mut self, recipe: &Recipe) {
        if !recipe.model.path.as_os_str().is_empty() {
            self.model = Some(recipe.model.path.clone());
            self.family = recipe
                .model
                .family
                .as_deref()
                .and_then(|id| id.parse().ok());
            self.model_hash.clone_from(&recipe.model.hash);
        }
        self.prompt.clone_from(&recipe.prompt);
        self.negative = recipe.negative.clone().unwrap_or_default();
        self.seed_mode = SeedMode::Fixed;
        self.seed = recipe.seed;
        self.sampler = recipe.sampler;
        self.steps = recipe.steps;
        self.cfg = recipe.cfg;
        self.width = recipe.width;
        self.height = recipe.height;
        self.aspect = Aspect::matching((recipe.width, recipe.height), self.native_size());
        self.batch = recipe.batch.max(1);
        match &recipe.init {
            Some(init) => {
                self.init = Some(init.path.clone());
                self.strength = init.strength;
            }
            None => self.init = None,
        }
        self.init_missing = false;
        self.restore_mask(recipe.mask.as_ref());
        self.outpaint = recipe.outpaint;
        self.overlay.clone_from(&recipe.overlay);
        self.regions.clone_from(&recipe.regions);
        self.face_fix = recipe.face_fix.is_some();
        if let Some(spec) = &recipe.face_fix {
            // The face models come from this computer's model folders.
            self.face_fix_settings = kiln_inference::recipe::FaceFixSpec {
                analysis: PathBuf::new(),
                ..spec.clone()
            };
        }
        self.restore_controls(&recipe.controls);
        self.guess_mode = recipe.guess_mode;
        self.clip_skip = recipe.clip_skip.max(1);
        // LoRAs named by the prompt's tags come back from the tags; the others become rows.
        let (_, tags) = extract_loras(&recipe.prompt);
        let tagged: Vec<String> = tags.iter().map(|t| t.name.trim().to_lowercase()).collect();
        self.loras = recipe
            .loras
            .iter()
            .filter(|spec| {
                let names = [
                    spec.name.to_lowercase(),
                    file_stem(&spec.path).to_lowercase(),
                ];
                !names.iter().any(|n| !n.is_empty() && tagged.contains(n))
            })
            .map(|spec| {
                let mut row = self.lora_row(&spec.path, spec.weight);
                if !spec.name.is_empty() {
                    row.name.clone_from(&spec.name);
                }
                row
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_fix_goes_into_the_recipe_and_comes_back() {
        let mut form = GenerateForm::with_prompt("a portrait");
        form.model = Some(PathBuf::from("model.safetensors"));
        assert_eq!(form.to_recipe_with(|| 1).unwrap().face_fix, None);
        form.face_fix = true;
        form.face_fix_settings.strength = 0.3;
        let recipe = form.to_recipe_with(|| 1).unwrap();
        let spec = recipe.face_fix.clone().unwrap();
        assert_eq!(spec.strength, 0.3);
        assert_eq!(spec.analysis, PathBuf::new());
        let mut restored = GenerateForm::default();
        let mut elsewhere = recipe.clone();
        if let Some(spec) = &mut elsewhere.face_fix {
            spec.prompt = Some("a detailed face".into());
            spec.analysis = PathBuf::from("/other/computer/antelopev2");
        }
        restored.apply_recipe(&elsewhere);
        assert!(restored.face_fix);
        assert_eq!(restored.face_fix_settings.strength, 0.3);
        assert_eq!(
            restored.face_fix_settings.prompt.as_deref(),
            Some("a detailed face")
        );
        assert_eq!(restored.face_fix_settings.analysis, PathBuf::new());
        restored.apply_recipe(&Recipe::default());
        assert!(!restored.face_fix);
    }

    #[test]
    fn presets_fit_the_family_in_multiples_of_8() {
        for family in Family::ALL {
            let native = family.native_size();
            let native_area = f64::from(native.0 * native.1);
            for aspect in Aspect::ALL {
                let (w, h) = aspect.size_for(native);
                assert_eq!(w % 8, 0);
                assert_eq!(h % 8, 0);
                let area = f64::from(w * h);
                assert!(
                    (area / native_area - 1.0).abs() < 0.05,
                    "{family:?} {aspect:?}"
                );
            }
        }
        assert_eq!(Aspect::Square.size_for((512, 512)), (512, 512));
        assert_eq!(Aspect::Wide16x9.size_for((1024, 1024)), (1368, 768));
        assert_eq!(Aspect::Portrait3x4.size_for((512, 512)), (440, 592));
    }

    #[test]
    fn form_needs_a_model_and_a_valid_size() {
        let mut form = GenerateForm::with_prompt("a clay fox");
        assert_eq!(form.to_recipe(), Err(FormError::NoModel));
        form.set_model(PathBuf::from("/m.safetensors"), Some(Family::Sdxl), None);
        assert_eq!((form.width, form.height), (1024, 1024));
        form.width = 100;
        form.aspect = None;
        assert!(matches!(form.to_recipe(), Err(FormError::BadSize { .. })));
        form.width = 96;
        form.seed_mode = SeedMode::Fixed;
        form.seed = 42;
        let recipe = form.to_recipe().unwrap();
        assert_eq!(recipe.seed, 42);
        assert_eq!(recipe.model.family.as_deref(), Some("sdxl"));
        assert_eq!(recipe.negative, None);
    }

    #[test]
    fn recipe_round_trips_through_the_form() {
        let mut form = GenerateForm::with_prompt("a clay fox, 粘土狐狸");
        form.set_model(PathBuf::from("/m"), Some(Family::Sd1), Some("abc".into()));
        form.negative = "blurry".into();
        form.init = Some(PathBuf::from("/init.png"));
        form.strength = 0.5;
        form.set_aspect(Aspect::Landscape3x2);
        let recipe = form.to_recipe_with(|| 7).unwrap();
        let mut restored = GenerateForm::default();
        restored.apply_recipe(&recipe);
        assert_eq!(restored.to_recipe_with(|| 0).unwrap(), recipe);
        assert_eq!(restored.aspect, Some(Aspect::Landscape3x2));
    }

    fn lora_entry(path: &str, family: Option<Family>) -> ModelEntry {
        ModelEntry {
            path: PathBuf::from(path),
            name: file_stem(Path::new(path)),
            kind: ModelFileKind::Lora,
            family,
            size_bytes: 1,
            problem: None,
            hash: None,
        }
    }

    #[test]
    fn rows_and_prompt_tags_become_recipe_loras() {
        let mut form = GenerateForm::with_prompt("a fox <lora:Clay_v2:0.7>, <lora:ink:0.5>");
        form.set_model(PathBuf::from("/m"), Some(Family::Sdxl), None);
        form.set_lora_library(&[
            lora_entry("/loras/clay_v2.safetensors", Some(Family::Sdxl)),
            lora_entry("/loras/ink.safetensors", Some(Family::Sdxl)),
        ]);
        let row = form.lora_row(Path::new("/loras/ink.safetensors"), 1.0);
        assert_eq!(row.family, Some(Family::Sdxl));
        assert!(form.add_lora(row.clone()));
        assert!(!form.add_lora(row), "a file is added once");
        form.add_lora(LoraRow::new(
            PathBuf::from("/elsewhere/detail.safetensors"),
            -0.5,
        ));
        let loras = form.to_recipe_with(|| 1).unwrap().loras;
        let summary: Vec<(&str, f32)> = loras.iter().map(|l| (l.name.as_str(), l.weight)).collect();
        // Rows first; the tag naming a row's file sets its weight; tags match case-insensitively.
        assert_eq!(summary, [("ink", 0.5), ("detail", -0.5), ("clay_v2", 0.7)]);

        form.prompt = "a fox <lora:nowhere:1>".into();
        assert_eq!(
            form.to_recipe(),
            Err(FormError::UnknownLora {
                name: "nowhere".into()
            })
        );
        form.prompt = "a fox".into();
        form.loras[0].missing = true;
        assert!(matches!(
            form.to_recipe(),
            Err(FormError::MissingLora { .. })
        ));
    }

    #[test]
    fn restoring_a_recipe_splits_rows_from_tags() {
        let mut form = GenerateForm::with_prompt("a fox <lora:clay_v2:0.7>");
        form.set_model(PathBuf::from("/m"), Some(Family::Sdxl), None);
        form.set_lora_library(&[lora_entry("/loras/clay_v2.safetensors", Some(Family::Sdxl))]);
        form.add_lora(LoraRow::new(PathBuf::from("/gone/old.safetensors"), 1.5));
        let recipe = form.to_recipe_with(|| 3).unwrap();
        assert_eq!(recipe.loras.len(), 2);

        let mut restored = GenerateForm::default();
        restored.set_lora_library(&form.lora_library);
        restored.apply_recipe(&recipe);
        assert_eq!(restored.loras.len(), 1, "the tagged LoRA stays a tag");
        assert_eq!(restored.loras[0].name, "old");
        assert_eq!(restored.loras[0].weight, 1.5);
        assert_eq!(
            restored.unchecked_lora_paths(),
            [PathBuf::from("/gone/old.safetensors")]
        );
        assert_eq!(restored.to_recipe_with(|| 0).unwrap(), recipe);
    }
}
