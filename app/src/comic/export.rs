//! Page export: PNG, and a one-page PDF holding the page as one Flate-compressed RGB image.
//!
//! The PDF is written by hand rather than with `printpdf` or `lopdf`: a valid file with one
//! image is six objects and a cross-reference table (PDF 1.4, ISO 32000-1 §7.5), about forty
//! lines here, while either crate would add a dozen dependencies to every build for it. The
//! compression is `flate2`, which the tree already builds for `png`.

use anyhow::Context;
use flate2::{Compression, write::ZlibEncoder};
use image::RgbImage;
use std::io::Write;
use std::path::Path;

/// Resolution the PDF page is sized for: 150 pixels per inch (a 1200-pixel-wide page is 8 in).
pub const PDF_DPI: f32 = 150.0;

/// The bytes of a one-page PDF showing `page` at [`PDF_DPI`].
pub fn pdf_bytes(page: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let (width, height) = page.dimensions();
    anyhow::ensure!(width > 0 && height > 0, "the page is empty");
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(page.as_raw())
        .and_then(|()| encoder.flush())
        .context("cannot compress the page image")?;
    let pixels = encoder.finish().context("cannot compress the page image")?;
    let points = |pixels: u32| pixels as f32 * 72.0 / PDF_DPI;
    let (page_width, page_height) = (points(width), points(height));
    let content = format!("q {page_width:.2} 0 0 {page_height:.2} 0 0 cm /Im0 Do Q\n");

    let mut out: Vec<u8> = Vec::new();
    // A comment with bytes above 127 tells transfer tools the file is binary.
    out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets = Vec::new();
    let mut object = |out: &mut Vec<u8>, body: &[u8], stream: Option<&[u8]>| {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        out.extend_from_slice(body);
        if let Some(data) = stream {
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\nendstream");
        }
        out.extend_from_slice(b"\nendobj\n");
    };
    object(&mut out, b"<< /Type /Catalog /Pages 2 0 R >>", None);
    object(&mut out, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None);
    let page_dictionary = format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_width:.2} {page_height:.2}] \
         /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
    );
    object(&mut out, page_dictionary.as_bytes(), None);
    let image_dictionary = format!(
        "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} \
         /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>",
        pixels.len()
    );
    object(&mut out, image_dictionary.as_bytes(), Some(&pixels));
    let content_dictionary = format!("<< /Length {} >>", content.len());
    object(
        &mut out,
        content_dictionary.as_bytes(),
        Some(content.as_bytes()),
    );
    object(&mut out, b"<< /Producer (Kiln) >>", None);

    let xref_at = out.len();
    let count = offsets.len() + 1;
    out.extend_from_slice(format!("xref\n0 {count}\n0000000000 65535 f \n").as_bytes());
    for offset in &offsets {
        // Each entry is exactly 20 bytes, ending in space + newline.
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {count} /Root 1 0 R /Info {} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
            offsets.len()
        )
        .as_bytes(),
    );
    Ok(out)
}

/// Writes `page` as a one-page PDF to `path`, atomically (temp file + rename).
pub fn write_pdf(page: &RgbImage, path: &Path) -> anyhow::Result<()> {
    let bytes = pdf_bytes(page)?;
    crate::library::fsutil::atomic_write(path, &bytes)
}

/// Writes `page` as a PNG to `path`, atomically (temp file + rename).
pub fn write_png(page: &RgbImage, path: &Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    page.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("cannot encode the page as PNG")?;
    crate::library::fsutil::atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn number_after(text: &str, key: &str) -> u64 {
        let at = text.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len();
        text[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Walks the file as a reader would: trailer → startxref → xref table → each object.
    #[test]
    fn pdf_structure_is_valid_and_holds_the_page() {
        let mut page = RgbImage::new(37, 23);
        for (x, y, pixel) in page.enumerate_pixels_mut() {
            pixel.0 = [(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8];
        }
        let pdf = pdf_bytes(&page).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));

        let tail = String::from_utf8_lossy(&pdf[pdf.len() - 200..]).into_owned();
        let xref_at = number_after(&tail, "startxref") as usize;
        let xref = String::from_utf8_lossy(&pdf[xref_at..]).into_owned();
        assert!(
            xref.starts_with("xref\n0 7\n0000000000 65535 f \n"),
            "{xref}"
        );
        assert_eq!(number_after(&xref, "/Size"), 7);
        // Every offset points at "N 0 obj"; entries are 20 bytes each.
        let entries = &xref["xref\n0 7\n".len()..];
        for n in 1..=6 {
            let entry = &entries[n * 20..(n + 1) * 20];
            assert!(entry.ends_with(" 00000 n \n"), "{entry:?}");
            let offset: usize = entry[..10].parse().unwrap();
            assert!(pdf[offset..].starts_with(format!("{n} 0 obj\n").as_bytes()));
        }

        let text = String::from_utf8_lossy(&pdf).into_owned();
        assert_eq!(text.matches("/Type /Page ").count(), 1);
        assert_eq!(number_after(&text, "/Count"), 1);
        assert_eq!(number_after(&text, "/Width"), 37);
        assert_eq!(number_after(&text, "/Height"), 23);
        // 37 px at 150 dpi = 17.76 pt.
        assert!(text.contains("/MediaBox [0 0 17.76 11.04]"));

        // The image stream has its declared length and inflates to the page's pixels.
        let image_at = find(&pdf, b"4 0 obj\n").unwrap();
        let image_text = String::from_utf8_lossy(&pdf[image_at..]).into_owned();
        let length = number_after(&image_text, "/Length") as usize;
        let data_at = image_at + find(&pdf[image_at..], b"\nstream\n").unwrap() + 8;
        assert!(pdf[data_at + length..].starts_with(b"\nendstream"));
        let mut inflated = Vec::new();
        ZlibDecoder::new(&pdf[data_at..data_at + length])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, page.as_raw().as_slice());
    }

    #[test]
    fn files_are_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let page = RgbImage::from_pixel(16, 8, image::Rgb([1, 2, 3]));
        let pdf = dir.path().join("sub/page.pdf");
        write_pdf(&page, &pdf).unwrap();
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
        let png = dir.path().join("page.png");
        write_png(&page, &png).unwrap();
        assert_eq!(image::open(&png).unwrap().to_rgb8(), page);
        // Only the two outputs (and the folder): no temp files left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(pdf_bytes(&RgbImage::new(0, 0)).is_err());
    }
}
