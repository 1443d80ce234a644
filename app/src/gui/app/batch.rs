//! The app's side of the Batch section: turning its setup into [`BatchOptions`], handing the
//! batch to the worker, pause/resume/cancel, drops of folders and files, and draining events.

use super::KilnApp;
use crate::batch::{BatchOptions, KeepFaces, Overrides, RecipeSource, SeedMode};
use crate::gui::action::BatchAction;
use crate::gui::panels::file_name;
use crate::gui::services::batch::start_batch;
use crate::gui::state::batch::BatchStyle;
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{tr, tr_args};
use crate::library::presets::ModelLibrary;

impl KilnApp {
    /// Carries out a Batch section request.
    pub(super) fn route_batch(&mut self, action: BatchAction, ctx: &egui::Context) {
        match action {
            BatchAction::Start => self.start_batch(),
            BatchAction::Pause => {
                if let Some(run) = &self.state.batch.run {
                    run.control.pause();
                }
            }
            BatchAction::Resume => {
                if let Some(run) = &self.state.batch.run {
                    run.control.resume();
                }
            }
            BatchAction::Cancel => {
                if let Some(run) = &self.state.batch.run {
                    run.control.cancel();
                    self.worker.cancel(run.job);
                }
            }
            BatchAction::Clear => {
                if !self.state.batch.active() {
                    self.state.batch.run = None;
                }
            }
            BatchAction::Dropped { paths, preset } => {
                self.state.batch.set_inputs(&paths);
                self.state.section = Section::Batch;
                if let Some(id) = preset {
                    self.state.batch.style = BatchStyle::Preset(id);
                    self.start_batch();
                }
                ctx.request_repaint();
            }
        }
    }

    /// The batch as set up, handed to the worker.
    fn start_batch(&mut self) {
        let lang = self.state.lang();
        if self.state.batch.active() {
            self.state
                .notify(NoticeKind::Warning, tr(lang, "batch.already_running"));
            return;
        }
        let Some(input) = self.state.batch.input.clone() else {
            self.state
                .notify(NoticeKind::Error, tr(lang, "batch.no_input"));
            return;
        };
        let batch = &self.state.batch;
        let mut overrides = Overrides {
            seed: if batch.fixed_seed {
                SeedMode::Fixed(batch.seed)
            } else {
                SeedMode::PerFile
            },
            ..Overrides::default()
        };
        if batch.keep_faces {
            let dirs = &self.state.settings.model_dirs;
            let Some(model) = crate::library::instantid::find_instantid(dirs) else {
                self.state
                    .notify(NoticeKind::Error, tr(lang, "batch.no_instantid"));
                return;
            };
            overrides.keep_faces = Some(KeepFaces {
                strength: batch.face_strength,
                keypoints: batch.face_strength,
                model,
                analysis: kiln_inference::vision::face::find_models(dirs).unwrap_or_default(),
            });
        }
        let (source, style_name) = match &batch.style {
            BatchStyle::Form => match self.state.form.to_recipe() {
                Ok(recipe) => (
                    RecipeSource::Recipe(Box::new(recipe)),
                    tr(lang, "batch.style_form").to_owned(),
                ),
                Err(error) => {
                    let text = tr(lang, error.message_key()).to_owned();
                    self.state.notify(NoticeKind::Error, text);
                    return;
                }
            },
            BatchStyle::Preset(id) => {
                let Some(entry) = self.state.presets.entry(id) else {
                    let text = tr_args(lang, "presets.not_found", &[("id", id)]);
                    self.state.notify(NoticeKind::Error, text);
                    return;
                };
                let mut preset = entry.preset.clone();
                let captions = preset
                    .image
                    .as_ref()
                    .is_some_and(|i| i.auto_caption.is_some());
                if !(captions && batch.auto_caption) {
                    // The prompt as typed, even empty: no caption.
                    if let Some(image) = &mut preset.image {
                        image.auto_caption = None;
                    }
                    overrides.prompt = Some(batch.prompt.clone());
                }
                let name = entry.name(self.state.settings.language).to_owned();
                let library = ModelLibrary::from_entries(
                    self.state.settings.model_dirs.clone(),
                    self.state.models.entries.clone(),
                );
                let source = RecipeSource::Preset {
                    preset: Box::new(preset),
                    library,
                    model_override: None,
                };
                (source, name)
            }
        };
        let mut options = BatchOptions::new(&input, source);
        options.output = batch.output.clone();
        options.only = batch.only.clone();
        options.overrides = overrides;
        options.keep_aspect = batch.keep_aspect;
        options.watch = batch.watch;
        let label = tr_args(
            lang,
            "batch.job_label",
            &[("folder", &file_name(&input)), ("style", &style_name)],
        );
        let run = start_batch(&self.worker, options, label, self.services.wake.clone());
        self.state.batch.run = Some(run);
        self.state.jobs.queue = self.worker.queue();
    }

    /// Applies the running batch's events; notices its end.
    pub(super) fn drain_batch(&mut self, ctx: &egui::Context) {
        let lang = self.state.lang();
        let Some(run) = &mut self.state.batch.run else {
            return;
        };
        let was_active = run.active();
        run.drain(ctx);
        // Removed from the queue before it ran: the worker never reports it.
        if run.active()
            && run.output.is_none()
            && run.control.is_cancelled()
            && !self.state.jobs.queue.iter().any(|job| job.id == run.job)
        {
            run.removed_from_queue();
        }
        if was_active && let Some(summary) = &run.ended {
            let text = tr_args(
                lang,
                "batch.summary",
                &[
                    ("done", &summary.done.len()),
                    ("skipped", &summary.skipped.len()),
                    ("failed", &summary.failed.len()),
                ],
            );
            let kind = if summary.success() {
                NoticeKind::Info
            } else {
                NoticeKind::Warning
            };
            self.state.notify(kind, text);
        }
    }
}
