//! `kiln generate --face …` (InstantID) and `kiln models convert` on the tiny fixtures: the
//! published layout (pickled adapter) is refused with the conversion command, the converted
//! folder renders like the diffusers composition (`refs/instantid/face.png`), bad input gives
//! one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, copy_dir, fixtures, fx, kiln, ok};
use std::path::Path;

/// A model folder with `InstantID/` as downloaded (pickle + ControlNetModel) and `antelopev2/`.
fn models_dir(root: &Path) -> std::path::PathBuf {
    let models = root.join("models");
    copy_dir(
        &fixtures().join("tiny-instantid"),
        &models.join("InstantID"),
    );
    copy_dir(
        &fixtures().join("tiny-antelopev2"),
        &models.join("antelopev2"),
    );
    models
}

fn generate(models: &Path, out: &Path, model: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "generate",
        "--model",
        &fx(model),
        "--prompt",
        "a clay figure of a person, studio light",
        "--negative",
        "blurry",
        "--sampler",
        "euler",
        "--steps",
        "4",
        "--cfg",
        "5",
        "--seed",
        "1",
        "--width",
        "160",
        "--height",
        "120",
        "--models-dir",
        &models.display().to_string(),
        "--output",
        &out.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn face_renders_like_the_reference_after_converting_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir(dir.path());
    let out = dir.path().join("face.png");
    let face = fx("faces-640x480.png");
    let args = generate(&models, &out, "tiny-sdxl", &["--face", &face]);
    clean_error(&kiln(&args), "kiln models convert");

    let bin = models
        .join("InstantID/ip-adapter.bin")
        .display()
        .to_string();
    let converted = kiln(&["models".into(), "convert".into(), bin.clone()]);
    ok(&converted);
    assert!(models.join("InstantID/ip-adapter.safetensors").is_file());
    clean_error(
        &kiln(&["models".into(), "convert".into(), bin]),
        "--overwrite",
    );

    let result = kiln(&args);
    ok(&result);
    assert!(
        files::max_diff(&out, &fixtures().join("refs/instantid/face.png")) <= 3,
        "differs from the diffusers composition"
    );
    // The recipe in the PNG carries the face.
    let text = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert!(
        text.contains("faces-640x480.png"),
        "recipe without the face"
    );
}

#[test]
fn bad_face_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir(dir.path());
    let out = dir.path().join("x.png");
    ok(&kiln(&[
        "models".into(),
        "convert".into(),
        models
            .join("InstantID/ip-adapter.bin")
            .display()
            .to_string(),
    ]));
    let face = fx("faces-640x480.png");
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face-strength", "0.5"],
        )),
        "--face-strength needs --face",
    );
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face", &fx("nope.png")],
        )),
        "face photo not found",
    );
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face", &face, "--face-strength", "3"],
        )),
        "between 0 and 2",
    );
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face", &face, "--face-index", "40"],
        )),
        "face 40",
    );
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face", &fx("init-64.png")],
        )),
        "too small",
    );
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(96, 96, image::Rgb([40, 40, 40]))
        .save(&blank)
        .unwrap();
    clean_error(
        &kiln(&generate(
            &models,
            &out,
            "tiny-sdxl",
            &["--face", &blank.display().to_string()],
        )),
        "no face found",
    );
    clean_error(
        &kiln(&generate(&models, &out, "tiny-sd15", &["--face", &face])),
        "SDXL",
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    clean_error(
        &kiln(&generate(&empty, &out, "tiny-sdxl", &["--face", &face])),
        "InstantID files not found",
    );
    assert!(!out.exists(), "no output on errors");
}
