//! `kiln presets list|show|import|export|delete`: the style presets from the command line.

use crate::library::catalog::Catalog;
use crate::library::presets::{Existing, PresetEntry, PresetError, PresetSource, PresetStore};
use crate::library::settings::Language;
use anyhow::bail;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Arguments of `kiln presets`.
#[derive(Debug, Args)]
pub struct PresetsArgs {
    /// What to do.
    #[command(subcommand)]
    command: PresetsCommand,
}

/// The `kiln presets` subcommands.
#[derive(Debug, Subcommand)]
enum PresetsCommand {
    /// List the built-in and user presets.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one preset: settings, models and what to download.
    Show {
        /// Preset id.
        id: String,
        /// Print the preset's TOML file instead.
        #[arg(long)]
        toml: bool,
    },
    /// Add a preset file (and the PNG of the same name next to it) to the user presets.
    Import {
        /// The `.toml` file.
        file: PathBuf,
        /// Replace a user preset with the same id, or override a built-in.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write a preset as `<id>.toml` + `<id>.png` into a folder.
    Export {
        /// Preset id.
        id: String,
        /// Target folder.
        dir: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Delete a user preset (a built-in it overrides comes back).
    Delete {
        /// Preset id.
        id: String,
    },
}

fn source_label(entry: &PresetEntry) -> &'static str {
    match &entry.source {
        PresetSource::BuiltIn => "built-in",
        PresetSource::User {
            overrides_builtin: true,
            ..
        } => "user (overrides built-in)",
        PresetSource::User { .. } => "user",
    }
}

/// A conflict as a CLI message that names the flag to use.
fn with_hint(error: PresetError) -> anyhow::Error {
    match &error {
        PresetError::Conflict { existing, .. } => {
            let hint = match existing {
                Existing::BuiltIn => "; add --overwrite to override it with your file",
                _ => "; add --overwrite to replace it",
            };
            anyhow::anyhow!("{error}{hint}")
        }
        _ => anyhow::Error::new(error),
    }
}

fn list(store: &PresetStore, json: bool) {
    let list = store.list();
    if json {
        let items: Vec<serde_json::Value> = list
            .presets
            .iter()
            .map(|e| {
                let path = match &e.source {
                    PresetSource::User { path, .. } => Some(path.clone()),
                    PresetSource::BuiltIn => None,
                };
                serde_json::json!({
                    "id": e.id(),
                    "name": { "en": e.name(Language::English), "zh-CN": e.name(Language::SimplifiedChinese) },
                    "family": e.preset.family.id(),
                    "source": source_label(e),
                    "path": path,
                    "catalog": e.preset.catalog_ids(),
                })
            })
            .collect();
        let issues: Vec<serde_json::Value> = list
            .issues
            .iter()
            .map(|i| serde_json::json!({ "path": i.path, "error": i.error.to_string() }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "presets": items, "issues": issues })
        );
        return;
    }
    for entry in &list.presets {
        println!(
            "{:<16} {} / {}  [{}, {}]",
            entry.id(),
            entry.name(Language::English),
            entry.name(Language::SimplifiedChinese),
            entry.preset.family.id(),
            source_label(entry)
        );
    }
    for issue in &list.issues {
        eprintln!("warning: {}", issue.error);
    }
}

fn show(store: &PresetStore, id: &str, toml: bool) -> anyhow::Result<()> {
    let entry = store.get(id)?;
    if toml {
        print!("{}", entry.toml);
        return Ok(());
    }
    let preset = &entry.preset;
    println!(
        "{} — {} / {}",
        preset.id,
        preset.name.en,
        entry.name(Language::SimplifiedChinese)
    );
    if !preset.description.en.is_empty() {
        println!("  {}", preset.description.en);
    }
    println!("source:   {}", source_label(&entry));
    println!("family:   {}", preset.family.id());
    println!("prompt:   {}", preset.prompt);
    if let Some(negative) = &preset.negative {
        println!("negative: {negative}");
    }
    let mut settings = Vec::new();
    if let Some(sampler) = preset.sampler {
        settings.push(format!("sampler {}", sampler.cli_name()));
    }
    if let Some(steps) = preset.steps {
        settings.push(format!("steps {steps}"));
    }
    if let Some(cfg) = preset.cfg {
        settings.push(format!("cfg {cfg}"));
    }
    if let (Some(w), Some(h)) = (preset.width, preset.height) {
        settings.push(format!("size {w}x{h}"));
    }
    if !settings.is_empty() {
        println!("settings: {}", settings.join(", "));
    }
    if let Some(model) = &preset.model {
        println!(
            "model:    {}{}",
            model.catalog.as_deref().unwrap_or("-"),
            if model.hints.is_empty() {
                String::new()
            } else {
                format!(" (file names: {})", model.hints.join(", "))
            }
        );
    }
    for lora in &preset.loras {
        println!(
            "lora:     {} × {}{}",
            lora.catalog
                .clone()
                .unwrap_or_else(|| lora.hints.join(", ")),
            lora.weight,
            if lora.triggers.is_empty() {
                String::new()
            } else {
                format!(" (triggers: {})", lora.triggers.join(", "))
            }
        );
    }
    if let Some(image) = &preset.image {
        let mut parts = vec![format!("strength {}", image.strength)];
        if let Some(control) = &image.controlnet {
            parts.push(format!(
                "{} ControlNet × {} (optional: used when its model is in the library)",
                control.kind.id(),
                control.scale
            ));
        }
        if image.preserve_face {
            parts.push("face preservation (not available yet)".into());
        }
        if let Some(caption) = &image.auto_caption {
            parts.push(format!(
                "auto-caption (general ≥ {}, character ≥ {})",
                caption.general, caption.character
            ));
        }
        println!("on photos: {}", parts.join(", "));
    }
    let ids = preset.catalog_ids();
    if !ids.is_empty() {
        println!("downloads:");
        for id in ids {
            match Catalog::builtin().get(id) {
                Some(model) => {
                    println!("  {}", model.describe());
                    println!("    licence {}", model.license);
                }
                None => println!("  {id} (not in this Kiln's catalog)"),
            }
        }
    }
    Ok(())
}

/// Runs `kiln presets`.
pub fn run(args: PresetsArgs) -> anyhow::Result<()> {
    let store = PresetStore::user_default();
    match args.command {
        PresetsCommand::List { json } => list(&store, json),
        PresetsCommand::Show { id, toml } => show(&store, &id, toml)?,
        PresetsCommand::Import { file, overwrite } => {
            let entry = store.import(&file, overwrite).map_err(with_hint)?;
            println!("{}", entry.id());
        }
        PresetsCommand::Export { id, dir, overwrite } => {
            let written = store.export(&id, &dir, overwrite).map_err(with_hint)?;
            for path in written {
                println!("{}", path.display());
            }
        }
        PresetsCommand::Delete { id } => {
            let entry = store.get(&id)?;
            if entry.is_builtin() {
                bail!("{id:?} is a built-in preset and cannot be deleted");
            }
            store.delete(&id)?;
            println!("deleted {id}");
        }
    }
    Ok(())
}
