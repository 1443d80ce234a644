//! End-to-end parity: every render in `tests/fixtures/refs/cases.json` (made by
//! `make_fixtures.py` with diffusers, CPU, float32) reproduced by Kiln within 3/255.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::recipe::{InitImage, ModelRef};
use kiln_inference::{CancelToken, Engine, Recipe, SamplerKind};
use kiln_tests::{fixtures, image_diff};
use serde_json::Value;

fn recipe_of(case: &Value) -> Recipe {
    let dir = fixtures();
    let s = |k: &str| case[k].as_str().map(str::to_string);
    let init = case["init"].as_str().map(|p| InitImage {
        path: dir.join(p),
        strength: case["strength"].as_f64().unwrap() as f32,
    });
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
        ..Recipe::default()
    }
}

#[test]
fn every_reference_render_matches_diffusers() {
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("refs/cases.json")).unwrap())
            .unwrap();
    assert!(cases.len() >= 20, "expected the full case list");
    let mut engine = Engine::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let recipe = recipe_of(case);
        let outputs = engine
            .run(&recipe, &mut |_| {}, &CancelToken::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let expected = image::open(fixtures().join(case["png"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let diff = image_diff(&outputs[0].image, &expected).expect("same size");
        eprintln!("{name:40} max {:3}/255 mean {:.3}/255", diff.max, diff.mean);
        if !diff.within_standard() {
            failures.push(format!("{name}: {diff:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "renders differ from diffusers:\n{}",
        failures.join("\n")
    );
}
