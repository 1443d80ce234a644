//! Face analysis with InsightFace's antelopev2 models run by tract: SCRFD detection (boxes,
//! scores, 5 keypoints), the ArcFace alignment and a 512-d ArcFace embedding, plus the cosine
//! similarity used as an identity score. Follows insightface's python package
//! (`model_zoo/scrfd.py`, `utils/face_align.py`, `model_zoo/arcface_onnx.py`); parity fixture:
//! `tests/fixtures/make_faces.py` (`refs/faces/faces.json`).

pub mod align;
pub mod arcface;
pub mod identity;
pub mod keypoints;
pub mod scrfd;

use crate::{Error, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

pub use arcface::EMBEDDING_DIM;

/// Catalog id of the face models (`kiln models download antelopev2`).
pub const CATALOG_ID: &str = "antelopev2";
/// File name of the detector in the antelopev2 folder.
pub const DETECTOR_FILE: &str = "scrfd_10g_bnkps.onnx";
/// File name of the recogniser in the antelopev2 folder.
pub const RECOGNIZER_FILE: &str = "glintr100.onnx";
/// Smallest face (shorter side of its box, in pixels of the photo) that gets an embedding:
/// smaller faces carry too little detail for a meaningful identity.
pub const MIN_FACE_SIZE: f32 = 32.0;

/// One detected face, in pixels of the analysed image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Face {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Detection score (0.5–1).
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corner (image left/right), `[x, y]`.
    pub kps: [[f32; 2]; 5],
}

impl Face {
    /// Box width.
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    /// Box height.
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }

    /// Box area (the "largest face" measure).
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
}

/// Cosine similarity of two embeddings (1 = same direction); 0 when either is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}

/// `v / ‖v‖` (insightface `normed_embedding`); zeros stay zeros.
pub fn l2_normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

/// The face detector and recogniser, loaded once.
#[derive(Debug)]
pub struct FaceAnalyzer {
    detector: scrfd::Detector,
    recognizer: arcface::Recognizer,
}

/// The error for a missing face model file, naming the catalog entry to download.
fn model_missing(path: &Path) -> Error {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "face model".into());
    Error::InvalidArgument(format!(
        "face model {name} not found: download `{CATALOG_ID}` in the model manager \
         (or `kiln models download {CATALOG_ID}`): {path:?}"
    ))
}

impl FaceAnalyzer {
    /// Loads the detector (`scrfd_10g_bnkps.onnx`) and recogniser (`glintr100.onnx`).
    pub fn load(detector: &Path, recognizer: &Path) -> Result<Self> {
        for path in [detector, recognizer] {
            if !path.is_file() {
                return Err(model_missing(path));
            }
        }
        Ok(FaceAnalyzer {
            detector: scrfd::Detector::load(detector)?,
            recognizer: arcface::Recognizer::load(recognizer)?,
        })
    }

    /// Loads both models from an antelopev2 folder.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        Self::load(&dir.join(DETECTOR_FILE), &dir.join(RECOGNIZER_FILE))
    }

    /// Every face in `image`, largest box first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let mut faces = self.detector.detect(image)?;
        faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(faces)
    }

    /// The largest face, or an error saying none was found.
    pub fn largest(&self, image: &RgbImage) -> Result<Face> {
        self.detect(image)?.into_iter().next().ok_or_else(|| {
            Error::InvalidArgument(
                "no face found in the photo: use a photo where the face is clearly visible".into(),
            )
        })
    }

    /// The aligned 112×112 ArcFace crop of `face` (insightface `norm_crop`).
    pub fn aligned_crop(&self, image: &RgbImage, face: &Face) -> Result<RgbImage> {
        let size = face.width().min(face.height());
        if size.is_nan() || size < MIN_FACE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "the face is too small ({size:.0} px): it must be at least {MIN_FACE_SIZE:.0} \
                 pixels across; use a larger or closer photo"
            )));
        }
        align::norm_crop(image, &face.kps).ok_or_else(|| {
            Error::InvalidArgument("the face's keypoints are degenerate (all equal)".into())
        })
    }

    /// The raw ArcFace embedding of `face` (insightface `Face.embedding`; InstantID uses this).
    pub fn embed_raw(&self, image: &RgbImage, face: &Face) -> Result<Vec<f32>> {
        let crop = self.aligned_crop(image, face)?;
        self.recognizer.embed_crop(&crop)
    }

    /// The L2-normalised ArcFace embedding of `face` (insightface `normed_embedding`), for
    /// [`cosine`] identity scores.
    pub fn embed(&self, image: &RgbImage, face: &Face) -> Result<[f32; EMBEDDING_DIM]> {
        let raw = self.embed_raw(image, face)?;
        let normed = l2_normalize(&raw);
        let mut out = [0f32; EMBEDDING_DIM];
        for (slot, v) in out.iter_mut().zip(normed) {
            *slot = v;
        }
        Ok(out)
    }

    /// The recogniser (embeddings of ready crops, for tests and tools).
    pub fn recognizer(&self) -> &arcface::Recognizer {
        &self.recognizer
    }
}

/// A tract error chain on one line.
fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Loads an ONNX network for one fixed f32 NCHW input shape, optimised and runnable.
fn load_plan(path: &Path, shape: [usize; 4]) -> Result<Arc<TypedRunnableModel>> {
    let onnx_error = |detail: String| Error::InvalidFile {
        format: "ONNX",
        detail,
        path: path.to_path_buf(),
    };
    if !path.is_file() {
        return Err(model_missing(path));
    }
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| onnx_error(one_line(&e)))?;
    let inputs = model
        .input_outlets()
        .map_err(|e| onnx_error(one_line(&e)))?;
    if inputs.len() != 1 {
        return Err(onnx_error(format!(
            "expected one image input, the network has {}",
            inputs.len()
        )));
    }
    model
        .with_input_fact(0, f32::fact(shape).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| onnx_error(one_line(&e)))
}

/// Runs a plan on one NCHW input; returns every output flattened to f32.
fn run_plan(
    plan: &Arc<TypedRunnableModel>,
    path: &Path,
    shape: [usize; 4],
    input: Vec<f32>,
) -> Result<Vec<Vec<f32>>> {
    let run_error = |e: TractError| Error::InvalidFile {
        format: "ONNX",
        detail: format!("running the network failed: {}", one_line(&e)),
        path: path.to_path_buf(),
    };
    let tensor = tract_onnx::prelude::Tensor::from_shape(&shape, &input).map_err(run_error)?;
    let outputs = plan.run(tvec!(tensor.into_tvalue())).map_err(run_error)?;
    outputs
        .iter()
        .map(|o| {
            o.to_plain_array_view::<f32>()
                .map(|v| v.iter().copied().collect())
                .map_err(run_error)
        })
        .collect()
}

/// Where a face model is looked for, in each folder: `<dir>/antelopev2/`, `<dir>/`, and
/// where the model manager installs it, `<dir>/insightface/models/antelopev2/`.
pub fn find_models(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| {
            [
                d.join(CATALOG_ID),
                d.clone(),
                d.join("insightface").join("models").join(CATALOG_ID),
            ]
        })
        .find(|d| d.join(DETECTOR_FILE).is_file() && d.join(RECOGNIZER_FILE).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_and_orthogonal_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        let n = l2_normalize(&[3.0, 4.0]);
        assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn missing_models_name_the_catalog_entry() {
        let e = FaceAnalyzer::load_dir(Path::new("/nonexistent/antelopev2")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("antelopev2") && text.contains(DETECTOR_FILE),
            "{text}"
        );
    }
}
