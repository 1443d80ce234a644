//! `KilnApp`'s side of the Portrait section: face photos dropped or opened are read and their
//! faces found on task threads, InstantID's adapter is converted there, a Generate is turned
//! into a recipe there (presets resolve against the library) and queued as an ordinary job,
//! and that job's images come back to the section with their identity scores.

use super::KilnApp;
use crate::gui::action::PortraitAction;
use crate::gui::app::presets::preset_error_text;
use crate::gui::services::portrait::{
    PortraitDone, PortraitRequest, PrepareError, StyleSource, convert_adapter, detect_faces,
    instantid_status, load_pose, prepare,
};
use crate::gui::services::tasks::TaskDone;
use crate::gui::state::jobs::{Ended, ResultImage};
use crate::gui::state::portrait::{InstantIdStatus, PortraitResult, PortraitStyle, PosePhoto};
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{Lang, tr, tr_args};
use std::path::PathBuf;

/// The name offers of the face models are filed under (one banner, replaced when offered again).
const OFFER_NAME: &str = "Portrait";

impl KilnApp {
    /// Carries out a Portrait section request.
    pub(super) fn route_portrait(&mut self, action: PortraitAction, ctx: &egui::Context) {
        match action {
            PortraitAction::OpenPhoto => self.portrait_dialog(false),
            PortraitAction::OpenPose => self.portrait_dialog(true),
            PortraitAction::SetPhoto(path) => self.portrait_photo(path),
            PortraitAction::SetPose(path) => self.portrait_pose(path),
            PortraitAction::ClearPose => self.state.portrait.pose = None,
            PortraitAction::Recheck => self.portrait_check(),
            PortraitAction::Convert => {
                let InstantIdStatus::Unconverted(dir) = self.state.portrait.instantid.clone()
                else {
                    return;
                };
                self.state.portrait.converting = true;
                self.services.tasks.spawn("portrait-convert", move || {
                    portrait_task(convert_adapter(dir))
                });
            }
            PortraitAction::Generate => self.portrait_generate(),
            PortraitAction::ShowResult(index) => self.portrait_show(index, ctx),
            PortraitAction::Offer(id) => self.state.downloads.offer(OFFER_NAME, [id]),
        }
    }

    /// A file dropped while the Portrait section is open: on the pose zone it becomes the pose
    /// photo, elsewhere the face photo. Returns whether it was taken.
    pub(super) fn portrait_drop(
        &mut self,
        path: &std::path::Path,
        pos: Option<egui::Pos2>,
    ) -> bool {
        if self.state.section != Section::Portrait {
            return false;
        }
        let on_pose = pos
            .zip(self.state.portrait.pose_drop_target)
            .is_some_and(|(pos, rect)| rect.contains(pos));
        if on_pose {
            self.portrait_pose(path.to_path_buf());
        } else {
            self.portrait_photo(path.to_path_buf());
        }
        true
    }

    fn portrait_dialog(&mut self, pose: bool) {
        let lang = self.state.lang();
        let key = if pose {
            "portrait.pick_pose"
        } else {
            "portrait.pick_photo"
        };
        let title = tr(lang, key).to_owned();
        self.services.tasks.spawn("file-dialog", move || {
            let path = rfd::FileDialog::new()
                .set_title(title)
                .add_filter("image", &["png", "jpg", "jpeg", "webp", "bmp"])
                .pick_file();
            portrait_task(PortraitDone::Picked { pose, path })
        });
    }

    /// Reads a face photo and finds its faces in the background.
    fn portrait_photo(&mut self, path: PathBuf) {
        let request = self.state.portrait.begin_detection(path.clone());
        let dirs = self.state.settings.model_dirs.clone();
        self.services.tasks.spawn("portrait-faces", move || {
            let detected = detect_faces(request, path, &dirs);
            portrait_task(PortraitDone::Detected(detected, instantid_status(&dirs)))
        });
    }

    fn portrait_pose(&mut self, path: PathBuf) {
        self.state.portrait.pose = Some(PosePhoto {
            path: path.clone(),
            texture: None,
        });
        self.services
            .tasks
            .spawn("portrait-pose", move || portrait_task(load_pose(path)));
    }

    /// Looks at the InstantID files again.
    fn portrait_check(&mut self) {
        let dirs = self.state.settings.model_dirs.clone();
        self.services.tasks.spawn("portrait-check", move || {
            portrait_task(PortraitDone::Checked(instantid_status(&dirs)))
        });
    }

    /// A Portrait task finished.
    pub(super) fn portrait_done(&mut self, done: PortraitDone, ctx: &egui::Context) {
        let lang = self.state.lang();
        let portrait = &mut self.state.portrait;
        match done {
            PortraitDone::Detected(detected, instantid) => {
                portrait.instantid = instantid;
                portrait.detected(ctx, detected);
                if std::mem::take(&mut portrait.generate_when_found) {
                    self.portrait_generate();
                }
            }
            PortraitDone::Picked { path: None, .. } => {}
            PortraitDone::Picked {
                pose: false,
                path: Some(path),
            } => self.portrait_photo(path),
            PortraitDone::Picked {
                pose: true,
                path: Some(path),
            } => self.portrait_pose(path),
            PortraitDone::PoseLoaded(path, pixels) => {
                let Some(pose) = portrait.pose.as_mut().filter(|p| p.path == path) else {
                    return; // Cleared or replaced meanwhile.
                };
                match pixels {
                    Some(pixels) => {
                        let name = format!("portrait-pose-{}", path.display());
                        pose.texture =
                            Some(ctx.load_texture(name, pixels, egui::TextureOptions::LINEAR));
                    }
                    None => {
                        portrait.pose = None;
                        let text = tr_args(
                            lang,
                            "portrait.pose_unreadable",
                            &[("path", &path.display())],
                        );
                        self.state.notify(NoticeKind::Error, text);
                    }
                }
            }
            PortraitDone::Checked(status) => {
                portrait.instantid = status;
                portrait.checking = false;
            }
            PortraitDone::Converted(result) => {
                portrait.converting = false;
                match result {
                    Ok(dir) => {
                        portrait.instantid = InstantIdStatus::Ready(dir);
                        self.state
                            .notify(NoticeKind::Info, tr(lang, "portrait.converted"));
                    }
                    Err(error) => {
                        portrait.error = Some(tr_args(
                            lang,
                            "portrait.convert_failed",
                            &[("error", &error)],
                        ));
                    }
                }
            }
            PortraitDone::Prepared(result) => {
                portrait.preparing = false;
                match result {
                    Ok((recipe, warnings)) => {
                        let recipe = *recipe;
                        for warning in warnings {
                            self.state.notify(NoticeKind::Warning, warning);
                        }
                        self.state.jobs.last_seed = Some(recipe.seed);
                        let id = self.worker.submit(recipe);
                        self.state.portrait.job = Some(id);
                        self.state.jobs.queue = self.worker.queue();
                    }
                    Err(error) => self.portrait_refused(error, lang),
                }
            }
        }
    }

    fn portrait_refused(&mut self, error: PrepareError, lang: Lang) {
        let text = match error {
            PrepareError::Preset(name, error) => {
                if let crate::library::presets::PresetError::MissingModel {
                    catalog_id: Some(id),
                    ..
                } = &*error
                {
                    self.state.downloads.offer(&name, [id.clone()]);
                }
                preset_error_text(&error, &name, lang)
            }
            PrepareError::NotSdxl(family) => {
                tr_args(lang, "portrait.not_sdxl", &[("family", &family)])
            }
            PrepareError::InstantId(status) => {
                let key = match status {
                    InstantIdStatus::Unconverted(_) => "portrait.needs_convert",
                    _ => "portrait.instantid_missing",
                };
                self.state.portrait.instantid = status;
                tr(lang, key).to_owned()
            }
            PrepareError::Other(message) => message,
        };
        self.state.portrait.error = Some(text);
    }

    /// Turns the section's settings into a recipe in the background, then queues it.
    fn portrait_generate(&mut self) {
        let lang = self.state.lang();
        let portrait = &self.state.portrait;
        let Some(photo) = portrait.photo.as_ref().filter(|_| portrait.ready()) else {
            return;
        };
        let style = match &portrait.style {
            PortraitStyle::Prompt => match self.state.form.to_recipe() {
                Ok(recipe) => StyleSource::Form(Box::new(recipe)),
                Err(error) => {
                    let text = crate::gui::panels::generate::form_error_text(&error, lang);
                    self.state.portrait.error = Some(text);
                    return;
                }
            },
            PortraitStyle::Preset(id) => {
                let Some(entry) = self.state.presets.entry(id) else {
                    let text = tr_args(lang, "presets.not_found", &[("id", id)]);
                    self.state.portrait.error = Some(text);
                    return;
                };
                StyleSource::Preset {
                    preset: Box::new(entry.preset.clone()),
                    name: entry.name(self.state.settings.language).to_owned(),
                    fallback_model: self.state.form.model.clone(),
                    entries: self.state.models.entries.clone(),
                }
            }
        };
        let request = PortraitRequest {
            style,
            prompt: portrait.prompt.clone(),
            photo: photo.path.clone(),
            face_index: portrait.selected,
            pose: portrait.pose.as_ref().map(|p| p.path.clone()),
            identity: portrait.identity,
            keypoints: portrait.keypoints,
            face_fix: portrait.face_fix,
            images: portrait.images,
            seed: kiln_inference::recipe::random_seed(),
            analysis: portrait.analysis.clone(),
            model_dirs: self.state.settings.model_dirs.clone(),
        };
        self.state.portrait.error = None;
        self.state.portrait.preparing = true;
        self.services.tasks.spawn("portrait-prepare", move || {
            let result = prepare(request).map(|(recipe, warnings)| {
                let warnings = warnings.iter().map(ToString::to_string).collect();
                (Box::new(recipe), warnings)
            });
            portrait_task(PortraitDone::Prepared(result))
        });
    }

    /// Takes the portrait job's images when it ends (they are the jobs' latest results).
    pub(super) fn drain_portrait(&mut self) {
        let Some(job) = self.state.portrait.job else {
            return;
        };
        let Some(ended) = self.state.jobs.ended(job) else {
            return;
        };
        self.state.portrait.job = None;
        match ended {
            Ended::Done(_) | Ended::Cancelled => {
                self.state.portrait.results = self
                    .state
                    .jobs
                    .results
                    .iter()
                    .filter(|r| r.recipe.face.is_some())
                    .map(|r| PortraitResult {
                        path: r.path.clone(),
                        texture: r.texture.clone(),
                        recipe: r.recipe.clone(),
                    })
                    .collect();
            }
            Ended::Failed => {
                let message = self
                    .state
                    .jobs
                    .errors
                    .iter()
                    .find(|e| e.id == job)
                    .map(|e| e.message.clone());
                self.state.portrait.error = message;
            }
        }
    }

    /// Shows portrait result `index` in the Generate section's viewer.
    fn portrait_show(&mut self, index: usize, ctx: &egui::Context) {
        let portrait = &self.state.portrait;
        if index >= portrait.results.len() {
            return;
        }
        let jobs = &mut self.state.jobs;
        let same = jobs.results.len() == portrait.results.len()
            && jobs
                .results
                .iter()
                .zip(&portrait.results)
                .all(|(a, b)| a.path == b.path);
        if !same {
            // Another job finished since: show the portraits again.
            jobs.results = portrait
                .results
                .iter()
                .map(|r| ResultImage {
                    path: r.path.clone(),
                    recipe: r.recipe.clone(),
                    size: [r.texture.size()[0], r.texture.size()[1]],
                    texture: r.texture.clone(),
                    warnings: Vec::new(),
                })
                .collect();
        }
        jobs.selected = index;
        self.state.viewer.fit();
        self.state.section = Section::Generate;
        ctx.request_repaint();
    }
}

fn portrait_task(done: PortraitDone) -> TaskDone {
    TaskDone::Portrait(Box::new(done))
}
