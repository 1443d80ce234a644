//! `kiln generate`: text-to-image and image-to-image from the command line.

use crate::output::{OutputPlan, encode_output};
use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::engine::{Progress, Stage};
use kiln_inference::io::model::ModelFiles;
use kiln_inference::recipe::{InitImage, ModelRef};
use kiln_inference::{CancelToken, Engine, Recipe, SamplerKind};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `kiln generate` (the contract in the issue; keep names stable).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Diffusers folder or single-file `.safetensors` checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// Prompt (A1111 syntax: (word:1.3), [word], BREAK, long prompts).
    #[arg(long)]
    prompt: String,
    /// Negative prompt.
    #[arg(long)]
    negative: Option<String>,
    /// Seed (random when omitted; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Sampling steps.
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// Classifier-free guidance scale (≤ 1 disables the negative pass).
    #[arg(long, default_value_t = 7.0, allow_negative_numbers = true)]
    cfg: f32,
    /// Sampler: euler, euler-a, dpm++2m, dpm++2m-karras, ddim, lcm.
    #[arg(long, default_value = "dpm++2m-karras", value_parser = parse_sampler)]
    sampler: SamplerKind,
    /// Width in pixels (multiple of 8; default: the family's native size or the init image's).
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels (multiple of 8).
    #[arg(long)]
    height: Option<u32>,
    /// Init image for image-to-image.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Denoising strength in (0, 1] (image-to-image; default 0.8, SDXL 0.3).
    #[arg(long, allow_negative_numbers = true)]
    strength: Option<f32>,
    /// A1111 clip skip (1 = last layer).
    #[arg(long, default_value_t = 1)]
    clip_skip: u32,
    /// Number of images (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Replace existing output files instead of writing name-1.png, name-2.png, ….
    #[arg(long)]
    overwrite: bool,
    /// Output PNG.
    #[arg(long)]
    output: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_sampler(name: &str) -> Result<SamplerKind, String> {
    SamplerKind::from_cli_name(name).ok_or_else(|| {
        let names: Vec<&str> = SamplerKind::ALL.iter().map(|s| s.cli_name()).collect();
        format!(
            "unknown sampler {name:?} (expected one of {})",
            names.join(", ")
        )
    })
}

/// Builds the recipe: defaults from the model family and the init image.
fn recipe_from(args: &GenerateArgs, seed: u64) -> anyhow::Result<Recipe> {
    let files = ModelFiles::open(&args.model)?;
    let family = files.kind.family;
    eprintln!("model: {} ({})", files.kind.label(), args.model.display());
    let (native_w, native_h) = family.native_size();
    let init_size = match &args.init {
        Some(path) => {
            let (w, h) = image::image_dimensions(path)
                .with_context(|| format!("cannot read init image {}", path.display()))?;
            Some(((w / 8 * 8).max(8), (h / 8 * 8).max(8)))
        }
        None => None,
    };
    let (default_w, default_h) = init_size.unwrap_or((native_w, native_h));
    let width = args.width.unwrap_or(default_w);
    let height = args.height.unwrap_or(default_h);
    if width == 0 || height == 0 || !width.is_multiple_of(8) || !height.is_multiple_of(8) {
        bail!("size must be a positive multiple of 8, got {width}x{height}");
    }
    let init = match (&args.init, args.strength) {
        (Some(path), strength) => {
            let default = if family.is_sdxl() { 0.3 } else { 0.8 };
            let strength = strength.unwrap_or(default);
            if !(strength > 0.0 && strength <= 1.0) {
                bail!("--strength must be in (0, 1], got {strength}");
            }
            Some(InitImage {
                path: path.clone(),
                strength,
            })
        }
        (None, Some(_)) => bail!("--strength needs --init IMAGE"),
        (None, None) => None,
    };
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.clip_skip == 0 {
        bail!("--clip-skip must be at least 1");
    }
    Ok(Recipe {
        model: ModelRef {
            path: args.model.clone(),
            hash: None,
            family: Some(family.id().to_string()),
        },
        prompt: args.prompt.clone(),
        negative: args.negative.clone(),
        seed,
        sampler: args.sampler,
        steps: args.steps,
        cfg: args.cfg,
        width,
        height,
        init,
        clip_skip: args.clip_skip,
        batch: args.batch,
        ..Recipe::default()
    })
}

fn progress_line(p: &Progress) -> String {
    match &p.stage {
        Stage::Loading(part) => format!("loading {part}…"),
        Stage::Decoding => "decoding…".to_string(),
        Stage::Sampling => {
            let width = 30;
            let filled = (p.step * width)
                .checked_div(p.total)
                .unwrap_or(0)
                .min(width);
            let eta = p
                .eta
                .map(|d| format!(" ETA {:.1}s", d.as_secs_f64()))
                .unwrap_or_default();
            let image = if p.images > 1 {
                format!(" image {}/{}", p.image + 1, p.images)
            } else {
                String::new()
            };
            format!(
                "[{}{}] step {}/{}{image}{eta}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                p.step,
                p.total
            )
        }
    }
}

/// Runs `kiln generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let seed = args
        .seed
        .unwrap_or_else(kiln_inference::recipe::random_seed);
    let recipe = recipe_from(&args, seed)?;
    kiln_inference::engine::validate(&recipe)?;
    // Claim writable output paths before any work, so a bad path fails fast.
    let plan = OutputPlan::new(&args.output, recipe.batch as usize, args.overwrite)?;
    if args.seed.is_none() {
        eprintln!("seed: {seed}");
    }
    let mut engine = Engine::new();
    let stderr = std::io::stderr();
    let mut on_progress = |p: &Progress| {
        let mut err = stderr.lock();
        let _ignored = write!(err, "\r\x1b[2K{}", progress_line(p)).and_then(|_| err.flush());
    };
    let outputs = engine.run(&recipe, &mut on_progress, &CancelToken::default());
    eprintln!();
    let outputs = outputs?;
    let mut written = Vec::new();
    for (output, target) in outputs.iter().zip(plan.targets()) {
        let bytes = encode_output(output)?;
        let path = target.commit(&bytes)?;
        written.push((path, output.recipe.seed));
    }
    if args.json {
        let items: Vec<serde_json::Value> = written
            .iter()
            .map(|(path, seed)| serde_json::json!({ "path": path, "seed": seed }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "outputs": items, "recipe": recipe })
        );
    } else {
        for (path, _) in &written {
            println!("{}", path.display());
        }
    }
    Ok(())
}
