//! `KilnApp`'s side of the Video section: dialogs, reading the still, finding SVD models and
//! exports run on task threads; a clip runs on the worker ([`crate::gui::services::video`]).

use super::KilnApp;
use crate::gui::services::tasks::TaskDone;
use crate::gui::services::video::{
    VideoJob, export_clip, find_svd_models, read_still, start_video, useful_mask,
};
use crate::gui::state::video::{ExportKind, SIZES, VideoAction};
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{tr, tr_args};
use kiln_inference::video::VideoParams;
use std::path::PathBuf;

/// What a Video task thread finished.
#[derive(Debug)]
pub enum VideoDone {
    /// A still was read (or not).
    Still {
        /// Its file.
        path: PathBuf,
        /// Its pixels, or why not.
        result: Result<image::RgbImage, String>,
    },
    /// The model dialog closed (`None`: cancelled).
    Model(Option<PathBuf>),
    /// SVD models found in the model folders.
    Found(Vec<PathBuf>),
    /// An export was written (`Ok(None)`: the dialog was cancelled).
    Exported(Result<Option<PathBuf>, String>),
    /// A dialog was cancelled.
    Cancelled,
}

impl KilnApp {
    /// Carries out a Video section request.
    pub(super) fn route_video(&mut self, action: VideoAction) {
        let lang = self.state.lang();
        match action {
            VideoAction::PickImage => {
                let title = tr(lang, "video.pick_image").to_owned();
                self.services.tasks.spawn("video-image", move || {
                    match rfd::FileDialog::new()
                        .set_title(title)
                        .add_filter("image", &["png", "jpg", "jpeg", "webp", "bmp"])
                        .pick_file()
                    {
                        Some(path) => TaskDone::Video(Box::new(VideoDone::Still {
                            result: read_still(&path),
                            path,
                        })),
                        None => TaskDone::Video(Box::new(VideoDone::Cancelled)),
                    }
                });
            }
            VideoAction::SetImage(path) => self.video_read_still(path),
            VideoAction::PickModel => {
                let title = tr(lang, "video.pick_model").to_owned();
                let start = self.state.settings.model_dirs.first().cloned();
                self.services.tasks.spawn("video-model", move || {
                    let mut dialog = rfd::FileDialog::new().set_title(title);
                    if let Some(dir) = start.filter(|d| d.is_dir()) {
                        dialog = dialog.set_directory(dir);
                    }
                    // A folder (diffusers layout); a single file is found by the scan.
                    TaskDone::Video(Box::new(VideoDone::Model(dialog.pick_folder())))
                });
            }
            VideoAction::SetModel(path) => self.state.video.model = Some(path),
            VideoAction::FindModels => {
                self.state.video.searched = true;
                let dirs = self.state.settings.model_dirs.clone();
                self.services.tasks.spawn("video-models", move || {
                    TaskDone::Video(Box::new(VideoDone::Found(find_svd_models(&dirs))))
                });
            }
            VideoAction::Generate => self.video_start(),
            VideoAction::Cancel => {
                if let Some(run) = &self.state.video.run {
                    run.cancel.cancel();
                    self.worker.cancel(run.job);
                }
            }
            VideoAction::Export(kind) => self.video_export(kind),
        }
    }

    fn video_read_still(&mut self, path: PathBuf) {
        self.services.tasks.spawn("video-still", move || {
            TaskDone::Video(Box::new(VideoDone::Still {
                result: read_still(&path),
                path,
            }))
        });
    }

    /// An image dropped while the Video section is open becomes the still.
    pub(super) fn video_drop(&mut self, path: &std::path::Path) -> bool {
        if self.state.section != Section::Video {
            return false;
        }
        self.video_read_still(path.to_path_buf());
        true
    }

    fn video_start(&mut self) {
        let lang = self.state.lang();
        let precision = self.switches_precision();
        let video = &mut self.state.video;
        let (Some(still), Some(model)) = (&video.still, &video.model) else {
            return;
        };
        if video.busy() {
            return;
        }
        if video.random_seed {
            video.seed = kiln_inference::recipe::random_seed() % 1_000_000_000;
        }
        let (width, height) = SIZES.get(video.size).copied().unwrap_or(SIZES[0]);
        let params = VideoParams {
            width,
            height,
            frames: Some(video.frames),
            steps: video.steps.max(1),
            seed: video.seed,
            fps: video.fps.max(1),
            motion_bucket_id: video.motion,
            noise_aug_strength: video.noise_aug,
            min_guidance: 1.0,
            max_guidance: 3.0,
            decode_chunk: None,
            motion_mask: useful_mask(video.motion_mask()),
            loop_clip: video.loop_clip,
        };
        let job = VideoJob {
            model: model.clone(),
            image_path: still.path.clone(),
            image: still.image.clone(),
            params,
            precision,
            ping_pong: video.ping_pong,
        };
        let label = tr(lang, "video.job_label").to_owned();
        video.error = None;
        video.run = Some(start_video(
            &self.worker,
            &self.services.video_models,
            job,
            label,
            self.services.wake.clone(),
        ));
    }

    /// The weight precision the Settings ask for.
    fn switches_precision(&self) -> kiln_inference::engine::Precision {
        use crate::library::settings::Precision;
        match self.state.settings.precision {
            Precision::Fp32 => kiln_inference::engine::Precision::F32,
            Precision::Bf16 => kiln_inference::engine::Precision::Bf16,
            Precision::Int8 => kiln_inference::engine::Precision::Int8,
        }
    }

    fn video_export(&mut self, kind: ExportKind) {
        let video = &mut self.state.video;
        let Some(clip) = video.clip.clone() else {
            return;
        };
        let ping_pong = video.ping_pong;
        video.exporting = true;
        let title = tr(self.state.lang(), "video.export_title").to_owned();
        let start = Some(self.state.settings.output_dir.clone());
        self.services.tasks.spawn("video-export", move || {
            let mut dialog = rfd::FileDialog::new().set_title(title);
            if let Some(dir) = start.filter(|d| d.is_dir()) {
                dialog = dialog.set_directory(dir);
            }
            let picked = match kind.extension() {
                Some(ext) => dialog
                    .set_file_name(format!("clip.{ext}"))
                    .add_filter(ext, &[ext])
                    .save_file(),
                // Frames go into a new folder named in the save dialog.
                None => dialog.set_file_name("clip-frames").save_file(),
            };
            let result = match picked {
                Some(path) => export_clip(&clip, &path, kind, ping_pong).map(Some),
                None => Ok(None),
            };
            TaskDone::Video(Box::new(VideoDone::Exported(result)))
        });
    }

    /// Applies the running clip's events.
    pub(super) fn drain_video(&mut self, ctx: &egui::Context) {
        if self.state.section == Section::Video
            && !self.state.video.searched
            && self.state.models.scanned
        {
            self.route_video(VideoAction::FindModels);
        }
        if self.state.video.generate_when_ready && self.state.video.ready() {
            self.state.video.generate_when_ready = false;
            self.video_start();
        }
        if let Some(error) = self.state.video.drain(ctx) {
            let text = tr_args(self.state.lang(), "video.failed", &[("error", &error)]);
            self.state.notify(NoticeKind::Error, text);
        }
    }

    pub(super) fn video_done(&mut self, done: VideoDone, _ctx: &egui::Context) {
        let lang = self.state.lang();
        match done {
            VideoDone::Still { path, result } => match result {
                Ok(image) => self.state.video.set_still(path, image),
                Err(e) => {
                    self.state.video.still_error = Some(e.clone());
                    let text = tr_args(lang, "video.unreadable", &[("error", &e)]);
                    self.state.notify(NoticeKind::Error, text);
                }
            },
            VideoDone::Model(Some(path)) => self.state.video.model = Some(path),
            VideoDone::Model(None) | VideoDone::Cancelled => {}
            VideoDone::Found(found) => {
                let video = &mut self.state.video;
                if video.model.is_none() {
                    video.model = found.first().cloned();
                }
                video.found = found;
                if video.found.is_empty() && video.model.is_none() {
                    self.offer_downloads(tr(lang, "nav.video"), vec!["svd-xt".into()]);
                }
            }
            VideoDone::Exported(result) => {
                self.state.video.exporting = false;
                match result {
                    Ok(Some(path)) => {
                        let text = tr_args(
                            lang,
                            "video.exported",
                            &[("path", &path.display().to_string())],
                        );
                        self.state.notify(NoticeKind::Info, text);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let text = tr_args(lang, "video.export_failed", &[("error", &e)]);
                        self.state.notify(NoticeKind::Error, text);
                    }
                }
            }
        }
    }
}
