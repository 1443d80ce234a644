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
