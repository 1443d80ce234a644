//! ControlNet parity: renders with one or several ControlNets (scale, start/end, guess mode,
//! img2img, SDXL, single-file) match diffusers' ControlNet pipelines within 3/255
//! (`tests/fixtures/make_controlnet.py`); Canny guides match OpenCV's `cv2.Canny`.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::vision::preprocess::{canny, canny_gray, to_gray};
use kiln_tests::{check_reference_cases, fixtures, reference_cases};
use serde_json::Value;

fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(path)).unwrap()).unwrap()
}

#[test]
fn every_controlnet_render_matches_diffusers() {
    let cases = reference_cases("refs/controlnet/cases.json");
    assert!(cases.len() >= 8, "expected the full ControlNet case list");
    for case in &cases {
        assert!(
            case["max_diff_vs_base"].as_u64().unwrap() >= 20,
            "{}: the fixture ControlNet must change the image",
            case["name"]
        );
    }
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "ControlNet renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn canny_matches_opencv() {
    let refs = json("refs/controlnet/canny.json");
    let mut checked = 0;
    for case in refs["cases"].as_array().unwrap() {
        let source = image::open(fixtures().join(case["source"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let (low, high) = (
            case["low"].as_f64().unwrap() as f32,
            case["high"].as_f64().unwrap() as f32,
        );
        let got = match case["input"].as_str().unwrap() {
            "gray" => canny_gray(&to_gray(&source), low, high),
            "rgb" => canny(&source, low, high),
            other => panic!("input {other}"),
        };
        let want = image::open(fixtures().join(case["png"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        let differing = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        let share = differing as f64 / want.as_raw().len() as f64;
        eprintln!(
            "{} {} {low}/{high}: {differing} pixels differ",
            case["source"], case["input"]
        );
        assert!(
            share <= 0.01,
            "{case}: {differing} pixels differ ({:.2}%)",
            share * 100.0
        );
        checked += 1;
    }
    assert!(checked >= 4);
    // The gray conversion itself is OpenCV's, exactly.
    for (name, entry) in refs["gray_images"].as_object().unwrap() {
        let source = image::open(fixtures().join(name)).unwrap().to_rgb8();
        let want = image::open(fixtures().join(entry["png"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        assert_eq!(to_gray(&source).as_raw(), want.as_raw(), "{name}");
    }
}

#[test]
fn single_file_controlnet_equals_the_folder() {
    use candle_core::{Device, Tensor};
    use kiln_inference::adapters::controlnet::ControlNet;
    let dev = Device::Cpu;
    let folder = ControlNet::load(&fixtures().join("tiny-controlnet-sd15"), &dev).unwrap();
    let single =
        ControlNet::load(&fixtures().join("tiny-controlnet-sd15.safetensors"), &dev).unwrap();
    // Same architecture (the single file has no sample size to record).
    let (mut a, mut b) = (folder.config().clone(), single.config().clone());
    a.unet.sample_size = None;
    b.unet.sample_size = None;
    assert_eq!(a, b);
    let sample = Tensor::randn(0f32, 1.0, (1, 4, 8, 8), &dev).unwrap();
    let context = Tensor::randn(0f32, 1.0, (1, 77, 32), &dev).unwrap();
    let guide = Tensor::rand(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let run = |net: &ControlNet| {
        net.forward(&sample, 500.0, &context, None, &guide, 1.0, false)
            .unwrap()
    };
    let (down_a, mid_a) = run(&folder);
    let (down_b, mid_b) = run(&single);
    assert_eq!(down_a.len(), down_b.len());
    for (a, b) in down_a.iter().zip(&down_b) {
        assert_eq!(kiln_tests::max_abs_diff(a, b), 0.0);
    }
    assert_eq!(kiln_tests::max_abs_diff(&mid_a, &mid_b), 0.0);
    assert!(
        mid_a
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}
