//! `kiln bench`: times model load, text encoding, UNet steps and the VAE decode of a model on
//! this machine, with peak memory and achieved GFLOP/s (FLOPs from the model config, see
//! `kiln_inference::unet::flops`). `bench/compare.sh` runs it next to diffusers.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kiln_inference::SamplerKind;
use kiln_inference::io::model::ModelFiles;
use kiln_inference::pipelines::stable_diffusion::StableDiffusion;
use kiln_inference::sampling::rng::TorchRng;
use kiln_inference::sampling::scheduler::{Scheduler, SchedulerConfig};
use kiln_inference::unet::flops::{unet_flops, vae_decode_flops};
use kiln_inference::unet::{TextTimeInputs, UNetHooks};
use std::path::PathBuf;
use std::time::Instant;

/// Compute precision of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// 32-bit float.
    Fp32,
    /// bfloat16 weights with f32 accumulation.
    Bf16,
    /// int8 weights (per output channel scales), bf16 compute.
    Int8,
    /// float16 (not supported on the CPU).
    F16,
}

impl Precision {
    fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
        }
    }
}

/// Arguments of `kiln bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Diffusers folder or single-file `.safetensors` checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// Image size WIDTHxHEIGHT in pixels, multiples of 8 (default: the family's native size).
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    /// Timed UNet steps (after the warm-up).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Guidance scale; above 1 every step runs cond and uncond as one batch of 2.
    #[arg(long, default_value_t = 7.0)]
    cfg: f32,
    /// Weight precision of the UNet and VAE: fp32, or bf16 (weights packed as bf16, products
    /// summed in f32; AVX512-BF16 when the CPU has it). f16 is not supported on the CPU.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Untimed warm-up runs of text encoding and of the UNet step.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Prompt to encode.
    #[arg(
        long,
        default_value = "a photograph of an astronaut riding a horse on the moon"
    )]
    prompt: String,
    /// Negative prompt to encode.
    #[arg(long, default_value = "blurry, low quality, watermark")]
    negative: String,
    /// Skip the VAE decode (it costs about three CFG steps).
    #[arg(long)]
    no_decode: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Parses `WIDTHxHEIGHT` (or one number for a square).
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected a size like 512x512 or 768x512, got {text:?}");
    let lower = text.trim().to_ascii_lowercase();
    let (w, h) = match lower.split_once(['x', '×']) {
        Some((w, h)) => (w.trim(), h.trim()),
        None => (lower.as_str(), lower.as_str()),
    };
    let w: u32 = w.parse().map_err(|_| bad())?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || !w.is_multiple_of(8) || !h.is_multiple_of(8) {
        return Err(format!("size must be positive multiples of 8, got {w}x{h}"));
    }
    if w > 8192 || h > 8192 {
        return Err(format!("size {w}x{h} is larger than 8192 pixels per side"));
    }
    Ok((w, h))
}

/// Peak resident set size in bytes (`VmHWM`), where the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The worker threads candle's CPU kernels use (its own rule: `RAYON_NUM_THREADS`, else all
/// logical CPUs).
fn compute_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// What one run measured (seconds, bytes, FLOPs).
#[derive(Debug, serde::Serialize)]
struct Report {
    tool: &'static str,
    model: String,
    family: &'static str,
    width: u32,
    height: u32,
    precision: &'static str,
    threads: usize,
    cfg: f32,
    unet_batch: usize,
    context_tokens: usize,
    load_s: f64,
    text_encode_s: f64,
    unet_steps_s: Vec<f64>,
    unet_step_median_s: f64,
    unet_step_min_s: f64,
    unet_gflop_per_step: f64,
    unet_gflops_per_s: f64,
    vae_decode_s: Option<f64>,
    vae_decode_gflop: f64,
    vae_gflops_per_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
}

/// `[a; b]` along the batch dimension.
macro_rules! cat_batch {
    ($a:expr, $b:expr) => {
        candle_core::Tensor::cat(&[$a, $b], 0)?
    };
}

/// Runs `kiln bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let weights = match args.precision {
        Precision::Fp32 => kiln_inference::kernels::Precision::F32,
        Precision::Bf16 => kiln_inference::kernels::Precision::Bf16,
        Precision::Int8 => kiln_inference::kernels::Precision::Int8,
        Precision::F16 => bail!("--precision f16 is not supported on the CPU (use bf16)"),
    };
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if !args.cfg.is_finite() || args.cfg < 0.0 {
        bail!("--cfg must be a finite number ≥ 0, got {}", args.cfg);
    }
    let report = measure(&args, weights)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn measure(
    args: &BenchArgs,
    weights: kiln_inference::kernels::Precision,
) -> anyhow::Result<Report> {
    let progress = |what: &str| {
        if !args.json {
            eprintln!("bench: {what}");
        }
    };
    // A CPU tensor from the inference crate gives the device without naming candle's types.
    let mut rng = TorchRng::new(0);
    let device = rng.randn_tensor(&[1])?.device().clone();

    progress("loading model");
    let t = Instant::now();
    let files = ModelFiles::open(&args.model)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    let family = files.kind.family;
    let (width, height) = args.size.unwrap_or_else(|| family.native_size());
    let scheduler_config = match &files.scheduler_config {
        Some(text) => SchedulerConfig::from_json_str(text)?,
        None if family.is_sdxl() => SchedulerConfig::sdxl_default(),
        None => SchedulerConfig::sd15_default(),
    };
    let sd = StableDiffusion::load_with(&files, &device, weights, &mut |_stage| {})?;
    // As in the app: the model keeps what it needs; the mapped files go.
    drop(files);
    let load_s = t.elapsed().as_secs_f64();

    let factor = sd.vae_scale_factor() as u32;
    if factor == 0 || width % factor != 0 || height % factor != 0 {
        bail!("size {width}x{height} is not a multiple of the VAE factor {factor}");
    }
    let (lh, lw) = ((height / factor) as usize, (width / factor) as usize);
    let use_cfg = args.cfg > 1.0;
    let batch = if use_cfg { 2 } else { 1 };

    // Text encoding: prompt and negative, as a CFG generation does (warm-up untimed).
    progress("encoding text");
    let encode = |chunks: usize| -> anyhow::Result<_> {
        let positive = sd.encode_prompt(&args.prompt, 1, chunks)?;
        let negative = sd.encode_prompt(&args.negative, 1, chunks)?;
        Ok((positive, negative))
    };
    for _ in 0..args.warmup {
        encode(1)?;
    }
    let t = Instant::now();
    let (mut positive, mut negative) = encode(1)?;
    let text_encode_s = t.elapsed().as_secs_f64();
    let (pos_len, neg_len) = (positive.context.dim(1)?, negative.context.dim(1)?);
    if pos_len != neg_len {
        // Long prompts: both sides need the same number of 77-token chunks.
        let chunks = pos_len.max(neg_len).div_ceil(77);
        (positive, negative) = encode(chunks)?;
    }

    let context = if use_cfg {
        cat_batch!(&negative.context, &positive.context)
    } else {
        positive.context.clone()
    };
    let context_tokens = context.dim(1)?;
    let unet_config = sd.unet().config().clone();
    let text_time = match (&unet_config.text_time, &positive.pooled) {
        (Some(tt), Some(pooled)) => {
            let pooled_dim = pooled.dim(1)?;
            let ids = tt.input_dim.saturating_sub(pooled_dim) / tt.time_embed_dim.max(1);
            let text_embeds = match &negative.pooled {
                Some(neg) if use_cfg => cat_batch!(neg, pooled),
                _ => pooled.clone(),
            };
            // Micro-conditioning ids as a real run has them: [h, w, 0, 0, h, w] (refiner:
            // [h, w, 0, 0, aesthetic score]).
            let (h, w) = (height as f32, width as f32);
            let row: Vec<f32> = if ids == 5 {
                vec![h, w, 0.0, 0.0, 6.0]
            } else {
                vec![h, w, 0.0, 0.0, h, w]
            };
            let values: Vec<f32> = (0..batch).flat_map(|_| row.iter().copied()).collect();
            let time_ids = candle_core::Tensor::from_vec(
                values,
                (batch, row.len()),
                &candle_core::Device::Cpu,
            )?;
            Some(TextTimeInputs {
                text_embeds,
                time_ids,
            })
        }
        (Some(_), None) => bail!("this UNet needs pooled text embeddings (SDXL)"),
        _ => None,
    };

    // UNet steps on random latents at the real timesteps of a schedule of `steps` steps.
    let scheduler = Scheduler::new(SamplerKind::default(), &scheduler_config, args.steps)?;
    let timesteps = scheduler.timesteps().to_vec();
    if timesteps.is_empty() {
        bail!("the scheduler gave no timesteps for {} steps", args.steps);
    }
    let latents =
        (rng.randn_tensor(&[1, unet_config.in_channels, lh, lw])? * scheduler.init_noise_sigma())?;
    let hooks = UNetHooks::default();
    let cfg_scale = f64::from(args.cfg);
    let step = |index: usize| -> anyhow::Result<f64> {
        let i = index % timesteps.len();
        let t = Instant::now();
        let model_in = scheduler.scale_model_input(&latents, i)?;
        let model_in = if use_cfg {
            model_in.repeat((2, 1, 1, 1))?
        } else {
            model_in
        };
        let out = sd.unet().forward(
            &model_in,
            timesteps[i] as f32,
            &context,
            text_time.as_ref(),
            &hooks,
        )?;
        let guided = if use_cfg {
            let uncond = out.get(0)?;
            let cond = out.get(1)?;
            (&uncond + ((cond - &uncond)? * cfg_scale)?)?
        } else {
            out
        };
        // Force the result (candle is eager, but keep the compiler from dropping the work).
        std::hint::black_box(guided.dims());
        Ok(t.elapsed().as_secs_f64())
    };
    for w in 0..args.warmup {
        progress(&format!("UNet warm-up {}/{}", w + 1, args.warmup));
        step(w)?;
    }
    let mut unet_steps_s = Vec::with_capacity(args.steps);
    for s in 0..args.steps {
        let secs = step(s)?;
        progress(&format!("UNet step {}/{}: {secs:.2} s", s + 1, args.steps));
        unet_steps_s.push(secs);
    }
    let mut sorted = unet_steps_s.clone();
    sorted.sort_by(f64::total_cmp);
    let unet_step_median_s = median(&sorted);
    let unet_step_min_s = sorted.first().copied().unwrap_or(f64::NAN);
    let unet_flop_per_step = unet_flops(&unet_config, lh, lw, context_tokens) * batch as f64;

    let vae_flop = vae_decode_flops(sd.vae().config(), lh, lw);
    let vae_decode_s = if args.no_decode {
        None
    } else {
        progress("VAE decode");
        let z = rng.randn_tensor(&[1, sd.vae().config().latent_channels, lh, lw])?;
        let t = Instant::now();
        let image = sd.vae().decode(&z)?;
        std::hint::black_box(image.dims());
        Some(t.elapsed().as_secs_f64())
    };

    Ok(Report {
        tool: "kiln",
        model: args.model.display().to_string(),
        family: family.id(),
        width,
        height,
        precision: args.precision.name(),
        threads: compute_threads(),
        cfg: args.cfg,
        unet_batch: batch,
        context_tokens,
        load_s,
        text_encode_s,
        unet_steps_s,
        unet_step_median_s,
        unet_step_min_s,
        unet_gflop_per_step: unet_flop_per_step / 1e9,
        unet_gflops_per_s: unet_flop_per_step / 1e9 / unet_step_median_s,
        vae_decode_s,
        vae_decode_gflop: vae_flop / 1e9,
        vae_gflops_per_s: vae_decode_s.map(|s| vae_flop / 1e9 / s),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn print_table(r: &Report) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!(
        "kiln bench: {} ({}), {}x{}, {}, {} threads, cfg {} (UNet batch {}), {} context tokens",
        r.model,
        r.family,
        r.width,
        r.height,
        r.precision,
        r.threads,
        r.cfg,
        r.unet_batch,
        r.context_tokens
    );
    println!("{:<24} {:>12} {:>14}", "quantity", "value", "GFLOP/s");
    println!("{:<24} {:>10.2} s {:>14}", "model load", r.load_s, "");
    println!(
        "{:<24} {:>10.3} s {:>14}",
        "text encode (pos+neg)", r.text_encode_s, ""
    );
    println!(
        "{:<24} {:>10.2} s {:>14.1}",
        "UNet step, median", r.unet_step_median_s, r.unet_gflops_per_s
    );
    println!(
        "{:<24} {:>10.2} s {:>14.1}",
        "UNet step, min",
        r.unet_step_min_s,
        r.unet_gflop_per_step / r.unet_step_min_s
    );
    match (r.vae_decode_s, r.vae_gflops_per_s) {
        (Some(s), Some(g)) => println!("{:<24} {:>10.2} s {:>14.1}", "VAE decode", s, g),
        _ => println!("{:<24} {:>12} {:>14}", "VAE decode", "skipped", ""),
    }
    match r.peak_rss_bytes {
        Some(b) => println!("{:<24} {:>8.2} GiB {:>14}", "peak RSS", gib(b), ""),
        None => println!("{:<24} {:>12} {:>14}", "peak RSS", "n/a", ""),
    }
    println!(
        "FLOPs: UNet {:.1} GFLOP per step (batch {}), VAE decode {:.1} GFLOP",
        r.unet_gflop_per_step, r.unet_batch, r.vae_decode_gflop
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512x512"), Ok((512, 512)));
        assert_eq!(parse_size("768X512"), Ok((768, 512)));
        assert_eq!(parse_size(" 1024 "), Ok((1024, 1024)));
        assert!(parse_size("500x512").is_err());
        assert!(parse_size("0x512").is_err());
        assert!(parse_size("axb").is_err());
        assert!(parse_size("512x").is_err());
        assert!(parse_size("99999999999x8").is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[1.0, 2.0, 3.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn peak_rss_reads_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
