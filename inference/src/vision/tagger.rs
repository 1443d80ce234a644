//! WD14-style image tagger (SmilingWolf's `wd-v1-4-*-tagger-v2` and `wd-*-tagger-v3`): an ONNX
//! model plus its `selected_tags.csv`, run with tract. Used to caption a preset's input photo.
//!
//! Follows the reference tagger (SmilingWolf's `wd-tagger` Space, `prepare_image` and
//! `load_labels`): the image goes over white (PIL `alpha_composite`), is padded to a centred
//! square on white, resized to the model's input size with PIL BICUBIC (reproduced here bit for
//! bit: antialiased, 22-bit fixed point, rounded to 8 bits after each pass), flipped to BGR and
//! fed as float32 0–255 in NHWC. The model outputs one sigmoid probability per CSV row.
//! Parity fixture: `tests/fixtures/make_tagger.py` (`refs/tagger.json`).

use crate::{Error, Result};
use image::{DynamicImage, RgbImage};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::GenericFactoid;

/// File name of the model inside a tagger folder.
pub const MODEL_FILE: &str = "model.onnx";
/// File name of the tag list beside the model.
pub const TAGS_FILE: &str = "selected_tags.csv";
/// The header line of a WD14 `selected_tags.csv`.
pub const TAGS_HEADER: &str = "tag_id,name,category,count";

/// Tags kept with their underscores in captions (the reference tagger's kaomoji list).
const KAOMOJIS: [&str; 19] = [
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o",
    "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
];

/// The kind of a tag, from the CSV's `category` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagCategory {
    /// Category 9: `general`, `sensitive`, `questionable`, `explicit`. Never captioned.
    Rating,
    /// Category 0: what is in the picture.
    General,
    /// Category 4: a named character.
    Character,
    /// Any other category number (unused by the released models).
    Other(u32),
}

impl From<u32> for TagCategory {
    fn from(category: u32) -> Self {
        match category {
            9 => TagCategory::Rating,
            0 => TagCategory::General,
            4 => TagCategory::Character,
            other => TagCategory::Other(other),
        }
    }
}

/// One tag with the model's probability for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The tag as written in the CSV (`long_hair`, `holding_cup_(object)`, `^_^`).
    pub name: String,
    /// Its category.
    pub category: TagCategory,
    /// Sigmoid probability, 0–1.
    pub score: f32,
}

impl Tag {
    /// The tag as it goes into an A1111 prompt: `_` becomes a space (except in kaomoji) and
    /// parentheses are escaped (`holding_cup_(object)` → `holding cup \(object\)`).
    pub fn prompt_text(&self) -> String {
        let text = if KAOMOJIS.contains(&self.name.as_str()) {
            self.name.clone()
        } else {
            self.name.replace('_', " ")
        };
        text.replace('(', "\\(").replace(')', "\\)")
    }
}

/// Per-category score thresholds for captions; a tag is kept when its score is above (>) it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Threshold for general tags (reference default 0.35).
    pub general: f32,
    /// Threshold for character tags (reference default 0.85).
    pub character: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            general: 0.35,
            character: 0.85,
        }
    }
}

/// A loaded tagger: the optimised tract plan and the tag list.
pub struct Tagger {
    plan: Arc<TypedRunnableModel>,
    tags: Vec<(String, TagCategory)>,
    input_name: String,
    /// Model input width and height in pixels.
    width: u32,
    height: u32,
    model_path: PathBuf,
}

impl fmt::Debug for Tagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tagger")
            .field("model_path", &self.model_path)
            .field("input_name", &self.input_name)
            .field("input_size", &(self.width, self.height))
            .field("tags", &self.tags.len())
            .finish_non_exhaustive()
    }
}

impl Tagger {
    /// `path`: a folder holding `model.onnx` + `selected_tags.csv`, or the `.onnx` file itself
    /// (with `selected_tags.csv` beside it).
    pub fn load(path: &Path) -> Result<Tagger> {
        let (model_path, csv_path) = if path.is_dir() {
            (path.join(MODEL_FILE), path.join(TAGS_FILE))
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            (path.to_path_buf(), dir.join(TAGS_FILE))
        };
        if !model_path.is_file() {
            return Err(Error::io(
                std::io::Error::new(std::io::ErrorKind::NotFound, "tagger model not found"),
                model_path,
            ));
        }
        let tags = read_tags(&csv_path)?;

        let onnx_error = |detail: String| Error::InvalidFile {
            format: "ONNX",
            detail,
            path: model_path.clone(),
        };
        let model = tract_onnx::onnx()
            .model_for_path(&model_path)
            .map_err(|e| onnx_error(one_line(&e)))?;
        let (input_name, width, height) = input_layout(&model).map_err(onnx_error)?;
        let input_fact = f32::fact([1, height as usize, width as usize, 3]);
        let typed = model
            .with_input_fact(0, input_fact.into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| onnx_error(one_line(&e)))?;
        let outputs = output_width(&typed).map_err(onnx_error)?;
        if outputs != tags.len() {
            return Err(Error::InvalidFile {
                format: "tag list CSV",
                detail: format!(
                    "{} tags, but the model {} predicts {outputs}",
                    tags.len(),
                    model_path.display()
                ),
                path: csv_path,
            });
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| onnx_error(one_line(&e)))?;
        Ok(Tagger {
            plan,
            tags,
            input_name,
            width,
            height,
            model_path,
        })
    }

    /// Name of the model's image input (`input_1:0` in v2 models, `input` in v3).
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// Model input width and height in pixels (448×448 for the released models).
    pub fn input_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Number of tags (CSV rows = model outputs).
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// The model input for `image`: NHWC `[1, height, width, 3]` flattened, BGR, 0–255.
    pub fn preprocess(&self, image: &DynamicImage) -> Vec<f32> {
        let square = pad_to_square_on_white(image);
        let resized = super::resample::resize_like_pil(
            &square,
            self.width,
            self.height,
            super::resample::PilFilter::Bicubic,
        );
        resized
            .pixels()
            .flat_map(|p| [p.0[2], p.0[1], p.0[0]])
            .map(f32::from)
            .collect()
    }

    /// All tags with their scores, in CSV order.
    pub fn tags(&self, image: &DynamicImage) -> Result<Vec<Tag>> {
        let input = self.preprocess(image);
        let run_error = |e: TractError| Error::InvalidFile {
            format: "ONNX",
            detail: format!("running the tagger failed: {}", one_line(&e)),
            path: self.model_path.clone(),
        };
        let shape = [1, self.height as usize, self.width as usize, 3];
        let tensor = Tensor::from_shape(&shape, &input).map_err(run_error)?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_error)?;
        let Some(output) = outputs.first() else {
            return Err(run_error(TractError::msg("the model gave no output")));
        };
        let scores = output.to_plain_array_view::<f32>().map_err(run_error)?;
        if scores.len() != self.tags.len() {
            return Err(run_error(TractError::msg(format!(
                "{} scores for {} tags",
                scores.len(),
                self.tags.len()
            ))));
        }
        Ok(self
            .tags
            .iter()
            .zip(scores.iter())
            .map(|((name, category), score)| Tag {
                name: name.clone(),
                category: *category,
                score: *score,
            })
            .collect())
    }

    /// A prompt for `image`: character tags, then general tags, each by descending score, kept
    /// when above their threshold; ratings never. Joined with ", " and A1111-escaped.
    pub fn caption(&self, image: &DynamicImage, thresholds: Thresholds) -> Result<String> {
        Ok(caption_from_tags(&self.tags(image)?, thresholds))
    }
}

/// The caption for already scored tags (see [`Tagger::caption`]).
pub fn caption_from_tags(tags: &[Tag], thresholds: Thresholds) -> String {
    let pick = |category: TagCategory, threshold: f32| {
        let mut kept: Vec<&Tag> = tags
            .iter()
            .filter(|t| t.category == category && t.score > threshold)
            .collect();
        // Stable sort: equal scores keep CSV order, as Python's `sorted` does.
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        kept
    };
    let characters = pick(TagCategory::Character, thresholds.character);
    let general = pick(TagCategory::General, thresholds.general);
    characters
        .into_iter()
        .chain(general)
        .map(Tag::prompt_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A tract error chain on one line.
fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Name, width and height of the model's single NHWC image input.
fn input_layout(model: &InferenceModel) -> std::result::Result<(String, u32, u32), String> {
    let inputs = model.input_outlets().map_err(|e| one_line(&e))?;
    let [input] = inputs else {
        return Err(format!(
            "a tagger has one image input, this model has {}",
            inputs.len()
        ));
    };
    let name = model.node(input.node).name.clone();
    let fact = model.input_fact(0).map_err(|e| one_line(&e))?;
    if let GenericFactoid::Only(datum_type) = fact.datum_type
        && datum_type != f32::datum_type()
    {
        return Err(format!(
            "input `{name}` is {datum_type:?}, expected float32"
        ));
    }
    let dims: Vec<Option<i64>> = fact
        .shape
        .dims()
        .map(|d| match d {
            GenericFactoid::Only(d) => d.to_i64().ok(),
            GenericFactoid::Any => None,
        })
        .collect();
    let [batch, height, width, channels] = dims.as_slice() else {
        return Err(format!(
            "input `{name}` has rank {}, expected 4 (NHWC: batch, height, width, 3)",
            dims.len()
        ));
    };
    let shape = || {
        let dims: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    };
    if !matches!(batch, None | Some(1)) || *channels != Some(3) {
        return Err(format!(
            "input `{name}` has shape {}, expected [batch, height, width, 3] (NHWC)",
            shape()
        ));
    }
    let size = |d: &Option<i64>| d.and_then(|d| u32::try_from(d).ok()).filter(|d| *d > 0);
    let (Some(height), Some(width)) = (size(height), size(width)) else {
        return Err(format!(
            "input `{name}` has shape {}: the model must state its image size",
            shape()
        ));
    };
    Ok((name, width, height))
}

/// Number of scores the (typed, concrete-shaped) model outputs for one image.
fn output_width(model: &TypedModel) -> std::result::Result<usize, String> {
    let fact = model.output_fact(0).map_err(|e| one_line(&e))?;
    match fact.shape.as_concrete() {
        Some([1, n]) | Some([n]) => Ok(*n),
        _ => Err(format!(
            "output has shape {:?}, expected [batch, tags]",
            fact.shape
        )),
    }
}

/// Reads `selected_tags.csv`: the header [`TAGS_HEADER`], then one row per model output.
fn read_tags(path: &Path) -> Result<Vec<(String, TagCategory)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::UnknownCheckpoint {
                detail: format!("the tagger's tag list {TAGS_FILE} is missing beside the model"),
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(Error::io(e, path)),
    };
    let bad = |detail: String| Error::InvalidFile {
        format: "tag list CSV",
        detail,
        path: path.to_path_buf(),
    };
    let mut lines = text.lines().enumerate();
    let header = lines.next().map_or("", |(_, line)| line);
    let header = header.trim_start_matches('\u{feff}').trim_end();
    if header != TAGS_HEADER {
        return Err(bad(format!(
            "header is `{header}`, expected `{TAGS_HEADER}`"
        )));
    }
    let mut tags = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv_line(line);
        let [_, name, category, _] = fields.as_slice() else {
            return Err(bad(format!(
                "line {}: {} fields, expected 4",
                index + 1,
                fields.len()
            )));
        };
        let Ok(category) = category.trim().parse::<u32>() else {
            return Err(bad(format!(
                "line {}: category `{category}` is not a number",
                index + 1
            )));
        };
        tags.push((name.clone(), TagCategory::from(category)));
    }
    Ok(tags)
}

/// Splits one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// PIL's `alpha_composite` of `image` over opaque white, then a white square canvas with the
/// image pasted at its centre (`(side - size) // 2`), as the reference `prepare_image` does.
pub fn pad_to_square_on_white(image: &DynamicImage) -> RgbImage {
    let rgba = image.to_rgba8();
    let (width, height) = rgba.dimensions();
    let side = width.max(height);
    let (left, top) = ((side - width) / 2, (side - height) / 2);
    let mut square = RgbImage::from_pixel(side, side, image::Rgb([255, 255, 255]));
    for (x, y, pixel) in rgba.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        let over = |c: u8| composite_over_white(c, a);
        square.put_pixel(x + left, y + top, image::Rgb([over(r), over(g), over(b)]));
    }
    square
}

/// One channel of PIL's `ImagingAlphaComposite` (7-bit extra precision, rounded division by
/// 255) with an opaque white destination.
fn composite_over_white(source: u8, alpha: u8) -> u8 {
    const PRECISION_BITS: u32 = 7;
    let (source, alpha) = (u32::from(source), u32::from(alpha));
    if alpha == 0 {
        return 255;
    }
    let blend = 255 * (255 - alpha);
    let out_alpha_255 = alpha * 255 + blend;
    let coef1 = alpha * 255 * 255 * (1 << PRECISION_BITS) / out_alpha_255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let tmp = source * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
    let shifted = ((tmp >> 8) + tmp) >> 8; // PIL's SHIFTFORDIV255
    u8::try_from(shifted >> PRECISION_BITS).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

    use super::*;

    fn tag(name: &str, category: TagCategory, score: f32) -> Tag {
        Tag {
            name: name.into(),
            category,
            score,
        }
    }

    #[test]
    fn prompt_text_spaces_and_escapes() {
        let t = |name| tag(name, TagCategory::General, 1.0).prompt_text();
        assert_eq!(t("long_hair"), "long hair");
        assert_eq!(t("holding_cup_(object)"), "holding cup \\(object\\)");
        assert_eq!(t("^_^"), "^_^");
        assert_eq!(t("(o)_(o)"), "\\(o\\)_\\(o\\)");
        assert_eq!(t(":d"), ":d");
    }

    #[test]
    fn caption_orders_characters_then_general_by_score() {
        let tags = [
            tag("general", TagCategory::Rating, 0.99),
            tag("smile", TagCategory::General, 0.5),
            tag("long_hair", TagCategory::General, 0.9),
            tag("sky", TagCategory::General, 0.35), // not above the threshold
            tag("kiln_(mascot)", TagCategory::Character, 0.86),
            tag("hatsune_miku", TagCategory::Character, 0.95),
            tag("clay_fox", TagCategory::Character, 0.8),
            tag("odd", TagCategory::Other(3), 0.99),
        ];
        assert_eq!(
            caption_from_tags(&tags, Thresholds::default()),
            "hatsune miku, kiln \\(mascot\\), long hair, smile"
        );
        let strict = Thresholds {
            general: 0.95,
            character: 0.99,
        };
        assert_eq!(caption_from_tags(&tags, strict), "");
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(split_csv_line("1,a_b,0,5"), ["1", "a_b", "0", "5"]);
        assert_eq!(
            split_csv_line("1,\"x,\"\"y\"\"\",0,5\r"),
            ["1", "x,\"y\"", "0", "5"]
        );
    }

    #[test]
    fn composite_matches_pil_corners() {
        // Reference values from Pillow's `alpha_composite` over white.
        assert_eq!(composite_over_white(0, 0), 255);
        assert_eq!(composite_over_white(0, 255), 0);
        assert_eq!(composite_over_white(200, 255), 200);
        assert_eq!(composite_over_white(0, 128), 127);
        assert_eq!(composite_over_white(100, 1), 254);
    }

    #[test]
    fn resize_same_size_is_identity() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 90, 7]));
        assert_eq!(
            crate::vision::resample::resize_like_pil(
                &image,
                5,
                3,
                crate::vision::resample::PilFilter::Bicubic
            ),
            image
        );
    }
}
