//! Headless tests of the Portrait section (egui_kittest, the whole `KilnApp`): a face photo
//! dropped on the section shows the faces the tiny antelopev2 detector finds as numbered boxes,
//! picking a face changes the selection, the published InstantID adapter is converted with the
//! section's Convert button, and Generate runs InstantID on the tiny SDXL through the real
//! engine: each result shows its identity score (or "No face" when the tiny model finds none).
//! Without the face models the section says so and offers their download; a photo without a
//! face says that.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, IdleRunner, app, app_mut, click, drop_files, harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use kiln::gui::KilnApp;
use kiln::gui::state::portrait::{DetectProblem, InstantIdStatus};
use kiln::i18n::{Lang, tr};
use kiln::library::settings::Settings;
use kiln_inference::io::family::Family;
use std::path::Path;
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(300);

fn en(key: &'static str) -> &'static str {
    tr(Lang::En, key)
}

/// An app on a temp model folder holding `antelopev2/` (when `faces`) and `InstantID/` as
/// published (the pickled adapter and `ControlNetModel/`).
fn portrait_app(root: &Path, faces: bool, real_engine: bool) -> AppHarness {
    let models = root.join("models");
    copy_dir(
        &fixtures().join("tiny-instantid"),
        &models.join("InstantID"),
    );
    if faces {
        copy_dir(
            &fixtures().join("tiny-antelopev2"),
            &models.join("antelopev2"),
        );
    }
    let paths = common::app_paths(root);
    let settings = Settings {
        output_dir: root.join("out"),
        model_dirs: vec![models],
        ..Settings::default()
    };
    let mut harness = harness(move |ctx| {
        if real_engine {
            KilnApp::new(ctx, paths, settings).unwrap()
        } else {
            KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap()
        }
    });
    app_mut(&mut harness).set_persist(false);
    step_until(&mut harness, TIMEOUT, "the model scan", |app| {
        app.state.models.scanned
    });
    let form = &mut app_mut(&mut harness).state.form;
    form.set_model(fixtures().join("tiny-sdxl"), Some(Family::Sdxl), None);
    form.negative = "blurry".into();
    (form.width, form.height, form.aspect) = (96, 64, None);
    form.steps = 2;
    form.cfg = 5.0;
    form.sampler = kiln_inference::recipe::SamplerKind::Euler;
    common::open_section(&mut harness, en("nav.portrait"));
    harness
}

fn drop_photo(harness: &mut AppHarness, name: &str) {
    drop_files(harness, &[fixtures().join(name)]);
    step_until(harness, TIMEOUT, "the face detection", |app| {
        app.state.portrait.detecting.is_none()
    });
    harness.step();
}

#[test]
fn dropped_photo_shows_faces_and_generates_portraits_with_identity_scores() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = portrait_app(dir.path(), true, true);
    assert_eq!(
        app(&harness).state.section,
        kiln::gui::state::Section::Portrait
    );
    harness.get_by_label(en("portrait.drop_photo"));

    drop_photo(&mut harness, "faces-640x480.png");
    let portrait = &app(&harness).state.portrait;
    assert_eq!(portrait.problem, None);
    let faces = portrait.faces().to_vec();
    assert!(faces.len() >= 2, "{} faces", faces.len());
    // Largest first, as the engine counts them.
    let area =
        |b: &kiln::gui::state::portrait::FaceBox| (b.bbox[2] - b.bbox[0]) * (b.bbox[3] - b.bbox[1]);
    assert!(faces.windows(2).all(|w| area(&w[0]) >= area(&w[1])));
    assert_eq!(portrait.selected, 0);
    // Every face is a numbered box on the photo and a button below it.
    for n in 1..=faces.len() {
        harness.get_by_role_and_label(Role::Button, &n.to_string());
        harness.get_by_label(&format!("Face {n}"));
    }
    harness.get_by_label("Face 2").click();
    harness.step();
    assert_eq!(app(&harness).state.portrait.selected, 1);
    // A click on a box picks that face too (the last box is drawn on top of the others).
    let last = faces.len();
    harness
        .get_by_role_and_label(Role::Button, &last.to_string())
        .click();
    harness.step();
    assert_eq!(app(&harness).state.portrait.selected, last - 1);
    harness.get_by_label("Face 2").click();
    harness.step();
    assert_eq!(app(&harness).state.portrait.selected, 1);

    // The adapter as published must be converted first: Generate waits for it.
    assert!(matches!(
        app(&harness).state.portrait.instantid,
        InstantIdStatus::Unconverted(_)
    ));
    harness.get_by_label(en("portrait.needs_convert"));
    click(&mut harness, en("portrait.convert"));
    step_until(&mut harness, TIMEOUT, "the conversion", |app| {
        let portrait = &app.state.portrait;
        !portrait.converting && portrait.error.is_none()
    });
    assert!(matches!(
        app(&harness).state.portrait.instantid,
        InstantIdStatus::Ready(_)
    ));
    assert!(
        dir.path()
            .join("models/InstantID/ip-adapter.safetensors")
            .is_file()
    );

    let portrait = &mut app_mut(&mut harness).state.portrait;
    portrait.images = 2;
    portrait.prompt = "a clay figure of a person".into();
    harness.step();
    click(&mut harness, en("portrait.generate"));
    step_until(&mut harness, TIMEOUT, "the portraits", |app| {
        !app.state.portrait.results.is_empty() || app.state.portrait.error.is_some()
    });
    harness.step();
    let portrait = &app(&harness).state.portrait;
    assert_eq!(portrait.error, None);
    assert_eq!(portrait.results.len(), 2);
    let seeds: Vec<u64> = portrait.results.iter().map(|r| r.recipe.seed).collect();
    assert_eq!(seeds[1], seeds[0] + 1, "one job, consecutive seeds");
    for result in &portrait.results {
        assert!(result.path.is_file());
        let face = result.recipe.face.as_ref().unwrap();
        assert_eq!(face.index, Some(1), "the picked face");
        assert!(face.model.ends_with("InstantID"));
        assert_eq!((result.recipe.width, result.recipe.height), (96, 64));
        // The label under the result: its score, or "No face".
        let label = match result.identity() {
            Some(score) => format!("Identity {score:.2}"),
            None => en("portrait.no_face_in_result").to_owned(),
        };
        assert!(
            harness.query_all_by_label(&label).next().is_some(),
            "no label {label:?}"
        );
    }

    // A click opens the result in the Generate viewer.
    let second = app(&harness).state.portrait.results[1].path.clone();
    let images: Vec<_> = harness.query_all_by_role(Role::Image).collect();
    assert!(!images.is_empty());
    app_mut(&mut harness).route(
        kiln::gui::Action::Portrait(kiln::gui::PortraitAction::ShowResult(1)),
        &egui::Context::default(),
    );
    harness.step();
    let state = &app(&harness).state;
    assert_eq!(state.section, kiln::gui::state::Section::Generate);
    assert_eq!(state.jobs.selected_result().unwrap().path, second);
}

#[test]
fn missing_face_models_offer_the_download_and_faceless_photos_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = portrait_app(dir.path(), false, false);
    drop_photo(&mut harness, "faces-640x480.png");
    let portrait = &app(&harness).state.portrait;
    assert_eq!(portrait.problem, Some(DetectProblem::ModelsMissing));
    assert!(portrait.photo.is_some(), "the photo is shown all the same");
    assert!(!portrait.ready());
    harness.get_by_label(en("portrait.models_missing"));
    click(&mut harness, en("portrait.download_models"));
    let offers = &app(&harness).state.downloads.offers;
    assert!(
        offers
            .iter()
            .any(|o| o.ids.iter().any(|id| id == "antelopev2")),
        "{offers:?}"
    );

    // With the models, a photo without a face says so.
    copy_dir(
        &fixtures().join("tiny-antelopev2"),
        &dir.path().join("models/antelopev2"),
    );
    drop_photo(&mut harness, "init-64.png");
    let portrait = &app(&harness).state.portrait;
    match &portrait.problem {
        Some(DetectProblem::NoFace) => {
            harness.get_by_label(en("portrait.no_face"));
        }
        // The tiny random detector may see a "face" in anything; then it is far too small.
        Some(DetectProblem::TooSmall(_)) => {}
        other => panic!("unexpected: {other:?}"),
    }
    assert!(!portrait.ready());

    // A pose photo dropped on the pose card becomes the pose; Clear forgets it.
    let target = app(&harness).state.portrait.pose_drop_target.unwrap();
    harness.hover_at(target.center());
    drop_files(&mut harness, &[fixtures().join("faces-300x200.png")]);
    step_until(&mut harness, TIMEOUT, "the pose photo", |app| {
        app.state
            .portrait
            .pose
            .as_ref()
            .is_some_and(|p| p.texture.is_some())
    });
    // A taller window: the whole setup column in view.
    harness.set_size(egui::vec2(1280.0, 1400.0));
    harness.step();
    harness.step();
    let node_rect = harness
        .get_by_role_and_label(Role::Button, en("portrait.clear_pose"))
        .rect();
    eprintln!("clear at {node_rect:?}");
    click(&mut harness, en("portrait.clear_pose"));
    eprintln!(
        "pose {:?}",
        app(&harness)
            .state
            .portrait
            .pose
            .as_ref()
            .map(|p| p.path.clone())
    );
    assert!(app(&harness).state.portrait.pose.is_none());
}
