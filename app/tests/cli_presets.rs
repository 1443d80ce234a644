//! `kiln generate --preset`, `--lora`, `<lora:…>` tags and `kiln presets` as users run them, on
//! the tiny fixtures (`tests/fixtures/tiny-sdxl`, `loras/` from `make_loras.py`, `tiny-tagger/`
//! from `make_tagger.py`).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `kiln` with its config and data folders inside `home` (no user files are touched).
fn kiln(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_CONFIG_DIR", home.join("config"))
        .env("KILN_DATA_DIR", home.join("data"))
        .output()
        .expect("run kiln")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A failing run: non-zero exit and a last line `error: …` mentioning `needles`.
fn assert_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic leaked: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "last line should be the error: {err}"
    );
    for needle in needles {
        assert!(
            last.contains(needle),
            "error should mention {needle:?}: {last}"
        );
    }
}

/// A models folder laid out like A1111's, holding what the clay preset looks for: the tiny
/// SDXL as `sd_xl_base_1.0`, the tiny SDXL kohya LoRA as `ClayAnimationRedm`, and the tiny
/// tagger as `wd-swinv2-tagger-v3`.
fn clay_models(home: &Path) -> PathBuf {
    let models = home.join("models");
    copy_dir(
        &fixtures().join("tiny-sdxl"),
        &models.join("Stable-diffusion/sd_xl_base_1.0"),
    );
    std::fs::create_dir_all(models.join("Lora")).unwrap();
    std::fs::copy(
        fixtures().join("loras/sdxl-kohya.safetensors"),
        models.join("Lora/ClayAnimationRedm.safetensors"),
    )
    .unwrap();
    let tagger = models.join("wd-swinv2-tagger-v3");
    std::fs::create_dir_all(&tagger).unwrap();
    for file in ["model.onnx", "selected_tags.csv"] {
        std::fs::copy(fixtures().join("tiny-tagger").join(file), tagger.join(file)).unwrap();
    }
    models
}

/// The recipe embedded in a PNG, via `kiln info --json`.
fn embedded_recipe(home: &Path, png: &Path) -> serde_json::Value {
    let info = kiln(home, &["info", png.to_str().unwrap(), "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    json["recipe"].clone()
}

#[test]
fn clay_preset_runs_on_a_photo_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    let models = clay_models(home.path());
    let out = home.path().join("clay.png");
    let init = fixtures().join("init-64.png");
    let result = kiln(
        home.path(),
        &[
            "generate",
            "--preset",
            "clay",
            "--init",
            init.to_str().unwrap(),
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "4",
            "--seed",
            "5",
            "--models-dir",
            models.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    assert_eq!(stdout(&result).trim(), out.to_str().unwrap());
    // The clay preset's canny ControlNet is not in this library: reported, not fatal.
    assert!(
        err.contains("warning:") && err.contains("controlnet-canny-sdxl-1.0"),
        "{err}"
    );
    let image = image::open(&out).unwrap();
    assert_eq!((image.width(), image.height()), (64, 64));

    let recipe = embedded_recipe(home.path(), &out);
    let loras = recipe["loras"].as_array().unwrap();
    assert_eq!(loras.len(), 1, "{recipe}");
    assert!(
        loras[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("ClayAnimationRedm.safetensors")
    );
    assert!((loras[0]["weight"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert!((recipe["init"]["strength"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert_eq!(recipe["steps"], 4);
    assert_eq!(recipe["seed"], 5);
    assert!(
        recipe["model"]["path"]
            .as_str()
            .unwrap()
            .ends_with("sd_xl_base_1.0")
    );
    // No --prompt: the photo's caption (refs/tagger.json, init-64.png) fills {prompt}.
    let prompt = recipe["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with("hatsune miku, solo, short hair")
            && prompt.contains("(claymation style:1.2)"),
        "{prompt}"
    );
}

#[test]
fn flags_override_the_preset_and_a_toml_file_works_as_a_preset() {
    let home = tempfile::tempdir().unwrap();
    let models = clay_models(home.path());
    // A user preset file given by path, without a photo: text-to-image with the template.
    let file = home.path().join("tiny-style.toml");
    std::fs::write(
        &file,
        "schema = 1\nid = \"tiny-style\"\nfamily = \"sdxl\"\nprompt = \"{prompt}, clay\"\n\
         steps = 3\ncfg = 5\nwidth = 64\nheight = 64\nnegative = \"blurry\"\n\n\
         [name]\nen = \"Tiny\"\n\n[model]\nhints = [\"sd_xl_base_1.0\"]\n\n\
         [[lora]]\nhints = [\"ClayAnimationRedm\"]\nweight = 0.4\n",
    )
    .unwrap();
    let out = home.path().join("t.png");
    let extra_lora = fixtures().join("loras/sdxl-kohya.safetensors");
    let lora_arg = format!("{}:0.6", extra_lora.display());
    let result = kiln(
        home.path(),
        &[
            "generate",
            "--preset",
            file.to_str().unwrap(),
            "--prompt",
            "a fox",
            "--cfg",
            "2",
            "--seed",
            "1",
            "--lora",
            &lora_arg,
            "--models-dir",
            models.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let recipe = &json["recipe"];
    assert_eq!(recipe["prompt"], "a fox, clay");
    assert_eq!(recipe["steps"], 3, "preset value");
    assert_eq!(recipe["cfg"], 2.0, "flag wins over the preset");
    assert_eq!(recipe["negative"], "blurry");
    assert_eq!(
        (recipe["width"].clone(), recipe["height"].clone()),
        (64.into(), 64.into())
    );
    let loras = recipe["loras"].as_array().unwrap();
    assert_eq!(loras.len(), 2, "{recipe}");
    assert!((loras[0]["weight"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    assert!((loras[1]["weight"].as_f64().unwrap() - 0.6).abs() < 1e-6);
}

#[test]
fn prompt_lora_tags_and_lora_flags_without_a_preset() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    std::fs::create_dir_all(models.join("loras")).unwrap();
    std::fs::copy(
        fixtures().join("loras/sd15-kohya.safetensors"),
        models.join("loras/Clay_SD15.safetensors"),
    )
    .unwrap();
    let model = fixtures().join("tiny-sd15");
    let out = home.path().join("o.png");
    let base = |prompt: &'static str| -> Vec<String> {
        [
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            prompt,
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "3",
            "--models-dir",
            models.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = base("<lora:clay_sd15:0.7> a clay fox");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = kiln(home.path(), &args);
    assert!(result.status.success(), "{}", stderr(&result));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let loras = json["recipe"]["loras"].as_array().unwrap();
    assert_eq!(loras.len(), 1);
    assert_eq!(loras[0]["name"], "Clay_SD15");
    assert!((loras[0]["weight"].as_f64().unwrap() - 0.7).abs() < 1e-6);

    // An unknown name lists the close ones.
    let args = base("<lora:clay_sd1:0.7> a clay fox");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_error(&kiln(home.path(), &args), &["clay_sd1", "Clay_SD15"]);

    // --lora with a missing file, and a bad weight.
    let mut args = base("a fox");
    args.extend(["--lora".into(), "/nope/x.safetensors:0.5".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_error(
        &kiln(home.path(), &args),
        &["not found", "/nope/x.safetensors"],
    );
    let mut args = base("a fox");
    args.extend(["--lora".into(), "x.safetensors:9".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_error(&kiln(home.path(), &args), &["weight"]);
}

#[test]
fn preset_errors_are_one_line_and_name_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = home.path().join("o.png");
    let out = out.to_str().unwrap();
    let empty = empty.to_str().unwrap();

    assert_error(
        &kiln(
            home.path(),
            &[
                "generate",
                "--preset",
                "clay",
                "--prompt",
                "x",
                "--models-dir",
                empty,
                "--output",
                out,
            ],
        ),
        &[
            "base model",
            "sd_xl_base_1.0.safetensors",
            "catalog id sdxl-base-1.0",
        ],
    );
    assert_error(
        &kiln(
            home.path(),
            &["generate", "--preset", "nope", "--output", out],
        ),
        &["no preset \"nope\"", "clay"],
    );
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "schema = 1\nid = \"bad\"\nfamily = \"sdxl\"\nprompt = \"{prompt}\"\nstepz = 3\n[name]\nen = \"B\"\n").unwrap();
    assert_error(
        &kiln(
            home.path(),
            &[
                "generate",
                "--preset",
                bad.to_str().unwrap(),
                "--output",
                out,
            ],
        ),
        &["stepz", "line 5", "bad.toml"],
    );
    assert_error(
        &kiln(home.path(), &["generate", "--prompt", "x", "--output", out]),
        &["--model"],
    );
    assert!(!Path::new(out).exists());
}

#[test]
fn presets_list_show_export_import_delete() {
    let home = tempfile::tempdir().unwrap();
    let list = kiln(home.path(), &["presets", "list", "--json"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let json: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ids: Vec<&str> = json["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "clay",
            "3d-cartoon",
            "anime",
            "watercolor",
            "pencil-sketch",
            "product-shot",
            "comic-ink",
            "picture-book"
        ]
    );
    assert_eq!(json["presets"][0]["name"]["zh-CN"], "黏土风");

    let show = kiln(home.path(), &["presets", "show", "clay"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let text = stdout(&show);
    for needle in [
        "lora-clay-animation-redmond-sdxl",
        "sdxl-base-1.0",
        "tagger-wd-swinv2-v3",
        "strength 0.5",
        "canny ControlNet",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    // Export a built-in, edit it, import it back as a user preset that overrides it.
    let dir = home.path().join("exported");
    let export = kiln(
        home.path(),
        &["presets", "export", "watercolor", dir.to_str().unwrap()],
    );
    assert!(export.status.success(), "{}", stderr(&export));
    assert!(dir.join("watercolor.png").is_file());
    let toml = dir.join("watercolor.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("steps = 30", "steps = 12")).unwrap();
    let import = kiln(home.path(), &["presets", "import", toml.to_str().unwrap()]);
    assert_error(&import, &["built-in", "--overwrite"]);
    let import = kiln(
        home.path(),
        &["presets", "import", toml.to_str().unwrap(), "--overwrite"],
    );
    assert!(import.status.success(), "{}", stderr(&import));
    let show = kiln(home.path(), &["presets", "show", "watercolor"]);
    assert!(stdout(&show).contains("steps 12"), "{}", stdout(&show));
    assert!(
        stdout(&show).contains("overrides built-in"),
        "{}",
        stdout(&show)
    );
    let delete = kiln(home.path(), &["presets", "delete", "watercolor"]);
    assert!(delete.status.success(), "{}", stderr(&delete));
    let show = kiln(home.path(), &["presets", "show", "watercolor"]);
    assert!(stdout(&show).contains("steps 30"), "{}", stdout(&show));
    assert_error(
        &kiln(home.path(), &["presets", "delete", "clay"]),
        &["built-in"],
    );
}

/// A clay portrait that keeps the face: the clay preset (tiny SDXL + its LoRA) with InstantID.
#[test]
fn clay_preset_with_a_face_keeps_it_through_instantid() {
    let home = tempfile::tempdir().unwrap();
    let models = clay_models(home.path());
    copy_dir(
        &fixtures().join("tiny-antelopev2"),
        &models.join("antelopev2"),
    );
    let instantid = models.join("InstantID");
    copy_dir(&fixtures().join("tiny-instantid"), &instantid);
    let convert = kiln(
        home.path(),
        &[
            "models",
            "convert",
            instantid.join("ip-adapter.bin").to_str().unwrap(),
        ],
    );
    assert!(convert.status.success(), "{}", stderr(&convert));
    let photo = fixtures().join("faces-640x480.png");
    let run = |out: &Path, face: bool| {
        let mut args = vec![
            "generate",
            "--preset",
            "clay",
            "--init",
            photo.to_str().unwrap(),
            "--width",
            "96",
            "--height",
            "72",
            "--steps",
            "3",
            "--seed",
            "5",
            "--models-dir",
            models.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        if face {
            args.extend(["--face", photo.to_str().unwrap()]);
        }
        let result = kiln(home.path(), &args);
        assert!(result.status.success(), "{}", stderr(&result));
    };
    let (with_face, without) = (home.path().join("face.png"), home.path().join("plain.png"));
    run(&with_face, true);
    run(&without, false);
    let recipe = embedded_recipe(home.path(), &with_face);
    assert!(!recipe["loras"].as_array().unwrap().is_empty(), "{recipe}");
    assert!(
        recipe["init"]["path"]
            .as_str()
            .unwrap()
            .ends_with("faces-640x480.png")
    );
    assert!(
        recipe["face"]["model"]
            .as_str()
            .unwrap()
            .ends_with("InstantID"),
        "{recipe}"
    );
    assert!(
        files::max_diff(&with_face, &without) > 3,
        "the face changed nothing"
    );
}
