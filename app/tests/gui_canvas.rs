//! Headless tests of the Canvas section and of the ControlNet and inpainting controls of the
//! Generate panel (egui_kittest, the whole `KilnApp` with temp settings, data and model
//! folders). The model folder holds the tiny fixtures: `tests/fixtures/tiny-sd15` and
//! `tiny-controlnet-sd15` (a diffusers ControlNet folder, from `make_controlnet.py`) under
//! `ControlNet/`. Two tests generate with the real engine on them.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, app, app_mut, click, harness, on_screen, open_section, step_until};
use egui::accesskit::Role;
use egui::{Key, Modifiers, Pos2};
use egui_kittest::kittest::Queryable;
use kiln::gui::canvas::LayerKind;
use kiln::gui::state::Section;
use kiln::gui::{Action, AppPaths, KilnApp};
use kiln::library::settings::{Language, Settings};
use kiln::worker::Runner;
use kiln_inference::io::family::Family;
use kiln_inference::recipe::{ControlSpec, MaskSpec, Preprocessor};
use kiln_inference::{CancelToken, Output, Progress, Recipe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Temp folders: settings, data, outputs, and a model folder with the tiny SD1.5 model and
/// ControlNet.
struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> Self {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(&fixtures().join("tiny-sd15"), &env.model());
        copy_dir(&fixtures().join("tiny-controlnet-sd15"), &env.controlnet());
        env
    }

    fn model(&self) -> PathBuf {
        self.dir.path().join("models/tiny-sd15")
    }

    fn controlnet(&self) -> PathBuf {
        self.dir
            .path()
            .join("models/ControlNet/tiny-controlnet-sd15")
    }

    fn paths(&self) -> AppPaths {
        common::app_paths(self.dir.path())
    }

    fn settings(&self, language: Language) -> Settings {
        Settings {
            output_dir: self.dir.path().join("out"),
            model_dirs: vec![self.dir.path().join("models")],
            language,
            ..Settings::default()
        }
    }

    /// A copy of a fixture image in the temp folder.
    fn image(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if !path.exists() {
            std::fs::copy(fixtures().join(name), &path).unwrap();
        }
        path
    }
}

/// A runner that records the recipes it is given and returns a small image.
#[derive(Clone, Default)]
struct RecordingRunner {
    recipes: Arc<Mutex<Vec<Recipe>>>,
}

impl Runner for RecordingRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        _on_progress: &mut dyn FnMut(&Progress),
        _cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.recipes.lock().unwrap().push(recipe.clone());
        Ok(vec![Output {
            image: image::RgbImage::from_pixel(64, 64, image::Rgb([200, 120, 80])),
            recipe: recipe.clone(),
            warnings: Vec::new(),
        }])
    }
}

/// The app on `env` with `runner`, after the model scan, the tiny model picked at 64×64 and
/// 4 steps with a fixed seed.
fn app_on(env: &TestEnv, runner: impl Runner) -> AppHarness {
    let (paths, settings) = (env.paths(), env.settings(Language::English));
    let mut harness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, runner).unwrap());
    app_mut(&mut harness).set_persist(false);
    step_until(&mut harness, TIMEOUT, "the model scan", |app| {
        app.state.models.scanned
    });
    let model = env.model();
    let form = &mut app_mut(&mut harness).state.form;
    form.set_model(model, Some(Family::Sd1), None);
    form.prompt = "a clay fox".into();
    (form.width, form.height, form.aspect) = (64, 64, None);
    form.steps = 4;
    form.seed_mode = kiln::gui::form::SeedMode::Fixed;
    form.seed = 7;
    harness.step();
    harness
}

/// Scrolls the Generate form to its end (the ControlNet section).
fn scroll_form_down(harness: &mut AppHarness) {
    let prompt = harness.get_by_label("Prompt").rect();
    harness.hover_at(prompt.center());
    harness.step();
    harness.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, -5000.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: Modifiers::NONE,
    });
    for _ in 0..4 {
        harness.step();
    }
}

/// Drags the pointer over the canvas through `points` (canvas pixels) with the primary button.
fn stroke(harness: &mut AppHarness, points: &[(f32, f32)]) {
    let screen: Vec<Pos2> = points
        .iter()
        .map(|&(x, y)| on_screen(harness, x, y))
        .collect();
    let (first, last) = (screen[0], *screen.last().unwrap());
    harness.hover_at(first);
    harness.step();
    harness.drag_at(first);
    harness.step();
    for &point in &screen[1..] {
        harness.hover_at(point);
        harness.step();
    }
    harness.drop_at(last);
    harness.step();
}

/// The alpha of pixel `(x, y)` of the first layer of `kind`.
fn alpha(harness: &AppHarness, kind: LayerKind, x: u32, y: u32) -> u8 {
    let document = &app(harness).state.canvas.document;
    document.first_of(kind).unwrap().pixel(x, y)[3]
}

/// Adds a ControlNet row in Generate and picks the tiny ControlNet from the library menu.
fn add_tiny_controlnet(harness: &mut AppHarness) {
    scroll_form_down(harness);
    click(harness, "Add ControlNet");
    assert_eq!(app(harness).state.form.controls.len(), 1, "a row was added");
    scroll_form_down(harness);
    harness.get_by_value("Choose a ControlNet…").click();
    harness.step();
    harness.step();
    harness
        .get_by_label_contains("tiny-controlnet-sd15  ·")
        .click();
    harness.step();
    harness.step();
}

#[test]
fn a_sketch_is_drawn_undone_redone_and_used_as_a_scribble_guide_by_the_real_engine() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, kiln_inference::Engine::new());
    add_tiny_controlnet(&mut harness);
    assert_eq!(
        app(&harness).state.form.controls[0].model.as_deref(),
        Some(env.controlnet().as_path())
    );

    open_section(&mut harness, "Canvas");
    assert_eq!(app(&harness).state.section, Section::Canvas);
    assert_eq!(
        app(&harness).state.canvas.document.size(),
        (64, 64),
        "the canvas is the generation size"
    );
    let selected = app(&harness).state.canvas.selected_layer().unwrap().kind;
    assert_eq!(selected, LayerKind::Sketch);
    {
        let brush = &mut app_mut(&mut harness).state.canvas.brush;
        (brush.size, brush.hardness) = (4.0, 1.0);
    }
    // Two white strokes on the sketch: a horizontal and a vertical line.
    stroke(
        &mut harness,
        &[(8.0, 20.0), (24.0, 20.0), (40.0, 20.0), (56.0, 20.0)],
    );
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 20), 255);
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 44), 0);
    stroke(&mut harness, &[(32.0, 30.0), (32.0, 44.0), (32.0, 58.0)]);
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 44), 255);
    let sketch = app(&harness)
        .state
        .canvas
        .document
        .first_of(LayerKind::Sketch)
        .unwrap()
        .pixels()
        .unwrap()
        .to_vec();

    // Ctrl+Z undoes the second stroke, the Undo button the first.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 44), 0);
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 20), 255);
    click(&mut harness, "Undo");
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 20), 0);
    // Ctrl+Shift+Z redoes both: the pixels are exactly back.
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    let redone = app(&harness)
        .state
        .canvas
        .document
        .first_of(LayerKind::Sketch)
        .unwrap()
        .pixels()
        .unwrap()
        .to_vec();
    assert!(redone == sketch, "redo restores the strokes exactly");
    // Only the changed regions went to the GPU.
    let uploads = app(&harness).state.canvas.view.uploads;
    assert!(uploads.full_pixels == 0, "{uploads:?}");

    // The sketch becomes ControlNet 1's guide: white strokes on black, preprocessor none.
    click(&mut harness, "Use as ControlNet guide");
    harness
        .get_by_role_and_label(Role::Button, "ControlNet 1 · tiny-controlnet-sd15")
        .click();
    harness.step();
    step_until(&mut harness, TIMEOUT, "the guide PNG", |app| {
        app.state.form.controls[0].image.is_some()
    });
    let row = app(&harness).state.form.controls[0].clone();
    assert_eq!(row.preprocessor, Preprocessor::None);
    let guide_path = row.image.clone().unwrap();
    assert!(guide_path.starts_with(app(&harness).canvas_dir()));
    let guide = image::open(&guide_path).unwrap().to_rgb8();
    assert_eq!(guide.dimensions(), (64, 64));
    assert_eq!(guide.get_pixel(32, 20).0, [255, 255, 255]);
    assert_eq!(guide.get_pixel(32, 44).0, [255, 255, 255]);
    assert_eq!(guide.get_pixel(5, 5).0, [0, 0, 0]);
    // The row's guide layer shows it.
    let guide_layer = app(&harness).canvas_guide_layer(row.id).unwrap();
    step_until(&mut harness, TIMEOUT, "the guide layer", |app| {
        let layer = app.state.canvas.document.layer(guide_layer).unwrap();
        layer.guide_source.as_ref().map(|s| &s.image) == Some(&guide_path)
    });
    let shown = app(&harness)
        .state
        .canvas
        .document
        .layer(guide_layer)
        .unwrap()
        .pixel(32, 20);
    assert_eq!(shown[3], 255);

    // Generate with the real engine: the output carries the ControlNet in its recipe.
    open_section(&mut harness, "Generate");
    click(&mut harness, "Generate");
    step_until(
        &mut harness,
        TIMEOUT,
        "the ControlNet job to finish",
        |app| !app.state.jobs.ended.is_empty(),
    );
    assert!(
        app(&harness).state.jobs.errors.is_empty(),
        "{:?}",
        app(&harness).state.jobs.errors
    );
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert!(result.path.is_file(), "{:?}", result.path);
    assert_eq!(
        result.recipe.controls,
        [ControlSpec {
            model: env.controlnet(),
            image: guide_path.clone(),
            preprocessor: Preprocessor::None,
            scale: 1.0,
            start: 0.0,
            end: 1.0,
        }]
    );
    let bytes = std::fs::read(&result.path).unwrap();
    let saved = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(saved.controls, result.recipe.controls);

    // The result comes back to the canvas as a new background layer.
    click(&mut harness, "To canvas");
    step_until(&mut harness, TIMEOUT, "the result on the canvas", |app| {
        app.state
            .canvas
            .document
            .layers()
            .iter()
            .filter(|l| l.kind == LayerKind::Background)
            .count()
            == 2
    });
    assert_eq!(app(&harness).state.section, Section::Canvas);
    let selected = app(&harness).state.canvas.selected_layer().unwrap();
    assert_eq!(selected.kind, LayerKind::Background);
    assert!(selected.pixels().is_some());
}

#[test]
fn a_painted_mask_runs_an_inpaint_job_with_the_real_engine() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, kiln_inference::Engine::new());
    let init = env.image("init-64.png");
    app_mut(&mut harness).state.form.set_init(init.clone());
    open_section(&mut harness, "Canvas");
    click(&mut harness, "Inpaint mask");
    let selected = app(&harness).state.canvas.selected_layer().unwrap().kind;
    assert_eq!(selected, LayerKind::Mask);
    app_mut(&mut harness).state.canvas.brush.size = 16.0;
    stroke(&mut harness, &[(20.0, 32.0), (32.0, 32.0), (44.0, 32.0)]);
    assert_eq!(alpha(&harness, LayerKind::Mask, 32, 32), 255);
    assert_eq!(alpha(&harness, LayerKind::Mask, 4, 4), 0);

    click(&mut harness, "Use as inpaint mask");
    step_until(&mut harness, TIMEOUT, "the mask PNG", |app| {
        app.state.form.mask.path.is_some()
    });
    let form = &app(&harness).state.form;
    assert_eq!(form.init.as_deref(), Some(init.as_path()), "the init stays");
    let mask_path = form.mask.path.clone().unwrap();
    let mask = image::open(&mask_path).unwrap().to_luma8();
    assert_eq!(mask.get_pixel(32, 32).0, [255]);
    assert_eq!(mask.get_pixel(4, 4).0, [0]);

    open_section(&mut harness, "Generate");
    click(&mut harness, "Generate");
    step_until(&mut harness, TIMEOUT, "the inpaint job to finish", |app| {
        !app.state.jobs.ended.is_empty()
    });
    assert!(
        app(&harness).state.jobs.errors.is_empty(),
        "{:?}",
        app(&harness).state.jobs.errors
    );
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert!(result.path.is_file());
    assert_eq!(
        result.recipe.mask,
        Some(MaskSpec {
            path: mask_path,
            blur: 4,
            only_masked: false,
            padding: 32,
        })
    );
    assert_eq!(result.recipe.init.as_ref().map(|i| &i.path), Some(&init));
    // Outside the mask the init image is kept (pasted back over a 4-pixel blur).
    let output = image::open(&result.path).unwrap().to_rgb8();
    let original = image::open(&init).unwrap().to_rgb8();
    let corner = |image: &image::RgbImage| image.get_pixel(2, 2).0;
    let diff = corner(&output)
        .iter()
        .zip(corner(&original))
        .map(|(a, b)| a.abs_diff(b))
        .max()
        .unwrap();
    assert!(diff <= 2, "corner changed by {diff}");
}

#[test]
fn a_dropped_picture_becomes_a_background_layer_the_tools_work_and_it_becomes_the_init_image() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, common::IdleRunner);
    open_section(&mut harness, "Canvas");
    // A picture dropped on the canvas is a new background layer, selected.
    let picture = env.image("init-64.png");
    let canvas = harness.get_by_role_and_label(Role::Canvas, "Canvas").rect();
    drop_in(&mut harness, canvas, &picture);
    step_until(&mut harness, TIMEOUT, "the dropped picture", |app| {
        let selected = app.state.canvas.selected_layer().unwrap();
        selected.kind == LayerKind::Background && selected.pixels().is_some()
    });
    let original = image::open(&picture).unwrap().to_rgba8();
    let layer = app(&harness).state.canvas.selected_layer().unwrap();
    assert_eq!(layer.pixels().unwrap(), original.as_raw().as_slice());

    // The picker takes a colour from the picture; a line and a fill paint on the sketch.
    click(&mut harness, "Pick");
    let point = on_screen(&harness, 10.5, 10.5);
    harness.hover_at(point);
    harness.step();
    harness.drag_at(point);
    harness.step();
    harness.drop_at(point);
    harness.step();
    let [r, g, b, _] = original.get_pixel(10, 10).0;
    assert_eq!(
        app(&harness).state.canvas.brush.color,
        egui::Color32::from_rgb(r, g, b)
    );
    click(&mut harness, "Sketch");
    click(&mut harness, "Line");
    {
        let brush = &mut app_mut(&mut harness).state.canvas.brush;
        (brush.color, brush.size, brush.hardness) = (egui::Color32::WHITE, 3.0, 1.0);
    }
    // A line across the canvas at y = 50 (from just outside to just outside).
    stroke(&mut harness, &[(-2.0, 50.5), (30.0, 50.5), (66.0, 50.5)]);
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 50), 255);
    assert_eq!(alpha(&harness, LayerKind::Sketch, 32, 40), 0);
    click(&mut harness, "Fill");
    app_mut(&mut harness).state.canvas.brush.color = egui::Color32::from_rgb(0, 0, 255);
    stroke(&mut harness, &[(32.0, 20.0)]);
    let document = &app(&harness).state.canvas.document;
    let sketch = document.first_of(LayerKind::Sketch).unwrap();
    assert_eq!(sketch.pixel(5, 5), [0, 0, 255, 255]);
    assert_eq!(sketch.pixel(32, 50), [255, 255, 255, 255]);
    assert_eq!(sketch.pixel(32, 60), [0; 4], "the fill stops at the line");
    assert_eq!(document.history().undo_steps(), 3, "drop, line, fill");

    // "Use as init image" on the sketch: the picture with the sketch over it.
    click(&mut harness, "Use as init image");
    step_until(&mut harness, TIMEOUT, "the init PNG", |app| {
        app.state.form.init.is_some()
    });
    let init = app(&harness).state.form.init.clone().unwrap();
    assert!(init.starts_with(app(&harness).canvas_dir()));
    let made = image::open(&init).unwrap().to_rgb8();
    assert_eq!(made.get_pixel(5, 5).0, [0, 0, 255]);
    assert_eq!(made.get_pixel(32, 50).0, [255, 255, 255]);
    // Below the line the sketch is empty: the picture shows.
    let [r, g, b, _] = original.get_pixel(32, 60).0;
    assert_eq!(made.get_pixel(32, 60).0, [r, g, b]);
}

/// Drops `file` onto the widget labelled `label` (the pointer over it, as while dragging).
fn drop_on(harness: &mut AppHarness, label: &str, file: &Path) {
    let rect = harness.get_by_label(label).rect();
    drop_in(harness, rect, file);
}

/// Drops `file` at the centre of `rect`.
fn drop_in(harness: &mut AppHarness, rect: egui::Rect, file: &Path) {
    harness.hover_at(rect.center());
    harness.step();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(file.to_path_buf())));
    harness.step();
    harness.step();
}

/// A file dropped onto the window where the pointer is.
#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn controlnet_rows_and_the_mask_in_the_generate_form_reach_the_recipe() {
    let env = TestEnv::new();
    let runner = RecordingRunner::default();
    let recipes = runner.recipes.clone();
    let mut harness = app_on(&env, runner);
    add_tiny_controlnet(&mut harness);
    // Without a guide, Generate says what is missing.
    harness.get_by_label("ControlNet 1: choose a guide image");

    // A guide dropped on the card, the canny preprocessor, a scale, start/end, guess mode.
    let guide = env.image("guide-canny-64.png");
    drop_on(&mut harness, "No guide image", &guide);
    assert_eq!(
        app(&harness).state.form.controls[0].image.as_deref(),
        Some(guide.as_path())
    );
    harness.get_by_value("None (image is the guide)").click();
    harness.step();
    harness.step();
    harness
        .get_by_role_and_label(Role::Button, "Canny edges")
        .click();
    harness.step();
    harness
        .get_by_role_and_label(Role::Slider, "Scale")
        .set_value_accesskit(0.6);
    harness.step();
    {
        let row = &mut app_mut(&mut harness).state.form.controls[0];
        (row.start, row.end) = (0.1, 0.8);
    }
    harness
        .get_by_role_and_label(Role::CheckBox, "Guess mode")
        .click();
    harness.step();
    // An init image and a mask dropped on the mask controls.
    let init = env.image("init-64.png");
    let mask = env.image("mask-64.png");
    app_mut(&mut harness).state.form.set_init(init.clone());
    harness.step();
    drop_on(&mut harness, "Choose mask…", &mask);
    harness
        .get_by_role_and_label(Role::CheckBox, "Only masked area")
        .click();
    harness.step();
    click(&mut harness, "Generate");
    step_until(&mut harness, TIMEOUT, "the job", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let recipe = recipes.lock().unwrap()[0].clone();
    assert_eq!(recipe.controls.len(), 1);
    let control = &recipe.controls[0];
    assert_eq!(control.model, env.controlnet());
    assert_eq!(control.image, guide);
    assert_eq!(control.preprocessor, Preprocessor::Canny);
    assert!((control.scale - 0.6).abs() < 1e-6, "{}", control.scale);
    assert_eq!((control.start, control.end), (0.1, 0.8));
    assert!(recipe.guess_mode);
    assert_eq!(
        recipe.mask,
        Some(MaskSpec {
            path: mask.clone(),
            blur: 4,
            only_masked: true,
            padding: 32,
        })
    );

    // Reusing settings whose guide is gone marks it and keeps Generate off.
    let mut gone = recipe.clone();
    gone.controls[0].image = env.dir.path().join("deleted-guide.png");
    let ctx = harness.ctx.clone();
    app_mut(&mut harness).route(Action::ReuseSettings(Box::new(gone)), &ctx);
    step_until(&mut harness, TIMEOUT, "the missing guide marked", |app| {
        app.state.form.controls[0].image_missing
    });
    assert!(app(&harness).state.form.to_recipe().is_err());
    harness.get_by_label_contains("Not on this computer");
    assert!(app(&harness).state.form.guess_mode);
    assert!(app(&harness).state.form.mask.only_masked);
}

#[test]
fn the_canvas_speaks_chinese() {
    let env = TestEnv::new();
    let (paths, settings) = (env.paths(), env.settings(Language::SimplifiedChinese));
    let mut harness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, common::IdleRunner).unwrap());
    app_mut(&mut harness).set_persist(false);
    open_section(&mut harness, "画布");
    harness.get_by_role_and_label(Role::Button, "画笔");
    harness.get_by_role_and_label(Role::Button, "用作 ControlNet 引导图");
    harness.get_by_label("重绘蒙版");
}

/// Times of one measured frame.
struct FrameTimes {
    /// `harness.step()`: app logic, the canvas (brush dabs, texture updates queued) and UI.
    step_ms: Vec<f64>,
    /// `harness.render()`: texture uploads, drawing and reading the frame back (lavapipe).
    render_ms: Vec<f64>,
    /// Pixels sent to the GPU per frame.
    uploaded: Vec<usize>,
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// One stroke of `frames` frames, the pointer moving `step_points` per frame along a wave;
/// `full_upload` marks the whole layer changed each frame (what re-uploading the image per
/// stroke would cost).
fn measure_stroke(
    harness: &mut AppHarness,
    frames: usize,
    step_points: f32,
    full_upload: bool,
) -> FrameTimes {
    let rect = app(harness).state.canvas.view.image_rect.unwrap();
    let start = rect.center() - egui::vec2(frames as f32 * step_points / 2.0, 0.0);
    let at = |i: usize| {
        let x = i as f32 * step_points;
        start + egui::vec2(x, (x / 40.0).sin() * 60.0)
    };
    harness.hover_at(at(0));
    harness.step();
    harness.drag_at(at(0));
    harness.step();
    harness.render().unwrap();
    let mut times = FrameTimes {
        step_ms: Vec::new(),
        render_ms: Vec::new(),
        uploaded: Vec::new(),
    };
    for i in 1..=frames {
        harness.hover_at(at(i));
        if full_upload {
            let document = &mut app_mut(harness).state.canvas.document;
            let (width, height) = document.size();
            for layer in document.layers_mut() {
                if layer.kind == LayerKind::Sketch {
                    layer.mark_dirty(kiln::gui::canvas::PixelRect::full(width, height));
                }
            }
        }
        let started = std::time::Instant::now();
        harness.step();
        let stepped = std::time::Instant::now();
        harness.render().unwrap();
        let rendered = std::time::Instant::now();
        times
            .step_ms
            .push((stepped - started).as_secs_f64() * 1000.0);
        times
            .render_ms
            .push((rendered - stepped).as_secs_f64() * 1000.0);
        let uploads = app(harness).state.canvas.view.uploads;
        times
            .uploaded
            .push(uploads.partial_pixels + uploads.full_pixels);
    }
    harness.drop_at(at(frames));
    harness.step();
    harness.render().unwrap();
    times
}

/// Frame times of brush strokes on a 4096×4096 canvas, with partial texture updates and, for
/// comparison, with the whole layer re-uploaded every frame. Prints a table; run with
/// `cargo test --release -p kiln --test gui_canvas -- --ignored --nocapture measure`.
#[test]
#[ignore = "measurement: prints frame times of strokes on a 4K canvas"]
fn measure_stroke_frame_times_on_a_4k_canvas() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, common::IdleRunner);
    {
        let form = &mut app_mut(&mut harness).state.form;
        (form.width, form.height) = (4096, 4096);
    }
    open_section(&mut harness, "Canvas");
    assert_eq!(app(&harness).state.canvas.document.size(), (4096, 4096));
    {
        let brush = &mut app_mut(&mut harness).state.canvas.brush;
        (brush.size, brush.hardness) = (48.0, 0.7);
    }
    // The first stroke creates the layer's textures (one whole upload): not measured.
    measure_stroke(&mut harness, 5, 8.0, false);
    let frames = 60;
    println!(
        "4096×4096 canvas, brush 48 px, {frames} frames per stroke, pointer 8 points per frame"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>11} {:>11} {:>14}",
        "case", "step p50", "step p95", "render p50", "render p95", "pixels/frame"
    );
    for (name, fit, full) in [
        ("fit to window, partial updates", true, false),
        ("fit to window, whole re-upload", true, true),
        ("100% zoom, partial updates", false, false),
        ("100% zoom, whole re-upload", false, true),
    ] {
        {
            let view = &mut app_mut(&mut harness).state.canvas.view;
            if fit {
                view.fit();
            } else {
                (view.fit, view.zoom, view.pan) = (false, 1.0, egui::Vec2::ZERO);
            }
        }
        harness.step();
        let times = measure_stroke(&mut harness, frames, 8.0, full);
        let uploaded = times.uploaded.iter().sum::<usize>() / times.uploaded.len();
        println!(
            "{name:<34} {:>7.2} ms {:>7.2} ms {:>8.2} ms {:>8.2} ms {:>14}",
            percentile(&times.step_ms, 0.5),
            percentile(&times.step_ms, 0.95),
            percentile(&times.render_ms, 0.5),
            percentile(&times.render_ms, 0.95),
            uploaded
        );
        if !full {
            assert!(uploaded < 4096 * 4096 / 50, "partial updates stay small");
        }
    }
    // Idle frames for reference: nothing changes, nothing is uploaded.
    let mut idle = FrameTimes {
        step_ms: Vec::new(),
        render_ms: Vec::new(),
        uploaded: Vec::new(),
    };
    for _ in 0..20 {
        let started = std::time::Instant::now();
        harness.step();
        let stepped = std::time::Instant::now();
        harness.render().unwrap();
        idle.step_ms
            .push((stepped - started).as_secs_f64() * 1000.0);
        idle.render_ms
            .push(stepped.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "{:<34} {:>7.2} ms {:>7.2} ms {:>8.2} ms {:>8.2} ms {:>14}",
        "idle frame (100% zoom)",
        percentile(&idle.step_ms, 0.5),
        percentile(&idle.step_ms, 0.95),
        percentile(&idle.render_ms, 0.5),
        percentile(&idle.render_ms, 0.95),
        0
    );
}

/// Rows of `kind`'s first layer painted (alpha > 0) in column `x`.
fn thickness(harness: &AppHarness, kind: LayerKind, x: u32) -> usize {
    (0..64).filter(|&y| alpha(harness, kind, x, y) > 0).count()
}

/// A stylus reports pressure as the force of touch events: a light stroke is thinner.
fn touch_force(harness: &mut AppHarness, force: f32) {
    harness.event(egui::Event::Touch {
        device_id: egui::TouchDeviceId(1),
        id: egui::TouchId(1),
        phase: egui::TouchPhase::Move,
        pos: on_screen(harness, 1.0, 1.0),
        force: Some(force),
    });
    harness.step();
}

#[test]
fn stylus_pressure_makes_thinner_strokes() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, RecordingRunner::default());
    open_section(&mut harness, "Canvas");
    {
        let brush = &mut app_mut(&mut harness).state.canvas.brush;
        (brush.size, brush.hardness) = (12.0, 1.0);
    }
    touch_force(&mut harness, 1.0);
    stroke(&mut harness, &[(8.0, 16.0), (32.0, 16.0), (56.0, 16.0)]);
    let full = thickness(&harness, LayerKind::Sketch, 32);
    touch_force(&mut harness, 0.25);
    stroke(&mut harness, &[(8.0, 48.0), (32.0, 48.0), (56.0, 48.0)]);
    let light = (32..64)
        .filter(|&y| alpha(&harness, LayerKind::Sketch, 32, y) > 0)
        .count();
    let full_rows = (0..32)
        .filter(|&y| alpha(&harness, LayerKind::Sketch, 32, y) > 0)
        .count();
    assert_eq!(full, full_rows, "the second stroke stays in the lower half");
    assert!(
        full_rows >= 10,
        "a full-pressure 12 px stroke: {full_rows} rows"
    );
    assert!(
        light > 0 && light * 2 < full_rows,
        "a quarter-pressure stroke is thinner: {light} rows vs {full_rows}"
    );
}
