//! The preset file format, schema 1: a TOML file with names in English and Simplified Chinese,
//! the model family, the recommended base model and LoRAs (catalog ids and file-name hints), a
//! prompt template, sampling settings, and an `[image]` table used when an input photo is given.
//!
//! Unknown keys are errors (`deny_unknown_fields`), and every value is checked while it is
//! read, so a mistake is reported with the line it is on (see [`parse_preset`]).

use super::error::PresetError;
use super::template::check_template;
use crate::library::settings::Language;
use kiln_inference::SamplerKind;
use kiln_inference::io::family::Family;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The schema version this Kiln reads and writes.
pub const PRESET_SCHEMA: u32 = 1;

/// Most sampling steps a preset may ask for (the Generate form's limit).
pub const MAX_STEPS: usize = 150;
/// Largest width or height a preset may ask for.
pub const MAX_SIDE: u32 = 4096;
/// Longest preset id.
pub const MAX_ID_LEN: usize = 64;

/// A style preset: everything needed to turn a prompt (and maybe a photo) into a recipe, except
/// the files themselves, which are found in the model library by catalog id or name hints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Format version ([`PRESET_SCHEMA`]).
    pub schema: u32,
    /// Stable id: lower-case letters, digits, `-` and `_` (`clay`, `3d-cartoon`). User presets
    /// with a built-in's id replace that built-in.
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    /// Model family the preset is made for (`sd1`, `sd2` or `sdxl`).
    #[serde(deserialize_with = "de_family", serialize_with = "ser_family")]
    pub family: Family,
    /// Prompt template with exactly one `{prompt}`, e.g. `{prompt}, (claymation style:1.2)`.
    #[serde(deserialize_with = "de_template")]
    pub prompt: String,
    /// Negative prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative: Option<String>,
    /// Sampler; the recipe default (`dpm++2m-karras`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<SamplerKind>,
    /// Sampling steps (1–150).
    #[serde(
        default,
        deserialize_with = "de_steps",
        skip_serializing_if = "Option::is_none"
    )]
    pub steps: Option<usize>,
    /// Guidance scale (0–30).
    #[serde(
        default,
        deserialize_with = "de_cfg",
        skip_serializing_if = "Option::is_none"
    )]
    pub cfg: Option<f32>,
    /// Width in pixels (multiple of 8) for text-to-image; the family's native size when absent.
    #[serde(
        default,
        deserialize_with = "de_side",
        skip_serializing_if = "Option::is_none"
    )]
    pub width: Option<u32>,
    /// Height in pixels (multiple of 8).
    #[serde(
        default,
        deserialize_with = "de_side",
        skip_serializing_if = "Option::is_none"
    )]
    pub height: Option<u32>,
    /// A1111 clip skip (1 = last layer).
    #[serde(
        default,
        deserialize_with = "de_clip_skip",
        skip_serializing_if = "Option::is_none"
    )]
    pub clip_skip: Option<u32>,
    /// Display name.
    #[serde(deserialize_with = "de_name")]
    pub name: LocalizedText,
    /// One or two sentences for the gallery card.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub description: LocalizedText,
    /// Recommended base model; when absent the user's current model is used.
    #[serde(
        default,
        deserialize_with = "de_model",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<ModelSpec>,
    /// LoRAs, applied in order (`[[lora]]` tables).
    #[serde(
        default,
        rename = "lora",
        deserialize_with = "de_loras",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub loras: Vec<PresetLora>,
    /// Settings used when an input image is given (image-to-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSettings>,
}

/// A text in English (required) and Simplified Chinese (optional; English is shown instead).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedText {
    /// English.
    #[serde(default)]
    pub en: String,
    /// Simplified Chinese.
    #[serde(default, rename = "zh-CN", skip_serializing_if = "Option::is_none")]
    pub zh_cn: Option<String>,
}

/// Where to find a model: a catalog id (its file names are hints too) and/or file-name hints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Id in `assets/catalog.toml` (what to download when no local copy is found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// File or folder names (without extension) a local copy may have; compared ignoring case
    /// and punctuation, an exact match before a name that contains the hint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// One LoRA of a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetLora {
    /// Catalog id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// File-name hints (see [`ModelSpec::hints`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// User weight (A1111 `<lora:name:weight>`), −5 to 5; 1 when absent.
    #[serde(default = "one", deserialize_with = "de_lora_weight")]
    pub weight: f32,
    /// Trigger words; any that the filled prompt lacks is appended to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
}

/// Settings for an input image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Denoising strength in (0, 1]: how much of the photo is repainted.
    #[serde(deserialize_with = "de_strength")]
    pub strength: f32,
    /// Keep the photo's shape with a ControlNet (canny; other types, and a ControlNet model
    /// missing from the library, are warnings and the photo runs without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlnet: Option<ControlNetSpec>,
    /// Keep the person's face (InstantID; not available yet: reported as a warning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_face: bool,
    /// Caption the photo with an image tagger when the user gives no prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_caption: Option<AutoCaption>,
}

/// ControlNet guide types a preset can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    /// Canny edges.
    Canny,
    /// Depth map.
    Depth,
    /// OpenPose skeleton.
    Openpose,
    /// Line art.
    Lineart,
    /// Scribble.
    Scribble,
}

impl ControlKind {
    /// The id as written in preset files.
    pub fn id(self) -> &'static str {
        match self {
            ControlKind::Canny => "canny",
            ControlKind::Depth => "depth",
            ControlKind::Openpose => "openpose",
            ControlKind::Lineart => "lineart",
            ControlKind::Scribble => "scribble",
        }
    }
}

/// A ControlNet the preset wants on input images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlNetSpec {
    /// Guide type.
    #[serde(rename = "type")]
    pub kind: ControlKind,
    /// Conditioning scale, in (0, 2].
    #[serde(default = "one", deserialize_with = "de_control_scale")]
    pub scale: f32,
    /// Catalog id of the ControlNet model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// File-name hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// Automatic caption of the input photo (WD14-style tagger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoCaption {
    /// Probability threshold for general tags, in [0, 1].
    #[serde(default = "default_general", deserialize_with = "de_threshold")]
    pub general: f32,
    /// Probability threshold for character tags, in [0, 1].
    #[serde(default = "default_character", deserialize_with = "de_threshold")]
    pub character: f32,
    /// Catalog id of the tagger ([`DEFAULT_TAGGER`] when neither this nor hints are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// File or folder-name hints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// The tagger used when a preset's `auto_caption` names none.
pub const DEFAULT_TAGGER: &str = "tagger-wd-swinv2-v3";

impl Default for AutoCaption {
    fn default() -> Self {
        AutoCaption {
            general: default_general(),
            character: default_character(),
            catalog: None,
            hints: Vec::new(),
        }
    }
}

impl AutoCaption {
    /// The catalog id to use: the given one, or [`DEFAULT_TAGGER`] when no hints are given.
    pub fn catalog_id(&self) -> Option<&str> {
        match &self.catalog {
            Some(id) => Some(id),
            None if self.hints.is_empty() => Some(DEFAULT_TAGGER),
            None => None,
        }
    }
}

fn one() -> f32 {
    1.0
}

fn default_general() -> f32 {
    0.35
}

fn default_character() -> f32 {
    0.85
}

impl LocalizedText {
    /// English and Chinese text.
    pub fn new(en: &str, zh_cn: Option<&str>) -> Self {
        LocalizedText {
            en: en.to_owned(),
            zh_cn: zh_cn.map(str::to_owned),
        }
    }

    /// The text in `language`, falling back to English.
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::SimplifiedChinese => self
                .zh_cn
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(&self.en),
            Language::English => &self.en,
        }
    }

    /// No text in either language.
    pub fn is_empty(&self) -> bool {
        self.en.is_empty() && self.zh_cn.as_deref().is_none_or(str::is_empty)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks, shared by the reader (so errors carry a line) and `Preset::validate`.

/// Checks a preset id.
pub fn check_id(id: &str) -> Result<(), String> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let starts_well = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if id.is_empty() || id.len() > MAX_ID_LEN || !valid_chars || !starts_well {
        return Err(format!(
            "invalid preset id {id:?}: use 1 to {MAX_ID_LEN} lower-case letters, digits, '-' \
             or '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn check_steps(steps: &usize) -> Result<(), String> {
    if (1..=MAX_STEPS).contains(steps) {
        Ok(())
    } else {
        Err(format!(
            "steps must be between 1 and {MAX_STEPS}, got {steps}"
        ))
    }
}

fn check_cfg(cfg: &f32) -> Result<(), String> {
    if cfg.is_finite() && (0.0..=30.0).contains(cfg) {
        Ok(())
    } else {
        Err(format!("cfg must be between 0 and 30, got {cfg}"))
    }
}

fn check_side(side: &u32) -> Result<(), String> {
    if *side >= 8 && *side <= MAX_SIDE && side.is_multiple_of(8) {
        Ok(())
    } else {
        Err(format!(
            "width and height must be multiples of 8 between 8 and {MAX_SIDE}, got {side}"
        ))
    }
}

fn check_clip_skip(clip_skip: &u32) -> Result<(), String> {
    if (1..=12).contains(clip_skip) {
        Ok(())
    } else {
        Err(format!(
            "clip_skip must be between 1 and 12, got {clip_skip}"
        ))
    }
}

fn check_strength(strength: &f32) -> Result<(), String> {
    if *strength > 0.0 && *strength <= 1.0 {
        Ok(())
    } else {
        Err(format!("strength must be in (0, 1], got {strength}"))
    }
}

fn check_lora_weight(weight: &f32) -> Result<(), String> {
    if weight.is_finite() && (-5.0..=5.0).contains(weight) {
        Ok(())
    } else {
        Err(format!(
            "LoRA weight must be between -5 and 5, got {weight}"
        ))
    }
}

fn check_control_scale(scale: &f32) -> Result<(), String> {
    if *scale > 0.0 && *scale <= 2.0 {
        Ok(())
    } else {
        Err(format!("ControlNet scale must be in (0, 2], got {scale}"))
    }
}

fn check_threshold(threshold: &f32) -> Result<(), String> {
    if (0.0..=1.0).contains(threshold) {
        Ok(())
    } else {
        Err(format!(
            "caption thresholds must be in [0, 1], got {threshold}"
        ))
    }
}

fn check_name(name: &LocalizedText) -> Result<(), String> {
    if name.en.trim().is_empty() {
        return Err("the preset needs a name: [name] en = \"…\"".into());
    }
    if name.en.chars().count() > 80 || name.zh_cn.as_ref().is_some_and(|z| z.chars().count() > 80) {
        return Err("preset names are at most 80 characters".into());
    }
    Ok(())
}

fn check_model(model: &ModelSpec) -> Result<(), String> {
    if model.catalog.is_none() && model.hints.is_empty() {
        return Err("[model] needs a catalog id or file-name hints".into());
    }
    check_hints(&model.hints)
}

fn check_lora(lora: &PresetLora) -> Result<(), String> {
    if lora.catalog.is_none() && lora.hints.is_empty() {
        return Err("each [[lora]] needs a catalog id or file-name hints".into());
    }
    check_hints(&lora.hints)?;
    check_lora_weight(&lora.weight)
}

fn check_hints(hints: &[String]) -> Result<(), String> {
    if hints.iter().any(|h| !h.chars().any(char::is_alphanumeric)) {
        return Err("file-name hints must not be empty".into());
    }
    Ok(())
}

fn check_family(family: &Family) -> Result<(), String> {
    match family {
        Family::Sd1 | Family::Sd2 | Family::Sdxl => Ok(()),
        other => Err(format!(
            "presets are for image models: family must be sd1, sd2 or sdxl, got {}",
            other.id()
        )),
    }
}

/// Deserializes a value and runs a check on it; the error carries the value's line.
macro_rules! checked {
    ($name:ident, $ty:ty, $check:expr) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            let value = <$ty>::deserialize(d)?;
            $check(&value).map_err(D::Error::custom)?;
            Ok(value)
        }
    };
    (option $name:ident, $ty:ty, $check:expr) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
            let value = <$ty>::deserialize(d)?;
            $check(&value).map_err(D::Error::custom)?;
            Ok(Some(value))
        }
    };
}

checked!(de_id, String, |id: &String| check_id(id));
checked!(de_template, String, |t: &String| check_template(t));
checked!(option de_steps, usize, check_steps);
checked!(option de_cfg, f32, check_cfg);
checked!(option de_side, u32, check_side);
checked!(option de_clip_skip, u32, check_clip_skip);
checked!(de_strength, f32, check_strength);
checked!(de_lora_weight, f32, check_lora_weight);
checked!(de_control_scale, f32, check_control_scale);
checked!(de_threshold, f32, check_threshold);
checked!(option de_model, ModelSpec, check_model);
checked!(de_name, LocalizedText, check_name);

fn de_loras<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PresetLora>, D::Error> {
    let loras = Vec::<PresetLora>::deserialize(d)?;
    for lora in &loras {
        check_lora(lora).map_err(D::Error::custom)?;
    }
    Ok(loras)
}

fn de_family<'de, D: Deserializer<'de>>(d: D) -> Result<Family, D::Error> {
    let id = String::deserialize(d)?;
    let family = match id.as_str() {
        "sd1" => Family::Sd1,
        "sd2" => Family::Sd2,
        "sdxl" => Family::Sdxl,
        other => {
            return Err(D::Error::custom(format!(
                "unknown family {other:?} (expected sd1, sd2 or sdxl)"
            )));
        }
    };
    Ok(family)
}

fn ser_family<S: serde::Serializer>(family: &Family, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(family.id())
}

// ---------------------------------------------------------------------------------------------

impl Preset {
    /// A minimal preset: name, family and template; everything else unset.
    pub fn new(id: &str, name: LocalizedText, family: Family, prompt_template: &str) -> Self {
        Preset {
            schema: PRESET_SCHEMA,
            id: id.to_owned(),
            family,
            prompt: prompt_template.to_owned(),
            negative: None,
            sampler: None,
            steps: None,
            cfg: None,
            width: None,
            height: None,
            clip_skip: None,
            name,
            description: LocalizedText::default(),
            model: None,
            loras: Vec::new(),
            image: None,
        }
    }

    /// The same checks the reader makes, for presets built in code (the app's editor).
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != PRESET_SCHEMA {
            return Err(format!(
                "unsupported preset schema {} (this Kiln reads schema {PRESET_SCHEMA})",
                self.schema
            ));
        }
        check_id(&self.id)?;
        check_family(&self.family)?;
        check_template(&self.prompt)?;
        check_name(&self.name)?;
        self.steps.as_ref().map(check_steps).transpose()?;
        self.cfg.as_ref().map(check_cfg).transpose()?;
        self.width.as_ref().map(check_side).transpose()?;
        self.height.as_ref().map(check_side).transpose()?;
        self.clip_skip.as_ref().map(check_clip_skip).transpose()?;
        self.model.as_ref().map(check_model).transpose()?;
        for lora in &self.loras {
            check_lora(lora)?;
        }
        if let Some(image) = &self.image {
            check_strength(&image.strength)?;
            if let Some(control) = &image.controlnet {
                check_control_scale(&control.scale)?;
                check_hints(&control.hints)?;
            }
            if let Some(caption) = &image.auto_caption {
                check_threshold(&caption.general)?;
                check_threshold(&caption.character)?;
                check_hints(&caption.hints)?;
            }
        }
        Ok(())
    }

    /// The preset as TOML text (schema 1), with a header comment.
    pub fn to_toml(&self) -> Result<String, PresetError> {
        let body = toml::to_string_pretty(self).map_err(|e| PresetError::Other(e.to_string()))?;
        Ok(format!(
            "# Kiln style preset (schema {PRESET_SCHEMA})\n{body}"
        ))
    }

    /// Whether a model the preset uses (by catalog id) forbids commercial use: the preset, and
    /// every picture it makes, carries the restriction.
    pub fn non_commercial(&self) -> bool {
        let catalog = crate::library::catalog::Catalog::builtin();
        self.catalog_ids()
            .into_iter()
            .any(|id| catalog.get(id).is_some_and(|m| m.non_commercial))
    }

    /// Catalog ids the preset refers to (base model, LoRAs, ControlNet, tagger), in that order.
    pub fn catalog_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        ids.extend(self.model.as_ref().and_then(|m| m.catalog.as_deref()));
        ids.extend(self.loras.iter().filter_map(|l| l.catalog.as_deref()));
        if let Some(image) = &self.image {
            ids.extend(image.controlnet.as_ref().and_then(|c| c.catalog.as_deref()));
            ids.extend(
                image
                    .auto_caption
                    .as_ref()
                    .and_then(AutoCaption::catalog_id),
            );
        }
        ids
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn invalid(
    origin: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> PresetError {
    let (line, column) = match span {
        Some(span) => {
            let (l, c) = line_column(text, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    PresetError::Invalid {
        origin: origin.to_owned(),
        line,
        column,
        message: message.trim().to_owned(),
    }
}

/// Just the schema version, read before the rest.
#[derive(Deserialize)]
struct SchemaOnly {
    schema: Option<toml::Spanned<toml::Value>>,
}

/// Reads a preset from TOML text; `origin` names the file in error messages. Every error says
/// what is wrong and on which line: unknown keys, wrong types, bad values, missing fields, and
/// files from a newer Kiln (a higher `schema`).
pub fn parse_preset(text: &str, origin: &str) -> Result<Preset, PresetError> {
    let header: SchemaOnly =
        toml::from_str(text).map_err(|e| invalid(origin, text, e.span(), e.message()))?;
    let Some(schema) = header.schema else {
        return Err(invalid(
            origin,
            text,
            Some(0..0),
            &format!("missing `schema = {PRESET_SCHEMA}` (the preset format version)"),
        ));
    };
    match schema.get_ref().as_integer() {
        Some(v) if v == i64::from(PRESET_SCHEMA) => {}
        Some(v) if v > i64::from(PRESET_SCHEMA) => {
            return Err(invalid(
                origin,
                text,
                Some(schema.span()),
                &format!(
                    "this preset is for a newer Kiln (schema {v}; this Kiln reads schema \
                     {PRESET_SCHEMA})"
                ),
            ));
        }
        _ => {
            return Err(invalid(
                origin,
                text,
                Some(schema.span()),
                &format!("schema must be {PRESET_SCHEMA}"),
            ));
        }
    }
    let preset: Preset =
        toml::from_str(text).map_err(|e| invalid(origin, text, e.span(), e.message()))?;
    // What the reader cannot place on a line (cross-field rules).
    preset
        .validate()
        .map_err(|message| invalid(origin, text, None, &message))?;
    Ok(preset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
schema = 1
id = "test"
family = "sdxl"
prompt = "{prompt}, clay"
steps = 20
cfg = 6

[name]
en = "Test"
zh-CN = "测试"

[model]
catalog = "sdxl-base-1.0"

[[lora]]
hints = ["clay"]
weight = 0.8

[image]
strength = 0.5

[image.auto_caption]
general = 0.3
"#;

    fn error_of(text: &str) -> (Option<usize>, String) {
        match parse_preset(text, "x.toml") {
            Err(PresetError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an invalid-preset error, got {other:?}"),
        }
    }

    #[test]
    fn good_preset_parses_and_round_trips() {
        let preset = parse_preset(GOOD, "good.toml").unwrap();
        assert_eq!(preset.id, "test");
        assert_eq!(preset.family, Family::Sdxl);
        assert_eq!(preset.cfg, Some(6.0));
        assert_eq!(preset.loras[0].weight, 0.8);
        let caption = preset
            .image
            .as_ref()
            .unwrap()
            .auto_caption
            .as_ref()
            .unwrap();
        assert_eq!(caption.general, 0.3);
        assert_eq!(caption.character, 0.85);
        assert_eq!(caption.catalog_id(), Some(DEFAULT_TAGGER));
        assert_eq!(preset.name.get(Language::SimplifiedChinese), "测试");
        let text = preset.to_toml().unwrap();
        assert_eq!(parse_preset(&text, "again.toml").unwrap(), preset);
    }

    #[test]
    fn errors_name_the_line() {
        let unknown = GOOD.replace("steps = 20", "stepz = 20");
        let (line, message) = error_of(&unknown);
        assert_eq!(line, Some(6), "{message}");
        assert!(message.contains("stepz"), "{message}");

        let wrong_type = GOOD.replace("steps = 20", "steps = \"twenty\"");
        let (line, message) = error_of(&wrong_type);
        assert_eq!(line, Some(6), "{message}");

        let zero = GOOD.replace("steps = 20", "steps = 0");
        let (line, message) = error_of(&zero);
        assert_eq!(line, Some(6), "{message}");
        assert!(message.contains("steps must be"), "{message}");

        let strength = GOOD.replace("strength = 0.5", "strength = 1.5");
        let (line, message) = error_of(&strength);
        assert_eq!(line, Some(21), "{message}");
        assert!(message.contains("strength"), "{message}");

        let template = GOOD.replace("{prompt}, clay", "clay");
        let (line, message) = error_of(&template);
        assert_eq!(line, Some(5), "{message}");
        assert!(message.contains("{prompt}"), "{message}");

        let size = GOOD.replace("cfg = 6", "cfg = 6\nwidth = 100");
        let (line, message) = error_of(&size);
        assert_eq!(line, Some(8), "{message}");
        assert!(message.contains("multiples of 8"), "{message}");

        let family = GOOD.replace("\"sdxl\"", "\"sd15\"");
        let (line, message) = error_of(&family);
        assert_eq!(line, Some(4), "{message}");
        assert!(message.contains("sd15"), "{message}");

        let lora = GOOD.replace("hints = [\"clay\"]\n", "");
        let (line, message) = error_of(&lora);
        assert!(line.is_some(), "{message}");
        assert!(message.contains("lora"), "{message}");

        let nested = GOOD.replace("general = 0.3", "general = 0.3\nthreshold = 1");
        let (line, message) = error_of(&nested);
        assert_eq!(line, Some(25), "{message}");
        assert!(message.contains("threshold"), "{message}");
    }

    #[test]
    fn schema_is_checked_first() {
        let (line, message) = error_of(&GOOD.replace("schema = 1", "schema = 2"));
        assert_eq!(line, Some(2));
        assert!(message.contains("newer Kiln"), "{message}");
        let (_, message) = error_of(&GOOD.replace("schema = 1", ""));
        assert!(message.contains("schema"), "{message}");
        let (_, message) = error_of("not toml [");
        assert!(!message.is_empty());
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("clay").is_ok());
        assert!(check_id("3d-cartoon").is_ok());
        for bad in ["", "Clay", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
