//! `--device wgpu`: whole renders of the tiny fixtures with the UNet and the VAE decoder on the
//! GPU (Mesa's lavapipe in CI) stay within 3/255 of diffusers' fp32 references, like the CPU
//! path; features the GPU path does not run yet (LoRAs, ControlNets) fall back to the CPU UNet
//! and stay correct.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::gpu::ComputeDevice;
use kiln_inference::{CancelToken, Engine};
use kiln_tests::{fixtures, image_diff, recipe_of};
use serde_json::Value;

fn cases(path: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(path)).unwrap()).unwrap()
}

#[test]
fn wgpu_renders_match_the_references() {
    let mut engine = Engine::new();
    engine.compute = ComputeDevice::Wgpu;
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
        ("refs/lora/cases.json", &["sd15_lora_kohya"][..]),
        ("refs/controlnet/cases.json", &["sd15_cn_canny"][..]),
    ] {
        for case in cases(file) {
            let name = case["name"].as_str().unwrap();
            if !names.contains(&name) {
                continue;
            }
            let out = engine
                .run(&recipe_of(&case), &mut |_| {}, &CancelToken::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(engine.gpu_adapter().is_some(), "{name}: not on the GPU");
            let expected = image::open(fixtures().join(case["png"].as_str().unwrap()))
                .unwrap()
                .to_rgb8();
            let diff = image_diff(&out[0].image, &expected).unwrap();
            eprintln!(
                "wgpu {name:28} max {:3}/255 mean {:.3}/255",
                diff.max, diff.mean
            );
            if diff.max > 3 {
                failures.push(format!("{name}: {diff:?}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 7);
    eprintln!("adapter: {}", engine.gpu_adapter().unwrap());
    assert!(
        failures.is_empty(),
        "wgpu renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn devices_parse_and_missing_backends_are_clear_errors() {
    assert_eq!(ComputeDevice::parse("WGPU"), Some(ComputeDevice::Wgpu));
    assert_eq!(ComputeDevice::parse("auto"), Some(ComputeDevice::Auto));
    assert_eq!(ComputeDevice::parse("tpu"), None);
    assert!(ComputeDevice::Cpu.open().unwrap().is_none());
    let e = ComputeDevice::Cuda.open().unwrap_err().to_string();
    assert!(e.contains("cuda") && e.contains("--device wgpu"), "{e}");
    // lavapipe is a software adapter: auto keeps the CPU path.
    if let Ok(gpu) = kiln_inference::gpu::Gpu::new()
        && gpu.is_software()
    {
        assert!(ComputeDevice::Auto.open().unwrap().is_none());
    }
}
