//! The bf16 weight path (UNet and VAE weights packed as bf16, f32 accumulation) stays within
//! 8/255 of diffusers' fp32 renders, with LoRAs and ControlNets too; the int8 weight path
//! (8-bit weights, one scale per output channel, bf16 compute) within the bound below.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::Engine;
use kiln_inference::engine::Precision;
use kiln_tests::render_reference_cases;

/// int8 bounds (/255): largest channel difference and mean difference from diffusers' fp32
/// (measured: max 3–8 on eight cases, 15 on the SDXL LoRA case; mean ≤ 0.73, 2.33 there).
const INT8_MAX: u8 = 16;
const INT8_MEAN: f64 = 2.5;

/// The nine reference cases at `precision`: failures over `max` or `mean` (/255).
fn render_cases(precision: Precision, max: u8, mean: f64) -> Vec<String> {
    let mut engine = Engine::new();
    engine.precision = precision;
    let (checked, failures) = render_reference_cases(
        &mut engine,
        &[
            (
                "refs/cases.json",
                &[
                    "sd15_euler",
                    "sd15_dpmpp_2m_karras",
                    "sd15_img2img_euler",
                    "sdxl_euler",
                    "sd15single_euler",
                ],
            ),
            (
                "refs/lora/cases.json",
                &["sd15_lora_kohya", "sdxl_lora_kohya"],
            ),
            ("refs/controlnet/cases.json", &["sd15_cn_canny"]),
            ("refs/inpaint/cases.json", &["sd15_inpaint9_euler"]),
        ],
        max,
        mean,
        precision.name(),
    );
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
