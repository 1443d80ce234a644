//! The app's job path around the runner (the engine, or a test's fake): it runs on the worker
//! thread, so work that belongs with the job but not in the UI happens here — the automatic
//! caption of a photo a preset runs on — and what the engine says besides the images
//! (warnings such as "LoRA x: 3 of 71 layers match nothing") goes back to the UI on its own
//! channel, since the worker's events carry only images.

use crate::library::presets::{
    ModelLibrary, Preset, PresetWarning, ResolveRequest, resolve_with_caption,
};
use crate::worker::Runner;
use crossbeam_channel::{Receiver, Sender};
use kiln_inference::{CancelToken, Output, Progress, Recipe, Stage};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A preset run on a photo whose prompt comes from the photo's automatic caption: made on the
/// worker thread when the job starts (the tagger is a model, like the others the worker runs).
#[derive(Clone, Debug)]
pub struct CaptionJob {
    /// The recipe as submitted (the preset resolved without a caption): the job it belongs to.
    pub recipe: Recipe,
    /// The preset.
    pub preset: Preset,
    /// The photo.
    pub photo: PathBuf,
    /// The model library (the tagger is looked up in it).
    pub library: ModelLibrary,
}

/// Caption jobs waiting for their recipe to reach the worker; shared by the app and the runner.
pub type CaptionJobs = Arc<Mutex<Vec<CaptionJob>>>;

/// Reports buffered before new ones are dropped (the UI drains them every frame).
const REPORT_CAPACITY: usize = 32;

/// Warnings of one finished run, with the recipes of its images (to find them in the results).
#[derive(Clone, Debug, PartialEq)]
pub struct JobReport {
    /// The recipes of the images the run made (as saved with them).
    pub recipes: Vec<Recipe>,
    /// One line each.
    pub warnings: Vec<String>,
}

/// Wraps a runner: captions photos for preset jobs, reports each run's warnings to the UI.
pub struct JobRunner<R> {
    inner: R,
    reports: Sender<JobReport>,
    captions: CaptionJobs,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl<R: Runner> JobRunner<R> {
    /// The wrapped runner and the receiving end of its reports; `captions` is where the app
    /// registers caption jobs before submitting their recipes.
    pub fn new(
        inner: R,
        captions: CaptionJobs,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> (Self, Receiver<JobReport>) {
        let (reports, receiver) = crossbeam_channel::bounded(REPORT_CAPACITY);
        (
            JobRunner {
                inner,
                reports,
                captions,
                wake,
            },
            receiver,
        )
    }

    /// The caption job registered for `recipe`, taken out of the list.
    fn take_caption_job(&self, recipe: &Recipe) -> Option<CaptionJob> {
        let mut jobs = self.captions.lock().unwrap_or_else(|p| p.into_inner());
        let index = jobs.iter().position(|job| job.recipe == *recipe)?;
        Some(jobs.remove(index))
    }
}

/// Captions the photo and resolves the preset again with the caption as its prompt, keeping the
/// submitted model, seed and batch. A caption that cannot be made is a warning (the template
/// alone is the prompt); a preset that no longer resolves is the job's error.
fn caption_recipe(
    job: &CaptionJob,
    on_progress: &mut dyn FnMut(&Progress),
    warnings: &mut Vec<String>,
) -> kiln_inference::Result<Recipe> {
    on_progress(&Progress {
        stage: Stage::Loading("image tagger".into()),
        step: 0,
        total: job.recipe.steps,
        image: 0,
        images: job.recipe.batch.max(1) as usize,
        elapsed: std::time::Duration::ZERO,
        eta: None,
        preview: None,
    });
    let request = ResolveRequest {
        prompt: String::new(),
        init_image: Some(job.photo.clone()),
        caption: None,
        model_override: Some(job.recipe.model.path.clone()),
        fallback_model: None,
    };
    let resolved = resolve_with_caption(&job.preset, &request, &job.library)
        .map_err(|e| kiln_inference::Error::InvalidArgument(e.to_string()))?;
    for warning in &resolved.warnings {
        if matches!(warning, PresetWarning::CaptionSkipped { .. }) {
            warnings.push(warning.to_string());
        }
    }
    Ok(Recipe {
        seed: job.recipe.seed,
        batch: job.recipe.batch,
        ..resolved.recipe
    })
}

impl<R: Runner> Runner for JobRunner<R> {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        let mut warnings: Vec<String> = Vec::new();
        let captioned = match self.take_caption_job(recipe) {
            Some(job) => Some(caption_recipe(&job, on_progress, &mut warnings)?),
            None => None,
        };
        if cancel.is_cancelled() {
            return Err(kiln_inference::Error::Cancelled);
        }
        let recipe = captioned.as_ref().unwrap_or(recipe);
        let outputs = self.inner.run(recipe, on_progress, cancel)?;
        for line in outputs.iter().flat_map(|o| &o.warnings) {
            if !warnings.contains(line) {
                warnings.push(line.clone());
            }
        }
        if !warnings.is_empty() {
            let report = JobReport {
                recipes: outputs.iter().map(|o| o.recipe.clone()).collect(),
                warnings,
            };
            // Sent before the worker reports the job finished; lossy only if the UI is stuck.
            self.reports.try_send(report).ok();
            (self.wake)();
        }
        Ok(outputs)
    }

    fn engine(&mut self) -> Option<&mut kiln_inference::Engine> {
        self.inner.engine()
    }
}
