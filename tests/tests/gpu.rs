//! `--device wgpu`: whole renders of the tiny fixtures with the UNet and the VAE decoder on the
//! GPU (Mesa's lavapipe in CI) stay within 3/255 of diffusers' fp32 references, like the CPU
//! path; features the GPU path does not run yet (LoRAs, ControlNets) fall back to the CPU UNet
//! and stay correct.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::Engine;
use kiln_inference::gpu::ComputeDevice;
use kiln_tests::render_reference_cases;

#[test]
fn wgpu_renders_match_the_references() {
    let mut engine = Engine::new();
    engine.compute = ComputeDevice::Wgpu;
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
            ("refs/lora/cases.json", &["sd15_lora_kohya"]),
            ("refs/controlnet/cases.json", &["sd15_cn_canny"]),
        ],
        3,
        255.0,
        "wgpu",
    );
    assert_eq!(checked, 7);
    let adapter = engine.gpu_adapter();
    assert!(adapter.is_some(), "the model is not on the GPU");
    eprintln!("adapter: {}", adapter.unwrap_or_default());
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
