//! SCRFD face detector (insightface `model_zoo/scrfd.py`, the `scrfd_10g_bnkps.onnx` of
//! antelopev2): letterbox to 640×640, strides 8/16/32 with 2 anchors per location, distance
//! decoding of boxes and 5 keypoints, score threshold 0.5, greedy NMS at IoU 0.4.

use super::Face;
use crate::{Error, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// Side of the square detector input (insightface `det_size=(640, 640)`).
pub const DET_SIZE: u32 = 640;
/// Minimum detection score.
pub const SCORE_THRESHOLD: f32 = 0.5;
/// IoU above which a lower-scored box is suppressed.
pub const NMS_THRESHOLD: f32 = 0.4;
/// Feature strides of the three output levels.
pub const STRIDES: [usize; 3] = [8, 16, 32];
/// Anchors per feature-map location.
const ANCHORS: usize = 2;

/// The letterboxed detector input: the image resized into `DET_SIZE²` keeping its aspect,
/// top-left placed, zero padded.
#[derive(Clone, Debug)]
pub struct Letterbox {
    /// `DET_SIZE × DET_SIZE` RGB.
    pub image: RgbImage,
    /// Resized width and height inside the square.
    pub resized: (u32, u32),
    /// `resized height / original height` (insightface `det_scale`).
    pub scale: f32,
}

/// insightface's letterbox: the long side becomes 640, the short one `int(640 · short / long)`.
pub fn letterbox(image: &RgbImage) -> Letterbox {
    let (w, h) = image.dimensions();
    let im_ratio = f64::from(h) / f64::from(w.max(1));
    let (new_w, new_h) = if im_ratio > 1.0 {
        (((f64::from(DET_SIZE) / im_ratio) as u32).max(1), DET_SIZE)
    } else {
        (DET_SIZE, ((f64::from(DET_SIZE) * im_ratio) as u32).max(1))
    };
    let scale = (f64::from(new_h) / f64::from(h.max(1))) as f32;
    let resized = resize_linear_cv2(image, new_w, new_h);
    let mut out = RgbImage::new(DET_SIZE, DET_SIZE);
    image::imageops::replace(&mut out, &resized, 0, 0);
    Letterbox {
        image: out,
        resized: (new_w, new_h),
        scale,
    }
}

/// Source index and fractional weight of each output column/row of an OpenCV `INTER_LINEAR`
/// resize (half-pixel centres, clamped at the edges), weights in 11-bit fixed point.
fn linear_taps(dst: u32, src: u32) -> Vec<(usize, usize, i32, i32)> {
    let scale = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|d| {
            let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            let last = i64::from(src) - 1;
            if s >= last {
                s = last;
                frac = 0.0;
            }
            let s = s.max(0) as usize;
            let next = (s + 1).min(src.saturating_sub(1) as usize);
            let a = ((1.0 - frac) * 2048.0).round_ties_even() as i32;
            let b = (frac * 2048.0).round_ties_even() as i32;
            (s, next, a, b)
        })
        .collect()
}

/// `cv2.resize(image, (width, height))` (INTER_LINEAR) for RGB8, as OpenCV computes it: an
/// exact 2× reduction averages 2×2 blocks (OpenCV switches to INTER_AREA there); otherwise
/// 11-bit fixed-point taps, a horizontal pass in integers and OpenCV's vectorised vertical
/// pass `((r0>>4)·b0 >> 16) + ((r1>>4)·b1 >> 16) + 2 >> 2`.
pub fn resize_linear_cv2(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = image.dimensions();
    if (sw, sh) == (width, height) {
        return image.clone();
    }
    let src = image.as_raw();
    let at = |x: usize, y: usize, c: usize| -> i32 {
        src.get((y * sw as usize + x) * 3 + c)
            .copied()
            .map(i32::from)
            .unwrap_or(0)
    };
    let mut out = RgbImage::new(width, height);
    if sw == 2 * width && sh == 2 * height {
        for (x, y, px) in out.enumerate_pixels_mut() {
            let (x, y) = (2 * x as usize, 2 * y as usize);
            for c in 0..3 {
                let sum = at(x, y, c) + at(x + 1, y, c) + at(x, y + 1, c) + at(x + 1, y + 1, c);
                px.0[c] = ((sum + 2) >> 2) as u8;
            }
        }
        return out;
    }
    let xs = linear_taps(width, sw);
    let ys = linear_taps(height, sh);
    // Horizontal pass of every source row that is used.
    let row = |y: usize| -> Vec<i32> {
        let mut r = Vec::with_capacity(width as usize * 3);
        for &(s, n, a, b) in &xs {
            for c in 0..3 {
                r.push(at(s, y, c) * a + at(n, y, c) * b);
            }
        }
        r
    };
    let mut cache: Vec<Option<Vec<i32>>> = vec![None; sh as usize];
    let mut get_row = |y: usize| -> Vec<i32> {
        match cache.get(y).cloned().flatten() {
            Some(r) => r,
            None => {
                let r = row(y);
                if let Some(slot) = cache.get_mut(y) {
                    *slot = Some(r.clone());
                }
                r
            }
        }
    };
    let data: &mut [u8] = &mut out;
    for (dy, &(s0, s1, b0, b1)) in ys.iter().enumerate() {
        let (r0, r1) = (get_row(s0), get_row(s1));
        let line = dy * width as usize * 3;
        for (i, (v0, v1)) in r0.iter().zip(&r1).enumerate() {
            // v_mul_hi on int16 lanes: (a·b) >> 16, arithmetic.
            let t0 = ((v0 >> 4) * b0) >> 16;
            let t1 = ((v1 >> 4) * b1) >> 16;
            let v = (t0 + t1 + 2) >> 2;
            if let Some(slot) = data.get_mut(line + i) {
                *slot = v.clamp(0, 255) as u8;
            }
        }
    }
    out
}

/// The network input for a letterboxed image: `[1, 3, 640, 640]` RGB, `(x − 127.5) / 128`.
pub fn blob(letterboxed: &RgbImage) -> Vec<f32> {
    let (w, h) = letterboxed.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; plane * 3];
    for (i, p) in letterboxed.pixels().enumerate() {
        for c in 0..3 {
            if let Some(slot) = data.get_mut(c * plane + i) {
                *slot = (f32::from(p.0[c]) - 127.5) * (1.0 / 128.0);
            }
        }
    }
    data
}

/// A decoded candidate before NMS (letterbox pixels).
#[derive(Clone, Copy, Debug)]
struct Candidate {
    bbox: [f32; 4],
    score: f32,
    kps: [[f32; 2]; 5],
}

/// Decodes the 9 outputs (scores, boxes, keypoints for strides 8/16/32, insightface's order)
/// of a `side × side` input into candidates with score ≥ threshold, in letterbox pixels.
fn decode(outputs: &[Vec<f32>], side: usize) -> Result<Vec<Candidate>> {
    let mut found = Vec::new();
    for (level, &stride) in STRIDES.iter().enumerate() {
        let (Some(scores), Some(boxes), Some(kps)) = (
            outputs.get(level),
            outputs.get(level + 3),
            outputs.get(level + 6),
        ) else {
            return Err(Error::InvalidArgument(
                "face detector: expected 9 outputs (scores, boxes and keypoints for 3 strides)"
                    .into(),
            ));
        };
        let cells = side / stride;
        let anchors = cells * cells * ANCHORS;
        if scores.len() != anchors || boxes.len() != anchors * 4 || kps.len() != anchors * 10 {
            return Err(Error::InvalidArgument(format!(
                "face detector: stride {stride} outputs have {}/{}/{} values, expected {}/{}/{}",
                scores.len(),
                boxes.len(),
                kps.len(),
                anchors,
                anchors * 4,
                anchors * 10
            )));
        }
        let s = stride as f32;
        for (a, &score) in scores.iter().enumerate() {
            if score < SCORE_THRESHOLD {
                continue;
            }
            let cell = a / ANCHORS;
            let (cx, cy) = ((cell % cells) as f32 * s, (cell / cells) as f32 * s);
            let d = |k: usize, i: usize| -> f32 {
                let v = if k == 4 {
                    boxes.get(a * 4 + i)
                } else {
                    kps.get(a * 10 + i)
                };
                v.copied().unwrap_or(0.0) * s
            };
            let bbox = [cx - d(4, 0), cy - d(4, 1), cx + d(4, 2), cy + d(4, 3)];
            let kps = std::array::from_fn(|p| [cx + d(10, 2 * p), cy + d(10, 2 * p + 1)]);
            found.push(Candidate { bbox, score, kps });
        }
    }
    Ok(found)
}

/// insightface's greedy NMS (areas with `+1` pixels); `dets` sorted by descending score.
/// Returns the kept indices.
fn nms(dets: &[Candidate], threshold: f32) -> Vec<usize> {
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut order: Vec<usize> = (0..dets.len()).collect();
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(i);
        let Some(a) = dets.get(i) else { break };
        let area_a = area(&a.bbox);
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let Some(b) = dets.get(j) else { return false };
                let w = (a.bbox[2].min(b.bbox[2]) - a.bbox[0].max(b.bbox[0]) + 1.0).max(0.0);
                let h = (a.bbox[3].min(b.bbox[3]) - a.bbox[1].max(b.bbox[1]) + 1.0).max(0.0);
                let inter = w * h;
                inter / (area_a + area(&b.bbox) - inter) <= threshold
            })
            .collect();
    }
    keep
}

/// Post-processing of the raw detector outputs: decode, scale back by `det_scale`, sort by
/// score, NMS. Faces come back in insightface's order (descending score).
pub fn postprocess(outputs: &[Vec<f32>], side: usize, det_scale: f32) -> Result<Vec<Face>> {
    let mut found = decode(outputs, side)?;
    for c in &mut found {
        for v in &mut c.bbox {
            *v /= det_scale;
        }
        for p in &mut c.kps {
            p[0] /= det_scale;
            p[1] /= det_scale;
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(nms(&found, NMS_THRESHOLD)
        .into_iter()
        .filter_map(|i| found.get(i))
        .map(|c| Face {
            bbox: c.bbox,
            score: c.score,
            kps: c.kps,
        })
        .collect())
}

/// A loaded SCRFD network.
pub struct Detector {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads `scrfd_10g_bnkps.onnx` (or a network with the same signature) for a 640×640 input.
    pub fn load(path: &Path) -> Result<Self> {
        let plan = super::load_plan(path, [1, 3, DET_SIZE as usize, DET_SIZE as usize])?;
        let outputs = plan.model().outputs.len();
        if outputs != 9 {
            return Err(Error::InvalidFile {
                format: "ONNX",
                detail: format!(
                    "a SCRFD face detector with keypoints has 9 outputs, this one has {outputs}"
                ),
                path: path.to_path_buf(),
            });
        }
        Ok(Detector {
            plan,
            path: path.to_path_buf(),
        })
    }

    /// Every face found in `image`, in descending score order.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::InvalidArgument("the face photo is empty".into()));
        }
        let boxed = letterbox(image);
        let side = DET_SIZE as usize;
        let outputs = super::run_plan(
            &self.plan,
            &self.path,
            [1, 3, side, side],
            blob(&boxed.image),
        )?;
        postprocess(&outputs, side, boxed.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(bbox: [f32; 4], score: f32) -> Candidate {
        Candidate {
            bbox,
            score,
            kps: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn nms_suppresses_overlaps_above_the_threshold() {
        let dets = [
            candidate([0.0, 0.0, 9.0, 9.0], 0.9),
            candidate([1.0, 1.0, 10.0, 10.0], 0.8), // IoU 81/119 > 0.4
            candidate([20.0, 20.0, 29.0, 29.0], 0.7),
            candidate([5.0, 0.0, 14.0, 9.0], 0.6), // IoU 50/150 = 0.33 with the first
        ];
        assert_eq!(nms(&dets, NMS_THRESHOLD), vec![0, 2, 3]);
    }

    #[test]
    fn letterbox_keeps_the_aspect() {
        let wide = letterbox(&RgbImage::new(300, 200));
        assert_eq!(wide.resized, (640, 426));
        assert!((wide.scale - 2.13).abs() < 1e-6);
        let tall = letterbox(&RgbImage::new(100, 400));
        assert_eq!(tall.resized, (160, 640));
    }

    #[test]
    fn decoding_places_anchors_at_cell_corners() {
        // One anchor of stride 32 scores 0.9: cell (x 1, y 1), second anchor.
        let side = 64usize;
        let mut outputs = Vec::new();
        for stride in STRIDES {
            outputs.push(vec![0f32; (side / stride).pow(2) * 2]);
        }
        for stride in STRIDES {
            outputs.push(vec![1f32; (side / stride).pow(2) * 8]);
        }
        for stride in STRIDES {
            outputs.push(vec![0.5f32; (side / stride).pow(2) * 20]);
        }
        // stride 32 → 2×2 cells; cell (x 1, y 1) = index 3, anchor 1 → 7.
        outputs[2][7] = 0.9;
        let found = decode(&outputs, side).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bbox, [0.0, 0.0, 64.0, 64.0]);
        assert_eq!(found[0].kps[0], [48.0, 48.0]);
    }
}
