//! `kiln comic` as users run it: the example story (`docs/examples/story.txt`, clay preset) on
//! the tiny SDXL fixture with the tiny kohya LoRA standing in for the clay LoRA; page, PDF and
//! panels written with the right sizes, never overwriting; bad scripts fail with the line.

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

/// A models folder with what the clay preset looks for (tiny SDXL, tiny SDXL LoRA).
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
    models
}

fn example_story() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples/story.txt")
        .display()
        .to_string()
}

#[test]
fn the_example_story_renders_a_page_pdf_and_panels() {
    let home = tempfile::tempdir().unwrap();
    let models = clay_models(home.path());
    let out = home.path().join("out/page.png");
    let pdf = home.path().join("out/page.pdf");
    let encoder = fixtures().join("tiny-ip-adapter/image_encoder");
    let args = [
        "comic",
        "--script",
        &example_story(),
        "--models-dir",
        models.to_str().unwrap(),
        "--size",
        "64x64",
        "--steps",
        "4",
        "--seed",
        "11",
        "--page-width",
        "400",
        "--score-encoder",
        encoder.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--pdf",
        pdf.to_str().unwrap(),
        "--json",
    ];
    let result = kiln(home.path(), &args);
    assert!(result.status.success(), "{}", stderr(&result));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["layout"], "grid-2x2");
    assert_eq!(json["page"], out.to_str().unwrap());
    let page = image::open(&out).unwrap().to_rgb8();
    assert_eq!(page.width(), 400);
    assert_eq!(json["size"][1].as_u64().unwrap(), u64::from(page.height()));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    let panels = json["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 4);
    for (k, panel) in panels.iter().enumerate() {
        let path = PathBuf::from(panel["path"].as_str().unwrap());
        assert_eq!(
            path,
            home.path().join(format!("out/page-panel-{}.png", k + 1))
        );
        assert_eq!(image::image_dimensions(&path).unwrap(), (64, 64));
        assert_eq!(panel["seed"].as_u64().unwrap(), 11 + k as u64);
        // The preset's template around the character's description.
        assert!(panel["prompt"].as_str().unwrap().contains("claymation"));
    }
    assert!(panels[0]["prompt"].as_str().unwrap().contains("red scarf"));
    // Mia's second reference panel is scored against her first.
    let score = panels[1]["consistency"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&score), "{score}");
    assert!(panels[0]["consistency"].is_null());

    // Run again: nothing is overwritten; new names are used.
    let before = std::fs::read(&out).unwrap();
    let again = kiln(home.path(), &args);
    assert!(again.status.success(), "{}", stderr(&again));
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        json["page"],
        home.path().join("out/page-1.png").to_str().unwrap()
    );
    assert_eq!(
        json["pdf"],
        home.path().join("out/page-1.pdf").to_str().unwrap()
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // Same seeds, same pictures.
    let second = image::open(home.path().join("out/page-1.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(second, page);
}

#[test]
fn bad_scripts_and_arguments_fail_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("bad.txt");
    std::fs::write(
        &script,
        "character Mia: a girl\n---\n[Mia] reads\n[Nobody] sings\n",
    )
    .unwrap();
    let out = home.path().join("page.png");
    let model = fixtures().join("tiny-sdxl");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "comic",
            "--script",
            script.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        kiln(home.path(), &args)
    };
    let result = run(&[]);
    files::clean_error(&result, "line 4");
    std::fs::write(&script, "character Mia: a girl\n---\n[Mia] reads\n").unwrap();
    files::clean_error(&run(&["--size", "60x64"]), "multiple of 8");
    files::clean_error(&run(&["--layout", "nope"]), "unknown layout");
    files::clean_error(&run(&["--pdf", "page.png"]), ".pdf");
    assert!(!out.exists());
}

/// The largest channel difference between panel `k` of two pages (`PAGE-panel-K.png`).
fn panel_diff(page_a: &Path, page_b: &Path, k: usize) -> u8 {
    let panel = |page: &Path| {
        let stem = page.file_stem().unwrap().to_str().unwrap();
        image::open(page.with_file_name(format!("{stem}-panel-{k}.png")))
            .unwrap()
            .to_rgb8()
    };
    let (a, b) = (panel(page_a), panel(page_b));
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

#[test]
fn a_character_photo_reaches_its_panels_through_the_face_adapter() {
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("photo-96x64.png"),
        home.path().join("mia.png"),
    )
    .unwrap();
    let script = home.path().join("story.txt");
    std::fs::write(
        &script,
        "size: 64x64\ncharacter Mia: a girl with a red scarf | photo: mia.png\n---\n\
         [Mia] reads # One.\n[Mia] runs\n[NC] a street\n[Mia] sleeps # \"Zzz\"\n",
    )
    .unwrap();
    let model = fixtures().join("tiny-sdxl");
    let adapter_dir = fixtures().join("tiny-ip-adapter");
    let run = |name: &str, adapter: Option<&str>| {
        let out = home.path().join(name);
        let mut args = vec![
            "comic".to_string(),
            "--script".into(),
            script.display().to_string(),
            "--model".into(),
            model.display().to_string(),
            "--steps".into(),
            "4".into(),
            "--seed".into(),
            "21".into(),
            "--page-width".into(),
            "320".into(),
            "--output".into(),
            out.display().to_string(),
        ];
        if let Some(file) = adapter {
            args.push("--face-adapter".into());
            args.push(format!(
                "model={},encoder={},scale=0.8",
                adapter_dir.join(file).display(),
                adapter_dir.join("image_encoder").display()
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (kiln(home.path(), &args), out)
    };
    let (plain, plain_out) = run("plain.png", None);
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(
        stderr(&plain).contains("character photos need an IP-Adapter"),
        "{}",
        stderr(&plain)
    );
    let (faced, faced_out) = run("faced.png", Some("ip-adapter_sdxl.safetensors"));
    assert!(faced.status.success(), "{}", stderr(&faced));
    let differs = |k: usize| panel_diff(&plain_out, &faced_out, k);
    // Mia's panels see her photo; the [NC] panel is the same plain generation.
    for k in [1, 2, 4] {
        assert!(differs(k) >= 3, "panel {k}: {}", differs(k));
    }
    assert_eq!(differs(3), 0);
    let (wrong, _) = run("wrong.png", Some("ip-adapter_sd15.safetensors"));
    files::clean_error(&wrong, "another model family");
}

#[test]
fn character_photos_find_an_ip_adapter_of_the_model_family_in_the_model_folders() {
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("photo-96x64.png"),
        home.path().join("mia.png"),
    )
    .unwrap();
    // The model folder holds the SD1.5 and SDXL adapters (plain and Plus) and their encoder.
    let models = home.path().join("models").join("ip-adapter");
    std::fs::create_dir_all(models.join("image_encoder")).unwrap();
    for entry in std::fs::read_dir(fixtures().join("tiny-ip-adapter")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, models.join(path.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(fixtures().join("tiny-ip-adapter/image_encoder")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            models.join("image_encoder").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let script = home.path().join("story.txt");
    std::fs::write(
        &script,
        "size: 64x64\ncharacter Mia: a girl | photo: mia.png\n---\n[Mia] reads\n[NC] a street\n",
    )
    .unwrap();
    let run = |name: &str, models_dir: &Path| {
        let out = home.path().join(name);
        let args = [
            "comic",
            "--script",
            script.to_str().unwrap(),
            "--model",
            fixtures().join("tiny-sdxl").to_str().unwrap(),
            "--models-dir",
            models_dir.to_str().unwrap(),
            "--steps",
            "3",
            "--seed",
            "5",
            "--output",
            out.to_str().unwrap(),
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (kiln(home.path(), &args), out)
    };
    let empty = home.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (plain, plain_out) = run("plain.png", &empty);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let (found, found_out) = run("found.png", &home.path().join("models"));
    assert!(found.status.success(), "{}", stderr(&found));
    // The SDXL Plus adapter is chosen (the SD1.5 ones have another token width).
    assert!(
        stderr(&found).contains("ip-adapter-plus_sdxl.safetensors"),
        "{}",
        stderr(&found)
    );
    let max_diff = |k: usize| panel_diff(&plain_out, &found_out, k);
    assert!(max_diff(1) >= 3, "Mia's panel: {}", max_diff(1));
    assert_eq!(max_diff(2), 0, "the [NC] panel reads no photo");
}
