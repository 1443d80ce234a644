//! Headless tests of the Video section (egui_kittest, the whole `KilnApp`): it finds the SVD
//! model in the model folders, a dropped image becomes the still, a clip on the tiny SVD fixture
//! (draft size, 6 frames, 2 steps) reports its estimate, steps and decoded frames and ends in
//! the player with every frame; the motion brush reaches the clip; Cancel returns to idle
//! without an error; an export writes the clip and its recipe and never replaces a file; with no
//! SVD model the SVD-XT download is offered.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{
    AppHarness, IdleRunner, app, app_mut, click, drop_files, harness, open_section, step_until,
};
use egui_kittest::kittest::Queryable;
use kiln::gui::KilnApp;
use kiln::gui::services::video::export_clip;
use kiln::gui::state::video::{ExportKind, SIZES};
use kiln::i18n::{Lang, tr};
use kiln::library::settings::Settings;
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(300);

fn start(root: &std::path::Path, with_model: bool) -> AppHarness {
    let models = root.join("models");
    std::fs::create_dir_all(&models).unwrap();
    if with_model {
        copy_dir(&fixtures().join("tiny-svd"), &models.join("tiny-svd"));
    }
    let paths = common::app_paths(root);
    let settings = Settings {
        output_dir: root.join("out"),
        model_dirs: vec![models],
        ..Settings::default()
    };
    let mut harness: AppHarness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, IdleRunner).unwrap());
    open_section(&mut harness, tr(Lang::En, "nav.video"));
    harness
}

/// Drops the test photo and sets a quick clip: draft size, 6 frames, `steps` steps, seed 3.
fn prepare(harness: &mut AppHarness, steps: usize) {
    step_until(harness, TIMEOUT, "the model search", |a| {
        a.state.video.model.is_some()
    });
    drop_files(harness, &[fixtures().join("photo-600x360-rgba.png")]);
    step_until(harness, TIMEOUT, "the still", |a| {
        a.state.video.still.is_some()
    });
    let video = &mut app_mut(harness).state.video;
    video.size = SIZES.len() - 1;
    video.frames = 6;
    video.steps = steps;
    video.random_seed = false;
    video.seed = 3;
}

#[test]
fn a_dropped_still_becomes_a_clip_in_the_player_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = start(dir.path(), true);
    prepare(&mut harness, 2);
    assert!(
        app(&harness)
            .state
            .video
            .model
            .as_ref()
            .unwrap()
            .ends_with("tiny-svd"),
        "the model folders' SVD is chosen"
    );
    click(&mut harness, tr(Lang::En, "video.generate"));
    let mut saw_estimate = false;
    let mut saw_steps = 0;
    let mut saw_decoded = 0;
    step_until(&mut harness, TIMEOUT, "the clip", |a| {
        if let Some(run) = &a.state.video.run {
            saw_estimate |= run.estimate.is_some();
            saw_steps = saw_steps.max(run.steps.0);
            saw_decoded = saw_decoded.max(run.decoded.0);
        }
        a.state.video.clip.is_some() || a.state.video.error.is_some()
    });
    let video = &app(&harness).state.video;
    assert!(video.error.is_none(), "{:?}", video.error);
    let clip = video.clip.as_ref().unwrap();
    assert_eq!(clip.frames.len(), 6);
    assert_eq!(video.textures.len(), 6);
    assert_eq!(clip.frames[0].dimensions(), (384, 216));
    assert_eq!(clip.recipe["seed"], 3);
    assert_eq!(clip.recipe["steps"], 2);
    assert!(saw_estimate, "the estimate is shown before the steps");
    assert!(saw_steps >= 1, "steps are reported");
    let moved = clip.frames[5]
        .as_raw()
        .iter()
        .zip(clip.frames[0].as_raw())
        .any(|(a, b)| a != b);
    assert!(moved, "the clip moves");
    assert!(video.player.playing);
    click(&mut harness, tr(Lang::En, "video.pause"));
    assert!(!app(&harness).state.video.player.playing);
    harness.get_by_label(tr(Lang::En, "video.play"));

    // Export: the files and the recipe, never replacing one.
    let clip = app(&harness).state.video.clip.clone().unwrap();
    let gif = export_clip(&clip, &dir.path().join("clip"), ExportKind::Gif, true).unwrap();
    assert_eq!(gif, dir.path().join("clip.gif"));
    assert!(dir.path().join("clip.gif.json").is_file());
    let before = std::fs::read(&gif).unwrap();
    assert!(export_clip(&clip, &gif, ExportKind::Gif, false).is_err());
    assert_eq!(std::fs::read(&gif).unwrap(), before);
    let folder = export_clip(&clip, &dir.path().join("frames"), ExportKind::Frames, true).unwrap();
    // Ping-pong: 6 frames forward, 4 back.
    assert!(folder.join("frame-0010.png").is_file());
    assert!(!folder.join("frame-0011.png").exists());
}

#[test]
fn the_motion_brush_reaches_the_clip_and_cancel_returns_to_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = start(dir.path(), true);
    prepare(&mut harness, 2);
    // Brush on: a black mask (nothing moves) with a painted disc.
    let video = &mut app_mut(&mut harness).state.video;
    video.set_brush(true);
    video.paint(300.0, 180.0, 60.0);
    click(&mut harness, tr(Lang::En, "video.generate"));
    step_until(&mut harness, TIMEOUT, "the brushed clip", |a| {
        a.state.video.clip.is_some() || a.state.video.error.is_some()
    });
    let clip = app(&harness).state.video.clip.clone().unwrap();
    assert_eq!(clip.recipe["motion_mask"], true);
    // The left edge is outside the brush: its latents are the still's in every frame, so the
    // frames there differ far less than where the brush painted.
    let column_change = |x: u32| {
        let (a, b) = (&clip.frames[0], &clip.frames[5]);
        (0..a.height())
            .map(|y| {
                (0..3)
                    .map(|c| u32::from(a.get_pixel(x, y)[c].abs_diff(b.get_pixel(x, y)[c])))
                    .sum::<u32>()
            })
            .sum::<u32>()
    };
    let outside: u32 = (0..16).map(column_change).sum();
    let inside: u32 = (176..192).map(column_change).sum();
    assert!(outside * 2 < inside, "outside {outside}, inside {inside}");

    // A long clip, cancelled after its first step.
    app_mut(&mut harness).state.video.steps = 50;
    click(&mut harness, tr(Lang::En, "video.generate"));
    step_until(&mut harness, TIMEOUT, "a step", |a| {
        a.state.video.run.as_ref().is_some_and(|r| r.steps.0 >= 1)
    });
    click(&mut harness, tr(Lang::En, "video.cancel"));
    step_until(&mut harness, TIMEOUT, "the cancel", |a| {
        a.state.video.run.is_none()
    });
    let video = &app(&harness).state.video;
    assert!(video.error.is_none());
    assert_eq!(
        video.clip.as_ref().unwrap().recipe["steps"],
        2,
        "the last clip stays"
    );
}

#[test]
fn without_a_video_model_the_download_is_offered() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = start(dir.path(), false);
    step_until(&mut harness, TIMEOUT, "the model search", |a| {
        a.state.video.searched && !a.state.downloads.offers.is_empty()
    });
    let offers = &app(&harness).state.downloads.offers;
    assert!(offers.iter().any(|o| o.ids.iter().any(|id| id == "svd-xt")));
    assert!(!app(&harness).state.video.ready());
}
