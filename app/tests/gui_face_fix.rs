//! The Generate form's Face fix checkbox (egui_kittest, whole app, a recording runner): ticking
//! it puts a face fix into the submitted recipe, and the queue card shows the face-fix steps.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::{AppHarness, app, app_mut, harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use kiln::gui::KilnApp;
use kiln::gui::state::Section;
use kiln::library::settings::Settings;
use kiln::worker::Runner;
use kiln_inference::io::family::Family;
use kiln_inference::{CancelToken, Output, Progress, Recipe, Stage};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records each recipe, reports one face-fix step, then waits until released (or cancelled).
struct FaceFixRunner {
    recipes: Arc<Mutex<Vec<Recipe>>>,
    release: Arc<AtomicBool>,
}

impl Runner for FaceFixRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.recipes.lock().unwrap().push(recipe.clone());
        let started = Instant::now();
        on_progress(&Progress {
            stage: Stage::FixingFace { face: 0, faces: 2 },
            step: 1,
            total: 3,
            image: 0,
            images: 1,
            elapsed: started.elapsed(),
            eta: None,
            preview: None,
        });
        while !self.release.load(Ordering::SeqCst) {
            if cancel.is_cancelled() {
                return Err(kiln_inference::Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(vec![Output {
            image: image::RgbImage::new(8, 8),
            recipe: recipe.clone(),
            warnings: Vec::new(),
        }])
    }
}

#[test]
fn the_face_fix_checkbox_goes_into_the_recipe_and_its_steps_show_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let paths = common::app_paths(dir.path());
    let settings = Settings {
        output_dir: dir.path().join("out"),
        model_dirs: vec![dir.path().join("models")],
        ..Settings::default()
    };
    let recipes = Arc::new(Mutex::new(Vec::new()));
    let release = Arc::new(AtomicBool::new(false));
    let runner = FaceFixRunner {
        recipes: recipes.clone(),
        release: release.clone(),
    };
    let mut harness: AppHarness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, runner).unwrap());
    {
        let form = &mut app_mut(&mut harness).state.form;
        form.set_model(
            PathBuf::from("/fake/model.safetensors"),
            Some(Family::Sd1),
            None,
        );
        form.prompt = "a portrait".into();
    }
    app_mut(&mut harness).state.section = Section::Generate;
    harness.step();
    assert!(!app(&harness).state.form.face_fix);
    harness
        .get_by_role_and_label(Role::CheckBox, "Face fix")
        .click();
    harness.step();
    assert!(app(&harness).state.form.face_fix);

    harness
        .get_by_role_and_label(Role::Button, "Generate")
        .click();
    harness.step();
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the face-fix step",
        |app| {
            app.state
                .jobs
                .progress
                .as_ref()
                .is_some_and(|p| matches!(p.stage, Stage::FixingFace { .. }))
        },
    );
    harness.step();
    assert!(
        harness
            .query_by_label_contains("Face fix: face 1/2 · step 1/3")
            .is_some(),
        "the queue card should show the face-fix step"
    );
    release.store(true, Ordering::SeqCst);
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the job to end",
        |app| !app.state.jobs.ended.is_empty(),
    );
    let recipes = recipes.lock().unwrap();
    let spec = recipes[0].face_fix.clone().unwrap();
    assert_eq!(spec.strength, 0.4);
    assert_eq!(spec.analysis, PathBuf::new());
}
