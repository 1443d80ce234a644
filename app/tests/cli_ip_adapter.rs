//! `kiln generate --ip-adapter …` on the tiny fixtures: two adapters (plain and Plus) render
//! like diffusers (`tests/fixtures/make_ip_adapter.py`, case `sd15_ip_two_adapters`); bad
//! values are one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{fixtures, fx, kiln};

fn args(out: &std::path::Path, adapters: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "generate",
        "--model",
        &fx("tiny-sd15"),
        "--prompt",
        "a photo of a cat",
        "--negative",
        "blurry, low quality",
        "--seed",
        "47",
        "--sampler",
        "euler",
        "--steps",
        "6",
        "--cfg",
        "7",
        "--width",
        "64",
        "--height",
        "64",
        "--output",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    for adapter in adapters {
        a.push("--ip-adapter".into());
        a.push(adapter.clone());
    }
    a
}

#[test]
fn two_adapters_render_like_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ip.png");
    let encoder = fx("tiny-ip-adapter/image_encoder");
    let adapters = [
        format!(
            "model={},encoder={encoder},image={},scale=0.5",
            fx("tiny-ip-adapter/ip-adapter_sd15.safetensors"),
            fx("photo-96x64.png")
        ),
        format!(
            "model={},encoder={encoder},image={},scale=0.8",
            fx("tiny-ip-adapter/ip-adapter-plus_sd15.safetensors"),
            fx("init-64.png")
        ),
    ];
    let result = kiln(&args(&out, &adapters));
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let got = image::open(&out).unwrap().to_rgb8();
    let want = image::open(fixtures().join("refs/ip_adapter/sd15_ip_two_adapters.png"))
        .unwrap()
        .to_rgb8();
    let max = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max <= 3, "differs from diffusers by {max}/255");
}

#[test]
fn bad_ip_adapter_values_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ip.png");
    let encoder = fx("tiny-ip-adapter/image_encoder");
    let model = fx("tiny-ip-adapter/ip-adapter_sd15.safetensors");
    for (value, needle) in [
        (
            format!("model={model},image={}", fx("init-64.png")),
            "needs model=FILE,encoder=DIR,image=IMG",
        ),
        (
            format!(
                "model={model},encoder={encoder},image={},scale=big",
                fx("init-64.png")
            ),
            "scale must be a number",
        ),
        (
            format!(
                "model={model},encoder={},image={}",
                fx("tiny-sd15"),
                fx("init-64.png")
            ),
            "CLIP image encoder folder",
        ),
        (
            format!(
                "model={},encoder={encoder},image={}",
                fx("tiny-ip-adapter/ip-adapter_sdxl.safetensors"),
                fx("init-64.png")
            ),
            "another model family",
        ),
    ] {
        let result = kiln(&args(&out, &[value]));
        let err = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "expected failure: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(needle),
            "{err}"
        );
    }
}
