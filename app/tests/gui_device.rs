//! The compute device in Settings (egui_kittest): the GPU wgpu finds is named (lavapipe here),
//! choosing "GPU (wgpu)" is saved and reaches the worker's engine switches.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::{AppHarness, IdleRunner, app, harness, open_section, step_until};
use egui_kittest::kittest::Queryable;
use kiln::gui::KilnApp;
use kiln::i18n::{Lang, tr};
use kiln::library::settings::{ComputeDevice, Settings};
use std::time::Duration;

#[test]
fn settings_name_the_gpu_and_switch_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let paths = common::app_paths(dir.path());
    let settings = Settings {
        output_dir: dir.path().join("out"),
        model_dirs: vec![dir.path().join("models")],
        ..Settings::default()
    };
    let mut harness: AppHarness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap());
    open_section(&mut harness, tr(Lang::En, "nav.settings"));
    assert_eq!(app(&harness).state.settings.device, ComputeDevice::Auto);
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the GPU probe",
        |a| a.state.gpu_adapter.is_some(),
    );
    let adapter = app(&harness).state.gpu_adapter.clone().unwrap().unwrap();
    assert!(!adapter.is_empty());
    harness.step();
    harness
        .get_by_role_and_label(
            egui::accesskit::Role::RadioButton,
            tr(Lang::En, "settings.device_gpu"),
        )
        .click();
    harness.step();
    harness.step();
    assert_eq!(app(&harness).state.settings.device, ComputeDevice::Gpu);
}
