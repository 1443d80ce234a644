//! Set-up shared by the headless app tests: a kittest harness around a whole `KilnApp`,
//! stepping until a state is reached, and a runner that never generates.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used)]

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::gui::KilnApp;
use kiln::worker::Runner;
use kiln_inference::{CancelToken, Output, Progress, Recipe};
use std::time::{Duration, Instant};

/// A harness whose state is the app (set right after the harness's context exists).
pub type AppHarness = Harness<'static, Option<KilnApp>>;

/// A 1280×800 harness around a `KilnApp` built on the harness's own context, stepped once.
pub fn harness(make: impl FnOnce(&egui::Context) -> KilnApp) -> AppHarness {
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .with_max_steps(64)
        .build_ui_state(
            |ui, app: &mut Option<KilnApp>| {
                if let Some(app) = app {
                    app.frame_ui(ui);
                }
            },
            None,
        );
    let ctx = harness.ctx.clone();
    *harness.state_mut() = Some(make(&ctx));
    harness.step();
    harness
}

/// The app inside the harness.
pub fn app(harness: &AppHarness) -> &KilnApp {
    harness.state().as_ref().unwrap()
}

/// The app inside the harness, mutably.
pub fn app_mut(harness: &mut AppHarness) -> &mut KilnApp {
    harness.state_mut().as_mut().unwrap()
}

/// Steps frames (sleeping a little between them) until `done` holds; panics after `timeout`.
pub fn step_until(
    harness: &mut AppHarness,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&KilnApp) -> bool,
) {
    let start = Instant::now();
    loop {
        harness.step();
        if done(app(harness)) {
            return;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A runner for tests that generate nothing.
pub struct IdleRunner;

impl Runner for IdleRunner {
    fn run(
        &mut self,
        _recipe: &Recipe,
        _on_progress: &mut dyn FnMut(&Progress),
        _cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        Ok(Vec::new())
    }
}

/// Config and data folders of a test app under `root`.
pub fn app_paths(root: &std::path::Path) -> kiln::gui::AppPaths {
    kiln::gui::AppPaths {
        config_dir: root.join("config"),
        data_dir: root.join("data"),
    }
}

/// A file dropped onto the window where the pointer is.
#[derive(Debug)]
pub struct DroppedPath(pub std::path::PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `paths` on the window where the pointer is, in one frame.
pub fn drop_files(harness: &mut AppHarness, paths: &[std::path::PathBuf]) {
    for path in paths {
        harness
            .input_mut()
            .dropped_files
            .push(std::sync::Arc::new(DroppedPath(path.clone())));
    }
    harness.step();
}

/// A runner that takes `steps` steps of `step_ms` each, honouring cancel.
pub struct SlowRunner {
    /// Runs started.
    pub runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Steps per run.
    pub steps: usize,
    /// Milliseconds per step.
    pub step_ms: u64,
}

impl Runner for SlowRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        for step in 1..=self.steps {
            if cancel.is_cancelled() {
                return Err(kiln_inference::Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(self.step_ms));
            on_progress(&Progress {
                stage: kiln_inference::Stage::Sampling,
                step,
                total: self.steps,
                image: 0,
                images: 1,
                elapsed: started.elapsed(),
                eta: Some(Duration::from_millis(
                    self.step_ms * (self.steps - step) as u64,
                )),
                preview: Some(image::RgbImage::new(8, 8)),
            });
        }
        Ok(vec![Output {
            image: image::RgbImage::new(8, 8),
            recipe: recipe.clone(),
            warnings: Vec::new(),
        }])
    }
}

/// Opens the sidebar section labelled `label`.
pub fn open_section(harness: &mut AppHarness, label: &str) {
    harness
        .get_by_role_and_label(egui::accesskit::Role::Tab, label)
        .click();
    harness.step();
    harness.step();
}

/// Clicks the button labelled `label`.
pub fn click(harness: &mut AppHarness, label: &str) {
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, label)
        .click();
    harness.step();
    harness.step();
}

/// Where canvas pixel `(x, y)` is on the screen.
pub fn on_screen(harness: &AppHarness, x: f32, y: f32) -> egui::Pos2 {
    let canvas = &app(harness).state.canvas;
    canvas
        .view
        .ui_from_canvas(canvas.document.size(), (x, y))
        .expect("the canvas was drawn")
}
