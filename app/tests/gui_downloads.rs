//! The Models panel's downloads, headless with egui_kittest against the in-process Hub stand-in
//! on 127.0.0.1 (tests/hub): the licence is shown before a download, the download runs off the
//! UI thread with progress and ends installed (and in the library after the rescan), a slow one
//! is cancelled from its Cancel button, and an installed model is removed. No internet.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;
mod hub;

use common::{IdleRunner, app, app_mut, harness, step_until};
use egui_kittest::kittest::Queryable;
use hub::{HubServer, Served, bytes};
use kiln::gui::KilnApp;
use kiln::gui::state::Section;
use kiln::library::catalog::{CatalogFile, CatalogModel};
use kiln::library::settings::Settings;
use std::path::Path;
use std::time::Duration;

// Cancel is seen between chunks: a stalled read can take up to the client's 60 s timeout.
const TIMEOUT: Duration = Duration::from_secs(150);

fn lora(served: &Served, id: &str, non_commercial: bool) -> CatalogModel {
    CatalogModel {
        id: id.into(),
        name: format!("Test model {id}"),
        kind: "lora".into(),
        family: Some("sd1".into()),
        repo: served.repo.clone(),
        license: "test-licence-1.0".into(),
        non_commercial,
        files: vec![CatalogFile {
            path: served.path.clone(),
            sha256: Some(served.sha256()),
            ..CatalogFile::default()
        }],
        ..CatalogModel::default()
    }
}

fn app_with(root: &Path, endpoint: &str, catalog: Vec<CatalogModel>) -> common::AppHarness {
    let settings = Settings {
        output_dir: root.join("out"),
        model_dirs: vec![root.join("models")],
        hub_endpoint: Some(endpoint.to_owned()),
        ..Settings::default()
    };
    let paths = common::app_paths(root);
    let mut harness = harness(|ctx| {
        let mut app = KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap();
        app.set_persist(false);
        app.state.downloads.catalog = catalog;
        app.state.section = Section::Models;
        app.refresh_download_states();
        app
    });
    step_until(&mut harness, TIMEOUT, "install states", |app| {
        app.state.downloads.states.len() == app.state.downloads.catalog.len()
    });
    harness
}

#[test]
fn download_button_shows_the_licence_then_installs_the_model() {
    let served = Served::new(
        "kiln/tiny-lora",
        "tiny_lora.safetensors",
        bytes(150_000, 21),
    );
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app_with(
        dir.path(),
        &server.endpoint,
        vec![lora(&served, "tiny-lora", true)],
    );
    harness.get_by_label("NOT FOR COMMERCIAL USE");
    harness.get_by_label("Download").click();
    harness.step(); // The click: the licence is asked for.
    harness.step(); // The licence card.
    // Nothing starts before the licence was shown and agreed to.
    assert!(app(&harness).state.downloads.active.is_empty());
    assert!(server.seen().is_empty());
    harness.get_by_label_contains("Licence: test-licence-1.0");
    harness.get_by_label_contains("Not for commercial use:");
    harness.get_by_label("Agree and download").click();
    step_until(&mut harness, TIMEOUT, "download finished", |app| {
        app.state.downloads.installed("tiny-lora") && app.state.downloads.active.is_empty()
    });
    let installed = dir
        .path()
        .join("models/loras/tiny-lora/tiny_lora.safetensors");
    assert_eq!(std::fs::read(&installed).unwrap(), served.content);
    assert!(
        app(&harness)
            .state
            .notices
            .iter()
            .any(|n| n.text.contains("downloaded and verified")),
        "{:?}",
        app(&harness).state.notices
    );
    // The library is scanned again and lists the new file.
    step_until(&mut harness, TIMEOUT, "rescan", |app| {
        app.state.models.entries.iter().any(|e| e.path == installed)
    });
    harness.get_by_label("Installed");

    // Remove deletes the files and the row offers the download again.
    harness.get_by_label("Remove").click();
    step_until(&mut harness, TIMEOUT, "removed", |app| {
        !app.state.downloads.installed("tiny-lora")
    });
    assert!(!installed.exists());
    harness.step();
    harness.get_by_label("Download");
}

#[test]
fn slow_download_shows_progress_and_cancels() {
    let mut served = Served::new("kiln/slow-lora", "slow.safetensors", bytes(2_000_000, 22));
    served.faults.trickle = Some(4_000);
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut harness = app_with(
        dir.path(),
        &server.endpoint,
        vec![lora(&served, "slow-lora", false)],
    );
    harness.get_by_label("Download").click();
    harness.step(); // The click: the licence is asked for.
    harness.step(); // The licence card.
    harness.get_by_label("Agree and download").click();
    step_until(&mut harness, TIMEOUT, "progress", |app| {
        app.state
            .downloads
            .active
            .get("slow-lora")
            .and_then(|a| a.progress.as_ref())
            .is_some_and(|p| p.done_bytes > 0)
    });
    // The UI stays responsive while the bytes trickle in; the row shows speed and ETA.
    step_until(&mut harness, TIMEOUT, "speed", |app| {
        app.state
            .downloads
            .active
            .get("slow-lora")
            .and_then(|a| a.progress.as_ref())
            .is_some_and(|p| p.bytes_per_sec > 0.0 && p.eta.is_some())
    });
    harness.step();
    harness.get_by_label_contains("left");
    harness.get_by_label("Cancel").click();
    step_until(&mut harness, TIMEOUT, "cancelled", |app| {
        app.state.downloads.active.is_empty()
            && app
                .state
                .downloads
                .states
                .get("slow-lora")
                .is_some_and(|s| matches!(s, kiln::library::download::InstallState::Partial { .. }))
    });
    let dest = dir.path().join("models/loras/slow-lora/slow.safetensors");
    assert!(!dest.exists(), "nothing under the final name");
    assert!(app_mut(&mut harness).state.downloads.errors.is_empty());
    harness.step();
    // A partial download offers to resume.
    harness.get_by_label("Resume");
}
