//! Headless tests of the desktop app with egui_kittest: the whole `KilnApp` (real worker,
//! gallery, settings in temp folders) driven by clicks, drops and key presses, asserting on its
//! state. No window, no GPU: kittest builds the accessibility tree without rendering.
//!
//! The real-engine tests use `tests/fixtures/tiny-sd15` (made by `make_fixtures.py`, 64×64).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::{AppHarness, SlowRunner, app, app_mut, harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use image::RgbImage;
use kiln::gui::form::SeedMode;
use kiln::gui::state::Section;
use kiln::gui::state::jobs::Ended;
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::settings::{Language, Settings};
use kiln::worker::JobState;
use kiln_inference::io::family::Family;
use kiln_inference::{Output, Recipe, Stage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(120);

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd15")
}

/// Temp folders for settings, data, outputs and models: tests never touch the user's files.
struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> Self {
        TestEnv {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn paths(&self) -> AppPaths {
        common::app_paths(self.dir.path())
    }

    fn output_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn settings(&self) -> Settings {
        Settings {
            output_dir: self.output_dir(),
            model_dirs: vec![self.dir.path().join("models")],
            ..Settings::default()
        }
    }
}

fn slow_app(env: &TestEnv, runs: Arc<AtomicUsize>) -> AppHarness {
    let (paths, settings) = (env.paths(), env.settings());
    let mut harness = harness(move |ctx| {
        // Five minutes of steps: the tests cancel it, and a loaded machine (slow frames under
        // the software renderer) must never see it finish on its own while a test still expects
        // it to run.
        let runner = SlowRunner {
            runs,
            steps: 60_000,
            step_ms: 5,
        };
        KilnApp::with_runner(ctx, paths, settings, runner).unwrap()
    });
    let form = &mut app_mut(&mut harness).state.form;
    form.set_model(
        PathBuf::from("/fake/model.safetensors"),
        Some(Family::Sd1),
        None,
    );
    form.prompt = "a clay fox".into();
    on_generate(&mut harness);
    harness
}

/// Shows Generate: the model library of these tests is empty, so a first scan that finished
/// before the test set the form's model opened the model manager.
fn on_generate(harness: &mut AppHarness) {
    app_mut(harness).state.section = Section::Generate;
    harness.step();
}

fn click_generate(harness: &mut AppHarness) {
    harness
        .get_by_role_and_label(Role::Button, "Generate")
        .click();
    harness.step();
}

#[test]
fn generate_with_the_tiny_model_shows_progress_and_lands_in_the_gallery() {
    let env = TestEnv::new();
    let (paths, settings) = (env.paths(), env.settings());
    let mut harness = harness(move |ctx| KilnApp::new(ctx, paths, settings).unwrap());
    {
        let form = &mut app_mut(&mut harness).state.form;
        form.set_model(tiny_model(), Some(Family::Sd1), None);
        form.prompt = "a clay fox, 粘土狐狸".into();
        (form.width, form.height, form.aspect) = (64, 64, None);
        form.steps = 24;
        form.seed_mode = SeedMode::Fixed;
        form.seed = 42;
    }
    on_generate(&mut harness);
    click_generate(&mut harness);
    let mut steps_seen = Vec::new();
    let mut preview_seen = false;
    step_until(&mut harness, TIMEOUT, "the job to finish", |app| {
        if let Some(progress) = &app.state.jobs.progress
            && progress.stage == Stage::Sampling
            && steps_seen.last() != Some(&progress.step)
        {
            steps_seen.push(progress.step);
        }
        preview_seen |= app.state.jobs.preview.is_some();
        !app.state.jobs.ended.is_empty()
    });
    assert_eq!(
        app(&harness).state.jobs.ended.last().map(|e| e.1),
        Some(Ended::Done(1))
    );
    assert!(!steps_seen.is_empty(), "no progress reached the UI");
    assert!(
        steps_seen.windows(2).all(|w| w[0] < w[1]),
        "progress went back: {steps_seen:?}"
    );
    assert!(preview_seen, "no live preview reached the UI");

    // The result is shown, and its file carries the recipe.
    let result = app(&harness).state.jobs.selected_result().unwrap();
    let path = result.path.clone();
    assert!(path.starts_with(env.output_dir()), "{path:?}");
    let bytes = std::fs::read(&path).unwrap();
    let recipe = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(recipe.prompt, "a clay fox, 粘土狐狸");
    assert_eq!((recipe.width, recipe.height, recipe.seed), (64, 64, 42));
    harness.get_by_label_contains("seed 42");

    // The gallery lists it.
    harness.get_by_role_and_label(Role::Tab, "Gallery").click();
    step_until(
        &mut harness,
        TIMEOUT,
        "the gallery to list the image",
        |app| app.state.gallery.entry(0).is_some_and(|e| e.path == path),
    );
    assert_eq!(app(&harness).state.section, Section::Gallery);
    assert_eq!(app(&harness).state.gallery.count, Some(1));
    harness.get_by_label("1 image");
    // Its thumbnail loads, and clicking it opens the details.
    step_until(&mut harness, TIMEOUT, "the thumbnail", |app| {
        !app.state.gallery.thumbnails.is_empty()
    });
    harness
        .get_by_role_and_label(Role::ListBoxOption, "a clay fox, 粘土狐狸")
        .click();
    harness.step();
    harness.step();
    assert!(app(&harness).state.gallery.selected.is_some());
    harness
        .get_by_role_and_label(Role::Button, "Reuse settings")
        .click();
    harness.step();
    assert_eq!(app(&harness).state.section, Section::Generate);
    assert_eq!(app(&harness).state.form.seed, 42);
}

#[test]
fn cancel_stops_the_running_job() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut harness = slow_app(&env, runs.clone());
    click_generate(&mut harness);
    step_until(&mut harness, TIMEOUT, "progress", |app| {
        app.state
            .jobs
            .progress
            .as_ref()
            .is_some_and(|p| p.step >= 3)
    });
    harness
        .get_by_role_and_label(Role::Button, "Cancel")
        .click();
    step_until(&mut harness, TIMEOUT, "the job to stop", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let state = &app(&harness).state;
    assert_eq!(state.jobs.ended.last().map(|e| e.1), Some(Ended::Cancelled));
    assert!(state.jobs.errors.is_empty());
    assert!(state.jobs.queue.is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Esc cancels too.
    click_generate(&mut harness);
    step_until(&mut harness, TIMEOUT, "the second job to run", |app| {
        app.state.jobs.progress.is_some()
    });
    harness.key_press(egui::Key::Escape);
    step_until(&mut harness, TIMEOUT, "the second job to stop", |app| {
        app.state.jobs.ended.len() == 2
    });
    assert_eq!(
        app(&harness).state.jobs.ended.last().map(|e| e.1),
        Some(Ended::Cancelled)
    );
}

#[test]
fn queue_two_jobs_and_remove_the_waiting_one() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut harness = slow_app(&env, runs.clone());
    click_generate(&mut harness);
    // Ctrl+Enter queues the second.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    step_until(&mut harness, TIMEOUT, "two jobs in the queue", |app| {
        let queue = &app.state.jobs.queue;
        queue.len() == 2
            && queue[0].state == JobState::Running
            && queue[1].state == JobState::Waiting
    });
    harness.get_by_label("2 jobs");
    let waiting = app(&harness).state.jobs.queue[1].id;
    harness
        .get_by_role_and_label(Role::Button, "Remove")
        .click();
    step_until(&mut harness, TIMEOUT, "the waiting job to go", |app| {
        app.state.jobs.queue.len() == 1
    });
    assert!(
        app(&harness)
            .state
            .jobs
            .queue
            .iter()
            .all(|job| job.id != waiting)
    );
    harness
        .get_by_role_and_label(Role::Button, "Cancel")
        .click();
    step_until(&mut harness, TIMEOUT, "the queue to empty", |app| {
        app.state.jobs.queue.is_empty() && !app.state.jobs.ended.is_empty()
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the removed job ran");
    assert_eq!(app(&harness).state.jobs.ended(waiting), None);
}

#[test]
fn language_switch_changes_labels_live_and_is_saved() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut harness = slow_app(&env, runs);
    harness.get_by_role_and_label(Role::Tab, "Settings").click();
    harness.step();
    harness.step();
    harness.get_by_label("简体中文").click();
    harness.step();
    harness.step();
    assert_eq!(
        app(&harness).state.settings.language,
        Language::SimplifiedChinese
    );
    harness.get_by_role_and_label(Role::Tab, "生成");
    harness.get_by_label("语言");
    assert!(
        harness
            .query_by_role_and_label(Role::Tab, "Generate")
            .is_none()
    );
    let settings_file = env.paths().settings_file();
    let start = Instant::now();
    while !std::fs::read_to_string(&settings_file).is_ok_and(|t| t.contains("zh-CN")) {
        assert!(start.elapsed() < TIMEOUT, "settings were not saved");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    // And back.
    harness.get_by_label("English").click();
    harness.step();
    harness.step();
    harness.get_by_role_and_label(Role::Tab, "Generate");
}

fn drop_file(harness: &mut AppHarness, path: &Path) {
    common::drop_files(harness, &[path.to_path_buf()]);
}

#[test]
fn dropping_a_png_restores_the_form_and_an_image_becomes_the_init() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut harness = slow_app(&env, runs);
    app_mut(&mut harness).state.section = Section::Settings;
    let recipe = Recipe {
        prompt: "a porcelain teapot, 青花瓷".into(),
        negative: Some("blurry".into()),
        seed: 1234,
        steps: 7,
        cfg: 5.5,
        width: 640,
        height: 448,
        sampler: kiln_inference::SamplerKind::Euler,
        ..Recipe::default()
    };
    let png = env.dir.path().join("restore.png");
    let output = Output {
        image: RgbImage::new(16, 16),
        recipe: recipe.clone(),
        warnings: Vec::new(),
    };
    std::fs::write(&png, kiln::output::encode_output(&output).unwrap()).unwrap();
    drop_file(&mut harness, &png);
    step_until(&mut harness, TIMEOUT, "the form to be restored", |app| {
        app.state.form.prompt == recipe.prompt
    });
    let state = &app(&harness).state;
    assert_eq!(state.section, Section::Generate);
    let form = &state.form;
    assert_eq!(form.negative, "blurry");
    assert_eq!((form.seed_mode, form.seed), (SeedMode::Fixed, 1234));
    assert_eq!((form.steps, form.width, form.height), (7, 640, 448));
    assert_eq!(form.cfg, 5.5);
    assert_eq!(form.sampler, kiln_inference::SamplerKind::Euler);
    // The model picked before stays: the recipe names none.
    assert_eq!(
        form.model.as_deref(),
        Some(Path::new("/fake/model.safetensors"))
    );
    harness.get_by_label("Settings restored from the image");

    // A1111 parameters work too.
    let a1111 = env.dir.path().join("a1111.png");
    let parameters = "a red fox\nNegative prompt: ugly\nSteps: 9, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 77, Size: 512x768";
    let bytes =
        kiln_inference::io::png_meta::encode_png(&RgbImage::new(8, 8), parameters, "").unwrap();
    std::fs::write(&a1111, bytes).unwrap();
    drop_file(&mut harness, &a1111);
    step_until(&mut harness, TIMEOUT, "the A1111 settings", |app| {
        app.state.form.prompt == "a red fox"
    });
    let form = &app(&harness).state.form;
    assert_eq!(
        (form.steps, form.seed, form.width, form.height),
        (9, 77, 512, 768)
    );
    assert_eq!(
        form.sampler,
        kiln_inference::SamplerKind::DpmPlusPlus2MKarras
    );

    // Any other image becomes the init image.
    let plain = env.dir.path().join("photo.png");
    RgbImage::new(32, 32).save(&plain).unwrap();
    drop_file(&mut harness, &plain);
    step_until(&mut harness, TIMEOUT, "the init image", |app| {
        app.state.form.init.as_deref() == Some(plain.as_path())
    });
    harness.get_by_label("photo.png");
}

#[test]
fn a_broken_model_shows_its_error_and_the_app_stays_usable() {
    let env = TestEnv::new();
    let (paths, settings) = (env.paths(), env.settings());
    let broken = env.dir.path().join("models").join("broken.safetensors");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, b"this is not a safetensors file at all").unwrap();
    let mut harness = harness(move |ctx| KilnApp::new(ctx, paths, settings).unwrap());
    // The model library lists it with its problem.
    step_until(&mut harness, TIMEOUT, "the model scan", |app| {
        app.state.models.scanned
    });
    assert!(
        app(&harness)
            .state
            .models
            .entries
            .iter()
            .any(|e| e.path == broken && e.problem.is_some())
    );
    {
        let form = &mut app_mut(&mut harness).state.form;
        form.set_model(broken.clone(), Some(Family::Sd1), None);
        form.prompt = "a clay fox".into();
        (form.width, form.height, form.aspect) = (64, 64, None);
        form.steps = 2;
    }
    // No usable model on disk: the app opened the model manager; go back to Generate.
    on_generate(&mut harness);
    click_generate(&mut harness);
    step_until(&mut harness, TIMEOUT, "the job to fail", |app| {
        !app.state.jobs.errors.is_empty()
    });
    assert_eq!(
        app(&harness).state.jobs.ended.last().map(|e| e.1),
        Some(Ended::Failed)
    );
    let message = app(&harness).state.jobs.errors[0].message.clone();
    assert!(!message.is_empty());
    harness.get_by_label(&message);
    harness.get_by_label("Job 1 failed");

    // Dismiss it, then generate with a good model.
    harness
        .get_by_role_and_label(Role::Button, "Dismiss")
        .click();
    harness.step();
    assert!(app(&harness).state.jobs.errors.is_empty());
    app_mut(&mut harness)
        .state
        .form
        .set_model(tiny_model(), Some(Family::Sd1), None);
    app_mut(&mut harness).state.form.width = 64;
    app_mut(&mut harness).state.form.height = 64;
    click_generate(&mut harness);
    step_until(&mut harness, TIMEOUT, "the second job", |app| {
        app.state.jobs.ended.len() == 2
    });
    assert_eq!(
        app(&harness).state.jobs.ended.last().map(|e| e.1),
        Some(Ended::Done(1))
    );
}

#[test]
fn generate_is_disabled_with_a_reason_until_the_form_is_valid() {
    let env = TestEnv::new();
    let (paths, settings) = (env.paths(), env.settings());
    let runs = Arc::new(AtomicUsize::new(0));
    let runner_runs = runs.clone();
    let mut harness = harness(move |ctx| {
        let runner = SlowRunner {
            runs: runner_runs,
            steps: 1,
            step_ms: 1,
        };
        KilnApp::with_runner(ctx, paths, settings, runner).unwrap()
    });
    step_until(&mut harness, TIMEOUT, "the model scan", |app| {
        app.state.models.scanned
    });
    assert!(app(&harness).state.form.model.is_none());
    // No model anywhere: the app starts in the model manager.
    assert_eq!(app(&harness).state.section, Section::Models);
    on_generate(&mut harness);
    let button = harness.get_by_role_and_label(Role::Button, "Generate");
    assert!(button.accesskit_node().is_disabled());
    harness.get_by_label("Choose a model first");
    click_generate(&mut harness);
    harness.step();
    assert!(app(&harness).worker().queue().is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[test]
fn last_used_settings_come_back_after_a_restart() {
    let env = TestEnv::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut first = slow_app(&env, runs.clone());
    app_mut(&mut first).state.form.prompt = "a tin robot, 铁皮机器人".into();
    app_mut(&mut first).state.form.steps = 33;
    click_generate(&mut first);
    let settings_file = env.paths().settings_file();
    let start = Instant::now();
    let saved = loop {
        first.step();
        if let Ok(settings) = Settings::load_from(&settings_file)
            && settings.last_recipe.is_some()
        {
            break settings;
        }
        assert!(start.elapsed() < TIMEOUT, "settings were not saved");
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(first);
    let paths = env.paths();
    let restarted = harness(move |ctx| {
        let runner = SlowRunner {
            runs,
            steps: 1,
            step_ms: 1,
        };
        KilnApp::with_runner(ctx, paths, saved, runner).unwrap()
    });
    let form = &app(&restarted).state.form;
    assert_eq!(form.prompt, "a tin robot, 铁皮机器人");
    assert_eq!(form.steps, 33);
    assert_eq!(
        form.model.as_deref(),
        Some(Path::new("/fake/model.safetensors"))
    );
}
