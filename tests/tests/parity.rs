//! End-to-end parity: every render in `tests/fixtures/refs/cases.json` (made by
//! `make_fixtures.py` with diffusers, CPU, float32) reproduced by Kiln within 3/255.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::{CancelToken, Engine};
use kiln_tests::{fixtures, image_diff, recipe_of};
use serde_json::Value;

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
