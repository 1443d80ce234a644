//! `kiln preprocess depth|lineart|scribble` and `kiln generate --control …,pre=depth` on the tiny
//! preprocessor fixtures (`tests/fixtures/make_preprocessors.py`): the guides the Python
//! references make, networks found with `--model` or in `--models-dir`, one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fixtures, fx, kiln, ok};

use std::path::Path;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Largest difference between a guide (RGB, equal channels) and a gray reference.
fn guide_diff(guide: &Path, reference: &str) -> u8 {
    let got = image::open(guide).unwrap().to_rgb8();
    let want = image::open(fixtures().join(reference)).unwrap().to_luma8();
    assert_eq!(got.dimensions(), want.dimensions());
    got.pixels()
        .zip(want.pixels())
        .map(|(g, w)| {
            assert!(g.0[0] == g.0[1] && g.0[1] == g.0[2]);
            g.0[0].abs_diff(w.0[0])
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn preprocess_depth_lineart_and_scribble_match_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let depth = dir.path().join("depth.png");
    ok(&kiln(&args(&[
        "preprocess",
        "depth",
        &fx("photo-96x64.png"),
        &depth.display().to_string(),
        "--model",
        &fx("tiny-depth-anything"),
    ])));
    assert!(guide_diff(&depth, "refs/preprocess/depth.photo-96x64.png") <= 1);

    // Found in the model folders (tests/fixtures/tiny-annotators/sk_model.safetensors).
    let lineart = dir.path().join("lineart.png");
    ok(&kiln(&args(&[
        "preprocess",
        "lineart",
        &fx("init-64.png"),
        &lineart.display().to_string(),
        "--models-dir",
        &fx(""),
    ])));
    assert!(guide_diff(&lineart, "refs/preprocess/lineart.init-64.png") <= 1);

    let scribble = dir.path().join("scribble.png");
    ok(&kiln(&args(&[
        "preprocess",
        "scribble",
        &fx("photo-96x64.png"),
        &scribble.display().to_string(),
        "--models-dir",
        &fx(""),
    ])));
    assert_eq!(
        guide_diff(&scribble, "refs/preprocess/scribble.photo-96x64.png"),
        0
    );

    // A drawing needs no model: dark strokes on paper become white strokes on black.
    let sketch = dir.path().join("sketch.png");
    image::RgbImage::from_fn(64, 48, |x, y| {
        if x.abs_diff(y) <= 1 {
            image::Rgb([30, 30, 30])
        } else {
            image::Rgb([245, 245, 240])
        }
    })
    .save(&sketch)
    .unwrap();
    let empty = tempfile::tempdir().unwrap();
    let guide = dir.path().join("sketch-guide.png");
    ok(&kiln(&args(&[
        "preprocess",
        "scribble",
        &sketch.display().to_string(),
        &guide.display().to_string(),
        "--models-dir",
        &empty.path().display().to_string(),
    ])));
    let guide = image::open(&guide).unwrap().to_rgb8();
    assert_eq!(guide.get_pixel(20, 20).0, [255, 255, 255]);
    assert_eq!(guide.get_pixel(40, 10).0, [0, 0, 0]);
}

#[test]
fn preprocess_errors_say_which_file_to_get() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let run = |kind: &str, extra: &[&str]| {
        let mut a = args(&[
            "preprocess",
            kind,
            &fx("photo-96x64.png"),
            &out.display().to_string(),
            "--models-dir",
            &empty.path().display().to_string(),
        ]);
        a.extend(args(extra));
        kiln(&a)
    };
    clean_error(&run("depth", &[]), "Depth-Anything-V2-Small-hf");
    clean_error(&run("lineart", &[]), "sk_model.safetensors");
    clean_error(&run("scribble", &["--scribble", "photo"]), "ControlNetHED");
    clean_error(&run("scribble", &["--scribble", "pencil"]), "--scribble");
    clean_error(&run("depth", &["--model", "/no/such/folder"]), "not found");
    // A file of the wrong network.
    clean_error(
        &run(
            "depth",
            &["--model", &fx("tiny-annotators/sk_model.safetensors")],
        ),
        "config.json",
    );
    assert!(!out.exists());
}

/// `kiln generate` with the settings of the diffusers ControlNet cases (tiny-sd15, euler, 8 steps).
fn generate_args(out: &Path, control: String) -> Vec<String> {
    let mut a = args(&[
        "generate",
        "--model",
        &fx("tiny-sd15"),
        "--prompt",
        "a photo of a cat",
        "--seed",
        "42",
        "--sampler",
        "euler",
        "--steps",
        "8",
        "--width",
        "64",
        "--height",
        "64",
        "--models-dir",
        &fx(""),
        "--output",
        &out.display().to_string(),
    ]);
    a.extend(["--control".into(), control]);
    a
}

#[test]
fn generate_with_pre_depth_equals_preprocessing_first() {
    let dir = tempfile::tempdir().unwrap();
    let guide = dir.path().join("guide.png");
    ok(&kiln(&args(&[
        "preprocess",
        "depth",
        &fx("init-64.png"),
        &guide.display().to_string(),
        "--model",
        &fx("tiny-depth-anything"),
    ])));
    assert!(guide_diff(&guide, "refs/preprocess/depth.init-64.png") <= 1);
    let net = fx("tiny-controlnet-sd15");
    let render = |name: &str, control: String| {
        let out = dir.path().join(name);
        ok(&kiln(&generate_args(&out, control)));
        image::open(out).unwrap().to_rgb8()
    };
    let a = render(
        "a.png",
        format!("model={net},image={},pre=depth", fx("init-64.png")),
    );
    let b = render("b.png", format!("model={net},image={}", guide.display()));
    assert_eq!(a, b, "pre=depth must render as its guide does");
    // The guide mattered: the raw picture as the guide renders differently.
    let c = render("c.png", format!("model={net},image={}", fx("init-64.png")));
    assert_ne!(a, c);
}

#[test]
fn preprocess_inpaint_blanks_the_mask_area() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inpaint.png");
    let (init, mask) = (fx("init-64.png"), fx("mask-64.png"));
    let result = kiln(&args(&[
        "preprocess",
        "inpaint",
        &init,
        &out.display().to_string(),
        "--mask",
        &mask,
    ]));
    ok(&result);
    let guide = image::open(&out).unwrap().to_rgb8();
    let photo = image::open(&init).unwrap().to_rgb8();
    let mask = image::open(&mask).unwrap().to_luma8();
    let mut masked = 0;
    for ((g, p), m) in guide.pixels().zip(photo.pixels()).zip(mask.pixels()) {
        if m.0[0] >= 128 {
            masked += 1;
            assert_eq!(g.0, [0, 0, 0]);
        } else {
            assert_eq!(g, p);
        }
    }
    assert!(masked > 0);
    clean_error(
        &kiln(&args(&[
            "preprocess",
            "inpaint",
            &init,
            &dir.path().join("x.png").display().to_string(),
        ])),
        "needs --mask",
    );
}
