//! Face fix and the identity score through `Engine::run` on tiny SD1.5 with the tiny
//! antelopev2 (`tests/fixtures/make_faces.py`). The tiny VAE turns anything it generates into
//! noise, so the images with faces are made by inpainting a small corner patch of
//! `faces-640x480.png` (pasted back with a blurred edge): the output is the photo, faces
//! included, except that corner. The tiny detector sees bright blobs as faces and finds several
//! overlapping ones per drawn face (`tests/tests/faces.rs`).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use kiln_inference::engine::{Progress, Stage};
use kiln_inference::pipelines::face_fix::{MIN_FIX_FACE, plan};
use kiln_inference::recipe::{FaceFixSpec, FaceSpec, InitImage, MaskSpec, ModelRef};
use kiln_inference::vision::face::FaceAnalyzer;
use kiln_inference::vision::face::identity::IdentityReference;
use kiln_inference::{CancelToken, Engine, Error, Recipe, SamplerKind};
use kiln_tests::fixtures;
use std::path::Path;
use std::sync::Arc;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

fn analysis() -> std::path::PathBuf {
    fixtures().join("tiny-antelopev2")
}

fn analyzer() -> Arc<FaceAnalyzer> {
    Arc::new(FaceAnalyzer::load_dir(&analysis()).unwrap())
}

/// Inpaints a 24-pixel patch in the bottom-left corner of `init` at 320×240 (the rest is the
/// init image, resized).
fn corner_recipe(init: &Path, dir: &Path) -> Recipe {
    let mask = image::GrayImage::from_fn(WIDTH, HEIGHT, |x, y| {
        image::Luma([if x < 24 && y >= HEIGHT - 24 { 255 } else { 0 }])
    });
    let mask_path = dir.join("corner-mask.png");
    mask.save(&mask_path).unwrap();
    Recipe {
        model: ModelRef {
            path: fixtures().join("tiny-sd15"),
            ..ModelRef::default()
        },
        prompt: "a portrait".into(),
        negative: Some("blurry".into()),
        seed: 7,
        sampler: SamplerKind::Euler,
        steps: 8,
        cfg: 7.0,
        width: WIDTH,
        height: HEIGHT,
        init: Some(InitImage {
            path: init.to_path_buf(),
            strength: 0.5,
        }),
        mask: Some(MaskSpec {
            path: mask_path,
            blur: 2,
            only_masked: false,
            padding: 0,
        }),
        ..Recipe::default()
    }
}

fn face_fix() -> FaceFixSpec {
    FaceFixSpec {
        size: 64,
        analysis: analysis(),
        ..FaceFixSpec::default()
    }
}

fn run(recipe: &Recipe) -> kiln_inference::engine::Output {
    let mut out = Engine::new()
        .run(recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Mean absolute difference of two images over the pixels of `inside`.
fn mean_diff(
    a: &image::RgbImage,
    b: &image::RgbImage,
    inside: impl Fn(u32, u32) -> bool,
) -> (f64, usize) {
    let (mut sum, mut count) = (0f64, 0usize);
    for (x, y, p) in a.enumerate_pixels() {
        if inside(x, y) {
            let q = b.get_pixel(x, y);
            sum +=
                p.0.iter()
                    .zip(q.0)
                    .map(|(u, v)| f64::from(u.abs_diff(v)))
                    .sum::<f64>();
            count += 3;
        }
    }
    (sum / count.max(1) as f64, count / 3)
}

#[test]
fn face_fix_redoes_the_faces_and_nothing_outside_their_crops() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = corner_recipe(&fixtures().join("faces-640x480.png"), tmp.path());
    let before = run(&plain);
    let faces = analyzer().detect(&before.image).unwrap();
    let (plans, too_small) = plan(&faces, WIDTH, HEIGHT, FaceFixSpec::default().padding);
    eprintln!(
        "{} faces detected, {} redone, {too_small} too small",
        faces.len(),
        plans.len()
    );
    assert!(plans.len() >= 2, "the fixture should give several faces");

    let mut fixed_recipe = plain.clone();
    fixed_recipe.face_fix = Some(face_fix());
    let mut events = Vec::new();
    let after = Engine::new()
        .run(
            &fixed_recipe,
            &mut |p: &Progress| {
                if let Stage::FixingFace { face, faces } = p.stage {
                    events.push((face, faces, p.step, p.total));
                }
            },
            &CancelToken::default(),
        )
        .unwrap()
        .remove(0);
    // Only the face models' licence notice (face fix makes the picture with them).
    assert!(
        after.warnings.len() == 1 && after.warnings[0].starts_with("licence: non-commercial"),
        "{:?}",
        after.warnings
    );
    assert_eq!(after.recipe.face_fix, fixed_recipe.face_fix);

    // Every face reports its steps: strength 0.4 of 8 steps = 3 steps each.
    let count = plans.len();
    let expected: Vec<(usize, usize, usize, usize)> = (0..count)
        .flat_map(|face| (1..=3).map(move |step| (face, count, step, 3)))
        .collect();
    assert_eq!(events, expected);

    // Outside the crops: bit-identical to the image before the fix.
    let in_any_crop = |x: u32, y: u32| {
        plans
            .iter()
            .any(|p| x >= p.region.x0 && x < p.region.x1 && y >= p.region.y0 && y < p.region.y1)
    };
    let (outside, outside_count) =
        mean_diff(&before.image, &after.image, |x, y| !in_any_crop(x, y));
    eprintln!("outside the crops: {outside_count} pixels, mean difference {outside}");
    assert!(
        outside_count > 10_000,
        "only {outside_count} pixels outside"
    );
    assert_eq!(outside, 0.0, "pixels outside the face crops changed");

    // Inside every face box (its inner half, clear of the feathered edge): redone.
    for p in &plans {
        let b = p.face_box;
        let (qx, qy) = (b.width() / 4, b.height() / 4);
        let (inside, count) = mean_diff(&before.image, &after.image, |x, y| {
            x >= b.x0 + qx && x < b.x1 - qx && y >= b.y0 + qy && y < b.y1 - qy
        });
        eprintln!("face box {b:?}: {count} pixels, mean difference {inside:.1}");
        assert!(inside > 10.0, "face {b:?} barely changed ({inside})");
        // The crop is the padded face box.
        assert!(p.region.x0 <= b.x0 && p.region.x1 >= b.x1);
        assert!(p.region.y0 <= b.y0 && p.region.y1 >= b.y1);
        assert!(b.width().min(b.height()) as f32 >= MIN_FIX_FACE);
    }
}

#[test]
fn an_image_without_faces_is_left_as_generated_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dark = tmp.path().join("dark.png");
    image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([24, 22, 30]))
        .save(&dark)
        .unwrap();
    let plain = corner_recipe(&dark, tmp.path());
    let before = run(&plain);
    assert!(analyzer().detect(&before.image).unwrap().is_empty());
    let mut recipe = plain.clone();
    recipe.face_fix = Some(face_fix());
    let after = run(&recipe);
    assert_eq!(after.image, before.image);
    assert!(
        after.warnings.iter().any(|w| w.contains("no face found")),
        "{:?}",
        after.warnings
    );
    assert!(before.warnings.is_empty(), "{:?}", before.warnings);
}

#[test]
fn cancelling_during_the_face_fix_stops_the_job() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recipe = corner_recipe(&fixtures().join("faces-640x480.png"), tmp.path());
    recipe.face_fix = Some(face_fix());
    let cancel = CancelToken::default();
    let mut sampling = 0;
    let mut fixing = 0;
    let result = Engine::new().run(
        &recipe,
        &mut |p: &Progress| match p.stage {
            Stage::Sampling => sampling += 1,
            Stage::FixingFace { .. } => {
                fixing += 1;
                cancel.cancel();
            }
            _ => {}
        },
        &cancel,
    );
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    // The generation finished, the first face step was reported, nothing after it ran.
    assert_eq!((sampling, fixing), (4, 1));
}

#[test]
fn bad_face_fix_settings_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recipe = corner_recipe(&fixtures().join("faces-640x480.png"), tmp.path());
    recipe.face_fix = Some(FaceFixSpec {
        strength: 1.5,
        ..face_fix()
    });
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("face fix strength"), "{e}");
    recipe.face_fix = Some(FaceFixSpec {
        analysis: tmp.path().join("nowhere"),
        ..face_fix()
    });
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("antelopev2") && e.contains("scrfd_10g_bnkps.onnx"),
        "{e}"
    );
}

/// A reference-only face (both InstantID strengths 0: nothing but the identity score).
fn reference(image: &Path) -> FaceSpec {
    FaceSpec {
        image: image.to_path_buf(),
        strength: 0.0,
        keypoints: 0.0,
        analysis: analysis(),
        ..FaceSpec::default()
    }
}

#[test]
fn the_identity_score_compares_each_output_with_the_reference_face() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = fixtures().join("faces-640x480.png");
    let other = fixtures().join("faces-300x200.png");
    let mut recipe = corner_recipe(&photo, tmp.path());
    // A stale score in the input recipe is replaced.
    recipe.identity = Some(-0.5);
    recipe.face = Some(reference(&photo));
    let same = run(&recipe);
    let same_score = same.recipe.identity.unwrap();

    recipe.face = Some(reference(&other));
    let different = run(&recipe);
    let different_score = different.recipe.identity.unwrap();
    eprintln!("identity: same photo {same_score}, another face {different_score}");
    // The output is the reference photo (resized, one corner inpainted).
    assert!(same_score > 0.99, "{same_score}");
    assert!(
        1.0 - different_score > 10.0 * (1.0 - same_score),
        "another face scores {different_score}, the same one {same_score}"
    );
    // The same number as scoring the output directly against the reference's largest face.
    let direct = IdentityReference::new(analyzer(), &image::open(&other).unwrap().to_rgb8(), None)
        .unwrap()
        .score(&different.image)
        .unwrap()
        .unwrap();
    assert!((direct - different_score).abs() < 1e-6);

    // Without a face in the output there is no score; without a reference, none either.
    let dark = tmp.path().join("dark.png");
    image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([24, 22, 30]))
        .save(&dark)
        .unwrap();
    let mut faceless = corner_recipe(&dark, tmp.path());
    faceless.face = Some(reference(&photo));
    faceless.identity = Some(0.7);
    assert_eq!(run(&faceless).recipe.identity, None);
    faceless.face = None;
    assert_eq!(run(&faceless).recipe.identity, None);
}

#[test]
fn the_reference_face_must_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = fixtures().join("faces-640x480.png");
    let mut recipe = corner_recipe(&photo, tmp.path());
    let dark = tmp.path().join("dark.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([10, 10, 10]))
        .save(&dark)
        .unwrap();
    recipe.face = Some(reference(&dark));
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no face found"), "{e}");
    recipe.face = Some(FaceSpec {
        index: Some(99),
        ..reference(&photo)
    });
    let e = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("face 99"), "{e}");
}

#[test]
fn a_face_scores_one_against_itself_and_less_against_another() {
    let analyzer = analyzer();
    let photo = image::open(fixtures().join("faces-640x480.png"))
        .unwrap()
        .to_rgb8();
    let other = image::open(fixtures().join("faces-300x200.png"))
        .unwrap()
        .to_rgb8();
    let reference = IdentityReference::new(analyzer.clone(), &photo, None).unwrap();
    let norm: f32 = reference
        .embedding()
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    let itself = reference.score(&photo).unwrap().unwrap();
    assert!((itself - 1.0).abs() < 1e-5, "{itself}");
    let another = reference.score(&other).unwrap().unwrap();
    assert!(another < 0.999, "{another}");
    // Another face of the same photo (index 1) is not the largest one.
    let second = IdentityReference::new(analyzer.clone(), &photo, Some(1)).unwrap();
    assert!(second.score(&photo).unwrap().unwrap() < 0.9999);
    let blank = image::RgbImage::from_pixel(100, 80, image::Rgb([5, 5, 5]));
    assert_eq!(reference.score(&blank).unwrap(), None);
}
