//! PNG metadata (FORMATS §11): the A1111 `parameters` text Kiln writes and reads, the Kiln
//! recipe chunk (`kiln-recipe`, iTXt JSON), and read-only ComfyUI `prompt` graphs.
//!
//! Follows stable-diffusion-webui `processing.create_infotext` and
//! `infotext_utils.parse_generation_parameters`; text chunks like PIL's `PngInfo.add_text`
//! (tEXt when Latin-1 encodable, else iTXt).

use crate::recipe::Recipe;
use crate::{Error, Result, SamplerKind};
use regex::Regex;
use std::path::Path;
use std::sync::LazyLock;

/// Keyword of the A1111 parameters chunk.
pub const PARAMETERS_KEY: &str = "parameters";
/// Keyword of the Kiln recipe chunk (iTXt, JSON).
pub const RECIPE_KEY: &str = "kiln-recipe";
/// Keyword of ComfyUI's API graph chunk.
pub const COMFY_PROMPT_KEY: &str = "prompt";

/// `infotext_utils.re_param`.
static PARAM: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)"#).ok());

/// A1111 schedule types, longest first (for names like `DPM++ 2M SDE Karras`).
const SCHEDULE_TYPES: [&str; 12] = [
    "Align Your Steps",
    "Polyexponential",
    "SGM Uniform",
    "Exponential",
    "KL Optimal",
    "Automatic",
    "Uniform",
    "Karras",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
];

/// Extra keys [`a1111_parameters`] moves to A1111's place for them.
const VAE_KEYS: [&str; 2] = ["VAE hash", "VAE"];
/// Written just before `Version`.
const LORA_HASHES_KEY: &str = "Lora hashes";

/// A1111 `quote`: values holding `,`, `:` or a newline are JSON-quoted (non-ASCII kept).
fn quote(value: &str) -> String {
    if value.contains([',', '\n', ':']) {
        serde_json::to_string(value).unwrap_or_else(|_| value.to_owned())
    } else {
        value.to_owned()
    }
}

/// A1111 `unquote`: a value in double quotes is read as a JSON string when it is one.
fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        serde_json::from_str(value).unwrap_or_else(|_| value.to_owned())
    } else {
        value.to_owned()
    }
}

/// Python's `str(float)` for values A1111 keeps as floats: `0.7`, `1.0`.
fn python_float(value: f32) -> String {
    let text = format!("{value}");
    if text.contains(['.', 'N', 'i']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// A1111's model name: the checkpoint file name without its extension (a folder keeps its name).
fn model_name(path: &Path) -> Option<String> {
    const MODEL_EXTENSIONS: [&str; 7] = ["safetensors", "ckpt", "pt", "pth", "bin", "sft", "gguf"];
    let name = path.file_name()?.to_string_lossy();
    let known_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if known_extension {
        Some(path.file_stem()?.to_string_lossy().into_owned())
    } else {
        Some(name.into_owned())
    }
}

/// The A1111 `parameters` text of a recipe (FORMATS §11.1, the ≥ 1.9 layout):
///
/// ```text
/// <prompt>
/// Negative prompt: <negative>          (only when not empty)
/// Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, …
/// ```
///
/// Keys: Steps, Sampler, Schedule type, CFG scale (`7`, `7.5`), Seed, Size, Model hash (when
/// known), Model (file stem), `VAE hash`/`VAE` from `extras`, Denoising strength (img2img), Clip
/// skip (> 1 only), RNG (`CPU`), Regions (regional prompts, when any; [`RegionSpec::summary`](crate::recipe::RegionSpec::summary)
/// joined by `; `), Face fix (`strength 0.4`) and Face fix prompt (when it has its own),
/// Identity (the identity score, 3 decimals), the other `extras` in order, `Lora hashes` from `extras`,
/// Version (`Kiln x.y.z`). Values holding `,` `:` or a newline are JSON-quoted. The seed is
/// `recipe.seed`: for image `i` of a batch pass a recipe whose seed is `seed + i`.
pub fn a1111_parameters(recipe: &Recipe, extras: &[(String, String)]) -> String {
    let (sampler, schedule) = recipe.sampler.a1111_names();
    let mut params: Vec<(String, String)> = vec![
        ("Steps".into(), recipe.steps.to_string()),
        ("Sampler".into(), sampler.into()),
        ("Schedule type".into(), schedule.into()),
        ("CFG scale".into(), format!("{}", recipe.cfg)),
        ("Seed".into(), recipe.seed.to_string()),
        ("Size".into(), format!("{}x{}", recipe.width, recipe.height)),
    ];
    if let Some(hash) = &recipe.model.hash {
        params.push(("Model hash".into(), hash.clone()));
    }
    if let Some(name) = model_name(&recipe.model.path) {
        params.push(("Model".into(), name));
    }
    for key in VAE_KEYS {
        params.extend(extras.iter().filter(|(k, _)| k == key).cloned());
    }
    if let Some(init) = &recipe.init {
        params.push(("Denoising strength".into(), python_float(init.strength)));
    }
    if recipe.clip_skip > 1 {
        params.push(("Clip skip".into(), recipe.clip_skip.to_string()));
    }
    params.push(("RNG".into(), "CPU".into()));
    if !recipe.regions.is_empty() {
        // Kiln's own entry (A1111 ignores unknown keys): `prompt [box …]; prompt [mask …]`.
        let regions: Vec<String> = recipe.regions.iter().map(|r| r.summary()).collect();
        params.push(("Regions".into(), regions.join("; ")));
    }
    if let Some(fix) = &recipe.face_fix {
        // Kiln's own entries, like ADetailer's: `Face fix: strength 0.4`, and its prompt when
        // it has one of its own.
        let strength = python_float(fix.strength);
        params.push(("Face fix".into(), format!("strength {strength}")));
        if let Some(prompt) = fix.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            params.push(("Face fix prompt".into(), prompt.to_owned()));
        }
    }
    if let Some(identity) = recipe.identity {
        // The identity score of the output (a result, kept for the gallery and other apps).
        params.push(("Identity".into(), format!("{identity:.3}")));
    }
    if recipe.uses_face_models() {
        // The face models' licence travels with the picture.
        params.push((
            "Licence".into(),
            crate::recipe::FACE_MODELS_LICENCE.to_owned(),
        ));
    }
    params.extend(
        extras
            .iter()
            .filter(|(k, _)| !VAE_KEYS.contains(&k.as_str()) && k != LORA_HASHES_KEY)
            .cloned(),
    );
    params.extend(extras.iter().filter(|(k, _)| k == LORA_HASHES_KEY).cloned());
    let lora_hashes: Vec<String> = recipe
        .loras
        .iter()
        .filter_map(|l| Some(format!("{}: {}", lora_name(l), l.hash.as_ref()?)))
        .collect();
    if !lora_hashes.is_empty() && !extras.iter().any(|(k, _)| k == LORA_HASHES_KEY) {
        params.push((LORA_HASHES_KEY.into(), lora_hashes.join(", ")));
    }
    params.push((
        "Version".into(),
        format!("Kiln {}", env!("CARGO_PKG_VERSION")),
    ));

    let line = params
        .iter()
        .map(|(k, v)| format!("{k}: {}", quote(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let negative = match recipe.negative.as_deref() {
        Some(negative) if !negative.is_empty() => format!("\nNegative prompt: {negative}"),
        _ => String::new(),
    };
    format!("{}{negative}\n{line}", prompt_with_lora_tags(recipe))
        .trim()
        .to_owned()
}

/// The name a LoRA goes by in prompts: its recorded name, else the file stem.
fn lora_name(lora: &crate::recipe::LoraSpec) -> String {
    if !lora.name.is_empty() {
        return lora.name.clone();
    }
    lora.path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The prompt with a `<lora:name:weight>` tag for every LoRA of the recipe that the prompt does
/// not already name, so A1111 applies the same LoRAs when the image is read back there.
fn prompt_with_lora_tags(recipe: &Recipe) -> String {
    let (_, tagged) = crate::text::prompt::extract_loras(&recipe.prompt);
    let mut prompt = recipe.prompt.clone();
    for lora in &recipe.loras {
        let name = lora_name(lora);
        if tagged.iter().any(|t| t.name.eq_ignore_ascii_case(&name)) {
            continue;
        }
        if !prompt.is_empty() && !prompt.ends_with(char::is_whitespace) {
            prompt.push(' ');
        }
        prompt.push_str(&format!("<lora:{name}:{}>", python_float(lora.weight)));
    }
    prompt
}

/// A parsed A1111 `parameters` text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct A1111Params {
    /// Positive prompt (lines joined with `\n`, each stripped).
    pub prompt: String,
    /// Negative prompt (empty when absent).
    pub negative: String,
    /// `key: value` pairs of the last line, in order, values unquoted (`Size` stays `512x512`).
    pub params: Vec<(String, String)>,
}

impl A1111Params {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The Kiln sampler, from `Sampler` and `Schedule type` (either A1111 form).
    pub fn sampler(&self) -> Option<SamplerKind> {
        sampler_from_a1111(self.get("Sampler")?, self.get("Schedule type"))
    }

    /// Copies what Kiln can use into `recipe`: prompt, negative, steps, sampler, CFG scale,
    /// seed, size, clip skip, face fix (strength and prompt), the identity score and, when the
    /// recipe has an init image, the denoising strength.
    /// Values that do not parse are left as they were; returns the keys that were not used.
    pub fn apply_to(&self, recipe: &mut Recipe) -> Vec<String> {
        recipe.prompt.clone_from(&self.prompt);
        recipe.negative = (!self.negative.is_empty()).then(|| self.negative.clone());
        if let Some(sampler) = self.sampler() {
            recipe.sampler = sampler;
        }
        let mut unused = Vec::new();
        for (key, value) in &self.params {
            let value = value.trim();
            let used = match key.as_str() {
                "Steps" => value.parse().map(|v| recipe.steps = v).is_ok(),
                "CFG scale" => value.parse().map(|v| recipe.cfg = v).is_ok(),
                "Seed" => value.parse().map(|v| recipe.seed = v).is_ok(),
                "Clip skip" => value.parse().map(|v| recipe.clip_skip = v).is_ok(),
                "Size" => match value.split_once('x').map(|(w, h)| (w.parse(), h.parse())) {
                    Some((Ok(width), Ok(height))) => {
                        (recipe.width, recipe.height) = (width, height);
                        true
                    }
                    _ => false,
                },
                "Denoising strength" => match (&mut recipe.init, value.parse()) {
                    (Some(init), Ok(strength)) => {
                        init.strength = strength;
                        true
                    }
                    _ => false,
                },
                "Face fix" => match value.strip_prefix("strength").map(|v| v.trim().parse()) {
                    Some(Ok(strength)) => {
                        recipe
                            .face_fix
                            .get_or_insert_with(Default::default)
                            .strength = strength;
                        true
                    }
                    _ => false,
                },
                "Face fix prompt" => {
                    recipe.face_fix.get_or_insert_with(Default::default).prompt =
                        Some(value.to_owned());
                    true
                }
                "Identity" => value.parse().map(|v| recipe.identity = Some(v)).is_ok(),
                "Sampler" | "Schedule type" => self.sampler().is_some(),
                _ => false,
            };
            if !used {
                unused.push(key.clone());
            }
        }
        unused
    }
}

/// A1111 `parse_generation_parameters`: the last line is the parameter line when the parameter
/// regex matches it at least 3 times; lines before it are the prompt up to one starting
/// `Negative prompt:`, the rest the negative. Empty values are skipped, as A1111 does.
pub fn parse_a1111_parameters(text: &str) -> A1111Params {
    let mut lines: Vec<&str> = text
        .trim()
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let Some(param) = PARAM.as_ref() else {
        return A1111Params {
            prompt: text.trim().to_owned(),
            ..A1111Params::default()
        };
    };
    let mut last_line = lines.pop().unwrap_or("");
    if param.find_iter(last_line).count() < 3 {
        lines.push(last_line);
        last_line = "";
    }

    let mut result = A1111Params::default();
    let mut done_with_prompt = false;
    for line in lines {
        let mut line = line.trim();
        if let Some(rest) = line.strip_prefix("Negative prompt:") {
            done_with_prompt = true;
            line = rest.trim();
        }
        let target = if done_with_prompt {
            &mut result.negative
        } else {
            &mut result.prompt
        };
        if !target.is_empty() {
            target.push('\n');
        }
        target.push_str(line);
    }

    for caps in param.captures_iter(last_line) {
        let (Some(key), Some(value)) = (caps.get(1), caps.get(2)) else {
            continue;
        };
        if value.as_str().is_empty() {
            continue;
        }
        result
            .params
            .push((key.as_str().to_owned(), unquote(value.as_str())));
    }
    result
}

/// Splits a schedule folded into an old (≤ 1.8) sampler name: `DPM++ 2M Karras` →
/// (`DPM++ 2M`, `Karras`).
fn split_folded_schedule(sampler: &str) -> (&str, Option<&str>) {
    for schedule in SCHEDULE_TYPES {
        if let Some(base) = sampler.strip_suffix(schedule)
            && let Some(base) = base.strip_suffix(' ')
            && !base.is_empty()
        {
            return (base, Some(schedule));
        }
    }
    (sampler, None)
}

/// Kiln's sampler for an A1111 `Sampler` (and `Schedule type`), reading both the ≥ 1.9 form
/// (`DPM++ 2M` + `Karras`) and the old folded one (`DPM++ 2M Karras`). `None` when Kiln has no
/// equivalent (other samplers, or a schedule other than Automatic, or Karras for DPM++ 2M).
/// `DPM++ 2M` with `Automatic` maps to plain [`SamplerKind::DpmPlusPlus2M`], matching what
/// [`SamplerKind::a1111_names`] writes.
pub fn sampler_from_a1111(sampler: &str, schedule: Option<&str>) -> Option<SamplerKind> {
    let (base, folded) = split_folded_schedule(sampler.trim());
    let schedule = match (schedule.map(str::trim), folded) {
        (Some(s), _) if !s.is_empty() && !s.eq_ignore_ascii_case("Automatic") => s,
        (_, Some(f)) => f,
        _ => "Automatic",
    };
    let automatic = schedule.eq_ignore_ascii_case("Automatic");
    let karras = schedule.eq_ignore_ascii_case("Karras");
    match base.to_ascii_lowercase().as_str() {
        "euler" if automatic => Some(SamplerKind::Euler),
        "euler a" if automatic => Some(SamplerKind::EulerAncestral),
        "dpm++ 2m" if automatic => Some(SamplerKind::DpmPlusPlus2M),
        "dpm++ 2m" if karras => Some(SamplerKind::DpmPlusPlus2MKarras),
        "ddim" if automatic || schedule.eq_ignore_ascii_case("DDIM") => Some(SamplerKind::Ddim),
        "lcm" if automatic => Some(SamplerKind::Lcm),
        _ => None,
    }
}

/// True when every character fits Latin-1 (a tEXt chunk can hold it); NUL is refused.
fn is_latin1(text: &str) -> bool {
    text.chars().all(|c| c != '\0' && u32::from(c) <= 0xFF)
}

fn png_error(e: impl std::fmt::Display) -> Error {
    Error::Image(format!("PNG: {e}"))
}

/// Encodes an RGB image as PNG with the A1111 `parameters` chunk (tEXt when Latin-1, else iTXt
/// UTF-8, as PIL does) and the recipe JSON as an iTXt chunk `kiln-recipe`; an empty string
/// leaves its chunk out. The text chunks come before the image data.
pub fn encode_png(image: &image::RgbImage, parameters: &str, recipe_json: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, image.width(), image.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    if !parameters.is_empty() {
        if is_latin1(parameters) {
            encoder.add_text_chunk(PARAMETERS_KEY.into(), parameters.into())
        } else {
            encoder.add_itxt_chunk(PARAMETERS_KEY.into(), parameters.into())
        }
        .map_err(png_error)?;
    }
    if !recipe_json.is_empty() {
        encoder
            .add_itxt_chunk(RECIPE_KEY.into(), recipe_json.into())
            .map_err(png_error)?;
    }
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(image.as_raw()).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(bytes)
}

/// Collects the text chunks the decoder has seen.
fn collect_text(info: &png::Info<'_>) -> Result<Vec<(String, String)>> {
    let mut texts = Vec::new();
    for chunk in &info.uncompressed_latin1_text {
        texts.push((chunk.keyword.clone(), chunk.text.clone()));
    }
    for chunk in &info.compressed_latin1_text {
        let mut chunk = chunk.clone();
        chunk.decompress_text().map_err(png_error)?;
        texts.push((chunk.keyword.clone(), chunk.get_text().map_err(png_error)?));
    }
    for chunk in &info.utf8_text {
        let mut chunk = chunk.clone();
        if chunk.compressed {
            chunk.decompress_text().map_err(png_error)?;
        }
        texts.push((chunk.keyword.clone(), chunk.get_text().map_err(png_error)?));
    }
    Ok(texts)
}

/// All text chunks of a PNG as `(keyword, text)`: tEXt, then zTXt (inflated), then iTXt, each
/// in file order, including chunks after the image data. When the image data is damaged the
/// chunks before it are still returned.
pub fn read_png_text(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_ignore_text_chunk(false);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let finished = reader.finish();
    let texts = collect_text(reader.info())?;
    if texts.is_empty() {
        finished.map_err(png_error)?;
    }
    Ok(texts)
}

/// The text of the first chunk named `keyword`.
fn find_text(bytes: &[u8], keyword: &str) -> Result<Option<String>> {
    Ok(read_png_text(bytes)?
        .into_iter()
        .find(|(k, _)| k == keyword)
        .map(|(_, text)| text))
}

/// The A1111 `parameters` text of a PNG, if any.
pub fn read_parameters(bytes: &[u8]) -> Result<Option<String>> {
    find_text(bytes, PARAMETERS_KEY)
}

/// The Kiln recipe stored in a PNG (`kiln-recipe` chunk), if any.
pub fn read_recipe(bytes: &[u8]) -> Result<Option<Recipe>> {
    let Some(json) = find_text(bytes, RECIPE_KEY)? else {
        return Ok(None);
    };
    let recipe = serde_json::from_str(&json)
        .map_err(|e| Error::Image(format!("the {RECIPE_KEY} chunk is not a valid recipe: {e}")))?;
    Ok(Some(recipe))
}

/// What Kiln reads from a ComfyUI API graph (FORMATS §11.2); every field is optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComfyParams {
    /// Positive prompt (CLIPTextEncode `text`, or `text_g` for SDXL nodes).
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative: Option<String>,
    /// KSampler `seed` (`noise_seed` for KSamplerAdvanced).
    pub seed: Option<u64>,
    /// KSampler `steps`.
    pub steps: Option<u64>,
    /// KSampler `cfg`.
    pub cfg: Option<f64>,
    /// KSampler `sampler_name`, e.g. `dpmpp_2m`.
    pub sampler_name: Option<String>,
    /// KSampler `scheduler`, e.g. `karras`.
    pub scheduler: Option<String>,
    /// KSampler `denoise`.
    pub denoise: Option<f64>,
    /// Checkpoint loader `ckpt_name`.
    pub checkpoint: Option<String>,
    /// LoraLoader `lora_name` and `strength_model`, from the sampler back to the checkpoint.
    pub loras: Vec<(String, f64)>,
}

impl ComfyParams {
    /// Kiln's sampler for `sampler_name` + `scheduler`, when it has one.
    pub fn sampler(&self) -> Option<SamplerKind> {
        let name = self.sampler_name.as_deref()?;
        let scheduler = self.scheduler.as_deref().unwrap_or("normal");
        match (name, scheduler) {
            ("euler", "normal") => Some(SamplerKind::Euler),
            ("euler_ancestral", "normal") => Some(SamplerKind::EulerAncestral),
            ("dpmpp_2m", "normal") => Some(SamplerKind::DpmPlusPlus2M),
            ("dpmpp_2m", "karras") => Some(SamplerKind::DpmPlusPlus2MKarras),
            ("ddim", "normal" | "ddim_uniform") => Some(SamplerKind::Ddim),
            ("lcm", "normal" | "sgm_uniform") => Some(SamplerKind::Lcm),
            _ => None,
        }
    }
}

/// Links in a ComfyUI API graph: `[source_id, output_index]`.
fn comfy_link(value: &serde_json::Value) -> Option<String> {
    let array = value.as_array()?;
    if array.len() != 2 {
        return None;
    }
    match array.first()? {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Longest chain followed through a graph (they are small; this stops cycles).
const COMFY_MAX_DEPTH: usize = 32;

/// Follows conditioning links back to the first node with a text input.
fn comfy_text(
    graph: &serde_json::Map<String, serde_json::Value>,
    id: &str,
    depth: usize,
) -> Option<String> {
    if depth > COMFY_MAX_DEPTH {
        return None;
    }
    let inputs = graph.get(id)?.get("inputs")?.as_object()?;
    for key in ["text", "text_g", "prompt", "string", "value"] {
        match inputs.get(key) {
            Some(serde_json::Value::String(text)) => return Some(text.clone()),
            Some(link) => {
                if let Some(source) = comfy_link(link)
                    && let Some(text) = comfy_text(graph, &source, depth + 1)
                {
                    return Some(text);
                }
            }
            None => {}
        }
    }
    inputs
        .values()
        .filter_map(comfy_link)
        .find_map(|source| comfy_text(graph, &source, depth + 1))
}

/// Parses a ComfyUI `prompt` chunk (API graph `{id: {"class_type", "inputs"}}`): the first
/// KSampler/KSamplerAdvanced (lowest id) and what its links lead to. `None` when the text is not
/// such a graph or has no sampler.
pub fn parse_comfy_prompt(json: &str) -> Option<ComfyParams> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let graph = value.as_object()?;
    let mut ids: Vec<&String> = graph.keys().collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.as_str()));
    let sampler = ids.into_iter().find_map(|id| {
        let node = graph.get(id)?;
        let class = node.get("class_type")?.as_str()?;
        matches!(class, "KSampler" | "KSamplerAdvanced").then_some(node.get("inputs")?.as_object()?)
    })?;
    let number = |key: &str| sampler.get(key).and_then(serde_json::Value::as_f64);
    let text = |key: &str| sampler.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let conditioning = |key: &str| {
        sampler
            .get(key)
            .and_then(comfy_link)
            .and_then(|source| comfy_text(graph, &source, 0))
    };
    let mut params = ComfyParams {
        prompt: conditioning("positive"),
        negative: conditioning("negative"),
        seed: sampler
            .get("seed")
            .or_else(|| sampler.get("noise_seed"))
            .and_then(serde_json::Value::as_u64),
        steps: sampler.get("steps").and_then(serde_json::Value::as_u64),
        cfg: number("cfg"),
        sampler_name: text("sampler_name"),
        scheduler: text("scheduler"),
        denoise: number("denoise"),
        ..ComfyParams::default()
    };
    let mut next = sampler.get("model").and_then(comfy_link);
    for _ in 0..COMFY_MAX_DEPTH {
        let Some(id) = next.take() else { break };
        let Some(inputs) = graph
            .get(&id)
            .and_then(|n| n.get("inputs"))
            .and_then(|i| i.as_object())
        else {
            break;
        };
        if let Some(ckpt) = inputs.get("ckpt_name").and_then(|v| v.as_str()) {
            params.checkpoint = Some(ckpt.to_owned());
            break;
        }
        if let Some(lora) = inputs.get("lora_name").and_then(|v| v.as_str()) {
            let strength = inputs
                .get("strength_model")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(1.0);
            params.loras.push((lora.to_owned(), strength));
        }
        next = inputs.get("model").and_then(comfy_link);
    }
    Some(params)
}

/// The ComfyUI parameters of a PNG (`prompt` chunk), if it has a readable graph.
pub fn read_comfy(bytes: &[u8]) -> Result<Option<ComfyParams>> {
    Ok(find_text(bytes, COMFY_PROMPT_KEY)?.and_then(|json| parse_comfy_prompt(&json)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{InitImage, ModelRef};
    use std::path::PathBuf;

    fn recipe() -> Recipe {
        Recipe {
            model: ModelRef {
                path: PathBuf::from("/models/epicPhotonism_v10.safetensors"),
                hash: Some("eed0bdfc49".into()),
                family: Some("sd1".into()),
            },
            prompt: "a clay fox, (studio light:1.2)\n<lora:clay:0.8>".into(),
            negative: Some("blurry, lowres".into()),
            seed: 2_899_092_436,
            sampler: SamplerKind::DpmPlusPlus2MKarras,
            steps: 20,
            cfg: 7.0,
            width: 512,
            height: 768,
            clip_skip: 2,
            ..Recipe::default()
        }
    }

    fn image() -> image::RgbImage {
        image::RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 16, y as u8 * 32, 7]))
    }

    #[test]
    fn lora_tags_and_hashes_are_written_for_a1111() {
        let mut r = recipe();
        r.loras = vec![
            crate::recipe::LoraSpec {
                path: PathBuf::from("/loras/clay.safetensors"),
                weight: 0.8,
                name: "clay".into(),
                hash: Some("e7911d734eef".into()),
            },
            crate::recipe::LoraSpec {
                path: PathBuf::from("/loras/ink_v2.safetensors"),
                weight: 1.0,
                name: String::new(),
                hash: Some("0123456789ab".into()),
            },
        ];
        let text = a1111_parameters(&r, &[]);
        // `clay` is already tagged in the prompt; `ink_v2` (from --lora) gets a tag.
        assert!(
            text.contains("<lora:clay:0.8> <lora:ink_v2:1.0>\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"Lora hashes: "clay: e7911d734eef, ink_v2: 0123456789ab""#),
            "{text}"
        );
        let parsed = parse_a1111_parameters(&text);
        assert_eq!(
            parsed.get("Lora hashes"),
            Some("clay: e7911d734eef, ink_v2: 0123456789ab")
        );
    }

    #[test]
    fn writes_a1111_layout() {
        let extras = vec![
            ("Lora hashes".to_owned(), "clay: e7911d734eef".to_owned()),
            ("Emphasis".to_owned(), "Original".to_owned()),
            ("VAE".to_owned(), "vae-ft-mse".to_owned()),
        ];
        let text = a1111_parameters(&recipe(), &extras);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            text,
            format!(
                "a clay fox, (studio light:1.2)\n<lora:clay:0.8>\nNegative prompt: blurry, lowres\n\
                 Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, \
                 Seed: 2899092436, Size: 512x768, Model hash: eed0bdfc49, \
                 Model: epicPhotonism_v10, VAE: vae-ft-mse, Clip skip: 2, RNG: CPU, \
                 Emphasis: Original, Lora hashes: \"clay: e7911d734eef\", Version: Kiln {version}"
            )
        );
        let mut r = recipe();
        r.negative = Some(String::new());
        r.cfg = 7.5;
        r.clip_skip = 1;
        r.model.hash = None;
        r.model.path = PathBuf::from("models/sd-v1.5");
        r.init = Some(InitImage {
            path: "in.png".into(),
            strength: 1.0,
        });
        let text = a1111_parameters(&r, &[]);
        assert!(!text.contains("Negative prompt"));
        assert!(text.contains("CFG scale: 7.5, "));
        assert!(text.contains("Model: sd-v1.5, Denoising strength: 1.0, RNG: CPU"));
        assert!(!text.contains("Clip skip"));
        assert!(!text.contains("Model hash"));
        // And it parses back.
        let parsed = parse_a1111_parameters(&a1111_parameters(&recipe(), &extras));
        assert_eq!(parsed.prompt, recipe().prompt);
        assert_eq!(parsed.negative, "blurry, lowres");
        assert_eq!(parsed.get("Lora hashes"), Some("clay: e7911d734eef"));
        assert_eq!(parsed.sampler(), Some(SamplerKind::DpmPlusPlus2MKarras));
        let mut back = Recipe {
            model: recipe().model,
            ..Recipe::default()
        };
        parsed.apply_to(&mut back);
        assert_eq!(back, recipe());
    }

    #[test]
    fn face_fix_and_identity_round_trip() {
        let mut r = recipe();
        r.face_fix = Some(crate::recipe::FaceFixSpec {
            strength: 0.35,
            prompt: Some("a smiling face, detailed eyes".into()),
            ..Default::default()
        });
        r.identity = Some(0.81234);
        let text = a1111_parameters(&r, &[]);
        assert!(
            text.contains(
                "Face fix: strength 0.35, Face fix prompt: \"a smiling face, detailed eyes\", \
                 Identity: 0.812, Licence: non-commercial (made with InsightFace's antelopev2 face \
                 models), Version"
            ),
            "{text}"
        );
        let parsed = parse_a1111_parameters(&text);
        assert_eq!(parsed.get("Identity"), Some("0.812"));
        let mut back = Recipe {
            model: recipe().model,
            ..Recipe::default()
        };
        let unused = parsed.apply_to(&mut back);
        assert!(
            !unused
                .iter()
                .any(|k| k.starts_with("Face") || k == "Identity")
        );
        assert_eq!(back.face_fix, r.face_fix);
        assert_eq!(back.identity, Some(0.812));
        // Without a prompt of its own, only the strength is written.
        r.face_fix = Some(Default::default());
        r.identity = None;
        let text = a1111_parameters(&r, &[]);
        assert!(
            text.contains("Face fix: strength 0.4, Licence: non-commercial"),
            "{text}"
        );
        assert!(!text.contains("Identity"));
        let mut back = Recipe::default();
        parse_a1111_parameters(&text).apply_to(&mut back);
        assert_eq!(back.face_fix, Some(Default::default()));
        // A face that is only the identity reference does not make the picture.
        r.face_fix = None;
        r.face = Some(crate::recipe::FaceSpec {
            strength: 0.0,
            keypoints: 0.0,
            ..Default::default()
        });
        assert!(!a1111_parameters(&r, &[]).contains("Licence"));
        if let Some(face) = r.face.as_mut() {
            face.strength = 0.8;
        }
        assert!(a1111_parameters(&r, &[]).contains("Licence: non-commercial"));
    }

    #[test]
    fn parses_the_formats_example() {
        let text = "masterpiece, a cat\nNegative prompt: ugly\nSteps: 20, Sampler: DPM++ 2M, \
            Schedule type: Karras, CFG scale: 7, Seed: 2899092436, Size: 512x512, \
            Model hash: eed0bdfc49, Model: epicPhotonism_v10, Denoising strength: 0.7, \
            Clip skip: 2, RNG: CPU, Lora hashes: \"name: e7911d734eef\", Version: v1.9.2";
        let p = parse_a1111_parameters(text);
        assert_eq!(p.prompt, "masterpiece, a cat");
        assert_eq!(p.negative, "ugly");
        let keys: Vec<&str> = p.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Steps",
                "Sampler",
                "Schedule type",
                "CFG scale",
                "Seed",
                "Size",
                "Model hash",
                "Model",
                "Denoising strength",
                "Clip skip",
                "RNG",
                "Lora hashes",
                "Version"
            ]
        );
        assert_eq!(p.get("Size"), Some("512x512"));
        assert_eq!(p.get("Lora hashes"), Some("name: e7911d734eef"));
        assert_eq!(p.get("Version"), Some("v1.9.2"));
        assert_eq!(p.sampler(), Some(SamplerKind::DpmPlusPlus2MKarras));
    }

    #[test]
    fn parses_old_form_multiline_and_quotes() {
        let text = "line one,\n  line two (x:1.2)  \nNegative prompt: bad hands,\nworst quality\n\
            Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1, Size: 768x512, \
            Lora hashes: \"a: 1, b: 2\", Empty: , Note: \"say \\\"hi\\\"\", ENSD: 31337";
        let p = parse_a1111_parameters(text);
        assert_eq!(p.prompt, "line one,\nline two (x:1.2)");
        assert_eq!(p.negative, "bad hands,\nworst quality");
        assert_eq!(p.get("Sampler"), Some("DPM++ 2M Karras"));
        assert_eq!(p.sampler(), Some(SamplerKind::DpmPlusPlus2MKarras));
        assert_eq!(p.get("Lora hashes"), Some("a: 1, b: 2"));
        assert_eq!(p.get("Note"), Some("say \"hi\""));
        assert_eq!(p.get("Empty"), None);
        assert_eq!(p.get("ENSD"), Some("31337"));
        assert_eq!(p.get("CFG scale"), Some("6.5"));

        // No parameter line: everything is prompt.
        let p = parse_a1111_parameters("just a prompt\nwith: two lines");
        assert_eq!(p.prompt, "just a prompt\nwith: two lines");
        assert!(p.params.is_empty());
        // Only a parameter line.
        let p = parse_a1111_parameters("Steps: 5, Sampler: Euler a, Seed: 3");
        assert_eq!(p.prompt, "");
        assert_eq!(p.sampler(), Some(SamplerKind::EulerAncestral));
    }

    #[test]
    fn sampler_names() {
        use SamplerKind::*;
        let cases = [
            ("Euler", None, Some(Euler)),
            ("Euler a", Some("Automatic"), Some(EulerAncestral)),
            ("DPM++ 2M", None, Some(DpmPlusPlus2M)),
            ("DPM++ 2M", Some("Karras"), Some(DpmPlusPlus2MKarras)),
            ("DPM++ 2M Karras", None, Some(DpmPlusPlus2MKarras)),
            (
                "DPM++ 2M Karras",
                Some("Automatic"),
                Some(DpmPlusPlus2MKarras),
            ),
            ("DDIM", None, Some(Ddim)),
            ("LCM", Some("Automatic"), Some(Lcm)),
            ("Euler", Some("Karras"), None),
            ("DPM++ 2M SDE Karras", None, None),
            ("DPM++ 2M", Some("Exponential"), None),
            ("UniPC", None, None),
        ];
        for (sampler, schedule, expected) in cases {
            assert_eq!(
                sampler_from_a1111(sampler, schedule),
                expected,
                "{sampler} {schedule:?}"
            );
        }
        for kind in SamplerKind::ALL {
            let (sampler, schedule) = kind.a1111_names();
            assert_eq!(sampler_from_a1111(sampler, Some(schedule)), Some(kind));
        }
    }

    #[test]
    fn recipe_round_trips_through_png() {
        let mut r = recipe();
        r.init = Some(InitImage {
            path: "init/猫.png".into(),
            strength: 0.55,
        });
        let json = serde_json::to_string(&r).unwrap();
        let parameters = a1111_parameters(&r, &[]);
        let bytes = encode_png(&image(), &parameters, &json).unwrap();
        assert_eq!(read_recipe(&bytes).unwrap(), Some(r));
        assert_eq!(read_parameters(&bytes).unwrap(), Some(parameters));
        let decoded = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(decoded, image());
        // Latin-1 parameters go to tEXt.
        assert!(bytes.windows(14).any(|w| w == b"tEXtparameters"));
        assert!(bytes.windows(15).any(|w| w == b"iTXtkiln-recipe"));
    }

    #[test]
    fn unicode_parameters_use_itxt() {
        let mut r = recipe();
        r.prompt = "一只可爱的猫，水彩画".into();
        r.negative = Some("模糊".into());
        let parameters = a1111_parameters(&r, &[]);
        let bytes = encode_png(&image(), &parameters, "").unwrap();
        assert!(bytes.windows(14).any(|w| w == b"iTXtparameters"));
        assert_eq!(
            read_parameters(&bytes).unwrap().as_deref(),
            Some(parameters.as_str())
        );
        assert_eq!(read_recipe(&bytes).unwrap(), None);
        let parsed = parse_a1111_parameters(&parameters);
        assert_eq!(parsed.prompt, "一只可爱的猫，水彩画");
        assert_eq!(parsed.negative, "模糊");
        // café is Latin-1: tEXt.
        let bytes = encode_png(&image(), "café", "").unwrap();
        assert!(bytes.windows(14).any(|w| w == b"tEXtparameters"));
        assert_eq!(read_parameters(&bytes).unwrap().as_deref(), Some("café"));
    }

    #[test]
    fn reads_compressed_and_trailing_chunks() {
        let img = image();
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, img.width(), img.height());
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder
                .add_ztxt_chunk("Comment".into(), "zipped ".repeat(50))
                .unwrap();
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(img.as_raw()).unwrap();
            writer
                .write_text_chunk(&png::text_metadata::ITXtChunk::new("late", "après"))
                .unwrap();
            writer.finish().unwrap();
        }
        let texts = read_png_text(&bytes).unwrap();
        assert!(texts.contains(&("Comment".into(), "zipped ".repeat(50))));
        assert!(texts.contains(&("late".into(), "après".into())));
        assert!(read_png_text(b"not a png").is_err());
        assert_eq!(read_parameters(&bytes).unwrap(), None);
        // A broken recipe chunk is an error, not a silent None.
        let bytes = encode_png(&img, "", "{not json").unwrap();
        assert!(read_recipe(&bytes).is_err());
    }

    #[test]
    fn reads_comfy_graph() {
        let graph = r#"{
            "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 7.5,
                  "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0,
                  "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0],
                  "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
            "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "clay.safetensors",
                   "strength_model": 0.8, "strength_clip": 0.8, "model": ["4", 0], "clip": ["4", 1]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a clay fox", "clip": ["10", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
        }"#;
        let p = parse_comfy_prompt(graph).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("a clay fox"));
        assert_eq!(p.negative.as_deref(), Some("blurry"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(42), Some(20), Some(7.5)));
        assert_eq!(p.checkpoint.as_deref(), Some("sd15.safetensors"));
        assert_eq!(p.loras, [("clay.safetensors".to_owned(), 0.8)]);
        assert_eq!(p.sampler(), Some(SamplerKind::DpmPlusPlus2MKarras));
        assert_eq!(parse_comfy_prompt("[1, 2]"), None);
        assert_eq!(parse_comfy_prompt("{}"), None);

        let mut bytes = Vec::new();
        {
            let img = image();
            let mut encoder = png::Encoder::new(&mut bytes, img.width(), img.height());
            encoder.set_color(png::ColorType::Rgb);
            encoder
                .add_text_chunk("prompt".into(), graph.into())
                .unwrap();
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(img.as_raw()).unwrap();
            writer.finish().unwrap();
        }
        assert_eq!(read_comfy(&bytes).unwrap(), Some(p));
    }
}
