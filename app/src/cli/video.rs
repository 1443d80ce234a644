//! `kiln video`: image to video with a Stable Video Diffusion folder (SVD / SVD-XT). The clip
//! goes to a folder of `frame-0001.png`, … or to an MP4, animated GIF or WebP
//! ([`crate::video::write_clip`]); its recipe is written beside it as JSON (`video.json` in the
//! folder, `NAME.gif.json` next to a file).

use crate::video::{ClipOptions, recipe_json, target_of, write_clip};
use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::CancelToken;
use kiln_inference::video::{
    SvdPipeline, VideoParams, VideoProgress, auto_decode_chunk, default_gflops_per_core,
};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `kiln video` (the contract in the issue; keep names stable).
#[derive(Debug, Args)]
#[command(after_help = "\
OUT ending in .gif or .webp writes a looping animation at --fps (WebP lossless), .mp4 an H.264 video; any other \
OUT is a folder (created when missing) that receives frame-0001.png, frame-0002.png, … Existing frames or files are never replaced. \
--motion-mask paints where the clip may move (white) and where it stays the still (black); --loop steers the last frames back \
to the first; --ping-pong plays the frames forward then backward in the written file.")]
pub struct VideoArgs {
    /// Stable Video Diffusion: a diffusers folder (unet/, vae/, image_encoder/,
    /// feature_extractor/, scheduler/) or Stability's single file (svd.safetensors,
    /// svd_xt.safetensors: 25 frames by default when the name says xt).
    #[arg(long)]
    model: PathBuf,
    /// The still to animate (PNG, JPEG, WebP, …; resized to --width × --height).
    #[arg(long)]
    image: PathBuf,
    /// Frames to generate (default: the model's, 14 for SVD, 25 for SVD-XT).
    #[arg(long)]
    frames: Option<usize>,
    /// Frames per second: the model is conditioned on it and the GIF plays at it.
    #[arg(long, default_value_t = 7)]
    fps: u32,
    /// Motion bucket id: more motion when higher.
    #[arg(long, default_value_t = 127)]
    motion: u32,
    /// Noise added to the still before encoding it: higher gives more motion, less likeness.
    #[arg(long, default_value_t = 0.02, allow_negative_numbers = true)]
    noise_aug: f32,
    /// Denoising steps.
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// Seed (random when omitted; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Guidance of the first frame.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    min_cfg: f32,
    /// Guidance of the last frame (rising linearly from --min-cfg).
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    max_cfg: f32,
    /// Frame width in pixels (multiple of 8).
    #[arg(long, default_value_t = 1024)]
    width: usize,
    /// Frame height in pixels (multiple of 8).
    #[arg(long, default_value_t = 576)]
    height: usize,
    /// Frames decoded together: more give smoother motion, fewer use less memory (default:
    /// every frame at small sizes, 2 at 1024×576).
    #[arg(long)]
    decode_chunk: Option<usize>,
    /// A folder for PNG frames, or a `.gif`, `.webp` or `.mp4` file.
    #[arg(long, value_name = "OUT")]
    output: PathBuf,
    /// Weight precision of the UNet and VAE decoder: fp32 (matches diffusers within 3/255),
    /// bf16 (half the UNet's memory, faster on CPUs with AVX512-BF16) or int8 (8-bit weights,
    /// bf16 compute: a quarter of the UNet's fp32 memory).
    #[arg(long, default_value = "fp32", value_parser = super::generate::parse_precision)]
    precision: kiln_inference::engine::Precision,
    /// Motion brush: an image, white where the clip may move and black where it stays the still
    /// (any size; scaled to the frame, its edge softened).
    #[arg(long, value_name = "MASK")]
    motion_mask: Option<PathBuf>,
    /// Make the last frame return to the first, so the clip repeats without a jump.
    #[arg(long = "loop")]
    loop_clip: bool,
    /// Write the frames forward then backward (1…N, N−1…2).
    #[arg(long)]
    ping_pong: bool,
}

/// Reads an image file as 8-bit RGB or gray with a clear error.
fn read_image(path: &std::path::Path, what: &str) -> anyhow::Result<image::DynamicImage> {
    image::ImageReader::open(path)
        .with_context(|| format!("cannot open the {what} {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read the {what} {}", path.display()))?
        .decode()
        .with_context(|| format!("the {what} is not a readable image: {}", path.display()))
}

/// `45 s`, `12 min`, `3.2 h`.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{:.0} s", seconds.max(1.0))
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Runs `kiln video`.
pub fn run(args: VideoArgs) -> anyhow::Result<()> {
    let target = target_of(&args.output)?;
    let seed = args
        .seed
        .unwrap_or_else(kiln_inference::recipe::random_seed);
    let image = read_image(&args.image, "image")?.to_rgb8();
    let motion_mask = match &args.motion_mask {
        Some(path) => Some(read_image(path, "motion mask")?.to_luma8()),
        None => None,
    };
    if args.ping_pong && args.frames == Some(1) {
        bail!("--ping-pong needs at least 2 frames");
    }
    let params = VideoParams {
        width: args.width,
        height: args.height,
        frames: args.frames,
        steps: args.steps,
        seed,
        fps: args.fps,
        motion_bucket_id: args.motion,
        noise_aug_strength: args.noise_aug,
        min_guidance: args.min_cfg,
        max_guidance: args.max_cfg,
        decode_chunk: args.decode_chunk,
        motion_mask,
        loop_clip: args.loop_clip,
    };
    if args.seed.is_none() {
        eprintln!("seed: {seed}");
    }
    let device = candle_core::Device::Cpu;
    let pipeline = SvdPipeline::load_with_precision(&args.model, &device, args.precision)
        .with_context(|| format!("cannot load the video model {}", args.model.display()))?;
    let frames = args.frames.unwrap_or(pipeline.default_frames());
    let params = VideoParams {
        frames: Some(frames),
        decode_chunk: Some(
            args.decode_chunk
                .unwrap_or_else(|| auto_decode_chunk(args.width, args.height, frames)),
        ),
        ..params
    };
    let estimate = pipeline.estimate(&params);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (unet_rate, decode_rate) = default_gflops_per_core(args.precision.packs());
    let seconds = estimate.seconds(unet_rate * cores, decode_rate * cores);
    eprintln!(
        "{} frames, {} steps: {:.0} TFLOP, about {} on {cores} cores",
        estimate.frames,
        estimate.steps,
        estimate.total_flops() / 1e12,
        human_duration(seconds)
    );
    let stderr = std::io::stderr();
    let mut on_progress = |p: VideoProgress| {
        let line = match p {
            VideoProgress::Step { step, total } => format!("step {step}/{total}"),
            VideoProgress::Decoded { frames, total } => format!("decoded {frames}/{total} frames"),
        };
        let mut err = stderr.lock();
        let _ignored = write!(err, "\r\x1b[2K{line}").and_then(|_| err.flush());
    };
    let frames = pipeline.run(&image, &params, &mut on_progress, &CancelToken::default());
    eprintln!();
    let frames = frames?;
    let options = ClipOptions {
        fps: params.fps,
        ping_pong: args.ping_pong,
    };
    let mut recipe = recipe_json(
        &args.model,
        &args.image,
        &params,
        frames.len(),
        args.precision,
        options,
    );
    if let Some(mask) = &args.motion_mask {
        recipe["motion_mask_file"] = serde_json::json!(mask);
    }
    let written = write_clip(&frames, &target, options, &recipe)?;
    println!("{}", written.display());
    Ok(())
}
