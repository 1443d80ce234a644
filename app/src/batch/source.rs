//! What each batch input becomes: a recipe (from `kiln info --json`, a Kiln PNG, or the app's
//! form) or a style preset, with the batch's overrides, turned into one image-to-image recipe
//! per input.

use crate::library::presets::resolve::DEFAULT_PRESET_STRENGTH;
use crate::library::presets::{
    ModelLibrary, Preset, ResolveRequest, merge_loras, resolve, resolve_with_caption,
};
use anyhow::{Context, bail};
use kiln_inference::io::png_meta;
use kiln_inference::recipe::{FaceSpec, InitImage};
use kiln_inference::{LoraSpec, Recipe};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Which seed each input gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum SeedMode {
    /// A stable hash of the input's relative path ([`super::scan::seed_for`]): the same input
    /// gets the same seed on every run and machine, different inputs differ.
    #[default]
    PerFile,
    /// The same seed for every input.
    Fixed(u64),
}

/// Values that replace the recipe's or preset's for every input.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Overrides {
    /// Prompt: replaces a recipe's prompt; fills a preset's `{prompt}` (no auto-caption then).
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative: Option<String>,
    /// Sampling steps.
    pub steps: Option<usize>,
    /// Guidance scale.
    pub cfg: Option<f32>,
    /// Denoising strength in (0, 1].
    pub strength: Option<f32>,
    /// Seeds.
    pub seed: SeedMode,
    /// LoRAs added to every recipe (e.g. from `<lora:…>` tags in the prompt override).
    pub extra_loras: Vec<LoraSpec>,
    /// Face preservation: every output keeps the identity of the face in its own input
    /// (InstantID, SDXL models).
    pub keep_faces: Option<KeepFaces>,
}

/// Face preservation settings of a batch: each input is its own face photo (its largest face
/// gives the identity and the head position).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeepFaces {
    /// Identity strength (the face tokens' attention weight).
    pub strength: f32,
    /// Keypoint strength (IdentityNet's scale).
    pub keypoints: f32,
    /// InstantID folder.
    pub model: PathBuf,
    /// Face analysis folder (antelopev2); empty = found in the model folders.
    pub analysis: PathBuf,
}

impl KeepFaces {
    /// The recipe's face entry for the input at `image` (empty in the batch's template).
    fn spec(&self, image: &Path) -> FaceSpec {
        FaceSpec {
            image: image.to_path_buf(),
            index: None,
            strength: self.strength,
            keypoints: self.keypoints,
            pose: None,
            model: self.model.clone(),
            analysis: self.analysis.clone(),
        }
    }
}

impl Overrides {
    fn apply(&self, recipe: &mut Recipe) {
        if let Some(negative) = &self.negative {
            recipe.negative = Some(negative.clone());
        }
        if let Some(steps) = self.steps {
            recipe.steps = steps;
        }
        if let Some(cfg) = self.cfg {
            recipe.cfg = cfg;
        }
        if let (Some(init), Some(strength)) = (&mut recipe.init, self.strength) {
            init.strength = strength;
        }
        merge_loras(&mut recipe.loras, self.extra_loras.iter().cloned());
        if let Some(keep) = &self.keep_faces {
            recipe.face = Some(keep.spec(Path::new("")));
        }
        recipe.batch = 1;
    }
}

/// Where the batch's recipe comes from.
#[derive(Clone, Debug)]
pub enum RecipeSource {
    /// A fixed recipe; each input becomes its init image (its strength kept, else 0.5).
    Recipe(Box<Recipe>),
    /// A style preset, resolved per input (auto-captions, the photo's ControlNet guide).
    Preset {
        /// The preset.
        preset: Box<Preset>,
        /// Where its models are looked up.
        library: ModelLibrary,
        /// Use this model instead of the preset's.
        model_override: Option<PathBuf>,
    },
}

/// Reads a batch recipe file: the JSON `kiln info --json IMAGE` prints (`{"recipe": …,
/// "parameters": …}`), a bare recipe JSON, or a PNG with a Kiln recipe inside.
pub fn read_recipe_file(path: &Path) -> anyhow::Result<Recipe> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read recipe file {}", path.display()))?;
    if bytes.starts_with(b"\x89PNG") {
        return png_meta::read_recipe(&bytes)?.with_context(|| {
            format!(
                "{} has no Kiln recipe inside (kiln info shows what it has)",
                path.display()
            )
        });
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("recipe file is not JSON: {}", path.display()))?;
    let recipe_value = match value.get("recipe") {
        Some(serde_json::Value::Null) => bail!(
            "the image behind {} had no Kiln recipe (kiln info --json printed \"recipe\": null)",
            path.display()
        ),
        Some(inner) if value.get("model").is_none() => inner.clone(),
        _ => value,
    };
    if !recipe_value.is_object() {
        bail!("recipe file holds no recipe object: {}", path.display());
    }
    let recipe: Recipe = serde_json::from_value(recipe_value)
        .with_context(|| format!("not a Kiln recipe: {}", path.display()))?;
    if recipe.model.path.as_os_str().is_empty() {
        bail!("the recipe names no model (model.path): {}", path.display());
    }
    Ok(recipe)
}

impl RecipeSource {
    /// The recipe without an input, overrides applied: checked before any file is touched; its
    /// size is the pixel count outputs aim at. Also returns warnings for the user.
    pub fn template(&self, overrides: &Overrides) -> anyhow::Result<(Recipe, Vec<String>)> {
        let mut warnings = Vec::new();
        let mut recipe = match self {
            RecipeSource::Recipe(recipe) => {
                let mut recipe = (**recipe).clone();
                if let Some(prompt) = &overrides.prompt {
                    recipe.prompt = prompt.clone();
                }
                if recipe.mask.take().is_some() {
                    warnings.push(
                        "the recipe's inpainting mask is not used in a batch (each input is a \
                         different picture)"
                            .to_string(),
                    );
                }
                if !recipe.model.path.exists() {
                    bail!(
                        "the recipe's model is not here: {}",
                        recipe.model.path.display()
                    );
                }
                recipe
            }
            RecipeSource::Preset {
                preset,
                library,
                model_override,
            } => {
                let request = ResolveRequest {
                    prompt: overrides.prompt.clone().unwrap_or_default(),
                    model_override: model_override.clone(),
                    ..ResolveRequest::default()
                };
                let resolved = resolve(preset, &request, library)?;
                warnings.extend(resolved.warnings.iter().map(ToString::to_string));
                resolved.recipe
            }
        };
        overrides.apply(&mut recipe);
        if let Some(keep) = &overrides.keep_faces {
            let files = kiln_inference::io::model::ModelFiles::open(&recipe.model.path)?;
            if !files.kind.family.is_sdxl() {
                bail!(
                    "face preservation uses InstantID, which needs an SDXL model; this batch's \
                     model is {}",
                    files.kind.label()
                );
            }
            kiln_inference::adapters::instantid::resolve(&keep.model)?;
        }
        Ok((recipe, warnings))
    }

    /// Stable text describing the source, for the batch's recipe hash.
    pub fn key_text(&self, template: &Recipe) -> String {
        let mut template = template.clone();
        template.seed = 0;
        if let Some(init) = &mut template.init {
            init.path = PathBuf::new();
        }
        let preset = match self {
            RecipeSource::Recipe(_) => serde_json::Value::Null,
            RecipeSource::Preset { preset, .. } => {
                serde_json::to_value(preset).unwrap_or(serde_json::Value::Null)
            }
        };
        serde_json::json!({ "template": template, "preset": preset }).to_string()
    }

    /// The recipe for one input, whose normalized pixels are at `init` (already at the output
    /// size `size`). Returns warnings too (e.g. a caption that could not be made).
    pub fn recipe_for(
        &self,
        template: &Recipe,
        init: &Path,
        size: (u32, u32),
        seed: u64,
        overrides: &Overrides,
    ) -> anyhow::Result<(Recipe, Vec<String>)> {
        let mut warnings = Vec::new();
        let mut recipe = match self {
            RecipeSource::Recipe(original) => {
                let mut recipe = template.clone();
                let old_init = original.init.as_ref().map(|i| i.path.clone());
                recipe.init = Some(InitImage {
                    path: init.to_path_buf(),
                    strength: original
                        .init
                        .as_ref()
                        .map_or(DEFAULT_PRESET_STRENGTH, |i| i.strength),
                });
                // A ControlNet guided by the recipe's own photo follows each input.
                for control in &mut recipe.controls {
                    if Some(&control.image) == old_init.as_ref() {
                        control.image = init.to_path_buf();
                    }
                }
                recipe
            }
            RecipeSource::Preset {
                preset,
                library,
                model_override,
            } => {
                let request = ResolveRequest {
                    prompt: overrides.prompt.clone().unwrap_or_default(),
                    init_image: Some(init.to_path_buf()),
                    caption: None,
                    model_override: model_override.clone(),
                    fallback_model: None,
                };
                let resolved = resolve_with_caption(preset, &request, library)?;
                warnings.extend(resolved.warnings.iter().map(ToString::to_string));
                resolved.recipe
            }
        };
        overrides.apply(&mut recipe);
        if let Some(keep) = &overrides.keep_faces {
            recipe.face = Some(keep.spec(init));
        }
        recipe.width = size.0;
        recipe.height = size.1;
        recipe.seed = seed;
        Ok((recipe, warnings))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recipe_files_bare_wrapped_or_png() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            model: kiln_inference::recipe::ModelRef {
                path: "/models/x".into(),
                ..Default::default()
            },
            prompt: "a fox".into(),
            ..Recipe::default()
        };
        let bare = dir.path().join("bare.json");
        std::fs::write(&bare, serde_json::to_vec(&recipe).unwrap()).unwrap();
        assert_eq!(read_recipe_file(&bare).unwrap(), recipe);
        let wrapped = dir.path().join("info.json");
        let info = serde_json::json!({ "recipe": recipe, "parameters": "a fox\nSteps: 25" });
        std::fs::write(&wrapped, info.to_string()).unwrap();
        assert_eq!(read_recipe_file(&wrapped).unwrap(), recipe);
        let none = dir.path().join("none.json");
        std::fs::write(&none, r#"{"recipe":null,"parameters":null}"#).unwrap();
        assert!(format!("{:#}", read_recipe_file(&none).unwrap_err()).contains("no Kiln recipe"));
        let png = dir.path().join("out.png");
        let bytes = png_meta::encode_png(
            &image::RgbImage::new(8, 8),
            "",
            &serde_json::to_string(&recipe).unwrap(),
        )
        .unwrap();
        std::fs::write(&png, bytes).unwrap();
        assert_eq!(read_recipe_file(&png).unwrap(), recipe);
    }
}
