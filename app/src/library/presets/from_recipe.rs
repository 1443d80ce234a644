//! "Save the current settings as a preset": a [`Preset`] from a [`Recipe`] (the Generate
//! form's), with the model and LoRAs as file-name hints.

use super::error::PresetError;
use super::schema::{ImageSettings, LocalizedText, ModelSpec, Preset, PresetLora};
use super::template::PLACEHOLDER;
use kiln_inference::Recipe;
use kiln_inference::io::family::Family;
use kiln_inference::io::model::ModelFiles;
use std::path::Path;

/// A name a model is found by again: the file stem, or the folder name of a diffusers folder.
fn name_hint(path: &Path) -> Option<String> {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.trim().is_empty())
}

/// A preset with the recipe's model, LoRAs, prompt, negative, sampler, steps, cfg, size, clip
/// skip and (when it has an init image) strength. `template` is the prompt template; without
/// one it is `{prompt}, <the recipe's prompt>` (`<lora:…>` tags removed: the LoRAs become
/// `[[lora]]` entries). The result is validated.
pub fn preset_from_recipe(
    id: &str,
    name: LocalizedText,
    recipe: &Recipe,
    template: Option<&str>,
) -> Result<Preset, PresetError> {
    let family = match recipe.model.family.as_deref().map(str::parse::<Family>) {
        Some(Ok(family)) => family,
        _ => ModelFiles::open(&recipe.model.path)
            .map(|files| files.kind.family)
            .map_err(|e| PresetError::Other(format!("cannot tell the model's family: {e}")))?,
    };
    let template = match template {
        Some(template) => template.to_owned(),
        None => {
            let (text, _) = kiln_inference::text::prompt::extract_loras(&recipe.prompt);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = text.trim().trim_matches(',').trim();
            if text.contains(PLACEHOLDER) {
                text.to_owned()
            } else if text.is_empty() {
                PLACEHOLDER.to_owned()
            } else {
                format!("{PLACEHOLDER}, {text}")
            }
        }
    };
    let mut preset = Preset::new(id, name, family, &template);
    preset.negative = recipe.negative.clone().filter(|n| !n.trim().is_empty());
    preset.sampler = Some(recipe.sampler);
    preset.steps = Some(recipe.steps);
    preset.cfg = Some(recipe.cfg);
    preset.width = Some(recipe.width);
    preset.height = Some(recipe.height);
    preset.clip_skip = (recipe.clip_skip != 1).then_some(recipe.clip_skip);
    preset.model = name_hint(&recipe.model.path).map(|hint| ModelSpec {
        catalog: None,
        hints: vec![hint],
    });
    preset.loras = recipe
        .loras
        .iter()
        .filter_map(|lora| {
            let hint = if lora.name.trim().is_empty() {
                name_hint(&lora.path)?
            } else {
                lora.name.clone()
            };
            Some(PresetLora {
                catalog: None,
                hints: vec![hint],
                weight: lora.weight,
                triggers: Vec::new(),
            })
        })
        .collect();
    preset.image = recipe.init.as_ref().map(|init| ImageSettings {
        strength: init.strength,
        controlnet: None,
        preserve_face: false,
        auto_caption: None,
    });
    preset.validate().map_err(|message| PresetError::Invalid {
        origin: format!("preset {id:?}"),
        line: None,
        column: None,
        message,
    })?;
    Ok(preset)
}
