//! The desktop app (eframe/egui): `run()` opens the window with the wgpu renderer and falls back
//! to glow (OpenGL) when wgpu finds no adapter.
//!
//! Layout: `app.rs` (`KilnApp`, thin: drains events, routes actions), `state/` (what panels
//! show), `panels/` (one file per panel), `widgets/`, `services/` (background threads),
//! `form.rs` (the Generate form → `Recipe`), `theme.rs` (colours and spacing).

pub mod action;
pub mod app;
pub mod canvas;
pub mod form;
pub mod panels;
pub mod services;
pub mod state;
pub mod theme;
pub mod timing;
pub mod widgets;

pub use action::{Action, BatchAction, PortraitAction};
pub use app::{AppPaths, KilnApp};

use crate::i18n::Lang;
use crate::library::settings::Settings;
use state::{Section, language_of};

/// Initial window size, in points.
pub const WINDOW_SIZE: [f32; 2] = [1280.0, 800.0];
/// Smallest window size, in points.
pub const MIN_WINDOW_SIZE: [f32; 2] = [980.0, 640.0];

/// `KILN_SCREENSHOT=1` with `KILN_SECTION` and `KILN_LANG` opens a given section in a given
/// language without saving anything: for `scripts/screenshots.sh` only. `KILN_SUBMIT=1` also
/// queues the restored form, `KILN_SELECT_FIRST=1` selects the newest gallery image,
/// `KILN_CANVAS_BACKGROUND` / `KILN_CANVAS_SKETCH` load images into the canvas's background and
/// sketch layers (and select the first guide layer), `KILN_CANVAS_TEXT` adds a text layer,
/// `KILN_COMIC_SCRIPT` loads a story script into the Comic section and `KILN_COMIC_GENERATE=1`
/// generates its story once the presets are listed,
/// `KILN_BATCH_INPUT` runs that folder as a batch with the restored form,
/// `KILN_PORTRAIT_PHOTO` opens that face photo in the Portrait section (and with
/// `KILN_PORTRAIT_GENERATE=1` generates once its faces are found), `KILN_VIDEO_STILL` opens
/// that still in the Video section and makes a draft clip (384×216, 6 frames, 4 steps) once
/// the model is found.
#[derive(Clone, Debug, Default)]
struct ScreenshotMode {
    section: Option<Section>,
    lang: Option<Lang>,
    submit: bool,
    select_first: bool,
    canvas_background: Option<std::path::PathBuf>,
    canvas_sketch: Option<std::path::PathBuf>,
    canvas_text: Option<String>,
    batch_input: Option<std::path::PathBuf>,
    comic_script: Option<std::path::PathBuf>,
    comic_generate: bool,
    portrait_photo: Option<std::path::PathBuf>,
    portrait_generate: bool,
    video_still: Option<std::path::PathBuf>,
}

impl ScreenshotMode {
    fn from_env() -> Option<ScreenshotMode> {
        if std::env::var_os("KILN_SCREENSHOT").is_none_or(|v| v != "1") {
            return None;
        }
        let var = |name: &str| std::env::var(name).ok();
        Some(ScreenshotMode {
            section: var("KILN_SECTION").and_then(|s| Section::from_name(&s)),
            lang: var("KILN_LANG").and_then(|l| Lang::from_code(&l)),
            submit: var("KILN_SUBMIT").is_some_and(|v| v == "1"),
            select_first: var("KILN_SELECT_FIRST").is_some_and(|v| v == "1"),
            canvas_background: var("KILN_CANVAS_BACKGROUND").map(Into::into),
            canvas_sketch: var("KILN_CANVAS_SKETCH").map(Into::into),
            canvas_text: var("KILN_CANVAS_TEXT"),
            batch_input: var("KILN_BATCH_INPUT").map(Into::into),
            comic_script: var("KILN_COMIC_SCRIPT").map(Into::into),
            comic_generate: var("KILN_COMIC_GENERATE").is_some_and(|v| v == "1"),
            portrait_photo: var("KILN_PORTRAIT_PHOTO").map(Into::into),
            portrait_generate: var("KILN_PORTRAIT_GENERATE").is_some_and(|v| v == "1"),
            video_still: var("KILN_VIDEO_STILL").map(Into::into),
        })
    }
}

fn native_options(
    paths: &AppPaths,
    screenshot: bool,
    renderer: eframe::Renderer,
) -> eframe::NativeOptions {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Kiln")
        .with_app_id("kiln")
        .with_inner_size(WINDOW_SIZE)
        .with_min_inner_size(MIN_WINDOW_SIZE);
    // The same icon the installers use (packaging/icons, drawn by make_icons.py).
    if let Ok(icon) =
        eframe::icon_data::from_png_bytes(include_bytes!("../../../packaging/icons/256x256.png"))
    {
        viewport = viewport.with_icon(std::sync::Arc::new(icon));
    }
    eframe::NativeOptions {
        viewport,
        renderer,
        persist_window: !screenshot,
        persistence_path: Some(paths.config_dir.join("window")),
        // Kiln bundles its fonts (including CJK): identical text on every machine.
        system_font_fallback: false,
        ..eframe::NativeOptions::default()
    }
}

/// Opens the desktop app (with `files` opened as if dropped on it) and returns when its
/// window closes.
pub fn run(files: Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    timing::milestone("main");
    let paths = AppPaths::from_env();
    let (settings, warning) = Settings::load_or_default(&paths.settings_file());
    if let Some(warning) = &warning {
        eprintln!("kiln: {warning}");
    }
    apply_thread_setting(&settings);
    kiln_inference::kernels::pin_threads();
    let screenshot = ScreenshotMode::from_env();
    let files: Vec<std::path::PathBuf> = files
        .into_iter()
        .map(|file| std::path::absolute(&file).unwrap_or(file))
        .collect();
    let result = run_with(
        &paths,
        &settings,
        screenshot.clone(),
        &files,
        eframe::Renderer::Wgpu,
    );
    match result {
        Err(eframe::Error::Wgpu(error)) => {
            eprintln!("kiln: wgpu is not available ({error}); using OpenGL");
            run_with(
                &paths,
                &settings,
                screenshot,
                &files,
                eframe::Renderer::Glow,
            )
            .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
        }
        other => other.map_err(|e| anyhow::anyhow!("cannot open the window: {e}")),
    }
}

fn run_with(
    paths: &AppPaths,
    settings: &Settings,
    screenshot: Option<ScreenshotMode>,
    files: &[std::path::PathBuf],
    renderer: eframe::Renderer,
) -> eframe::Result {
    let options = native_options(paths, screenshot.is_some(), renderer);
    let paths = paths.clone();
    let files = files.to_vec();
    let mut settings = settings.clone();
    eframe::run_native(
        "kiln",
        options,
        Box::new(move |cc| {
            timing::milestone("window and renderer ready");
            if let Some(lang) = screenshot.as_ref().and_then(|s| s.lang) {
                settings.language = language_of(lang);
            }
            let mut app = KilnApp::new(&cc.egui_ctx, paths, settings)?;
            if !files.is_empty() {
                app.open_paths(files, None, &cc.egui_ctx);
            }
            if let Some(screenshot) = screenshot {
                app.set_persist(false);
                if let Some(section) = screenshot.section {
                    app.state.section = section;
                }
                app.state.gallery.select_first = screenshot.select_first;
                if screenshot.canvas_background.is_some() || screenshot.canvas_sketch.is_some() {
                    app.prepare_canvas_shot(screenshot.canvas_background, screenshot.canvas_sketch);
                }
                if let Some(text) = screenshot.canvas_text {
                    app.add_canvas_shot_text(&text);
                }
                // Keep the pointer off the widgets: no hover highlights or tooltips in shots.
                cc.egui_ctx
                    .send_viewport_cmd(egui::ViewportCommand::CursorPosition(egui::pos2(
                        4.0,
                        WINDOW_SIZE[1] - 4.0,
                    )));
                cc.egui_ctx
                    .send_viewport_cmd(egui::ViewportCommand::CursorVisible(false));
                if screenshot.submit
                    && let Ok(recipe) = app.state.form.to_recipe()
                {
                    app.route(Action::Submit(Box::new(recipe)), &cc.egui_ctx);
                }
                if let Some(photo) = screenshot.portrait_photo {
                    app.state.portrait.generate_when_found = screenshot.portrait_generate;
                    let open = PortraitAction::SetPhoto(photo);
                    app.route(Action::Portrait(open), &cc.egui_ctx);
                }
                if let Some(still) = screenshot.video_still {
                    let video = &mut app.state.video;
                    video.size = crate::gui::state::video::SIZES.len() - 1;
                    video.frames = 6;
                    video.steps = 4;
                    video.generate_when_ready = true;
                    let open = crate::gui::state::video::VideoAction::SetImage(still);
                    app.route(Action::Video(open), &cc.egui_ctx);
                }
                if let Some(text) = screenshot
                    .comic_script
                    .and_then(|path| std::fs::read_to_string(path).ok())
                {
                    app.state.comic.set_script(text);
                }
                app.state.comic.generate_when_ready = screenshot.comic_generate;
                if let Some(input) = screenshot.batch_input {
                    let dropped = BatchAction::Dropped {
                        paths: vec![input],
                        preset: None,
                    };
                    app.route(Action::Batch(dropped), &cc.egui_ctx);
                    app.route(Action::Batch(BatchAction::Start), &cc.egui_ctx);
                }
            }
            Ok(Box::new(app))
        }),
    )
}

/// Applies the CPU-thread setting to the compute kernels (read once, at start-up).
fn apply_thread_setting(settings: &Settings) {
    if let Some(threads) = settings.threads
        && std::env::var_os("RAYON_NUM_THREADS").is_none()
    {
        // SAFETY: called on the main thread before any other thread of this process exists
        // (the window, the worker and the services start later), so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
    }
}
