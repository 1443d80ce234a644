//! LoRA parity: renders with kohya, PEFT and several LoRAs match diffusers (`load_lora_weights` +
//! `fuse_lora`, `tests/fixtures/make_loras.py`) within 3/255; Kiln adapts exactly the layers
//! diffusers adapts; LoHa/LoKr deltas match the FORMATS §5.2 formulas computed in torch; changing
//! LoRAs restores the base model exactly; wrong-family LoRAs are refused.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use candle_core::{Device, Tensor};
use kiln_inference::adapters::lora::LoraFile;
use kiln_inference::io::model::ModelFiles;
use kiln_inference::pipelines::stable_diffusion::StableDiffusion;
use kiln_inference::{CancelToken, Engine, Error, Recipe};
use kiln_tests::{
    check_reference_cases, fixtures, image_diff, max_abs_diff, recipe_of, reference_cases,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn cases() -> Vec<Value> {
    reference_cases("refs/lora/cases.json")
}

fn case(name: &str) -> Value {
    cases()
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn render(engine: &mut Engine, recipe: &Recipe) -> image::RgbImage {
    let outputs = engine
        .run(recipe, &mut |_| {}, &CancelToken::default())
        .unwrap_or_else(|e| panic!("{e}"));
    outputs.into_iter().next().unwrap().image
}

fn reference(case: &Value, key: &str) -> image::RgbImage {
    image::open(fixtures().join(case[key].as_str().unwrap()))
        .unwrap()
        .to_rgb8()
}

fn load(model: &str) -> StableDiffusion {
    let files = ModelFiles::open(&fixtures().join(model)).unwrap();
    StableDiffusion::load(&files, &Device::Cpu, &mut |_| {}).unwrap()
}

fn lora(file: &str) -> LoraFile {
    LoraFile::open(&fixtures().join("loras").join(file)).unwrap()
}

/// Text-encoder names with and without transformers 5's dropped `text_model.` level compare equal.
fn canonical(name: &str) -> String {
    name.replace("text_model.", "")
}

#[test]
fn every_lora_render_matches_diffusers() {
    let cases = cases();
    assert!(cases.len() >= 7, "expected the full LoRA case list");
    for case in &cases {
        assert!(
            case["max_diff_vs_base"].as_u64().unwrap() >= 20,
            "{}: the fixture LoRA must change the image",
            case["name"]
        );
    }
    // One engine for all cases: LoRAs are swapped on the loaded model, never reloaded.
    let failures = check_reference_cases(&cases);
    assert!(
        failures.is_empty(),
        "LoRA renders differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn removing_and_changing_loras_restores_the_base_model_exactly() {
    let with = case("sd15_lora_kohya");
    let mut base = recipe_of(&with);
    base.loras.clear();
    let fresh = render(&mut Engine::new(), &base);
    let mut engine = Engine::new();
    let lora_image = render(&mut engine, &recipe_of(&with));
    assert!(image_diff(&lora_image, &fresh).unwrap().max > 20);
    // Another weight on the same loaded model, then none: identical to a fresh engine.
    let mut other = recipe_of(&with);
    other.loras[0].weight = -0.5;
    render(&mut engine, &other);
    let after = render(&mut engine, &base);
    assert_eq!(
        after.as_raw(),
        fresh.as_raw(),
        "base weights not restored exactly"
    );
    // And back to the LoRA: identical to the first LoRA render.
    let again = render(&mut engine, &recipe_of(&with));
    assert_eq!(again.as_raw(), lora_image.as_raw());
}

#[test]
fn kiln_adapts_exactly_the_layers_diffusers_adapts() {
    for (model, file) in [
        ("tiny-sd15", "sd15-kohya"),
        ("tiny-sd15", "sd15-kohya-b"),
        ("tiny-sd15", "sd15-peft"),
        ("tiny-sd15.safetensors", "sd15-kohya"),
        ("tiny-sdxl", "sdxl-kohya"),
    ] {
        let targets: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("refs/lora/{file}.targets.json")))
                .unwrap(),
        )
        .unwrap();
        let expected: BTreeMap<String, BTreeSet<String>> = targets
            .as_object()
            .unwrap()
            .iter()
            .filter(|(component, _)| {
                ["unet", "text_encoder", "text_encoder_2"].contains(&component.as_str())
            })
            .map(|(component, names)| {
                let names = names.as_array().unwrap();
                let set = names
                    .iter()
                    .map(|n| canonical(n.as_str().unwrap()))
                    .collect();
                (component.clone(), set)
            })
            .collect();
        assert!(!expected.is_empty(), "{file}: no target lists");
        let sd = load(model);
        let applied = sd
            .lora_patches(&[(lora(&format!("{file}.safetensors")), 1.0)])
            .unwrap();
        let report = &applied.reports[0];
        assert!(
            report.unmatched.is_empty(),
            "{file}: {:?}",
            report.unmatched
        );
        let got: BTreeMap<String, BTreeSet<String>> = applied
            .patches
            .iter()
            .map(|(c, p)| (c.clone(), p.keys().map(|n| canonical(n)).collect()))
            .collect();
        let expected: BTreeMap<_, _> = expected
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect();
        assert_eq!(got, expected, "{file} on {model}");
    }
}

#[test]
fn loha_and_lokr_deltas_follow_the_formulas() {
    let refs = candle_core::safetensors::load(
        fixtures().join("refs/lora/lycoris_deltas.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let sd = load("tiny-sd15");
    let mut checked = 0;
    for stem in ["sd15-loha", "sd15-lokr"] {
        let applied = sd
            .lora_patches(&[(lora(&format!("{stem}.safetensors")), 1.0)])
            .unwrap();
        let mut got: HashMap<String, &Tensor> = HashMap::new();
        for (component, patches) in &applied.patches {
            for (name, tensor) in patches {
                got.insert(format!("{stem}/{component}/{}", canonical(name)), tensor);
            }
        }
        let expected: Vec<(&String, &Tensor)> = refs
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{stem}/")))
            .collect();
        assert_eq!(got.len(), expected.len(), "{stem}: {:?}", got.keys());
        for (key, want) in expected {
            let key = canonical(key);
            let have = got.get(&key).unwrap_or_else(|| panic!("{key} not patched"));
            assert_eq!(have.dims(), want.dims(), "{key}");
            let diff = max_abs_diff(have, want);
            let scale = max_abs_diff(want, &want.zeros_like().unwrap());
            assert!(diff <= 1e-5 * scale.max(1.0), "{key}: {diff} (|Δ| {scale})");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} LyCORIS deltas checked");
}

#[test]
fn a_lora_for_another_family_is_refused_clearly() {
    let mut sdxl = load("tiny-sdxl");
    let err = sdxl
        .set_loras(&[(lora("sd15-kohya.safetensors"), 1.0)])
        .unwrap_err();
    assert!(matches!(err, Error::Lora { .. }), "{err}");
    assert!(err.to_string().contains("another model family"), "{err}");
    let mut sd15 = load("tiny-sd15");
    let err = sd15
        .set_loras(&[(lora("sdxl-kohya.safetensors"), 1.0)])
        .unwrap_err();
    assert!(err.to_string().contains("another model family"), "{err}");
    // Through the engine: the error reaches the caller and the engine still renders the base.
    let base_case = case("sdxl_lora_kohya");
    let mut wrong = recipe_of(&base_case);
    wrong.loras[0].path = fixtures().join("loras/sd15-kohya.safetensors");
    let mut engine = Engine::new();
    let err = engine
        .run(&wrong, &mut |_| {}, &CancelToken::default())
        .unwrap_err();
    assert!(err.to_string().contains("LoRA"), "{err}");
    let mut base = recipe_of(&base_case);
    base.loras.clear();
    let image = render(&mut engine, &base);
    let diff = image_diff(&image, &reference(&base_case, "base_png")).unwrap();
    assert!(diff.within_standard(), "{diff:?}");
}

#[test]
fn unmatched_layers_are_reported_with_a_count_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("loras/sd15-kohya-b.safetensors");
    let mut tensors = candle_core::safetensors::load(&source, &Device::Cpu).unwrap();
    let down = Tensor::zeros((2, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let up = Tensor::zeros((8, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    for i in 0..3 {
        tensors.insert(
            format!("lora_unet_no_such_layer_{i}.lora_down.weight"),
            down.clone(),
        );
        tensors.insert(
            format!("lora_unet_no_such_layer_{i}.lora_up.weight"),
            up.clone(),
        );
    }
    let path = dir.path().join("extra.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let mut recipe = recipe_of(&case("sd15_lora_two"));
    recipe.loras = vec![kiln_inference::LoraSpec {
        path,
        weight: 1.0,
        name: "extra".into(),
        hash: None,
    }];
    recipe.steps = 2;
    let outputs = Engine::new()
        .run(&recipe, &mut |_| {}, &CancelToken::default())
        .unwrap();
    let warnings = &outputs[0].warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("3 of 71 layers"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("lora_unet_no_such_layer_0"),
        "{}",
        warnings[0]
    );
    // The output records the LoRA with A1111's 12-digit short hash.
    let hash = outputs[0].recipe.loras[0].hash.clone().unwrap();
    assert_eq!(hash.len(), 12);
}

#[test]
fn a_file_without_lora_layers_is_refused() {
    let err =
        LoraFile::open(&fixtures().join("tiny-sd15/unet/diffusion_pytorch_model.safetensors"))
            .unwrap_err();
    assert!(err.to_string().contains("no LoRA"), "{err}");
    let err = LoraFile::open(&fixtures().join("loras/missing.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
