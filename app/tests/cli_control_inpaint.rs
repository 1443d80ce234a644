//! `kiln generate --control …,pre=inpaint` (inpainting ControlNets) on the tiny fixtures: the
//! render of diffusers' ControlNet inpaint pipeline (`refs/controlnet_inpaint`, made by
//! `tests/fixtures/make_controlnet_inpaint.py`), and a one-line error without a mask.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fixtures, fx, kiln, max_diff, ok};

use std::path::Path;

/// The settings of case `sd15_cninpaint_euler` without its mask and ControlNet.
fn base_args(out: &Path) -> Vec<String> {
    [
        "generate",
        "--model",
        &fx("tiny-sd15"),
        "--prompt",
        "a red flower",
        "--negative",
        "blurry, low quality",
        "--seed",
        "601",
        "--sampler",
        "euler",
        "--steps",
        "8",
        "--cfg",
        "7",
        "--width",
        "64",
        "--height",
        "64",
        "--init",
        &fx("init-64.png"),
        "--strength",
        "1.0",
        "--output",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn pre_inpaint_renders_like_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixtures().join("refs/controlnet_inpaint/sd15_cninpaint_euler.png");
    // With the init image given as the guide, and without (the init image by default).
    for (name, control) in [
        (
            "image.png",
            format!(
                "model={},image={},pre=inpaint",
                fx("tiny-controlnet-sd15-inpaint"),
                fx("init-64.png")
            ),
        ),
        (
            "default.png",
            format!("model={},pre=inpaint", fx("tiny-controlnet-sd15-inpaint")),
        ),
    ] {
        let out = dir.path().join(name);
        let mut args = base_args(&out);
        args.extend([
            "--mask".into(),
            fx("mask-64.png"),
            "--control".into(),
            control,
        ]);
        ok(&kiln(&args));
        let diff = max_diff(&out, &reference);
        assert!(diff <= 3, "{name}: {diff}/255 from diffusers");
    }
}

#[test]
fn pre_inpaint_without_a_mask_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let control = format!(
        "model={},image={},pre=inpaint",
        fx("tiny-controlnet-sd15-inpaint"),
        fx("init-64.png")
    );
    let mut args = base_args(&out);
    args.extend(["--control".into(), control.clone()]);
    clean_error(&kiln(&args), "pre=inpaint needs --init IMAGE and --mask");
    // Without an init image either.
    let mut args = base_args(&out);
    let init = args.iter().position(|a| a == "--init").unwrap();
    args.drain(init..init + 4);
    args.extend(["--control".into(), control]);
    clean_error(&kiln(&args), "pre=inpaint");
    // Other preprocessors still need their image.
    let mut args = base_args(&out);
    args.extend([
        "--mask".into(),
        fx("mask-64.png"),
        "--control".into(),
        format!("model={},pre=canny", fx("tiny-controlnet-sd15")),
    ]);
    clean_error(&kiln(&args), "image=");
    assert!(!out.exists());
}
