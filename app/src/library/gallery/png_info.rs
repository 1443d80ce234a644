//! What the gallery reads from a PNG: the Kiln recipe chunk, else A1111 `parameters`, else a
//! ComfyUI `prompt` graph, plus the real image size from the header.

use kiln_inference::io::png_meta::{
    self, COMFY_PROMPT_KEY, PARAMETERS_KEY, RECIPE_KEY, parse_a1111_parameters, parse_comfy_prompt,
};
use kiln_inference::recipe::ModelRef;
use kiln_inference::{Recipe, SamplerKind};
use std::path::{Path, PathBuf};

/// Model file extensions dropped from model names (as A1111 does).
const MODEL_EXTENSIONS: [&str; 7] = ["safetensors", "ckpt", "pt", "pth", "bin", "sft", "gguf"];

/// A model's display name: the last path segment (`/` or `\\`, so names written on another OS
/// work too) without a model extension; a diffusers folder keeps its name.
pub(crate) fn model_name(path: &Path) -> String {
    let text = path.to_string_lossy();
    let name = text
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty()
                && MODEL_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str()) =>
        {
            stem.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// Metadata found in one PNG.
pub(crate) struct PngInfo {
    /// The recipe: Kiln's own, or one converted from A1111/ComfyUI metadata.
    pub recipe: Recipe,
    /// JSON of `recipe` (Kiln's chunk verbatim when there is one).
    pub recipe_json: String,
    /// Width and height from the PNG header.
    pub size: Option<(u32, u32)>,
    /// The other app's sampler name, when Kiln has no equivalent.
    pub sampler: Option<String>,
}

/// Width and height from the `IHDR` chunk, which always comes first.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

impl PngInfo {
    /// Reads the metadata of PNG `bytes`; `Ok(None)` when there is none Kiln understands.
    pub fn from_png(bytes: &[u8]) -> anyhow::Result<Option<PngInfo>> {
        let texts = png_meta::read_png_text(bytes)?;
        let text = |key: &str| {
            texts
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, text)| text.as_str())
        };
        let size = png_size(bytes);
        // A damaged recipe chunk falls back to the A1111 text written next to it.
        if let Some(json) = text(RECIPE_KEY)
            && let Ok(recipe) = serde_json::from_str::<Recipe>(json)
        {
            return Ok(Some(PngInfo {
                recipe,
                recipe_json: json.to_owned(),
                size,
                sampler: None,
            }));
        }
        let (recipe, sampler) = if let Some(parameters) = text(PARAMETERS_KEY) {
            from_a1111(parameters)
        } else if let Some(comfy) = text(COMFY_PROMPT_KEY).and_then(parse_comfy_prompt) {
            from_comfy(&comfy)
        } else {
            return Ok(None);
        };
        Ok(Some(PngInfo {
            recipe_json: serde_json::to_string(&recipe)?,
            recipe,
            size,
            sampler,
        }))
    }
}

/// A recipe from A1111 `parameters`, and the sampler name when Kiln has none for it.
fn from_a1111(parameters: &str) -> (Recipe, Option<String>) {
    let params = parse_a1111_parameters(parameters);
    let mut recipe = Recipe::default();
    params.apply_to(&mut recipe);
    recipe.model = ModelRef {
        path: params.get("Model").map(PathBuf::from).unwrap_or_default(),
        hash: params.get("Model hash").map(str::to_owned),
        family: None,
    };
    let sampler = match (params.sampler(), params.get("Sampler")) {
        (None, Some(name)) => Some(match params.get("Schedule type") {
            Some(schedule) if !schedule.eq_ignore_ascii_case("Automatic") => {
                format!("{name} {schedule}")
            }
            _ => name.to_owned(),
        }),
        _ => None,
    };
    (recipe, sampler)
}

/// A recipe from a ComfyUI graph, and the sampler name when Kiln has none for it.
fn from_comfy(comfy: &png_meta::ComfyParams) -> (Recipe, Option<String>) {
    let defaults = Recipe::default();
    let kiln_sampler: Option<SamplerKind> = comfy.sampler();
    let recipe = Recipe {
        model: ModelRef {
            path: comfy
                .checkpoint
                .as_deref()
                .map(PathBuf::from)
                .unwrap_or_default(),
            ..ModelRef::default()
        },
        prompt: comfy.prompt.clone().unwrap_or_default(),
        negative: comfy.negative.clone().filter(|n| !n.is_empty()),
        seed: comfy.seed.unwrap_or_default(),
        sampler: kiln_sampler.unwrap_or(defaults.sampler),
        steps: comfy
            .steps
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(defaults.steps),
        cfg: comfy.cfg.map(|c| c as f32).unwrap_or(defaults.cfg),
        ..defaults
    };
    let sampler = match (kiln_sampler, &comfy.sampler_name) {
        (None, Some(name)) => Some(match &comfy.scheduler {
            Some(scheduler) => format!("{name} {scheduler}"),
            None => name.clone(),
        }),
        _ => None,
    };
    (recipe, sampler)
}
