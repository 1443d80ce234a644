//! `kiln info IMAGE`: prints the recipe and A1111 parameters stored in a PNG.

use anyhow::Context;
use clap::Args;
use kiln_inference::io::png_meta;
use std::path::PathBuf;

/// Arguments of `kiln info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A PNG written by Kiln, A1111, ComfyUI or another tool.
    image: PathBuf,
    /// Print JSON (recipe and parameters) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `kiln info`.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let recipe = png_meta::read_recipe(&bytes)?;
    let parameters = png_meta::read_parameters(&bytes)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "recipe": recipe, "parameters": parameters })
        );
        return Ok(());
    }
    if recipe.is_none() && parameters.is_none() {
        anyhow::bail!(
            "{} has no generation metadata (no Kiln recipe, no A1111 parameters)",
            args.image.display()
        );
    }
    if let Some(parameters) = parameters {
        println!("{parameters}");
    }
    if let Some(recipe) = recipe {
        println!("\nKiln recipe:\n{}", serde_json::to_string_pretty(&recipe)?);
    }
    Ok(())
}
