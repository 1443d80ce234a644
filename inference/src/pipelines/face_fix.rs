//! Face fix (like A1111's ADetailer with its face model): after an image is generated, every
//! detected face is redone by "only masked" inpainting at a higher working resolution, then
//! pasted back with a feathered edge.
//!
//! For each face (largest first; faces under [`MIN_FIX_FACE`] pixels and faces whose centre lies
//! in a face already planned are left alone):
//! - crop: the face box grown by `padding` × its longer side on each side, made square and
//!   shifted inside the image ([`crate::pipelines::inpaint::crop_region`], the rule of
//!   "only masked" inpainting; clamped where the image is smaller);
//! - working size: the crop's longer side becomes `size` (0 = the model's native size: 512
//!   SD1.5, 768 SD2, 1024 SDXL), the other side follows (multiples of 8);
//! - mask: the face box (a rectangle: SCRFD boxes run from forehead to chin, an inscribed
//!   ellipse would leave the jaw and hairline corners as they were);
//! - generation: the job's own request (negative, sampler, steps — raised where `strength`
//!   would leave none to run —, CFG, clip skip, seed,
//!   IP-Adapters and InstantID's face tokens kept: they carry identity and style, not layout)
//!   with the face prompt, the crop as init image at `strength` and the box as mask; ControlNets
//!   (IdentityNet included: its keypoints are drawn for the whole image) and regional prompts
//!   are dropped;
//! - paste-back: [`crate::pipelines::inpaint::paste_back`] through the face box blurred by
//!   [`feather`] pixels. Pixels outside the crop never change.
//!
//! Each face sees the image as the previous faces left it.

use crate::engine::CancelToken;
use crate::pipelines::inpaint::{Region, crop_region, crop_resize, crop_resize_mask, paste_back};
use crate::pipelines::stable_diffusion::{GenerateRequest, StableDiffusion, StepInfo};
use crate::recipe::FaceFixSpec;
use crate::vision::face::{Face, FaceAnalyzer};
use crate::{Error, Result};
use image::{GrayImage, RgbImage};

/// Faces whose box is smaller than this (shorter side, pixels) are left as they are: too few
/// pixels to find a face in reliably, and a redo would invent one.
pub const MIN_FIX_FACE: f32 = 24.0;

/// One face to fix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FacePlan {
    /// The detection.
    pub face: Face,
    /// The face box in whole pixels inside the image (the mask).
    pub face_box: Region,
    /// The crop that is redone (contains `face_box`).
    pub region: Region,
}

/// A step of the face fix, for progress reporting.
#[derive(Clone, Debug)]
pub struct FaceStep {
    /// Index of the face being redone (0-based, in [`plan`] order).
    pub face: usize,
    /// Faces being redone in this image.
    pub faces: usize,
    /// The denoising step of this face.
    pub step: StepInfo,
}

/// What the face fix did to one image.
#[derive(Clone, Debug)]
pub struct FaceFixResult {
    /// The image with its faces redone (the input when none was).
    pub image: RgbImage,
    /// The faces redone.
    pub fixed: Vec<FacePlan>,
    /// Things the user should know (no face found, faces too small), one line each.
    pub warnings: Vec<String>,
}

/// Checks a face-fix spec before any work starts.
pub fn check(spec: &FaceFixSpec) -> Result<()> {
    if !(spec.strength > 0.0 && spec.strength <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "face fix strength must be in (0, 1], got {}",
            spec.strength
        )));
    }
    if !(spec.padding.is_finite() && (0.0..=4.0).contains(&spec.padding)) {
        return Err(Error::InvalidArgument(format!(
            "face fix padding must be between 0 and 4 (a fraction of the face size), got {}",
            spec.padding
        )));
    }
    if spec.size != 0 && !(64..=4096).contains(&spec.size) {
        return Err(Error::InvalidArgument(format!(
            "face fix size must be 0 (the model's native size) or 64 to 4096 pixels, got {}",
            spec.size
        )));
    }
    Ok(())
}

/// The face box in whole pixels, clamped to the image; `None` when nothing is left.
fn face_box(face: &Face, width: u32, height: u32) -> Option<Region> {
    let clamp = |v: f32, hi: u32| {
        if v.is_nan() {
            0
        } else {
            v.clamp(0.0, hi as f32) as u32
        }
    };
    let region = Region {
        x0: clamp(face.bbox[0].floor(), width),
        y0: clamp(face.bbox[1].floor(), height),
        x1: clamp(face.bbox[2].ceil(), width),
        y1: clamp(face.bbox[3].ceil(), height),
    };
    (region.x1 > region.x0 && region.y1 > region.y0).then_some(region)
}

/// A binary mask of `image_size` that is white inside `region`.
fn box_mask(width: u32, height: u32, region: Region) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| {
        let inside = x >= region.x0 && x < region.x1 && y >= region.y0 && y < region.y1;
        image::Luma([if inside { 255 } else { 0 }])
    })
}

/// The faces of an image to fix and their crops, largest first (`faces` as
/// [`FaceAnalyzer::detect`] returns them). Leaves out faces under [`MIN_FIX_FACE`] pixels and
/// faces whose box centre lies inside the box of a face planned before (overlapping
/// detections of one face). Returns the plans and the number of faces left out as too small.
pub fn plan(faces: &[Face], width: u32, height: u32, padding: f32) -> (Vec<FacePlan>, usize) {
    let mut plans: Vec<FacePlan> = Vec::new();
    let mut too_small = 0;
    for face in faces {
        if face.width().min(face.height()) < MIN_FIX_FACE || face.width().is_nan() {
            too_small += 1;
            continue;
        }
        let (cx, cy) = (
            (face.bbox[0] + face.bbox[2]) / 2.0,
            (face.bbox[1] + face.bbox[3]) / 2.0,
        );
        let covered = plans.iter().any(|p| {
            cx >= p.face.bbox[0]
                && cx <= p.face.bbox[2]
                && cy >= p.face.bbox[1]
                && cy <= p.face.bbox[3]
        });
        if covered {
            continue;
        }
        let Some(face_box) = face_box(face, width, height) else {
            continue;
        };
        let side = face_box.width().max(face_box.height());
        let pad = (padding.max(0.0) * side as f32).round() as u32;
        let mask = box_mask(width, height, face_box);
        let Some(region) = crop_region(&mask, pad, 1, 1) else {
            continue;
        };
        plans.push(FacePlan {
            face: *face,
            face_box,
            region,
        });
    }
    (plans, too_small)
}

/// The working size of a crop: its longer side becomes `size`, the other side follows its
/// aspect ratio; both multiples of 8 (at least 8).
pub fn working_size(region: Region, size: u32) -> (u32, u32) {
    let size = (size / 8 * 8).max(8);
    let (w, h) = (region.width().max(1), region.height().max(1));
    let short = |a: u32, b: u32| {
        let v = (f64::from(size) * f64::from(a) / f64::from(b) / 8.0).round() as u32 * 8;
        v.clamp(8, size)
    };
    if w >= h {
        (size, short(h, w))
    } else {
        (short(w, h), size)
    }
}

/// The feather (Gaussian blur radius of the paste-back mask, pixels) for a face box: 8 % of
/// its longer side, 3 to 32 pixels. The crop's padding (30 % by default) holds the blur's tail.
pub fn feather(face_box: Region) -> u32 {
    let side = face_box.width().max(face_box.height()) as f32;
    ((side * 0.08).round() as u32).clamp(3, 32)
}

/// The job's steps, raised where `strength` would leave no step to run (img2img runs
/// `int(steps × strength)` of them: 4 LCM steps at strength 0.2 would run none).
pub fn steps_for(steps: usize, strength: f32) -> usize {
    // The decimal the user wrote, as the scheduler reads it.
    let strength = strength
        .to_string()
        .parse::<f64>()
        .unwrap_or(f64::from(strength));
    let mut steps = steps.max(1);
    while ((steps as f64 * strength) as usize) < 1 && steps < 1000 {
        steps += 1;
    }
    steps
}

/// The request that redoes one face: `base` (the job's request for this image) with the face
/// prompt, the working size, the crop as init image and the face box as mask; no ControlNets
/// and no regional prompts.
pub fn face_request(
    base: &GenerateRequest,
    spec: &FaceFixSpec,
    image: &RgbImage,
    plan: &FacePlan,
    size: u32,
) -> GenerateRequest {
    let (width, height) = working_size(plan.region, size);
    let mask = box_mask(image.width(), image.height(), plan.face_box);
    let prompt = match &spec.prompt {
        Some(p) if !p.trim().is_empty() => p.clone(),
        _ => base.prompt.clone(),
    };
    GenerateRequest {
        prompt,
        steps: steps_for(base.steps, spec.strength),
        width,
        height,
        init: Some((
            crop_resize(image, plan.region, width, height),
            spec.strength,
        )),
        mask: Some(crop_resize_mask(&mask, plan.region, width, height)),
        controls: Vec::new(),
        regions: Vec::new(),
        ..base.clone()
    }
}

/// Redoes every face of `image` (see the module notes). `base` is the job's request for this
/// image; `on_step` hears every denoising step; `cancel` stops between and within faces.
pub fn fix_faces(
    model: &StableDiffusion,
    analyzer: &FaceAnalyzer,
    spec: &FaceFixSpec,
    base: &GenerateRequest,
    image: RgbImage,
    on_step: &mut dyn FnMut(FaceStep),
    cancel: &CancelToken,
) -> Result<FaceFixResult> {
    check(spec)?;
    let faces = analyzer.detect(&image)?;
    let (plans, too_small) = plan(&faces, image.width(), image.height(), spec.padding);
    let mut warnings = Vec::new();
    if faces.is_empty() {
        warnings.push("face fix: no face found; the image is left as generated".to_string());
    } else if plans.is_empty() {
        warnings.push(format!(
            "face fix: every face found is smaller than {MIN_FIX_FACE:.0} pixels; the image is \
             left as generated"
        ));
    } else if too_small > 0 {
        warnings.push(format!(
            "face fix: {too_small} face{} smaller than {MIN_FIX_FACE:.0} pixels left as generated",
            if too_small == 1 { "" } else { "s" }
        ));
    }
    let size = match spec.size {
        0 => {
            let (w, h) = model.kind().family.native_size();
            w.max(h)
        }
        size => size,
    };
    let mut current = image;
    let count = plans.len();
    for (index, plan) in plans.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let request = face_request(base, spec, &current, plan, size);
        let mut report = |step: StepInfo| {
            on_step(FaceStep {
                face: index,
                faces: count,
                step,
            })
        };
        let generated = model.generate(&request, &mut report, cancel)?;
        let mask = box_mask(current.width(), current.height(), plan.face_box);
        current = paste_back(
            &current,
            &generated,
            &mask,
            plan.region,
            feather(plan.face_box),
        );
    }
    Ok(FaceFixResult {
        image: current,
        fixed: plans,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x0: f32, y0: f32, x1: f32, y1: f32) -> Face {
        Face {
            bbox: [x0, y0, x1, y1],
            score: 0.9,
            kps: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn the_crop_is_the_padded_square_around_the_face() {
        let (plans, small) = plan(&[face(100.0, 80.0, 140.0, 130.0)], 400, 300, 0.3);
        assert_eq!(small, 0);
        let p = plans[0];
        assert_eq!(
            p.face_box,
            Region {
                x0: 100,
                y0: 80,
                x1: 140,
                y1: 130
            }
        );
        // 50 px box side, 15 px padding each side: 80 tall, widened to a square.
        assert_eq!((p.region.width(), p.region.height()), (80, 80));
        assert_eq!((p.region.y0, p.region.y1), (65, 145));
        assert!(p.region.x0 <= 100 && p.region.x1 >= 140);
        // At the border the square shifts inside the image.
        let (plans, _) = plan(&[face(0.0, 0.0, 40.0, 40.0)], 400, 300, 0.5);
        assert_eq!(
            plans[0].region,
            Region {
                x0: 0,
                y0: 0,
                x1: 60,
                y1: 60
            }
        );
        // An image smaller than the square clamps it.
        let (plans, _) = plan(&[face(10.0, 5.0, 50.0, 45.0)], 200, 50, 0.5);
        assert_eq!((plans[0].region.height(), plans[0].region.y0), (50, 0));
    }

    #[test]
    fn small_and_overlapping_faces_are_left_out() {
        let faces = [
            face(100.0, 100.0, 200.0, 220.0),
            // Centre inside the first: another detection of the same face.
            face(120.0, 110.0, 210.0, 200.0),
            face(300.0, 20.0, 320.0, 60.0), // 20 px wide
            face(300.0, 200.0, 340.0, 240.0),
        ];
        let (plans, small) = plan(&faces, 400, 300, 0.3);
        assert_eq!(small, 1);
        let boxes: Vec<[f32; 4]> = plans.iter().map(|p| p.face.bbox).collect();
        assert_eq!(boxes, vec![faces[0].bbox, faces[3].bbox]);
    }

    #[test]
    fn working_sizes_keep_the_aspect_in_multiples_of_8() {
        let square = Region {
            x0: 0,
            y0: 0,
            x1: 77,
            y1: 77,
        };
        assert_eq!(working_size(square, 512), (512, 512));
        let wide = Region {
            x0: 0,
            y0: 0,
            x1: 200,
            y1: 50,
        };
        assert_eq!(working_size(wide, 512), (512, 128));
        let tall = Region {
            x0: 0,
            y0: 0,
            x1: 10,
            y1: 400,
        };
        assert_eq!(working_size(tall, 100), (8, 96));
        assert_eq!(feather(square), 6);
        assert_eq!(steps_for(25, 0.4), 25);
        assert_eq!(steps_for(4, 0.2), 5);
        assert_eq!(steps_for(4, 0.3), 4);
        assert_eq!(steps_for(2, 0.1), 10);
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = FaceFixSpec::default();
        assert!(check(&ok).is_ok());
        for bad in [
            FaceFixSpec {
                strength: 0.0,
                ..ok.clone()
            },
            FaceFixSpec {
                padding: f32::NAN,
                ..ok.clone()
            },
            FaceFixSpec {
                size: 20,
                ..ok.clone()
            },
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
