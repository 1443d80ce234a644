//! ArcFace recogniser (insightface `model_zoo/arcface_onnx.py`, antelopev2's `glintr100.onnx`):
//! a 112×112 aligned RGB crop, `(x − 127.5) / 127.5`, one 512-d embedding.

use crate::{Error, Result};
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

use super::align::CROP_SIZE;

/// Length of an ArcFace embedding.
pub const EMBEDDING_DIM: usize = 512;

/// A loaded ArcFace network.
pub struct Recognizer {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The network input for an aligned crop: `[1, 3, 112, 112]` RGB, `(x − 127.5) / 127.5`.
pub fn blob(crop: &RgbImage) -> Vec<f32> {
    let plane = (crop.width() * crop.height()) as usize;
    let mut data = vec![0f32; plane * 3];
    for (i, p) in crop.pixels().enumerate() {
        for c in 0..3 {
            if let Some(slot) = data.get_mut(c * plane + i) {
                *slot = (f32::from(p.0[c]) - 127.5) * (1.0 / 127.5);
            }
        }
    }
    data
}

impl Recognizer {
    /// Loads `glintr100.onnx` (or a network with the same signature).
    pub fn load(path: &Path) -> Result<Self> {
        let side = CROP_SIZE as usize;
        let plan = super::load_plan(path, [1, 3, side, side])?;
        Ok(Recognizer {
            plan,
            path: path.to_path_buf(),
        })
    }

    /// The raw (not normalised) embedding of an aligned 112×112 crop.
    pub fn embed_crop(&self, crop: &RgbImage) -> Result<Vec<f32>> {
        if crop.dimensions() != (CROP_SIZE, CROP_SIZE) {
            return Err(Error::InvalidArgument(format!(
                "ArcFace needs a {CROP_SIZE}x{CROP_SIZE} crop, got {}x{}",
                crop.width(),
                crop.height()
            )));
        }
        let side = CROP_SIZE as usize;
        let outputs = super::run_plan(&self.plan, &self.path, [1, 3, side, side], blob(crop))?;
        let Some(embedding) = outputs.into_iter().next() else {
            return Err(Error::InvalidFile {
                format: "ONNX",
                detail: "the face recogniser gave no output".into(),
                path: self.path.clone(),
            });
        };
        if embedding.len() != EMBEDDING_DIM {
            return Err(Error::InvalidFile {
                format: "ONNX",
                detail: format!(
                    "the face recogniser gave {} values, expected a {EMBEDDING_DIM}-d embedding",
                    embedding.len()
                ),
                path: self.path.clone(),
            });
        }
        Ok(embedding)
    }
}
