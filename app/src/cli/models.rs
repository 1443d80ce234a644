//! `kiln models list|download ID|verify [ID]|remove ID`: the model catalog from the command line.
//! Downloads show the licence first (and a warning for non-commercial ones), then one progress
//! line with speed and ETA; an interrupted download resumes next time.

use crate::library::catalog::{Catalog, CatalogModel};
use crate::library::download::{
    self, DownloadError, FileStatus, HubOptions, InstallState, ModelProgress, install_state,
};
use crate::library::settings::Settings;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kiln_inference::CancelToken;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `kiln models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// What to do.
    #[command(subcommand)]
    command: ModelsCommand,
    /// Kiln's model folder (default: the first model folder of the settings).
    #[arg(long, global = true, value_name = "DIR")]
    models_dir: Option<PathBuf>,
}

/// The `kiln models` subcommands.
#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List the catalog: id, kind, family, size, licence and whether it is installed.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download catalog models (resumes an interrupted download).
    Download {
        /// Catalog ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Hub endpoint or mirror, e.g. https://hf-mirror.com.
        #[arg(long, env = "HF_ENDPOINT", value_name = "URL")]
        endpoint: Option<String>,
        /// Hub token for gated files (default: the one saved in Settings).
        #[arg(long, env = "HF_TOKEN", hide_env_values = true, value_name = "TOKEN")]
        token: Option<String>,
        /// HTTP(S) or SOCKS proxy URL (default: the settings, then HTTPS_PROXY/ALL_PROXY).
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Tries in a row without progress before giving up.
        #[arg(long, default_value_t = 6)]
        retries: u32,
    },
    /// Check installed models' files (length and SHA-256); all installed ones without an id.
    Verify {
        /// Catalog id.
        id: Option<String>,
    },
    /// Delete a model's files from Kiln's model folder.
    Remove {
        /// Catalog id.
        id: String,
    },
    /// Convert a PyTorch checkpoint (`.bin`/`.pth`, e.g. InstantID's ip-adapter.bin) once to
    /// `.safetensors`, which Kiln loads. The pickle is read as data only: nothing in it runs.
    Convert {
        /// The PyTorch file.
        input: PathBuf,
        /// The `.safetensors` file to write (default: beside the input).
        output: Option<PathBuf>,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
}

/// Runs `kiln models`.
pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    if let ModelsCommand::Convert {
        input,
        output,
        overwrite,
    } = &args.command
    {
        return convert(input, output.as_deref(), *overwrite);
    }
    let catalog = Catalog::from_env().map_err(anyhow::Error::msg)?;
    let settings = Settings::load();
    let models_dir = match args.models_dir {
        Some(dir) => dir,
        None => settings
            .model_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| crate::library::settings::data_dir().join("models")),
    };
    match args.command {
        ModelsCommand::List { json } => list(&catalog, &models_dir, json),
        ModelsCommand::Download {
            ids,
            endpoint,
            token,
            proxy,
            retries,
        } => {
            let mut options = HubOptions {
                endpoint: endpoint
                    .or_else(|| settings.hub_endpoint.clone())
                    .unwrap_or_else(|| download::hub::DEFAULT_ENDPOINT.to_owned()),
                proxy: proxy.or_else(|| settings.proxy.clone()),
                ..HubOptions::default()
            };
            options.retry.attempts = retries.max(1);
            options.token = token
                .filter(|t| !t.trim().is_empty())
                .or_else(|| download::token::load_token(&crate::library::settings::config_dir()));
            for id in &ids {
                let model = find(&catalog, id)?;
                download_one(model, &models_dir, &options)?;
            }
            Ok(())
        }
        ModelsCommand::Convert { .. } => Ok(()),
        ModelsCommand::Verify { id } => verify(&catalog, &models_dir, id.as_deref()),
        ModelsCommand::Remove { id } => {
            let model = find(&catalog, &id)?;
            let removed = download::remove_model(model, &models_dir)?;
            if removed.is_empty() {
                println!("{id} is not in {}", models_dir.display());
            } else {
                for path in removed {
                    println!("removed {}", path.display());
                }
            }
            Ok(())
        }
    }
}

fn find<'a>(catalog: &'a Catalog, id: &str) -> anyhow::Result<&'a CatalogModel> {
    catalog.get(id).with_context(|| {
        let ids: Vec<&str> = catalog.models.iter().map(|m| m.id.as_str()).collect();
        format!(
            "no model {id:?} in the catalog (see `kiln models list`; ids: {})",
            ids.join(", ")
        )
    })
}

/// Bytes as "6.9 GB", "171 MB".
fn size_text(bytes: u64) -> String {
    crate::gui::panels::human_size(bytes)
}

/// Seconds as "1:05:09", "4:12", "12 s".
fn duration_text(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{}:{:02}", secs / 60, secs % 60),
        _ => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

fn state_text(state: &InstallState) -> String {
    match state {
        InstallState::Installed => "installed".to_owned(),
        InstallState::Partial { bytes } => format!("partial ({})", size_text(*bytes)),
        InstallState::Missing => "-".to_owned(),
    }
}

fn list(catalog: &Catalog, models_dir: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<_> = catalog
            .models
            .iter()
            .map(|m| {
                let state = install_state(m, models_dir);
                serde_json::json!({
                    "id": m.id,
                    "name": m.name,
                    "kind": m.kind,
                    "family": m.family,
                    "repo": m.repo,
                    "license": m.license,
                    "non_commercial": m.non_commercial,
                    "gated": m.gated,
                    "approx_size_mb": m.approx_size_mb(),
                    "installed": state == InstallState::Installed,
                    "path": download::model_dir(m, models_dir).ok(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<36} {:<12} {:<6} {:>8}  {:<24} STATE",
        "ID", "KIND", "FAMILY", "SIZE", "LICENCE"
    );
    for model in &catalog.models {
        let size = match model.approx_size_mb() {
            0 => "?".to_owned(),
            mb => size_text(mb * 1_000_000),
        };
        let mut licence = model.license.clone();
        if model.non_commercial {
            licence.push_str(" (NC)");
        }
        println!(
            "{:<36} {:<12} {:<6} {:>8}  {:<24} {}",
            model.id,
            model.kind,
            model.family.as_deref().unwrap_or("-"),
            size,
            licence,
            state_text(&install_state(model, models_dir))
        );
    }
    println!("\nModel folder: {}", models_dir.display());
    println!("NC = not for commercial use. Download with `kiln models download ID`.");
    Ok(())
}

/// The licence lines printed before a download.
pub fn licence_lines(model: &CatalogModel) -> Vec<String> {
    let mut lines = vec![format!(
        "{} ({}) — licence: {}{}",
        model.name,
        model.id,
        model.license,
        model
            .license_url
            .as_deref()
            .map(|u| format!(" <{u}>"))
            .unwrap_or_default()
    )];
    if model.non_commercial {
        lines.push(
            "WARNING: not for commercial use. Outputs made with this model carry the same \
             restriction."
                .to_owned(),
        );
    }
    if model.gated {
        lines.push(format!(
            "Gated on the Hub: accept the licence at {} and pass a token (--token or HF_TOKEN).",
            model.url()
        ));
    }
    if let Some(notes) = &model.notes {
        lines.push(format!("Note: {notes}"));
    }
    lines
}

/// The progress line: file, bytes, percent, speed, ETA.
pub fn progress_line(progress: &ModelProgress) -> String {
    let percent = match progress
        .done_bytes
        .saturating_mul(100)
        .checked_div(progress.total_bytes)
    {
        Some(percent) => format!("{:>3}%", percent.min(100)),
        None => "  ?%".to_owned(),
    };
    let speed = if progress.bytes_per_sec > 0.0 {
        format!("{}/s", size_text(progress.bytes_per_sec as u64))
    } else {
        "…".to_owned()
    };
    let eta = progress
        .eta
        .map(|d| format!("ETA {}", duration_text(d)))
        .unwrap_or_else(|| "ETA ?".to_owned());
    let name = progress.file.rsplit('/').next().unwrap_or(&progress.file);
    format!(
        "[{}/{}] {name}  {} / {}  {percent}  {speed}  {eta}",
        progress.file_index + 1,
        progress.file_count,
        size_text(progress.done_bytes),
        size_text(progress.total_bytes),
    )
}

fn download_one(
    model: &CatalogModel,
    models_dir: &Path,
    options: &HubOptions,
) -> anyhow::Result<()> {
    for line in licence_lines(model) {
        eprintln!("{line}");
    }
    if install_state(model, models_dir) == InstallState::Installed {
        println!(
            "{} is already installed in {}",
            model.id,
            download::model_dir(model, models_dir)?.display()
        );
        return Ok(());
    }
    let cancel = CancelToken::default();
    let mut stderr = std::io::stderr();
    let mut width = 0usize;
    let result = download::download_model(model, models_dir, options, &cancel, &mut |p| {
        let line = progress_line(p);
        let pad = width.saturating_sub(line.chars().count());
        width = width.max(line.chars().count());
        // Progress is cosmetic: a closed stderr must not stop the download.
        write!(stderr, "\r{line}{}", " ".repeat(pad)).ok();
        stderr.flush().ok();
    });
    eprintln!();
    let reports = match result {
        Ok(reports) => reports,
        Err(error @ DownloadError::Cancelled) => return Err(error.into()),
        Err(error) => {
            let hint = if error.is_transient() {
                " (run the same command again to resume)"
            } else {
                ""
            };
            bail!("{} could not be downloaded: {error}{hint}", model.id);
        }
    };
    for report in reports {
        let how = match report.checked {
            None => "already there",
            Some(download::Checked::Catalog) => "SHA-256 verified (catalog)",
            Some(download::Checked::Hub) => "SHA-256 verified (Hub)",
            Some(download::Checked::Unchecked) => "no checksum available",
        };
        let resumed = if report.resumed_from > 0 {
            format!(", resumed at {}", size_text(report.resumed_from))
        } else {
            String::new()
        };
        println!(
            "{} ({}, {how}{resumed})",
            report.dest.display(),
            size_text(report.bytes)
        );
    }
    println!("{} installed", model.id);
    Ok(())
}

fn verify(catalog: &Catalog, models_dir: &Path, id: Option<&str>) -> anyhow::Result<()> {
    let models: Vec<&CatalogModel> = match id {
        Some(id) => vec![find(catalog, id)?],
        None => catalog
            .models
            .iter()
            .filter(|m| install_state(m, models_dir) != InstallState::Missing)
            .collect(),
    };
    if models.is_empty() {
        println!("no catalog model is installed in {}", models_dir.display());
        return Ok(());
    }
    let cancel = CancelToken::default();
    let mut bad = 0usize;
    for model in models {
        for (path, status) in download::verify_model(model, models_dir, &cancel)? {
            let text = match &status {
                FileStatus::Verified => "ok (SHA-256 verified)".to_owned(),
                FileStatus::Unchecked => "ok (no checksum to compare)".to_owned(),
                FileStatus::Missing => "MISSING".to_owned(),
                FileStatus::WrongSize { expected, actual } => {
                    format!("WRONG SIZE (expected {expected} bytes, found {actual})")
                }
                FileStatus::WrongChecksum { expected, actual } => {
                    format!("WRONG CHECKSUM (expected {expected}, found {actual})")
                }
                FileStatus::Unreadable(e) => format!("UNREADABLE ({e})"),
            };
            if !status.ok() {
                bad += 1;
            }
            println!("{}: {} {text}", model.id, path.display());
        }
    }
    if bad > 0 {
        bail!(
            "{bad} file(s) failed verification; download them again with `kiln models download ID`"
        );
    }
    Ok(())
}

/// `kiln models convert IN [OUT]`.
fn convert(input: &Path, output: Option<&Path>, overwrite: bool) -> anyhow::Result<()> {
    use kiln_inference::io::convert::{converted_path, torch_to_safetensors};
    let output = output.map_or_else(|| converted_path(input), Path::to_path_buf);
    if output == input {
        bail!("the output must differ from the input: {}", input.display());
    }
    if output.exists() && !overwrite {
        bail!(
            "{} exists already (pass --overwrite to replace it)",
            output.display()
        );
    }
    let count = torch_to_safetensors(input, &output)?;
    println!("wrote {count} tensors to {}", output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_reads_well() {
        let line = progress_line(&ModelProgress {
            file: "sdxl/sd_xl_base_1.0.safetensors".into(),
            file_index: 0,
            file_count: 2,
            done_bytes: 1_500_000_000,
            total_bytes: 6_000_000_000,
            bytes_per_sec: 25_000_000.0,
            eta: Some(std::time::Duration::from_secs(180)),
        });
        assert_eq!(
            line,
            "[1/2] sd_xl_base_1.0.safetensors  1.5 GB / 6.0 GB   25%  25 MB/s  ETA 3:00"
        );
        assert_eq!(
            duration_text(std::time::Duration::from_secs(3725)),
            "1:02:05"
        );
    }
}
