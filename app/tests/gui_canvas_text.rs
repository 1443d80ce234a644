//! Headless tests of the canvas's text layers and of Extend (outpainting), the whole `KilnApp`
//! with temp folders and the tiny SD1.5 fixture, generating with the real engine: a text layer
//! is added with the text tool, typed into, undone and redone, dragged, written into the init
//! image and the overlay, and comes out crisp in the result; Extend grows the canvas, sets up
//! the outpainting job, and its result comes back as a new background layer.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, app, app_mut, click, harness, on_screen, open_section, step_until};
use egui::accesskit::Role;
use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable;
use kiln::gui::canvas::{LayerKind, Tool};
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::settings::{Language, Settings};
use kiln_inference::io::family::Family;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> Self {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(&fixtures().join("tiny-sd15"), &env.model());
        env
    }

    fn model(&self) -> PathBuf {
        self.dir.path().join("models/tiny-sd15")
    }

    fn paths(&self) -> AppPaths {
        common::app_paths(self.dir.path())
    }

    fn settings(&self) -> Settings {
        Settings {
            output_dir: self.dir.path().join("out"),
            model_dirs: vec![self.dir.path().join("models")],
            language: Language::English,
            ..Settings::default()
        }
    }
}

/// The app with the real engine, the tiny model at 64×64, 4 steps, a fixed seed, on the canvas.
fn app_on(env: &TestEnv) -> AppHarness {
    let (paths, settings) = (env.paths(), env.settings());
    let mut harness = harness(move |ctx| {
        KilnApp::with_runner(ctx, paths, settings, kiln_inference::Engine::new()).unwrap()
    });
    app_mut(&mut harness).set_persist(false);
    step_until(&mut harness, TIMEOUT, "the model scan", |app| {
        app.state.models.scanned
    });
    let form = &mut app_mut(&mut harness).state.form;
    form.set_model(env.model(), Some(Family::Sd1), None);
    form.prompt = "a poster".into();
    (form.width, form.height, form.aspect) = (64, 64, None);
    form.steps = 4;
    form.seed_mode = kiln::gui::form::SeedMode::Fixed;
    form.seed = 3;
    harness.step();
    open_section(&mut harness, "Canvas");
    harness
}

/// Presses and releases the primary button at canvas pixel `from`, moving to `to` on the way.
fn drag(harness: &mut AppHarness, from: (f32, f32), to: (f32, f32)) {
    let (a, b) = (
        on_screen(harness, from.0, from.1),
        on_screen(harness, to.0, to.1),
    );
    harness.hover_at(a);
    harness.step();
    harness.drag_at(a);
    harness.step();
    harness.hover_at(b);
    harness.step();
    harness.drop_at(b);
    harness.step();
}

fn text_layer(harness: &AppHarness) -> (u64, kiln::gui::canvas::text::TextSpec) {
    let document = &app(harness).state.canvas.document;
    let layer = document.first_of(LayerKind::Text).expect("a text layer");
    (layer.id, layer.text().unwrap().clone())
}

/// Inked pixels of the first text layer.
fn ink(harness: &AppHarness) -> Vec<(u32, u32)> {
    let document = &app(harness).state.canvas.document;
    let layer = document.first_of(LayerKind::Text).unwrap();
    let (w, h) = document.size();
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| layer.pixel(x, y)[3] == 255)
        .collect()
}

#[test]
fn text_is_typed_undone_moved_and_stays_crisp_in_the_generated_result() {
    let env = TestEnv::new();
    let mut harness = app_on(&env);
    click(&mut harness, "Text");
    assert_eq!(app(&harness).state.canvas.tool, Tool::Text);
    {
        let text = &mut app_mut(&mut harness).state.canvas.text;
        text.size = 20.0;
        text.color = [255, 40, 20, 255];
    }
    // A click on the canvas adds a text layer there.
    drag(&mut harness, (6.0, 8.0), (6.0, 8.0));
    let (id, spec) = text_layer(&harness);
    assert_eq!((spec.x, spec.y), (6.0, 8.0));
    assert_eq!(app(&harness).state.canvas.selected, Some(id));
    assert!(!ink(&harness).is_empty());

    // Typing replaces the text: one undo step for the whole typing.
    let field = harness.get_by_role(Role::MultilineTextInput);
    field.focus();
    harness.step();
    harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    harness.step();
    harness
        .get_by_role(Role::MultilineTextInput)
        .type_text("中かA");
    harness.step();
    harness.step();
    assert_eq!(text_layer(&harness).1.text, "中かA");
    let typed_ink = ink(&harness);
    assert!(typed_ink.len() > 40, "{} inked pixels", typed_ink.len());
    // Leave the field, then undo and redo with the keyboard.
    harness.key_press(Key::Escape);
    harness.step();
    harness.step();
    let steps = app(&harness).state.canvas.document.history().undo_steps();
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(
        text_layer(&harness).1.text,
        "Kiln",
        "the typing was one step"
    );
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    assert_eq!(text_layer(&harness).1.text, "中かA");
    assert_eq!(
        app(&harness).state.canvas.document.history().undo_steps(),
        steps
    );

    // Dragging the text moves it (one step).
    let &(gx, gy) = typed_ink.first().unwrap();
    drag(
        &mut harness,
        (gx as f32 + 0.5, gy as f32 + 0.5),
        (gx as f32 + 6.5, gy as f32 + 20.5),
    );
    let moved = text_layer(&harness).1;
    assert_eq!((moved.x, moved.y), (12.0, 28.0));
    assert_eq!(
        app(&harness).state.canvas.document.history().undo_steps(),
        steps + 1
    );
    let glyph = *ink(&harness).first().unwrap();

    // Use as init: the init PNG holds the text, and the overlay PNG too.
    app_mut(&mut harness).state.canvas.selected = Some(id);
    harness.step();
    click(&mut harness, "Use as init image");
    step_until(&mut harness, TIMEOUT, "the init and overlay PNGs", |app| {
        app.state.form.init.is_some() && app.state.form.overlay.is_some()
    });
    let form = &app(&harness).state.form;
    let init = image::open(form.init.as_ref().unwrap()).unwrap().to_rgb8();
    assert_eq!(init.get_pixel(glyph.0, glyph.1).0, [255, 40, 20]);
    let overlay_path = form.overlay.clone().unwrap();
    let overlay = image::open(&overlay_path).unwrap().to_rgba8();
    assert_eq!(overlay.get_pixel(glyph.0, glyph.1).0, [255, 40, 20, 255]);
    assert_eq!(overlay.get_pixel(60, 2).0[3], 0);

    // Generate: the lettering is in the result exactly, not through the VAE.
    open_section(&mut harness, "Generate");
    click(&mut harness, "Generate");
    step_until(&mut harness, TIMEOUT, "the job to finish", |app| {
        !app.state.jobs.ended.is_empty()
    });
    assert!(
        app(&harness).state.jobs.errors.is_empty(),
        "{:?}",
        app(&harness).state.jobs.errors
    );
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert_eq!(result.recipe.overlay.as_ref(), Some(&overlay_path));
    let output = image::open(&result.path).unwrap().to_rgb8();
    assert_eq!(output.get_pixel(glyph.0, glyph.1).0, [255, 40, 20]);
}

#[test]
fn extend_grows_the_canvas_and_the_outpainting_result_comes_back_as_a_background() {
    let env = TestEnv::new();
    let mut harness = app_on(&env);
    let init = fixtures().join("init-64.png");
    let document = &app(&harness).state.canvas.document;
    let background = document.first_of(LayerKind::Background).unwrap().id;
    let picture = image::open(&init).unwrap().to_rgba8().into_raw();
    app_mut(&mut harness)
        .state
        .canvas
        .document
        .replace_pixels(background, picture);
    {
        let extend = &mut app_mut(&mut harness).state.canvas.extend;
        (extend.left, extend.bottom, extend.overlap) = (16, 24, 8);
    }
    harness.step();
    click(&mut harness, "Extend and set up outpainting");
    step_until(&mut harness, TIMEOUT, "the outpainting init", |app| {
        app.state.form.outpaint.is_some()
    });
    let state = &app(&harness).state;
    assert_eq!(state.canvas.document.size(), (80, 88));
    assert_eq!((state.form.width, state.form.height), (80, 88));
    assert_eq!(state.form.strength, 1.0);
    let spec = state.form.outpaint.unwrap();
    assert_eq!((spec.left, spec.bottom, spec.overlap), (16, 24, 8));
    // The layers kept their pixels, moved right by 16.
    let layer = state.canvas.document.layer(background).unwrap();
    let original = image::open(&init).unwrap().to_rgba8();
    assert_eq!(layer.pixel(16 + 5, 7), original.get_pixel(5, 7).0);
    assert_eq!(layer.pixel(3, 3)[3], 0, "the new area is empty");
    let written = image::open(state.form.init.as_ref().unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(
        written.dimensions(),
        (64, 64),
        "the init is the picture before"
    );

    open_section(&mut harness, "Generate");
    click(&mut harness, "Generate");
    step_until(
        &mut harness,
        TIMEOUT,
        "the result as a new background",
        |app| {
            app.state
                .canvas
                .document
                .layers()
                .iter()
                .filter(|l| l.kind == LayerKind::Background)
                .count()
                == 2
        },
    );
    assert!(app(&harness).state.jobs.errors.is_empty());
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert_eq!(result.recipe.outpaint, Some(spec));
    let output = image::open(&result.path).unwrap().to_rgb8();
    assert_eq!(output.dimensions(), (80, 88));
    // Far from the band the picture is the original exactly.
    assert_eq!(output.get_pixel(16 + 40, 20).0, {
        let p = original.get_pixel(40, 20).0;
        [p[0], p[1], p[2]]
    });
    let document = &app(&harness).state.canvas.document;
    let top_background = document
        .layers()
        .iter()
        .rfind(|l| l.kind == LayerKind::Background)
        .unwrap();
    assert_ne!(top_background.id, background);
    assert!(
        top_background.pixel(3, 3)[3] == 255,
        "the new area is filled"
    );
}
