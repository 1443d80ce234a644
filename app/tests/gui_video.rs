//! Headless tests of the Video section (egui_kittest, the whole `KilnApp`): it finds the SVD
//! model in the model folders, a dropped image becomes the still, a clip on the tiny SVD fixture
//! (draft size, 6 frames, 2 steps) reports its estimate, steps and decoded frames and ends in
//! the player with every frame; the motion brush reaches the clip; Cancel returns to idle
//! without an error; the frame slider scrubs; an export writes the clip and its recipe (the GIF
//! and the MP4 decode) and never replaces a file; with no SVD model the SVD-XT download is
//! offered.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{
    AppHarness, IdleRunner, app, app_mut, click, drop_files, harness, open_section, step_until,
};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use image::AnimationDecoder;
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

    // Scrub: the slider (frames numbered from 1) shows another frame, paused.
    harness
        .get_by_role_and_label(Role::Slider, tr(Lang::En, "video.frame"))
        .set_value_accesskit(4.0);
    harness.step();
    harness.step();
    assert_eq!(app(&harness).state.video.player.index, 3);
    assert!(!app(&harness).state.video.player.playing);

    // Export: the files and the recipe, never replacing one.
    let clip = app(&harness).state.video.clip.clone().unwrap();
    let gif = export_clip(&clip, &dir.path().join("clip"), ExportKind::Gif, true).unwrap();
    assert_eq!(gif, dir.path().join("clip.gif"));
    assert!(dir.path().join("clip.gif.json").is_file());
    let before = std::fs::read(&gif).unwrap();
    assert!(export_clip(&clip, &gif, ExportKind::Gif, false).is_err());
    assert_eq!(std::fs::read(&gif).unwrap(), before);
    // The GIF decodes: 6 frames forward and 4 back (ping-pong), at the clip's size.
    let decoded = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&gif).unwrap(),
    ))
    .unwrap()
    .into_frames()
    .collect_frames()
    .unwrap();
    assert_eq!(decoded.len(), 10);
    assert_eq!(decoded[0].buffer().dimensions(), (384, 216));
    let mp4 = export_clip(&clip, &dir.path().join("clip.mp4"), ExportKind::Mp4, false).unwrap();
    assert!(dir.path().join("clip.mp4.json").is_file());
    assert_eq!(decode_mp4(&mp4, clip.fps), (6, (384, 216)));
    let folder = export_clip(&clip, &dir.path().join("frames"), ExportKind::Frames, true).unwrap();
    // Ping-pong: 6 frames forward, 4 back.
    assert!(folder.join("frame-0010.png").is_file());
    assert!(!folder.join("frame-0011.png").exists());
}

/// Decodes every frame of an H.264 MP4 (checking the track's duration at `fps`): the frame
/// count and the decoded size.
fn decode_mp4(path: &std::path::Path, fps: u32) -> (usize, (usize, usize)) {
    use openh264::formats::YUVSource;
    let bytes = std::fs::read(path).unwrap();
    let size = bytes.len() as u64;
    let mut mp4 = mp4::Mp4Reader::read_header(std::io::Cursor::new(bytes), size).unwrap();
    let (&id, track) = mp4.tracks().iter().next().unwrap();
    let samples = track.sample_count();
    let expected = f64::from(samples) / f64::from(fps);
    let duration = track.duration().as_secs_f64();
    assert!(
        (duration - expected).abs() < 0.002,
        "duration {duration} s, expected {expected} s"
    );
    let annex_b = |nal: &[u8]| [&[0, 0, 0, 1][..], nal].concat();
    let mut stream = annex_b(track.sequence_parameter_set().unwrap());
    stream.extend(annex_b(track.picture_parameter_set().unwrap()));
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let (mut decoded, mut dims) = (0, (0, 0));
    for sample_id in 1..=samples {
        let sample = mp4.read_sample(id, sample_id).unwrap().unwrap();
        let mut at = 0;
        while at + 4 <= sample.bytes.len() {
            let len = u32::from_be_bytes(sample.bytes[at..at + 4].try_into().unwrap()) as usize;
            stream.extend(annex_b(&sample.bytes[at + 4..at + 4 + len]));
            at += 4 + len;
        }
        if let Some(yuv) = decoder.decode(&stream).unwrap() {
            dims = yuv.dimensions();
            decoded += 1;
        }
        stream.clear();
    }
    decoded += decoder.flush_remaining().unwrap().len();
    (decoded, dims)
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
