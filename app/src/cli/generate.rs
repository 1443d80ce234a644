//! `kiln generate`: text-to-image and image-to-image from the command line, optionally from a
//! style preset (`--preset clay`), with LoRAs from the preset, `<lora:name:w>` prompt tags and
//! `--lora FILE:WEIGHT`.

use crate::library::models::ModelFileKind;
use crate::library::presets::{
    self, ModelLibrary, PresetStore, ResolveRequest, load_preset_file, merge_loras, parse_lora_arg,
    resolve_prompt_loras, resolve_with_caption,
};
use crate::library::settings::{Settings, settings_path};
use crate::output::{OutputPlan, encode_output};
use anyhow::{Context, bail};
use clap::Args;
use ip_adapter::parse_ip_adapter;
use kiln_inference::engine::{Progress, Stage};
use kiln_inference::io::model::ModelFiles;
use kiln_inference::recipe::{
    ControlSpec, InitImage, MaskSpec, ModelRef, OutpaintSpec, Preprocessor,
};
use kiln_inference::{CancelToken, Engine, LoraSpec, Recipe, SamplerKind};
use region::parse_region;
use std::io::Write;
use std::path::{Path, PathBuf};

mod face;
mod face_fix;
mod ip_adapter;
mod region;

/// Default steps without a preset.
const DEFAULT_STEPS: usize = 25;
/// Default guidance scale without a preset.
const DEFAULT_CFG: f32 = 7.0;

/// Arguments of `kiln generate` (the contract in the issue; keep names stable).
#[derive(Debug, Args)]
#[command(after_help = "\
With --preset, values are taken in this order: a flag given on the command line, then the \
preset, then Kiln's defaults. The preset's model and LoRAs are looked up by name in the model \
folders (--models-dir, else the folders in Kiln's settings); --model replaces the preset's \
model. --prompt fills the preset's {prompt}; without a prompt, a preset that auto-captions \
describes the --init image itself. On photos the output keeps the photo's aspect ratio at \
the preset's pixel count unless --width/--height are given.

LoRAs are applied in this order: the preset's, then <lora:name:weight> tags in the prompt \
(name = file name without extension, found in the model folders), then --lora; a file given \
twice keeps the last weight.")]
pub struct GenerateArgs {
    /// Diffusers folder or single-file `.safetensors` checkpoint (required without --preset;
    /// with one, replaces the preset's model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Style preset: a built-in or user preset id (`kiln presets list`) or a `.toml` file.
    #[arg(long, value_name = "ID|FILE")]
    preset: Option<String>,
    /// Prompt (A1111 syntax: (word:1.3), [word], BREAK, <lora:name:weight>, long prompts).
    /// Required without --preset; optional with a preset that auto-captions --init.
    #[arg(long)]
    prompt: Option<String>,
    /// Negative prompt (default: the preset's).
    #[arg(long)]
    negative: Option<String>,
    /// Seed (random when omitted; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Sampling steps (default 25, or the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale; ≤ 1 disables the negative pass (default 7, or the
    /// preset's).
    #[arg(long, allow_negative_numbers = true)]
    cfg: Option<f32>,
    /// Sampler: euler, euler-a, dpm++2m, dpm++2m-karras, ddim, lcm (default dpm++2m-karras, or
    /// the preset's).
    #[arg(long, value_parser = parse_sampler)]
    sampler: Option<SamplerKind>,
    /// Width in pixels (multiple of 8; default: the family's native size, the init image's,
    /// or the preset's).
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels (multiple of 8).
    #[arg(long)]
    height: Option<u32>,
    /// Init image for image-to-image.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Denoising strength in (0, 1] (image-to-image; default: the preset's, else 0.8, SDXL 0.3).
    #[arg(long, allow_negative_numbers = true)]
    strength: Option<f32>,
    /// A1111 clip skip (1 = last layer; default 1, or the preset's).
    #[arg(long)]
    clip_skip: Option<u32>,
    /// A LoRA file with an optional weight (default 1), e.g. `clay.safetensors:0.8`. Repeatable.
    #[arg(long, value_name = "FILE[:WEIGHT]")]
    lora: Vec<String>,
    /// A model folder to look up preset models and <lora:…> names in (repeatable; replaces the
    /// folders in Kiln's settings).
    #[arg(long, value_name = "DIR")]
    models_dir: Vec<PathBuf>,
    /// A ControlNet: `model=PATH,image=IMG[,pre=none|canny|scribble|lineart|depth|inpaint]
    /// [,scale=F][,start=F][,end=F]` (PATH a ControlNet folder or file, or a name in the model
    /// folders; pre none = IMG is the guide; pre inpaint = an inpainting ControlNet's guide, IMG
    /// with the --mask area blanked, IMG optional: the --init image; scale 1, start 0, end 1 by
    /// default). Repeatable.
    #[arg(long, value_name = "model=PATH,image=IMG,…")]
    control: Vec<String>,
    /// ControlNet guess mode (the ControlNets see no prompt; shallow layers count less).
    #[arg(long)]
    guess_mode: bool,
    /// A regional prompt: `prompt=TEXT,box=X0,Y0,X1,Y1` (box in fractions of the image, origin
    /// top left) or `prompt=TEXT,mask=PNG` (white = the region, gray = partly; resized to the
    /// image size), then optionally `,weight=W` (0–1, default 1) and `,negative=TEXT`. TEXT may
    /// hold commas. Later regions cover earlier ones. Repeatable; see docs/REGIONAL.md.
    #[arg(long, value_name = "prompt=TEXT,box=X0,Y0,X1,Y1|mask=PNG[,weight=W]")]
    region: Vec<String>,
    /// An IP-Adapter: `model=FILE,encoder=DIR,image=IMG[,scale=F]` (FILE the adapter weights in
    /// the original IP-Adapter layout or a name in the model folders, DIR a CLIP image encoder
    /// folder, IMG the reference picture; scale 1 by default). Repeatable.
    #[arg(long, value_name = "model=FILE,encoder=DIR,image=IMG[,scale=F]")]
    ip_adapter: Vec<String>,
    /// InstantID options.
    #[command(flatten)]
    face: face::FaceArgs,
    /// Face fix options.
    #[command(flatten)]
    face_fix: face_fix::FaceFixArgs,
    /// Inpainting mask for --init (white = repaint).
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// Blur radius in pixels of the mask edge when pasting the result over --init (0 = no
    /// paste-back).
    #[arg(long, default_value_t = 0, value_name = "N")]
    mask_blur: u32,
    /// Inpaint only a crop around the mask at full resolution and paste it back.
    #[arg(long)]
    only_masked: bool,
    /// Context pixels around the mask with --only-masked.
    #[arg(long, default_value_t = 32, value_name = "N")]
    mask_padding: u32,
    /// Outpainting: extend --init by these many pixels on each side and generate the new area
    /// (sides left out are 0; `overlap` = pixels of the original repainted and blended along
    /// each extended side, default 16; the size is rounded up to multiples of 8; --strength
    /// defaults to 1.0). Works with ordinary and inpainting checkpoints.
    #[arg(long, value_name = "left=N,right=N,top=N,bottom=N[,overlap=N]")]
    outpaint: Option<String>,
    /// An RGBA image composited over every output after generation (text kept crisp).
    #[arg(long, value_name = "PNG")]
    overlay: Option<PathBuf>,
    /// Number of images (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Replace existing output files instead of writing name-1.png, name-2.png, ….
    #[arg(long)]
    overwrite: bool,
    /// Output PNG.
    #[arg(long)]
    output: PathBuf,
    /// Weight precision of the UNet and VAE decoder: fp32 (matches diffusers within 3/255),
    /// bf16 (weights packed as bf16, products summed in f32: about half the memory and faster
    /// on CPUs with AVX512-BF16; within 8/255 of fp32) or int8 (8-bit weights with one scale
    /// per output channel, bf16 compute: half of bf16's weight memory, for 8 GiB machines).
    #[arg(long, default_value = "fp32", value_parser = parse_precision)]
    precision: kiln_inference::engine::Precision,
    /// Where the UNet and VAE run: auto (a hardware GPU through wgpu when there is one, else the
    /// CPU), cpu, wgpu (any GPU, or a software one), cuda or metal (builds with those features).
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: kiln_inference::gpu::ComputeDevice,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_precision(name: &str) -> Result<kiln_inference::engine::Precision, String> {
    use kiln_inference::engine::Precision;
    match name {
        "fp32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        "int8" => Ok(Precision::Int8),
        other => Err(format!(
            "unknown precision {other:?} (expected fp32, bf16 or int8)"
        )),
    }
}

pub(crate) fn parse_device(name: &str) -> Result<kiln_inference::gpu::ComputeDevice, String> {
    kiln_inference::gpu::ComputeDevice::parse(name)
        .ok_or_else(|| format!("unknown device {name:?} (expected auto, cpu, wgpu, cuda or metal)"))
}

pub(crate) fn parse_sampler(name: &str) -> Result<SamplerKind, String> {
    SamplerKind::from_cli_name(name).ok_or_else(|| {
        let names: Vec<&str> = SamplerKind::ALL.iter().map(|s| s.cli_name()).collect();
        format!(
            "unknown sampler {name:?} (expected one of {})",
            names.join(", ")
        )
    })
}

/// The model folders: `--models-dir`, else the settings' (a broken settings file is not
/// renamed here, only reported).
fn library_dirs(args: &GenerateArgs) -> Vec<PathBuf> {
    model_dirs(&args.models_dir)
}

/// `explicit` (`--models-dir`) when given, else the settings' model folders (shared with
/// `kiln batch`).
pub(crate) fn model_dirs(explicit: &[PathBuf]) -> Vec<PathBuf> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let path = settings_path();
    if !path.exists() {
        return Settings::default().model_dirs;
    }
    match Settings::load_from(&path) {
        Ok(settings) => settings.model_dirs,
        Err(e) => {
            eprintln!("warning: {e:#}; using the default model folder");
            Settings::default().model_dirs
        }
    }
}

fn check_strength(strength: f32) -> anyhow::Result<f32> {
    if !(strength > 0.0 && strength <= 1.0) {
        bail!("--strength must be in (0, 1], got {strength}");
    }
    Ok(strength)
}

fn check_size(width: u32, height: u32) -> anyhow::Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(8) || !height.is_multiple_of(8) {
        bail!("size must be a positive multiple of 8, got {width}x{height}");
    }
    Ok(())
}

/// Builds the recipe without a preset: defaults from the model family and the init image.
fn recipe_from(args: &GenerateArgs, seed: u64) -> anyhow::Result<Recipe> {
    let Some(model) = &args.model else {
        bail!("--model is required (a model folder or .safetensors file), or use --preset");
    };
    let Some(prompt) = &args.prompt else {
        bail!("--prompt is required without --preset");
    };
    let files = ModelFiles::open(model)?;
    let family = files.kind.family;
    eprintln!("model: {} ({})", files.kind.label(), model.display());
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
    check_size(width, height)?;
    let init = match (&args.init, args.strength) {
        (Some(path), strength) => {
            let default = if family.is_sdxl() { 0.3 } else { 0.8 };
            Some(InitImage {
                path: path.clone(),
                strength: check_strength(strength.unwrap_or(default))?,
            })
        }
        (None, Some(_)) => bail!("--strength needs --init IMAGE"),
        (None, None) => None,
    };
    Ok(Recipe {
        model: ModelRef {
            path: model.clone(),
            hash: None,
            family: Some(family.id().to_string()),
        },
        prompt: prompt.clone(),
        negative: args.negative.clone(),
        seed,
        sampler: args.sampler.unwrap_or_default(),
        steps: args.steps.unwrap_or(DEFAULT_STEPS),
        cfg: args.cfg.unwrap_or(DEFAULT_CFG),
        width,
        height,
        init,
        clip_skip: args.clip_skip.unwrap_or(1),
        batch: args.batch,
        ..Recipe::default()
    })
}

/// A preset by id (user presets first) or from a `.toml` file (shared with `kiln batch`).
pub(crate) fn load_preset(spec: &str) -> anyhow::Result<presets::Preset> {
    let path = Path::new(spec);
    let looks_like_file =
        spec.ends_with(".toml") || spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR);
    if looks_like_file || path.is_file() {
        return Ok(load_preset_file(path)?);
    }
    let store = PresetStore::user_default();
    let list = store.list();
    for issue in &list.issues {
        eprintln!("warning: {}", issue.error);
    }
    match list.get(spec) {
        Some(entry) => Ok(entry.preset.clone()),
        None => {
            let ids: Vec<&str> = list.presets.iter().map(|e| e.id()).collect();
            bail!(
                "no preset {spec:?} (available: {}; or give a .toml file)",
                ids.join(", ")
            )
        }
    }
}

/// Builds the recipe from a preset; command-line flags override it.
fn recipe_from_preset(
    args: &GenerateArgs,
    spec: &str,
    seed: u64,
    library: &ModelLibrary,
) -> anyhow::Result<(Recipe, Vec<String>)> {
    let preset = load_preset(spec)?;
    if args.strength.is_some() && args.init.is_none() {
        bail!("--strength needs --init IMAGE");
    }
    let request = ResolveRequest {
        prompt: args.prompt.clone().unwrap_or_default(),
        init_image: args.init.clone(),
        caption: None,
        model_override: args.model.clone(),
        fallback_model: None,
    };
    let resolved = resolve_with_caption(&preset, &request, library)?;
    let warnings: Vec<String> = resolved.warnings.iter().map(ToString::to_string).collect();
    let mut recipe = resolved.recipe;
    eprintln!(
        "preset: {} ({}), model {}",
        preset.id,
        preset.name.en,
        recipe.model.path.display()
    );
    if let Some(negative) = &args.negative {
        recipe.negative = Some(negative.clone());
    }
    if let Some(sampler) = args.sampler {
        recipe.sampler = sampler;
    }
    if let Some(steps) = args.steps {
        recipe.steps = steps;
    }
    if let Some(cfg) = args.cfg {
        recipe.cfg = cfg;
    }
    if let Some(clip_skip) = args.clip_skip {
        recipe.clip_skip = clip_skip;
    }
    if let Some(width) = args.width {
        recipe.width = width;
    }
    if let Some(height) = args.height {
        recipe.height = height;
    }
    check_size(recipe.width, recipe.height)?;
    if let (Some(init), Some(strength)) = (&mut recipe.init, args.strength) {
        init.strength = check_strength(strength)?;
    }
    if let Some(init) = &recipe.init {
        image::image_dimensions(&init.path)
            .with_context(|| format!("cannot read init image {}", init.path.display()))?;
    }
    recipe.seed = seed;
    recipe.batch = args.batch;
    Ok((recipe, warnings))
}

/// The `--lora` arguments as specs (files must exist).
fn cli_loras(args: &GenerateArgs) -> anyhow::Result<Vec<LoraSpec>> {
    args.lora
        .iter()
        .map(|text| {
            let (path, weight) = parse_lora_arg(text).map_err(anyhow::Error::msg)?;
            if !path.is_file() {
                bail!("LoRA file not found: {}", path.display());
            }
            Ok(presets::lookup::lora_spec(&path, weight))
        })
        .collect()
}

/// Parses one `--control` value; PATH may be a ControlNet name in the model folders.
fn parse_control(text: &str, library: &ModelLibrary) -> anyhow::Result<ControlSpec> {
    let mut spec = ControlSpec::default();
    let (mut model, mut image) = (None, None);
    for part in text.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--control: expected key=value, got {part:?} in {text:?}");
        };
        let number = || -> anyhow::Result<f32> {
            value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("--control: {key} must be a number, got {value:?}"))
        };
        match key.trim() {
            "model" => model = Some(value.to_string()),
            "image" => image = Some(PathBuf::from(value)),
            "pre" => {
                spec.preprocessor = Preprocessor::from_name(value.trim()).with_context(|| {
                    format!(
                        "--control: unknown pre={value:?} (none, canny, scribble, lineart, depth, \
                         inpaint)"
                    )
                })?
            }
            "scale" => spec.scale = number()?,
            "start" => spec.start = number()?,
            "end" => spec.end = number()?,
            other => {
                bail!("--control: unknown key {other:?} (model, image, pre, scale, start, end)")
            }
        }
    }
    let Some(model) = model else {
        bail!("--control needs model=PATH (in {text:?})");
    };
    // An inpainting guide is made from the init image unless it has an image of its own.
    let image = match image {
        Some(image) => image,
        None if spec.preprocessor == Preprocessor::Inpaint => PathBuf::new(),
        None => bail!("--control needs image=IMG (in {text:?})"),
    };
    let path = PathBuf::from(&model);
    spec.model = if path.exists() {
        path
    } else {
        match library.find(
            &[ModelFileKind::ControlNet],
            None,
            std::slice::from_ref(&model),
        ) {
            Some(entry) => entry.path.clone(),
            None => bail!(
                "ControlNet {model:?} not found (not a file or folder, and no ControlNet of that \
                 name in the model folders)"
            ),
        }
    };
    if !image.as_os_str().is_empty() && !image.is_file() {
        bail!("--control image not found: {}", image.display());
    }
    spec.image = image;
    Ok(spec)
}

/// Parses an `--outpaint` value: `left=N,right=N,top=N,bottom=N[,overlap=N]`.
fn parse_outpaint(text: &str) -> anyhow::Result<OutpaintSpec> {
    let mut spec = OutpaintSpec::default();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            bail!("--outpaint: expected side=pixels, got {part:?} in {text:?}");
        };
        let pixels: u32 = value.trim().parse().with_context(|| {
            format!("--outpaint: {key} must be a whole number of pixels, got {value:?}")
        })?;
        match key.trim() {
            "left" => spec.left = pixels,
            "right" => spec.right = pixels,
            "top" => spec.top = pixels,
            "bottom" => spec.bottom = pixels,
            "overlap" => spec.overlap = pixels,
            other => bail!("--outpaint: unknown key {other:?} (left, right, top, bottom, overlap)"),
        }
    }
    Ok(spec)
}

/// Sets up outpainting (`--outpaint`): the size follows the init image and the extension,
/// strength 1.0 unless given.
fn apply_outpaint(args: &GenerateArgs, recipe: &mut Recipe, text: &str) -> anyhow::Result<()> {
    let spec = parse_outpaint(text)?;
    if args.mask.is_some() {
        bail!("--outpaint makes its own mask: leave out --mask");
    }
    if args.width.is_some() || args.height.is_some() {
        bail!(
            "--outpaint sets the size (the init image plus the extension): leave out --width/--height"
        );
    }
    let Some(init) = &mut recipe.init else {
        bail!("--outpaint needs --init IMAGE (the picture to extend)");
    };
    if args.strength.is_none() {
        init.strength = 1.0;
    }
    let (width, height) = image::image_dimensions(&init.path)
        .with_context(|| format!("cannot read init image {}", init.path.display()))?;
    let plan = kiln_inference::pipelines::outpaint::plan(width, height, &spec)?;
    (recipe.width, recipe.height) = (plan.width(), plan.height());
    recipe.outpaint = Some(spec);
    Ok(())
}

/// The full recipe: preset or plain, then prompt-tag and `--lora` LoRAs.
fn build_recipe(args: &GenerateArgs, seed: u64) -> anyhow::Result<(Recipe, Vec<String>)> {
    let has_tags = args
        .prompt
        .as_deref()
        .is_some_and(|p| !kiln_inference::text::prompt::extract_loras(p).1.is_empty());
    let needs_library = args.preset.is_some()
        || has_tags
        || args.control.iter().any(|c| {
            c.split(',')
                .any(|p| p.starts_with("model=") && !Path::new(&p[6..]).exists())
        })
        || args.ip_adapter.iter().any(|a| ip_adapter::needs_library(a));
    let library = if needs_library {
        ModelLibrary::scan(&library_dirs(args))
    } else {
        ModelLibrary::default()
    };
    let (mut recipe, warnings) = match &args.preset {
        Some(spec) => recipe_from_preset(args, spec, seed, &library)?,
        None => (recipe_from(args, seed)?, Vec::new()),
    };
    let tag_loras = resolve_prompt_loras(&recipe.prompt, &library)?;
    merge_loras(&mut recipe.loras, tag_loras);
    merge_loras(&mut recipe.loras, cli_loras(args)?);
    if !args.control.is_empty() {
        recipe.controls = args
            .control
            .iter()
            .map(|c| parse_control(c, &library))
            .collect::<anyhow::Result<_>>()?;
    }
    recipe.guess_mode = recipe.guess_mode || args.guess_mode;
    if !args.ip_adapter.is_empty() {
        recipe.ip_adapters = args
            .ip_adapter
            .iter()
            .map(|a| parse_ip_adapter(a, &library))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(face) = face::face_spec(&args.face, &library_dirs(args))? {
        recipe.face = Some(face);
    }
    let analysis = match &args.face.face_analysis {
        Some(dir) => dir.clone(),
        None => kiln_inference::vision::face::find_models(&library_dirs(args)).unwrap_or_default(),
    };
    if let Some(spec) = face_fix::face_fix_spec(&args.face_fix, &analysis)? {
        recipe.face_fix = Some(spec);
    }
    if !args.region.is_empty() {
        recipe.regions = args
            .region
            .iter()
            .enumerate()
            .map(|(i, r)| parse_region(r, i))
            .collect::<anyhow::Result<_>>()?;
    }
    match &args.mask {
        Some(path) => {
            if recipe.init.is_none() {
                bail!("--mask needs --init IMAGE");
            }
            if !path.is_file() {
                bail!("mask not found: {}", path.display());
            }
            recipe.mask = Some(MaskSpec {
                path: path.clone(),
                blur: args.mask_blur,
                only_masked: args.only_masked,
                padding: args.mask_padding,
            });
        }
        None if args.only_masked || args.mask_blur > 0 => {
            bail!("--only-masked and --mask-blur need --mask MASK.png")
        }
        None => {}
    }
    if let Some(text) = &args.outpaint {
        apply_outpaint(args, &mut recipe, text)?;
    }
    if let Some(path) = &args.overlay {
        if !path.is_file() {
            bail!("overlay not found: {}", path.display());
        }
        recipe.overlay = Some(path.clone());
    }
    if recipe
        .controls
        .iter()
        .any(|c| c.preprocessor == Preprocessor::Inpaint)
        && (recipe.init.is_none() || (recipe.mask.is_none() && recipe.outpaint.is_none()))
    {
        bail!("--control pre=inpaint needs --init IMAGE and --mask MASK.png (or --outpaint)");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if recipe.clip_skip == 0 {
        bail!("--clip-skip must be at least 1");
    }
    Ok((recipe, warnings))
}

fn progress_line(p: &Progress) -> String {
    match &p.stage {
        Stage::Loading(part) => format!("loading {part}…"),
        Stage::Decoding => "decoding…".to_string(),
        Stage::FixingFace { face, faces } => format!(
            "face fix: face {}/{faces} step {}/{}",
            face + 1,
            p.step,
            p.total
        ),
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
    let (recipe, warnings) = build_recipe(&args, seed)?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if args.preset.is_some() {
        eprintln!("prompt: {}", recipe.prompt);
    }
    for lora in &recipe.loras {
        eprintln!("lora: {} × {}", lora.path.display(), lora.weight);
    }
    kiln_inference::engine::validate(&recipe)?;
    // Claim writable output paths before any work, so a bad path fails fast.
    let plan = OutputPlan::new(&args.output, recipe.batch as usize, args.overwrite)?;
    if args.seed.is_none() {
        eprintln!("seed: {seed}");
    }
    let mut engine = Engine::new();
    engine.precision = args.precision;
    engine.compute = args.device;
    // pre=depth|lineart|scribble find their networks in the model folders.
    engine.preprocessors.model_dirs = model_dirs(&args.models_dir);
    let stderr = std::io::stderr();
    let mut on_progress = |p: &Progress| {
        let mut err = stderr.lock();
        let _ignored = write!(err, "\r\x1b[2K{}", progress_line(p)).and_then(|_| err.flush());
    };
    let outputs = engine.run(&recipe, &mut on_progress, &CancelToken::default());
    eprintln!();
    let outputs = outputs?;
    if let Some(adapter) = engine.gpu_adapter() {
        eprintln!("GPU: {adapter}");
    }
    let mut warnings = warnings;
    for warning in outputs.iter().flat_map(|o| &o.warnings) {
        if !warnings.contains(warning) {
            eprintln!("warning: {warning}");
            warnings.push(warning.clone());
        }
    }
    let mut written = Vec::new();
    for (output, target) in outputs.iter().zip(plan.targets()) {
        let bytes = encode_output(output)?;
        let path = target.commit(&bytes)?;
        if let Some(score) = output.recipe.identity {
            eprintln!("{}: identity {score:.3}", path.display());
        } else if recipe.face.is_some() {
            eprintln!("{}: identity - (no face in the image)", path.display());
        }
        written.push((path, output.recipe.seed, output.recipe.identity));
    }
    if args.json {
        let items: Vec<serde_json::Value> = written
            .iter()
            .map(|(path, seed, identity)| match identity {
                Some(score) => serde_json::json!({ "path": path, "seed": seed, "identity": score }),
                None => serde_json::json!({ "path": path, "seed": seed }),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "outputs": items, "recipe": recipe, "warnings": warnings })
        );
    } else {
        for (path, _, _) in &written {
            println!("{}", path.display());
        }
    }
    Ok(())
}
