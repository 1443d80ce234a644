//! Writing a generated clip: a folder of PNG frames, an animated GIF, an animated WebP or an
//! H.264 MP4, with the clip's recipe (JSON) beside it. Used by `kiln video` and the app's Video
//! section. Files are written atomically and never replace existing ones.

pub mod mp4;
pub mod webp;

use crate::library::fsutil::atomic_create;
use anyhow::{Context, bail};
use image::RgbImage;
use kiln_inference::engine::Precision;
use kiln_inference::video::VideoParams;
use std::path::{Path, PathBuf};

/// Where a clip goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A folder of `frame-0001.png`, `frame-0002.png`, … (and `video.json`).
    Frames(PathBuf),
    /// An animated GIF (looping forever).
    Gif(PathBuf),
    /// An animated lossless WebP (looping forever).
    Webp(PathBuf),
    /// An H.264 MP4.
    Mp4(PathBuf),
}

impl Target {
    /// The folder or file.
    pub fn path(&self) -> &Path {
        match self {
            Target::Frames(p) | Target::Gif(p) | Target::Webp(p) | Target::Mp4(p) => p,
        }
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_lowercase())
}

/// Picks the output kind from a path (`.gif`, `.webp`, `.mp4`; anything else is a folder of
/// frames) and checks that nothing would be replaced.
pub fn target_of(output: &Path) -> anyhow::Result<Target> {
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
            "{ext} output is not supported; write a .mp4, a .gif, a .webp or a folder of PNG frames: {}",
            output.display()
        ),
        _ => {
            if output.is_file() {
                bail!(
                    "{} is a file; give a folder for PNG frames or a name ending in .mp4, .gif or .webp",
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
pub fn frame_name(index: usize) -> String {
    format!("frame-{:04}.png", index + 1)
}

/// How the frames are played back in the written clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClipOptions {
    /// Frames per second of the file.
    pub fps: u32,
    /// Play forward then backward (frames 1…N, then N−1…2), so the clip loops without a jump.
    pub ping_pong: bool,
}

/// The frames in playback order: as generated, or forward then back for ping-pong (the first and
/// last frames are not repeated at the turns, so a looping player shows no stall).
pub fn playback_order(frames: &[RgbImage], ping_pong: bool) -> Vec<&RgbImage> {
    let mut order: Vec<&RgbImage> = frames.iter().collect();
    if ping_pong && frames.len() > 2 {
        order.extend(frames[1..frames.len() - 1].iter().rev());
    }
    order
}

/// PNG bytes of one frame.
pub fn png_bytes(frame: &RgbImage) -> anyhow::Result<Vec<u8>> {
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
pub fn gif_bytes(frames: &[&RgbImage], fps: u32) -> anyhow::Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .context("cannot encode the GIF")?;
        let delay = image::Delay::from_numer_denom_ms(1000, fps.max(1));
        let gif_frames = frames.iter().map(|f| {
            let rgba = image::DynamicImage::ImageRgb8((*f).clone()).to_rgba8();
            image::Frame::from_parts(rgba, 0, 0, delay)
        });
        encoder
            .encode_frames(gif_frames)
            .context("cannot encode the GIF")?;
    }
    Ok(bytes)
}

/// The recipe of a clip as JSON: model, still, every setting of `params` and the output options.
/// Written beside the clip (`video.json` in a frames folder, `NAME.EXT.json` next to a file).
pub fn recipe_json(
    model: &Path,
    image: &Path,
    params: &VideoParams,
    frames: usize,
    precision: Precision,
    options: ClipOptions,
) -> serde_json::Value {
    serde_json::json!({
        "kind": "video",
        "model": model,
        "image": image,
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
        "loop": params.loop_clip,
        "motion_mask": params.motion_mask.is_some(),
        "ping_pong": options.ping_pong,
        "precision": precision.name(),
    })
}

/// The sidecar recipe path of a clip file: `clip.mp4` → `clip.mp4.json`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".json");
    PathBuf::from(sidecar)
}

/// Writes `frames` to `target` in playback order with the recipe beside it; returns the folder
/// or file written. Nothing existing is replaced: a frame or file already there is an error.
pub fn write_clip(
    frames: &[RgbImage],
    target: &Target,
    options: ClipOptions,
    recipe: &serde_json::Value,
) -> anyhow::Result<PathBuf> {
    if frames.is_empty() {
        bail!("the clip has no frames");
    }
    if options.fps == 0 {
        bail!("fps must be at least 1");
    }
    let order = playback_order(frames, options.ping_pong);
    let recipe = serde_json::to_string_pretty(recipe)?;
    match target {
        Target::Frames(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create folder {}", dir.display()))?;
            for (i, frame) in order.iter().enumerate() {
                atomic_create(&dir.join(frame_name(i)), &png_bytes(frame)?)?;
            }
            atomic_create(&dir.join("video.json"), recipe.as_bytes())?;
        }
        Target::Gif(path) | Target::Webp(path) | Target::Mp4(path) => {
            let bytes = match target {
                Target::Gif(_) => gif_bytes(&order, options.fps)?,
                Target::Mp4(_) => mp4::mp4_bytes(&order, options.fps)?,
                _ => webp::animated_webp(&order, options.fps)?,
            };
            atomic_create(path, &bytes)?;
            atomic_create(&sidecar_path(path), recipe.as_bytes())?;
        }
    }
    Ok(target.path().to_path_buf())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frames(n: u8) -> Vec<RgbImage> {
        (0..n)
            .map(|i| RgbImage::from_pixel(8, 6, image::Rgb([i * 60, 10, 200])))
            .collect()
    }

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
        assert!(e.contains("not supported"), "{e}");
        std::fs::create_dir_all(&frames).unwrap();
        std::fs::write(frames.join("frame-0001.png"), b"x").unwrap();
        assert!(target_of(&frames).is_err());
    }

    #[test]
    fn gif_holds_every_frame() {
        use image::AnimationDecoder;
        let frames = frames(3);
        let order = playback_order(&frames, false);
        let bytes = gif_bytes(&order, 8).unwrap();
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let decoded = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].buffer().dimensions(), (8, 6));
        // GIF delays are whole centiseconds: 125 ms is stored as 120.
        let (numer, denom) = decoded[0].delay().numer_denom_ms();
        assert!((120..=130).contains(&(numer / denom.max(1))));
    }

    #[test]
    fn ping_pong_plays_back_without_repeating_the_ends() {
        let frames = frames(4);
        let order: Vec<u8> = playback_order(&frames, true)
            .iter()
            .map(|f| f.get_pixel(0, 0)[0] / 60)
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3, 2, 1]);
        assert_eq!(playback_order(&frames[..2], true).len(), 2);
        assert_eq!(playback_order(&frames, false).len(), 4);
    }

    #[test]
    fn write_clip_writes_frames_and_recipe_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("clip");
        let options = ClipOptions {
            fps: 7,
            ping_pong: true,
        };
        let recipe = serde_json::json!({"kind": "video"});
        let target = target_of(&folder).unwrap();
        write_clip(&frames(3), &target, options, &recipe).unwrap();
        for i in 0..4 {
            assert!(folder.join(frame_name(i)).is_file(), "frame {i}");
        }
        assert!(!folder.join(frame_name(4)).exists());
        assert!(folder.join("video.json").is_file());
        let e = write_clip(&frames(3), &target, options, &recipe)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");

        let gif = dir.path().join("clip.gif");
        let target = target_of(&gif).unwrap();
        write_clip(&frames(3), &target, options, &recipe).unwrap();
        assert!(sidecar_path(&gif).is_file());
        let before = std::fs::read(&gif).unwrap();
        assert!(write_clip(&frames(2), &target, options, &recipe).is_err());
        assert_eq!(std::fs::read(&gif).unwrap(), before);
    }
}
