//! Gallery thumbnails, cached on disk as small PNGs so a grid of 10,000 images only decodes what
//! it shows, once. The cache key covers the image's path, modification time and the thumbnail
//! size, so an edited image gets a fresh thumbnail.

use crate::library::fsutil::{atomic_write, mtime_nanos};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the thumbnail of `image_path` at `size` pixels is cached: `<cache_dir>/ab/<sha>.png`,
/// the SHA-256 of the absolute path, the file's modification time (0 when missing) and `size`.
/// One `stat`, no reading.
pub fn thumbnail_path(cache_dir: &Path, image_path: &Path, size: u32) -> PathBuf {
    let absolute = std::path::absolute(image_path).unwrap_or_else(|_| image_path.to_path_buf());
    let mtime = std::fs::metadata(image_path)
        .map(|m| mtime_nanos(&m))
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(absolute.to_string_lossy().as_bytes());
    hasher.update([0]);
    hasher.update(mtime.to_le_bytes());
    hasher.update(size.to_le_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let shard = hex.get(..2).unwrap_or("00");
    cache_dir.join(shard).join(format!("{hex}.png"))
}

/// The thumbnail of an image, fitting in `size`×`size` with its aspect ratio kept (smaller
/// images stay as they are). Read from the cache when there, else made and cached (atomic
/// write; a cache that cannot be written only costs speed). Decodes images: call off the UI
/// thread.
pub fn load_or_make_thumbnail(
    cache_dir: &Path,
    image_path: &Path,
    size: u32,
) -> anyhow::Result<image::RgbaImage> {
    anyhow::ensure!(size > 0, "thumbnail size must be positive");
    let cached = thumbnail_path(cache_dir, image_path, size);
    if cached.is_file() {
        // A damaged cache file is simply made again below.
        if let Ok(image) = image::open(&cached) {
            return Ok(image.to_rgba8());
        }
    }
    let image = image::ImageReader::open(image_path)
        .and_then(|reader| reader.with_guessed_format())
        .with_context(|| format!("cannot read {}", image_path.display()))?
        .decode()
        .with_context(|| format!("cannot decode {}", image_path.display()))?;
    let thumbnail = if image.width() <= size && image.height() <= size {
        image.to_rgba8()
    } else {
        image.thumbnail(size, size).to_rgba8()
    };
    let mut png = Vec::new();
    thumbnail
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode a thumbnail")?;
    // The cache is an optimisation: a read-only or full cache folder must not hide the image.
    atomic_write(&cached, &png).ok();
    Ok(thumbnail)
}
