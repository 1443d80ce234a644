//! Outpainting (`pipelines::outpaint`): the extended image has the right size, the original's
//! pixels outside the overlap band come back exactly, the new area is generated (not the fill),
//! seeds reproduce, and renders match diffusers' inpaint pipelines run on Kiln's own padded
//! init image and mask, pasted back through Kiln's alpha (`tests/fixtures/make_outpaint.py`).
//!
//! The padded init, mask and alpha PNGs in `tests/fixtures/outpaint/` are written by Kiln
//! (`KILN_WRITE_OUTPAINT_INPUTS=1 cargo test --release -p kiln-tests --test outpaint -- \
//! --ignored write_outpaint_inputs`), then read by the Python script; the first test below
//! checks that Kiln still makes exactly those pixels.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::pipelines::outpaint::{OutpaintPlan, prepare};
use kiln_inference::recipe::{InitImage, OutpaintSpec};
use kiln_inference::{CancelToken, Engine, Recipe};
use kiln_tests::{fixtures, image_diff, recipe_of, reference_cases};
use serde_json::{Value, json};

/// The outpainting cases: name, source image, extension, overlap.
fn input_cases() -> Vec<(&'static str, &'static str, OutpaintSpec)> {
    let spec = |left, right, top, bottom, overlap| OutpaintSpec {
        left,
        right,
        top,
        bottom,
        overlap,
    };
    vec![
        ("sd15_outpaint4", "init-64.png", spec(16, 0, 0, 24, 8)),
        ("sd15_outpaint9", "init-64.png", spec(0, 20, 8, 0, 16)),
        (
            "sd15_outpaint4_strength",
            "init-64.png",
            spec(8, 8, 0, 0, 8),
        ),
    ]
}

fn load_rgb(rel: &str) -> image::RgbImage {
    image::open(fixtures().join(rel)).unwrap().to_rgb8()
}

fn load_gray(rel: &str) -> image::GrayImage {
    image::open(fixtures().join(rel)).unwrap().to_luma8()
}

#[test]
#[ignore = "writes tests/fixtures/outpaint/*: run by hand before make_outpaint.py"]
fn write_outpaint_inputs() {
    if std::env::var_os("KILN_WRITE_OUTPAINT_INPUTS").is_none() {
        return;
    }
    let dir = fixtures().join("outpaint");
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = Vec::new();
    for (name, source, spec) in input_cases() {
        let out = prepare(&load_rgb(source), &spec).unwrap();
        out.init.save(dir.join(format!("{name}-init.png"))).unwrap();
        out.mask.save(dir.join(format!("{name}-mask.png"))).unwrap();
        out.alpha
            .save(dir.join(format!("{name}-alpha.png")))
            .unwrap();
        let p = out.plan;
        manifest.push(json!({
            "name": name, "source": source, "outpaint": spec,
            "init": format!("outpaint/{name}-init.png"),
            "mask": format!("outpaint/{name}-mask.png"),
            "alpha": format!("outpaint/{name}-alpha.png"),
            "width": p.width(), "height": p.height(),
            "placed": [p.left, p.top, p.right, p.bottom],
        }));
    }
    let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    std::fs::write(dir.join("inputs.json"), text).unwrap();
}

#[test]
fn kiln_still_makes_the_committed_init_mask_and_alpha() {
    for (name, source, spec) in input_cases() {
        let out = prepare(&load_rgb(source), &spec).unwrap();
        assert_eq!(
            out.init,
            load_rgb(&format!("outpaint/{name}-init.png")),
            "{name}"
        );
        assert_eq!(
            out.mask,
            load_gray(&format!("outpaint/{name}-mask.png")),
            "{name}"
        );
        assert_eq!(
            out.alpha,
            load_gray(&format!("outpaint/{name}-alpha.png")),
            "{name}"
        );
    }
}

/// Kiln's recipe of a reference case: the source image with its outpaint extension (not the
/// padded init and mask diffusers was given).
fn outpaint_recipe(case: &Value) -> Recipe {
    let mut recipe = recipe_of(case);
    recipe.mask = None;
    recipe.init = Some(InitImage {
        path: fixtures().join(case["source"].as_str().unwrap()),
        strength: case["strength"].as_f64().unwrap() as f32,
    });
    recipe.outpaint = Some(serde_json::from_value(case["outpaint"].clone()).unwrap());
    recipe
}

#[test]
fn every_outpaint_render_matches_diffusers() {
    let cases = reference_cases("refs/outpaint/cases.json");
    assert_eq!(cases.len(), input_cases().len());
    let mut engine = Engine::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let out = engine
            .run(&outpaint_recipe(case), &mut |_| {}, &CancelToken::default())
            .unwrap();
        let expected = load_rgb(case["png"].as_str().unwrap());
        let diff = image_diff(&out[0].image, &expected).expect("same size");
        eprintln!("{name:28} max {:3}/255 mean {:.3}/255", diff.max, diff.mean);
        if !diff.within_standard() {
            failures.push(format!("{name}: {diff:?}"));
        }
        assert_eq!(out[0].recipe.width, case["width"].as_u64().unwrap() as u32);
    }
    assert!(
        failures.is_empty(),
        "outpaint renders differ:\n{}",
        failures.join("\n")
    );
}

/// The first reference case's recipe with another seed.
fn case_recipe(seed: u64) -> Recipe {
    let case = reference_cases("refs/outpaint/cases.json")
        .into_iter()
        .find(|c| c["name"] == "sd15_outpaint4")
        .unwrap();
    let mut recipe = outpaint_recipe(&case);
    recipe.seed = seed;
    // The recipe's size is ignored: the output is the extended size.
    recipe.width = 512;
    recipe.height = 512;
    recipe
}

#[test]
fn the_original_stays_exact_outside_the_band_and_the_new_area_is_generated() {
    let mut engine = Engine::new();
    let run = |engine: &mut Engine, seed| {
        engine
            .run(&case_recipe(seed), &mut |_| {}, &CancelToken::default())
            .unwrap()
            .remove(0)
    };
    let first = run(&mut engine, 11);
    let source = load_rgb("init-64.png");
    let spec = case_recipe(11).outpaint.unwrap();
    let prepared = prepare(&source, &spec).unwrap();
    let plan: OutpaintPlan = prepared.plan;
    assert_eq!(first.image.dimensions(), (80, 88));
    assert_eq!((first.recipe.width, first.recipe.height), (80, 88));
    let (mut kept, mut band_changed, mut new_changed) = (0, 0, 0);
    for (x, y, p) in first.image.enumerate_pixels() {
        let fill = prepared.init.get_pixel(x, y);
        match plan.depth(x, y) {
            Some(depth) if depth >= plan.overlap => {
                assert_eq!(
                    p,
                    source.get_pixel(x - plan.left, y - plan.top),
                    "({x},{y})"
                );
                kept += 1;
            }
            Some(_) => band_changed += usize::from(p != fill),
            None => {
                let d = (0..3).map(|c| p.0[c].abs_diff(fill.0[c])).max().unwrap();
                new_changed += usize::from(d > 8);
            }
        }
    }
    let new_area = (80 * 88 - 64 * 64) as usize;
    assert!(kept > 2500, "{kept} pixels kept");
    assert!(band_changed > 100, "{band_changed} band pixels changed");
    assert!(
        new_changed * 10 > new_area * 8,
        "only {new_changed} of {new_area} new pixels differ from the fill"
    );
    // The same seed gives the same picture; another seed another one.
    assert_eq!(run(&mut engine, 11).image, first.image);
    assert_ne!(run(&mut engine, 12).image, first.image);
}

#[test]
fn outpainting_with_a_mask_or_nothing_to_extend_is_refused() {
    let mut recipe = case_recipe(1);
    recipe.mask = Some(kiln_inference::recipe::MaskSpec {
        path: fixtures().join("mask-64.png"),
        ..Default::default()
    });
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    let mut recipe = case_recipe(1);
    recipe.outpaint = Some(OutpaintSpec::default());
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("at least one side"), "{err}");
    let mut recipe = case_recipe(1);
    recipe.init = None;
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("init image"), "{err}");
}

#[test]
fn an_overlay_is_composited_over_the_result_at_full_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let overlay_path = dir.path().join("overlay.png");
    let mut overlay = image::RgbaImage::new(80, 88);
    for x in 10..30 {
        overlay.put_pixel(x, 40, image::Rgba([255, 0, 0, 255]));
        overlay.put_pixel(x, 41, image::Rgba([0, 0, 255, 128]));
    }
    overlay.save(&overlay_path).unwrap();
    let mut recipe = case_recipe(5);
    let plain = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap()
        .remove(0);
    recipe.overlay = Some(overlay_path);
    let out = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap()
        .remove(0);
    assert_eq!(out.image.get_pixel(15, 40).0, [255, 0, 0]);
    let under = plain.image.get_pixel(15, 41).0;
    let half = out.image.get_pixel(15, 41).0;
    assert_eq!(
        half[2],
        ((u32::from(under[2]) * 127 + 255 * 128 + 127) / 255) as u8
    );
    assert_eq!(out.image.get_pixel(50, 60), plain.image.get_pixel(50, 60));
    assert!(out.recipe.overlay.is_some());
}
