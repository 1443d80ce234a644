//! ControlNet preprocessor parity (`tests/fixtures/make_preprocessors.py`): depth guides match
//! transformers' Depth Anything pipeline, line art controlnet_aux's `LineartDetector` formula,
//! and photo scribbles controlnet_aux's `HEDdetector(scribble=True)`, on tiny random networks in
//! the real layouts.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use candle_core::Device;
use image::{GrayImage, RgbImage};
use kiln_inference::recipe::Preprocessor;
use kiln_inference::vision::annotators::{Found, Network, Preprocessors, find_model};
use kiln_inference::vision::depth::DepthAnything;
use kiln_inference::vision::hed::{HedNet, scribble_from_edges};
use kiln_inference::vision::lineart::LineartNet;
use kiln_inference::vision::preprocess::{PreprocessOptions, guide_with, preprocess};
use kiln_inference::vision::scribble::ScribbleSource;
use kiln_tests::fixtures;
use serde_json::Value;

fn refs() -> Value {
    let path = fixtures().join("refs/preprocess/refs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rgb(rel: &str) -> RgbImage {
    image::open(fixtures().join(rel)).unwrap().to_rgb8()
}

fn gray(rel: &str) -> GrayImage {
    image::open(fixtures().join(rel)).unwrap().to_luma8()
}

/// (largest difference, pixels that differ).
fn compare(got: &GrayImage, want: &GrayImage) -> (u8, usize) {
    assert_eq!(got.dimensions(), want.dimensions());
    let diffs = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b));
    diffs.fold((0, 0), |(max, n), d| (max.max(d), n + usize::from(d > 0)))
}

/// Channel 0 of a guide (all three are equal).
fn channel0(image: &RgbImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        image::Luma([image.get_pixel(x, y).0[0]])
    })
}

fn cases<'a>(refs: &'a Value, kind: &str) -> &'a Vec<Value> {
    let cases = refs[kind].as_array().unwrap();
    assert!(cases.len() >= 3, "{kind}: expected the full case list");
    cases
}

#[test]
fn depth_matches_transformers() {
    let refs = refs();
    let model = fixtures().join(refs["depth_model"].as_str().unwrap());
    let net = DepthAnything::load(&model, &Device::Cpu).unwrap();
    let floats = candle_core::safetensors::load(
        fixtures().join("refs/preprocess/depth.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut compared_floats = 0;
    for case in cases(&refs, "depth") {
        let name = case["image"].as_str().unwrap();
        let image = rgb(name);
        assert!(
            case["distinct_levels"].as_u64().unwrap() > 100,
            "{name}: flat reference"
        );
        let pixels = net.pixel_values(&image).unwrap();
        let (_, _, h, w) = pixels.dims4().unwrap();
        let want_size: Vec<usize> = case["model_input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(vec![h, w], want_size, "{name}: network input size");
        let stem = name.trim_end_matches(".png");
        if let Some(want) = floats.get(&format!("depth.{stem}")) {
            let got = net.predict(&image).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("depth {name}: raw max error {err:e} (scale {scale})");
            assert!(
                err <= 1e-4 * scale.max(1.0),
                "{name}: depth floats differ by {err}"
            );
            compared_floats += 1;
        }
        let got = net.guide(&image).unwrap();
        let want = gray(case["png"].as_str().unwrap());
        let (max, n) = compare(&got, &want);
        eprintln!("depth {name}: max diff {max}, {n} pixels differ");
        assert!(max <= 1, "{name}: depth guide differs by {max}");
    }
    assert!(compared_floats >= 2);
}

#[test]
fn lineart_matches_controlnet_aux() {
    let refs = refs();
    let model = fixtures().join(refs["lineart_model"].as_str().unwrap());
    let net = LineartNet::load(&model, &Device::Cpu).unwrap();
    for case in cases(&refs, "lineart") {
        let name = case["image"].as_str().unwrap();
        assert!(
            case["distinct_levels"].as_u64().unwrap() > 100,
            "{name}: flat reference"
        );
        let got = net.guide(&rgb(name)).unwrap();
        let want = gray(case["png"].as_str().unwrap());
        let (max, n) = compare(&got, &want);
        eprintln!("lineart {name}: max diff {max}, {n} pixels differ");
        assert!(max <= 1, "{name}: line art differs by {max}");
    }
}

#[test]
fn photo_scribble_matches_controlnet_aux_hed() {
    let refs = refs();
    let model = fixtures().join(refs["hed_model"].as_str().unwrap());
    let net = HedNet::load(&model, &Device::Cpu).unwrap();
    let mut soft_checked = 0;
    for case in cases(&refs, "hed") {
        let name = case["image"].as_str().unwrap();
        let image = rgb(name);
        let white = case["white_share"].as_f64().unwrap();
        assert!(
            (0.02..0.9).contains(&white),
            "{name}: degenerate scribble reference"
        );
        let soft = net.soft_edges(&image).unwrap();
        if let Some(png) = case["soft_png"].as_str() {
            let (max, n) = compare(&soft, &gray(png));
            eprintln!("hed {name}: soft max diff {max}, {n} pixels differ");
            assert!(max <= 1, "{name}: soft edges differ by {max}");
            soft_checked += 1;
        }
        let got = scribble_from_edges(&soft);
        assert_eq!(got, net.scribble(&image).unwrap());
        let want = gray(case["png"].as_str().unwrap());
        let (_, n) = compare(&got, &want);
        let share = n as f64 / want.as_raw().len() as f64;
        eprintln!("scribble {name}: {n} pixels differ ({:.3}%)", share * 100.0);
        assert!(
            share <= 0.01,
            "{name}: {:.2}% of scribble pixels differ",
            share * 100.0
        );
    }
    assert!(soft_checked >= 2);
}

#[test]
fn preprocess_api_finds_models_in_model_folders() {
    let refs = refs();
    let image = rgb("init-64.png");
    let dirs = vec![fixtures()];
    assert_eq!(
        find_model(Network::DepthAnything, &dirs),
        Found::Model(fixtures().join("tiny-depth-anything"))
    );
    let mut networks = Preprocessors::new(dirs);
    let options = PreprocessOptions::default();
    let cpu = Device::Cpu;
    let depth = guide_with(
        &mut networks,
        Preprocessor::Depth,
        &image,
        None,
        &options,
        &cpu,
    )
    .unwrap();
    let want = gray(refs["depth"][0]["png"].as_str().unwrap());
    assert_eq!(refs["depth"][0]["image"], "init-64.png");
    let (max, _) = compare(&channel0(&depth), &want);
    assert!(max <= 1);
    // Three equal channels.
    assert!(depth.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    // The same through the one-call API with an explicit model.
    let model = fixtures().join(refs["depth_model"].as_str().unwrap());
    assert_eq!(
        preprocess(Preprocessor::Depth, &image, Some(&model)).unwrap(),
        depth
    );

    let lineart = guide_with(
        &mut networks,
        Preprocessor::Lineart,
        &image,
        None,
        &options,
        &cpu,
    )
    .unwrap();
    let want = gray(refs["lineart"][0]["png"].as_str().unwrap());
    let (max, _) = compare(&channel0(&lineart), &want);
    assert!(max <= 1);

    // A photo goes through HED; forcing sketch mode binarises instead.
    let photo = guide_with(
        &mut networks,
        Preprocessor::Scribble,
        &image,
        None,
        &options,
        &cpu,
    )
    .unwrap();
    let want = gray(refs["hed"][0]["png"].as_str().unwrap());
    let (_, n) = compare(&channel0(&photo), &want);
    assert!(n * 100 <= want.as_raw().len());
    let sketch_options = PreprocessOptions {
        scribble: ScribbleSource::Sketch,
        ..options
    };
    let sketch = guide_with(
        &mut networks,
        Preprocessor::Scribble,
        &image,
        None,
        &sketch_options,
        &cpu,
    )
    .unwrap();
    assert!(
        sketch
            .pixels()
            .all(|p| p.0 == [0, 0, 0] || p.0 == [255, 255, 255])
    );

    // Wrong model for the kind: a clear error, no panic.
    let hed = fixtures().join(refs["hed_model"].as_str().unwrap());
    let err = preprocess(Preprocessor::Lineart, &image, Some(&hed)).unwrap_err();
    assert!(err.to_string().contains("model0.1.weight"), "{err}");
}

/// The original Depth-Anything-V2 name of a transformers tensor (the inverse of
/// transformers' `convert_depth_anything_to_hf.py`), `None` for q/k/v (fused below).
fn original_name(name: &str) -> Option<String> {
    let fixed = [
        ("backbone.embeddings.cls_token", "pretrained.cls_token"),
        ("backbone.embeddings.mask_token", "pretrained.mask_token"),
        (
            "backbone.embeddings.position_embeddings",
            "pretrained.pos_embed",
        ),
    ];
    if let Some((_, to)) = fixed.iter().find(|(from, _)| *from == name) {
        return Some(to.to_string());
    }
    if name.contains(".attention.attention.") {
        return None;
    }
    let rules = [
        (
            "backbone.embeddings.patch_embeddings.projection.",
            "pretrained.patch_embed.proj.",
        ),
        ("backbone.encoder.layer.", "pretrained.blocks."),
        ("backbone.layernorm.", "pretrained.norm."),
        ("attention.output.dense.", "attn.proj."),
        ("layer_scale1.lambda1", "ls1.gamma"),
        ("layer_scale2.lambda1", "ls2.gamma"),
        ("head.conv1.", "depth_head.scratch.output_conv1."),
        ("head.conv2.", "depth_head.scratch.output_conv2.0."),
        ("head.conv3.", "depth_head.scratch.output_conv2.2."),
    ];
    let mut out = name.to_string();
    for (from, to) in rules {
        out = out.replace(from, to);
    }
    for i in 0..4 {
        out = out
            .replace(
                &format!("neck.reassemble_stage.layers.{i}.projection."),
                &format!("depth_head.projects.{i}."),
            )
            .replace(
                &format!("neck.reassemble_stage.layers.{i}.resize."),
                &format!("depth_head.resize_layers.{i}."),
            )
            .replace(
                &format!("neck.convs.{i}."),
                &format!("depth_head.scratch.layer{}_rn.", i + 1),
            )
            .replace(
                &format!("neck.fusion_stage.layers.{i}."),
                &format!("depth_head.scratch.refinenet{}.", 4 - i),
            );
    }
    Some(
        out.replace("projection.", "out_conv.")
            .replace("residual_layer", "resConfUnit")
            .replace("convolution", "conv")
            .replace("patch_embed.proj.out_conv.", "patch_embed.proj."),
    )
}

#[test]
fn original_layout_depth_anything_loads_like_its_transformers_conversion() {
    let refs = refs();
    let folder = fixtures().join(refs["depth_model"].as_str().unwrap());
    let hf =
        candle_core::safetensors::load(folder.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut original = std::collections::HashMap::new();
    for (name, tensor) in &hf {
        if let Some(to) = original_name(name) {
            original.insert(to, tensor.clone());
        }
    }
    for layer in 0..4 {
        for part in ["weight", "bias"] {
            let at = |p: &str| {
                hf[&format!("backbone.encoder.layer.{layer}.attention.attention.{p}.{part}")]
                    .clone()
            };
            let qkv = candle_core::Tensor::cat(&[at("query"), at("key"), at("value")], 0).unwrap();
            original.insert(format!("pretrained.blocks.{layer}.attn.qkv.{part}"), qkv);
        }
    }
    assert_eq!(original.len() + 4 * 2 * 2, hf.len());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("depth_anything_v2_vits_fp32.safetensors");
    candle_core::safetensors::save(&original, &file).unwrap();
    assert_eq!(
        find_model(Network::DepthAnything, &[dir.path().to_path_buf()]),
        Found::Model(file.clone())
    );
    let from_original = DepthAnything::load(&file, &Device::Cpu).unwrap();
    let from_hf = DepthAnything::load(&folder, &Device::Cpu).unwrap();
    for case in cases(&refs, "depth").iter().take(2) {
        let image = rgb(case["image"].as_str().unwrap());
        assert_eq!(
            from_original.guide(&image).unwrap(),
            from_hf.guide(&image).unwrap()
        );
    }
}
