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
        let u = |k: &str| case[k].as_u64().unwrap();
        let f = |k: &str| case[k].as_f64().unwrap() as f32;
        let params = VideoParams {
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
        };
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
