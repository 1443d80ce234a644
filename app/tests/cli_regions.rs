//! `kiln generate --region …` on the tiny fixtures: the same render as diffusers' regional
//! reference (`tests/fixtures/make_regions.py`), regions kept in the PNG (`kiln info --json`,
//! A1111 `Regions`), one-line errors.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{clean_error, fixtures, fx, kiln, max_diff, ok};

use std::path::Path;

/// The settings of `refs/regions/cases.json` `sd15_region_box` (= `sd15_euler` + a region).
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
fn region_flag_renders_like_diffusers_and_is_kept_in_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("region.png");
    let mut args = base_args(&out);
    args.extend(["--region".into(), "prompt=fire,box=0,0.5,0.5,1".into()]);
    ok(&kiln(&args));
    let reference = fixtures().join("refs/regions/sd15_region_box.png");
    assert!(max_diff(&out, &reference) <= 3);

    let info = kiln(&["info".into(), "--json".into(), out.display().to_string()]);
    ok(&info);
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let regions = &json["recipe"]["regions"];
    assert_eq!(regions[0]["prompt"], "fire");
    assert_eq!(
        regions[0]["area"]["box"],
        serde_json::json!([0.0, 0.5, 0.5, 1.0])
    );
    assert_eq!(regions[0]["weight"], 1.0);
    let parameters = json["parameters"].as_str().unwrap();
    assert!(
        parameters.contains("Regions: fire [box 0 0.5 0.5 1]"),
        "{parameters}"
    );
}

#[test]
fn two_regions_with_a_mask_and_commas_in_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two.png");
    let mut args = base_args(&out);
    args.extend([
        "--region".into(),
        "prompt=a blue sky, white clouds,box=0.25,0,1,0.75,weight=0.7".into(),
        "--region".into(),
        format!(
            "prompt=a golden dog,mask={},negative=cartoon, drawing",
            fx("region-mask-64.png")
        ),
        "--json".into(),
    ]);
    let run = kiln(&args);
    ok(&run);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let regions = json["recipe"]["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0]["prompt"], "a blue sky, white clouds");
    assert!((regions[0]["weight"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(regions[1]["negative"], "cartoon, drawing");
    assert!(
        regions[1]["area"]["mask"]
            .as_str()
            .unwrap()
            .ends_with("region-mask-64.png")
    );
    // Without the regions the render is the plain reference, so they changed it.
    let plain = fixtures().join("refs/sd15_euler.png");
    assert!(max_diff(&out, &plain) > 3);
}

#[test]
fn region_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let with = |region: &str| {
        let mut args = base_args(&out);
        args.extend(["--region".into(), region.to_string()]);
        kiln(&args)
    };
    clean_error(&with("prompt=x,box=0.6,0,0.4,1"), "x0 < x1");
    clean_error(&with("prompt=x,box=0,0,1"), "four numbers");
    clean_error(&with("box=0,0,1,1"), "prompt=TEXT");
    clean_error(&with("prompt=x"), "box=X0,Y0,X1,Y1 or mask=PNG");
    clean_error(&with("prompt=x,mask=/no/such/mask.png"), "mask not found");
    clean_error(
        &with(&format!("prompt=x,mask={}", fx("mask-128x96.png"))),
        "aspect ratio",
    );
    assert!(!out.exists());
}
