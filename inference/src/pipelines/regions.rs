//! Regional prompts on the image side (`docs/REGIONAL.md`): checks a recipe's regions and
//! turns each into a coverage map at the generation size — from a box in fractions or a mask
//! file, in output-image coordinates, cropped like the init image when only a crop is generated
//! ("only masked" inpainting). The UNet side is `unet::regional`.

use crate::pipelines::inpaint::Region;
use crate::recipe::{RegionArea, RegionSpec};
use crate::{Error, Result};
use image::{GrayImage, imageops};
use std::path::Path;

/// Largest relative difference between a mask's aspect ratio and the image's.
const ASPECT_TOLERANCE: f64 = 0.02;

/// One region ready for a generation.
#[derive(Clone, Debug)]
pub struct RegionRequest {
    /// The region's prompt.
    pub prompt: String,
    /// Its own negative prompt, if any.
    pub negative: Option<String>,
    /// Coverage at the generation size: gray value / 255 (255 = inside).
    pub coverage: GrayImage,
    /// Opacity multiplier in `[0, 1]`.
    pub weight: f32,
}

/// Checks region `index` (0-based) of a recipe: box inside `[0, 1]` with `x0 < x1`, `y0 < y1`,
/// weight in `[0, 1]`.
pub fn check_region(spec: &RegionSpec, index: usize) -> Result<()> {
    let n = index + 1;
    if !(spec.weight.is_finite() && (0.0..=1.0).contains(&spec.weight)) {
        return Err(Error::InvalidArgument(format!(
            "region {n}: weight must be between 0 and 1, got {}",
            spec.weight
        )));
    }
    if let RegionArea::Box([x0, y0, x1, y1]) = spec.area {
        let inside = [x0, y0, x1, y1]
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v));
        if !inside || x0 >= x1 || y0 >= y1 {
            return Err(Error::InvalidArgument(format!(
                "region {n}: box must be x0,y0,x1,y1 in fractions of the image with \
                 0 ≤ x0 < x1 ≤ 1 and 0 ≤ y0 < y1 ≤ 1, got {x0},{y0},{x1},{y1}"
            )));
        }
    }
    Ok(())
}

/// The pixels `[floor(f0·size + ½), floor(f1·size + ½))` of one axis.
fn box_span(f0: f32, f1: f32, size: u32) -> (u32, u32) {
    let edge = |f: f32| {
        ((f64::from(f) * f64::from(size) + 0.5).floor()).clamp(0.0, f64::from(size)) as u32
    };
    (edge(f0), edge(f1))
}

/// Coverage of a box `[x0, y0, x1, y1]` (fractions) at `width × height`: 255 inside, 0 outside.
pub fn box_coverage(fractions: [f32; 4], width: u32, height: u32) -> GrayImage {
    let [x0, y0, x1, y1] = fractions;
    let (left, right) = box_span(x0, x1, width);
    let (top, bottom) = box_span(y0, y1, height);
    GrayImage::from_fn(width, height, |x, y| {
        let inside = x >= left && x < right && y >= top && y < bottom;
        image::Luma([if inside { 255 } else { 0 }])
    })
}

/// Loads a region mask as gray (luma of any image mode; alpha ignored) at `width × height`,
/// resized bilinearly when its size differs; a mask of another aspect ratio is refused.
pub fn load_region_mask(path: &Path, width: u32, height: u32) -> Result<GrayImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(e, path))?;
    let decoded = image::load_from_memory(&bytes)
        .map_err(|e| Error::Image(format!("cannot read {path:?} as a region mask: {e}")))?;
    let gray = decoded.to_luma8();
    let (mw, mh) = gray.dimensions();
    if (mw, mh) == (width, height) {
        return Ok(gray);
    }
    let mask_aspect = f64::from(mw) / f64::from(mh.max(1));
    let image_aspect = f64::from(width) / f64::from(height.max(1));
    if mw == 0 || mh == 0 || (mask_aspect / image_aspect - 1.0).abs() > ASPECT_TOLERANCE {
        return Err(Error::InvalidArgument(format!(
            "region mask is {mw}x{mh} but the image is {width}x{height}: a mask is resized to \
             the image size, so it must have the image's aspect ratio: {path:?}"
        )));
    }
    Ok(imageops::resize(
        &gray,
        width,
        height,
        imageops::FilterType::Triangle,
    ))
}

/// A region's coverage at `width × height` (the output image).
pub fn coverage(area: &RegionArea, width: u32, height: u32) -> Result<GrayImage> {
    match area {
        RegionArea::Box(fractions) => Ok(box_coverage(*fractions, width, height)),
        RegionArea::Mask(path) => load_region_mask(path, width, height),
    }
}

/// The regions of a recipe at the generation size `(width, height)`. Boxes and masks refer to
/// the output image of `output` size; when only `crop` of it is generated, coverage is cropped
/// to it and resized (bilinear) to the generation size. Returns warnings for regions that cover
/// nothing of what is generated.
pub fn region_requests(
    specs: &[RegionSpec],
    output: (u32, u32),
    crop: Option<Region>,
    generation: (u32, u32),
) -> Result<(Vec<RegionRequest>, Vec<String>)> {
    let mut requests = Vec::with_capacity(specs.len());
    let mut warnings = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        check_region(spec, index)?;
        let full = coverage(&spec.area, output.0, output.1)?;
        let coverage = match crop {
            Some(r) if (r.x0, r.y0, r.width(), r.height()) != (0, 0, output.0, output.1) => {
                let cropped = imageops::crop_imm(&full, r.x0, r.y0, r.width(), r.height());
                imageops::resize(
                    &cropped.to_image(),
                    generation.0,
                    generation.1,
                    imageops::FilterType::Triangle,
                )
            }
            _ if full.dimensions() != generation => imageops::resize(
                &full,
                generation.0,
                generation.1,
                imageops::FilterType::Triangle,
            ),
            _ => full,
        };
        if coverage.as_raw().iter().all(|&v| v == 0) || spec.weight == 0.0 {
            warnings.push(format!(
                "region {} ({:?}) covers nothing of the generated image",
                index + 1,
                spec.prompt
            ));
        }
        requests.push(RegionRequest {
            prompt: spec.prompt.clone(),
            negative: spec.negative.clone(),
            coverage,
            weight: spec.weight,
        });
    }
    Ok((requests, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_covers_the_pixels_whose_centres_it_holds() {
        let m = box_coverage([0.0, 0.5, 0.5, 1.0], 8, 4);
        let inside: Vec<(u32, u32)> = m
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] == 255)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(inside.len(), 8);
        assert!(inside.iter().all(|&(x, y)| x < 4 && y >= 2));
        // 0.3·10 + ½ = 3.5 → 3; 0.75·10 + ½ = 8 → columns 3..8.
        let m = box_coverage([0.3, 0.0, 0.75, 1.0], 10, 1);
        let row: Vec<u8> = m.as_raw().clone();
        assert_eq!(row, vec![0, 0, 0, 255, 255, 255, 255, 255, 0, 0]);
    }

    #[test]
    fn bad_boxes_and_weights_are_refused_with_the_region_number() {
        let mut spec = RegionSpec::from_box("a", [0.5, 0.0, 0.5, 1.0]);
        let err = check_region(&spec, 1).unwrap_err().to_string();
        assert!(err.contains("region 2") && err.contains("x0 < x1"), "{err}");
        spec.area = RegionArea::Box([0.0, 0.0, 1.2, 1.0]);
        assert!(check_region(&spec, 0).is_err());
        spec.area = RegionArea::Box([0.0, 0.0, f32::NAN, 1.0]);
        assert!(check_region(&spec, 0).is_err());
        spec.area = RegionArea::Box([0.0, 0.0, 1.0, 1.0]);
        spec.weight = 1.5;
        assert!(
            check_region(&spec, 0)
                .unwrap_err()
                .to_string()
                .contains("weight")
        );
        spec.weight = 0.5;
        assert!(check_region(&spec, 0).is_ok());
    }

    #[test]
    fn masks_are_resized_only_at_the_same_aspect_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        GrayImage::from_fn(32, 16, |x, _| image::Luma([if x < 16 { 255 } else { 0 }]))
            .save(&path)
            .unwrap();
        let m = load_region_mask(&path, 64, 32).unwrap();
        assert_eq!(m.dimensions(), (64, 32));
        assert_eq!(m.get_pixel(0, 0).0[0], 255);
        assert_eq!(m.get_pixel(63, 31).0[0], 0);
        let err = load_region_mask(&path, 64, 64).unwrap_err().to_string();
        assert!(
            err.contains("32x16") && err.contains("aspect ratio"),
            "{err}"
        );
        let missing = load_region_mask(&dir.path().join("none.png"), 8, 8);
        assert!(missing.is_err());
    }

    #[test]
    fn only_masked_crops_take_the_matching_part_of_a_region() {
        // Left half of a 16x8 output; the crop is the right half: nothing left.
        let specs = [RegionSpec::from_box("left", [0.0, 0.0, 0.5, 1.0])];
        let crop = Region {
            x0: 8,
            y0: 0,
            x1: 16,
            y1: 8,
        };
        let (requests, warnings) = region_requests(&specs, (16, 8), Some(crop), (8, 8)).unwrap();
        assert!(requests[0].coverage.as_raw().iter().all(|&v| v == 0));
        assert_eq!(warnings.len(), 1);
        // Without a crop the region keeps its place.
        let (requests, warnings) = region_requests(&specs, (16, 8), None, (16, 8)).unwrap();
        assert_eq!(requests[0].coverage.get_pixel(0, 0).0[0], 255);
        assert!(warnings.is_empty());
    }
}
