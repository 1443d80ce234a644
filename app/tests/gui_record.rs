//! Headless tests of the creation record in the Gallery: "Export record…" writes the selected
//! entry's chain (parent → child) as a folder under `records/`, and "Compare with…" shows two
//! entries side by side with their differing settings and exports the comparison.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::{AppHarness, IdleRunner, app, harness, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use kiln::gui::state::Section;
use kiln::gui::state::gallery::{ExportStatus, Thumb};
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::gallery::Gallery;
use kiln::library::settings::Settings;
use kiln_inference::Recipe;
use kiln_inference::io::png_meta::encode_png;
use kiln_inference::recipe::InitImage;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn write_png(path: &Path, recipe: &Recipe, shade: u8) {
    let image = image::RgbImage::from_pixel(16, 16, image::Rgb([shade, 90, 40]));
    let json = serde_json::to_string(recipe).unwrap();
    std::fs::write(path, encode_png(&image, "", &json).unwrap()).unwrap();
}

/// An app whose gallery holds a parent (txt2img) and a child made from it (img2img), with the
/// Gallery open and the child selected. Returns the harness, the output folder and both paths.
fn app_with_chain(dir: &Path) -> (AppHarness, PathBuf, PathBuf, PathBuf) {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let paths = AppPaths {
        config_dir: dir.join("config"),
        data_dir: dir.join("data"),
    };
    let parent = out.join("kiln-parent.png");
    let child = out.join("kiln-child.png");
    let first = Recipe {
        prompt: "a clay fox <in> a misty forest".into(),
        seed: 42,
        width: 16,
        height: 16,
        ..Recipe::default()
    };
    let second = Recipe {
        prompt: "a clay fox <in> a snowy forest".into(),
        seed: 7,
        init: Some(InitImage {
            path: parent.clone(),
            strength: 0.6,
        }),
        ..first.clone()
    };
    write_png(&parent, &first, 10);
    write_png(&child, &second, 240);
    let gallery = Gallery::open(&paths.gallery_db()).unwrap();
    gallery.add(&parent, &first, None).unwrap();
    gallery.add(&child, &second, Some(&parent)).unwrap();
    drop(gallery);

    let settings = Settings {
        output_dir: out.clone(),
        model_dirs: vec![dir.join("models")],
        ..Settings::default()
    };
    let mut harness = harness(|ctx| {
        let mut kiln = KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap();
        kiln.set_persist(false);
        kiln.state.section = Section::Gallery;
        kiln
    });
    // Thumbnails first: one arriving later would move the buttons under a click.
    step_until(
        &mut harness,
        TIMEOUT,
        "both entries and thumbnails",
        |app| {
            let gallery = &app.state.gallery;
            gallery.entry(1).is_some()
                && gallery
                    .thumbnails
                    .values()
                    .filter(|t| matches!(t, Thumb::Loaded { .. }))
                    .count()
                    == 2
        },
    );
    harness
        .get_by_role_and_label(Role::ListBoxOption, "a clay fox <in> a snowy forest")
        .click();
    step_until(&mut harness, TIMEOUT, "the child selected", |app| {
        app.state
            .gallery
            .selected
            .as_ref()
            .is_some_and(|e| e.path == child)
    });
    harness.step(); // The details pane shows from the frame after the click.
    (harness, out, parent, child)
}

fn wait_for_export(harness: &mut AppHarness) -> PathBuf {
    let mut folder = None;
    step_until(harness, TIMEOUT, "the export to finish", |app| {
        match &app.state.gallery.export {
            Some(ExportStatus::Done(path)) => folder = Some(path.clone()),
            Some(ExportStatus::Failed(error)) => panic!("export failed: {error}"),
            _ => {}
        }
        folder.is_some()
    });
    folder.unwrap()
}

#[test]
fn export_record_writes_the_chain_from_the_details_pane() {
    let dir = tempfile::tempdir().unwrap();
    let (mut harness, out, _, _) = app_with_chain(dir.path());
    harness
        .get_by_role_and_label(Role::Button, "Export record…")
        .click();
    harness.step();
    let folder = wait_for_export(&mut harness);
    assert_eq!(folder, out.join("records").join("kiln-child-record"));
    for file in ["index.html", "record.json", "step-1.png", "step-2.png"] {
        assert!(folder.join(file).is_file(), "{file} missing in {folder:?}");
    }
    let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
    assert!(html.contains("a clay fox &lt;in&gt; a misty forest"));
    assert!(html.contains("a clay fox &lt;in&gt; a snowy forest"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("record.json")).unwrap()).unwrap();
    let seeds: Vec<_> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["recipe"]["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![42, 7]);
    // The folder is shown with a button to open it.
    harness.step();
    harness.get_by_label_contains("kiln-child-record");
    harness.get_by_role_and_label(Role::Button, "Open exported folder");
    // A second export makes a new folder.
    harness
        .get_by_role_and_label(Role::Button, "Export record…")
        .click();
    harness.step();
    step_until(
        &mut harness,
        TIMEOUT,
        "the second export",
        |app| matches!(&app.state.gallery.export, Some(ExportStatus::Done(p)) if *p != folder),
    );
    assert!(out.join("records").join("kiln-child-record-1").is_dir());
}

#[test]
fn compare_shows_two_entries_and_their_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (mut harness, out, parent, child) = app_with_chain(dir.path());
    harness
        .get_by_role_and_label(Role::Button, "Compare with…")
        .click();
    harness.step();
    assert!(app(&harness).state.gallery.compare_picking);
    harness.get_by_label("Click another image to compare it with the selected one");
    harness
        .get_by_role_and_label(Role::ListBoxOption, "a clay fox <in> a misty forest")
        .click();
    harness.step();
    harness.step();
    let gallery = &app(&harness).state.gallery;
    assert_eq!(gallery.selected.as_ref().unwrap().path, child);
    assert_eq!(gallery.compare.as_ref().unwrap().path, parent);
    assert!(!gallery.compare_picking);
    // The comparison view: prompt, seed and strength differ.
    harness.get_by_label("Comparison");
    harness.get_by_label("3 differences");
    harness.get_by_label("Denoising strength");
    // The parent's prompt (B) shows only in the table; the details pane shows the child's.
    harness.get_by_label("a clay fox <in> a misty forest");
    harness.get_by_label("0.60");
    harness
        .get_by_role_and_label(Role::Button, "Export comparison")
        .click();
    harness.step();
    let folder = wait_for_export(&mut harness);
    assert_eq!(
        folder,
        out.join("records")
            .join("compare-kiln-child-vs-kiln-parent")
    );
    for file in ["index.html", "a.png", "b.png", "comparison.json"] {
        assert!(folder.join(file).is_file(), "{file} missing in {folder:?}");
    }
    // Back to the grid.
    harness
        .get_by_role_and_label(Role::Button, "Back to the grid")
        .click();
    harness.step();
    assert!(app(&harness).state.gallery.compare.is_none());
}
