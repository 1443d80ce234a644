//! IP-Adapter parity: renders with plain and Plus adapters on the tiny SD1.5 and SDXL models
//! (txt2img, img2img, ControlNet, LoRA, two adapters, no CFG) match diffusers'
//! `load_ip_adapter` + `set_ip_adapter_scale` renders within 3/255
//! (`tests/fixtures/make_ip_adapter.py`, `refs/ip_adapter/cases.json`).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::adapters::ip_adapter::IpAdapter;
use kiln_inference::adapters::ip_adapter::clip_vision::{ClipVisionModel, preprocess};
use kiln_inference::{CancelToken, Engine};
use kiln_tests::{check_reference_cases, fixtures, recipe_of, reference_cases};

#[test]
fn every_ip_adapter_render_matches_diffusers() {
    let cases = reference_cases("refs/ip_adapter/cases.json");
    assert!(cases.len() >= 9, "expected the full IP-Adapter case list");
    for case in &cases {
        assert!(
            case["max_diff_vs_base"].as_u64().unwrap() >= 10,
            "{}: the fixture adapter must change the image",
            case["name"]
        );
    }
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "IP-Adapter renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn adapters_load_in_both_layouts_and_refuse_mismatches() {
    let dir = fixtures().join("tiny-ip-adapter");
    let device = candle_core::Device::Cpu;
    let plain = IpAdapter::load(&dir.join("ip-adapter_sd15.safetensors"), &device).unwrap();
    let plus = IpAdapter::load(&dir.join("ip-adapter-plus_sdxl.safetensors"), &device).unwrap();
    assert!(!plain.is_plus() && plus.is_plus());
    assert_eq!((plain.context_dim(), plus.context_dim()), (32, 64));
    let encoder = ClipVisionModel::load(&dir.join("image_encoder"), &device).unwrap();
    let photo = image::open(fixtures().join("photo-96x64.png"))
        .unwrap()
        .to_rgb8();
    let tokens = plus.image_tokens(&encoder, &photo).unwrap();
    assert_eq!(tokens.positive.dims(), &[1, 4, 64]);
    assert_eq!(
        preprocess(&photo, 32, &device).unwrap().dims(),
        &[1, 3, 32, 32]
    );

    // An SD1.5 adapter on the SDXL model: a clear error, not a shape panic.
    let cases = reference_cases("refs/ip_adapter/cases.json");
    let sdxl = cases.iter().find(|c| c["model"] == "tiny-sdxl").unwrap();
    let mut recipe = recipe_of(sdxl);
    recipe.ip_adapters[0].model = dir.join("ip-adapter_sd15.safetensors");
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("another model family"), "{e}");
    // A missing encoder folder names what to get.
    recipe.ip_adapters[0].model = dir.join("ip-adapter_sdxl.safetensors");
    recipe.ip_adapters[0].encoder = dir.join("no-such-encoder");
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("image encoder"), "{e}");
}

#[test]
fn scale_zero_renders_like_no_adapter() {
    // diffusers skips an adapter at scale 0, so the render equals the adapter-free one.
    let cases = reference_cases("refs/ip_adapter/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sd15_ip_plus").unwrap();
    let mut engine = Engine::new();
    let mut recipe = recipe_of(case);
    recipe.ip_adapters[0].scale = 0.0;
    let zero = engine
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    recipe.ip_adapters.clear();
    let none = engine
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    assert_eq!(zero[0].image.as_raw(), none[0].image.as_raw());
}
