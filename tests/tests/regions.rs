//! Regional prompts (`docs/REGIONAL.md`): Kiln's renders match diffusers with the regional
//! attention processor of `tests/fixtures/make_regions.py` (SD1.5 box, SD1.5 img2img with a
//! weighted box and a soft mask region with its own negative, SDXL box, SD1.5 + ControlNet,
//! SD1.5 inpainting) within 3/255; and, independently of the Python reference, a region
//! covering nothing leaves the image unchanged bit for bit, one covering everything equals
//! generating with its prompt, and a later region wins over an earlier one.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::io::png_meta::{a1111_parameters, encode_png, read_recipe};
use kiln_inference::recipe::{RegionArea, RegionSpec};
use kiln_inference::{CancelToken, Engine, Recipe};
use kiln_tests::{check_reference_cases, fixtures, image_diff, recipe_of, reference_cases};
use serde_json::Value;

fn cases() -> Vec<Value> {
    reference_cases("refs/regions/cases.json")
}

fn case(name: &str) -> Value {
    cases().into_iter().find(|c| c["name"] == name).unwrap()
}

fn render(engine: &mut Engine, recipe: &Recipe) -> image::RgbImage {
    let mut out = engine
        .run(recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    out.remove(0).image
}

#[test]
fn every_region_render_matches_diffusers() {
    let cases = cases();
    assert!(cases.len() >= 5, "expected the full region case list");
    for c in &cases {
        // The reference's regions change the render well beyond the tolerance.
        assert!(
            c["max_diff_vs_base"].as_u64().unwrap() >= 20,
            "{}",
            c["name"]
        );
    }
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "region renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_region_covering_nothing_leaves_the_image_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let black = dir.path().join("black.png");
    image::GrayImage::new(64, 64).save(&black).unwrap();
    let mut engine = Engine::new();
    for name in ["sd15_region_box", "sdxl_region_box"] {
        let mut recipe = recipe_of(&case(name));
        let (w, h) = (recipe.width, recipe.height);
        let mask = dir.path().join(format!("black-{w}x{h}.png"));
        image::GrayImage::new(w, h).save(&mask).unwrap();
        recipe.regions = vec![RegionSpec {
            negative: Some("a negative that acts nowhere".into()),
            ..RegionSpec::from_mask("fire", &mask)
        }];
        let with_region = engine
            .run(&recipe, &mut |_| {}, &CancelToken::default())
            .unwrap()
            .remove(0);
        assert!(
            with_region
                .warnings
                .iter()
                .any(|w| w.contains("covers nothing")),
            "{:?}",
            with_region.warnings
        );
        recipe.regions.clear();
        let without = render(&mut engine, &recipe);
        assert_eq!(
            image_diff(&with_region.image, &without).unwrap().max,
            0,
            "{name}"
        );
    }
    // The committed no-region reference of the case, for good measure.
    let c = case("sd15_region_box");
    let base = image::open(fixtures().join(c["base_png"].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    let mut recipe = recipe_of(&c);
    recipe.regions = vec![RegionSpec::from_mask("fire", &black)];
    let image = render(&mut engine, &recipe);
    assert!(image_diff(&image, &base).unwrap().within_standard());
}

#[test]
fn a_region_covering_everything_equals_generating_with_its_prompt() {
    let mut engine = Engine::new();
    for name in [
        "sd15_region_box",
        "sd15_regions_mask_img2img",
        "sd15_region_inpaint",
    ] {
        let mut recipe = recipe_of(&case(name));
        recipe.regions = vec![RegionSpec::from_box("fire", [0.0, 0.0, 1.0, 1.0])];
        let whole = render(&mut engine, &recipe);
        recipe.regions.clear();
        recipe.prompt = "fire".into();
        let prompted = render(&mut engine, &recipe);
        let diff = image_diff(&whole, &prompted).unwrap();
        assert!(diff.max <= 1, "{name}: {diff:?}");
    }
}

#[test]
fn a_later_region_wins_where_regions_overlap() {
    let mut engine = Engine::new();
    let mut recipe = recipe_of(&case("sd15_region_box"));
    recipe.regions = vec![
        RegionSpec::from_box("zebra stripes", [0.0, 0.0, 1.0, 1.0]),
        RegionSpec::from_box("fire", [0.0, 0.0, 1.0, 1.0]),
    ];
    let layered = render(&mut engine, &recipe);
    recipe.regions.remove(0);
    let top_only = render(&mut engine, &recipe);
    assert!(image_diff(&layered, &top_only).unwrap().max <= 1);
    // Half the weight mixes: neither the base nor the region alone.
    recipe.regions[0].weight = 0.5;
    let half = render(&mut engine, &recipe);
    recipe.regions.clear();
    let base = render(&mut engine, &recipe);
    assert!(image_diff(&half, &base).unwrap().max > 3);
    assert!(image_diff(&half, &top_only).unwrap().max > 3);
}

#[test]
fn regions_round_trip_through_png_metadata() {
    let c = case("sd15_regions_mask_img2img");
    let recipe = recipe_of(&c);
    assert_eq!(recipe.regions.len(), 2);
    let parameters = a1111_parameters(&recipe, &[]);
    let line = parameters.lines().last().unwrap();
    assert!(
        line.contains(
            "Regions: \"a blue sky with white clouds [box 0.25 0 1 0.75, weight 0.7]; \
             a golden dog [mask region-mask-64.png, negative: cartoon, drawing]\""
        ),
        "{line}"
    );
    let json = serde_json::to_string(&recipe).unwrap();
    let png = encode_png(&image::RgbImage::new(8, 8), &parameters, &json).unwrap();
    let back = read_recipe(&png).unwrap().unwrap();
    assert_eq!(back.regions, recipe.regions);
    assert_eq!(back, recipe);
    // Recipes without regions keep their JSON (and batch hashes); old recipes still parse.
    let mut plain = recipe.clone();
    plain.regions.clear();
    let text = serde_json::to_string(&plain).unwrap();
    assert!(!text.contains("regions"));
    let old: Recipe = serde_json::from_str(&text).unwrap();
    assert!(old.regions.is_empty());
    assert!(!a1111_parameters(&plain, &[]).contains("Regions"));
    // The documented JSON forms.
    let spec: RegionSpec =
        serde_json::from_str(r#"{"prompt": "a puppy", "area": {"box": [0, 0.5, 0.5, 1]}}"#)
            .unwrap();
    assert_eq!(spec.area, RegionArea::Box([0.0, 0.5, 0.5, 1.0]));
    assert_eq!((spec.weight, spec.negative), (1.0, None));
}

#[test]
fn bad_regions_are_refused_before_any_work() {
    let mut recipe = recipe_of(&case("sd15_region_box"));
    let mut engine = Engine::new();
    let mut err = |regions: Vec<RegionSpec>| {
        recipe.regions = regions;
        engine
            .run(&recipe, &mut |_| {}, &CancelToken::default())
            .unwrap_err()
            .to_string()
    };
    let e = err(vec![
        RegionSpec::from_box("ok", [0.0, 0.0, 1.0, 1.0]),
        RegionSpec::from_box("bad", [0.6, 0.0, 0.4, 1.0]),
    ]);
    assert!(e.contains("region 2") && e.contains("x0 < x1"), "{e}");
    let e = err(vec![RegionSpec {
        weight: 2.0,
        ..RegionSpec::from_box("heavy", [0.0, 0.0, 1.0, 1.0])
    }]);
    assert!(e.contains("weight"), "{e}");
    let e = err(vec![RegionSpec::from_mask(
        "wide",
        fixtures().join("mask-128x96.png"),
    )]);
    assert!(e.contains("aspect ratio") && e.contains("128x96"), "{e}");
    let e = err(vec![RegionSpec::from_mask(
        "missing",
        fixtures().join("no-such-mask.png"),
    )]);
    assert!(e.contains("no-such-mask.png"), "{e}");
    assert!(engine.model().is_none(), "no model loaded for a bad recipe");
}

/// Cost of regional prompts in one CFG UNet step (measurement, not a check): set
/// `KILN_BENCH_MODEL` to a full-size SD1.5 folder and run with `--ignored --nocapture`.
/// Times the same step with no processor, 1 and 2 box regions, interleaved.
#[test]
#[ignore = "measurement on a full-size model (KILN_BENCH_MODEL)"]
fn unet_step_cost_with_regions() {
    use kiln_inference::io::model::ModelFiles;
    use kiln_inference::pipelines::stable_diffusion::StableDiffusion;
    use kiln_inference::unet::UNetHooks;
    use kiln_inference::unet::attention::AttentionProcessor;
    use kiln_inference::unet::regional::{RegionLayer, RegionalAttention, RowRegions};
    use std::time::Instant;
    let Ok(path) = std::env::var("KILN_BENCH_MODEL") else {
        eprintln!("KILN_BENCH_MODEL not set");
        return;
    };
    let size: usize = std::env::var("KILN_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let device = candle_core::Device::Cpu;
    let files = ModelFiles::open(std::path::Path::new(&path)).unwrap();
    let model = StableDiffusion::load(&files, &device, &mut |_| {}).unwrap();
    let context = |p: &str| model.encode_prompt(p, 1, 1).unwrap().context;
    let base = candle_core::Tensor::cat(&[&context(""), &context("a park")], 0).unwrap();
    let latent = size / 8;
    let sample = candle_core::Tensor::randn(0f32, 1.0, (2, 4, latent, latent), &device).unwrap();
    let alpha = |x0: usize, x1: usize| -> std::sync::Arc<[f32]> {
        (0..size * size)
            .map(|i| {
                if (x0..x1).contains(&(i % size)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    };
    let processor = |n: usize| {
        let layers = (0..n)
            .map(|i| RegionLayer {
                context: context(if i == 0 { "a puppy" } else { "a kite" }),
                alpha: alpha(i * size / 2, (i + 1) * size / 2),
            })
            .collect();
        RegionalAttention::new((size, size), vec![RowRegions { row: 1, layers }]).unwrap()
    };
    let (one, two) = (processor(1), processor(2));
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (k, p) in [None, Some(&one), Some(&two)].into_iter().enumerate() {
            let hooks = UNetHooks {
                attention: p.map(|p| p as &dyn AttentionProcessor),
                ..UNetHooks::default()
            };
            let started = Instant::now();
            model
                .unet()
                .forward(&sample, 500.0, &base, None, &hooks)
                .unwrap();
            times[k].push(started.elapsed().as_secs_f64());
        }
    }
    for (label, t) in ["no regions", "1 region", "2 regions"].iter().zip(&times) {
        let mut t = t.clone();
        t.sort_by(f64::total_cmp);
        eprintln!(
            "{size}x{size} CFG UNet step, {label}: median {:.3} s ({t:?})",
            t[1]
        );
    }
}
