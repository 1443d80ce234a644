//! `kiln generate --init IMG --outpaint left=…,bottom=…[,overlap=N]` on the tiny fixtures: the
//! render of the diffusers reference case `sd15_outpaint4` (`tests/fixtures/make_outpaint.py`),
//! strength 1.0 by default, the recipe in the PNG, one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fixtures, fx, kiln};

use std::path::Path;

/// `kiln generate` with the settings of `refs/outpaint/cases.json`'s `sd15_outpaint4`.
fn args(model: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "generate",
        "--model",
        &fx(model),
        "--prompt",
        "a wide landscape, a red flower",
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
        "--init",
        &fx("init-64.png"),
        "--output",
        &out.display().to_string(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn outpainting_from_the_cli_matches_the_diffusers_reference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.png");
    let result = kiln(&args(
        "tiny-sd15",
        &out,
        &["--outpaint", "left=16,bottom=24,overlap=8"],
    ));
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let recipe = &json["recipe"];
    assert_eq!(recipe["width"], 80);
    assert_eq!(recipe["height"], 88);
    assert_eq!(recipe["init"]["strength"], 1.0, "strength defaults to 1");
    assert_eq!(
        recipe["outpaint"],
        serde_json::json!({"left": 16, "right": 0, "top": 0, "bottom": 24, "overlap": 8})
    );
    let image = image::open(&out).unwrap().to_rgb8();
    let expected = image::open(fixtures().join("refs/outpaint/sd15_outpaint4.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), (80, 88));
    let max = image
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max <= 3, "max diff {max}/255");
    // The PNG carries the recipe: dropping it on the app restores the outpainting.
    let bytes = std::fs::read(&out).unwrap();
    let saved = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(saved.outpaint.unwrap().bottom, 24);
}

#[test]
fn the_inpainting_checkpoint_outpaints_too_and_sizes_round_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("up.png");
    // 64 + 20 → 88 wide (the right side takes the rounding), 64 + 8 = 72 tall.
    let result = kiln(&args(
        "tiny-sd15-inpaint",
        &out,
        &["--outpaint", "right=20,top=8"],
    ));
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let image = image::open(&out).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (88, 72));
    // Beyond the 16-pixel overlap (default) the original is there exactly.
    let original = image::open(fixtures().join("init-64.png"))
        .unwrap()
        .to_rgb8();
    for y in 24..64 {
        for x in 0..48 {
            assert_eq!(image.get_pixel(x, y + 8), original.get_pixel(x, y));
        }
    }
}

#[test]
fn bad_outpaint_arguments_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    clean_error(
        &kiln(&args("tiny-sd15", &out, &["--outpaint", "left=abc"])),
        "whole number",
    );
    clean_error(
        &kiln(&args("tiny-sd15", &out, &["--outpaint", "middle=8"])),
        "unknown key",
    );
    clean_error(
        &kiln(&args("tiny-sd15", &out, &["--outpaint", "overlap=8"])),
        "at least one side",
    );
    clean_error(
        &kiln(&args(
            "tiny-sd15",
            &out,
            &["--outpaint", "left=8", "--mask", &fx("mask-64.png")],
        )),
        "leave out --mask",
    );
    let mut no_init = args("tiny-sd15", &out, &["--outpaint", "left=8"]);
    let at = no_init.iter().position(|a| a == "--init").unwrap();
    no_init.drain(at..at + 2);
    clean_error(&kiln(&no_init), "--init");
    assert!(!out.exists());
}
