//! Preset library tests: the built-ins, the user store, resolution against a model library.

use super::*;
use crate::library::catalog::Catalog;
use crate::library::settings::Language;

#[test]
fn every_builtin_preset_loads_and_validates() {
    let results = store::builtin_parse_results();
    assert!(results.len() >= 8);
    for (file, result) in &results {
        let preset = result.as_ref().unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(format!("{}.toml", preset.id), *file);
        assert!(!preset.name.en.is_empty(), "{file}");
        assert!(
            preset.name.zh_cn.as_deref().is_some_and(|z| !z.is_empty()),
            "{file}: no Chinese name"
        );
        assert!(!preset.description.en.is_empty(), "{file}: no description");
        assert!(
            preset
                .description
                .zh_cn
                .as_deref()
                .is_some_and(|z| !z.is_empty()),
            "{file}: no Chinese description"
        );
        assert!(preset.model.is_some(), "{file}: no recommended model");
        assert!(preset.image.is_some(), "{file}: no [image] settings");
    }
    let ids: Vec<&str> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|p| p.id.as_str())
        .collect();
    for wanted in [
        "clay",
        "3d-cartoon",
        "anime",
        "watercolor",
        "pencil-sketch",
        "product-shot",
        "comic-ink",
        "picture-book",
    ] {
        assert!(ids.contains(&wanted), "missing built-in {wanted}");
    }
    assert_eq!(store::builtin_presets().len(), results.len());
}

#[test]
fn clay_preset_matches_the_issue() {
    let clay = store::builtin_presets()
        .into_iter()
        .find(|e| e.preset.id == "clay")
        .unwrap();
    let preset = &clay.preset;
    assert_eq!(preset.family, kiln_inference::io::family::Family::Sdxl);
    assert!(preset.prompt.contains("claymation style"));
    assert_eq!(preset.loras.len(), 1);
    let image = preset.image.as_ref().unwrap();
    assert_eq!(image.strength, 0.5);
    assert!(image.auto_caption.is_some());
    assert_eq!(clay.name(Language::SimplifiedChinese), "黏土风");
}

#[test]
fn builtin_thumbnails_are_256_pngs() {
    for entry in store::builtin_presets() {
        let png = entry.thumbnail_png.as_ref().unwrap();
        let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.preset.id));
        assert_eq!(
            (image.width(), image.height()),
            (256, 256),
            "{}",
            entry.preset.id
        );
        assert!(
            png.len() < 200_000,
            "{}: thumbnail too large",
            entry.preset.id
        );
    }
}

#[test]
fn every_catalog_id_of_the_builtins_exists_and_lists_the_preset() {
    let catalog = Catalog::builtin();
    for entry in store::builtin_presets() {
        let preset = &entry.preset;
        for id in preset.catalog_ids() {
            let model = catalog
                .get(id)
                .unwrap_or_else(|| panic!("{}: unknown catalog id {id}", preset.id));
            assert!(
                model.presets.contains(&preset.id),
                "catalog entry {id} should list preset {}",
                preset.id
            );
        }
    }
    // And the other way round.
    let ids: Vec<String> = store::builtin_presets()
        .into_iter()
        .map(|e| e.preset.id)
        .collect();
    for model in &catalog.models {
        for preset in &model.presets {
            assert!(
                ids.contains(preset),
                "{}: unknown preset {preset}",
                model.id
            );
            let entry = store::builtin_presets()
                .into_iter()
                .find(|e| &e.preset.id == preset)
                .unwrap();
            assert!(
                entry.preset.catalog_ids().contains(&model.id.as_str()),
                "{} lists {preset}, which does not use it",
                model.id
            );
        }
    }
}

// --- The user store ---------------------------------------------------------------------------

fn user_preset(id: &str) -> Preset {
    let mut preset = Preset::new(
        id,
        LocalizedText::new("My style", Some("我的风格")),
        kiln_inference::io::family::Family::Sd1,
        "{prompt}, my style",
    );
    preset.steps = Some(20);
    preset.model = Some(ModelSpec {
        catalog: None,
        hints: vec!["tiny-sd15".into()],
    });
    preset
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 120, 40]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[test]
fn user_presets_save_override_delete_import_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = PresetStore::new(dir.path().join("presets"));
    let builtins = store.list().presets.len();
    assert!(builtins >= 8);

    // Save a new preset with a thumbnail of another size: stored as a 256 square.
    let mine = user_preset("mine");
    let path = store.save(&mine, Some(&png(512, 300)), false).unwrap();
    assert!(path.ends_with("presets/mine.toml"));
    let list = store.list();
    assert_eq!(list.presets.len(), builtins + 1);
    let entry = list.get("mine").unwrap();
    assert_eq!(entry.preset, mine);
    assert!(!entry.is_builtin());
    let thumb = image::load_from_memory(entry.thumbnail_png.as_ref().unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 256));
    assert_eq!(list.search("我的").len(), 1);
    assert_eq!(list.search("MY STYLE")[0].id(), "mine");

    // Never overwrite without asking.
    let mut changed = mine.clone();
    changed.steps = Some(30);
    match store.save(&changed, None, false) {
        Err(PresetError::Conflict {
            existing: Existing::UserPreset(p),
            ..
        }) => assert_eq!(p, path),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store.save(&changed, None, true).unwrap();
    let entry = store.get("mine").unwrap();
    assert_eq!(entry.preset.steps, Some(30));
    assert!(entry.thumbnail_png.is_some(), "the thumbnail is kept");

    // Overriding a built-in asks first, then replaces it in place.
    let clay = user_preset("clay");
    assert!(matches!(
        store.save(&clay, None, false),
        Err(PresetError::Conflict {
            existing: Existing::BuiltIn,
            ..
        })
    ));
    store.save(&clay, None, true).unwrap();
    let list = store.list();
    assert_eq!(list.presets.len(), builtins + 1);
    assert_eq!(list.presets[0].id(), "clay");
    assert!(matches!(
        list.presets[0].source,
        PresetSource::User {
            overrides_builtin: true,
            ..
        }
    ));
    store.delete("clay").unwrap();
    assert!(store.get("clay").unwrap().is_builtin(), "built-in is back");
    assert!(matches!(
        store.delete("anime"),
        Err(PresetError::BuiltInReadOnly { .. })
    ));
    assert!(matches!(
        store.delete("nope"),
        Err(PresetError::NotFound { .. })
    ));

    // Export (TOML + PNG), refuse to overwrite, import into another store.
    let out = dir.path().join("export");
    let written = store.export("mine", &out, false).unwrap();
    assert_eq!(written, [out.join("mine.toml"), out.join("mine.png")]);
    assert!(matches!(
        store.export("mine", &out, false),
        Err(PresetError::Conflict {
            existing: Existing::File(_),
            ..
        })
    ));
    let builtin_export = store.export("watercolor", &out, false).unwrap();
    let text = std::fs::read_to_string(&builtin_export[0]).unwrap();
    assert!(text.starts_with("# Watercolor"), "comments are kept");

    let other = PresetStore::new(dir.path().join("other"));
    let imported = other.import(&out.join("mine.toml"), false).unwrap();
    assert_eq!(imported.preset, changed);
    assert!(imported.thumbnail_png.is_some());
    assert!(matches!(
        other.import(&out.join("mine.toml"), false),
        Err(PresetError::Conflict { .. })
    ));
    store.delete("mine").unwrap();
    assert!(store.get("mine").is_err());
    assert!(!path.with_extension("png").exists());
}

#[test]
fn broken_user_files_are_reported_with_their_line_and_the_rest_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = PresetStore::new(dir.path().to_path_buf());
    std::fs::write(
        dir.path().join("bad.toml"),
        "schema = 1\nid = \"bad\"\nfamily = \"sdxl\"\nprompt = \"{prompt}\"\nsteps = 0\n\n[name]\nen = \"Bad\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
    store.save(&user_preset("good"), None, false).unwrap();
    let list = store.list();
    assert!(list.get("good").is_some());
    assert!(list.get("bad").is_none());
    assert_eq!(list.issues.len(), 1);
    let message = list.issues[0].error.to_string();
    assert!(
        message.contains("steps must be between 1 and 150"),
        "{message}"
    );
    assert!(message.contains("line 5"), "{message}");
    assert!(message.ends_with("bad.toml"), "{message}");
    // A bad import is refused before anything is written.
    let bad = dir.path().join("bad.toml");
    let fresh = PresetStore::new(dir.path().join("fresh"));
    assert!(matches!(
        fresh.import(&bad, false),
        Err(PresetError::Invalid { line: Some(5), .. })
    ));
    assert!(!dir.path().join("fresh").exists());
}

#[test]
fn ids_for_new_presets_are_free_slugs() {
    let dir = tempfile::tempdir().unwrap();
    let store = PresetStore::new(dir.path().to_path_buf());
    assert_eq!(store::slugify("My Clay v2!"), "my-clay-v2");
    assert_eq!(store::slugify("黏土"), "preset");
    assert_eq!(store.free_id("Clay"), "clay-2");
    assert_eq!(store.free_id("Fresh idea"), "fresh-idea");
}

#[test]
fn a_preset_is_made_from_the_current_settings() {
    use kiln_inference::recipe::{InitImage, ModelRef};
    let recipe = kiln_inference::Recipe {
        model: ModelRef {
            path: "/models/dreamshaper_8.safetensors".into(),
            hash: None,
            family: Some("sd1".into()),
        },
        prompt: "<lora:clay:0.7> a fox, claymation".into(),
        negative: Some("blurry".into()),
        steps: 22,
        width: 512,
        height: 768,
        init: Some(InitImage {
            path: "/x.png".into(),
            strength: 0.45,
        }),
        loras: vec![kiln_inference::LoraSpec {
            path: "/models/Lora/clay.safetensors".into(),
            weight: 0.7,
            name: "clay".into(),
            hash: None,
        }],
        ..kiln_inference::Recipe::default()
    };
    let preset = preset_from_recipe("fox", LocalizedText::new("Fox", None), &recipe, None).unwrap();
    assert_eq!(preset.prompt, "{prompt}, a fox, claymation");
    assert_eq!(preset.model.as_ref().unwrap().hints, ["dreamshaper_8"]);
    assert_eq!(preset.loras[0].hints, ["clay"]);
    assert_eq!(preset.loras[0].weight, 0.7);
    assert_eq!(preset.image.as_ref().unwrap().strength, 0.45);
    assert_eq!((preset.width, preset.height), (Some(512), Some(768)));
    // It saves and loads back.
    let dir = tempfile::tempdir().unwrap();
    let store = PresetStore::new(dir.path().to_path_buf());
    store.save(&preset, None, false).unwrap();
    assert_eq!(store.get("fox").unwrap().preset, preset);
}

// --- Resolution -------------------------------------------------------------------------------

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A models folder laid out like A1111's: the tiny SDXL under the clay preset's base-model name
/// and the tiny SDXL LoRA under its LoRA name.
fn clay_library(dir: &std::path::Path) -> ModelLibrary {
    let models = dir.join("models");
    std::fs::create_dir_all(models.join("Stable-diffusion")).unwrap();
    std::fs::create_dir_all(models.join("Lora")).unwrap();
    symlink_dir(
        &fixtures().join("tiny-sdxl"),
        &models.join("Stable-diffusion/sd_xl_base_1.0"),
    );
    std::fs::copy(
        fixtures().join("loras/sdxl-kohya.safetensors"),
        models.join("Lora/ClayAnimationRedm.safetensors"),
    )
    .unwrap();
    ModelLibrary::scan(&[models])
}

#[cfg(unix)]
fn symlink_dir(from: &std::path::Path, to: &std::path::Path) {
    std::os::unix::fs::symlink(from.canonicalize().unwrap(), to).unwrap();
}

#[cfg(not(unix))]
fn symlink_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in walk(from) {
        let target = to.join(entry.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
}

#[cfg(not(unix))]
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn builtin(id: &str) -> Preset {
    store::builtin_presets()
        .into_iter()
        .find(|e| e.preset.id == id)
        .unwrap()
        .preset
}

#[test]
fn clay_resolves_against_a_library_by_hints() {
    let dir = tempfile::tempdir().unwrap();
    let library = clay_library(dir.path());
    let clay = builtin("clay");
    let request = ResolveRequest {
        prompt: "a red fox".into(),
        ..ResolveRequest::default()
    };
    let resolved = resolve(&clay, &request, &library).unwrap();
    let recipe = &resolved.recipe;
    assert!(
        recipe.model.path.ends_with("sd_xl_base_1.0"),
        "{:?}",
        recipe.model
    );
    assert_eq!(recipe.model.family.as_deref(), Some("sdxl"));
    assert_eq!(recipe.loras.len(), 1);
    assert!(
        recipe.loras[0]
            .path
            .ends_with("ClayAnimationRedm.safetensors")
    );
    assert_eq!(recipe.loras[0].weight, 0.9);
    assert_eq!(recipe.loras[0].name, "ClayAnimationRedm");
    assert!(
        recipe
            .prompt
            .starts_with("a red fox, (claymation style:1.2), clay animation"),
        "{}",
        recipe.prompt
    );
    assert_eq!(
        (recipe.steps, recipe.cfg, recipe.width, recipe.height),
        (30, 7.0, 1024, 1024)
    );
    assert!(recipe.init.is_none());
    assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);

    // On a photo: the preset's strength, the photo's aspect, ControlNet reported as a warning.
    let photo = fixtures().join("init-64.png");
    let request = ResolveRequest {
        prompt: String::new(),
        init_image: Some(photo.clone()),
        ..ResolveRequest::default()
    };
    let resolved = resolve_with_caption(&clay, &request, &library).unwrap();
    let init = resolved.recipe.init.as_ref().unwrap();
    assert_eq!(init.path, photo);
    assert_eq!(init.strength, 0.5);
    assert_eq!(
        (resolved.recipe.width, resolved.recipe.height),
        (1024, 1024)
    );
    // No ControlNet in this library: a warning with the download, and no control in the recipe.
    assert!(resolved.recipe.controls.is_empty());
    let missing = resolved.warnings.iter().find_map(|w| match w {
        PresetWarning::ControlNetMissing {
            kind: ControlKind::Canny,
            catalog_id,
            ..
        } => Some(catalog_id.clone()),
        _ => None,
    });
    assert_eq!(missing, Some(Some("controlnet-canny-sdxl-1.0".to_string())));
    assert!(
        resolved
            .warnings
            .iter()
            .any(|w| w.to_string().contains("controlnet-canny-sdxl-1.0"))
    );
    // No tagger in this library: the caption is skipped with the catalog id to download, and the
    // template stands alone without a dangling comma.
    let skipped = resolved.warnings.iter().find_map(|w| match w {
        PresetWarning::CaptionSkipped { catalog_id, .. } => Some(catalog_id.clone()),
        _ => None,
    });
    assert_eq!(skipped, Some(Some("tagger-wd-swinv2-v3".to_string())));
    assert!(
        resolved.recipe.prompt.starts_with("(claymation style:1.2)"),
        "{}",
        resolved.recipe.prompt
    );

    // A caption given by the caller fills {prompt} when the prompt is empty.
    let request = ResolveRequest {
        init_image: Some(photo),
        caption: Some("1girl, smile, outdoors".into()),
        ..ResolveRequest::default()
    };
    let resolved = resolve_with_caption(&clay, &request, &library).unwrap();
    assert!(
        resolved
            .recipe
            .prompt
            .starts_with("1girl, smile, outdoors, (claymation style:1.2)"),
        "{}",
        resolved.recipe.prompt
    );
}

#[test]
fn missing_models_name_the_file_and_the_catalog_id() {
    let dir = tempfile::tempdir().unwrap();
    let library = clay_library(dir.path());
    std::fs::remove_file(dir.path().join("models/Lora/ClayAnimationRedm.safetensors")).unwrap();
    let library_without_lora = ModelLibrary::scan(library.dirs());
    let error = resolve(
        &builtin("clay"),
        &ResolveRequest::default(),
        &library_without_lora,
    )
    .unwrap_err();
    match &error {
        PresetError::MissingModel {
            role, catalog_id, ..
        } => {
            assert_eq!(*role, ModelRole::Lora);
            assert_eq!(
                catalog_id.as_deref(),
                Some("lora-clay-animation-redmond-sdxl")
            );
        }
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    for needle in [
        "LoRA",
        "ClayAnimationRedm.safetensors",
        "lora-clay-animation-redmond-sdxl",
        "huggingface.co/artificialguybr/ClayAnimationRedmond",
    ] {
        assert!(message.contains(needle), "{needle} in {message}");
    }

    let empty = ModelLibrary::scan(&[dir.path().join("nothing")]);
    let error = resolve(&builtin("anime"), &ResolveRequest::default(), &empty).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("base model"), "{message}");
    assert!(
        message.contains("animagine-xl-3.1.safetensors"),
        "{message}"
    );
    assert!(message.contains("catalog id animagine-xl-3.1"), "{message}");
}

#[test]
fn explicit_and_fallback_models_and_family_checks() {
    let dir = tempfile::tempdir().unwrap();
    let empty = ModelLibrary::scan(&[dir.path().to_path_buf()]);
    let sdxl = fixtures().join("tiny-sdxl");
    let sd15 = fixtures().join("tiny-sd15");

    // An explicit model replaces the preset's, even when the library lacks it.
    let request = ResolveRequest {
        prompt: "a fox".into(),
        model_override: Some(sdxl.clone()),
        ..ResolveRequest::default()
    };
    let resolved = resolve(&builtin("pencil-sketch"), &request, &empty).unwrap();
    assert_eq!(resolved.recipe.model.path, sdxl);
    assert!(resolved.warnings.is_empty());

    // A fallback model is used (with a warning) only when the preset's is missing.
    let request = ResolveRequest {
        prompt: "a fox".into(),
        fallback_model: Some(sdxl.clone()),
        ..ResolveRequest::default()
    };
    let resolved = resolve(&builtin("pencil-sketch"), &request, &empty).unwrap();
    assert_eq!(resolved.recipe.model.path, sdxl);
    assert!(matches!(
        resolved.warnings.as_slice(),
        [PresetWarning::UsingFallbackModel { .. }]
    ));
    // … and only when its family matches.
    let request = ResolveRequest {
        fallback_model: Some(sd15.clone()),
        ..ResolveRequest::default()
    };
    assert!(matches!(
        resolve(&builtin("pencil-sketch"), &request, &empty),
        Err(PresetError::MissingModel { .. })
    ));

    // An SD1 model with an SDXL preset: a warning without LoRAs, an error with them.
    let request = ResolveRequest {
        model_override: Some(sd15.clone()),
        ..ResolveRequest::default()
    };
    let resolved = resolve(&builtin("pencil-sketch"), &request, &empty).unwrap();
    assert!(matches!(
        resolved.warnings.as_slice(),
        [PresetWarning::FamilyMismatch { .. }]
    ));
    let error = resolve(&builtin("clay"), &request, &empty).unwrap_err();
    assert!(error.to_string().contains("LoRAs made for SDXL"), "{error}");
}

#[test]
fn auto_caption_fills_the_prompt_from_the_photo() {
    let dir = tempfile::tempdir().unwrap();
    let library = clay_library(dir.path());
    // The tiny tagger, filed under the clay preset's tagger name.
    let tagger = dir.path().join("models/wd-swinv2-tagger-v3");
    std::fs::create_dir_all(&tagger).unwrap();
    for file in ["model.onnx", "selected_tags.csv"] {
        std::fs::copy(fixtures().join("tiny-tagger").join(file), tagger.join(file)).unwrap();
    }
    let library = ModelLibrary::scan(library.dirs());
    let clay = builtin("clay");
    let spec = clay.image.as_ref().unwrap().auto_caption.as_ref().unwrap();
    assert_eq!(
        caption::find_tagger(&clay, spec, &library).unwrap(),
        tagger.join("model.onnx")
    );
    let request = ResolveRequest {
        init_image: Some(fixtures().join("init-64.png")),
        ..ResolveRequest::default()
    };
    let resolved = resolve_with_caption(&clay, &request, &library).unwrap();
    // refs/tagger.json (make_tagger.py): the caption of init-64.png at 0.35 / 0.85.
    let caption = "hatsune miku, solo, short hair, long hair, yellow background, :d, \
                   simple background, outdoors, holding cup \\(object\\), 1girl";
    let caption = caption.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        resolved
            .recipe
            .prompt
            .starts_with(&format!("{caption}, (claymation style:1.2)")),
        "{}",
        resolved.recipe.prompt
    );
    assert!(
        !resolved
            .warnings
            .iter()
            .any(|w| matches!(w, PresetWarning::CaptionSkipped { .. })),
        "{:?}",
        resolved.warnings
    );
    // A prompt from the user wins over the caption.
    let request = ResolveRequest {
        prompt: "a fox".into(),
        init_image: Some(fixtures().join("init-64.png")),
        ..ResolveRequest::default()
    };
    let resolved = resolve_with_caption(&clay, &request, &library).unwrap();
    assert!(
        resolved.recipe.prompt.starts_with("a fox, "),
        "{}",
        resolved.recipe.prompt
    );
}

#[test]
fn the_controlnet_of_a_preset_is_used_on_photos_when_it_is_in_the_library() {
    use crate::library::models::{ModelEntry, ModelFileKind};
    use kiln_inference::io::family::Family;
    let dir = tempfile::tempdir().unwrap();
    let base = clay_library(dir.path());
    // A diffusers ControlNet folder named like the catalog's repository.
    let folder = dir
        .path()
        .join("models/ControlNet/controlnet-canny-sdxl-1.0");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), "{}").unwrap();
    let mut entries = base.entries().to_vec();
    entries.push(ModelEntry {
        path: folder.join("diffusion_pytorch_model.fp16.safetensors"),
        name: "controlnet-canny-sdxl-1.0".into(),
        kind: ModelFileKind::ControlNet,
        family: Some(Family::Sdxl),
        size_bytes: 1,
        problem: None,
        hash: None,
    });
    let library = ModelLibrary::from_entries(base.dirs().to_vec(), entries);
    let photo = fixtures().join("init-64.png");
    let request = ResolveRequest {
        prompt: "a fox".into(),
        init_image: Some(photo.clone()),
        ..ResolveRequest::default()
    };
    let resolved = resolve(&builtin("clay"), &request, &library).unwrap();
    let controls = &resolved.recipe.controls;
    assert_eq!(controls.len(), 1, "{:?}", resolved.warnings);
    assert_eq!(controls[0].model, folder);
    assert_eq!(controls[0].image, photo);
    assert_eq!(
        controls[0].preprocessor,
        kiln_inference::recipe::Preprocessor::Canny
    );
    assert_eq!(controls[0].scale, 0.5);
    assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
    // Text-to-image: no ControlNet.
    let resolved = resolve(&builtin("clay"), &ResolveRequest::default(), &library).unwrap();
    assert!(resolved.recipe.controls.is_empty());

    // A guide type without a preprocessor yet is a warning.
    let mut depth = builtin("clay");
    depth
        .image
        .as_mut()
        .unwrap()
        .controlnet
        .as_mut()
        .unwrap()
        .kind = ControlKind::Depth;
    let resolved = resolve(&depth, &request, &library).unwrap();
    assert!(resolved.recipe.controls.is_empty());
    assert!(matches!(
        resolved.warnings.as_slice(),
        [PresetWarning::ControlNetUnavailable {
            kind: ControlKind::Depth
        }]
    ));
}

#[test]
fn prompt_lora_tags_resolve_in_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let library = clay_library(dir.path());
    let loras = resolve_prompt_loras(
        "<lora:clayanimationredm:0.6> a fox, <lora:ClayAnimationRedm>",
        &library,
    )
    .unwrap();
    assert_eq!(loras.len(), 2);
    assert_eq!(loras[0].weight, 0.6);
    assert_eq!(loras[1].weight, 1.0);
    let mut merged = Vec::new();
    merge_loras(&mut merged, loras);
    assert_eq!(merged.len(), 1, "the same file once, last weight");
    assert_eq!(merged[0].weight, 1.0);
    match resolve_prompt_loras("<lora:ClayAnimation:1> x", &library) {
        Err(PresetError::UnknownLora { close, .. }) => assert_eq!(close, ["ClayAnimationRedm"]),
        other => panic!("{other:?}"),
    }
    assert!(
        resolve_prompt_loras("no tags", &library)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn presets_using_a_non_commercial_model_carry_the_restriction() {
    let clay = store::builtin_presets()
        .into_iter()
        .find(|e| e.id() == "clay")
        .unwrap();
    assert!(!clay.preset.non_commercial(), "clay uses open models");
    let mut turbo = clay.preset.clone();
    if let Some(model) = &mut turbo.model {
        model.catalog = Some("sdxl-turbo".into());
    }
    assert!(Catalog::builtin().get("sdxl-turbo").unwrap().non_commercial);
    assert!(turbo.non_commercial());
}
