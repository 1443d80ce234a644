//! What the Generate panel knows about the worker's jobs: the queue, the running job's progress
//! and live preview, the latest results and per-job errors. Updated from worker events in
//! `logic` (textures are uploaded there, never in `ui`).

use crate::gui::services::job_runner::JobReport;
use crate::worker::{JobId, JobOutcome, QueuedJob, WorkerEvent};
use egui::{ColorImage, TextureHandle, TextureOptions};
use kiln_inference::{Recipe, Stage};
use std::path::PathBuf;
use std::time::Duration;

/// Progress of the running job, without its preview pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct JobProgress {
    /// The job.
    pub id: JobId,
    /// Loading, sampling or decoding.
    pub stage: Stage,
    /// Steps done in the current image.
    pub step: usize,
    /// Steps per image.
    pub total: usize,
    /// Index of the current image.
    pub image: usize,
    /// Images in the job.
    pub images: usize,
    /// Time since the job started.
    pub elapsed: Duration,
    /// Estimated time left.
    pub eta: Option<Duration>,
}

impl JobProgress {
    /// Fraction of the whole job done, 0..=1.
    pub fn fraction(&self) -> f32 {
        let total = (self.total * self.images.max(1)) as f32;
        if total <= 0.0 {
            return 0.0;
        }
        let done = (self.image * self.total + self.step) as f32;
        (done / total).clamp(0.0, 1.0)
    }
}

/// A finished, saved image ready to show.
pub struct ResultImage {
    /// The PNG on disk.
    pub path: PathBuf,
    /// Its recipe.
    pub recipe: Recipe,
    /// The uploaded pixels.
    pub texture: TextureHandle,
    /// Size in pixels.
    pub size: [usize; 2],
    /// What the engine warned about while making it (LoRA layers that matched nothing …).
    pub warnings: Vec<String>,
}

/// A failed job's message, shown until dismissed.
#[derive(Clone, Debug, PartialEq)]
pub struct JobError {
    /// The job.
    pub id: JobId,
    /// What went wrong, for the user.
    pub message: String,
}

/// How a job ended, kept for the status line (and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Images saved.
    Done(usize),
    /// Stopped by the user.
    Cancelled,
    /// Failed.
    Failed,
}

/// Jobs as the UI shows them.
#[derive(Default)]
pub struct JobsState {
    /// Running job first, then the waiting ones (refreshed each frame).
    pub queue: Vec<QueuedJob>,
    /// Progress of the running job.
    pub progress: Option<JobProgress>,
    /// Live preview of the running job.
    pub preview: Option<(JobId, TextureHandle)>,
    /// Images of the latest finished job.
    pub results: Vec<ResultImage>,
    /// Which result the viewer shows.
    pub selected: usize,
    /// Errors not yet dismissed.
    pub errors: Vec<JobError>,
    /// Seed of the latest submitted job ("reuse last").
    pub last_seed: Option<u64>,
    /// Jobs that ended, oldest first (the latest few).
    pub ended: Vec<(JobId, Ended)>,
    /// Warnings reported for images not yet among the results (the report can come first).
    pending_warnings: Vec<JobReport>,
}

/// How many ended jobs to remember.
const ENDED_KEPT: usize = 32;
/// How many unmatched warning reports to keep.
const PENDING_WARNINGS_KEPT: usize = 8;

impl JobsState {
    /// Applies one worker event; uploads preview and result textures into `ctx`.
    /// Returns the paths of newly saved images.
    pub fn apply(&mut self, event: WorkerEvent, ctx: &egui::Context) -> Vec<PathBuf> {
        match event {
            WorkerEvent::Started { id } => {
                self.progress = None;
                if self.preview.as_ref().is_some_and(|(job, _)| *job != id) {
                    self.preview = None;
                }
                Vec::new()
            }
            WorkerEvent::Progress { id, progress } => {
                if let Some(preview) = &progress.preview {
                    let image = rgb_to_color_image(preview);
                    match &mut self.preview {
                        Some((job, texture)) if *job == id => {
                            texture.set(image, TextureOptions::LINEAR);
                        }
                        _ => {
                            let texture =
                                ctx.load_texture("preview", image, TextureOptions::LINEAR);
                            self.preview = Some((id, texture));
                        }
                    }
                }
                self.progress = Some(JobProgress {
                    id,
                    stage: progress.stage,
                    step: progress.step,
                    total: progress.total,
                    image: progress.image,
                    images: progress.images,
                    elapsed: progress.elapsed,
                    eta: progress.eta,
                });
                Vec::new()
            }
            WorkerEvent::Finished { id, outcome } => {
                if self.progress.as_ref().is_some_and(|p| p.id == id) {
                    self.progress = None;
                }
                if self.preview.as_ref().is_some_and(|(job, _)| *job == id) {
                    self.preview = None;
                }
                let (ended, saved) = match outcome {
                    JobOutcome::Done(saved) => (Ended::Done(saved.len()), saved),
                    JobOutcome::Cancelled(saved) => (Ended::Cancelled, saved),
                    JobOutcome::Failed(message) => {
                        self.errors.push(JobError { id, message });
                        (Ended::Failed, Vec::new())
                    }
                };
                self.ended.push((id, ended));
                if self.ended.len() > ENDED_KEPT {
                    self.ended.remove(0);
                }
                if saved.is_empty() {
                    return Vec::new();
                }
                let paths = saved.iter().map(|s| s.path.clone()).collect();
                self.results = saved
                    .into_iter()
                    .map(|image| {
                        let pixels = rgb_to_color_image(&image.image);
                        let size = pixels.size;
                        let name = image.path.display().to_string();
                        ResultImage {
                            texture: ctx.load_texture(name, pixels, TextureOptions::LINEAR),
                            path: image.path,
                            recipe: image.recipe,
                            size,
                            warnings: Vec::new(),
                        }
                    })
                    .collect();
                self.selected = 0;
                let pending = std::mem::take(&mut self.pending_warnings);
                for report in pending {
                    self.add_report(report);
                }
                paths
            }
        }
    }

    /// Attaches a run's warnings to its images among the results, or keeps them until the
    /// images arrive.
    pub fn add_report(&mut self, report: JobReport) {
        let mut matched = false;
        for result in &mut self.results {
            if report.recipes.contains(&result.recipe) {
                result.warnings.clone_from(&report.warnings);
                matched = true;
            }
        }
        if !matched {
            self.pending_warnings.push(report);
            if self.pending_warnings.len() > PENDING_WARNINGS_KEPT {
                self.pending_warnings.remove(0);
            }
        }
    }

    /// The result the viewer shows.
    pub fn selected_result(&self) -> Option<&ResultImage> {
        self.results
            .get(self.selected)
            .or_else(|| self.results.first())
    }

    /// The running job, if any.
    pub fn running(&self) -> Option<&QueuedJob> {
        self.queue
            .iter()
            .find(|job| job.state == crate::worker::JobState::Running)
    }

    /// How the job `id` ended, if it did.
    pub fn ended(&self, id: JobId) -> Option<Ended> {
        self.ended
            .iter()
            .rev()
            .find(|(job, _)| *job == id)
            .map(|(_, ended)| *ended)
    }
}

/// An RGB image as an egui image.
pub fn rgb_to_color_image(image: &image::RgbImage) -> ColorImage {
    let size = [image.width() as usize, image.height() as usize];
    ColorImage::from_rgb(size, image.as_raw())
}
