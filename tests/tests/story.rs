//! Story panels (consistent self-attention, `docs/COMIC.md`): Kiln's batched reference panels
//! (write mode) and later panels read one by one match diffusers with the reference processor of
//! `tests/fixtures/make_story.py` (tiny SDXL and SD1.5, and tiny SDXL with an IP-Adapter face
//! reference), images within 3/255 and final latents
//! within a tolerance far below the effect of the shared tokens; the sampled token count equals
//! the reference's. Independently of Python: a batch without consistency equals single
//! generations, and reading an empty bank is a clear error.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use candle_core::{Device, Tensor};
use kiln_inference::io::model::ModelFiles;
use kiln_inference::pipelines::stable_diffusion::{GenerateRequest, StableDiffusion};
use kiln_inference::unet::consistent::{ConsistencySettings, StoryMode, TokenBank};
use kiln_inference::{CancelToken, SamplerKind};
use kiln_tests::{fixtures, image_diff, max_abs_diff, reference_cases};
use serde_json::Value;
use std::collections::HashMap;

/// Kiln vs diffusers on the final latents (magnitudes up to ~25).
const LATENT_TOLERANCE: f32 = 5e-4;

fn load(name: &str) -> StableDiffusion {
    let files = ModelFiles::open(&fixtures().join(name)).unwrap();
    StableDiffusion::load(&files, &Device::Cpu, &mut |_| {}).unwrap()
}

fn request(case: &Value, panel: &Value) -> GenerateRequest {
    GenerateRequest {
        prompt: panel["prompt"].as_str().unwrap().into(),
        negative: panel["negative"].as_str().map(str::to_string),
        sampler: SamplerKind::from_cli_name(case["sampler"].as_str().unwrap()).unwrap(),
        steps: case["steps"].as_u64().unwrap() as usize,
        cfg: case["cfg"].as_f64().unwrap() as f32,
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        clip_skip: 1,
        seed: panel["seed"].as_u64().unwrap(),
        ..GenerateRequest::default()
    }
}

/// The case's IP-Adapter with its photo's tokens (`face`), if any.
fn face_of(case: &Value) -> Option<kiln_inference::adapters::ip_adapter::IpAdapterRequest> {
    use kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel;
    use kiln_inference::adapters::ip_adapter::{IpAdapter, IpAdapterRequest};
    let face = case.get("face")?;
    let path = |k: &str| fixtures().join(face[k].as_str().unwrap());
    let adapter = std::sync::Arc::new(IpAdapter::load(&path("adapter"), &Device::Cpu).unwrap());
    let encoder = ClipVisionModel::load(&path("encoder"), &Device::Cpu).unwrap();
    let photo = image::open(path("photo")).unwrap().to_rgb8();
    Some(IpAdapterRequest {
        tokens: adapter.image_tokens(&encoder, &photo).unwrap(),
        adapter,
        scale: face["scale"].as_f64().unwrap() as f32,
    })
}

fn settings(case: &Value) -> ConsistencySettings {
    let c = &case["consistency"];
    ConsistencySettings {
        rate: c["rate"].as_f64().unwrap() as f32,
        start: c["start"].as_f64().unwrap() as f32,
        end: c["end"].as_f64().unwrap() as f32,
        seed: c["seed"].as_u64().unwrap(),
    }
}

/// Renders a batch, returning the images and each panel's final latents.
fn batch(
    sd: &StableDiffusion,
    reqs: &[GenerateRequest],
    story: Option<&StoryMode>,
) -> kiln_inference::Result<Vec<(image::RgbImage, Tensor)>> {
    let mut last = None;
    let images = sd.generate_batch(
        reqs,
        story,
        &mut |info| last = Some(info.latents),
        &CancelToken::default(),
    )?;
    let last = last.unwrap();
    Ok(images
        .into_iter()
        .enumerate()
        .map(|(k, img)| (img, last.narrow(0, k, 1).unwrap()))
        .collect())
}

#[test]
fn story_panels_match_diffusers() {
    let cases = reference_cases("refs/story/cases.json");
    assert!(cases.len() >= 3);
    let latents: HashMap<String, Tensor> = candle_core::safetensors::load(
        fixtures().join("refs/story/latents.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let sd = load(case["model"].as_str().unwrap());
        let face = face_of(case);
        let with_face = |mut r: GenerateRequest| {
            r.ip_adapters = face.iter().cloned().collect();
            r
        };
        let bank = TokenBank::new(settings(case)).unwrap();
        let refs: Vec<GenerateRequest> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| with_face(request(case, p)))
            .collect();
        let mut rendered = batch(&sd, &refs, Some(&StoryMode::Write(bank.clone()))).unwrap();
        assert_eq!(
            bank.stored_tokens() as u64,
            case["bank_tokens"].as_u64().unwrap(),
            "{name}: sampled token count differs from the reference's"
        );
        let stored = bank.stored_values();
        for panel in case["panels"].as_array().unwrap() {
            let read = StoryMode::Read(bank.clone());
            rendered.extend(batch(&sd, &[with_face(request(case, panel))], Some(&read)).unwrap());
        }
        assert_eq!(bank.stored_values(), stored, "reads must not grow the bank");
        let expected_panels: Vec<&Value> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .chain(case["panels"].as_array().unwrap())
            .collect();
        assert_eq!(rendered.len(), 4);
        for (k, ((image, z), panel)) in rendered.iter().zip(&expected_panels).enumerate() {
            let expected = image::open(fixtures().join(panel["png"].as_str().unwrap()))
                .unwrap()
                .to_rgb8();
            let diff = image_diff(image, &expected).unwrap();
            let zref = &latents[panel["latents"].as_str().unwrap()];
            let dz = max_abs_diff(z, zref);
            let effect = panel["max_latent_diff_vs_plain"].as_f64().unwrap() as f32;
            eprintln!(
                "{name} panel {}: max {}/255 mean {:.3}/255, latents {dz:.2e} (effect {effect:.2e})",
                k + 1,
                diff.max,
                diff.mean
            );
            // The shared tokens move the latents well beyond the tolerance.
            assert!(effect >= 3.0 * LATENT_TOLERANCE, "{name}: effect {effect}");
            if !diff.within_standard() || dz > LATENT_TOLERANCE {
                failures.push(format!("{name} panel {}: {diff:?}, latents {dz}", k + 1));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_batch_without_consistency_equals_single_generations() {
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sdxl_story").unwrap();
    let sd = load("tiny-sdxl");
    let reqs: Vec<GenerateRequest> = case["references"]
        .as_array()
        .unwrap()
        .iter()
        .chain(case["panels"].as_array().unwrap())
        .map(|p| request(case, p))
        .collect();
    let together = batch(&sd, &reqs, None).unwrap();
    for (req, (image, _)) in reqs.iter().zip(&together) {
        let single = sd
            .generate(req, &mut |_| {}, &CancelToken::default())
            .unwrap();
        let diff = image_diff(image, &single).unwrap();
        assert!(diff.max <= 1, "seed {}: {diff:?}", req.seed);
    }
    // With consistency on, outside the step window nothing is shared: an empty window is a
    // plain generation too.
    let bank = TokenBank::new(ConsistencySettings {
        start: 1.0,
        end: 1.0,
        ..settings(case)
    })
    .unwrap();
    let off = batch(&sd, &reqs[..2], Some(&StoryMode::Write(bank.clone()))).unwrap();
    assert_eq!(bank.stored_tokens(), 0);
    let plain = batch(&sd, &reqs[..2], None).unwrap();
    for ((a, za), (b, zb)) in off.iter().zip(&plain) {
        assert_eq!(image_diff(a, b).unwrap().max, 0);
        assert_eq!(max_abs_diff(za, zb), 0.0);
    }
}

#[test]
fn reading_before_the_reference_panels_is_an_error() {
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sd15_story").unwrap();
    let sd = load("tiny-sd15");
    let panel = request(case, &case["panels"][0]);
    let bank = TokenBank::new(settings(case)).unwrap();
    let err = batch(
        &sd,
        std::slice::from_ref(&panel),
        Some(&StoryMode::Read(bank.clone())),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no reference panels"), "{err}");
    // A reference set written with other steps cannot be read.
    let mut short = request(case, &case["references"][0]);
    short.steps = 3;
    batch(&sd, &[short], Some(&StoryMode::Write(bank.clone()))).unwrap();
    let err = batch(&sd, &[panel], Some(&StoryMode::Read(bank))).unwrap_err();
    assert!(err.to_string().contains("must match"), "{err}");
}

#[test]
fn a_batch_rejects_mixed_settings() {
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sd15_story").unwrap();
    let sd = load("tiny-sd15");
    let a = request(case, &case["panels"][0]);
    let mut b = request(case, &case["panels"][1]);
    b.width = 128;
    let err = batch(&sd, &[a, b], None).unwrap_err();
    assert!(err.to_string().contains("panel 2"), "{err}");
    assert!(batch(&sd, &[], None).is_err());
}

#[test]
fn drift_scores_match_transformers() {
    use kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel;
    use kiln_inference::pipelines::story::consistency_score;
    let cases = reference_cases("refs/story/cases.json");
    for case in &cases {
        let encoder = ClipVisionModel::load(
            &fixtures().join(case["score_encoder"].as_str().unwrap()),
            &Device::Cpu,
        )
        .unwrap();
        let panels: Vec<image::RgbImage> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .chain(case["panels"].as_array().unwrap())
            .map(|p| {
                image::open(fixtures().join(p["png"].as_str().unwrap()))
                    .unwrap()
                    .to_rgb8()
            })
            .collect();
        let expected = case["scores_vs_first"].as_array().unwrap();
        assert_eq!(expected.len(), panels.len());
        for (panel, want) in panels.iter().zip(expected) {
            let score = consistency_score(&encoder, &panels[0], panel).unwrap();
            let want = want.as_f64().unwrap() as f32;
            assert!((score - want).abs() < 1e-4, "{score} vs {want}");
        }
    }
}

#[test]
fn a_bf16_token_bank_reads_nearly_the_same() {
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sdxl_story").unwrap();
    let sd = load("tiny-sdxl");
    let refs: Vec<GenerateRequest> = case["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| request(case, p))
        .collect();
    let panel = request(case, &case["panels"][0]);
    let mut read = Vec::new();
    for storage in [None, Some(candle_core::DType::BF16)] {
        let bank = TokenBank::with_storage(settings(case), storage).unwrap();
        batch(&sd, &refs, Some(&StoryMode::Write(bank.clone()))).unwrap();
        assert_eq!(
            bank.stored_tokens() as u64,
            case["bank_tokens"].as_u64().unwrap()
        );
        let read_mode = StoryMode::Read(bank);
        read.push(
            batch(&sd, std::slice::from_ref(&panel), Some(&read_mode))
                .unwrap()
                .remove(0),
        );
    }
    let diff = image_diff(&read[0].0, &read[1].0).unwrap();
    let dz = max_abs_diff(&read[0].1, &read[1].1);
    eprintln!("bf16 bank vs f32: {diff:?}, latents {dz:.2e}");
    assert!(diff.max <= 1, "{diff:?}");
    let effect = case["panels"][0]["max_latent_diff_vs_plain"]
        .as_f64()
        .unwrap() as f32;
    assert!(dz < effect / 4.0, "{dz} vs effect {effect}");
}

#[test]
fn ip_adapters_in_a_batch_equal_single_generations() {
    use kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel;
    use kiln_inference::adapters::ip_adapter::{IpAdapter, IpAdapterRequest};
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sdxl_story").unwrap();
    let sd = load("tiny-sdxl");
    let dir = fixtures().join("tiny-ip-adapter");
    let adapter = std::sync::Arc::new(
        IpAdapter::load(&dir.join("ip-adapter_sdxl.safetensors"), &Device::Cpu).unwrap(),
    );
    let encoder = ClipVisionModel::load(&dir.join("image_encoder"), &Device::Cpu).unwrap();
    let photos = ["photo-96x64.png", "init-64.png"];
    let plain: Vec<GenerateRequest> = case["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| request(case, p))
        .collect();
    let with_faces: Vec<GenerateRequest> = plain
        .iter()
        .zip(photos)
        .map(|(r, photo)| {
            let image = image::open(fixtures().join(photo)).unwrap().to_rgb8();
            GenerateRequest {
                ip_adapters: vec![IpAdapterRequest {
                    adapter: adapter.clone(),
                    tokens: adapter.image_tokens(&encoder, &image).unwrap(),
                    scale: 0.8,
                }],
                ..r.clone()
            }
        })
        .collect();
    let together = batch(&sd, &with_faces, None).unwrap();
    let without = batch(&sd, &plain, None).unwrap();
    for ((req, (image, _)), (bare, _)) in with_faces.iter().zip(&together).zip(&without) {
        let single = sd
            .generate(req, &mut |_| {}, &CancelToken::default())
            .unwrap();
        let diff = image_diff(image, &single).unwrap();
        assert!(diff.max <= 1, "seed {}: {diff:?}", req.seed);
        // Each panel got its own photo's tokens, and they matter.
        assert!(image_diff(image, bare).unwrap().max >= 5);
    }
    // With consistent self-attention too: references written, a later panel read.
    let bank = TokenBank::new(settings(case)).unwrap();
    let refs = batch(&sd, &with_faces, Some(&StoryMode::Write(bank.clone()))).unwrap();
    assert!(bank.stored_tokens() > 0);
    let later = GenerateRequest {
        seed: 103,
        ..with_faces[0].clone()
    };
    let read = batch(&sd, &[later], Some(&StoryMode::Read(bank))).unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(read.len(), 1);
    // Mixed adapters in one batch are refused.
    let mixed = [with_faces[0].clone(), plain[1].clone()];
    let err = batch(&sd, &mixed, None).unwrap_err();
    assert!(err.to_string().contains("same IP-Adapters"), "{err}");
}

#[test]
fn a_story_batch_reports_every_step_and_stops_when_cancelled() {
    let cases = reference_cases("refs/story/cases.json");
    let case = cases.iter().find(|c| c["name"] == "sd15_story").unwrap();
    let sd = load("tiny-sd15");
    let refs: Vec<GenerateRequest> = case["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| request(case, p))
        .collect();
    let bank = TokenBank::new(settings(case)).unwrap();
    let mut steps = Vec::new();
    sd.generate_batch(
        &refs,
        Some(&StoryMode::Write(bank.clone())),
        &mut |info| steps.push((info.step, info.total, info.latents.dims().to_vec())),
        &CancelToken::default(),
    )
    .unwrap();
    let total = refs[0].steps;
    assert_eq!(steps.len(), total);
    assert_eq!(steps[0], (1, total, vec![2, 4, 8, 8]));
    let cancel = CancelToken::default();
    let mut seen = 0;
    let err = sd
        .generate_batch(
            &refs,
            Some(&StoryMode::Write(bank)),
            &mut |_| {
                seen += 1;
                cancel.cancel();
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(err, kiln_inference::Error::Cancelled), "{err}");
    assert_eq!(seen, 1);
}
