//! Component parity against diffusers' intermediates (`refs/intermediates.safetensors`, made
//! by `make_fixtures.py`): text embeddings, one UNet pass, VAE decode and encode. A failing
//! render in `parity.rs` is traced to its component here.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use candle_core::{Device, Tensor};
use kiln_inference::CancelToken;
use kiln_inference::io::model::ModelFiles;
use kiln_inference::pipelines::stable_diffusion::StableDiffusion;
use kiln_inference::unet::{TextTimeInputs, UNetHooks};
use kiln_tests::{fixtures, max_abs_diff};
use std::collections::HashMap;

fn refs() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join("refs/intermediates.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn load(name: &str) -> StableDiffusion {
    let files = ModelFiles::open(&fixtures().join(name)).unwrap();
    StableDiffusion::load(&files, &Device::Cpu, &mut |_| {}).unwrap()
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let diff = max_abs_diff(got, want);
    eprintln!("{name}: max abs diff {diff:e}");
    assert!(diff <= tol, "{name}: max abs diff {diff} > {tol}");
}

#[test]
fn sd15_text_embeddings_match() {
    let r = refs();
    let sd = load("tiny-sd15");
    let c = sd.encode_prompt("a photo of a cat", 1, 1).unwrap();
    assert_close(
        "sd15.prompt_embeds",
        &c.context,
        &r["sd15.prompt_embeds"],
        1e-4,
    );
    let c = sd.encode_prompt("", 1, 1).unwrap();
    assert_close(
        "sd15.prompt_embeds_empty",
        &c.context,
        &r["sd15.prompt_embeds_empty"],
        1e-4,
    );
    let c = sd.encode_prompt("a photo of a cat", 2, 1).unwrap();
    assert_close(
        "sd15.clip_skip",
        &c.context,
        &r["sd15.prompt_embeds_clip_skip1"],
        1e-4,
    );
}

#[test]
fn sdxl_text_embeddings_and_pooled_match() {
    let r = refs();
    let sd = load("tiny-sdxl");
    let c = sd.encode_prompt("a photo of a cat", 1, 1).unwrap();
    assert_close(
        "sdxl.prompt_embeds",
        &c.context,
        &r["sdxl.prompt_embeds"],
        1e-4,
    );
    assert_close(
        "sdxl.pooled",
        c.pooled.as_ref().unwrap(),
        &r["sdxl.pooled"],
        1e-4,
    );
    let c = sd.encode_prompt("a photo of a cat", 2, 1).unwrap();
    assert_close(
        "sdxl.clip_skip",
        &c.context,
        &r["sdxl.prompt_embeds_clip_skip1"],
        1e-4,
    );
}

fn unet_case(model: &str, prefix: &str, sdxl: bool) {
    let r = refs();
    let sd = load(model);
    let t = r[&format!("{prefix}.unet.t")].to_vec1::<f32>().unwrap()[0];
    let text_time = sdxl.then(|| TextTimeInputs {
        text_embeds: r[&format!("{prefix}.unet.text_embeds")].clone(),
        time_ids: r[&format!("{prefix}.unet.time_ids")].clone(),
    });
    let out = sd
        .unet()
        .forward(
            &r[&format!("{prefix}.unet.sample")],
            t,
            &r[&format!("{prefix}.unet.encoder_hidden_states")],
            text_time.as_ref(),
            &UNetHooks::default(),
        )
        .unwrap();
    assert_close(
        &format!("{prefix}.unet.out"),
        &out,
        &r[&format!("{prefix}.unet.out")],
        1e-3,
    );
}

#[test]
fn sd15_unet_matches() {
    unet_case("tiny-sd15", "sd15", false);
}

#[test]
fn sdxl_unet_matches() {
    unet_case("tiny-sdxl", "sdxl", true);
}

#[test]
fn single_file_unet_equals_folder() {
    let r = refs();
    let folder = load("tiny-sd15");
    let single = load("tiny-sd15.safetensors");
    let run = |sd: &StableDiffusion| {
        sd.unet()
            .forward(
                &r["sd15.unet.sample"],
                500.0,
                &r["sd15.unet.encoder_hidden_states"],
                None,
                &UNetHooks::default(),
            )
            .unwrap()
    };
    assert_close("single vs folder", &run(&single), &run(&folder), 0.0);
    let a = single.encode_prompt("a photo of a cat", 1, 1).unwrap();
    let b = folder.encode_prompt("a photo of a cat", 1, 1).unwrap();
    assert_close("single vs folder text", &a.context, &b.context, 0.0);
}

fn vae_case(model: &str, prefix: &str) {
    let r = refs();
    let sd = load(model);
    let decoded = sd
        .vae()
        .decode(&r[&format!("{prefix}.vae.latent")])
        .unwrap();
    assert_close(
        &format!("{prefix}.vae.decoded"),
        &decoded,
        &r[&format!("{prefix}.vae.decoded")],
        1e-3,
    );
    let dist = sd.vae().encode(&r[&format!("{prefix}.vae.image")]).unwrap();
    assert_close(
        &format!("{prefix}.vae.enc_mean"),
        &dist.mean,
        &r[&format!("{prefix}.vae.enc_mean")],
        1e-3,
    );
    assert_close(
        &format!("{prefix}.vae.enc_logvar"),
        &dist.logvar,
        &r[&format!("{prefix}.vae.enc_logvar")],
        1e-3,
    );
}

#[test]
fn sd15_vae_matches() {
    vae_case("tiny-sd15", "sd15");
}

#[test]
fn sdxl_vae_matches() {
    vae_case("tiny-sdxl", "sdxl");
}

#[test]
fn cancel_stops_before_the_first_step() {
    let sd = load("tiny-sd15");
    let cancel = CancelToken::default();
    cancel.cancel();
    let request = kiln_inference::pipelines::stable_diffusion::GenerateRequest {
        prompt: "a cat".into(),
        negative: None,
        sampler: kiln_inference::SamplerKind::Euler,
        steps: 4,
        cfg: 7.0,
        width: 64,
        height: 64,
        init: None,
        clip_skip: 1,
        seed: 1,
        controls: Vec::new(),
        guess_mode: false,
        mask: None,
        regions: Vec::new(),
        ip_adapters: Vec::new(),
    };
    let err = sd.generate(&request, &mut |_| {}, &cancel).unwrap_err();
    assert!(matches!(err, kiln_inference::Error::Cancelled));
}

#[test]
fn tiled_vae_decode_covers_the_image_and_equals_plain_on_one_tile() {
    use kiln_inference::vae::tiled::tiled_decode;
    let sd = load("tiny-sd15");
    let small = Tensor::randn(0f32, 1.0, (1, 4, 16, 24), &Device::Cpu).unwrap();
    let plain = sd.vae().decode(&small).unwrap();
    let tiled = tiled_decode(sd.vae(), &small).unwrap();
    assert_close("one tile", &tiled, &plain, 0.0);
    let large = Tensor::randn(0f32, 1.0, (1, 4, 72, 40), &Device::Cpu).unwrap();
    let plain = sd.vae().decode(&large).unwrap();
    let tiled = tiled_decode(sd.vae(), &large).unwrap();
    assert_eq!(tiled.dims(), plain.dims());
    // The VAE's mid attention sees only its tile, so tiled ≠ plain exactly; the result must
    // still be the same picture: small mean difference, finite everywhere.
    let mean = (&tiled - &plain)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    eprintln!("tiled vs plain mean abs diff {mean}");
    assert!(
        mean.is_finite() && mean < 0.1,
        "tiled decode differs by {mean} on average"
    );
}

#[test]
fn taesd_decoder_matches_diffusers_in_both_layouts() {
    use kiln_inference::vae::taesd::{TaesdDecoder, find_taesd};
    let r = candle_core::safetensors::load(fixtures().join("refs/taesd.safetensors"), &Device::Cpu)
        .unwrap();
    let latent = &r["latent"];
    // diffusers' AutoencoderTiny.decode returns [−1,1]; TAESD proper is [0,1].
    let want = ((&r["decoded"] + 1.0).unwrap() / 2.0).unwrap();
    for path in [
        fixtures().join("tiny-taesd"),
        fixtures().join("tiny-taesd_decoder.safetensors"),
    ] {
        let dec = TaesdDecoder::load(&path, &Device::Cpu, candle_core::DType::F32).unwrap();
        let got = dec.decode(latent).unwrap();
        assert_close(&format!("taesd {path:?}"), &got, &want, 1e-4);
        let img = dec.decode_to_image(latent).unwrap();
        assert_eq!(img.dimensions(), (64, 64));
    }
    // Discovery wants the exact names `taesd[xl]_decoder.safetensors` / `taesd[xl]/`, so the
    // `tiny-` fixtures are not picked up.
    assert_eq!(find_taesd(&[fixtures()], false), None);
    assert_eq!(find_taesd(&[fixtures()], true), None);
}

#[test]
fn previews_use_taesd_when_its_weights_are_in_a_model_folder() {
    use kiln_inference::recipe::ModelRef;
    use kiln_inference::{Engine, Recipe};
    let recipe = Recipe {
        model: ModelRef {
            path: fixtures().join("tiny-sd15"),
            ..ModelRef::default()
        },
        prompt: "a cat".into(),
        steps: 2,
        width: 64,
        height: 64,
        ..Recipe::default()
    };
    let preview_size = |engine: &mut Engine| {
        let mut size = None;
        engine
            .run(
                &recipe,
                &mut |p| {
                    if let Some(img) = &p.preview {
                        size = Some(img.dimensions());
                    }
                },
                &CancelToken::default(),
            )
            .unwrap();
        size
    };
    let mut engine = Engine::new();
    engine.previews = true;
    // Without TAESD: the latent→RGB map, one pixel per latent cell.
    assert_eq!(preview_size(&mut engine), Some((8, 8)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny-taesd_decoder.safetensors"),
        dir.path().join("taesd_decoder.safetensors"),
    )
    .unwrap();
    let mut engine = Engine::new();
    engine.previews = true;
    engine.taesd_dirs = vec![dir.path().to_path_buf()];
    assert_eq!(preview_size(&mut engine), Some((64, 64)));
}
