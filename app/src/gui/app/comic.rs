//! `KilnApp`'s side of the Comic section: a Generate or Regenerate becomes a worker task
//! ([`crate::gui::services::comic`]) with the panels' recipes coming from the script's preset
//! or the Generate form; photo dialogs, page previews and exports run on task threads.

use super::KilnApp;
use crate::comic::edit::set_photo;
use crate::comic::story::leads;
use crate::gui::services::comic::{
    ComicDone, ComicJob, PanelSource, export_page, page_preview, start_comic,
};
use crate::gui::services::tasks::TaskDone;
use crate::gui::state::comic::{ComicAction, RunKind};
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{tr, tr_args};
use crate::library::presets::ModelLibrary;
use egui::TextureOptions;
use std::path::PathBuf;

impl KilnApp {
    /// Carries out a Comic section request.
    pub(super) fn route_comic(&mut self, action: ComicAction) {
        match action {
            ComicAction::Generate => self.comic_start(RunKind::Story),
            ComicAction::Regenerate(k) => self.comic_start(RunKind::Panel(k)),
            ComicAction::Cancel => {
                if let Some(run) = &self.state.comic.run {
                    run.cancel.cancel();
                    self.worker.cancel(run.job);
                }
            }
            ComicAction::Move { from, to } => {
                if !self.state.comic.busy() {
                    self.state.comic.move_panel(from, to);
                }
            }
            ComicAction::PickPhoto(name) => {
                let title = tr(self.state.lang(), "comic.pick_photo").to_owned();
                self.services.tasks.spawn("comic-photo", move || {
                    let path = rfd::FileDialog::new()
                        .set_title(title)
                        .add_filter("image", &["png", "jpg", "jpeg", "webp"])
                        .pick_file();
                    TaskDone::Comic(Box::new(ComicDone::Photo { name, path }))
                });
            }
            ComicAction::SetPhoto { name, path } => self.comic_photo(&name, Some(path)),
            ComicAction::ClearPhoto(name) => self.comic_photo(&name, None),
            ComicAction::ExportPng => self.comic_export(false),
            ComicAction::ExportPdf => self.comic_export(true),
        }
    }

    fn comic_photo(&mut self, name: &str, path: Option<PathBuf>) {
        let comic = &mut self.state.comic;
        if let Some(text) = set_photo(&comic.script, name, path.as_deref()) {
            comic.set_script(text);
        }
    }

    /// A file dropped on a character card while the Comic section is open becomes its photo.
    /// Returns whether it was taken.
    pub(super) fn comic_drop(&mut self, path: &std::path::Path, pos: Option<egui::Pos2>) -> bool {
        if self.state.section != Section::Comic {
            return false;
        }
        let name = pos.and_then(|pos| {
            self.state
                .comic
                .card_rects
                .iter()
                .find(|(_, rect)| rect.contains(pos))
                .map(|(name, _)| name.clone())
        });
        match name {
            Some(name) => self.comic_photo(&name, Some(path.to_path_buf())),
            None => {
                let text = tr(self.state.lang(), "comic.drop_on_card").to_owned();
                self.state.notify(NoticeKind::Info, text);
            }
        }
        true
    }

    fn comic_start(&mut self, kind: RunKind) {
        let lang = self.state.lang();
        if self.state.comic.busy() {
            return;
        }
        let story = match &self.state.comic.parsed {
            Ok(story) => story.clone(),
            Err(error) => {
                let text = tr_args(
                    lang,
                    "comic.script_error",
                    &[("line", &error.line), ("message", &error.message)],
                );
                self.state.notify(NoticeKind::Error, text);
                return;
            }
        };
        let source = match &story.preset {
            Some(id) => {
                let Some(entry) = self.state.presets.entry(id) else {
                    let text = tr_args(lang, "presets.not_found", &[("id", id)]);
                    self.state.notify(NoticeKind::Error, text);
                    return;
                };
                PanelSource::Preset {
                    preset: Box::new(entry.preset.clone()),
                    library: ModelLibrary::from_entries(
                        self.state.settings.model_dirs.clone(),
                        self.state.models.entries.clone(),
                    ),
                }
            }
            None => match self.state.form.to_recipe() {
                Ok(recipe) => PanelSource::Form(Box::new(recipe)),
                Err(error) => {
                    let text = tr(lang, error.message_key()).to_owned();
                    self.state.notify(NoticeKind::Error, text);
                    return;
                }
            },
        };
        let comic = &mut self.state.comic;
        let references = match kind {
            RunKind::Story => None,
            RunKind::Panel(k) => leads(&story)
                .get(k)
                .copied()
                .flatten()
                .and_then(|c| story.characters.get(c))
                .and_then(|c| comic.references.get(&c.name.to_lowercase()).cloned()),
        };
        if kind == RunKind::Story {
            comic.references.clear();
            for view in &mut comic.panels {
                view.score = None;
                view.outlier = false;
            }
        }
        comic.error = None;
        let job = ComicJob {
            story,
            source,
            seed: kiln_inference::recipe::random_seed(),
            kind,
            references,
            images: comic.panels.iter().map(|p| p.image.clone()).collect(),
            model_dirs: self.state.settings.model_dirs.clone(),
        };
        let label = match kind {
            RunKind::Story => tr_args(
                lang,
                "comic.job_label",
                &[("panels", &job.story.panels.len())],
            ),
            RunKind::Panel(k) => tr_args(lang, "comic.job_label_panel", &[("number", &(k + 1))]),
        };
        let run = start_comic(&self.worker, job, label, self.services.wake.clone());
        self.state.comic.run = Some(run);
        self.state.jobs.queue = self.worker.queue();
    }

    fn comic_export(&mut self, pdf: bool) {
        let lang = self.state.lang();
        let Some(story) = self.state.comic.story.clone() else {
            return;
        };
        let images: Vec<_> = self
            .state
            .comic
            .panels
            .iter()
            .map(|p| p.image.clone())
            .collect();
        let title = tr(lang, "comic.export_title").to_owned();
        self.state.comic.exporting = true;
        self.services.tasks.spawn("comic-export", move || {
            let (name, filter) = if pdf {
                ("page.pdf", "PDF")
            } else {
                ("page.png", "PNG")
            };
            let extension = if pdf { "pdf" } else { "png" };
            let Some(target) = rfd::FileDialog::new()
                .set_title(title)
                .set_file_name(name)
                .add_filter(filter, &[extension])
                .save_file()
            else {
                return TaskDone::Comic(Box::new(ComicDone::Exported(Ok(None))));
            };
            let result = export_page(&story, &images, &target, pdf).map(Some);
            TaskDone::Comic(Box::new(ComicDone::Exported(result)))
        });
    }

    /// Applies the comic run's events; asks for a new page preview when the panels changed.
    pub(super) fn drain_comic(&mut self, ctx: &egui::Context) {
        let lang = self.state.lang();
        if let Some(Err(Some(error))) = self.state.comic.drain(ctx) {
            let text = tr_args(lang, "comic.failed", &[("error", &error)]);
            self.state.notify(NoticeKind::Error, text);
        }
        if self.state.comic.generate_when_ready
            && self.state.presets.loaded
            && self.state.models.scanned
        {
            self.state.comic.generate_when_ready = false;
            self.comic_start(RunKind::Story);
        }
        let comic = &mut self.state.comic;
        if self.state.section != Section::Comic
            || comic.page_drawing
            || comic.page_requested == comic.page_generation
        {
            return;
        }
        let Some(story) = comic.story.clone() else {
            return;
        };
        let images: Vec<_> = comic.panels.iter().map(|p| p.image.clone()).collect();
        let generation = comic.page_generation;
        comic.page_requested = generation;
        comic.page_drawing = true;
        self.services.tasks.spawn("comic-page", move || {
            TaskDone::Comic(Box::new(page_preview(&story, &images, generation)))
        });
    }

    /// A Comic section task finished.
    pub(super) fn comic_done(&mut self, done: ComicDone, ctx: &egui::Context) {
        let lang = self.state.lang();
        match done {
            ComicDone::Page { generation, result } => {
                let comic = &mut self.state.comic;
                comic.page_drawing = false;
                match result {
                    Ok(image) => {
                        let texture = ctx.load_texture(
                            format!("comic-page-{generation}"),
                            image,
                            TextureOptions::LINEAR,
                        );
                        comic.page = Some(texture);
                    }
                    Err(error) => comic.error = Some(error),
                }
            }
            ComicDone::Photo { name, path } => {
                if let Some(path) = path {
                    self.comic_photo(&name, Some(path));
                }
            }
            ComicDone::Exported(result) => {
                self.state.comic.exporting = false;
                match result {
                    Ok(None) => {}
                    Ok(Some(path)) => {
                        let text = tr_args(lang, "comic.exported", &[("path", &path.display())]);
                        self.state.notify(NoticeKind::Info, text);
                    }
                    Err(error) => {
                        let text = tr_args(lang, "comic.export_failed", &[("error", &error)]);
                        self.state.notify(NoticeKind::Error, text);
                    }
                }
            }
        }
    }
}
