//! `kiln generate --control …`, `--mask …` and `kiln preprocess` on the tiny fixtures: the same
//! renders as diffusers, the preprocessor equal to OpenCV, one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fixtures, fx, kiln, max_diff, ok};

use std::path::Path;

/// `kiln generate` with the settings of the diffusers reference cases (tiny-sd15, euler, 8 steps).
fn base_args(out: &Path) -> Vec<String> {
    [
        "generate",
        "--model",
        &fx("tiny-sd15"),
        "--prompt",
        "a photo of a cat",
        "--negative",
        "blurry, low quality",
        "--seed",
        "42",
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
        "--output",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn control_flag_renders_like_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cn.png");
    let mut args = base_args(&out);
    args.push("--control".into());
    args.push(format!(
        "model={},image={}",
        fx("tiny-controlnet-sd15"),
        fx("guide-canny-64.png")
    ));
    ok(&kiln(&args));
    let reference = fixtures().join("refs/controlnet/sd15_cn_canny.png");
    assert!(max_diff(&out, &reference) <= 3);
}

#[test]
fn pre_canny_equals_preprocessing_first_and_matches_opencv() {
    let dir = tempfile::tempdir().unwrap();
    let guide = dir.path().join("guide.png");
    ok(&kiln(&[
        "preprocess".into(),
        "canny".into(),
        fx("init-64.png"),
        guide.display().to_string(),
    ]));
    let opencv = fixtures().join("refs/controlnet/canny/init-64.rgb.100_200.png");
    assert_eq!(max_diff(&guide, &opencv), 0);

    let a = dir.path().join("a.png");
    let mut args = base_args(&a);
    args.extend([
        "--control".into(),
        format!(
            "model={},image={},pre=canny,scale=0.8,end=0.75",
            fx("tiny-controlnet-sd15"),
            fx("init-64.png")
        ),
    ]);
    ok(&kiln(&args));
    let b = dir.path().join("b.png");
    let mut args = base_args(&b);
    args.extend([
        "--control".into(),
        format!(
            "model={},image={},scale=0.8,end=0.75",
            fx("tiny-controlnet-sd15"),
            guide.display()
        ),
    ]);
    ok(&kiln(&args));
    assert_eq!(max_diff(&a, &b), 0);
}

#[test]
fn control_and_mask_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let mut args = base_args(&out);
    args.extend([
        "--control".into(),
        format!("model={},img=x.png", fx("tiny-controlnet-sd15")),
    ]);
    clean_error(&kiln(&args), "unknown key");
    let mut args = base_args(&out);
    args.extend([
        "--control".into(),
        format!("model={}", fx("tiny-controlnet-sd15")),
    ]);
    clean_error(&kiln(&args), "image=");
    let mut args = base_args(&out);
    args.extend([
        "--control".into(),
        format!("model=no-such-net,image={}", fx("init-64.png")),
    ]);
    clean_error(&kiln(&args), "not found");
    // An SD1.5 ControlNet on an SDXL model.
    let mut args = base_args(&out);
    args[2] = fx("tiny-sdxl");
    args.extend([
        "--control".into(),
        format!(
            "model={},image={}",
            fx("tiny-controlnet-sd15"),
            fx("guide-canny-64.png")
        ),
    ]);
    clean_error(&kiln(&args), "another model family");
    let mut args = base_args(&out);
    args.extend(["--mask".into(), fx("mask-64.png")]);
    clean_error(&kiln(&args), "--init");
    assert!(!out.exists());
}

#[test]
fn precision_bf16_stays_close_to_the_fp32_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16.png");
    let mut args = base_args(&out);
    args.extend(["--precision".into(), "bf16".into()]);
    ok(&kiln(&args));
    let reference = fixtures().join("refs/sd15_euler.png");
    let diff = max_diff(&out, &reference);
    assert!(diff <= 8, "bf16 render {diff}/255 from the fp32 reference");
    let mut args = base_args(&out);
    args.extend(["--precision".into(), "f8".into()]);
    let err = String::from_utf8_lossy(&kiln(&args).stderr).into_owned();
    assert!(err.contains("unknown precision"), "{err}");
}
