//! `kiln preprocess KIND IN OUT`: makes a ControlNet guide image from a picture, the same way
//! `--control …,pre=KIND` does before generating. depth, lineart and scribble from a photo run
//! a network found with `--model` or in the model folders; inpaint needs `--mask` (the guide's
//! masked pixels, −1 for the ControlNet, are shown black).

use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::recipe::Preprocessor;
use kiln_inference::vision::annotators::Preprocessors;
use kiln_inference::vision::preprocess::{PreprocessOptions, guide_with, inpaint_preview};
use kiln_inference::vision::scribble::ScribbleSource;
use std::path::PathBuf;

/// Arguments of `kiln preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// Preprocessor: canny, depth, lineart, scribble or inpaint (none copies the image).
    kind: String,
    /// Input image.
    input: PathBuf,
    /// Output PNG (an existing file is kept and `name-1.png` written instead, unless --force).
    output: PathBuf,
    /// The network for depth (a Depth Anything folder), lineart (sk_model.safetensors) or
    /// scribble from a photo (ControlNetHED.safetensors); default: found in the model folders.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// A model folder to look for the network in (repeatable; replaces the folders in Kiln's
    /// settings).
    #[arg(long, value_name = "DIR")]
    models_dir: Vec<PathBuf>,
    /// Scribble source: auto (a picture on a plain background is a drawing), sketch (binarise
    /// the strokes, no model) or photo (HED edges).
    #[arg(long, default_value = "auto", value_name = "auto|sketch|photo")]
    scribble: String,
    /// Line art: the coarse network (sk_model2.safetensors).
    #[arg(long)]
    coarse: bool,
    /// Canny low threshold.
    #[arg(long, default_value_t = kiln_inference::vision::preprocess::CANNY_LOW)]
    low: f32,
    /// Canny high threshold.
    #[arg(long, default_value_t = kiln_inference::vision::preprocess::CANNY_HIGH)]
    high: f32,
    /// Inpaint: the mask (white = repaint), resized to the input's size.
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `kiln preprocess`.
pub fn run(args: PreprocessArgs) -> anyhow::Result<()> {
    let Some(kind) = Preprocessor::from_name(&args.kind) else {
        bail!(
            "unknown preprocessor {:?}; expected one of none, canny, scribble, lineart, depth, \
             inpaint",
            args.kind
        );
    };
    let Some(scribble) = ScribbleSource::from_name(&args.scribble) else {
        bail!(
            "unknown --scribble {:?}; expected auto, sketch or photo",
            args.scribble
        );
    };
    if let Some(model) = &args.model
        && !model.exists()
    {
        bail!("preprocessor model not found: {}", model.display());
    }
    let options = PreprocessOptions {
        canny_low: args.low,
        canny_high: args.high,
        scribble,
        lineart_coarse: args.coarse,
    };
    let image = kiln_inference::engine::load_rgb(&args.input)?;
    let mut networks = Preprocessors::new(super::generate::model_dirs(&args.models_dir));
    let out = if kind == Preprocessor::Inpaint {
        let Some(mask) = &args.mask else {
            bail!("the inpaint preprocessor needs --mask MASK.png (white = repaint)");
        };
        let mask = kiln_inference::engine::load_mask(mask, image.width(), image.height())?;
        inpaint_preview(&image, &mask).context("mask and image sizes differ")?
    } else {
        if args.mask.is_some() {
            bail!("--mask is for the inpaint preprocessor");
        }
        guide_with(
            &mut networks,
            kind,
            &image,
            args.model.as_deref(),
            &options,
            &candle_core::Device::Cpu,
        )?
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
