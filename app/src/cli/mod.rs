//! Command-line interface: `kiln generate`, `kiln batch`, `kiln presets`, `kiln preprocess`,
//! `kiln comic`, `kiln info`, `kiln bench`, `kiln models`.

mod batch;
mod bench;
mod comic;
mod generate;
mod info;
mod models;
mod preprocess;
mod presets;
mod video;

use clap::{Parser, Subcommand};

/// Kiln: a local AI image and video studio.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Subcommand; none opens the desktop app.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Images or folders to open in the desktop app (as if dropped on its window).
    #[arg(value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
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
    /// A story script to a comic page: consistent characters, captions, PNG and PDF.
    Comic(Box<comic::ComicArgs>),
    /// Image to video with Stable Video Diffusion: MP4, GIF, WebP or PNG frames.
    Video(Box<video::VideoArgs>),
    /// Measure load time, text encoding, UNet step and VAE decode speed, and peak memory.
    Bench(bench::BenchArgs),
    /// The model catalog: list, download (resumable, verified), verify, remove.
    Models(models::ModelsArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.command.is_some() {
        // The app pins its workers itself, after applying the thread setting.
        kiln_inference::kernels::pin_threads();
    }
    match cli.command {
        Some(Command::Generate(args)) => generate::run(*args),
        Some(Command::Presets(args)) => presets::run(args),
        Some(Command::Preprocess(args)) => preprocess::run(args),
        Some(Command::Batch(args)) => batch::run(*args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Comic(args)) => comic::run(*args),
        Some(Command::Video(args)) => video::run(*args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Models(args)) => models::run(args),
        None => crate::gui::run(cli.files),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn files_open_the_app_and_subcommands_still_parse() {
        let cli = Cli::try_parse_from(["kiln", "a.png", "album"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.files,
            [std::path::PathBuf::from("a.png"), "album".into()]
        );
        let cli = Cli::try_parse_from(["kiln", "info", "a.png"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Info(_))));
        assert!(cli.files.is_empty());
        assert!(Cli::try_parse_from(["kiln"]).unwrap().files.is_empty());
    }
}
