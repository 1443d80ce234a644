//! `kiln preprocess KIND IN OUT`: makes a ControlNet guide image from a picture, the same way
//! `--control …,pre=KIND` does before generating.

use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::recipe::Preprocessor;
use kiln_inference::vision::preprocess::{canny, gray_to_rgb, guide};
use std::path::PathBuf;

/// Arguments of `kiln preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// Preprocessor: canny (scribble, lineart and depth are not available yet).
    kind: String,
    /// Input image.
    input: PathBuf,
    /// Output PNG (an existing file is kept and `name-1.png` written instead, unless --force).
    output: PathBuf,
    /// Canny low threshold.
    #[arg(long, default_value_t = kiln_inference::vision::preprocess::CANNY_LOW)]
    low: f32,
    /// Canny high threshold.
    #[arg(long, default_value_t = kiln_inference::vision::preprocess::CANNY_HIGH)]
    high: f32,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `kiln preprocess`.
pub fn run(args: PreprocessArgs) -> anyhow::Result<()> {
    let Some(kind) = Preprocessor::from_name(&args.kind) else {
        bail!(
            "unknown preprocessor {:?}; expected one of none, canny, scribble, lineart, depth",
            args.kind
        );
    };
    let image = kiln_inference::engine::load_rgb(&args.input)?;
    let out = match kind {
        Preprocessor::Canny => gray_to_rgb(&canny(&image, args.low, args.high)),
        other => guide(&image, other)?,
    };
    let mut png = Vec::new();
    out.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the guide as PNG")?;
    let plan = crate::output::OutputPlan::new(&args.output, 1, args.force)?;
    let Some(target) = plan.targets().first() else {
        bail!("no output slot");
    };
    let written = target.commit(&png)?;
    println!("{}", written.display());
    Ok(())
}
