//! `kiln comic`: a story script (`docs/COMIC.md`) to a finished page. Each character's
//! reference panels are generated together with consistent self-attention, the rest read their
//! tokens (`kiln_inference::pipelines::story`); the panels are laid out with captions and
//! speech bubbles (`crate::comic::layout`) and written as a PNG page (optionally a PDF) plus one
//! PNG per panel next to it (`page-panel-1.png`, …, each with its own recipe embedded).

use crate::cli::generate::{load_preset, model_dirs};
use crate::comic::layout::{PageStyle, PanelArt, Template, compose};
use crate::comic::script::{Story, parse};
use crate::comic::story::request_of;
use crate::library::presets::{ModelLibrary, ResolveRequest, resolve};
use crate::output::{OutputPlan, encode_output};
use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::engine::{Output, Progress, Stage};
use kiln_inference::io::model::ModelFiles;
use kiln_inference::pipelines::stable_diffusion::GenerateRequest;
use kiln_inference::pipelines::story::{StoryProgress, StoryRequest, generate_story};
use kiln_inference::recipe::ModelRef;
use kiln_inference::unet::consistent::ConsistencySettings;
use kiln_inference::{CancelToken, Engine, Recipe, SamplerKind};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default steps without a preset.
const DEFAULT_STEPS: usize = 25;
/// Default guidance scale without a preset.
const DEFAULT_CFG: f32 = 7.0;

/// Arguments of `kiln comic`.
#[derive(Debug, Args)]
#[command(after_help = "\
The script's settings (preset, size, layout) apply unless a flag replaces them. Panels get the \
seeds SEED, SEED+1, … in script order. Each character's first --references panels (the panels \
that name it first) are generated together and share self-attention tokens; its later panels \
read them. Panels without characters ([NC]) are plain generations. See docs/COMIC.md.")]
pub struct ComicArgs {
    /// The story script (UTF-8 text; see docs/COMIC.md).
    #[arg(long)]
    script: PathBuf,
    /// Style preset for every panel (replaces the script's `preset:`): a built-in or user
    /// preset id or a `.toml` file.
    #[arg(long, value_name = "ID|FILE")]
    preset: Option<String>,
    /// Diffusers folder or single-file checkpoint (required without a preset; with one,
    /// replaces the preset's model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The page PNG; the panels go next to it as NAME-panel-1.png, ….
    #[arg(long)]
    output: PathBuf,
    /// Also write the page as a one-page PDF.
    #[arg(long, value_name = "FILE.pdf")]
    pdf: Option<PathBuf>,
    /// Seed of the first panel (random when omitted; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Sampling steps (default 25, or the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default 7, or the preset's).
    #[arg(long, allow_negative_numbers = true)]
    cfg: Option<f32>,
    /// Sampler (default dpm++2m-karras, or the preset's).
    #[arg(long, value_parser = super::generate::parse_sampler)]
    sampler: Option<SamplerKind>,
    /// Panel size `WxH` in pixels, multiples of 8 (replaces the script's `size:`).
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Page layout (replaces the script's `layout:`), e.g. grid-2x2, manga-4.
    #[arg(long)]
    layout: Option<String>,
    /// Page width in pixels (the height follows the layout and the panels' shape).
    #[arg(long, default_value_t = 1600)]
    page_width: u32,
    /// Reference panels per character, generated together (1–4).
    #[arg(long, default_value_t = 2)]
    references: usize,
    /// Generate every panel on its own (no shared self-attention).
    #[arg(long)]
    no_consistency: bool,
    /// Share tokens from this fraction of the steps on (0–1; default 0.1).
    #[arg(long, default_value_t = 0.1)]
    consistency_start: f32,
    /// Fraction of the other reference panels' tokens each panel sees (0–1; default 0.5).
    #[arg(long, default_value_t = 0.5)]
    consistency_rate: f32,
    /// Draw characters that have a `| photo:` with this IP-Adapter:
    /// `model=FILE,encoder=DIR[,scale=F]` (FILE in the original IP-Adapter layout, DIR its CLIP
    /// image encoder folder; scale 0.6 by default). Each panel led by such a character sees
    /// the photo.
    #[arg(long, value_name = "model=FILE,encoder=DIR[,scale=F]")]
    face_adapter: Option<String>,
    /// A CLIP image encoder folder (CLIPVisionModelWithProjection): print each panel's
    /// consistency score against its character's first reference panel.
    #[arg(long, value_name = "DIR")]
    score_encoder: Option<PathBuf>,
    /// A model folder to look up preset models in (repeatable; replaces the settings' folders).
    #[arg(long, value_name = "DIR")]
    models_dir: Vec<PathBuf>,
    /// Replace existing output files instead of writing NAME-1.png, ….
    #[arg(long)]
    overwrite: bool,
    /// Weight precision of the UNet and VAE: fp32 or bf16.
    #[arg(long, default_value = "fp32", value_parser = super::generate::parse_precision)]
    precision: kiln_inference::engine::Precision,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `WxH` (or `W×H`) with positive multiples of 8.
fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let parts: Vec<&str> = text.split(['x', 'X', '×']).collect();
    let [w, h] = parts.as_slice() else {
        bail!("--size must look like 512x768, got {text:?}");
    };
    let w: u32 = w
        .trim()
        .parse()
        .with_context(|| format!("--size: bad width in {text:?}"))?;
    let h: u32 = h
        .trim()
        .parse()
        .with_context(|| format!("--size: bad height in {text:?}"))?;
    check_size(w, h)?;
    Ok((w, h))
}

fn check_size(width: u32, height: u32) -> anyhow::Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(8) || !height.is_multiple_of(8) {
        bail!("panel size must be a positive multiple of 8, got {width}x{height}");
    }
    Ok(())
}

/// A `--face-adapter` value: adapter file, encoder folder, scale.
fn parse_face_adapter(text: &str) -> anyhow::Result<(PathBuf, PathBuf, f32)> {
    let (mut model, mut encoder, mut scale) = (None, None, 0.6f32);
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--face-adapter: expected key=value, got {part:?} in {text:?}");
        };
        match key.trim() {
            "model" => model = Some(PathBuf::from(value.trim())),
            "encoder" => encoder = Some(PathBuf::from(value.trim())),
            "scale" => {
                scale = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .with_context(|| {
                        format!("--face-adapter: scale must be a number, got {value:?}")
                    })?
            }
            other => bail!("--face-adapter: unknown key {other:?} (model, encoder, scale)"),
        }
    }
    let model = model.with_context(|| format!("--face-adapter needs model=FILE (in {text:?})"))?;
    let encoder =
        encoder.with_context(|| format!("--face-adapter needs encoder=DIR (in {text:?})"))?;
    if !model.is_file() {
        bail!(
            "--face-adapter: IP-Adapter file not found: {}",
            model.display()
        );
    }
    if !encoder.is_dir() {
        bail!(
            "--face-adapter: image encoder folder not found: {}",
            encoder.display()
        );
    }
    Ok((model, encoder, scale))
}

/// `dir/name.png` → `dir/name-panel-{k}.png`.
fn panel_path(page: &Path, k: usize) -> PathBuf {
    let stem = page
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "page".into());
    page.with_file_name(format!("{stem}-panel-{k}.png"))
}

/// `path`, or the first free `name-N.pdf` without `overwrite`.
fn pdf_target(path: &Path, overwrite: bool) -> anyhow::Result<PathBuf> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
    {
        bail!("--pdf must be a .pdf file, got {}", path.display());
    }
    if overwrite || !path.exists() {
        return Ok(path.to_path_buf());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (1..10_000)
        .map(|n| path.with_file_name(format!("{stem}-{n}.pdf")))
        .find(|p| !p.exists())
        .with_context(|| format!("no free file name next to {}", path.display()))
}

/// One recipe per panel (preset or plain), with the command line's overrides.
fn panel_recipes(
    args: &ComicArgs,
    story: &Story,
    seed: u64,
) -> anyhow::Result<(Vec<Recipe>, Vec<String>)> {
    let preset_name = args.preset.clone().or_else(|| story.preset.clone());
    let mut warnings = Vec::new();
    let mut recipes = Vec::with_capacity(story.panels.len());
    let size = match (&args.size, story.size) {
        (Some(text), _) => Some(parse_size(text)?),
        (None, size) => size,
    };
    match &preset_name {
        Some(name) => {
            let preset = load_preset(name)?;
            let library = ModelLibrary::scan(&model_dirs(&args.models_dir));
            for panel in &story.panels {
                let request = ResolveRequest {
                    prompt: story.panel_prompt(panel),
                    model_override: args.model.clone(),
                    ..ResolveRequest::default()
                };
                let resolved = resolve(&preset, &request, &library)
                    .map_err(|e| anyhow::anyhow!("preset {name:?}: {e}"))?;
                for w in &resolved.warnings {
                    let w = w.to_string();
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
                recipes.push(resolved.recipe);
            }
            eprintln!("preset: {name}");
        }
        None => {
            let Some(model) = &args.model else {
                bail!(
                    "--model is required (a model folder or .safetensors file), or use --preset \
                     or a `preset:` line in the script"
                );
            };
            let files = ModelFiles::open(model)?;
            let family = files.kind.family;
            let (width, height) = family.native_size();
            for panel in &story.panels {
                recipes.push(Recipe {
                    model: ModelRef {
                        path: model.clone(),
                        hash: None,
                        family: Some(family.id().to_string()),
                    },
                    prompt: story.panel_prompt(panel),
                    steps: DEFAULT_STEPS,
                    cfg: DEFAULT_CFG,
                    width,
                    height,
                    ..Recipe::default()
                });
            }
        }
    }
    for (k, recipe) in recipes.iter_mut().enumerate() {
        if let Some((w, h)) = size {
            (recipe.width, recipe.height) = (w, h);
        }
        if let Some(steps) = args.steps {
            recipe.steps = steps;
        }
        if let Some(cfg) = args.cfg {
            recipe.cfg = cfg;
        }
        if let Some(sampler) = args.sampler {
            recipe.sampler = sampler;
        }
        recipe.seed = seed.wrapping_add(k as u64);
        recipe.batch = 1;
        check_size(recipe.width, recipe.height)?;
        kiln_inference::engine::validate(recipe)?;
    }
    Ok((recipes, warnings))
}

fn progress_line(p: &StoryProgress) -> String {
    let names: Vec<String> = p.panels.iter().map(|k| (k + 1).to_string()).collect();
    format!(
        "panel{} {} of {}: step {}/{}",
        if p.panels.len() > 1 { "s" } else { "" },
        names.join("+"),
        p.total_panels,
        p.step.step,
        p.step.total
    )
}

/// Runs `kiln comic`.
pub fn run(args: ComicArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read script {}", args.script.display()))?;
    let mut story = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.script.display()))?;
    if let Some(dir) = args.script.parent() {
        story.resolve_photos(dir);
    }
    let face_adapter = match &args.face_adapter {
        Some(text) => Some(parse_face_adapter(text)?),
        None => None,
    };
    for c in &story.characters {
        if let (Some(photo), Some(_)) = (&c.photo, &face_adapter)
            && !photo.is_file()
        {
            bail!("{}: photo not found: {}", c.name, photo.display());
        }
    }
    let has_photos = story.characters.iter().any(|c| c.photo.is_some());
    if !(1..=4).contains(&args.references) {
        bail!("--references must be 1 to 4, got {}", args.references);
    }
    let layout_name = args.layout.clone().or_else(|| story.layout.clone());
    let template = match &layout_name {
        Some(name) => Template::by_name(name).with_context(|| {
            format!(
                "unknown layout {name:?} (one of {})",
                Template::NAMES.join(", ")
            )
        })?,
        None => Template::for_count(story.panels.len())
            .with_context(|| format!("{} panels: a page holds 1 to 6", story.panels.len()))?,
    };
    if story.panels.len() > template.capacity() {
        bail!(
            "{} panels do not fit layout '{}', which holds {}",
            story.panels.len(),
            template.name(),
            template.capacity()
        );
    }
    let consistency = if args.no_consistency {
        None
    } else {
        Some(ConsistencySettings {
            rate: args.consistency_rate,
            start: args.consistency_start,
            ..ConsistencySettings::default()
        })
    };
    let seed = args
        .seed
        .unwrap_or_else(kiln_inference::recipe::random_seed);
    let (mut recipes, mut warnings) = panel_recipes(&args, &story, seed)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let first = recipes.first().context("the script has no panels")?;
    let panel_size = (first.width, first.height);
    let style = PageStyle::fitted(&template, panel_size, args.page_width);
    // Claim every output before any work, so a bad path fails fast.
    let page_plan = OutputPlan::new(&args.output, 1, args.overwrite)?;
    let panel_plans = (1..=recipes.len())
        .map(|k| OutputPlan::new(&panel_path(&args.output, k), 1, args.overwrite))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pdf_path = match &args.pdf {
        Some(path) => Some(pdf_target(path, args.overwrite)?),
        None => None,
    };
    if args.seed.is_none() {
        eprintln!("seed: {seed}");
    }
    let encoder = match &args.score_encoder {
        Some(dir) => Some(
            kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel::load(
                dir,
                &candle_core::Device::Cpu,
            )?,
        ),
        None => None,
    };
    let leads = crate::comic::story::leads(&story);
    let mut requests: Vec<GenerateRequest> = recipes.iter().map(request_of).collect();

    let mut engine = Engine::new();
    engine.precision = args.precision;
    let stderr = std::io::stderr();
    let mut on_load = |p: &Progress| {
        if let Stage::Loading(part) = &p.stage {
            let mut err = stderr.lock();
            let _ignored = write!(err, "\r\x1b[2Kloading {part}…").and_then(|_| err.flush());
        }
    };
    let prepared = engine.prepare_model(first, &mut on_load);
    eprintln!();
    let (sd, lora_warnings) = prepared?;
    for w in lora_warnings {
        if !warnings.contains(&w) {
            eprintln!("warning: {w}");
            warnings.push(w);
        }
    }
    // Character photos without --face-adapter: an IP-Adapter of the model's family found in
    // the model folders (the app does the same).
    let face_adapter = match face_adapter {
        Some(found) => Some(found),
        None if has_photos => {
            let found = crate::comic::story::find_face_adapter(&model_dirs(&args.models_dir), sd);
            match &found {
                Some((model, _)) => eprintln!("character photos: {}", model.display()),
                None => {
                    let w = crate::comic::story::NO_FACE_ADAPTER.to_string();
                    eprintln!("warning: {w}");
                    warnings.push(w);
                }
            }
            found.map(|(model, encoder)| (model, encoder, crate::comic::story::FACE_ADAPTER_SCALE))
        }
        None => None,
    };
    if let Some((model, encoder_dir, scale)) = &face_adapter {
        crate::comic::story::add_face_adapter(
            sd,
            &story,
            &leads,
            (model, encoder_dir, *scale),
            &mut recipes,
            &mut requests,
        )?;
    }
    let mut on_step = |p: StoryProgress| {
        let mut err = stderr.lock();
        let _ignored = write!(err, "\r\x1b[2K{}", progress_line(&p)).and_then(|_| err.flush());
    };
    let images = generate_story(
        sd,
        &StoryRequest {
            requests: &requests,
            leads: &leads,
            consistency,
            references: args.references,
        },
        &mut on_step,
        &mut |_, _| {},
        &CancelToken::default(),
    );
    eprintln!();
    let images = images?;

    let mut scores = vec![None; images.len()];
    if let Some(encoder) = &encoder {
        let drawn: Vec<Option<&image::RgbImage>> = images.iter().map(Some).collect();
        scores = crate::comic::story::drift_scores(encoder, &leads, &drawn)?;
        for (k, score) in scores.iter().enumerate() {
            let reference = leads
                .get(k)
                .and_then(|lead| leads.iter().position(|l| l == lead));
            if let (Some(score), Some(reference)) = (score, reference) {
                eprintln!(
                    "panel {}: consistency {score:.3} against panel {}",
                    k + 1,
                    reference + 1
                );
            }
        }
    }

    // Characters with a photo: how much each of their panels looks like it (needs the face
    // models in the model folders; skipped without them).
    let mut identities = vec![None; images.len()];
    let photos = crate::comic::story::character_photos(&story);
    if photos.iter().any(Option::is_some)
        && let Some(dir) = kiln_inference::vision::face::find_models(&model_dirs(&args.models_dir))
    {
        let analyzer = kiln_inference::vision::face::FaceAnalyzer::load_dir(&dir)?;
        let drawn: Vec<Option<&image::RgbImage>> = images.iter().map(Some).collect();
        identities = crate::comic::story::identity_scores(&analyzer, &photos, &leads, &drawn);
        for (k, identity) in identities.iter().enumerate() {
            if let Some(identity) = identity {
                eprintln!(
                    "panel {}: identity {identity:.3} against its character's photo",
                    k + 1
                );
            }
        }
    }

    let arts: Vec<PanelArt> = story
        .panels
        .iter()
        .zip(&images)
        .map(|(panel, image)| PanelArt {
            image: image.clone(),
            caption: panel.caption.clone(),
            speech: panel.speech.clone(),
        })
        .collect();
    let page = compose(&arts, &template, &style)?;
    let mut page_bytes = Vec::new();
    page.write_to(
        &mut std::io::Cursor::new(&mut page_bytes),
        image::ImageFormat::Png,
    )
    .context("cannot encode the page as PNG")?;
    let mut panel_paths = Vec::with_capacity(images.len());
    for ((image, recipe), plan) in images.iter().zip(&recipes).zip(&panel_plans) {
        let output = Output {
            image: image.clone(),
            recipe: recipe.clone(),
            warnings: Vec::new(),
        };
        let target = plan.targets().first().context("no output slot")?;
        panel_paths.push(target.commit(&encode_output(&output)?)?);
    }
    let target = page_plan.targets().first().context("no output slot")?;
    let page_path = target.commit(&page_bytes)?;
    if let Some(path) = &pdf_path {
        crate::comic::export::write_pdf(&page, path)?;
    }
    if args.json {
        let panels: Vec<serde_json::Value> = panel_paths
            .iter()
            .zip(&recipes)
            .zip(&scores)
            .zip(&identities)
            .map(|(((path, recipe), score), identity)| {
                serde_json::json!({
                    "path": path,
                    "seed": recipe.seed,
                    "prompt": recipe.prompt,
                    "consistency": score,
                    "identity": identity,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "page": page_path,
                "pdf": pdf_path,
                "layout": template.name(),
                "size": [page.width(), page.height()],
                "panels": panels,
                "warnings": warnings,
            })
        );
    } else {
        println!("{}", page_path.display());
        if let Some(path) = &pdf_path {
            println!("{}", path.display());
        }
        for path in &panel_paths {
            println!("{}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("512x768").unwrap(), (512, 768));
        assert_eq!(parse_size("64×64").unwrap(), (64, 64));
        assert!(parse_size("500x500").is_err());
        assert!(parse_size("512").is_err());
        assert_eq!(
            panel_path(Path::new("out/page.png"), 2),
            PathBuf::from("out/page-panel-2.png")
        );
        assert!(pdf_target(Path::new("page.png"), false).is_err());
    }
}
