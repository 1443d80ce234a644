//! The Generate panel's form: what the user has typed and picked, parsed into a [`Recipe`] only
//! when it is valid (`GenerateForm::to_recipe`); while it is not, Generate stays disabled and
//! its hover text gives the [`FormError`].

use kiln_inference::io::family::Family;
use kiln_inference::recipe::{InitImage, ModelRef};
use kiln_inference::{Recipe, SamplerKind};
use std::path::PathBuf;

/// Largest side the form accepts, in pixels.
pub const MAX_SIDE: u32 = 4096;
/// Most images one job may make.
pub const MAX_BATCH: u32 = 64;
/// Most sampling steps.
pub const MAX_STEPS: usize = 150;

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
        }
    }
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
        let size_ok = |side: u32| side > 0 && side <= MAX_SIDE && side.is_multiple_of(8);
        if !size_ok(self.width) || !size_ok(self.height) {
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
            ..Recipe::default()
        })
    }

    /// Parses the form, drawing a fresh random seed in [`SeedMode::Random`].
    pub fn to_recipe(&self) -> Result<Recipe, FormError> {
        self.to_recipe_with(kiln_inference::recipe::random_seed)
    }

    /// Restores everything from a recipe (the seed becomes fixed). The model is kept when
    /// the recipe names none.
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
        self.clip_skip = recipe.clip_skip.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
