//! Gallery scrolling with 10,000 indexed images: frame times of the UI thread while scrolling
//! through the whole grid, and how fast entries and thumbnails catch up. A measurement, not a
//! pass/fail check of speed (the machine is shared and noisy): run it with
//! `cargo test --release -p kiln --test gui_gallery_scroll -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use common::IdleRunner;
use egui_kittest::Harness;
use image::RgbImage;
use kiln::gui::state::Section;
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::gallery::Gallery;
use kiln::library::settings::Settings;
use kiln_inference::Recipe;
use std::time::{Duration, Instant};

const IMAGES: usize = 10_000;

fn app<'a>(harness: &'a Harness<'_, Option<KilnApp>>) -> &'a KilnApp {
    harness.state().as_ref().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[test]
#[ignore = "measurement: makes 10,000 PNGs; run with --ignored --nocapture"]
fn gallery_scrolls_smoothly_with_10000_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let paths = AppPaths {
        config_dir: dir.path().join("config"),
        data_dir: dir.path().join("data"),
    };

    let started = Instant::now();
    let gallery = Gallery::open(&paths.gallery_db()).unwrap();
    gallery
        .in_transaction(|gallery| {
            for i in 0..IMAGES {
                let path = out.join(format!("kiln-{i:05}.png"));
                let shade = (i % 251) as u8;
                let image = RgbImage::from_fn(64, 64, |x, y| {
                    image::Rgb([shade, (x * 4) as u8, (y * 4) as u8])
                });
                image.save(&path).unwrap();
                let recipe = Recipe {
                    prompt: format!("test image {i}, a clay fox number {i}"),
                    seed: i as u64,
                    width: 64,
                    height: 64,
                    ..Recipe::default()
                };
                gallery.add(&path, &recipe, None)?;
            }
            Ok(())
        })
        .unwrap();
    drop(gallery);
    println!(
        "made and indexed {IMAGES} images in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let settings = Settings {
        output_dir: out.clone(),
        model_dirs: Vec::new(),
        ..Settings::default()
    };
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(
            |ui, app: &mut Option<KilnApp>| {
                if let Some(app) = app {
                    app.frame_ui(ui);
                }
            },
            None,
        );
    let ctx = harness.ctx.clone();
    let mut kiln = KilnApp::with_runner(&ctx, paths, settings, IdleRunner).unwrap();
    kiln.state.section = Section::Gallery;
    *harness.state_mut() = Some(kiln);

    // Everything visible is listed and has its thumbnail.
    let settled = |app: &KilnApp| {
        let gallery = &app.state.gallery;
        !gallery.visible.is_empty()
            && gallery.visible_without_entry == 0
            && gallery.last_wanted.is_empty()
    };
    let opened = Instant::now();
    loop {
        harness.step();
        if app(&harness).state.gallery.count == Some(IMAGES) && settled(app(&harness)) {
            break;
        }
        assert!(opened.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "gallery opened: first {} cells with thumbnails after {:.0} ms",
        app(&harness).state.gallery.visible.len(),
        opened.elapsed().as_secs_f64() * 1000.0
    );

    // Scroll through everything with the wheel, 1,500 points a frame at ~60 frames a second,
    // timing each frame's UI work (logic + layout + tessellation).
    harness.hover_at(egui::pos2(500.0, 400.0));
    harness.step();
    let mut frame_times = Vec::new();
    let mut frames_waiting = 0;
    let scroll_start = Instant::now();
    while app(&harness).state.gallery.visible.end < IMAGES {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -1500.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
        let start = Instant::now();
        harness.step();
        let shapes = harness.output().shapes.clone();
        let primitives = harness.ctx.tessellate(shapes, 1.0);
        let took = start.elapsed();
        frame_times.push(took);
        assert!(!primitives.is_empty());
        frames_waiting += usize::from(app(&harness).state.gallery.visible_without_entry > 0);
        assert!(frame_times.len() < 5000, "the grid did not reach the end");
        std::thread::sleep(Duration::from_millis(16).saturating_sub(took));
    }
    let scroll_secs = scroll_start.elapsed().as_secs_f64();
    let settle = Instant::now();
    while !settled(app(&harness)) {
        harness.step();
        assert!(settle.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(2));
    }
    let frames = frame_times.len();
    let mut sorted = frame_times.clone();
    sorted.sort();
    let mean = frame_times.iter().sum::<Duration>() / frames as u32;
    println!(
        "scrolled to the end in {frames} frames ({scroll_secs:.1} s): UI frame time mean {:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        mean.as_secs_f64() * 1000.0,
        percentile(&sorted, 0.5).as_secs_f64() * 1000.0,
        percentile(&sorted, 0.95).as_secs_f64() * 1000.0,
        percentile(&sorted, 1.0).as_secs_f64() * 1000.0,
    );
    println!(
        "frames showing cells whose entry was still loading: {frames_waiting} of {frames}; after the scroll stopped, all visible thumbnails shown within {:.0} ms",
        settle.elapsed().as_secs_f64() * 1000.0
    );
    let textures = app(&harness).state.gallery.thumbnails.len();
    println!("thumbnail textures held: {textures}");
    assert!(textures <= kiln::gui::state::gallery::THUMBNAILS_KEPT + 64);
}
