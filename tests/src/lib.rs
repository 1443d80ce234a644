//! Shared helpers for Kiln's end-to-end and parity tests on the tiny fixtures made by
//! `tests/fixtures/make_fixtures.py` (diffusers is the reference).

use std::path::PathBuf;

pub use kiln_inference;

/// `tests/fixtures/` of this checkout.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The Kiln recipe of a reference case (an entry of `refs/cases.json` or `refs/lora/cases.json`):
/// paths relative to `tests/fixtures/`, LoRAs from its `loras` list.
///
/// # Panics
/// On a malformed case (test data error).
#[allow(clippy::unwrap_used)]
pub fn recipe_of(case: &serde_json::Value) -> kiln_inference::Recipe {
    use kiln_inference::recipe::{
        ControlSpec, FaceSpec, InitImage, IpAdapterSpec, LoraSpec, MaskSpec, ModelRef,
        Preprocessor, RegionArea, RegionSpec,
    };
    use kiln_inference::{Recipe, SamplerKind};
    let dir = fixtures();
    let s = |k: &str| case[k].as_str().map(str::to_string);
    let init = case["init"].as_str().map(|p| InitImage {
        path: dir.join(p),
        strength: case["strength"].as_f64().unwrap() as f32,
    });
    let loras = case["loras"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|l| LoraSpec {
                    path: dir.join(l["file"].as_str().unwrap()),
                    weight: l["weight"].as_f64().unwrap() as f32,
                    name: String::new(),
                    hash: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let controls = case["controls"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| ControlSpec {
                    model: dir.join(c["model"].as_str().unwrap()),
                    // `image: null` (refs/controlnet_inpaint): the init image is the guide.
                    image: c["image"].as_str().map(|p| dir.join(p)).unwrap_or_default(),
                    preprocessor: c["pre"]
                        .as_str()
                        .map(|p| Preprocessor::from_name(p).unwrap())
                        .unwrap_or_default(),
                    scale: c["scale"].as_f64().unwrap_or(1.0) as f32,
                    start: c["start"].as_f64().unwrap_or(0.0) as f32,
                    end: c["end"].as_f64().unwrap_or(1.0) as f32,
                })
                .collect()
        })
        .unwrap_or_default();
    let mask = case["mask"].as_str().map(|m| MaskSpec {
        path: dir.join(m),
        blur: case["mask_blur"].as_u64().unwrap_or(0) as u32,
        only_masked: case["padding_mask_crop"].as_u64().is_some(),
        padding: case["padding_mask_crop"].as_u64().unwrap_or(32) as u32,
    });
    // Regional prompts (refs/regions/cases.json): `box` fractions or a `mask` file.
    let regions = case["regions"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| RegionSpec {
                    prompt: r["prompt"].as_str().unwrap().to_string(),
                    negative: r["negative"].as_str().map(str::to_string),
                    area: match r["box"].as_array() {
                        Some(b) => {
                            RegionArea::Box(std::array::from_fn(|i| b[i].as_f64().unwrap() as f32))
                        }
                        None => RegionArea::Mask(dir.join(r["mask"].as_str().unwrap())),
                    },
                    weight: r["weight"].as_f64().unwrap_or(1.0) as f32,
                })
                .collect()
        })
        .unwrap_or_default();
    Recipe {
        model: ModelRef {
            path: dir.join(s("model").unwrap()),
            ..ModelRef::default()
        },
        prompt: s("prompt").unwrap(),
        negative: s("negative"),
        seed: case["seed"].as_u64().unwrap(),
        sampler: SamplerKind::from_cli_name(case["sampler"].as_str().unwrap()).unwrap(),
        steps: case["steps"].as_u64().unwrap() as usize,
        cfg: case["cfg"].as_f64().unwrap() as f32,
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        init,
        clip_skip: case["clip_skip"].as_u64().unwrap_or(1) as u32,
        batch: 1,
        loras,
        controls,
        guess_mode: case["guess_mode"].as_bool().unwrap_or(false),
        mask,
        regions,
        // IP-Adapters (refs/ip_adapter/cases.json).
        ip_adapters: case["ip_adapters"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| IpAdapterSpec {
                        model: dir.join(a["model"].as_str().unwrap()),
                        encoder: dir.join(a["encoder"].as_str().unwrap()),
                        image: dir.join(a["image"].as_str().unwrap()),
                        scale: a["scale"].as_f64().unwrap_or(1.0) as f32,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        // InstantID (refs/instantid/cases.json).
        face: case["face"].as_object().map(|f| FaceSpec {
            image: dir.join(f["image"].as_str().unwrap()),
            index: f.get("index").and_then(|i| i.as_u64()).map(|i| i as usize),
            strength: f["strength"].as_f64().unwrap() as f32,
            keypoints: f["keypoints"].as_f64().unwrap() as f32,
            pose: f.get("pose").and_then(|p| p.as_str()).map(|p| dir.join(p)),
            model: dir.join(f["model"].as_str().unwrap()),
            analysis: dir.join(f["analysis"].as_str().unwrap()),
        }),
        ..Recipe::default()
    }
}

/// Per-channel difference statistics between two RGB8 images of equal size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageDiff {
    /// Largest absolute difference in 0–255 units.
    pub max: u8,
    /// Mean absolute difference in 0–255 units.
    pub mean: f64,
}

impl ImageDiff {
    /// Kiln's correctness standard: within 3/255 per channel, mean ≤ 0.5/255.
    pub fn within_standard(&self) -> bool {
        self.max <= 3 && self.mean <= 0.5
    }
}

/// Compares two images; `None` when their sizes differ.
pub fn image_diff(a: &image::RgbImage, b: &image::RgbImage) -> Option<ImageDiff> {
    if a.dimensions() != b.dimensions() {
        return None;
    }
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    let n = a.as_raw().len().max(1) as f64;
    Some(ImageDiff {
        max,
        mean: sum as f64 / n,
    })
}

/// Largest absolute difference between two tensors (flattened, f32).
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let a = a
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all());
    let b = b
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all());
    match (a, b) {
        (Ok(a), Ok(b)) if a.dims() == b.dims() => (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY),
        _ => f32::INFINITY,
    }
}

/// Renders every reference case with one engine (models and adapters stay loaded between
/// cases, as in the app) and compares each with its `png`; returns one line per case outside
/// [`ImageDiff::within_standard`] (or of another size). Prints every case's difference.
///
/// # Panics
/// When a case fails to render or a reference is unreadable (test data error).
#[allow(clippy::unwrap_used)]
pub fn check_reference_cases(cases: &[serde_json::Value]) -> Vec<String> {
    use kiln_inference::{CancelToken, Engine};
    let mut engine = Engine::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let outputs = engine
            .run(&recipe_of(case), &mut |_| {}, &CancelToken::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = image::open(fixtures().join(case["png"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        match image_diff(&outputs[0].image, &expected) {
            Some(diff) => {
                eprintln!("{name:32} max {:3}/255 mean {:.3}/255", diff.max, diff.mean);
                if !diff.within_standard() {
                    failures.push(format!("{name}: {diff:?}"));
                }
            }
            None => failures.push(format!(
                "{name}: size {:?}, reference {:?}",
                outputs[0].image.dimensions(),
                expected.dimensions()
            )),
        }
    }
    failures
}

/// The cases of a reference list (`refs/…/cases.json`).
///
/// # Panics
/// When the file is missing or not a JSON array.
#[allow(clippy::unwrap_used)]
pub fn reference_cases(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Renders the named cases of each `(cases file, names)` with `engine` and compares them with
/// their reference PNGs: returns how many were rendered and, per case over `max` (largest
/// channel difference) or `mean` (both /255), a failure line. `label` prefixes the printed lines.
pub fn render_reference_cases(
    engine: &mut kiln_inference::Engine,
    sets: &[(&str, &[&str])],
    max: u8,
    mean: f64,
    label: &str,
) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, names) in sets {
        let text = std::fs::read_to_string(fixtures().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for case in cases {
            let name = case["name"].as_str().unwrap_or_default();
            if !names.contains(&name) {
                continue;
            }
            let out = engine
                .run(
                    &recipe_of(&case),
                    &mut |_| {},
                    &kiln_inference::CancelToken::default(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let png = case["png"].as_str().unwrap_or_default();
            let expected = image::open(fixtures().join(png))
                .unwrap_or_else(|e| panic!("{png}: {e}"))
                .to_rgb8();
            let Some(diff) = image_diff(&out[0].image, &expected) else {
                failures.push(format!("{name}: size differs"));
                continue;
            };
            eprintln!(
                "{label} {name:28} max {:3}/255 mean {:.3}/255",
                diff.max, diff.mean
            );
            if diff.max > max || diff.mean > mean {
                failures.push(format!("{name}: {diff:?}"));
            }
            checked += 1;
        }
    }
    (checked, failures)
}
