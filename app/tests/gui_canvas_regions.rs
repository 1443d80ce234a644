//! Headless test of the canvas's region layers (egui_kittest, the whole `KilnApp` with temp
//! folders and the tiny SD1.5 fixture, generating with the real engine): a region layer is
//! added, painted and given a prompt (undoable); a second one without a prompt is left out
//! with a notice; "Use as init image" writes the region as a gray mask PNG that becomes a
//! regional prompt of the Generate form, listed there, and the job's recipe carries it.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, app, app_mut, click, harness, on_screen, open_section, step_until};
use egui::accesskit::Role;
use egui::{Key, Modifiers, Pos2};
use egui_kittest::kittest::Queryable;
use kiln::gui::canvas::LayerKind;
use kiln::gui::state::NoticeKind;
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::settings::{Language, Settings};
use kiln_inference::io::family::Family;
use kiln_inference::recipe::RegionArea;
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
    form.prompt = "a meadow".into();
    (form.width, form.height, form.aspect) = (64, 64, None);
    form.steps = 4;
    form.seed_mode = kiln::gui::form::SeedMode::Fixed;
    form.seed = 5;
    harness.step();
    open_section(&mut harness, "Canvas");
    harness
}

/// Drags the pointer over the canvas through `points` (canvas pixels).
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

/// Adds a region layer through the "Add layer" menu; returns its id.
fn add_region(harness: &mut AppHarness) -> u64 {
    click(harness, "Add layer");
    click(harness, "Region");
    let selected = app(harness).state.canvas.selected_layer().unwrap();
    assert_eq!(selected.kind, LayerKind::Region);
    selected.id
}

fn region_prompt(harness: &AppHarness, id: u64) -> String {
    let document = &app(harness).state.canvas.document;
    document.layer(id).unwrap().region().unwrap().prompt.clone()
}

#[test]
fn a_painted_region_with_a_prompt_reaches_the_real_engines_recipe_as_a_mask() {
    let env = TestEnv::new();
    let mut harness = app_on(&env);
    let region = add_region(&mut harness);
    {
        let brush = &mut app_mut(&mut harness).state.canvas.brush;
        (brush.size, brush.hardness) = (8.0, 1.0);
    }
    // A horizontal band across the upper part.
    stroke(
        &mut harness,
        &[(8.0, 16.0), (24.0, 16.0), (40.0, 16.0), (56.0, 16.0)],
    );
    let layer = app(&harness).state.canvas.document.layer(region).unwrap();
    assert_eq!(layer.pixel(32, 16)[3], 255);
    assert_eq!(layer.pixel(32, 48)[3], 0);

    // The prompt is typed in the side panel: one undo step.
    let field = harness.get_by_role(Role::MultilineTextInput);
    field.focus();
    harness.step();
    harness
        .get_by_role(Role::MultilineTextInput)
        .type_text("a puppy");
    harness.step();
    harness.step();
    assert_eq!(region_prompt(&harness, region), "a puppy");
    harness.key_press(Key::Escape);
    harness.step();
    harness.step();
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(region_prompt(&harness, region), "", "typing was one step");
    let painted = app(&harness).state.canvas.document.layer(region).unwrap();
    assert_eq!(painted.pixel(32, 16)[3], 255, "the stroke stays");
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    assert_eq!(region_prompt(&harness, region), "a puppy");

    // A second region, painted but without a prompt, is left out with a notice.
    let unnamed = add_region(&mut harness);
    assert_ne!(unnamed, region);
    stroke(&mut harness, &[(8.0, 48.0), (56.0, 48.0)]);

    click(&mut harness, "Use as init image");
    step_until(&mut harness, TIMEOUT, "the region masks", |app| {
        app.state.form.init.is_some() && !app.state.form.regions.is_empty()
    });
    let state = &app(&harness).state;
    assert!(
        state
            .notices
            .iter()
            .any(|n| n.kind == NoticeKind::Warning && n.text.contains("Region 2")),
        "{:?}",
        state.notices.iter().map(|n| &n.text).collect::<Vec<_>>()
    );
    let regions = state.form.regions.clone();
    assert_eq!(regions.len(), 1, "{regions:?}");
    assert_eq!(regions[0].prompt, "a puppy");
    assert_eq!(
        (regions[0].negative.as_ref(), regions[0].weight),
        (None, 1.0)
    );
    let RegionArea::Mask(mask_path) = regions[0].area.clone() else {
        panic!("not a mask: {:?}", regions[0].area);
    };
    assert!(mask_path.starts_with(app(&harness).canvas_dir()));
    let mask = image::open(&mask_path).unwrap();
    assert_eq!(mask.color(), image::ColorType::L8, "a gray PNG");
    let mask = mask.to_luma8();
    assert_eq!(mask.dimensions(), (64, 64));
    for (x, y) in [(12, 16), (32, 16), (52, 14), (32, 18)] {
        assert_eq!(mask.get_pixel(x, y).0, [255], "painted at ({x}, {y})");
    }
    for (x, y) in [(32, 4), (32, 30), (32, 48), (2, 16), (62, 16)] {
        assert_eq!(mask.get_pixel(x, y).0, [0], "not painted at ({x}, {y})");
    }

    // The Generate panel lists it; the real engine runs the regional job.
    open_section(&mut harness, "Generate");
    assert!(
        harness
            .query_by_label_contains("Region 1: a puppy")
            .is_some()
    );
    click(&mut harness, "Generate");
    step_until(&mut harness, TIMEOUT, "the regional job to finish", |app| {
        !app.state.jobs.ended.is_empty()
    });
    assert!(
        app(&harness).state.jobs.errors.is_empty(),
        "{:?}",
        app(&harness).state.jobs.errors
    );
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert!(result.path.is_file());
    assert_eq!(result.recipe.regions, regions);
    let bytes = std::fs::read(&result.path).unwrap();
    let saved = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(saved.regions, regions, "the PNG keeps the regions");

    // Restoring the recipe brings the region back; the ✕ removes it.
    let recipe = result.recipe.clone();
    let form = &mut app_mut(&mut harness).state.form;
    form.regions.clear();
    form.apply_recipe(&recipe);
    assert_eq!(form.regions, regions);
    assert_eq!(form.to_recipe().unwrap().regions, regions);
    harness.step();
    harness.step();
    // The region's line is at the end of the form: scroll it into the window.
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
    click(&mut harness, "Remove region 1");
    assert!(app(&harness).state.form.regions.is_empty());
}

#[test]
fn region_layers_speak_chinese() {
    let env = TestEnv::new();
    let (paths, mut settings) = (env.paths(), env.settings());
    settings.language = Language::SimplifiedChinese;
    let mut harness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, common::IdleRunner).unwrap());
    app_mut(&mut harness).set_persist(false);
    open_section(&mut harness, "画布");
    click(&mut harness, "添加图层");
    click(&mut harness, "区域");
    let selected = app(&harness).state.canvas.selected_layer().unwrap();
    assert_eq!(selected.kind, LayerKind::Region);
    harness.get_by_label("区域提示词");
    harness.get_by_role_and_label(Role::Button, "在生成中使用区域");
    harness.get_by_role_and_label(Role::Button, "矩形");
}
