//! Out of GPU memory: with the GPU capped below what the tiny model's decode needs
//! (`KILN_WGPU_MAX_BUFFER_MB`, its own test binary so no other test sees the cap), the UNet still
//! runs on the GPU, the decode falls back to the CPU, the image matches diffusers within 3/255
//! and the output says so; with a cap below the weights the whole model runs on the CPU.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::gpu::ComputeDevice;
use kiln_inference::{CancelToken, Engine};
use kiln_tests::{fixtures, image_diff, recipe_of};

fn render(cap_mb: &str) -> (u8, Vec<String>, Option<String>) {
    // SAFETY (set_var): this binary's only test sets it before any GPU is opened.
    unsafe { std::env::set_var("KILN_WGPU_MAX_BUFFER_MB", cap_mb) };
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("refs/cases.json")).unwrap())
            .unwrap();
    let case = cases.iter().find(|c| c["name"] == "sd15_euler").unwrap();
    let mut engine = Engine::new();
    engine.compute = ComputeDevice::Wgpu;
    let out = engine
        .run(&recipe_of(case), &mut |_| {}, &CancelToken::default())
        .unwrap();
    let expected = image::open(fixtures().join(case["png"].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    let diff = image_diff(&out[0].image, &expected).unwrap();
    (diff.max, out[0].warnings.clone(), engine.gpu_adapter())
}

#[test]
fn out_of_gpu_memory_falls_back_to_the_cpu() {
    // 0.4 MiB: every weight (largest 288 KiB) fits, the 512 KiB decoder activation does not.
    let (max, warnings, adapter) = render("0.4");
    assert!(max <= 3, "differs by {max}");
    assert!(adapter.is_some(), "the UNet stays on the GPU");
    assert!(
        warnings.iter().any(|w| w.contains("the GPU was given up")),
        "{warnings:?}"
    );
    // 0.01 MiB: the weights do not fit; the model is made on the CPU from the start.
    let (max, warnings, adapter) = render("0.01");
    assert!(max <= 3, "differs by {max}");
    assert!(adapter.is_none());
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("does not fit on the GPU")),
        "{warnings:?}"
    );
}
