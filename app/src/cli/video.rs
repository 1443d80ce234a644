//! `kiln video`: image to video with a Stable Video Diffusion folder (SVD / SVD-XT). The clip
//! goes to a folder of `frame-0001.png`, … or to an animated GIF or WebP; its settings are
//! written beside it as JSON (`video.json` in the folder, `NAME.gif.json` next to a file).

mod mp4;
mod webp;

use crate::library::fsutil::atomic_write;
use anyhow::{Context, bail};
use clap::Args;
use image::RgbImage;
use kiln_inference::CancelToken;
use kiln_inference::video::{SvdPipeline, VideoParams, VideoProgress, auto_decode_chunk};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `kiln video` (the contract in the issue; keep names stable).
#[derive(Debug, Args)]
#[command(after_help = "\
OUT ending in .gif or .webp writes a looping animation at --fps (WebP lossless), .mp4 an H.264 video; any other \
OUT is a folder (created when missing) that receives frame-0001.png, frame-0002.png, … Existing frames or files are never replaced.")]
pub struct VideoArgs {
    /// Stable Video Diffusion folder in the diffusers layout (unet/, vae/, image_encoder/,
    /// feature_extractor/, scheduler/).
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
    /// Weight precision of the UNet and VAE decoder: fp32 (matches diffusers within 3/255) or
    /// bf16 (half the UNet's memory, faster on CPUs with AVX512-BF16).
    #[arg(long, default_value = "fp32", value_parser = super::generate::parse_precision)]
    precision: kiln_inference::engine::Precision,
}

/// Where the clip goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A folder of `frame-NNNN.png`.
    Frames(PathBuf),
    /// An animated GIF.
    Gif(PathBuf),
    /// An animated lossless WebP.
    Webp(PathBuf),
    /// An H.264 MP4.
    Mp4(PathBuf),
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_lowercase())
}

/// Picks the output kind from OUT and checks nothing would be replaced.
fn target_of(output: &Path) -> anyhow::Result<Target> {
    match extension(output).as_deref() {
        Some(ext @ ("gif" | "webp" | "mp4")) => {
            if output.exists() {
                bail!("{} already exists; choose another name", output.display());
            }
            Ok(match ext {
                "gif" => Target::Gif(output.to_path_buf()),
                "mp4" => Target::Mp4(output.to_path_buf()),
                _ => Target::Webp(output.to_path_buf()),
            })
        }
        Some(ext @ ("webm" | "mov" | "mkv" | "avi" | "apng")) => bail!(
            "{ext} output is not supported yet; write a .mp4, a .gif, a .webp or a folder of PNG frames: {}",
            output.display()
        ),
        _ => {
            if output.is_file() {
                bail!(
                    "{} is a file; give a folder for PNG frames or a name ending in .gif or .webp",
                    output.display()
                );
            }
            if output.join(frame_name(0)).exists() {
                bail!(
                    "{} already holds frames (frame-0001.png); choose another folder",
                    output.display()
                );
            }
            Ok(Target::Frames(output.to_path_buf()))
        }
    }
}

/// `frame-0001.png` for index 0.
fn frame_name(index: usize) -> String {
    format!("frame-{:04}.png", index + 1)
}

fn png_bytes(frame: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    frame
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .context("cannot encode a PNG frame")?;
    Ok(bytes)
}

/// An animated GIF of `frames` at `fps`, looping forever.
fn gif_bytes(frames: &[RgbImage], fps: u32) -> anyhow::Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .context("cannot encode the GIF")?;
        let delay = image::Delay::from_numer_denom_ms(1000, fps.max(1));
        let gif_frames = frames.iter().map(|f| {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            image::Frame::from_parts(rgba, 0, 0, delay)
        });
        encoder
            .encode_frames(gif_frames)
            .context("cannot encode the GIF")?;
    }
    Ok(bytes)
}

fn settings_json(args: &VideoArgs, params: &VideoParams, frames: usize) -> serde_json::Value {
    serde_json::json!({
        "kind": "video",
        "model": args.model,
        "image": args.image,
        "frames": frames,
        "fps": params.fps,
        "motion_bucket_id": params.motion_bucket_id,
        "noise_aug_strength": params.noise_aug_strength,
        "steps": params.steps,
        "seed": params.seed,
        "min_guidance": params.min_guidance,
        "max_guidance": params.max_guidance,
        "width": params.width,
        "height": params.height,
        "decode_chunk": params.decode_chunk,
        "precision": match args.precision {
            kiln_inference::engine::Precision::F32 => "fp32",
            kiln_inference::engine::Precision::Bf16 => "bf16",
        },
    })
}

/// Runs `kiln video`.
pub fn run(args: VideoArgs) -> anyhow::Result<()> {
    let target = target_of(&args.output)?;
    let seed = args
        .seed
        .unwrap_or_else(kiln_inference::recipe::random_seed);
    let image = image::ImageReader::open(&args.image)
        .with_context(|| format!("cannot open {}", args.image.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", args.image.display()))?
        .decode()
        .with_context(|| format!("not a readable image: {}", args.image.display()))?
        .to_rgb8();
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
    let settings = serde_json::to_string_pretty(&settings_json(&args, &params, frames.len()))?;
    match target {
        Target::Frames(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create folder {}", dir.display()))?;
            for (i, frame) in frames.iter().enumerate() {
                atomic_write(&dir.join(frame_name(i)), &png_bytes(frame)?)?;
            }
            atomic_write(&dir.join("video.json"), settings.as_bytes())?;
            println!("{}", dir.display());
        }
        Target::Gif(path) | Target::Webp(path) | Target::Mp4(path) => {
            let bytes = match extension(&path).as_deref() {
                Some("gif") => gif_bytes(&frames, params.fps)?,
                Some("mp4") => mp4::mp4_bytes(&frames, params.fps)?,
                _ => webp::animated_webp(&frames, params.fps)?,
            };
            atomic_write(&path, &bytes)?;
            let mut sidecar = path.clone().into_os_string();
            sidecar.push(".json");
            atomic_write(Path::new(&sidecar), settings.as_bytes())?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outputs_are_chosen_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("clip.GIF");
        assert_eq!(target_of(&gif).unwrap(), Target::Gif(gif.clone()));
        let webp = dir.path().join("clip.webp");
        assert_eq!(target_of(&webp).unwrap(), Target::Webp(webp.clone()));
        let frames = dir.path().join("frames");
        assert_eq!(target_of(&frames).unwrap(), Target::Frames(frames.clone()));
        let mp4 = dir.path().join("clip.mp4");
        assert_eq!(target_of(&mp4).unwrap(), Target::Mp4(mp4.clone()));
        let e = target_of(&dir.path().join("clip.webm"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported yet"), "{e}");
        std::fs::create_dir_all(&frames).unwrap();
        std::fs::write(frames.join("frame-0001.png"), b"x").unwrap();
        assert!(target_of(&frames).is_err());
    }

    #[test]
    fn gif_holds_every_frame() {
        use image::AnimationDecoder;
        let frames: Vec<RgbImage> = (0..3)
            .map(|i| RgbImage::from_pixel(8, 6, image::Rgb([i * 80, 10, 200])))
            .collect();
        let bytes = gif_bytes(&frames, 8).unwrap();
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let decoded = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].buffer().dimensions(), (8, 6));
        // GIF delays are whole centiseconds: 125 ms is stored as 120.
        let (numer, denom) = decoded[0].delay().numer_denom_ms();
        assert!((120..=130).contains(&(numer / denom.max(1))));
    }
}
