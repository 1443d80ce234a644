//! The bf16 weight path (UNet and VAE weights packed as bf16, f32 accumulation) stays within
//! 8/255 of diffusers' fp32 renders, with LoRAs and ControlNets too; the int8 weight path
//! (8-bit weights, one scale per output channel, bf16 compute) within the bound below.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::engine::Precision;
use kiln_inference::{CancelToken, Engine};
use kiln_tests::{fixtures, image_diff, recipe_of};
use serde_json::Value;

/// int8 bounds (/255): largest channel difference and mean difference from diffusers' fp32
/// (measured: max 3–8 on eight cases, 15 on the SDXL LoRA case; mean ≤ 0.73, 2.33 there).
const INT8_MAX: u8 = 16;
const INT8_MEAN: f64 = 2.5;

fn cases(path: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(path)).unwrap()).unwrap()
}

/// Renders the nine reference cases at `precision`; returns the failures over `max` (largest
/// channel difference) or `mean` (mean difference), both /255.
fn render_cases(precision: Precision, max: u8, mean: f64) -> Vec<String> {
    let mut engine = Engine::new();
    engine.precision = precision;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, names) in [
        (
            "refs/cases.json",
            &[
                "sd15_euler",
                "sd15_dpmpp_2m_karras",
                "sd15_img2img_euler",
                "sdxl_euler",
                "sd15single_euler",
            ][..],
        ),
        (
            "refs/lora/cases.json",
            &["sd15_lora_kohya", "sdxl_lora_kohya"][..],
        ),
        ("refs/controlnet/cases.json", &["sd15_cn_canny"][..]),
        ("refs/inpaint/cases.json", &["sd15_inpaint9_euler"][..]),
    ] {
        for case in cases(file) {
            let name = case["name"].as_str().unwrap();
            if !names.contains(&name) {
                continue;
            }
            let out = engine
                .run(&recipe_of(&case), &mut |_| {}, &CancelToken::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = image::open(fixtures().join(case["png"].as_str().unwrap()))
                .unwrap()
                .to_rgb8();
            let diff = image_diff(&out[0].image, &expected).unwrap();
            eprintln!(
                "{} {name:28} max {:3}/255 mean {:.3}/255",
                precision.name(),
                diff.max,
                diff.mean
            );
            if diff.max > max || diff.mean > mean {
                failures.push(format!("{name}: {diff:?}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    failures
}

#[test]
fn bf16_renders_stay_within_8_of_the_fp32_reference() {
    let failures = render_cases(Precision::Bf16, 8, 255.0);
    assert!(
        failures.is_empty(),
        "bf16 renders too far from fp32:\n{}",
        failures.join("\n")
    );
}

#[test]
fn int8_renders_stay_close_to_the_fp32_reference() {
    let failures = render_cases(Precision::Int8, INT8_MAX, INT8_MEAN);
    assert!(
        failures.is_empty(),
        "int8 renders too far from fp32:\n{}",
        failures.join("\n")
    );
}
