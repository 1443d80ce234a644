//! Headless tests of LoRAs in the Generate panel and of the Presets section (egui_kittest, the
//! whole `KilnApp` with temp settings, data and model folders).
//!
//! The model folder holds the tiny fixtures under the names the clay preset looks for:
//! `tests/fixtures/tiny-sdxl` as `sd_xl_base_1.0/` (the preset's base-model hint) and
//! `tests/fixtures/loras/sdxl-kohya.safetensors` (from `make_loras.py`) as
//! `Lora/ClayAnimationRedmond.safetensors` (its LoRA hint), plus an SD1.5 LoRA
//! (`sd15-kohya.safetensors`) that an SDXL model cannot use.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

mod common;

use common::{AppHarness, app, app_mut, drop_files, harness, open_section, step_until};
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use kiln::gui::form::LoraRow;
use kiln::gui::state::{NoticeKind, Section};
use kiln::gui::{AppPaths, KilnApp};
use kiln::library::settings::{Language, Settings};
use kiln::worker::Runner;
use kiln_inference::io::family::Family;
use kiln_inference::recipe::InitImage;
use kiln_inference::{CancelToken, LoraSpec, Output, Progress, Recipe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a test waits for the app to reach a state.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A LoRA header shaped for SD1.x (768-wide cross-attention keys; the tiny SD1.5 fixture LoRA
/// is 32 wide, a family the scan cannot name), with zero weights.
fn write_sd15_shaped_lora(path: &Path) {
    let bytes = 4 * 768 * 4;
    let mut header = format!(
        "{{\"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight\":\
         {{\"dtype\":\"F32\",\"shape\":[4,768],\"data_offsets\":[0,{bytes}]}}}}"
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + bytes, 0);
    std::fs::write(path, file).unwrap();
}

/// Temp folders: settings, data, outputs, and a model folder with the tiny fixtures named as
/// the clay preset expects.
struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    fn new() -> Self {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
        };
        let models = env.models();
        copy_dir(
            &fixtures().join("tiny-sdxl"),
            &models.join("sd_xl_base_1.0"),
        );
        std::fs::create_dir_all(models.join("Lora")).unwrap();
        std::fs::copy(
            fixtures().join("loras/sdxl-kohya.safetensors"),
            env.clay_lora(),
        )
        .unwrap();
        write_sd15_shaped_lora(&models.join("Lora/sd15_detail.safetensors"));
        env
    }

    fn models(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    fn sdxl_model(&self) -> PathBuf {
        self.models().join("sd_xl_base_1.0")
    }

    fn clay_lora(&self) -> PathBuf {
        self.models().join("Lora/ClayAnimationRedmond.safetensors")
    }

    fn paths(&self) -> AppPaths {
        common::app_paths(self.dir.path())
    }

    fn settings(&self, language: Language) -> Settings {
        Settings {
            output_dir: self.dir.path().join("out"),
            model_dirs: vec![self.models()],
            language,
            ..Settings::default()
        }
    }

    /// A photo for img2img (96×64).
    fn photo(&self) -> PathBuf {
        let path = self.dir.path().join("photo.png");
        if !path.exists() {
            std::fs::copy(fixtures().join("photo-96x64.png"), &path).unwrap();
        }
        path
    }
}

/// A runner that records the recipes it is given (and the thread it runs on) and returns a
/// small image with `warnings`.
#[derive(Clone, Default)]
struct RecordingRunner {
    recipes: Arc<Mutex<Vec<Recipe>>>,
    threads: Arc<Mutex<Vec<String>>>,
    warnings: Vec<String>,
}

impl Runner for RecordingRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        _on_progress: &mut dyn FnMut(&Progress),
        _cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.recipes.lock().unwrap().push(recipe.clone());
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        self.threads.lock().unwrap().push(thread);
        Ok(vec![Output {
            image: image::RgbImage::from_pixel(32, 32, image::Rgb([200, 120, 80])),
            recipe: recipe.clone(),
            warnings: self.warnings.clone(),
        }])
    }
}

/// The app on `env` with a recording runner, after the model scan and the preset listing.
fn app_on(env: &TestEnv, language: Language, runner: RecordingRunner) -> AppHarness {
    let (paths, settings) = (env.paths(), env.settings(language));
    let mut harness =
        harness(move |ctx| KilnApp::with_runner(ctx, paths, settings, runner).unwrap());
    app_mut(&mut harness).set_persist(false);
    step_until(&mut harness, TIMEOUT, "the model scan and presets", |app| {
        app.state.models.scanned && app.state.presets.loaded
    });
    harness
}

/// Selects the tiny SDXL model in the form.
fn use_sdxl(harness: &mut AppHarness, env: &TestEnv) {
    let form = &mut app_mut(harness).state.form;
    form.set_model(env.sdxl_model(), Some(Family::Sdxl), None);
    form.prompt = "a fox".into();
    harness.step();
}

/// Focuses the text field labelled `label` and types `text`.
fn type_into(harness: &mut AppHarness, label: &str, text: &str) {
    harness
        .get_by_role_and_label(Role::TextInput, label)
        .focus();
    harness.step();
    harness
        .get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    harness.step();
}

#[test]
fn lora_rows_add_remove_and_weight_reach_the_recipe() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    use_sdxl(&mut harness, &env);
    assert_eq!(
        app(&harness).state.form.lora_library.len(),
        2,
        "both LoRA files are in the library"
    );

    // "Add LoRA" lists the SDXL LoRA; the SD1.5 one is there but disabled.
    harness.get_by_label("Add LoRA").click();
    harness.step();
    harness.step();
    let sd15 = harness.get_by_label_contains("sd15_detail");
    assert!(sd15.accesskit_node().is_disabled());
    harness
        .get_by_label_contains("ClayAnimationRedmond")
        .click();
    harness.step();
    harness.step();
    let rows = &app(&harness).state.form.loras;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].path, env.clay_lora());
    assert_eq!(rows[0].weight, 1.0);
    assert_eq!(rows[0].family, Some(Family::Sdxl));

    // The weight slider is labelled by the row's name.
    harness
        .get_by_role_and_label(Role::Slider, "ClayAnimationRedmond")
        .set_value_accesskit(0.6);
    harness.step();
    harness.step();
    let recipe = app(&harness).state.form.to_recipe().unwrap();
    assert_eq!(recipe.loras.len(), 1);
    assert_eq!(recipe.loras[0].path, env.clay_lora());
    assert_eq!(recipe.loras[0].name, "ClayAnimationRedmond");
    assert!((recipe.loras[0].weight - 0.6).abs() < 1e-6);

    // Generate submits it with the LoRA.
    harness
        .get_by_role_and_label(Role::Button, "Generate")
        .click();
    harness.step();
    step_until(&mut harness, TIMEOUT, "the job to end", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let last = app(&harness).state.jobs.selected_result().unwrap();
    assert_eq!(last.recipe.loras.len(), 1);

    // Remove it.
    harness.get_by_label("✕").click();
    harness.step();
    assert!(app(&harness).state.form.loras.is_empty());
    assert!(
        app(&harness)
            .state
            .form
            .to_recipe()
            .unwrap()
            .loras
            .is_empty()
    );
}

#[test]
fn an_unknown_lora_tag_disables_generate_with_its_name() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    use_sdxl(&mut harness, &env);
    app_mut(&mut harness).state.form.prompt = "a fox <lora:plasticine_xl:0.8>".into();
    harness.step();
    harness.step();
    let button = harness.get_by_role_and_label(Role::Button, "Generate");
    assert!(button.accesskit_node().is_disabled());
    harness.get_by_label_contains("No LoRA named “plasticine_xl”");

    // A tag naming a library file (case-insensitive, as A1111) resolves into the recipe.
    app_mut(&mut harness).state.form.prompt = "a fox <lora:clayanimationredmond:0.7>".into();
    harness.step();
    harness.step();
    let button = harness.get_by_role_and_label(Role::Button, "Generate");
    assert!(!button.accesskit_node().is_disabled());
    let recipe = app(&harness).state.form.to_recipe().unwrap();
    assert_eq!(recipe.loras.len(), 1);
    assert_eq!(recipe.loras[0].path, env.clay_lora());
    assert!((recipe.loras[0].weight - 0.7).abs() < 1e-6);
    // The tag stays in the prompt: the engine's parser drops it.
    assert!(recipe.prompt.contains("<lora:clayanimationredmond:0.7>"));
}

#[test]
fn restored_lora_rows_mark_missing_files_and_engine_warnings_show_with_the_result() {
    let env = TestEnv::new();
    let runner = RecordingRunner {
        warnings: vec!["LoRA ClayAnimationRedmond: 3 of 71 layers match nothing".into()],
        ..RecordingRunner::default()
    };
    let mut harness = app_on(&env, Language::English, runner);
    use_sdxl(&mut harness, &env);
    let gone = env.dir.path().join("elsewhere/old_style.safetensors");
    let recipe = Recipe {
        model: kiln_inference::recipe::ModelRef {
            path: env.sdxl_model(),
            hash: None,
            family: Some("sdxl".into()),
        },
        prompt: "a fox".into(),
        loras: vec![
            LoraSpec {
                path: env.clay_lora(),
                weight: 0.8,
                name: "ClayAnimationRedmond".into(),
                hash: Some("0123456789ab".into()),
            },
            LoraSpec {
                path: gone.clone(),
                weight: 0.5,
                name: "old_style".into(),
                hash: None,
            },
        ],
        ..Recipe::default()
    };
    let ctx = harness.ctx.clone();
    app_mut(&mut harness).route(kiln::gui::Action::ReuseSettings(Box::new(recipe)), &ctx);
    step_until(
        &mut harness,
        TIMEOUT,
        "the missing file to be noticed",
        |app| app.state.form.loras.iter().any(|r| r.missing),
    );
    let rows = &app(&harness).state.form.loras;
    assert_eq!(rows.len(), 2);
    assert!(!rows[0].missing);
    assert_eq!((rows[1].path.clone(), rows[1].missing), (gone, true));
    harness.step();
    let button = harness.get_by_role_and_label(Role::Button, "Generate");
    assert!(button.accesskit_node().is_disabled());
    harness.get_by_label_contains("LoRA file “old_style” is not on this computer");

    // Without the missing row it generates; the engine's warning is shown with the result.
    app_mut(&mut harness).state.form.loras.remove(1);
    harness.step();
    harness
        .get_by_role_and_label(Role::Button, "Generate")
        .click();
    step_until(
        &mut harness,
        TIMEOUT,
        "the result with its warning",
        |app| {
            app.state
                .jobs
                .selected_result()
                .is_some_and(|r| !r.warnings.is_empty())
        },
    );
    harness.step();
    harness.get_by_label_contains("3 of 71 layers match nothing");
}

#[test]
fn the_gallery_lists_the_builtins_in_both_languages_and_search_filters() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    open_section(&mut harness, "Presets");
    assert_eq!(app(&harness).state.section, Section::Presets);
    for name in [
        "Clay",
        "3D cartoon",
        "Anime",
        "Watercolor",
        "Pencil sketch",
        "Product shot",
        "Comic ink",
        "Picture book",
    ] {
        harness.get_by_role_and_label(Role::Button, name);
    }
    assert!(app(&harness).state.presets.entries.len() >= 8);
    assert!(
        app(&harness)
            .state
            .presets
            .entries
            .iter()
            .all(|e| app(&harness).state.presets.thumbnails.contains_key(e.id())),
        "every built-in has its thumbnail as a texture"
    );

    // Search filters the cards.
    harness.get_by_role(Role::TextInput).focus();
    harness.step();
    harness.get_by_role(Role::TextInput).type_text("water");
    harness.step();
    harness.step();
    harness.get_by_role_and_label(Role::Button, "Watercolor");
    assert!(
        harness
            .query_by_role_and_label(Role::Button, "Clay")
            .is_none()
    );
    app_mut(&mut harness).state.presets.search.clear();

    // The same cards in Chinese after switching the language.
    let ctx = harness.ctx.clone();
    app_mut(&mut harness).route(kiln::gui::Action::SetLanguage(kiln::i18n::Lang::ZhCn), &ctx);
    harness.step();
    harness.step();
    harness.get_by_role_and_label(Role::Tab, "风格预设");
    for name in [
        "黏土风",
        "3D 卡通",
        "动漫",
        "水彩",
        "铅笔素描",
        "电商白底图",
        "漫画墨线",
        "绘本",
    ] {
        harness.get_by_role_and_label(Role::Button, name);
    }
    // Chinese search words match Chinese names.
    app_mut(&mut harness).state.presets.search = "黏土".into();
    harness.step();
    harness.step();
    harness.get_by_role_and_label(Role::Button, "黏土风");
    assert_eq!(app(&harness).state.presets.visible().len(), 1);
}

#[test]
fn clicking_the_clay_card_applies_it_to_the_form() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    app_mut(&mut harness).state.form.prompt = "a red fox".into();
    open_section(&mut harness, "Presets");
    harness.get_by_role_and_label(Role::Button, "Clay").click();
    step_until(&mut harness, TIMEOUT, "the preset to be applied", |app| {
        app.state.section == Section::Generate && !app.state.form.loras.is_empty()
    });
    let form = &app(&harness).state.form;
    assert_eq!(form.model.as_deref(), Some(env.sdxl_model().as_path()));
    assert_eq!(form.family, Some(Family::Sdxl));
    assert!(
        form.prompt.starts_with("a red fox, (claymation style:1.2)"),
        "{}",
        form.prompt
    );
    assert!(form.negative.contains("photorealistic"));
    assert_eq!(
        form.sampler,
        kiln_inference::SamplerKind::DpmPlusPlus2MKarras
    );
    assert_eq!((form.steps, form.cfg), (30, 7.0));
    assert_eq!((form.width, form.height), (1024, 1024));
    assert_eq!(form.loras.len(), 1);
    assert_eq!(form.loras[0].path, env.clay_lora());
    assert!((form.loras[0].weight - 0.9).abs() < 1e-6);
    let recipe = form.to_recipe().unwrap();
    assert_eq!(recipe.loras.len(), 1);

    // Applying again keeps the user's words instead of wrapping the template twice.
    open_section(&mut harness, "Presets");
    harness.get_by_role_and_label(Role::Button, "Clay").click();
    step_until(
        &mut harness,
        TIMEOUT,
        "the preset to be applied again",
        |app| app.state.section == Section::Generate && app.state.presets.busy.is_empty(),
    );
    let prompt = &app(&harness).state.form.prompt;
    assert_eq!(prompt.matches("claymation style").count(), 1, "{prompt}");

    // With an init image, the preset's strength comes too.
    app_mut(&mut harness).state.form.init = Some(env.photo());
    open_section(&mut harness, "Presets");
    harness.get_by_role_and_label(Role::Button, "Clay").click();
    step_until(&mut harness, TIMEOUT, "the preset with the photo", |app| {
        app.state.section == Section::Generate && (app.state.form.strength - 0.5).abs() < 1e-6
    });
}

/// Drops `photo` onto the card called `name` (the pointer over it, as while dragging).
fn drop_on_card(harness: &mut AppHarness, name: &str, photo: &Path) {
    drop_many_on_card(harness, name, &[photo.to_path_buf()]);
}

/// Drops several files (or folders) onto the card called `name`.
fn drop_many_on_card(harness: &mut AppHarness, name: &str, paths: &[PathBuf]) {
    let card = harness.get_by_role_and_label(Role::Button, name).rect();
    harness.hover_at(card.center());
    harness.step();
    drop_files(harness, paths);
}

#[test]
fn dropping_photos_on_a_card_runs_a_batch_with_that_preset() {
    let env = TestEnv::new();
    let runner = RecordingRunner::default();
    let recipes = runner.recipes.clone();
    let mut harness = app_on(&env, Language::English, runner);
    open_section(&mut harness, "Presets");
    let album = env.dir.path().join("album");
    std::fs::create_dir_all(&album).unwrap();
    let photos = [album.join("one.png"), album.join("two.png")];
    for photo in &photos {
        std::fs::copy(fixtures().join("photo-96x64.png"), photo).unwrap();
    }
    // A third photo in the folder that was not dropped stays untouched.
    std::fs::copy(fixtures().join("photo-96x64.png"), album.join("three.png")).unwrap();
    drop_many_on_card(&mut harness, "Clay", &photos);
    assert_eq!(app(&harness).state.section, Section::Batch);
    step_until(&mut harness, TIMEOUT, "the batch to finish", |app| {
        app.state
            .batch
            .run
            .as_ref()
            .is_some_and(|run| run.ended.is_some())
    });
    let run = app(&harness).state.batch.run.as_ref().unwrap();
    assert_eq!((run.done, run.failed.len()), (2, 0), "{:?}", run.failed);
    assert_eq!(run.results.len(), 2);
    let output = run.output.clone().unwrap();
    assert_eq!(
        output,
        album.with_file_name("album-kiln").canonicalize().unwrap()
    );
    let recipes = recipes.lock().unwrap().clone();
    assert_eq!(recipes.len(), 2);
    for recipe in &recipes {
        // The clay preset: its model and LoRA, each photo as the init image.
        assert_eq!(recipe.model.path, env.sdxl_model());
        assert_eq!(recipe.loras.len(), 1);
        assert!(recipe.init.is_some());
    }
    let mut written: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".png"))
        .collect();
    written.sort();
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written[0].starts_with("one-") && written[1].starts_with("two-"));
}

#[test]
fn dropping_a_photo_on_a_card_runs_the_preset_on_it() {
    let env = TestEnv::new();
    let runner = RecordingRunner::default();
    let recipes = runner.recipes.clone();
    let mut harness = app_on(&env, Language::English, runner);
    open_section(&mut harness, "Presets");
    let photo = env.photo();
    drop_on_card(&mut harness, "Clay", &photo);
    step_until(&mut harness, TIMEOUT, "the preset job to run", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let recipes = recipes.lock().unwrap().clone();
    assert_eq!(recipes.len(), 1);
    let recipe = &recipes[0];
    assert_eq!(recipe.model.path, env.sdxl_model());
    assert_eq!(
        recipe.init,
        Some(InitImage {
            path: photo,
            strength: 0.5
        })
    );
    assert_eq!(recipe.loras.len(), 1);
    assert_eq!(recipe.loras[0].path, env.clay_lora());
    assert!((recipe.loras[0].weight - 0.9).abs() < 1e-6);
    // The photo's aspect ratio (3:2) at the preset's pixel count.
    let aspect = recipe.width as f32 / recipe.height as f32;
    assert!(
        (aspect / 1.5 - 1.0).abs() < 0.01,
        "{}x{}",
        recipe.width,
        recipe.height
    );
    assert!(
        recipe.prompt.contains("claymation style"),
        "{}",
        recipe.prompt
    );
    // No tagger in the model folder: the worker's caption step says so next to the result.
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert!(
        result.warnings.iter().any(|w| w.contains("not captioned")),
        "{:?}",
        result.warnings
    );
    // The ControlNet the preset would use on photos is reported, not silently dropped.
    assert!(
        app(&harness)
            .state
            .notices
            .iter()
            .any(|n| n.kind == NoticeKind::Warning && n.text.contains("canny"))
    );
}

#[test]
fn a_preset_whose_lora_is_missing_names_what_to_download() {
    let env = TestEnv::new();
    std::fs::remove_file(env.clay_lora()).unwrap();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    open_section(&mut harness, "Presets");
    harness.get_by_role_and_label(Role::Button, "Clay").click();
    step_until(&mut harness, TIMEOUT, "the error", |app| {
        app.state
            .notices
            .iter()
            .any(|n| n.kind == NoticeKind::Error)
    });
    let notice = &app(&harness).state.notices[0].text;
    assert!(notice.contains("needs its LoRA"), "{notice}");
    assert!(
        notice.contains("lora-clay-animation-redmond-sdxl"),
        "{notice}"
    );
    assert_eq!(app(&harness).state.section, Section::Presets);
    assert!(app(&harness).state.form.loras.is_empty());
}

#[test]
fn save_and_delete_a_user_preset() {
    let env = TestEnv::new();
    let mut harness = app_on(&env, Language::English, RecordingRunner::default());
    use_sdxl(&mut harness, &env);
    {
        let form = &mut app_mut(&mut harness).state.form;
        form.prompt = "a fox, ink wash".into();
        form.steps = 12;
        form.add_lora(LoraRow::new(env.clay_lora(), 0.4));
    }
    // A result to take the thumbnail from.
    harness
        .get_by_role_and_label(Role::Button, "Generate")
        .click();
    step_until(&mut harness, TIMEOUT, "a result", |app| {
        app.state.jobs.selected_result().is_some()
    });
    open_section(&mut harness, "Presets");
    harness.get_by_label("Save current settings…").click();
    harness.step();
    harness.step();
    type_into(&mut harness, "Name", "My Ink Fox");
    type_into(&mut harness, "Description", "Ink and a fox");
    harness.get_by_role_and_label(Role::Button, "Save").click();
    step_until(
        &mut harness,
        TIMEOUT,
        "the saved preset in the gallery",
        |app| {
            let errors: Vec<_> = app
                .state
                .notices
                .iter()
                .filter(|n| n.kind == NoticeKind::Error)
                .collect();
            assert!(errors.is_empty(), "{errors:?}");
            app.state.presets.entry("my-ink-fox").is_some() && app.state.presets.dialog.is_none()
        },
    );
    let user_dir = env.paths().config_dir.join("presets");
    assert!(user_dir.join("my-ink-fox.toml").is_file());
    assert!(
        user_dir.join("my-ink-fox.png").is_file(),
        "thumbnail from the last result"
    );
    let entry = app(&harness).state.presets.entry("my-ink-fox").unwrap();
    assert_eq!(entry.preset.prompt, "{prompt}, a fox, ink wash");
    assert_eq!(entry.preset.steps, Some(12));
    assert_eq!(entry.preset.loras.len(), 1);
    assert!(
        app(&harness)
            .state
            .presets
            .thumbnails
            .contains_key("my-ink-fox")
    );
    harness.step();
    harness.get_by_role_and_label(Role::Button, "My Ink Fox");

    // Delete it from its card menu (the last card), confirming.
    let menus = harness.get_all_by_label("…").collect::<Vec<_>>();
    menus.last().unwrap().click();
    harness.step();
    harness.step();
    harness.get_by_label("Delete…").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("Delete “My Ink Fox”?");
    harness
        .get_by_role_and_label(Role::Button, "Delete")
        .click();
    step_until(&mut harness, TIMEOUT, "the preset to be gone", |app| {
        app.state.presets.entry("my-ink-fox").is_none()
    });
    assert!(!user_dir.join("my-ink-fox.toml").exists());
    assert!(!user_dir.join("my-ink-fox.png").exists());
}

#[test]
fn a_captioning_preset_captions_the_photo_on_the_worker_thread() {
    let env = TestEnv::new();
    // The tiny WD14 tagger (make_tagger.py) under the name the clay preset's catalog entry hints.
    let tagger = env.models().join("wd-swinv2-tagger-v3");
    std::fs::create_dir_all(&tagger).unwrap();
    for file in ["model.onnx", "selected_tags.csv"] {
        std::fs::copy(fixtures().join("tiny-tagger").join(file), tagger.join(file)).unwrap();
    }
    let runner = RecordingRunner::default();
    let (recipes, threads) = (runner.recipes.clone(), runner.threads.clone());
    let mut harness = app_on(&env, Language::English, runner);
    open_section(&mut harness, "Presets");
    let photo = env.dir.path().join("init-64.png");
    std::fs::copy(fixtures().join("init-64.png"), &photo).unwrap();
    drop_on_card(&mut harness, "Clay", &photo);
    // What the UI queued has no caption yet: the template alone.
    let queued = app(&harness).worker().queue();
    if let Some(recipe) = queued.first().and_then(|job| job.kind.recipe()) {
        assert!(!recipe.prompt.contains("hatsune miku"), "{}", recipe.prompt);
    }
    step_until(&mut harness, TIMEOUT, "the captioned job to run", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let recipes = recipes.lock().unwrap().clone();
    assert_eq!(recipes.len(), 1);
    // The caption (refs/tagger.json for init-64.png) fills {prompt}; made where the job ran.
    let prompt = &recipes[0].prompt;
    assert!(
        prompt.starts_with("hatsune miku, solo, short hair")
            && prompt.contains("(claymation style:1.2)"),
        "{prompt}"
    );
    assert_eq!(threads.lock().unwrap().as_slice(), ["kiln-worker"]);
    assert_eq!(recipes[0].loras.len(), 1);
    let result = app(&harness).state.jobs.selected_result().unwrap();
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
}

/// The clay preset end to end in the app with the real engine: a photo dropped on its card is
/// captioned, restyled with the preset's LoRA (and canny ControlNet) at the preset's strength,
/// and saved with its recipe. A user copy of the preset at 64×64 and 4 steps keeps the run
/// short; everything else is the built-in clay preset.
#[test]
fn the_clay_preset_runs_end_to_end_with_the_real_engine() {
    let env = TestEnv::new();
    let models = env.models();
    let tagger = models.join("wd-swinv2-tagger-v3");
    std::fs::create_dir_all(&tagger).unwrap();
    for file in ["model.onnx", "selected_tags.csv"] {
        std::fs::copy(fixtures().join("tiny-tagger").join(file), tagger.join(file)).unwrap();
    }
    copy_dir(
        &fixtures().join("tiny-controlnet-sdxl"),
        &models.join("ControlNet/controlnet-canny-sdxl-1.0"),
    );
    let clay =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets/clay.toml"))
            .unwrap()
            .replace("width = 1024", "width = 64")
            .replace("height = 1024", "height = 64")
            .replace("steps = 30", "steps = 4");
    let user_presets = kiln::gui::services::presets::user_presets_dir(&env.paths().config_dir);
    std::fs::create_dir_all(&user_presets).unwrap();
    std::fs::write(user_presets.join("clay.toml"), clay).unwrap();

    let (paths, settings) = (env.paths(), env.settings(Language::English));
    let mut harness = harness(move |ctx| {
        KilnApp::with_runner(ctx, paths, settings, kiln_inference::Engine::new()).unwrap()
    });
    app_mut(&mut harness).set_persist(false);
    step_until(&mut harness, TIMEOUT, "the model scan and presets", |app| {
        app.state.models.scanned && app.state.presets.loaded
    });
    open_section(&mut harness, "Presets");
    let photo = env.dir.path().join("init-64.png");
    std::fs::copy(fixtures().join("init-64.png"), &photo).unwrap();
    drop_on_card(&mut harness, "Clay", &photo);
    step_until(&mut harness, TIMEOUT, "the clay job to finish", |app| {
        !app.state.jobs.ended.is_empty()
    });
    let result = app(&harness)
        .state
        .jobs
        .selected_result()
        .expect("a result");
    assert!(result.path.is_file(), "{:?}", result.path);
    assert_eq!(result.size, [64, 64]);
    let recipe = &result.recipe;
    assert!(
        recipe.prompt.starts_with("hatsune miku") && recipe.prompt.contains("claymation style"),
        "{}",
        recipe.prompt
    );
    assert_eq!(recipe.loras.len(), 1);
    assert_eq!(recipe.loras[0].path, env.clay_lora());
    assert_eq!(recipe.loras[0].hash.as_ref().map(String::len), Some(12));
    assert_eq!(recipe.init.as_ref().map(|i| i.strength), Some(0.5));
    assert_eq!(recipe.controls.len(), 1, "the canny ControlNet is used");
    assert_eq!(
        recipe.controls[0].preprocessor,
        kiln_inference::recipe::Preprocessor::Canny
    );
    // The PNG on disk carries the same recipe.
    let bytes = std::fs::read(&result.path).unwrap();
    let saved = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(&saved, recipe);
}
