//! Stable Video Diffusion parity on the tiny random SVD (`tests/fixtures/make_svd.py`):
//! components (UNet, temporal VAE encode/decode, CLIP image embeds) against
//! `refs/svd/intermediates.safetensors`, and whole clips against diffusers'
//! `StableVideoDiffusionPipeline` frames (`refs/svd/cases.json`): every frame within 3/255.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use candle_core::{DType, Device, Tensor};
use kiln_inference::CancelToken;
use kiln_inference::video::{SvdPipeline, SvdUNet, SvdUNetConfig, TemporalVae, VideoParams};
use kiln_tests::fixtures;
use std::collections::HashMap;

fn refs() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join("refs/svd/intermediates.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn component(name: &str) -> (serde_json::Value, kiln_inference::io::weights::Weights) {
    use kiln_inference::io::weights::{Weights, open_safetensors};
    let dir = fixtures().join("tiny-svd").join(name);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let st = open_safetensors(&[dir.join("diffusion_pytorch_model.safetensors")]).unwrap();
    (config, Weights::identity(std::sync::Arc::new(st), name))
}

#[test]
fn unet_matches_diffusers() {
    let r = refs();
    let (config, weights) = component("unet");
    let vb = weights.var_builder(DType::F32, &Device::Cpu);
    let unet = SvdUNet::new(vb, &SvdUNetConfig::from_json(&config).unwrap()).unwrap();
    let t: Vec<f32> = r["unet.timestep"].to_vec1().unwrap();
    let out = unet
        .forward(
            &r["unet.sample"],
            t[0],
            &r["unet.encoder_hidden_states"],
            &r["unet.added_time_ids"],
        )
        .unwrap();
    let diff = max_abs(&out, &r["unet.out"]);
    assert!(diff < 1e-3, "unet differs by {diff}");
}

#[test]
fn temporal_vae_matches_diffusers() {
    let r = refs();
    let (config, weights) = component("vae");
    let vb = weights.var_builder(DType::F32, &Device::Cpu);
    let config = kiln_inference::vae::VaeConfig::from_json(&config).unwrap();
    let vae = TemporalVae::new(vb, &config).unwrap();
    let mode = vae.encode_mode(&r["vae.image"]).unwrap();
    let diff = max_abs(&mode, &r["vae.mode"]);
    assert!(diff < 1e-3, "vae encode differs by {diff}");
    let decoded = vae.decode_chunk(&r["vae.z"]).unwrap();
    let diff = max_abs(&decoded, &r["vae.decoded"]);
    assert!(diff < 1e-3, "vae decode differs by {diff}");
}

/// The settings of a reference case (`refs/svd/*.json`).
fn params_of(case: &serde_json::Value) -> VideoParams {
    let u = |k: &str| case[k].as_u64().unwrap();
    let f = |k: &str| case[k].as_f64().unwrap() as f32;
    VideoParams {
        width: u("width") as usize,
        height: u("height") as usize,
        frames: Some(u("frames") as usize),
        steps: u("steps") as usize,
        seed: u("seed"),
        fps: u("fps") as u32,
        motion_bucket_id: u("motion") as u32,
        noise_aug_strength: f("noise_aug"),
        min_guidance: f("min_cfg"),
        max_guidance: f("max_cfg"),
        decode_chunk: Some(u("decode_chunk") as usize),
        ..VideoParams::default()
    }
}

#[test]
fn clips_match_diffusers() {
    let cases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("refs/svd/cases.json")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 2);
    let pipe = SvdPipeline::load(&fixtures().join("tiny-svd"), &Device::Cpu).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        // The clip must move, or a still-image bug could pass.
        assert!(case["max_change_from_first"].as_f64().unwrap() > 20.0);
        let image = image::open(fixtures().join(case["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let params = params_of(case);
        let mut steps = 0;
        let frames = pipe
            .run(
                &image,
                &params,
                &mut |p| {
                    if matches!(p, kiln_inference::video::VideoProgress::Step { .. }) {
                        steps += 1;
                    }
                },
                &CancelToken::default(),
            )
            .unwrap();
        assert_eq!(steps, params.steps, "{name}: one progress event per step");
        assert_eq!(frames.len(), params.frames.unwrap(), "{name}");
        for (i, frame) in frames.iter().enumerate() {
            let path = fixtures().join(format!("refs/svd/{name}/frame-{:04}.png", i + 1));
            let want = image::open(&path).unwrap().to_rgb8();
            assert_eq!(frame.dimensions(), want.dimensions(), "{name} frame {i}");
            let max = frame
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            let mean = frame
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| f64::from(a.abs_diff(*b)))
                .sum::<f64>()
                / frame.as_raw().len() as f64;
            eprintln!("{name} frame {}: max {max}, mean {mean:.3}", i + 1);
            if max > 3 || mean > 0.5 {
                failures.push(format!("{name} frame {}: max {max}, mean {mean:.3}", i + 1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "frames differ:\n{}",
        failures.join("\n")
    );
}

/// Largest difference of any frame's latents from the first frame's, over latent columns `cols`.
fn latent_motion(latents: &Tensor, cols: std::ops::Range<usize>) -> f32 {
    let region = latents.narrow(3, cols.start, cols.len()).unwrap();
    let first = region.narrow(0, 0, 1).unwrap();
    max_abs(
        &region.broadcast_sub(&first).unwrap(),
        &region.zeros_like().unwrap(),
    )
}

#[test]
fn motion_brush_keeps_the_masked_out_region_still_and_loops_return_to_the_first_frame() {
    let pipe = SvdPipeline::load(&fixtures().join("tiny-svd"), &Device::Cpu).unwrap();
    let image = image::open(fixtures().join("photo-600x360-rgba.png"))
        .unwrap()
        .to_rgb8();
    let base = VideoParams {
        width: 128,
        height: 64,
        frames: Some(6),
        steps: 3,
        seed: 42,
        ..VideoParams::default()
    };
    let sample = |params: &VideoParams| {
        pipe.sample(&image, params, &mut |_| {}, &CancelToken::default())
            .unwrap()
    };
    let plain = sample(&base);
    let white = image::GrayImage::from_pixel(30, 20, image::Luma([255]));
    let whitened = sample(&VideoParams {
        motion_mask: Some(white),
        ..base.clone()
    });
    assert_eq!(
        max_abs(&whitened, &plain),
        0.0,
        "a white mask lets everything move exactly as without a mask"
    );
    // Black on the left half (latent columns 0..8 of 16): only the right half may move.
    let half =
        image::GrayImage::from_fn(100, 50, |x, _| image::Luma([if x < 50 { 0 } else { 255 }]));
    let brushed = sample(&VideoParams {
        motion_mask: Some(half),
        ..base.clone()
    });
    let black = image::GrayImage::from_pixel(8, 8, image::Luma([0]));
    let frozen = sample(&VideoParams {
        motion_mask: Some(black),
        ..base.clone()
    });
    let (left, right) = (0..5, 11..16);
    let plain_left = latent_motion(&plain, left.clone());
    let brushed_left = latent_motion(&brushed, left.clone());
    let plain_right = latent_motion(&plain, right.clone());
    let brushed_right = latent_motion(&brushed, right);
    eprintln!(
        "latent motion left {plain_left:.3} → {brushed_left:.5}, right {plain_right:.3} → {brushed_right:.3}"
    );
    assert!(plain_left > 0.5, "the fixture clip moves ({plain_left})");
    assert!(brushed_left < 1e-4, "the masked-out region moves");
    assert!(
        brushed_right > 0.5 * plain_right,
        "the brushed region stays still"
    );
    // Outside the brush every frame is the still's latent: that of a fully masked-out clip.
    assert!(latent_motion(&frozen, 0..16) < 1e-4);
    let still_left = max_abs(
        &brushed.narrow(3, 0, 5).unwrap(),
        &frozen.narrow(3, 0, 5).unwrap(),
    );
    assert!(
        still_left < 1e-4,
        "masked-out region is not the still ({still_left})"
    );

    let looped = sample(&VideoParams {
        loop_clip: true,
        ..base.clone()
    });
    let seam = |latents: &Tensor| {
        max_abs(
            &latents.narrow(0, 5, 1).unwrap(),
            &latents.narrow(0, 0, 1).unwrap(),
        )
    };
    let (plain_seam, looped_seam) = (seam(&plain), seam(&looped));
    eprintln!("last-to-first latent difference {plain_seam:.3} → {looped_seam:.5}");
    assert!(plain_seam > 0.5);
    assert!(looped_seam < 1e-4, "the loop returns to the first frame");
    // Frames before the ramp still move.
    let before = |latents: &Tensor| latent_motion(&latents.narrow(0, 0, 4).unwrap(), 0..16);
    assert!(before(&looped) > 0.5 * before(&plain));
    // Decoded one frame at a time (no temporal mixing across the seam), the clip ends where it
    // started.
    let one_by_one = VideoParams {
        decode_chunk: Some(1),
        ..base.clone()
    };
    let decode = |latents: &Tensor| {
        pipe.decode(latents, &one_by_one, &mut |_| {}, &CancelToken::default())
            .unwrap()
    };
    let frame_diff = |frames: &[image::RgbImage]| {
        frames[5]
            .as_raw()
            .iter()
            .zip(frames[0].as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / frames[0].as_raw().len() as f64
    };
    let (plain_px, looped_px) = (frame_diff(&decode(&plain)), frame_diff(&decode(&looped)));
    eprintln!("last-to-first frame difference {plain_px:.2} → {looped_px:.2} (of 255)");
    assert!(
        plain_px > 5.0 && looped_px < 0.5,
        "the looped clip's last frame differs"
    );
}

#[test]
fn estimates_scale_with_frames_size_steps_and_guidance() {
    let pipe = SvdPipeline::load(&fixtures().join("tiny-svd"), &Device::Cpu).unwrap();
    let base = VideoParams {
        width: 64,
        height: 64,
        frames: Some(4),
        steps: 5,
        ..VideoParams::default()
    };
    let e = pipe.estimate(&base);
    assert!(e.step_flops > 0.0 && e.decode_flops > 0.0);
    assert_eq!((e.steps, e.frames), (5, 4));
    assert_eq!(e.total_flops(), e.step_flops * 5.0 + e.decode_flops);
    let no_cfg = pipe.estimate(&VideoParams {
        max_guidance: 1.0,
        ..base.clone()
    });
    assert_eq!(no_cfg.step_flops * 2.0, e.step_flops);
    let bigger = pipe.estimate(&VideoParams {
        width: 128,
        ..base.clone()
    });
    // Twice the pixels: at least twice the cost (attention grows faster).
    assert!(bigger.step_flops >= 2.0 * e.step_flops && bigger.step_flops < 3.0 * e.step_flops);
    assert!(bigger.decode_flops >= 2.0 * e.decode_flops);
    let longer = pipe.estimate(&VideoParams {
        frames: Some(8),
        ..base.clone()
    });
    assert!(longer.step_flops >= 2.0 * e.step_flops && longer.step_flops < 2.5 * e.step_flops);
    assert!(e.seconds(100.0, 100.0) > 0.0);
}

/// The largest and mean per-channel difference of two frames.
fn frame_diff(a: &image::RgbImage, b: &image::RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let pairs = a.as_raw().iter().zip(b.as_raw());
    let max = pairs.clone().map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let mean = pairs.map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.as_raw().len() as f64;
    (max, mean)
}

#[test]
fn single_file_checkpoints_match_diffusers() {
    let case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("refs/svd/single_file.json")).unwrap(),
    )
    .unwrap();
    assert!(case["max_change_from_first"].as_f64().unwrap() > 20.0);
    let file = fixtures().join("tiny-svd-single/svd.safetensors");
    assert!(kiln_inference::video::single_file::is_svd_file(&file));
    assert!(!kiln_inference::video::single_file::is_svd_file(
        &fixtures().join("tiny-sd15.safetensors")
    ));
    let pipe = SvdPipeline::load(&file, &Device::Cpu).unwrap();
    // No config in the file: SVD's 14 frames unless the name says xt.
    assert_eq!(pipe.default_frames(), 14);
    let image = image::open(fixtures().join(case["image"].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    let params = params_of(&case);
    let frames = pipe
        .run(&image, &params, &mut |_| {}, &CancelToken::default())
        .unwrap();
    assert_eq!(frames.len(), 5);
    for (i, frame) in frames.iter().enumerate() {
        let want =
            image::open(fixtures().join(format!("refs/svd/single_file/frame-{:04}.png", i + 1)))
                .unwrap()
                .to_rgb8();
        let (max, mean) = frame_diff(frame, &want);
        eprintln!("single file frame {}: max {max}, mean {mean:.3}", i + 1);
        assert!(
            max <= 3 && mean <= 0.5,
            "frame {}: max {max}, mean {mean:.3}",
            i + 1
        );
    }
    // The folder's UNet (2 heads instead of the 4 a single file implies) draws another clip: the
    // head count read for single files matters and is the one the reference used.
    let folder = SvdPipeline::load(&fixtures().join("tiny-svd"), &Device::Cpu).unwrap();
    let other = folder
        .run(&image, &params, &mut |_| {}, &CancelToken::default())
        .unwrap();
    assert!(frame_diff(&other[4], &frames[4]).0 > 10);
}

#[test]
fn single_files_without_video_parts_are_clear_errors() {
    use safetensors::tensor::TensorView;
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("tiny-svd-single/svd.safetensors");
    let bytes = std::fs::read(&source).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // The same file without the image encoder.
    let kept: Vec<(String, TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.contains("open_clip"))
        .collect();
    let partial = dir.path().join("svd_partial.safetensors");
    safetensors::serialize_to_file(kept, None, &partial).unwrap();
    let e = SvdPipeline::load(&partial, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CLIP image encoder"), "{e}");
    // An image model is not a video model.
    let e = SvdPipeline::load(&fixtures().join("tiny-sd15.safetensors"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Stable Video Diffusion file"), "{e}");
}

#[test]
fn bad_settings_are_clear_errors() {
    let pipe = SvdPipeline::load(&fixtures().join("tiny-svd"), &Device::Cpu).unwrap();
    let image = image::RgbImage::new(16, 16);
    let run = |params: VideoParams| {
        pipe.run(&image, &params, &mut |_| {}, &CancelToken::default())
            .unwrap_err()
            .to_string()
    };
    let base = VideoParams {
        width: 64,
        height: 64,
        frames: Some(2),
        steps: 1,
        ..VideoParams::default()
    };
    assert!(
        run(VideoParams {
            width: 60,
            ..base.clone()
        })
        .contains("multiple of 8")
    );
    assert!(
        run(VideoParams {
            min_guidance: 3.0,
            max_guidance: 1.0,
            ..base.clone()
        })
        .contains("guidance")
    );
    assert!(
        run(VideoParams {
            decode_chunk: Some(0),
            ..base.clone()
        })
        .contains("chunk")
    );
    let e = SvdPipeline::load(&fixtures().join("tiny-sd15"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("svd") || e.contains("Stable Video"), "{e}");
}
