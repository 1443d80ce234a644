//! The face steps of a job around each generated image, as [`crate::Engine::run`] calls them:
//! the face fix ([`super::face_fix`]) after the image is made (and pasted back), the identity
//! score ([`crate::vision::face::identity`]) of the finished image.

use crate::Result;
use crate::engine::{CancelToken, Engine, Progress, Stage};
use crate::pipelines::face_fix::{FaceStep, fix_faces};
use crate::pipelines::stable_diffusion::{GenerateRequest, StableDiffusion};
use crate::recipe::{FaceFixSpec, Recipe};
use crate::vision::face::FaceAnalyzer;
use crate::vision::face::identity::IdentityReference;
use image::RgbImage;
use std::sync::Arc;
use std::time::Instant;

/// What a job needs for its face steps, prepared once before the first image.
#[derive(Debug, Default)]
pub struct JobFaces {
    /// The reference face of `recipe.face` (for the identity score).
    identity: Option<IdentityReference>,
    /// The face fix with its analyser.
    fix: Option<(FaceFixSpec, Arc<FaceAnalyzer>)>,
}

impl JobFaces {
    /// Loads the face analysers the recipe needs and embeds the reference face. Errors (no
    /// face in the photo, face too small, models missing) stop the job before it starts.
    pub fn prepare(engine: &mut Engine, recipe: &Recipe) -> Result<Self> {
        let mut faces = JobFaces::default();
        if let Some(spec) = &recipe.face {
            let analyzer = engine.face_analyzer(&spec.analysis)?;
            faces.identity = Some(IdentityReference::from_spec(analyzer, spec)?);
        }
        if let Some(spec) = &recipe.face_fix {
            crate::pipelines::face_fix::check(spec)?;
            let analyzer = engine.face_analyzer(&spec.analysis)?;
            faces.fix = Some((spec.clone(), analyzer));
        }
        Ok(faces)
    }

    /// Runs the face fix on image `index` of `images` (when the recipe asks for it), reporting
    /// its steps as [`Stage::FixingFace`]; warnings go to `warnings`.
    #[allow(clippy::too_many_arguments)]
    pub fn fix(
        &self,
        model: &StableDiffusion,
        request: &GenerateRequest,
        image: RgbImage,
        (index, images): (usize, usize),
        started: Instant,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
        warnings: &mut Vec<String>,
    ) -> Result<RgbImage> {
        let Some((spec, analyzer)) = &self.fix else {
            return Ok(image);
        };
        let mut on_step = |s: FaceStep| {
            on_progress(&Progress {
                stage: Stage::FixingFace {
                    face: s.face,
                    faces: s.faces,
                },
                step: s.step.step,
                total: s.step.total,
                image: index,
                images,
                elapsed: started.elapsed(),
                eta: None,
                preview: None,
            })
        };
        let result = fix_faces(model, analyzer, spec, request, image, &mut on_step, cancel)?;
        warnings.extend(result.warnings);
        Ok(result.image)
    }

    /// The identity score of a finished image (`None` without a reference face, or when the
    /// image has no face).
    pub fn identity(&self, image: &RgbImage) -> Result<Option<f32>> {
        match &self.identity {
            Some(reference) => reference.score(image),
            None => Ok(None),
        }
    }
}
