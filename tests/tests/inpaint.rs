//! Inpainting parity: 4-channel (latent blending) and 9-channel inpainting UNets, several
//! samplers and strengths, soft masks and the "only masked" crop match diffusers' inpaint
//! pipelines within 3/255 (`tests/fixtures/make_inpaint.py`); pixels outside the mask are kept
//! when the result is pasted back.

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
