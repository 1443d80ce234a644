//! Headless tests of the Batch section (egui_kittest, the whole `KilnApp`): a folder dropped on
//! the window runs through the real engine with the tiny SD1.5 fixture, bad files fail with a
//! reason, a second run skips what is done; pause, resume and cancel with a slow runner.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, SlowRunner, app, app_mut, drop_files, harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use kiln::batch::FailReason;
use kiln::gui::KilnApp;
use kiln::gui::state::Section;
use kiln::gui::state::batch::BatchStyle;
use kiln::library::settings::Settings;
use kiln_inference::Stage;
use kiln_inference::io::family::Family;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(240);

/// Temp settings, data, a model folder with the tiny SD1.5 fixture, and an album of photos.
struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> Self {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(&fixtures().join("tiny-sd15"), &env.model());
        let album = env.album();
        std::fs::create_dir_all(album.join("trip")).unwrap();
        std::fs::copy(fixtures().join("photo-96x64.png"), album.join("beach.png")).unwrap();
        std::fs::copy(fixtures().join("init-64.png"), album.join("trip/cat.png")).unwrap();
        std::fs::write(album.join("notes.jpg"), b"not a picture at all").unwrap();
        env
    }

    fn model(&self) -> PathBuf {
        self.dir.path().join("models/tiny-sd15")
    }

    fn album(&self) -> PathBuf {
        self.dir.path().join("album")
    }

    fn app(&self, runner: Option<SlowRunner>) -> AppHarness {
        let paths = common::app_paths(self.dir.path());
        let settings = Settings {
            output_dir: self.dir.path().join("out"),
            model_dirs: vec![self.dir.path().join("models")],
            ..Settings::default()
        };
        let mut harness = harness(move |ctx| match runner {
            Some(runner) => KilnApp::with_runner(ctx, paths, settings, runner).unwrap(),
            None => KilnApp::new(ctx, paths, settings).unwrap(),
        });
        app_mut(&mut harness).set_persist(false);
        let form = &mut app_mut(&mut harness).state.form;
        form.set_model(self.model(), Some(Family::Sd1), None);
        form.prompt = "a clay figure".into();
        (form.width, form.height, form.aspect) = (64, 64, None);
        form.steps = 4;
        harness
    }
}

fn click(harness: &mut AppHarness, label: &str) {
    harness.get_by_role_and_label(Role::Button, label).click();
    harness.step();
}

fn wait_for_end(harness: &mut AppHarness) {
    step_until(harness, TIMEOUT, "the batch to end", |app| {
        app.state
            .batch
            .run
            .as_ref()
            .is_some_and(|run| run.ended.is_some())
    });
}

fn pngs_in(folder: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(folder) {
        let name = entry
            .strip_prefix(folder)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".png") && !name.starts_with(".kiln-batch") {
            found.push(name);
        }
    }
    found.sort();
    found
}

fn walk(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_dropped_folder_runs_through_the_engine_and_a_second_run_skips_it() {
    let env = TestEnv::new();
    let mut harness = env.app(None);
    drop_files(&mut harness, &[env.album()]);
    let state = &app(&harness).state;
    assert_eq!(state.section, Section::Batch);
    assert_eq!(state.batch.input.as_deref(), Some(env.album().as_path()));
    assert_eq!(state.batch.style, BatchStyle::Form);
    click(&mut harness, "Start batch");
    let mut saw_sampling = false;
    step_until(&mut harness, TIMEOUT, "the batch to end", |app| {
        saw_sampling |= app
            .state
            .jobs
            .progress
            .as_ref()
            .is_some_and(|p| p.stage == Stage::Sampling);
        app.state
            .batch
            .run
            .as_ref()
            .is_some_and(|run| run.ended.is_some())
    });
    assert!(saw_sampling, "the batch's engine progress reached the UI");
    let run = app(&harness).state.batch.run.as_ref().unwrap();
    assert_eq!(run.done, 2);
    assert_eq!(run.results.len(), 2);
    assert_eq!(run.failed.len(), 1);
    assert_eq!(run.failed[0].input, "notes.jpg");
    assert!(
        matches!(run.failed[0].reason, FailReason::NotAnImage { .. }),
        "{:?}",
        run.failed[0]
    );
    let output = run.output.clone().unwrap();
    let written = pngs_in(&output);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written[0].starts_with("beach-"), "{written:?}");
    assert!(written[1].starts_with("trip/cat-"), "{written:?}");
    // The outputs carry their recipe, with the input photo as the init image.
    let bytes = std::fs::read(output.join(&written[0])).unwrap();
    let recipe = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(recipe.prompt, "a clay figure");
    assert!(
        recipe.init.unwrap().path.ends_with("album/beach.png"),
        "the recipe names the input"
    );
    let before: Vec<_> = walk(&output)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();

    // Again: everything done is skipped, nothing is rewritten.
    click(&mut harness, "Clear");
    click(&mut harness, "Start batch");
    wait_for_end(&mut harness);
    let run = app(&harness).state.batch.run.as_ref().unwrap();
    assert_eq!((run.done, run.skipped, run.failed.len()), (0, 2, 1));
    assert_eq!(pngs_in(&output), written);
    let after: Vec<_> = walk(&output)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after);
    // The album is untouched.
    assert_eq!(walk(&env.album()).len(), 3);
}

#[test]
fn pause_holds_the_batch_and_cancel_stops_it_without_partial_files() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let runner = SlowRunner {
        runs: runs.clone(),
        steps: 60_000,
        step_ms: 5,
    };
    let mut harness = env.app(Some(runner));
    app_mut(&mut harness).state.section = Section::Batch;
    harness.step();
    drop_files(&mut harness, &[env.album()]);
    click(&mut harness, "Start batch");
    step_until(&mut harness, TIMEOUT, "the first file to start", |app| {
        app.state
            .batch
            .run
            .as_ref()
            .is_some_and(|run| run.current.is_some())
    });
    assert!(app(&harness).state.jobs.running().is_some());
    // The progress lines above the buttons can grow between the frame that placed the button
    // and the click: click again while it still says Pause (a missed click changes nothing).
    let paused = |harness: &AppHarness| {
        app(harness)
            .state
            .batch
            .run
            .as_ref()
            .is_some_and(|run| run.control.is_paused())
    };
    for _ in 0..20 {
        if paused(&harness) {
            break;
        }
        if let Some(button) = harness.query_by_role_and_label(Role::Button, "Pause") {
            button.click();
        }
        harness.step();
        harness.step();
    }
    assert!(paused(&harness));
    // Paused: the step counter stops.
    std::thread::sleep(Duration::from_millis(300));
    harness.step();
    let step = |harness: &AppHarness| app(harness).state.jobs.progress.as_ref().map(|p| p.step);
    let paused_at = step(&harness);
    std::thread::sleep(Duration::from_millis(300));
    harness.step();
    assert_eq!(step(&harness), paused_at);
    click(&mut harness, "Resume");
    step_until(&mut harness, TIMEOUT, "steps to go on", |app| {
        app.state.jobs.progress.as_ref().map(|p| p.step) != paused_at
    });
    click(&mut harness, "Cancel");
    wait_for_end(&mut harness);
    let run = app(&harness).state.batch.run.as_ref().unwrap();
    assert!(run.ended.as_ref().unwrap().cancelled);
    assert_eq!(run.done, 0);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "no file after the cancelled one"
    );
    let output = run.output.clone().unwrap();
    assert!(pngs_in(&output).is_empty());
    // The claim of the abandoned file is released.
    let claims = output.join(".kiln-batch/claims");
    let left = std::fs::read_dir(&claims).map_or(0, |d| d.count());
    assert_eq!(left, 0);
}
