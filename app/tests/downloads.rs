//! Model downloads against an in-process Hub stand-in on 127.0.0.1 (tests/hub): resume after a
//! dropped connection, checksum mismatch, 404, 401 for a gated file (and success with the token),
//! transient 503s, a slow server cancelled, and the `kiln models` CLI end to end. No test
//! touches the internet.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod hub;

use hub::{Faults, HubServer, Served, bytes};
use kiln::library::catalog::{CatalogFile, CatalogModel};
use kiln::library::download::{
    Checked, DownloadError, HubOptions, InstallState, ModelProgress, RetryPolicy, download_model,
    file_dest, install_state, part_path,
};
use kiln_inference::CancelToken;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn options(server: &HubServer) -> HubOptions {
    HubOptions {
        endpoint: server.endpoint.clone(),
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        },
        read_timeout: Duration::from_secs(10),
        ..HubOptions::default()
    }
}

fn model_of(served: &Served, sha256: Option<String>) -> CatalogModel {
    CatalogModel {
        id: "tiny-lora".into(),
        name: "Tiny LoRA".into(),
        kind: "lora".into(),
        repo: served.repo.clone(),
        license: "apache-2.0".into(),
        files: vec![CatalogFile {
            path: served.path.clone(),
            sha256,
            ..CatalogFile::default()
        }],
        ..CatalogModel::default()
    }
}

fn no_progress() -> impl FnMut(&ModelProgress) {
    |_| {}
}

/// Downloads `model` from `server` into `dir` with the test options, no progress, no cancel.
fn fetch(
    model: &CatalogModel,
    dir: &Path,
    server: &HubServer,
) -> Result<Vec<kiln::library::download::FileReport>, DownloadError> {
    download_model(
        model,
        dir,
        &options(server),
        &CancelToken::default(),
        &mut no_progress(),
    )
}

fn dest_of(model: &CatalogModel, models: &Path) -> std::path::PathBuf {
    file_dest(model, model.files.first().unwrap(), models).unwrap()
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let mut served = Served::new("kiln/tiny", "tiny.safetensors", bytes(300_000, 1));
    served.faults.drop_after = Some(100_000);
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let model = model_of(&served, Some(served.sha256()));
    let mut reports = Vec::new();
    let files = download_model(
        &model,
        dir.path(),
        &options(&server),
        &CancelToken::default(),
        &mut |p| reports.push(p.clone()),
    )
    .unwrap();
    let dest = dest_of(&model, dir.path());
    assert_eq!(std::fs::read(&dest).unwrap(), served.content);
    assert!(!part_path(&dest).exists());
    assert_eq!(files.first().unwrap().checked, Some(Checked::Catalog));
    // The second body request asked for the rest only.
    let cdn = server.seen_for("/cdn/");
    assert_eq!(cdn.len(), 2, "{cdn:?}");
    assert_eq!(cdn[0].range, None);
    let resumed_at: usize = cdn[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100_000).contains(&resumed_at), "{resumed_at}");
    assert_eq!(cdn[1].status, 206);
    // Progress ended at the whole file.
    let last = reports.last().unwrap();
    assert_eq!((last.done_bytes, last.total_bytes), (300_000, 300_000));
    assert_eq!(install_state(&model, dir.path()), InstallState::Installed);
    // The checksum note lets `verify` check the file later.
    let note = std::fs::read_to_string(dest.with_file_name("tiny.safetensors.sha256")).unwrap();
    assert!(note.starts_with(&served.sha256()), "{note}");
}

#[test]
fn part_file_from_an_earlier_run_is_resumed() {
    let served = Served::new("kiln/resume", "model.onnx", bytes(200_000, 2));
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let model = model_of(&served, None);
    let dest = dest_of(&model, dir.path());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(part_path(&dest), &served.content[..150_000]).unwrap();
    assert_eq!(
        install_state(&model, dir.path()),
        InstallState::Partial { bytes: 150_000 }
    );
    let files = fetch(&model, dir.path(), &server).unwrap();
    let report = files.first().unwrap();
    assert_eq!(report.resumed_from, 150_000);
    // No SHA-256 in the catalog: the Hub's X-Linked-Etag was checked.
    assert_eq!(report.checked, Some(Checked::Hub));
    assert_eq!(std::fs::read(&dest).unwrap(), served.content);
    let cdn = server.seen_for("/cdn/");
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].range.as_deref(), Some("bytes=150000-"));
}

#[test]
fn wrong_checksum_removes_the_file_with_a_clear_error() {
    let served = Served::new("kiln/bad", "bad.safetensors", bytes(50_000, 3));
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let model = model_of(&served, Some(wrong.clone()));
    let error = fetch(&model, dir.path(), &server).unwrap_err();
    let dest = dest_of(&model, dir.path());
    assert!(
        matches!(&error, DownloadError::Checksum { expected, actual, .. }
            if *expected == wrong && *actual == served.sha256()),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("checksum mismatch") && text.contains("removed"),
        "{text}"
    );
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());
    assert_eq!(install_state(&model, dir.path()), InstallState::Missing);

    // The same when the Hub's own checksum does not match what arrives.
    let mut served = Served::new("kiln/bad-etag", "x.safetensors", bytes(10_000, 4));
    served.faults.wrong_etag = true;
    let server = HubServer::start(vec![served.clone()]);
    let model = model_of(&served, None);
    let error = fetch(&model, dir.path(), &server).unwrap_err();
    assert!(matches!(error, DownloadError::Checksum { .. }), "{error}");
    assert!(!dest_of(&model, dir.path()).exists());
}

#[test]
fn not_found_is_not_retried() {
    let served = Served::new("kiln/here", "here.safetensors", bytes(10, 5));
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut model = model_of(&served, None);
    model.files[0].path = "missing.safetensors".into();
    let error = fetch(&model, dir.path(), &server).unwrap_err();
    assert!(matches!(error, DownloadError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(server.seen().len(), 1, "404 must not be retried");
    assert!(
        !part_path(&dest_of(&model, dir.path())).exists() || {
            // An empty part file may be created before the request; it holds nothing.
            std::fs::metadata(part_path(&dest_of(&model, dir.path())))
                .unwrap()
                .len()
                == 0
        }
    );
}

#[test]
fn gated_file_needs_the_token_which_never_reaches_the_cdn() {
    let mut served = Served::new("kiln/gated", "gated.safetensors", bytes(20_000, 6));
    served.faults.token = Some("hf_secret".into());
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let model = model_of(&served, None);
    let error = fetch(&model, dir.path(), &server).unwrap_err();
    assert!(
        matches!(
            error,
            DownloadError::Unauthorized {
                status: 401,
                token_sent: false,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("token"), "{error}");
    assert_eq!(server.seen().len(), 1, "401 must not be retried");

    let wrong = HubOptions {
        token: Some("hf_wrong".into()),
        ..options(&server)
    };
    let error = download_model(
        &model,
        dir.path(),
        &wrong,
        &CancelToken::default(),
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            DownloadError::Unauthorized {
                token_sent: true,
                ..
            }
        ),
        "{error}"
    );

    let right = HubOptions {
        token: Some("hf_secret".into()),
        ..options(&server)
    };
    download_model(
        &model,
        dir.path(),
        &right,
        &CancelToken::default(),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(dest_of(&model, dir.path())).unwrap(),
        served.content
    );
    let resolve = server.seen_for("/resolve/");
    assert_eq!(
        resolve.last().unwrap().authorization.as_deref(),
        Some("Bearer hf_secret")
    );
    let cdn = server.seen_for("/cdn/");
    assert!(cdn.iter().all(|s| s.authorization.is_none()), "{cdn:?}");
}

#[test]
fn transient_errors_are_retried_with_backoff() {
    let mut served = Served::new("kiln/busy", "busy.safetensors", bytes(5_000, 7));
    served.faults.unavailable = 2;
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let model = model_of(&served, Some(served.sha256()));
    let started = Instant::now();
    fetch(&model, dir.path(), &server).unwrap();
    // Backoff: 10 ms, then 20 ms.
    assert!(started.elapsed() >= Duration::from_millis(30));
    let statuses: Vec<u16> = server
        .seen_for("/resolve/")
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [503, 503, 302]);

    // Too many in a row: a clear error after the last try.
    let mut served = Served::new("kiln/down", "down.safetensors", bytes(10, 8));
    served.faults.unavailable = 100;
    let server = HubServer::start(vec![served.clone()]);
    let model = model_of(&served, None);
    let error = fetch(&model, dir.path(), &server).unwrap_err();
    assert!(
        matches!(error, DownloadError::Status { status: 503, .. }),
        "{error}"
    );
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn slow_download_is_cancelled_leaving_nothing_under_the_final_name() {
    let mut served = Served::new("kiln/slow", "slow.safetensors", bytes(400_000, 9));
    served.faults.trickle = Some(2_000);
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let model = model_of(&served, Some(served.sha256()));
    let cancel = CancelToken::default();
    let canceller = cancel.clone();
    let started = Instant::now();
    let mut seen_speed = false;
    let error = download_model(&model, dir.path(), &options(&server), &cancel, &mut |p| {
        seen_speed |= p.bytes_per_sec > 0.0 && p.eta.is_some();
        if p.done_bytes >= 20_000 {
            canceller.cancel();
        }
    })
    .unwrap_err();
    assert!(matches!(error, DownloadError::Cancelled), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(seen_speed, "progress reported a speed and an ETA");
    let dest = dest_of(&model, dir.path());
    assert!(!dest.exists(), "no partial file under the final name");
    let kept = std::fs::metadata(part_path(&dest)).unwrap().len();
    assert!((20_000..400_000).contains(&kept), "{kept}");

    // The next download resumes from the kept part and completes.
    server.set_faults(0, Faults::default());
    fetch(&model, dir.path(), &server).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), served.content);
    let last = server.seen_for("/cdn/").last().cloned().unwrap();
    assert_eq!(last.range, Some(format!("bytes={kept}-")));
}

/// Runs `kiln` with a test catalog, config folder and token store.
fn kiln(args: &[&str], catalog: &Path, config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_CATALOG", catalog)
        .env("KILN_CONFIG_DIR", config)
        .env("KILN_DATA_DIR", config.join("data"))
        .env("KILN_TOKEN_STORE", "file")
        .env_remove("HF_TOKEN")
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap()
}

#[test]
fn cli_lists_downloads_verifies_and_removes() {
    let weights = Served::new("kiln/tiny-sd", "tiny.safetensors", bytes(120_000, 10));
    let mut config = Served::new("kiln/tiny-sd", "config.json", b"{\"a\": 1}".to_vec());
    config.faults.direct = true;
    let server = HubServer::start(vec![weights.clone(), config]);
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            r#"schema = 1

[[model]]
id = "tiny-sd"
name = "Tiny SD"
kind = "checkpoint"
family = "sd1"
repo = "kiln/tiny-sd"
license = "tiny-nc-1.0"
non_commercial = true

[[model.files]]
path = "tiny.safetensors"
sha256 = "{}"
size_bytes = 120000

[[model.files]]
path = "config.json"

[[model]]
id = "ghost"
name = "Ghost"
kind = "lora"
repo = "kiln/ghost"
license = "mit"

[[model.files]]
path = "ghost.safetensors"
"#,
            weights.sha256()
        ),
    )
    .unwrap();
    let config_dir = dir.path().join("config");
    let models = dir.path().join("models");
    let models_arg = models.to_str().unwrap();
    let out = kiln(
        &["models", "list", "--models-dir", models_arg],
        &catalog,
        &config_dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("tiny-sd") && stdout.contains("tiny-nc-1.0 (NC)"),
        "{stdout}"
    );

    let out = kiln(
        &[
            "models",
            "download",
            "tiny-sd",
            "--endpoint",
            &server.endpoint,
            "--models-dir",
            models_arg,
        ],
        &catalog,
        &config_dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    // Licence before the download, with the non-commercial warning; then a progress line.
    let licence_at = stderr.find("licence: tiny-nc-1.0").unwrap();
    let warning_at = stderr.find("not for commercial use").unwrap();
    let progress_at = stderr.find("[1/2] tiny.safetensors").unwrap();
    assert!(
        licence_at < progress_at && warning_at < progress_at,
        "{stderr}"
    );
    assert!(stderr.contains("ETA"), "{stderr}");
    assert!(stdout.contains("tiny-sd installed"), "{stdout}");
    assert!(stdout.contains("SHA-256 verified (catalog)"), "{stdout}");
    let installed = models.join("checkpoints/tiny-sd/tiny.safetensors");
    assert_eq!(std::fs::read(&installed).unwrap(), weights.content);
    assert_eq!(
        std::fs::read(models.join("checkpoints/tiny-sd/config.json")).unwrap(),
        b"{\"a\": 1}"
    );

    let out = kiln(
        &["models", "verify", "--models-dir", models_arg],
        &catalog,
        &config_dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("ok (SHA-256 verified)"), "{stdout}");

    // A damaged file fails verification with a clear message.
    let mut damaged = weights.content.clone();
    damaged[0] ^= 1;
    std::fs::write(&installed, &damaged).unwrap();
    let out = kiln(
        &["models", "verify", "tiny-sd", "--models-dir", models_arg],
        &catalog,
        &config_dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains("WRONG CHECKSUM"), "{stdout}");
    assert!(
        stderr
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("error: 1 file(s) failed"),
        "{stderr}"
    );

    let out = kiln(
        &["models", "remove", "tiny-sd", "--models-dir", models_arg],
        &catalog,
        &config_dir,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!installed.exists());
    assert!(!models.join("checkpoints").exists());

    // A file the server does not have: one clean error line naming the 404.
    let out = kiln(
        &[
            "models",
            "download",
            "ghost",
            "--endpoint",
            &server.endpoint,
            "--models-dir",
            models_arg,
        ],
        &catalog,
        &config_dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let last = stderr.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("error: ghost could not be downloaded") && last.contains("404"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // An unknown id names the known ones.
    let out = kiln(
        &["models", "download", "nope", "--models-dir", models_arg],
        &catalog,
        &config_dir,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no model \"nope\"") && stderr.contains("tiny-sd"),
        "{stderr}"
    );
}

#[test]
fn a_pickle_marked_convert_is_converted_to_safetensors_after_the_download() {
    let pickle = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tiny-instantid/ip-adapter.bin"),
    )
    .unwrap();
    let served = Served::new("kiln/instantid", "ip-adapter.bin", pickle);
    let server = HubServer::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut model = model_of(&served, Some(served.sha256()));
    model.kind = "instantid".into();
    model.files[0].convert = true;
    fetch(&model, dir.path(), &server).unwrap();
    let dest = dest_of(&model, dir.path());
    let converted = dest.with_extension("safetensors");
    let tensors = candle_core::safetensors::load(&converted, &candle_core::Device::Cpu).unwrap();
    assert!(tensors.contains_key("image_proj.latents"));
    // A file that is not a torch checkpoint fails with a clear error, nothing half-written.
    let bogus = Served::new("kiln/bogus", "ip-adapter.bin", bytes(1000, 3));
    let server = HubServer::start(vec![bogus.clone()]);
    let mut model = model_of(&bogus, Some(bogus.sha256()));
    model.files[0].convert = true;
    let err = fetch(&model, dir.path(), &server).unwrap_err().to_string();
    assert!(err.contains("converting ip-adapter.bin"), "{err}");
    let dest = dest_of(&model, dir.path());
    assert!(!dest.with_extension("safetensors").exists());
}
