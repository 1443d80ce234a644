//! `KilnApp`: the eframe app. Thin on purpose: it holds the UI state, the worker handle and
//! the background services, drains their events in `logic`, draws the panels in `ui` and routes
//! the [`Action`]s they push.

use crate::gui::action::{Action, BatchAction};
use crate::gui::form::DEFAULT_LORA_WEIGHT;
use crate::gui::panels;
use crate::gui::services::clipboard::ClipboardService;
use crate::gui::services::gallery::{GalleryAnswer, GalleryRequest, GalleryService};
use crate::gui::services::job_runner::{CaptionJobs, JobReport, JobRunner};
use crate::gui::services::saver::{SharedOutputDir, make_saver};
use crate::gui::services::tasks::{DroppedImage, PickPurpose, TaskDone, Tasks};
use crate::gui::services::thumbnails::ThumbnailLoader;
use crate::gui::services::tokens::{PromptField, TokenCounter};
use crate::gui::services::{EngineRunner, RunnerSwitches};
use crate::gui::state::gallery::{ExportStatus, PAGE_SIZE, Thumb};
use crate::gui::state::{AppState, NoticeKind, Section, language_of};
use crate::gui::theme;
use crate::i18n::{self, Lang, tr, tr_args};
use crate::library::models::{
    HashJobs, ModelEntry, ModelFileKind, find_external_installs, scan_folder,
};
use crate::library::settings::{SETTINGS_FILE, Settings};
use crate::worker::{Runner, WorkerHandle};
use anyhow::Context;
use kiln_inference::Recipe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod batch;
mod canvas;
mod comic;
mod downloads;
mod portrait;
mod presets;
pub(crate) mod video;

pub use canvas::{CanvasPurpose, CanvasTarget, RegionsWritten, write_content_named_png};

/// Where the app keeps its files.
#[derive(Clone, Debug)]
pub struct AppPaths {
    /// Settings folder.
    pub config_dir: PathBuf,
    /// Data folder: gallery index, thumbnails, hash cache, models.
    pub data_dir: PathBuf,
}

impl AppPaths {
    /// The user's folders (`KILN_CONFIG_DIR` / `KILN_DATA_DIR` override them).
    pub fn from_env() -> Self {
        AppPaths {
            config_dir: crate::library::settings::config_dir(),
            data_dir: crate::library::settings::data_dir(),
        }
    }

    /// The settings file.
    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join(SETTINGS_FILE)
    }

    /// The gallery index.
    pub fn gallery_db(&self) -> PathBuf {
        self.data_dir.join("gallery.sqlite")
    }

    /// The thumbnail cache folder.
    pub fn thumbnail_cache(&self) -> PathBuf {
        self.data_dir.join("thumbnails")
    }

    /// The model-hash cache file.
    pub fn hash_cache(&self) -> PathBuf {
        // The name `library::models::HashJobs::spawn` uses.
        self.data_dir.join("model-hashes.json")
    }
}

/// Background services the app talks to.
struct Services {
    tasks: Tasks,
    tokens: Option<TokenCounter>,
    gallery: GalleryService,
    thumbnails: ThumbnailLoader,
    hashes: HashJobs,
    clipboard: Option<ClipboardService>,
    job_reports: crossbeam_channel::Receiver<JobReport>,
    caption_jobs: CaptionJobs,
    downloads: crate::gui::services::downloads::DownloadService,
    /// The loaded SVD model, kept between clips.
    video_models: crate::gui::services::video::VideoModels,
    /// Repaints the window (for services started later, such as a batch).
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// The desktop app.
pub struct KilnApp {
    /// Everything the panels show.
    pub state: AppState,
    worker: WorkerHandle,
    services: Services,
    paths: AppPaths,
    output_dir: SharedOutputDir,
    switches: RunnerSwitches,
    /// Whether settings are written on change (off for screenshots).
    persist: bool,
    models_generation: u64,
    first_frame_logged: bool,
}

impl KilnApp {
    /// The app with the real inference engine.
    pub fn new(ctx: &egui::Context, paths: AppPaths, settings: Settings) -> anyhow::Result<Self> {
        let switches = RunnerSwitches::from_settings(&settings);
        let runner = EngineRunner::new(switches.clone(), settings.model_dirs.clone());
        KilnApp::with_runner_and_switches(ctx, paths, settings, runner, switches)
    }

    /// The app with any runner (tests pass a fake one).
    pub fn with_runner(
        ctx: &egui::Context,
        paths: AppPaths,
        settings: Settings,
        runner: impl Runner,
    ) -> anyhow::Result<Self> {
        let switches = RunnerSwitches::from_settings(&settings);
        KilnApp::with_runner_and_switches(ctx, paths, settings, runner, switches)
    }

    fn with_runner_and_switches(
        ctx: &egui::Context,
        paths: AppPaths,
        settings: Settings,
        runner: impl Runner,
        switches: RunnerSwitches,
    ) -> anyhow::Result<Self> {
        i18n::install_fonts(ctx);
        theme::install(ctx);
        theme::set_theme(ctx, settings.theme);
        let wake: Arc<dyn Fn() + Send + Sync> = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint())
        };
        let output_dir: SharedOutputDir =
            Arc::new(std::sync::Mutex::new(settings.output_dir.clone()));
        let saver = make_saver(output_dir.clone(), paths.gallery_db());
        let worker_wake = wake.clone();
        let caption_jobs = CaptionJobs::default();
        let (runner, job_reports) = JobRunner::new(runner, caption_jobs.clone(), wake.clone());
        let worker = crate::worker::spawn(runner, saver, move || worker_wake())
            .context("cannot start the worker thread")?;
        // A first start with outputs already on disk (from the CLI, or a lost index) lists them.
        let fresh_index = !paths.gallery_db().exists() && settings.output_dir.is_dir();
        let tasks = Tasks::new(wake.clone());
        let clipboard = ClipboardService::spawn(tasks.sender(), wake.clone()).ok();
        let hash_wake = wake.clone();
        let services = Services {
            tokens: TokenCounter::spawn(wake.clone()).ok(),
            gallery: GalleryService::spawn(&paths.gallery_db(), wake.clone())
                .context("cannot start the gallery thread")?,
            thumbnails: ThumbnailLoader::spawn(
                paths.thumbnail_cache(),
                theme::THUMB_PIXELS,
                wake.clone(),
            )
            .context("cannot start the thumbnail thread")?,
            hashes: HashJobs::spawn_with_cache(Some(paths.hash_cache()), move || hash_wake()),
            clipboard,
            tasks,
            job_reports,
            caption_jobs,
            downloads: crate::gui::services::downloads::DownloadService::new(wake.clone()),
            video_models: Default::default(),
            wake,
        };
        let mut app = KilnApp {
            state: AppState::new(settings),
            worker,
            services,
            paths,
            output_dir,
            switches,
            persist: true,
            models_generation: 0,
            first_frame_logged: false,
        };
        app.rescan_models();
        app.reload_presets();
        app.init_downloads();
        app.check_form_files();
        if fresh_index {
            app.route(Action::RebuildIndex, ctx);
        }
        Ok(app)
    }

    /// Stops writing settings (screenshots, tests that must not touch files).
    pub fn set_persist(&mut self, persist: bool) {
        self.persist = persist;
    }

    /// The worker (tests inspect the queue).
    pub fn worker(&self) -> &WorkerHandle {
        &self.worker
    }

    /// Where the app keeps its files.
    pub fn paths(&self) -> &AppPaths {
        &self.paths
    }

    /// One whole frame: `logic` then `ui` (what eframe does; kittest tests call this).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.logic_step(&ctx);
        self.ui_step(ui);
    }

    /// Drains events and answers, uploads textures, reads dropped files.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        self.state.frame += 1;
        self.drain_worker(ctx);
        self.drain_tasks(ctx);
        self.update_token_counts();
        self.drain_gallery();
        self.drain_thumbnails(ctx);
        self.drain_hashes();
        self.drain_downloads(ctx);
        self.read_dropped_files(ctx);
        self.sync_canvas_guides();
    }

    /// Draws the panels and routes their actions.
    pub fn ui_step(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        panels::app_ui(
            ui,
            &mut self.state,
            self.services.tasks.running() > 0,
            &mut actions,
        );
        let ctx = ui.ctx().clone();
        for action in actions {
            self.route(action, &ctx);
        }
        if !self.first_frame_logged {
            self.first_frame_logged = true;
            crate::gui::timing::first_frame_drawn();
        }
    }

    fn drain_worker(&mut self, ctx: &egui::Context) {
        let events: Vec<_> = self.worker.try_events().collect();
        for event in events {
            let saved = self.state.jobs.apply(event, ctx);
            if !saved.is_empty() {
                self.state.viewer.fit();
                self.state.gallery.invalidate();
                self.outpaint_results_to_canvas();
            }
        }
        let reports: Vec<JobReport> = self.services.job_reports.try_iter().collect();
        for report in reports {
            self.state.jobs.add_report(report);
        }
        self.state.jobs.queue = self.worker.queue();
        self.drain_batch(ctx);
        self.drain_comic(ctx);
        self.drain_portrait();
        self.drain_video(ctx);
        if self.state.jobs.running().is_some() {
            // Elapsed time keeps moving between progress events.
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
    }

    fn drain_tasks(&mut self, ctx: &egui::Context) {
        let done: Vec<TaskDone> = self.services.tasks.try_done().collect();
        for task in done {
            self.task_done(task, ctx);
        }
    }

    fn task_done(&mut self, task: TaskDone, ctx: &egui::Context) {
        let lang = self.state.lang();
        match task {
            TaskDone::Picked(_, None) => {}
            TaskDone::Picked(PickPurpose::Model | PickPurpose::ModelFolder, Some(path)) => {
                self.select_model(path);
            }
            TaskDone::Picked(PickPurpose::InitImage, Some(path)) => {
                self.state.form.set_init(path);
            }
            TaskDone::Picked(
                PickPurpose::ControlNetFile(row) | PickPurpose::ControlNetFolder(row),
                Some(path),
            ) => {
                let library = self.state.form.controlnet_library.clone();
                if let Some(control) = self.state.form.control_mut(row) {
                    control.set_model(path, &library);
                }
            }
            TaskDone::Picked(PickPurpose::ControlImage(row), Some(path)) => {
                if let Some(control) = self.state.form.control_mut(row) {
                    control.set_image(path);
                }
            }
            TaskDone::Picked(PickPurpose::Mask, Some(path)) => self.state.form.mask.set(path),
            TaskDone::Picked(PickPurpose::BatchInput, Some(path)) => {
                self.state.batch.set_inputs(&[path]);
            }
            TaskDone::Picked(PickPurpose::BatchOutput, Some(path)) => {
                self.state.batch.output = Some(path);
            }
            TaskDone::Picked(PickPurpose::CanvasImport(layer), Some(path)) => {
                self.load_into_canvas(path, CanvasTarget::Layer(layer));
            }
            TaskDone::Portrait(done) => self.portrait_done(*done, ctx),
            TaskDone::Comic(done) => self.comic_done(*done, ctx),
            TaskDone::Video(done) => self.video_done(*done, ctx),
            TaskDone::GpuProbed(result) => {
                self.state.gpu_probing = false;
                self.state.gpu_adapter = Some(result);
            }
            TaskDone::FilesChecked(missing) => self.state.form.mark_missing(&missing),
            TaskDone::CanvasWritten { purpose, result } => self.canvas_written(purpose, result),
            TaskDone::CanvasRegionsWritten(result) => self.canvas_regions_written(result),
            TaskDone::CanvasImageLoaded {
                target,
                size,
                result,
            } => self.canvas_image_loaded(target, size, result),
            TaskDone::GuideLoaded {
                layer,
                source,
                result,
            } => self.guide_loaded(layer, source, result),
            TaskDone::Picked(PickPurpose::OutputDir, Some(path)) => {
                self.state.settings.output_dir = path.clone();
                *self.output_dir.lock().unwrap_or_else(|p| p.into_inner()) = path;
                self.state.gallery.invalidate();
                self.save_settings();
            }
            TaskDone::Picked(PickPurpose::ModelDir, Some(path)) => {
                self.route(Action::AddModelDir(path), ctx);
            }
            TaskDone::Picked(PickPurpose::Lora, Some(path)) => {
                let row = self.state.form.lora_row(&path, DEFAULT_LORA_WEIGHT);
                if self.state.form.add_lora(row) {
                    self.inspect_lora_rows();
                }
            }
            TaskDone::LorasInspected(found) => self.loras_inspected(found, lang),
            TaskDone::Picked(
                purpose @ (PickPurpose::PresetPhoto
                | PickPurpose::PresetImport
                | PickPurpose::PresetExportDir),
                Some(path),
            ) => self.preset_picked(purpose, path),
            TaskDone::PresetsListed(listing) => self.presets_listed(*listing, ctx),
            TaskDone::PresetResolved(resolution) => self.preset_resolved(*resolution, ctx),
            TaskDone::PresetWritten(written) => self.preset_written(*written),
            TaskDone::PresetDeleted(result) => self.preset_deleted(result),
            TaskDone::ModelInspected { path, family } => {
                if self.state.form.model.as_deref() != Some(path.as_path()) {
                    return; // The user picked another model meanwhile.
                }
                match family {
                    Ok(family) => {
                        let hash = self.state.form.model_hash.clone();
                        self.state.form.set_model(path, Some(family), hash);
                    }
                    Err(message) => self.state.notify(
                        NoticeKind::Error,
                        tr_args(lang, "notice.model_unreadable", &[("error", &message)]),
                    ),
                }
            }
            TaskDone::Dropped(DroppedImage::Recipe(recipe)) => {
                self.state.form.apply_recipe(&recipe);
                self.inspect_lora_rows();
                self.check_form_files();
                self.state.section = Section::Generate;
                self.state
                    .notify(NoticeKind::Info, tr(lang, "notice.settings_restored"));
            }
            TaskDone::Dropped(DroppedImage::Image(path)) => {
                self.state.form.set_init(path);
                self.state.section = Section::Generate;
                self.state
                    .notify(NoticeKind::Info, tr(lang, "notice.init_set"));
            }
            TaskDone::Dropped(DroppedImage::Unreadable(message)) => self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "notice.drop_unreadable", &[("error", &message)]),
            ),
            TaskDone::SavedAs(Ok(None)) | TaskDone::Opened(Ok(())) => {}
            TaskDone::SavedAs(Ok(Some(path))) => self.state.notify(
                NoticeKind::Info,
                tr_args(lang, "notice.saved_as", &[("path", &path.display())]),
            ),
            TaskDone::SavedAs(Err(message))
            | TaskDone::Opened(Err(message))
            | TaskDone::Failed(message) => {
                self.state.notify(NoticeKind::Error, message);
            }
            TaskDone::Copied(Ok(())) => self
                .state
                .notify(NoticeKind::Info, tr(lang, "notice.copied")),
            TaskDone::Copied(Err(message)) => self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "notice.copy_failed", &[("error", &message)]),
            ),
            TaskDone::SettingsSaved(Ok(())) => {}
            TaskDone::SettingsSaved(Err(message)) => self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "notice.settings_not_saved", &[("error", &message)]),
            ),
            TaskDone::ComparisonExported(result) => {
                self.state.gallery.export = Some(export_status(result));
            }
            TaskDone::ModelsScanned {
                generation,
                entries,
                externals,
            } => {
                if generation != self.models_generation {
                    return;
                }
                let models = &mut self.state.models;
                let first_scan = !models.scanned;
                models.entries = entries;
                models.externals = externals;
                models.scanning = false;
                models.scanned = true;
                // A first start with no model anywhere: the model manager, with its
                // recommended download, is the place to begin.
                let no_checkpoint = !models.entries.iter().any(|e| {
                    matches!(
                        e.kind,
                        ModelFileKind::Checkpoint | ModelFileKind::DiffusersFolder
                    )
                });
                if first_scan
                    && no_checkpoint
                    && self.state.form.model.is_none()
                    && self.state.section == Section::Generate
                {
                    self.state.section = Section::Models;
                }
                self.state.form.set_lora_library(&self.state.models.entries);
                self.state
                    .form
                    .set_controlnet_library(&self.state.models.entries);
                self.pick_default_model();
                self.inspect_lora_rows();
            }
        }
    }

    /// Picks the first usable checkpoint when the form has no model yet, and fills in the
    /// family of a model restored from the last session.
    fn pick_default_model(&mut self) {
        let form = &mut self.state.form;
        match &form.model {
            None => {
                if let Some(entry) = self.state.models.checkpoints().next() {
                    form.set_model(entry.path.clone(), entry.family, entry.hash.clone());
                }
            }
            Some(path) if form.family.is_none() => {
                if let Some(entry) = self.state.models.entry(path) {
                    form.family = entry.family;
                }
            }
            Some(_) => {}
        }
    }

    fn update_token_counts(&mut self) {
        let Some(counter) = &self.services.tokens else {
            return;
        };
        for answer in counter.try_answers() {
            let tokens = &mut self.state.tokens;
            let (current, slot) = match answer.field {
                PromptField::Prompt => (&self.state.form.prompt, &mut tokens.prompt),
                PromptField::Negative => (&self.state.form.negative, &mut tokens.negative),
            };
            if *current == answer.text {
                *slot = Some((answer.tokens, answer.limit));
            }
        }
        let tokens = &mut self.state.tokens;
        let form = &self.state.form;
        if tokens.sent_prompt.as_deref() != Some(form.prompt.as_str())
            && counter.request(PromptField::Prompt, &form.prompt)
        {
            tokens.sent_prompt = Some(form.prompt.clone());
        }
        if tokens.sent_negative.as_deref() != Some(form.negative.as_str())
            && counter.request(PromptField::Negative, &form.negative)
        {
            tokens.sent_negative = Some(form.negative.clone());
        }
    }

    fn drain_gallery(&mut self) {
        let answers: Vec<GalleryAnswer> = self.services.gallery.try_answers().collect();
        let gallery = &mut self.state.gallery;
        let mut rebuilt = false;
        for answer in answers {
            match answer {
                GalleryAnswer::Count { generation, count } => gallery.set_count(generation, count),
                GalleryAnswer::Page {
                    generation,
                    page,
                    entries,
                } => gallery.set_page(generation, page, entries),
                GalleryAnswer::Models(models) => gallery.models = models,
                GalleryAnswer::RebuildProgress { done, total } => {
                    if gallery.rebuild.is_some() {
                        gallery.rebuild = Some((done, total));
                    }
                }
                GalleryAnswer::RebuildDone(result) => {
                    gallery.rebuild = None;
                    gallery.rebuild_result = Some(result);
                    rebuilt = true;
                }
                GalleryAnswer::RecordExported(result) => {
                    gallery.export = Some(export_status(result));
                }
                GalleryAnswer::Failed(message) => gallery.error = Some(message),
            }
        }
        if rebuilt {
            gallery.thumbnails.clear();
            gallery.last_wanted.clear();
            gallery.invalidate();
        }
        if gallery.stale {
            let query = gallery.query(unix_now());
            let generation = gallery.generation;
            let counted = self
                .services
                .gallery
                .request(GalleryRequest::Count { generation, query });
            if counted && self.services.gallery.request(GalleryRequest::Models) {
                gallery.stale = false;
            }
        }
    }

    fn drain_thumbnails(&mut self, ctx: &egui::Context) {
        let frame = self.state.frame;
        let thumbnails = &mut self.state.gallery.thumbnails;
        for loaded in self.services.thumbnails.try_loaded() {
            let thumb = match loaded.image {
                Ok(image) => {
                    let size = [image.width() as usize, image.height() as usize];
                    let pixels = egui::ColorImage::from_rgba_unmultiplied(size, image.as_raw());
                    Thumb::Loaded {
                        texture: ctx.load_texture(
                            format!("thumb-{}", loaded.id),
                            pixels,
                            egui::TextureOptions::LINEAR,
                        ),
                        last_used: frame,
                    }
                }
                Err(_) => Thumb::Failed,
            };
            thumbnails.insert(loaded.id, thumb);
        }
        self.state.gallery.trim_thumbnails();
    }

    fn drain_hashes(&mut self) {
        for (path, result) in self.services.hashes.try_results() {
            if let (Some(model), Ok(hash)) = (&self.state.form.model, &result)
                && *model == path
            {
                self.state.form.model_hash = Some(hash.clone());
            }
            self.state.models.hashes.insert(path, result);
        }
    }

    fn read_dropped_files(&mut self, ctx: &egui::Context) {
        let (hovering, dropped, pointer) = ctx.input(|i| {
            (
                !i.raw.hovered_files.is_empty(),
                i.raw.dropped_files.clone(),
                i.pointer.latest_pos(),
            )
        });
        self.state.files_hovering = hovering;
        let paths: Vec<PathBuf> = dropped
            .iter()
            .map(|file| file.path().to_path_buf())
            .filter(|path| !path.as_os_str().is_empty())
            .collect();
        self.open_paths(paths, pointer, ctx);
    }

    /// Files dropped on the window at `pointer`, or given on the command line (`kiln FILE…`,
    /// the desktop entry's "Open with"): a folder, several files, or anything dropped on the
    /// Batch section is a batch; one image restores its recipe or becomes the init image (or
    /// goes to the preset card or canvas layer under the pointer).
    pub fn open_paths(
        &mut self,
        paths: Vec<PathBuf>,
        pointer: Option<egui::Pos2>,
        ctx: &egui::Context,
    ) {
        if !paths.is_empty()
            && (paths.len() > 1 || paths[0].is_dir() || self.state.section == Section::Batch)
        {
            let preset = pointer
                .filter(|_| self.state.section == Section::Presets)
                .and_then(|pos| self.state.presets.card_at(pos).map(str::to_owned));
            self.route_batch(BatchAction::Dropped { paths, preset }, ctx);
            return;
        }
        if let Some(path) = paths.into_iter().next()
            && !self.preset_drop(&path, pointer)
            && !self.comic_drop(&path, pointer)
            && !self.portrait_drop(&path, pointer)
            && !self.video_drop(&path)
            && !self.canvas_drop(&path, pointer)
        {
            self.services
                .tasks
                .spawn("drop", move || TaskDone::Dropped(read_dropped(&path)));
        }
    }

    /// Carries out one action.
    pub fn route(&mut self, action: Action, ctx: &egui::Context) {
        let lang = self.state.lang();
        match action {
            Action::ShowSection(section) => self.state.section = section,
            Action::Submit(recipe) => {
                self.state.jobs.last_seed = Some(recipe.seed);
                self.state.settings.last_recipe = Some((*recipe).clone());
                self.worker.submit(*recipe);
                self.save_settings();
            }
            Action::Cancel(id) | Action::RemoveQueued(id) => {
                self.worker.cancel(id);
                self.state.jobs.queue = self.worker.queue();
            }
            Action::UseAsInit(path) => {
                self.state.form.set_init(path);
                self.state.section = Section::Generate;
            }
            Action::ReuseSettings(recipe) => {
                self.state.form.apply_recipe(&recipe);
                self.inspect_lora_rows();
                self.check_form_files();
                self.state.section = Section::Generate;
            }
            Action::SaveAs(path) => self.save_as(path),
            Action::CopyImage(path) => {
                let queued = self
                    .services
                    .clipboard
                    .as_ref()
                    .is_some_and(|clipboard| clipboard.copy(path));
                if !queued {
                    self.state
                        .notify(NoticeKind::Error, tr(lang, "notice.clipboard_busy"));
                }
            }
            Action::OpenFolder(path) => {
                let folder = path.parent().map(Path::to_path_buf).unwrap_or(path);
                self.open_dir(folder, false);
            }
            Action::OpenDir(dir) => self.open_dir(dir, true),
            Action::SetLanguage(lang) => {
                self.state.settings.language = language_of(lang);
                self.save_settings();
            }
            Action::SetTheme(theme) => {
                self.state.settings.theme = theme;
                theme::set_theme(ctx, theme);
                self.save_settings();
            }
            Action::SettingsChanged => {
                self.switches.update(&self.state.settings);
                self.save_settings();
            }
            Action::Pick(purpose) => self.pick(purpose, lang),
            Action::AddModelDir(dir) => {
                if !self.state.settings.model_dirs.contains(&dir) {
                    self.state.settings.model_dirs.push(dir);
                    self.save_settings();
                }
                self.rescan_models();
            }
            Action::RemoveModelDir(dir) => {
                self.state.settings.model_dirs.retain(|d| *d != dir);
                self.save_settings();
                self.rescan_models();
            }
            Action::RescanModels => self.rescan_models(),
            Action::HashModel(path) => {
                if self.state.models.hash_requested.insert(path.clone()) {
                    self.services.hashes.request(path);
                }
            }
            Action::GalleryPages(pages) => self.request_pages(pages),
            Action::WantThumbnails(wanted) => self.services.thumbnails.set_wanted(wanted),
            Action::RebuildIndex => {
                let dir = self.state.settings.output_dir.clone();
                if self.state.gallery.rebuild.is_none()
                    && self
                        .services
                        .gallery
                        .request(GalleryRequest::Rebuild { dir })
                {
                    self.state.gallery.rebuild = Some((0, 0));
                    self.state.gallery.rebuild_result = None;
                }
            }
            Action::ExportRecord(id) => {
                let out_dir = self.records_dir();
                let request = GalleryRequest::ExportRecord { id, out_dir };
                self.state.gallery.export = Some(if self.services.gallery.request(request) {
                    ExportStatus::Running
                } else {
                    ExportStatus::Failed(tr(lang, "record.busy").to_owned())
                });
            }
            Action::ExportComparison(pair) => {
                let out_dir = self.records_dir();
                self.state.gallery.export = Some(ExportStatus::Running);
                self.services.tasks.spawn("export-comparison", move || {
                    let (a, b) = *pair;
                    TaskDone::ComparisonExported(
                        crate::library::record::export_comparison(&a, &b, &out_dir)
                            .map_err(|e| format!("{e:#}")),
                    )
                });
            }
            Action::DismissJobError(id) => self.state.jobs.errors.retain(|e| e.id != id),
            Action::DismissNotice(id) => self.state.notices.retain(|n| n.id != id),
            Action::Preset(action) => self.route_preset(action),
            Action::Canvas(action) => self.route_canvas(action),
            Action::Download(action) => self.route_download(action),
            Action::Batch(action) => self.route_batch(action, ctx),
            Action::Comic(action) => self.route_comic(action),
            Action::Video(action) => self.route_video(action),
            Action::ProbeGpu => {
                self.services.tasks.spawn("gpu-probe", || {
                    TaskDone::GpuProbed(
                        kiln_inference::gpu::Gpu::new()
                            .map(|g| {
                                let kind = if g.is_software() { " — software" } else { "" };
                                format!("{}{kind}", g.adapter_name())
                            })
                            .map_err(|e| e.to_string()),
                    )
                });
            }
            Action::Portrait(action) => self.route_portrait(action, ctx),
        }
    }

    /// Where creation records and comparisons are exported: `records/` in the output folder.
    fn records_dir(&self) -> PathBuf {
        self.state.settings.output_dir.join("records")
    }

    /// Opens `folder` in the file manager, creating it first when asked.
    fn open_dir(&mut self, folder: PathBuf, create: bool) {
        self.services.tasks.spawn("open-folder", move || {
            if create && let Err(e) = std::fs::create_dir_all(&folder) {
                return TaskDone::Opened(Err(format!("{e} ({})", folder.display())));
            }
            TaskDone::Opened(
                open::that_detached(&folder).map_err(|e| format!("{e} ({})", folder.display())),
            )
        });
    }

    fn request_pages(&mut self, pages: Vec<usize>) {
        let gallery = &mut self.state.gallery;
        let now = unix_now();
        for page in pages {
            if gallery.requested.contains(&page) {
                continue;
            }
            let mut query = gallery.query(now);
            query.offset = page * PAGE_SIZE;
            query.limit = PAGE_SIZE;
            let request = GalleryRequest::Page {
                generation: gallery.generation,
                page,
                query,
            };
            if self.services.gallery.request(request) {
                gallery.requested.insert(page);
            }
        }
    }

    fn select_model(&mut self, path: PathBuf) {
        if let Some(entry) = self.state.models.entry(&path) {
            let (family, hash) = (entry.family, entry.hash.clone());
            self.state.form.set_model(path, family, hash);
            return;
        }
        self.state.form.set_model(path.clone(), None, None);
        self.services.tasks.spawn("inspect-model", move || {
            let family = kiln_inference::io::model::ModelFiles::open(&path)
                .map(|files| files.kind.family)
                .map_err(|e| format!("{e:#}"));
            TaskDone::ModelInspected { path, family }
        });
    }

    fn pick(&mut self, purpose: PickPurpose, lang: Lang) {
        let title = tr(lang, pick_title_key(purpose)).to_owned();
        let start = match purpose {
            PickPurpose::OutputDir => Some(self.state.settings.output_dir.clone()),
            PickPurpose::Model
            | PickPurpose::ModelFolder
            | PickPurpose::ModelDir
            | PickPurpose::Lora
            | PickPurpose::ControlNetFile(_)
            | PickPurpose::ControlNetFolder(_) => self.state.settings.model_dirs.first().cloned(),
            PickPurpose::InitImage
            | PickPurpose::PresetPhoto
            | PickPurpose::PresetImport
            | PickPurpose::PresetExportDir
            | PickPurpose::ControlImage(_)
            | PickPurpose::Mask
            | PickPurpose::CanvasImport(_) => None,
            PickPurpose::BatchInput | PickPurpose::BatchOutput => self.state.batch.input.clone(),
        };
        self.services.tasks.spawn("file-dialog", move || {
            let mut dialog = rfd::FileDialog::new().set_title(title);
            if let Some(start) = start.filter(|s| s.is_dir()) {
                dialog = dialog.set_directory(start);
            }
            let picked = match purpose {
                PickPurpose::Model => dialog
                    .add_filter("safetensors", &["safetensors", "sft"])
                    .pick_file(),
                PickPurpose::Lora | PickPurpose::ControlNetFile(_) => dialog
                    .add_filter("safetensors", &["safetensors"])
                    .pick_file(),
                PickPurpose::InitImage
                | PickPurpose::PresetPhoto
                | PickPurpose::ControlImage(_)
                | PickPurpose::Mask
                | PickPurpose::CanvasImport(_) => dialog
                    .add_filter("image", &["png", "jpg", "jpeg", "webp", "bmp"])
                    .pick_file(),
                PickPurpose::PresetImport => dialog.add_filter("TOML", &["toml"]).pick_file(),
                PickPurpose::ModelFolder
                | PickPurpose::ControlNetFolder(_)
                | PickPurpose::OutputDir
                | PickPurpose::ModelDir
                | PickPurpose::PresetExportDir
                | PickPurpose::BatchInput
                | PickPurpose::BatchOutput => dialog.pick_folder(),
            };
            TaskDone::Picked(purpose, picked)
        });
    }

    fn save_as(&mut self, source: PathBuf) {
        let title = tr(self.state.lang(), "dialog.save_as").to_owned();
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kiln.png".into());
        self.services.tasks.spawn("save-as", move || {
            let Some(target) = rfd::FileDialog::new()
                .set_title(title)
                .set_file_name(name)
                .add_filter("PNG", &["png"])
                .save_file()
            else {
                return TaskDone::SavedAs(Ok(None));
            };
            let result = std::fs::copy(&source, &target)
                .map(|_| Some(target.clone()))
                .map_err(|e| format!("{e} ({})", target.display()));
            TaskDone::SavedAs(result)
        });
    }

    /// Looks on disk (off the UI thread) for the LoRA rows the library does not list: a row
    /// restored from an image made elsewhere may name a file that is not here, and a browsed
    /// file's family is read from its header.
    fn inspect_lora_rows(&mut self) {
        let paths = self.state.form.unchecked_lora_paths();
        if paths.is_empty() {
            return;
        }
        self.services.tasks.spawn("inspect-loras", move || {
            let found = paths
                .into_iter()
                .map(|path| {
                    let entry = path
                        .is_file()
                        .then(|| path.parent().map(scan_folder))
                        .flatten()
                        .and_then(|entries| entries.into_iter().find(|e| e.path == path));
                    (path, entry)
                })
                .collect();
            TaskDone::LorasInspected(found)
        });
    }

    /// Marks rows whose file is missing, fills in families, and drops (with a message) rows
    /// whose file turned out not to be a LoRA.
    fn loras_inspected(&mut self, found: Vec<(PathBuf, Option<ModelEntry>)>, lang: Lang) {
        for (path, entry) in found {
            let rows = &mut self.state.form.loras;
            let Some(index) = rows.iter().position(|r| r.path == path) else {
                continue; // Removed meanwhile.
            };
            match entry {
                None => {
                    if let Some(row) = rows.get_mut(index) {
                        row.missing = true;
                    }
                }
                Some(entry) if entry.kind != ModelFileKind::Lora || !entry.usable() => {
                    rows.remove(index);
                    let reason = entry.problem.unwrap_or_else(|| {
                        tr(lang, panels::models::kind_key(entry.kind)).to_owned()
                    });
                    self.state.notify(
                        NoticeKind::Error,
                        tr_args(
                            lang,
                            "notice.not_a_lora",
                            &[("path", &path.display()), ("reason", &reason)],
                        ),
                    );
                }
                Some(entry) => {
                    if let Some(row) = rows.get_mut(index) {
                        row.family = entry.family;
                        row.missing = false;
                    }
                }
            }
        }
    }

    fn rescan_models(&mut self) {
        self.models_generation += 1;
        let generation = self.models_generation;
        let dirs = self.state.settings.model_dirs.clone();
        self.state.models.scanning = true;
        self.services.tasks.spawn("scan-models", move || {
            let entries = dirs.iter().flat_map(|dir| scan_folder(dir)).collect();
            let externals = find_external_installs()
                .into_iter()
                .filter(|layout| !layout.all_dirs().all(|dir| dirs.contains(dir)))
                .collect();
            TaskDone::ModelsScanned {
                generation,
                entries,
                externals,
            }
        });
    }

    /// Stores the form as `last_recipe` when it changed, writing the settings at once (a small
    /// file; this runs at shutdown, when no background thread may finish any more).
    pub fn remember_form(&mut self) {
        let form = &self.state.form;
        let Ok(recipe) = form.to_recipe_with(|| form.seed) else {
            return;
        };
        if self.state.settings.last_recipe.as_ref() == Some(&recipe) || !self.persist {
            return;
        }
        self.state.settings.last_recipe = Some(recipe);
        if let Err(e) = self.state.settings.save_to(&self.paths.settings_file()) {
            eprintln!("kiln: settings could not be saved: {e:#}");
        }
    }

    fn save_settings(&mut self) {
        if !self.persist {
            return;
        }
        let settings = self.state.settings.clone();
        let path = self.paths.settings_file();
        self.services.tasks.spawn("save-settings", move || {
            TaskDone::SettingsSaved(settings.save_to(&path).map_err(|e| format!("{e:#}")))
        });
    }
}

fn pick_title_key(purpose: PickPurpose) -> &'static str {
    match purpose {
        PickPurpose::Model => "dialog.pick_model",
        PickPurpose::ModelFolder => "dialog.pick_model_folder",
        PickPurpose::InitImage => "dialog.pick_init",
        PickPurpose::OutputDir => "dialog.pick_output",
        PickPurpose::ModelDir => "dialog.pick_model_dir",
        PickPurpose::Lora => "dialog.pick_lora",
        PickPurpose::PresetPhoto => "dialog.pick_preset_photo",
        PickPurpose::PresetImport => "dialog.pick_preset_import",
        PickPurpose::PresetExportDir => "dialog.pick_preset_export",
        PickPurpose::ControlNetFile(_) => "dialog.pick_controlnet",
        PickPurpose::ControlNetFolder(_) => "dialog.pick_controlnet_folder",
        PickPurpose::ControlImage(_) => "dialog.pick_guide",
        PickPurpose::Mask => "dialog.pick_mask",
        PickPurpose::CanvasImport(_) => "dialog.pick_canvas_import",
        PickPurpose::BatchInput => "dialog.pick_batch_input",
        PickPurpose::BatchOutput => "dialog.pick_batch_output",
    }
}

/// What a dropped file is: a PNG with a recipe (Kiln's, else A1111 `parameters`), another
/// image, or something unreadable. Runs on a task thread.
pub fn read_dropped(path: &Path) -> DroppedImage {
    use kiln_inference::io::png_meta::{parse_a1111_parameters, read_parameters, read_recipe};
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return DroppedImage::Unreadable(format!("{e} ({})", path.display())),
    };
    if bytes.starts_with(b"\x89PNG") {
        if let Ok(Some(recipe)) = read_recipe(&bytes) {
            return DroppedImage::Recipe(Box::new(recipe));
        }
        if let Ok(Some(parameters)) = read_parameters(&bytes) {
            let mut recipe = Recipe::default();
            parse_a1111_parameters(&parameters).apply_to(&mut recipe);
            return DroppedImage::Recipe(Box::new(recipe));
        }
    }
    match image::guess_format(&bytes) {
        Ok(_) if image::load_from_memory(&bytes).is_ok() => DroppedImage::Image(path.to_path_buf()),
        _ => DroppedImage::Unreadable(format!("not an image ({})", path.display())),
    }
}

fn export_status(result: Result<PathBuf, String>) -> ExportStatus {
    match result {
        Ok(folder) => ExportStatus::Done(folder),
        Err(message) => ExportStatus::Failed(message),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl eframe::App for KilnApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.ui_step(ui);
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }

    fn persist_egui_memory(&self) -> bool {
        false
    }

    /// Called by eframe every 30 s and on shutdown: keeps the form as the last-used settings.
    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        self.remember_form();
    }
}
