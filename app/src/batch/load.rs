//! Reading batch inputs whatever they are: content sniffing, decoding under limits (a
//! decompression bomb is refused before any pixel is decoded), EXIF orientation, every colour
//! mode to RGB8 (transparency over white), and fitting to the output size.

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};
use serde::Serialize;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// File name extensions that say "this is meant to be an image" (a file with one of them is
/// an input even when its content is not an image, so it fails with a reason instead of being
/// ignored silently).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jpe", "jfif", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif",
    "avif", "jxl",
];

/// Limits on what an input may be.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadLimits {
    /// Most pixels an input may have (width × height, after the header is read and before
    /// anything is decoded). Larger images are refused as too large.
    pub max_pixels: u64,
    /// Largest input file in bytes.
    pub max_file_bytes: u64,
    /// Most memory a decoder may allocate.
    pub max_alloc_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_pixels: 100_000_000,
            max_file_bytes: 1 << 30,
            max_alloc_bytes: 2 << 30,
        }
    }
}

/// Why an input file was not turned into an output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum FailReason {
    /// The file could not be opened or read.
    Unreadable {
        /// The operating system's message.
        detail: String,
    },
    /// The file has no bytes.
    Empty,
    /// The content is not an image (e.g. text renamed `.jpg`).
    NotAnImage {
        /// What it looks like instead, when known.
        detail: String,
    },
    /// An image format Kiln cannot decode (HEIC, AVIF, …).
    Unsupported {
        /// The format or the decoder's message.
        detail: String,
    },
    /// The file ends before the image does.
    Truncated {
        /// The decoder's message.
        detail: String,
    },
    /// The image data is damaged.
    Corrupt {
        /// The decoder's message.
        detail: String,
    },
    /// The image (or file) is larger than the limits: refused before decoding.
    TooLarge {
        /// Width and height from the header, when known.
        size: Option<(u32, u32)>,
        /// What limit it broke.
        detail: String,
    },
    /// The engine failed on this file.
    Generation {
        /// The engine's message.
        detail: String,
    },
    /// The output could not be written.
    Write {
        /// The operating system's message.
        detail: String,
    },
}

impl FailReason {
    /// A short stable id (`empty`, `not-an-image`, `truncated`, …) for scripts and the UI's
    /// translations.
    pub fn code(&self) -> &'static str {
        match self {
            FailReason::Unreadable { .. } => "unreadable",
            FailReason::Empty => "empty",
            FailReason::NotAnImage { .. } => "not-an-image",
            FailReason::Unsupported { .. } => "unsupported",
            FailReason::Truncated { .. } => "truncated",
            FailReason::Corrupt { .. } => "corrupt",
            FailReason::TooLarge { .. } => "too-large",
            FailReason::Generation { .. } => "generation",
            FailReason::Write { .. } => "write",
        }
    }

    /// The technical detail (the decoder's or the system's message; the size of a too-large
    /// image), shown after the translated reason.
    pub fn detail(&self) -> Option<String> {
        match self {
            FailReason::Empty => None,
            FailReason::TooLarge {
                size: Some((w, h)),
                detail,
            } => Some(format!("{w}×{h}, {detail}")),
            FailReason::Unreadable { detail }
            | FailReason::NotAnImage { detail }
            | FailReason::Unsupported { detail }
            | FailReason::Truncated { detail }
            | FailReason::Corrupt { detail }
            | FailReason::TooLarge { detail, .. }
            | FailReason::Generation { detail }
            | FailReason::Write { detail } => Some(detail.clone()),
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Unreadable { detail } => write!(f, "unreadable ({detail})"),
            FailReason::Empty => f.write_str("empty file (0 bytes)"),
            FailReason::NotAnImage { detail } => write!(f, "not an image ({detail})"),
            FailReason::Unsupported { detail } => write!(f, "unsupported image format ({detail})"),
            FailReason::Truncated { detail } => write!(f, "truncated image ({detail})"),
            FailReason::Corrupt { detail } => write!(f, "damaged image ({detail})"),
            FailReason::TooLarge {
                size: Some((w, h)),
                detail,
            } => write!(f, "image too large: {w}×{h} ({detail})"),
            FailReason::TooLarge { size: None, detail } => write!(f, "too large ({detail})"),
            FailReason::Generation { detail } => write!(f, "generation failed ({detail})"),
            FailReason::Write { detail } => write!(f, "cannot write the output ({detail})"),
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// No bytes.
    Empty,
    /// A format the `image` crate recognises (decodable or not).
    Image(ImageFormat),
    /// An image format recognised here but not by the `image` crate (HEIC, JPEG XL, …).
    OtherImage(&'static str),
    /// Not an image.
    Other,
}

/// Sniffs a file's format from its first bytes.
pub fn sniff(path: &Path) -> std::io::Result<Sniffed> {
    let mut head = [0u8; 32];
    let mut file = File::open(path)?;
    let mut len = 0;
    while len < head.len() {
        let n = file.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    Ok(sniff_bytes(&head[..len]))
}

/// [`sniff`] on bytes already read.
pub fn sniff_bytes(head: &[u8]) -> Sniffed {
    if head.is_empty() {
        return Sniffed::Empty;
    }
    if let Some(b"ftypheic" | b"ftypheix" | b"ftyphevc" | b"ftypmif1" | b"ftypmsf1") =
        head.get(4..12)
    {
        return Sniffed::OtherImage("HEIC/HEIF");
    }
    if head.starts_with(&[0xFF, 0x0A]) || head.starts_with(b"\0\0\0\x0cJXL ") {
        return Sniffed::OtherImage("JPEG XL");
    }
    if head.starts_with(b"8BPS") {
        return Sniffed::OtherImage("Photoshop PSD");
    }
    match image::guess_format(head) {
        // TGA has no magic bytes: the guess is never TGA from content alone, but stay safe.
        Ok(ImageFormat::Tga) | Err(_) => Sniffed::Other,
        Ok(format) => Sniffed::Image(format),
    }
}

/// A rough description of non-image content, for the failure reason.
fn describe_other(head: &[u8]) -> String {
    let text_like = head
        .iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7F).contains(&b) || b >= 0x80);
    if head.starts_with(b"%PDF") {
        "a PDF document".into()
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive".into()
    } else if text_like {
        "text".into()
    } else {
        "unknown content".into()
    }
}

/// An input decoded and turned upright.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels, in the decoder's colour mode, EXIF orientation applied.
    pub image: DynamicImage,
    /// The container format.
    pub format: ImageFormat,
}

fn classify(error: ImageError) -> FailReason {
    match error {
        ImageError::Limits(e) => FailReason::TooLarge {
            size: None,
            detail: e.to_string(),
        },
        ImageError::Unsupported(e) => FailReason::Unsupported {
            detail: e.to_string(),
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            FailReason::Truncated {
                detail: e.to_string(),
            }
        }
        ImageError::IoError(e) => FailReason::Unreadable {
            detail: e.to_string(),
        },
        other => {
            let detail = other.to_string();
            let lower = detail.to_lowercase();
            let truncated = [
                "eof",
                "end of file",
                "unexpected end",
                "truncated",
                "no more data",
                "not enough data",
                "fill whole buffer",
                "missing image data",
                "insufficient",
            ]
            .iter()
            .any(|needle| lower.contains(needle));
            if truncated {
                FailReason::Truncated { detail }
            } else {
                FailReason::Corrupt { detail }
            }
        }
    }
}

/// Decodes an input under `limits`: the header is checked first (size, pixel count), then the
/// pixels are decoded and the EXIF orientation applied.
pub fn decode(path: &Path, limits: &LoadLimits) -> Result<Decoded, FailReason> {
    let unreadable = |e: std::io::Error| FailReason::Unreadable {
        detail: e.to_string(),
    };
    let file = File::open(path).map_err(unreadable)?;
    let bytes = file.metadata().map_err(unreadable)?.len();
    if bytes == 0 {
        return Err(FailReason::Empty);
    }
    if bytes > limits.max_file_bytes {
        return Err(FailReason::TooLarge {
            size: None,
            detail: format!(
                "{bytes} bytes, the limit is {} bytes",
                limits.max_file_bytes
            ),
        });
    }
    match sniff(path).map_err(unreadable)? {
        Sniffed::Empty => return Err(FailReason::Empty),
        Sniffed::OtherImage(name) => {
            return Err(FailReason::Unsupported {
                detail: name.to_string(),
            });
        }
        Sniffed::Other => {
            let mut head = Vec::new();
            File::open(path)
                .and_then(|f| f.take(512).read_to_end(&mut head))
                .map_err(unreadable)?;
            return Err(FailReason::NotAnImage {
                detail: describe_other(&head),
            });
        }
        Sniffed::Image(_) => {}
    }
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(unreadable)?;
    let Some(format) = reader.format() else {
        return Err(FailReason::NotAnImage {
            detail: "unknown content".into(),
        });
    };
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(FailReason::TooLarge {
            size: Some((width, height)),
            detail: format!(
                "{:.0} megapixels, the limit is {:.0}",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    if width == 0 || height == 0 {
        return Err(FailReason::Corrupt {
            detail: format!("{width}×{height} pixels"),
        });
    }
    // A broken EXIF block is not worth failing over: the image is shown as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(Decoded { image, format })
}

/// The output size for an upright input of `width × height`.
///
/// `KeepAspect`: the input's aspect ratio (clamped to 1:4 … 4:1) at the recipe's pixel count,
/// sides multiples of 8. `Exact`: the recipe's own size (the input is cropped to fit).
pub fn target_size(
    width: u32,
    height: u32,
    recipe_size: (u32, u32),
    keep_aspect: bool,
) -> (u32, u32) {
    if !keep_aspect {
        return recipe_size;
    }
    let area = u64::from(recipe_size.0) * u64::from(recipe_size.1);
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let aspect = (w / h).clamp(0.25, 4.0);
    // Like presets::resolve::fit_area, on the clamped aspect.
    let out_h = (area as f64 / aspect).sqrt();
    let out_w = out_h * aspect;
    let round8 = |v: f64| (((v / 8.0).round().max(1.0) * 8.0) as u32).min(8192);
    (round8(out_w), round8(out_h))
}

/// RGB8 pixels at exactly `target`: scaled to cover it (a fast box filter first when the
/// input is much larger, then Lanczos), centre-cropped; transparency composited over white.
pub fn fit_to(image: DynamicImage, target: (u32, u32)) -> RgbImage {
    let (tw, th) = (target.0.max(1), target.1.max(1));
    let mut image = image;
    // Huge inputs: shrink cheaply to about twice the target first (memory and time).
    if image.width() > tw.saturating_mul(4) && image.height() > th.saturating_mul(4) {
        image = image.thumbnail(tw.saturating_mul(2), th.saturating_mul(2));
    }
    let rgb = to_rgb8_over_white(&image);
    drop(image);
    let (w, h) = rgb.dimensions();
    if (w, h) == (tw, th) {
        return rgb;
    }
    let scale = (f64::from(tw) / f64::from(w)).max(f64::from(th) / f64::from(h));
    let sw = ((f64::from(w) * scale).round() as u32).max(tw);
    let sh = ((f64::from(h) * scale).round() as u32).max(th);
    let scaled = image::imageops::resize(&rgb, sw, sh, image::imageops::FilterType::Lanczos3);
    let (x, y) = ((sw - tw) / 2, (sh - th) / 2);
    image::imageops::crop_imm(&scaled, x, y, tw, th).to_image()
}

/// Any colour mode to RGB8; alpha is composited over white (a transparent product shot stays
/// on white, not on whatever colour its hidden pixels hold).
pub fn to_rgb8_over_white(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| {
            let (c, a) = (u32::from(c), u32::from(a));
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    #[test]
    fn sniffing_knows_images_from_their_bytes() {
        assert_eq!(sniff_bytes(b""), Sniffed::Empty);
        assert_eq!(
            sniff_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Sniffed::Image(ImageFormat::Png)
        );
        assert_eq!(
            sniff_bytes(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Sniffed::Image(ImageFormat::Jpeg)
        );
        assert_eq!(
            sniff_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Sniffed::OtherImage("HEIC/HEIF")
        );
        assert_eq!(sniff_bytes(b"hello, this is text"), Sniffed::Other);
    }

    #[test]
    fn target_keeps_aspect_at_the_recipe_area() {
        assert_eq!(target_size(64, 64, (64, 64), true), (64, 64));
        assert_eq!(target_size(64, 48, (64, 64), true), (72, 56));
        assert_eq!(target_size(4000, 3000, (512, 512), true), (592, 440));
        let (w, h) = target_size(1, 10_000, (64, 64), true);
        assert_eq!((w, h), (32, 128), "aspect clamped to 1:4");
        assert_eq!(target_size(4000, 3000, (64, 96), false), (64, 96));
    }

    #[test]
    fn fit_covers_and_crops_to_the_exact_size() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 100, image::Rgb([9, 9, 9])));
        assert_eq!(fit_to(img, (64, 64)).dimensions(), (64, 64));
        let huge = DynamicImage::ImageLuma8(image::GrayImage::new(4000, 3000));
        assert_eq!(fit_to(huge, (72, 56)).dimensions(), (72, 56));
    }

    #[test]
    fn transparency_goes_over_white() {
        let mut rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([200, 10, 10, 255]));
        let rgb = to_rgb8_over_white(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [200, 10, 10]);
    }

    #[test]
    fn cmyk_jpeg_and_exif_orientation() {
        let limits = LoadLimits::default();
        let cmyk = decode(&fixtures().join("batch/cmyk-64.jpg"), &limits).unwrap();
        let rgb = cmyk.image.to_rgb8();
        let left = rgb.get_pixel(8, 32).0;
        let right = rgb.get_pixel(56, 32).0;
        assert!(
            left[0] > 180 && left[1] < 90 && left[2] < 90,
            "red: {left:?}"
        );
        assert!(right[2] > 120 && right[0] < 110, "blue: {right:?}");

        let rotated = decode(&fixtures().join("batch/exif-rot90-48x64.jpg"), &limits).unwrap();
        assert_eq!((rotated.image.width(), rotated.image.height()), (64, 48));
        let rgb = rotated.image.to_rgb8();
        let right = rgb.get_pixel(62, 24).0;
        assert!(
            right[0] > 180 && right[1] < 90,
            "red column on the right: {right:?}"
        );
    }

    #[test]
    fn bombs_and_broken_files_get_reasons() {
        let limits = LoadLimits::default();
        let huge = decode(&fixtures().join("batch/huge-20000.png"), &limits).unwrap_err();
        assert!(
            matches!(
                huge,
                FailReason::TooLarge {
                    size: Some((20000, 20000)),
                    ..
                }
            ),
            "{huge:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(decode(&empty, &limits).unwrap_err(), FailReason::Empty);
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, b"just some words\n").unwrap();
        assert_eq!(decode(&text, &limits).unwrap_err().code(), "not-an-image");
        let png = std::fs::read(fixtures().join("init-64.png")).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &png[..png.len() / 2]).unwrap();
        assert_eq!(decode(&cut, &limits).unwrap_err().code(), "truncated");
    }
}
