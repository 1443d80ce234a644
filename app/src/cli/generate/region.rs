//! `kiln generate --region …`: one regional prompt per flag (`docs/REGIONAL.md`).
//!
//! `prompt=TEXT,box=X0,Y0,X1,Y1[,weight=W][,negative=TEXT]` or `prompt=TEXT,mask=PNG[,…]`.
//! A part ends at a comma followed by a known key and `=`, so prompts (A1111 syntax is full of
//! commas) and boxes may hold commas.

use anyhow::{Context, bail};
use kiln_inference::recipe::{RegionArea, RegionSpec};
use std::path::PathBuf;

/// The keys of a `--region` value.
const KEYS: [&str; 5] = ["prompt", "negative", "box", "mask", "weight"];

/// Splits a `--region` value into its `key=value` parts.
fn parts(text: &str) -> Vec<&str> {
    let starts_part = |rest: &str| {
        let rest = rest.trim_start();
        KEYS.iter()
            .any(|k| rest.strip_prefix(k).is_some_and(|r| r.starts_with('=')))
    };
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        if ch == ',' && starts_part(&text[i + 1..]) {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The four fractions of `box=X0,Y0,X1,Y1`.
fn parse_box(value: &str) -> anyhow::Result<[f32; 4]> {
    let numbers: Option<Vec<f32>> = value
        .split(',')
        .map(|v| v.trim().parse::<f32>().ok())
        .collect();
    match numbers.as_deref() {
        Some(&[x0, y0, x1, y1]) => Ok([x0, y0, x1, y1]),
        _ => bail!(
            "--region: box must be four numbers X0,Y0,X1,Y1 in fractions of the image (e.g. \
             box=0,0.5,0.5,1 for the lower left quarter), got {value:?}"
        ),
    }
}

/// Parses `--region` value number `index` (0-based); the box and weight are checked as the
/// engine checks them, a mask file must exist (its size is checked when the job runs).
pub(super) fn parse_region(text: &str, index: usize) -> anyhow::Result<RegionSpec> {
    let (mut prompt, mut negative, mut area, mut weight) = (None, None, None, 1.0f32);
    for part in parts(text) {
        let Some((key, value)) = part.trim_start().split_once('=') else {
            bail!(
                "--region: expected key=value parts (prompt=, box= or mask=, weight=, \
                 negative=), got {part:?} in {text:?}"
            );
        };
        match key.trim() {
            "prompt" => prompt = Some(value.to_string()),
            "negative" => negative = Some(value.to_string()),
            "weight" => {
                weight = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .with_context(|| format!("--region: weight must be a number, got {value:?}"))?;
            }
            "box" | "mask" if area.is_some() => {
                bail!("--region: give either box= or mask=, not both (in {text:?})")
            }
            "box" => area = Some(RegionArea::Box(parse_box(value)?)),
            "mask" => {
                let path = PathBuf::from(value);
                if !path.is_file() {
                    bail!("--region mask not found: {}", path.display());
                }
                area = Some(RegionArea::Mask(path));
            }
            other => bail!(
                "--region: unknown key {other:?} (prompt, box, mask, weight, negative) in {text:?}"
            ),
        }
    }
    let Some(prompt) = prompt else {
        bail!("--region needs prompt=TEXT (in {text:?})");
    };
    let Some(area) = area else {
        bail!("--region needs box=X0,Y0,X1,Y1 or mask=PNG (in {text:?})");
    };
    let spec = RegionSpec {
        prompt,
        negative,
        area,
        weight,
    };
    kiln_inference::pipelines::regions::check_region(&spec, index)
        .map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_and_boxes_keep_their_commas() {
        let spec = parse_region(
            "prompt=a puppy, (fluffy:1.2), grass,box=0,0.5,0.5,1,weight=0.8, negative=blurry, dark",
            0,
        )
        .unwrap();
        assert_eq!(spec.prompt, "a puppy, (fluffy:1.2), grass");
        assert_eq!(spec.area, RegionArea::Box([0.0, 0.5, 0.5, 1.0]));
        assert_eq!(spec.weight, 0.8);
        assert_eq!(spec.negative.as_deref(), Some("blurry, dark"));
        let spec = parse_region("box=0.5,0,1,1,prompt=a cat", 0).unwrap();
        assert_eq!(
            (spec.prompt.as_str(), spec.weight, spec.negative),
            ("a cat", 1.0, None)
        );
    }

    #[test]
    fn masks_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mask = dir.path().join("m.png");
        image::GrayImage::new(8, 8).save(&mask).unwrap();
        let spec = parse_region(&format!("prompt=x,mask={}", mask.display()), 0).unwrap();
        assert_eq!(spec.area, RegionArea::Mask(mask));
        let err = parse_region("prompt=x,mask=/no/such/mask.png", 0).unwrap_err();
        assert!(format!("{err:#}").contains("mask not found"), "{err:#}");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let msg =
            |text: &str, index: usize| format!("{:#}", parse_region(text, index).unwrap_err());
        assert!(msg("box=0,0,1,1", 0).contains("prompt=TEXT"));
        assert!(msg("prompt=x", 0).contains("box=X0,Y0,X1,Y1 or mask=PNG"));
        assert!(msg("prompt=x,box=0,0,1", 0).contains("four numbers"));
        assert!(msg("prompt=x,box=a,b,c,d", 0).contains("four numbers"));
        let bad = msg("prompt=x,box=0.5,0,0.5,1", 2);
        assert!(bad.contains("region 3") && bad.contains("x0 < x1"), "{bad}");
        assert!(msg("prompt=x,box=0,0,1,1,weight=1.5", 0).contains("weight"));
        assert!(msg("prompt=x,box=0,0,1,1,weight=heavy", 0).contains("weight"));
        assert!(msg("a puppy,box=0,0,1,1", 0).contains("key=value"));
        assert!(msg("prompt=x,box=0,0,1,1,box=0,0,1,1", 0).contains("not both"));
    }
}
