//! The identity score: the ArcFace cosine similarity between the reference face of a job
//! (`Recipe.face`) and the largest face of each output, so users can pick the seed that looks
//! most like the person. 1 = the same embedding; unrelated faces score near 0 with the real
//! `glintr100` model (insightface's verification threshold is around 0.3–0.4).

use super::FaceAnalyzer;
use crate::adapters::instantid::pick_face;
use crate::recipe::FaceSpec;
use crate::{Error, Result};
use image::RgbImage;
use std::sync::Arc;

/// The reference face of a job: its L2-normalised embedding, computed once, and the analyser
/// that scores outputs against it.
pub struct IdentityReference {
    analyzer: Arc<FaceAnalyzer>,
    embedding: [f32; super::EMBEDDING_DIM],
}

impl std::fmt::Debug for IdentityReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityReference").finish_non_exhaustive()
    }
}

impl IdentityReference {
    /// The reference of face `index` (largest first, the largest when `None`) in `photo`.
    /// Errors: no face found, no face `index`, the face too small to embed.
    pub fn new(
        analyzer: Arc<FaceAnalyzer>,
        photo: &RgbImage,
        index: Option<usize>,
    ) -> Result<Self> {
        // InstantID's choice and wording (no face found, no such face).
        let face = pick_face(&analyzer.detect(photo)?, index, "face photo")?;
        let embedding = analyzer.embed(photo, &face)?;
        Ok(IdentityReference {
            analyzer,
            embedding,
        })
    }

    /// The reference of a recipe's [`FaceSpec`] (`image`, `index`), its photo read from disk.
    pub fn from_spec(analyzer: Arc<FaceAnalyzer>, spec: &FaceSpec) -> Result<Self> {
        let photo = crate::engine::load_rgb(&spec.image)?;
        Self::new(analyzer, &photo, spec.index)
    }

    /// The reference embedding (unit length).
    pub fn embedding(&self) -> &[f32; super::EMBEDDING_DIM] {
        &self.embedding
    }

    /// The cosine similarity between the reference and the largest face of `image`; `None`
    /// when `image` has no face, or its largest face is too small to embed
    /// ([`super::MIN_FACE_SIZE`]).
    pub fn score(&self, image: &RgbImage) -> Result<Option<f32>> {
        let Some(face) = self.analyzer.detect(image)?.into_iter().next() else {
            return Ok(None);
        };
        if face.width().min(face.height()) < super::MIN_FACE_SIZE {
            return Ok(None);
        }
        let embedding = match self.analyzer.embed(image, &face) {
            Ok(e) => e,
            // Degenerate keypoints: no meaningful face to compare.
            Err(Error::InvalidArgument(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(super::cosine(&self.embedding, &embedding)))
    }
}
