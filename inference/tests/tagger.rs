//! WD14 tagger parity against onnxruntime and the reference preprocessing (PIL), on the tiny
//! random tagger made by `tests/fixtures/make_tagger.py` (`refs/tagger.json`), plus the load
//! errors a user can run into.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::Error;
use kiln_inference::vision::{TagCategory, Tagger, Thresholds};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn refs() -> Value {
    let text = std::fs::read_to_string(fixtures().join("refs/tagger.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest allowed probability difference against onnxruntime.
const PROB_TOLERANCE: f32 = 1e-5;

#[test]
fn tagger_matches_reference() {
    let refs = refs();
    let thresholds = Thresholds {
        general: refs["thresholds"]["general"].as_f64().unwrap() as f32,
        character: refs["thresholds"]["character"].as_f64().unwrap() as f32,
    };
    assert_eq!(thresholds, Thresholds::default());
    let ref_tags = refs["tags"].as_array().unwrap();
    let cases = refs["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let model = case["model"].as_str().unwrap();
        let image_name = case["image"].as_str().unwrap();
        let label = format!("{model} / {image_name}");
        let tagger = Tagger::load(&fixtures().join(model)).unwrap();
        assert_eq!(tagger.input_name(), case["input_name"].as_str().unwrap());
        let size = case["size"].as_u64().unwrap() as u32;
        assert_eq!(tagger.input_size(), (size, size), "{label}");
        let image = image::open(fixtures().join(image_name)).unwrap();

        // Preprocessing: bit-exact with PIL (values are integers 0..255).
        let input = tagger.preprocess(&image);
        let bytes: Vec<u8> = input.iter().map(|v| *v as u8).collect();
        assert!(input.iter().zip(&bytes).all(|(v, b)| *v == f32::from(*b)));
        let want = &case["input"];
        let sum: f64 = input.iter().map(|v| f64::from(*v)).sum();
        assert_eq!(sum, want["sum"].as_f64().unwrap(), "{label}: input sum");
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            want["sha256_u8"].as_str().unwrap(),
            "{label}: preprocessed input differs from PIL's"
        );

        // Probabilities.
        let tags = tagger.tags(&image).unwrap();
        let want_probs = f32s(&case["probs"]);
        assert_eq!(tags.len(), want_probs.len());
        let mut max_diff = 0f32;
        for ((tag, want), ref_tag) in tags.iter().zip(&want_probs).zip(ref_tags) {
            assert_eq!(tag.name, ref_tag["name"].as_str().unwrap());
            let category = ref_tag["category"].as_u64().unwrap() as u32;
            assert_eq!(tag.category, TagCategory::from(category));
            max_diff = max_diff.max((tag.score - want).abs());
        }
        eprintln!("{label}: max |p - p_onnxruntime| = {max_diff:e}");
        assert!(max_diff <= PROB_TOLERANCE, "{label}: {max_diff}");

        // Caption.
        let caption = tagger.caption(&image, thresholds).unwrap();
        assert_eq!(caption, case["caption"].as_str().unwrap(), "{label}");
    }
}

#[test]
fn tagger_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tagger>();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tagger folder copied into a temporary directory, for breaking it.
fn scratch_tagger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.onnx", "selected_tags.csv"] {
        std::fs::copy(
            fixtures().join("tiny-tagger").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    dir
}

fn load_error(path: &Path) -> (Error, String) {
    let error = Tagger::load(path).unwrap_err();
    let message = format!("{error:#}");
    eprintln!("{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    (error, message)
}

#[test]
fn loads_from_folder_or_file() {
    let by_folder = Tagger::load(&fixtures().join("tiny-tagger")).unwrap();
    let by_file = Tagger::load(&fixtures().join("tiny-tagger/model.onnx")).unwrap();
    assert_eq!(by_folder.tag_count(), 24);
    assert_eq!(by_file.input_name(), "input");
}

#[test]
fn missing_model_or_csv_is_reported() {
    let dir = scratch_tagger();
    std::fs::remove_file(dir.path().join("selected_tags.csv")).unwrap();
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::UnknownCheckpoint { .. }));
    assert!(message.contains("selected_tags.csv"), "{message}");

    let (error, message) = load_error(&dir.path().join("nothing.onnx"));
    assert!(matches!(error, Error::Io { .. }));
    assert!(message.contains("nothing.onnx"), "{message}");
}

#[test]
fn bad_csv_is_reported() {
    let dir = scratch_tagger();
    let csv = dir.path().join("selected_tags.csv");
    let text = std::fs::read_to_string(&csv).unwrap();

    std::fs::write(&csv, text.replacen("tag_id,name,", "id,tag,", 1)).unwrap();
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::InvalidFile { .. }));
    assert!(
        message.contains("header") && message.contains("selected_tags.csv"),
        "{message}"
    );

    let fewer: Vec<&str> = text.lines().take(20).collect();
    std::fs::write(&csv, fewer.join("\n")).unwrap();
    let (_, message) = load_error(dir.path());
    assert!(
        message.contains("19 tags") && message.contains("predicts 24"),
        "{message}"
    );
    assert!(message.contains("selected_tags.csv"), "{message}");

    std::fs::write(&csv, text.replace(",0,", ",zero,")).unwrap();
    let (_, message) = load_error(dir.path());
    assert!(message.contains("not a number"), "{message}");
}

#[test]
fn bad_model_is_reported() {
    let dir = scratch_tagger();
    let model = dir.path().join("model.onnx");
    let bytes = std::fs::read(&model).unwrap();

    std::fs::write(&model, b"this is not an onnx file at all").unwrap();
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::InvalidFile { format: "ONNX", .. }));
    assert!(message.contains("model.onnx"), "{message}");

    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::InvalidFile { format: "ONNX", .. }));
    assert!(message.contains("model.onnx"), "{message}");

    std::fs::write(&model, b"").unwrap();
    let (error, message) = load_error(dir.path());
    assert!(matches!(error, Error::InvalidFile { format: "ONNX", .. }));
    assert!(message.contains("model.onnx"), "{message}");
}

#[test]
fn wrong_input_rank_is_reported() {
    // `rank2.onnx` (make_tagger.py): input [1, 24] -> Sigmoid, beside a valid 24-tag CSV.
    let path = fixtures().join("tiny-tagger/rank2.onnx");
    let (error, message) = load_error(&path);
    assert!(matches!(error, Error::InvalidFile { format: "ONNX", .. }));
    assert!(
        message.contains("rank 2") && message.contains("rank2.onnx"),
        "{message}"
    );
}
