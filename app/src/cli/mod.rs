//! Command-line interface: `kiln generate`, `kiln batch`, `kiln presets`, `kiln preprocess`,
//! `kiln info`, `kiln bench`, `kiln models`.

mod batch;
mod bench;
mod generate;
mod info;
mod models;
mod preprocess;
mod presets;

use clap::{Parser, Subcommand};

/// Kiln: a local AI image and video studio.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
pub struct Cli {
    /// Subcommand; none opens the desktop app.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Text-to-image and image-to-image.
    Generate(Box<generate::GenerateArgs>),
    /// Style presets: list, show, import, export, delete.
    Presets(presets::PresetsArgs),
    /// Make a ControlNet guide from an image (`kiln preprocess canny IN OUT`).
    Preprocess(preprocess::PreprocessArgs),
    /// Every image in a folder through a recipe or preset (resumable, shardable).
    Batch(Box<batch::BatchArgs>),
    /// Print the recipe / A1111 parameters stored in a PNG.
    Info(info::InfoArgs),
    /// Measure load time, text encoding, UNet step and VAE decode speed, and peak memory.
    Bench(bench::BenchArgs),
    /// The model catalog: list, download (resumable, verified), verify, remove.
    Models(models::ModelsArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Generate(args)) => generate::run(*args),
        Some(Command::Presets(args)) => presets::run(args),
        Some(Command::Preprocess(args)) => preprocess::run(args),
        Some(Command::Batch(args)) => batch::run(*args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Models(args)) => models::run(args),
        None => crate::gui::run(),
    }
}
