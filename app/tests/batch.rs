//! `kiln batch` as users run it, on the tiny fixtures (`tests/fixtures/tiny-sd15`, 64×64,
//! 2–4 steps; odd inputs from `tests/fixtures/make_batch_inputs.py`): resume after SIGKILL,
//! several processes on one folder, shards, bad inputs, watch mode, presets.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln_command(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .env("KILN_CONFIG_DIR", home.join("config"))
        .env("KILN_DATA_DIR", home.join("data"));
    command
}

fn kiln(home: &Path, args: &[&str]) -> Output {
    kiln_command(home, args).output().expect("run kiln")
}

fn spawn(home: &Path, args: &[&str]) -> Child {
    kiln_command(home, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr: {}", stderr(out)))
}

fn done_inputs(summary: &serde_json::Value) -> Vec<String> {
    summary["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["input"].as_str().unwrap().to_owned())
        .collect()
}

/// A recipe file as `kiln info --json` prints it, for a 64×64 tiny-sd15 image-to-image at
/// `steps` steps (made by running `kiln generate` and `kiln info`, as a user would).
fn recipe_file(home: &Path, steps: usize) -> PathBuf {
    let model = fixtures().join("tiny-sd15");
    let init = fixtures().join("init-64.png");
    let png = home.join("look.png");
    let steps = steps.to_string();
    let out = kiln(
        home,
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "a clay figure",
            "--init",
            init.to_str().unwrap(),
            "--strength",
            "0.6",
            "--steps",
            &steps,
            "--seed",
            "5",
            "--output",
            png.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info = kiln(home, &["info", "--json", png.to_str().unwrap()]);
    assert!(info.status.success(), "{}", stderr(&info));
    let path = home.join("recipe.json");
    std::fs::write(&path, &info.stdout).unwrap();
    path
}

/// `n` inputs: copies of the tiny fixtures' photos (square, 3:2, RGBA 5:3), numbered.
fn make_inputs(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let sources = ["init-64.png", "photo-96x64.png", "photo-600x360-rgba.png"];
    for i in 0..n {
        let source = sources[i % sources.len()];
        std::fs::copy(fixtures().join(source), dir.join(format!("img-{i:03}.png"))).unwrap();
    }
}

/// Every file under `dir`, relative, with its length and hash; `hidden` includes dot-folders.
/// Files that vanish while it reads (another process's temp files) are left out.
fn walk(dir: &Path, hidden: bool) -> BTreeMap<String, (u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut map = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !hidden && entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            map.insert(rel, (bytes.len() as u64, hasher.finish()));
        }
    }
    map
}

/// Every file under `dir`, hidden ones included.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    walk(dir, true)
}

/// Visible output PNGs, relative to `out`.
fn outputs(out: &Path) -> Vec<String> {
    walk(out, false).into_keys().collect()
}

/// Outputs per input stem (`img-003-1a2b3c4d.png` → `img-003`).
fn outputs_per_stem(out: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for rel in outputs(out) {
        let name = rel.trim_end_matches(".png");
        let stem = name.rsplit_once('-').map_or(name, |(stem, _)| stem);
        *counts.entry(stem.to_owned()).or_default() += 1;
    }
    counts
}

/// Every visible output decodes completely and carries its recipe.
fn assert_complete_pngs(out: &Path) {
    for rel in outputs(out) {
        let bytes = std::fs::read(out.join(&rel)).unwrap();
        image::load_from_memory(&bytes)
            .unwrap_or_else(|e| panic!("{rel} is not a complete PNG: {e}"));
        let recipe = kiln_inference::io::png_meta::read_recipe(&bytes).unwrap();
        assert!(recipe.is_some(), "{rel} has no recipe");
    }
}

fn private_files(out: &Path, sub: &str) -> Vec<String> {
    match std::fs::read_dir(out.join(".kiln-batch").join(sub)) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_batch_through_the_cli_uses_the_info_json_and_resumes() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 2);
    let input = home.path().join("photos");
    make_inputs(&input, 4);
    std::fs::write(input.join("readme.txt"), "not a photo").unwrap();
    let before = snapshot(&input);
    let args = [
        "batch",
        "--input",
        input.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--json",
    ];
    let first = kiln(home.path(), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    let json = summary(&first);
    assert_eq!(done_inputs(&json).len(), 4);
    assert_eq!(json["ignored"], serde_json::json!(["readme.txt"]));
    assert!(
        stderr(&first).contains("batch: 4 done, 0 skipped, 0 failed"),
        "{}",
        stderr(&first)
    );
    // Default output folder: the sibling <input>-kiln.
    let out = home.path().join("photos-kiln");
    assert_eq!(outputs(&out).len(), 4);
    assert_complete_pngs(&out);
    // Sizes keep each photo's aspect at the recipe's 64×64 pixel count.
    let sizes: HashMap<String, (u64, u64)> = json["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let size = &d["size"];
            (
                d["input"].as_str().unwrap().to_owned(),
                (size[0].as_u64().unwrap(), size[1].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(sizes["img-000.png"], (64, 64));
    assert_eq!(sizes["img-001.png"], (80, 56), "3:2 photo");
    // An output's recipe: the batch's prompt and strength, the input as init, its own seed.
    let first_output = json["done"][0]["output"].as_str().unwrap().to_owned();
    let info = kiln(home.path(), &["info", "--json", &first_output]);
    let stored: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(stored["recipe"]["prompt"], "a clay figure");
    assert!((stored["recipe"]["init"]["strength"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    assert!(
        stored["recipe"]["init"]["path"]
            .as_str()
            .unwrap()
            .ends_with("photos/img-000.png")
    );
    // Run again: everything skipped, nothing rewritten, input untouched.
    let out_before = snapshot(&out);
    let second = kiln(home.path(), &args);
    assert!(second.status.success(), "{}", stderr(&second));
    let json = summary(&second);
    assert!(done_inputs(&json).is_empty());
    assert_eq!(json["skipped"].as_array().unwrap().len(), 4);
    assert_eq!(snapshot(&out), out_before);
    assert_eq!(snapshot(&input), before, "the input folder was modified");
}

#[test]
fn sigkill_mid_run_then_restart_does_everything_once() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 4);
    let input = home.path().join("in");
    let out = home.path().join("out");
    make_inputs(&input, 16);
    let args = [
        "batch",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--json",
    ];
    let mut child = spawn(home.path(), &args);
    let started = Instant::now();
    while outputs(&out).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no outputs appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix.
    child.wait().unwrap();
    let after_kill = outputs(&out).len();
    eprintln!("killed after {after_kill} of 16 outputs");
    assert!(after_kill < 16, "the batch finished before the kill");
    assert_complete_pngs(&out);

    let restart = kiln(home.path(), &args);
    assert!(restart.status.success(), "{}", stderr(&restart));
    let json = summary(&restart);
    assert_eq!(done_inputs(&json).len(), 16 - after_kill);
    assert_eq!(json["skipped"].as_array().unwrap().len(), after_kill);
    let per_stem = outputs_per_stem(&out);
    assert_eq!(per_stem.len(), 16, "{per_stem:?}");
    assert!(per_stem.values().all(|&n| n == 1), "{per_stem:?}");
    assert_complete_pngs(&out);
    // The killed run's claim and temp files were taken over and cleaned.
    assert!(private_files(&out, "claims").is_empty());
    assert!(private_files(&out, "tmp").is_empty());
}

#[test]
fn three_processes_on_one_folder_do_each_input_once() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 2);
    let input = home.path().join("in");
    let out = home.path().join("out");
    make_inputs(&input, 12);
    let args = [
        "batch",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--poll-secs",
        "0.2",
        "--json",
    ];
    let children: Vec<Child> = (0..3).map(|_| spawn(home.path(), &args)).collect();
    let mut all_done = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        all_done.extend(done_inputs(&summary(&out)));
    }
    all_done.sort();
    let total = all_done.len();
    all_done.dedup();
    assert_eq!(total, all_done.len(), "an input was done twice");
    assert_eq!(total, 12);
    let per_stem = outputs_per_stem(&out);
    assert_eq!(per_stem.len(), 12);
    assert!(per_stem.values().all(|&n| n == 1), "{per_stem:?}");
    assert!(private_files(&out, "claims").is_empty());
}

#[test]
fn shards_partition_the_inputs() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 2);
    let input = home.path().join("in");
    let out = home.path().join("out");
    make_inputs(&input, 10);
    let mut all_done = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let result = kiln(
            home.path(),
            &[
                "batch",
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--recipe",
                recipe.to_str().unwrap(),
                "--shard",
                &shard,
                "--json",
            ],
        );
        assert!(result.status.success(), "{}", stderr(&result));
        let json = summary(&result);
        let done = done_inputs(&json);
        assert_eq!(
            done.len() as u64 + json["other_shard"].as_u64().unwrap(),
            10
        );
        all_done.extend(done);
    }
    all_done.sort();
    let total = all_done.len();
    all_done.dedup();
    assert_eq!((total, all_done.len()), (10, 10));
    let bad = kiln(
        home.path(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--shard",
            "3/3",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn bad_inputs_are_skipped_with_reasons_and_the_good_ones_done() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 2);
    let input = home.path().join("in");
    let out = home.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let png = std::fs::read(fixtures().join("init-64.png")).unwrap();
    let photo = image::open(fixtures().join("init-64.png")).unwrap();
    std::fs::write(input.join("good.png"), &png).unwrap();
    photo.to_luma8().save(input.join("gray.png")).unwrap();
    photo.to_rgba8().save(input.join("rgba.png")).unwrap();
    image::DynamicImage::ImageRgb16(photo.to_rgb16())
        .save(input.join("deep-16bit.png"))
        .unwrap();
    std::fs::copy(fixtures().join("batch/cmyk-64.jpg"), input.join("cmyk.jpg")).unwrap();
    std::fs::copy(
        fixtures().join("batch/exif-rot90-48x64.jpg"),
        input.join("rotated.jpg"),
    )
    .unwrap();
    std::fs::write(input.join("empty.png"), b"").unwrap();
    std::fs::write(input.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(
        input.join("letter.jpg"),
        "Dear shop,\nplease make these clay.\n",
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("batch/huge-20000.png"),
        input.join("huge.png"),
    )
    .unwrap();
    std::fs::write(input.join("notes.txt"), "left alone").unwrap();
    let before = snapshot(&input);

    let result = kiln(
        home.path(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(result.status.code(), Some(1), "{}", stderr(&result));
    let err = stderr(&result);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("error: 4 of 10 inputs failed"),
        "{err}"
    );
    let json = summary(&result);
    let reasons: HashMap<String, String> = json["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["input"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: HashMap<String, String> = [
        ("empty.png", "empty"),
        ("truncated.png", "truncated"),
        ("letter.jpg", "not-an-image"),
        ("huge.png", "too-large"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(reasons, expected);
    assert!(
        err.contains("failed huge.png: image too large: 20000×20000"),
        "{err}"
    );
    let mut done = done_inputs(&json);
    done.sort();
    assert_eq!(
        done,
        [
            "cmyk.jpg",
            "deep-16bit.png",
            "good.png",
            "gray.png",
            "rgba.png",
            "rotated.jpg"
        ]
    );
    assert_eq!(json["ignored"], serde_json::json!(["notes.txt"]));
    // EXIF orientation honoured: stored 48×64, shown 64×48 → a landscape output.
    let rotated = json["done"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["input"] == "rotated.jpg")
        .unwrap();
    assert_eq!(rotated["size"], serde_json::json!([72, 56]));
    assert_complete_pngs(&out);
    assert_eq!(snapshot(&input), before, "the input folder was modified");
}

#[test]
fn watch_mode_picks_up_a_file_added_later() {
    let home = tempfile::tempdir().unwrap();
    let recipe = recipe_file(home.path(), 2);
    let input = home.path().join("in");
    let out = home.path().join("out");
    make_inputs(&input, 1);
    let mut child = spawn(
        home.path(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--watch",
            "--poll-secs",
            "0.2",
            "--settle-secs",
            "1",
        ],
    );
    let wait_for = |n: usize| {
        let started = Instant::now();
        while outputs(&out).len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "watch mode did not produce output {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(1);
    // A slow writer: half the file, a pause, the rest. It must not be taken half-written.
    let png = std::fs::read(fixtures().join("photo-96x64.png")).unwrap();
    let late = input.join("late.png");
    std::fs::write(&late, &png[..png.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&late, &png).unwrap();
    wait_for(2);
    child.kill().unwrap();
    let result = child.wait_with_output().unwrap();
    let err = stderr(&result);
    assert!(!err.contains("failed late.png"), "{err}");
    assert!(err.contains("done late.png"), "{err}");
    assert_complete_pngs(&out);
}

#[test]
fn a_preset_batch_resolves_each_photo() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    copy_dir(
        &fixtures().join("tiny-sd15"),
        &models.join("Stable-diffusion/tiny-sd15"),
    );
    let preset = home.path().join("tiny-clay.toml");
    std::fs::write(
        &preset,
        "schema = 1\nid = \"tiny-clay\"\nfamily = \"sd1\"\nprompt = \"{prompt}, clay\"\n\
         steps = 2\ncfg = 5\nwidth = 64\nheight = 64\n\n[name]\nen = \"Tiny clay\"\n\n\
         [model]\nhints = [\"tiny-sd15\"]\n\n[image]\nstrength = 0.7\n",
    )
    .unwrap();
    let input = home.path().join("album");
    make_inputs(&input, 2);
    let result = kiln(
        home.path(),
        &[
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--preset",
            preset.to_str().unwrap(),
            "--prompt",
            "a holiday photo",
            "--models-dir",
            models.to_str().unwrap(),
            "--seed",
            "11",
            "--json",
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let json = summary(&result);
    assert_eq!(done_inputs(&json).len(), 2);
    let output = json["done"][1]["output"].as_str().unwrap().to_owned();
    assert_eq!(json["done"][1]["seed"], 11);
    let info = kiln(home.path(), &["info", "--json", &output]);
    let stored: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(stored["recipe"]["prompt"], "a holiday photo, clay");
    assert_eq!(stored["recipe"]["steps"], 2);
    assert!((stored["recipe"]["init"]["strength"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(
        (
            stored["recipe"]["width"].clone(),
            stored["recipe"]["height"].clone()
        ),
        (80.into(), 56.into())
    );
    // Neither --preset nor --recipe: a usage error.
    let usage = kiln(home.path(), &["batch", "--input", input.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

/// A tiny SDXL image-to-image recipe file (160×120, 2 steps).
fn sdxl_recipe_file(home: &Path) -> PathBuf {
    let recipe = serde_json::json!({
        "model": {"path": fixtures().join("tiny-sdxl")},
        "prompt": "a clay figure of a person",
        "negative": "blurry",
        "seed": 1,
        "sampler": "euler",
        "steps": 2,
        "cfg": 5.0,
        "width": 160,
        "height": 120,
        "init": {"path": fixtures().join("faces-640x480.png"), "strength": 0.9}
    });
    let path = home.join("sdxl-recipe.json");
    std::fs::write(&path, recipe.to_string()).unwrap();
    path
}

#[test]
fn keep_faces_gives_each_output_its_inputs_face() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    copy_dir(
        &fixtures().join("tiny-antelopev2"),
        &models.join("antelopev2"),
    );
    let instantid = models.join("instantid/InstantID");
    copy_dir(&fixtures().join("tiny-instantid"), &instantid);
    kiln_inference::io::convert::torch_to_safetensors(
        &instantid.join("ip-adapter.bin"),
        &instantid.join("ip-adapter.safetensors"),
    )
    .unwrap();
    let input = home.path().join("people");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        fixtures().join("faces-640x480.png"),
        input.join("group.png"),
    )
    .unwrap();
    let recipe = sdxl_recipe_file(home.path());
    let out = home.path().join("out");
    let run = |recipe: &Path, extra: &[&str]| {
        let mut args = vec![
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
            "--keep-faces",
            "--json",
        ];
        args.extend_from_slice(extra);
        kiln(home.path(), &args)
    };
    let first = run(&recipe, &["--face-strength", "0.6"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let json = summary(&first);
    assert_eq!(done_inputs(&json), vec!["group.png"]);
    let output = json["done"][0]["output"].as_str().unwrap().to_owned();
    let info = kiln(home.path(), &["info", "--json", &output]);
    let stored: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let face = &stored["recipe"]["face"];
    assert!(
        face["image"]
            .as_str()
            .unwrap()
            .ends_with("people/group.png"),
        "{face}"
    );
    assert!((face["strength"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    assert!(face["model"].as_str().unwrap().ends_with("InstantID"));
    // SD1.5 models have no InstantID: the batch stops before any input with a clear reason.
    let sd15 = recipe_file(home.path(), 2);
    let refused = run(&sd15, &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("needs an SDXL model"),
        "{}",
        stderr(&refused)
    );
}
