//! The `kiln` command line as users and scripts see it: exit codes, one-line errors, outputs.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod files;
use files::{copy_dir, fixtures};

use std::path::Path;
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failing run: non-zero exit, an `error:` line, no panic text.
fn assert_clean_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic leaked: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace leaked: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "last line should be the error: {err}"
    );
    assert!(
        last.to_lowercase().contains(&needle.to_lowercase()),
        "error should mention {needle:?}: {last}"
    );
}

fn generate_args<'a>(model: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "generate",
        "--model",
        model,
        "--prompt",
        "a clay fox",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "3",
        "--output",
        output,
    ]
}

#[test]
fn generate_writes_png_with_metadata_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("fox.png");
    let out = out_path.to_str().unwrap();
    let model = fixtures().join("tiny-sd15");
    let model = model.to_str().unwrap();
    let first = kiln(&generate_args(model, out));
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), out);
    let second = kiln(&generate_args(model, out));
    assert!(second.status.success(), "{}", stderr(&second));
    let second_path = dir.path().join("fox-1.png");
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        second_path.to_str().unwrap()
    );
    // Same seed, same image.
    let a = image::open(&out_path).unwrap().to_rgb8();
    let b = image::open(&second_path).unwrap().to_rgb8();
    assert_eq!(a, b);
    let info = kiln(&["info", out]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("a clay fox"), "{text}");
    assert!(text.contains("Seed: 3"), "{text}");
    assert!(text.contains("Steps: 2"), "{text}");
}

#[test]
fn json_output_lists_paths_and_seeds_for_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.png");
    let model = fixtures().join("tiny-sd15");
    let mut args = generate_args(model.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--batch", "2", "--json", "--sampler", "euler-a"]);
    let result = kiln(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let outputs = json["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["seed"], 3);
    assert_eq!(outputs[1]["seed"], 4);
    assert!(dir.path().join("b-1.png").is_file());
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let out = out.to_str().unwrap();
    let sd15 = fixtures().join("tiny-sd15");
    let sd15 = sd15.to_str().unwrap();

    let missing = dir.path().join("nope.safetensors");
    assert_clean_error(
        &kiln(&generate_args(missing.to_str().unwrap(), out)),
        "not found",
    );

    let truncated = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(fixtures().join("tiny-sd15.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_error(
        &kiln(&generate_args(truncated.to_str().unwrap(), out)),
        "safetensors",
    );

    let ckpt = dir.path().join("model.ckpt");
    std::fs::write(&ckpt, b"PK\x03\x04 pickle").unwrap();
    assert_clean_error(&kiln(&generate_args(ckpt.to_str().unwrap(), out)), "pickle");

    let partial = dir.path().join("partial");
    copy_dir(&fixtures().join("tiny-sd15"), &partial);
    std::fs::remove_dir_all(partial.join("vae")).unwrap();
    assert_clean_error(&kiln(&generate_args(partial.to_str().unwrap(), out)), "vae");

    let not_image = dir.path().join("init.png");
    std::fs::write(&not_image, b"this is not an image").unwrap();
    let mut args = generate_args(sd15, out);
    args.extend(["--init", not_image.to_str().unwrap()]);
    assert_clean_error(&kiln(&args), "init image");

    let init = fixtures().join("init-64.png");
    for strength in ["0", "1.5", "-0.2"] {
        let mut args = generate_args(sd15, out);
        args.extend(["--init", init.to_str().unwrap(), "--strength", strength]);
        assert_clean_error(&kiln(&args), "strength");
    }

    let mut args = generate_args(sd15, out);
    args[8] = "60";
    assert_clean_error(&kiln(&args), "multiple of 8");

    assert_clean_error(&kiln(&generate_args(sd15, "/proc/kiln/o.png")), "output");
    assert!(!Path::new(out).exists(), "no output for failed runs");
}
