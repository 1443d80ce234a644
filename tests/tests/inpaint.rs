//! Inpainting parity: 4-channel (latent blending) and 9-channel inpainting UNets, several
//! samplers and strengths, soft masks and the "only masked" crop match diffusers' inpaint
//! pipelines within 3/255 (`tests/fixtures/make_inpaint.py`); pixels outside the mask are kept
//! when the result is pasted back. Inpainting ControlNets (`pre=inpaint`) match diffusers'
//! ControlNet inpaint pipeline (`tests/fixtures/make_controlnet_inpaint.py`), with the guide
//! following the "only masked" crop and outpainting.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::recipe::MaskSpec;
use kiln_inference::{CancelToken, Engine};
use kiln_tests::{check_reference_cases, fixtures, recipe_of, reference_cases};
use serde_json::Value;

fn cases() -> Vec<Value> {
    reference_cases("refs/inpaint/cases.json")
}

#[test]
fn every_inpaint_render_matches_diffusers() {
    let cases = cases();
    assert!(cases.len() >= 7, "expected the full inpaint case list");
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "inpaint renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_blurred_paste_back_keeps_the_unmasked_pixels() {
    let case = cases()
        .into_iter()
        .find(|c| c["name"] == "sd15_inpaint4_euler")
        .unwrap();
    let mut recipe = recipe_of(&case);
    recipe.mask = Some(MaskSpec {
        blur: 4,
        ..recipe.mask.clone().unwrap()
    });
    let out = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    let image = &out[0].image;
    let init = image::open(fixtures().join("init-64.png"))
        .unwrap()
        .to_rgb8();
    let mask = image::open(fixtures().join(case["mask"].as_str().unwrap()))
        .unwrap()
        .to_luma8();
    // Far from the mask (more than 3 blur radii), the init image is untouched.
    let mut far = 0;
    for (x, y, p) in mask.enumerate_pixels() {
        let near = (x.saturating_sub(12)..(x + 13).min(64)).any(|xx| {
            (y.saturating_sub(12)..(y + 13).min(64)).any(|yy| mask.get_pixel(xx, yy).0[0] > 0)
        });
        if p.0[0] == 0 && !near {
            assert_eq!(image.get_pixel(x, y), init.get_pixel(x, y), "({x},{y})");
            far += 1;
        }
    }
    assert!(far > 500, "only {far} pixels far from the mask");
}

#[test]
fn a_mask_without_an_init_image_is_refused() {
    let case = cases().into_iter().next().unwrap();
    let mut recipe = recipe_of(&case);
    recipe.init = None;
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("init image"), "{err}");
}

#[test]
fn the_only_masked_crop_is_the_one_diffusers_computes() {
    use kiln_inference::pipelines::inpaint::crop_region;
    for case in cases() {
        let Some(expected) = case["crop_region"].as_array() else {
            continue;
        };
        let expected: Vec<u64> = expected.iter().map(|v| v.as_u64().unwrap()).collect();
        let mask = image::open(fixtures().join(case["mask"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        let pad = case["padding_mask_crop"].as_u64().unwrap() as u32;
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let r = crop_region(&mask, pad, w, h).unwrap();
        let got = [r.x0, r.y0, r.x1, r.y1].map(u64::from);
        assert_eq!(got.to_vec(), expected, "{}", case["name"]);
    }
}

// ControlNet inpainting (`pre=inpaint`): diffusers' StableDiffusionControlNetInpaintPipeline with
// the guide made by `make_inpaint_condition` (tests/fixtures/make_controlnet_inpaint.py). On the
// 4-channel tiny-sd15 that pipeline inpaints exactly as StableDiffusionInpaintPipeline (checked
// there: at ControlNet scale 0 the renders are byte-identical), so these cases compare the same
// inpaint path as the ones above plus the guide. One difference is Kiln's design: in "only
// masked" mode Kiln crops the guide with the init image; diffusers cannot crop a tensor guide
// (and refuses one with `padding_mask_crop`), so the reference passes the guide made from the
// pipeline's own crop (case sd15_cninpaint_crop).

fn controlnet_cases() -> Vec<Value> {
    reference_cases("refs/controlnet_inpaint/cases.json")
}

#[test]
fn every_controlnet_inpaint_render_matches_diffusers() {
    let cases = controlnet_cases();
    assert!(
        cases.len() >= 4,
        "expected the full ControlNet inpaint case list"
    );
    for case in &cases {
        assert_eq!(case["controls"][0]["pre"], "inpaint");
        assert_eq!(case["zero_scale_equals_inpaint_pipeline"], true);
        // The masked (−1) guide pixels change the render: a guide without them fails.
        assert!(
            case["max_diff_vs_unmasked_guide"].as_u64().unwrap() >= 10,
            "{}: the fixture ControlNet must see the masked pixels",
            case["name"]
        );
    }
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "ControlNet inpaint renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn an_inpaint_controlnet_without_a_mask_is_refused() {
    let case = controlnet_cases().into_iter().next().unwrap();
    let mut recipe = recipe_of(&case);
    recipe.mask = None;
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("pre=inpaint needs an init image and an inpainting mask"),
        "{err}"
    );
    recipe.init = None;
    let err = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("pre=inpaint"), "{err}");
}

/// The inpainting guide follows the geometry the UNet sees: a control image that is the init
/// image itself gives exactly the render of the default guide (the init image as the UNet gets
/// it) with a plain mask, in "only masked" mode (cropped like the init) and when outpainting
/// (extended like the init).
#[test]
fn an_inpaint_guide_image_is_cropped_and_extended_like_the_init_image() {
    use kiln_inference::recipe::OutpaintSpec;
    let mut engine = Engine::new();
    let mut render = |recipe: &kiln_inference::Recipe| {
        engine
            .run(recipe, &mut |_| {}, &CancelToken::default())
            .unwrap()
            .remove(0)
            .image
    };
    let cases = controlnet_cases();
    let find = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap();
    let plain = recipe_of(find("sd15_cninpaint_euler"));
    let crop = recipe_of(find("sd15_cninpaint_crop"));
    let mut outpaint = plain.clone();
    outpaint.mask = None;
    outpaint.outpaint = Some(OutpaintSpec {
        right: 16,
        top: 8,
        ..OutpaintSpec::default()
    });
    for (what, recipe) in [
        ("plain", plain),
        ("only masked", crop),
        ("outpaint", outpaint),
    ] {
        assert!(recipe.controls[0].image.as_os_str().is_empty());
        let default_guide = render(&recipe);
        let mut explicit = recipe.clone();
        explicit.controls[0].image = recipe.init.as_ref().unwrap().path.clone();
        assert_eq!(
            render(&explicit),
            default_guide,
            "{what}: the init image given as the guide must match the default guide"
        );
        // And the guide matters: a different control image changes the render.
        let mut other = recipe.clone();
        other.controls[0].image = fixtures().join("guide-canny-64.png");
        let diff = kiln_tests::image_diff(&render(&other), &default_guide).unwrap();
        assert!(diff.max >= 10, "{what}: {diff:?}");
    }
}
