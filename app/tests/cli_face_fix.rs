//! `kiln generate --face-fix …` and the identity score on the tiny fixtures (tiny SD1.5, tiny
//! antelopev2). The tiny VAE paints noise, so the image with faces is `faces-640x480.png` with
//! one corner inpainted (pasted back through a blurred mask): its faces survive for face fix
//! and the identity score to find.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fx, kiln, ok};

use std::path::Path;

/// 320×240 inpainting of a bottom-left patch of `faces-640x480.png`.
fn base_args(dir: &Path, out: &Path) -> Vec<String> {
    let mask = dir.join("corner.png");
    image::GrayImage::from_fn(320, 240, |x, y| {
        image::Luma([if x < 24 && y >= 216 { 255 } else { 0 }])
    })
    .save(&mask)
    .unwrap();
    [
        "generate",
        "--model",
        &fx("tiny-sd15"),
        "--prompt",
        "a portrait",
        "--seed",
        "7",
        "--sampler",
        "euler",
        "--steps",
        "8",
        "--width",
        "320",
        "--height",
        "240",
        "--init",
        &fx("faces-640x480.png"),
        "--strength",
        "0.5",
        "--mask",
        &mask.display().to_string(),
        "--mask-blur",
        "2",
        // The face models are found in the model folders.
        "--models-dir",
        &fx("tiny-antelopev2"),
        "--output",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn info(path: &Path) -> serde_json::Value {
    let out = kiln(&["info".into(), "--json".into(), path.display().to_string()]);
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn face_fix_redoes_the_faces_and_says_so_in_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.png");
    ok(&kiln(&base_args(dir.path(), &plain)));
    let fixed = dir.path().join("fixed.png");
    let mut args = base_args(dir.path(), &fixed);
    // Faces redone at 64 pixels (the default, the model's native 512, is slow for a test).
    args.extend(
        [
            "--face-fix",
            "--face-fix-strength",
            "0.5",
            "--face-fix-size",
            "64",
        ]
        .map(String::from),
    );
    let out = kiln(&args);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("face fix: face 1/"), "{stderr}");

    let a = image::open(&plain).unwrap().to_rgb8();
    let b = image::open(&fixed).unwrap().to_rgb8();
    let changed = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .filter(|(x, y)| x != y)
        .count();
    // Faces redone, the dark bottom strip (no face near it) untouched.
    assert!(changed > 10_000, "only {changed} values changed");
    for y in 230..240 {
        for x in 100..320 {
            assert_eq!(a.get_pixel(x, y), b.get_pixel(x, y), "({x},{y})");
        }
    }

    let json = info(&fixed);
    let parameters = json["parameters"].as_str().unwrap();
    assert!(
        parameters.contains("Face fix: strength 0.5"),
        "{parameters}"
    );
    assert_eq!(json["recipe"]["face_fix"]["strength"], 0.5);
    assert_eq!(json["recipe"]["face_fix"]["size"], 64);
    assert!(
        json["recipe"]["face_fix"]["analysis"]
            .as_str()
            .unwrap()
            .ends_with("tiny-antelopev2")
    );
    let plain_parameters = info(&plain)["parameters"].as_str().unwrap().to_owned();
    assert!(!plain_parameters.contains("Face fix"), "{plain_parameters}");
}

#[test]
fn face_fix_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let mut args = base_args(dir.path(), &out);
    args.extend(["--face-fix-strength", "1.5"].map(String::from));
    clean_error(&kiln(&args), "--face-fix-strength must be in (0, 1]");
    assert!(!out.exists());
}

#[test]
fn the_identity_score_is_printed_and_kept_in_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scored.png");
    let mut args = base_args(dir.path(), &out);
    // A reference-only face (both strengths 0): no InstantID, only the score.
    args.extend(
        [
            "--face",
            &fx("faces-640x480.png"),
            "--face-strength",
            "0",
            "--face-keypoints",
            "0",
            "--face-model",
            &fx("tiny-antelopev2"),
            "--json",
        ]
        .map(String::from),
    );
    let run = kiln(&args);
    ok(&run);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let score = json["outputs"][0]["identity"].as_f64().unwrap();
    // The output is the reference photo but for one inpainted corner.
    assert!(score > 0.99, "{score}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("scored.png: identity {score:.3}")),
        "{stderr}"
    );
    let parameters = info(&out)["parameters"].as_str().unwrap().to_owned();
    let written: f64 = parameters
        .split("Identity: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((written - score).abs() < 0.001, "{parameters}");
    assert_eq!(
        info(&out)["recipe"]["identity"].as_f64().map(|v| v > 0.99),
        Some(true)
    );
}
