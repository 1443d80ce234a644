//! InstantID parity (`tests/fixtures/make_instantid.py`, `refs/instantid/`): the keypoint
//! image drawn exactly as InstantID's `draw_kps` draws it with OpenCV.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::vision::face::keypoints::draw_keypoints;
use kiln_tests::fixtures;
use serde_json::Value;

#[test]
fn keypoint_images_match_opencv_pixel_for_pixel() {
    let dir = fixtures().join("refs/instantid");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kps.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 24);
    let mut failures = Vec::new();
    for case in cases {
        let kps: Vec<[f32; 2]> = case["kps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32])
            .collect();
        let kps: [[f32; 2]; 5] = kps.try_into().unwrap();
        let w = case["width"].as_u64().unwrap() as u32;
        let h = case["height"].as_u64().unwrap() as u32;
        let ours = draw_keypoints(w, h, &kps);
        let file = case["file"].as_str().unwrap();
        let reference = image::open(dir.join(file)).unwrap().to_rgb8();
        let differing = ours
            .pixels()
            .zip(reference.pixels())
            .filter(|(a, b)| a != b)
            .count();
        if differing > 0 {
            failures.push(format!("{file}: {differing} pixels differ"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A copy of `tiny-instantid` as a user has it after `kiln models convert ip-adapter.bin`:
/// the pickle converted by Kiln's converter, IdentityNet beside it.
fn converted_instantid(dir: &std::path::Path) -> std::path::PathBuf {
    use kiln_inference::io::convert::torch_to_safetensors;
    let src = fixtures().join("tiny-instantid");
    let out = dir.join("InstantID");
    std::fs::create_dir_all(out.join("ControlNetModel")).unwrap();
    for file in ["config.json", "diffusion_pytorch_model.safetensors"] {
        std::fs::copy(
            src.join("ControlNetModel").join(file),
            out.join("ControlNetModel").join(file),
        )
        .unwrap();
    }
    let count = torch_to_safetensors(
        &src.join("ip-adapter.bin"),
        &out.join("ip-adapter.safetensors"),
    )
    .unwrap();
    // Resampler: latents, proj_in/out (w+b), norm_out (w+b), 4 layers × 11; 2 per attn2.
    assert!(count > 7 + 44, "{count} tensors");
    out
}

#[test]
fn the_pickled_adapter_converts_and_is_refused_unconverted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = converted_instantid(tmp.path());
    let st = safetensors::SafeTensors::deserialize(
        &std::fs::read(out.join("ip-adapter.safetensors")).unwrap(),
    )
    .unwrap()
    .names()
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    assert!(st.iter().any(|n| n == "image_proj.latents"), "{st:?}");
    assert!(
        st.iter().any(|n| n == "ip_adapter.1.to_k_ip.weight"),
        "{st:?}"
    );
    // The folder as published (pickle only) is refused with the conversion command.
    let mut recipe =
        kiln_tests::recipe_of(&kiln_tests::reference_cases("refs/instantid/cases.json")[0]);
    recipe.steps = 1;
    let err = kiln_inference::Engine::new()
        .run(
            &recipe,
            &mut |_| {},
            &kiln_inference::CancelToken::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("kiln models convert"), "{err}");
}

#[test]
fn instantid_matches_the_diffusers_composition() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_instantid(tmp.path());
    let mut cases = kiln_tests::reference_cases("refs/instantid/cases.json");
    for case in &mut cases {
        case["face"]["model"] = Value::String(model.to_string_lossy().into_owned());
    }
    // recipe_of joins paths onto tests/fixtures; an absolute path stays as it is.
    let failures = kiln_tests::check_reference_cases(&cases);
    assert!(failures.is_empty(), "{failures:#?}");
    // Both halves matter: without the face tokens' attention, or without IdentityNet, the
    // image is far from the reference.
    let expected = image::open(fixtures().join("refs/instantid/face.png"))
        .unwrap()
        .to_rgb8();
    let mut engine = kiln_inference::Engine::new();
    for (strength, keypoints) in [(0.0, 0.8), (0.8, 0.0)] {
        let mut recipe = kiln_tests::recipe_of(&cases[0]);
        let face = recipe.face.as_mut().unwrap();
        face.strength = strength;
        face.keypoints = keypoints;
        let out = engine
            .run(
                &recipe,
                &mut |_| {},
                &kiln_inference::CancelToken::default(),
            )
            .unwrap();
        let diff = kiln_tests::image_diff(&out[0].image, &expected).unwrap();
        assert!(
            diff.max > 6,
            "strength {strength}, keypoints {keypoints}: {diff:?}"
        );
    }
}
