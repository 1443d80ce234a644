//! Face analysis parity with insightface's python code on tiny ONNX models with the real
//! antelopev2 signatures (`tests/fixtures/make_faces.py`, `refs/faces/faces.json`): the
//! letterboxed detector input, decoded and NMS-filtered detections, the ArcFace similarity
//! transform, the aligned crop and the embedding.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::vision::face::{
    Face, FaceAnalyzer, MIN_FACE_SIZE, align, cosine, l2_normalize, scrfd,
};
use kiln_tests::fixtures;
use serde_json::Value;

fn refs() -> Value {
    let text = std::fs::read_to_string(fixtures().join("refs/faces/faces.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn analyzer() -> FaceAnalyzer {
    FaceAnalyzer::load_dir(&fixtures().join("tiny-antelopev2")).unwrap()
}

fn rgb(path: &str) -> image::RgbImage {
    image::open(fixtures().join(path)).unwrap().to_rgb8()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn face_of(v: &Value) -> Face {
    let bbox = floats(&v["bbox"]);
    let kps: Vec<Vec<f32>> = v["kps"].as_array().unwrap().iter().map(floats).collect();
    Face {
        bbox: [bbox[0], bbox[1], bbox[2], bbox[3]],
        score: v["score"].as_f64().unwrap() as f32,
        kps: std::array::from_fn(|i| [kps[i][0], kps[i][1]]),
    }
}

/// Values differing between two images and the largest difference.
fn pixel_diff(a: &image::RgbImage, b: &image::RgbImage) -> (usize, u8) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut count = 0;
    let mut max = 0;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        if x != y {
            count += 1;
            max = max.max(x.abs_diff(*y));
        }
    }
    (count, max)
}

#[test]
fn letterbox_matches_cv2_resize_and_pad() {
    for case in refs()["images"].as_array().unwrap() {
        let image = rgb(case["image"].as_str().unwrap());
        let boxed = scrfd::letterbox(&image);
        let resized = floats(&case["resized"]);
        assert_eq!(
            (boxed.resized.0 as f32, boxed.resized.1 as f32),
            (resized[0], resized[1])
        );
        assert!((boxed.scale - case["det_scale"].as_f64().unwrap() as f32).abs() < 1e-6);
        let want = rgb(case["det_png"].as_str().unwrap());
        let (count, max) = pixel_diff(&boxed.image, &want);
        eprintln!("{}: {count} values differ, max {max}", case["image"]);
        // OpenCV mixes vector and scalar code paths that round differently: a few values
        // come out one level apart.
        let share = count as f64 / want.as_raw().len() as f64;
        assert!(max <= 1 && share < 1e-3, "{count} values differ, max {max}");
    }
}

#[test]
fn detections_match_insightface() {
    let analyzer = analyzer();
    for case in refs()["images"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let want: Vec<Face> = case["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(face_of)
            .collect();
        assert!(want.len() >= 2, "the fixture should have several faces");
        // Through Kiln's own letterbox (a few values may be one level off cv2's).
        let got = analyzer.detect(&rgb(name)).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: face count");
        // Kiln sorts largest first; compare as sets by matching each reference face.
        let mut worst = 0f32;
        for w in &want {
            let g = got
                .iter()
                .min_by(|a, b| {
                    let d = |f: &Face| {
                        let boxes = f.bbox.iter().zip(&w.bbox);
                        let points = f.kps.iter().flatten().zip(w.kps.iter().flatten());
                        boxes.chain(points).map(|(p, q)| (p - q).abs()).sum::<f32>()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            for (a, b) in g.bbox.iter().zip(&w.bbox) {
                worst = worst.max((a - b).abs());
            }
            for (a, b) in g.kps.iter().flatten().zip(w.kps.iter().flatten()) {
                worst = worst.max((a - b).abs());
            }
            assert!(
                (g.score - w.score).abs() < 1e-3,
                "{name}: score {} vs {}",
                g.score,
                w.score
            );
        }
        eprintln!(
            "{name}: {} faces, worst coordinate difference {worst}",
            got.len()
        );
        assert!(worst < 0.05, "{name}: coordinates differ by {worst} px");
        for pair in got.windows(2) {
            assert!(pair[0].area() >= pair[1].area(), "largest first");
        }
        let largest = &want[case["largest"].as_u64().unwrap() as usize];
        assert!((got[0].area() - largest.area()).abs() < 0.5);
    }
}

#[test]
fn alignment_matches_skimage_and_cv2() {
    let refs = refs();
    for case in refs["alignments"].as_array().unwrap() {
        let kps: Vec<Vec<f32>> = case["kps"].as_array().unwrap().iter().map(floats).collect();
        let kps: [[f32; 2]; 5] = std::array::from_fn(|i| [kps[i][0], kps[i][1]]);
        let got = align::arcface_transform(&kps).unwrap();
        let want: Vec<Vec<f32>> = case["transform"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((*g as f32 - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }
    let analyzer = analyzer();
    for case in refs["images"].as_array().unwrap() {
        let image = rgb(case["image"].as_str().unwrap());
        let face = face_of(&case["faces"][case["largest"].as_u64().unwrap() as usize]);
        let crop = analyzer.aligned_crop(&image, &face).unwrap();
        let want = rgb(case["crop_png"].as_str().unwrap());
        let (count, max) = pixel_diff(&crop, &want);
        eprintln!("{}: crop {count} values differ, max {max}", case["image"]);
        assert!(
            max <= 1 && count <= 8,
            "crop: {count} values differ, max {max}"
        );
    }
}

#[test]
fn embeddings_match_onnxruntime() {
    let analyzer = analyzer();
    for case in refs()["images"].as_array().unwrap() {
        let want = floats(&case["embedding"]);
        // The reference crop through tract: the network itself.
        let crop = rgb(case["crop_png"].as_str().unwrap());
        let got = analyzer.recognizer().embed_crop(&crop).unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "raw embedding differs by {worst}");
        // The whole path from the photo (own crop: at most a pixel level apart).
        let image = rgb(case["image"].as_str().unwrap());
        let face = face_of(&case["faces"][case["largest"].as_u64().unwrap() as usize]);
        let normed = analyzer.embed(&image, &face).unwrap();
        let similarity = cosine(&normed, &l2_normalize(&want));
        let norm: f32 = normed.iter().map(|v| v * v).sum::<f32>().sqrt();
        eprintln!("{}: cosine to the reference {similarity}", case["image"]);
        assert!(similarity > 0.9999 && (norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn clear_errors_for_no_face_and_small_faces() {
    let analyzer = analyzer();
    let blank = image::RgbImage::from_pixel(200, 160, image::Rgb([20, 20, 30]));
    assert!(analyzer.detect(&blank).unwrap().is_empty());
    let e = analyzer.largest(&blank).unwrap_err().to_string();
    assert!(e.contains("no face found"), "{e}");
    let tiny = Face {
        bbox: [10.0, 10.0, 30.0, 34.0],
        score: 0.9,
        kps: [
            [14.0, 18.0],
            [26.0, 18.0],
            [20.0, 23.0],
            [15.0, 28.0],
            [25.0, 28.0],
        ],
    };
    let e = analyzer.embed(&blank, &tiny).unwrap_err().to_string();
    assert!(
        e.contains("too small") && e.contains(&format!("{MIN_FACE_SIZE:.0} pixels")),
        "{e}"
    );
}
