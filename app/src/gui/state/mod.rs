//! The UI's state, shared by all panels: which section is open, the settings, the Generate
//! form, jobs, gallery and model library views. Panels read and edit it and push
//! [`crate::gui::Action`]s for anything with side effects.

pub mod batch;
pub mod canvas;
pub mod comic;
pub mod downloads;
pub mod gallery;
pub mod jobs;
pub mod models;
pub mod portrait;
pub mod presets;
pub mod video;

use crate::gui::form::GenerateForm;
use crate::gui::widgets::image_viewer::ImageViewer;
use crate::i18n::Lang;
use crate::library::settings::{Language, Settings};

pub use batch::BatchState;
pub use canvas::CanvasState;
pub use gallery::GalleryState;
pub use jobs::JobsState;
pub use models::ModelsState;
pub use portrait::PortraitState;
pub use presets::PresetsState;

/// A section of the app (an entry in the sidebar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Section {
    /// Text-to-image and image-to-image.
    #[default]
    Generate,
    /// Sketches, masks and ControlNet guides.
    Canvas,
    /// Style presets: a gallery of cards to apply or run on a photo.
    Presets,
    /// Face-preserving portraits (InstantID) from a face photo.
    Portrait,
    /// A folder of photos through one style.
    Batch,
    /// Story scripts to comic pages.
    Comic,
    /// A still to a short clip (Stable Video Diffusion).
    Video,
    /// Outputs and history.
    Gallery,
    /// The model library.
    Models,
    /// Settings.
    Settings,
}

impl Section {
    /// Every section, in sidebar order.
    pub const ALL: [Section; 10] = [
        Section::Generate,
        Section::Canvas,
        Section::Presets,
        Section::Portrait,
        Section::Batch,
        Section::Comic,
        Section::Video,
        Section::Gallery,
        Section::Models,
        Section::Settings,
    ];

    /// The translation key of its name.
    pub fn label_key(self) -> &'static str {
        match self {
            Section::Generate => "nav.generate",
            Section::Canvas => "nav.canvas",
            Section::Presets => "nav.presets",
            Section::Portrait => "nav.portrait",
            Section::Batch => "nav.batch",
            Section::Comic => "nav.comic",
            Section::Video => "nav.video",
            Section::Gallery => "nav.gallery",
            Section::Models => "nav.models",
            Section::Settings => "nav.settings",
        }
    }

    /// Parses a lower-case name (`generate`, `canvas`, `presets`, `gallery`, `models`,
    /// `settings`).
    pub fn from_name(name: &str) -> Option<Section> {
        match name.trim().to_ascii_lowercase().as_str() {
            "generate" => Some(Section::Generate),
            "canvas" => Some(Section::Canvas),
            "presets" => Some(Section::Presets),
            "portrait" => Some(Section::Portrait),
            "batch" => Some(Section::Batch),
            "comic" => Some(Section::Comic),
            "video" => Some(Section::Video),
            "gallery" => Some(Section::Gallery),
            "models" => Some(Section::Models),
            "settings" => Some(Section::Settings),
            _ => None,
        }
    }
}

/// How a notice looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// Something failed.
    Error,
    /// Something worked (saved, copied).
    Info,
    /// Worth knowing, not a failure (a preset runs without its ControlNet): stays until
    /// dismissed.
    Warning,
}

/// A dismissable message shown at the top of the window.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Unique id (for dismissing).
    pub id: u64,
    /// Error or info.
    pub kind: NoticeKind,
    /// The text, already translated.
    pub text: String,
    /// When it was first drawn (`egui` time), for info notices that fade out.
    pub shown_at: Option<f64>,
}

/// Token counts of the prompt boxes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenCounts {
    /// `(tokens, limit)` of the prompt, once counted.
    pub prompt: Option<(usize, usize)>,
    /// `(tokens, limit)` of the negative prompt.
    pub negative: Option<(usize, usize)>,
    /// The prompt text last sent for counting.
    pub sent_prompt: Option<String>,
    /// The negative text last sent for counting.
    pub sent_negative: Option<String>,
}

/// Everything the panels show.
pub struct AppState {
    /// The open section.
    pub section: Section,
    /// The GPU wgpu finds (Settings shows it): its name, or why there is none; `None` until
    /// probed.
    pub gpu_adapter: Option<Result<String, String>>,
    /// A probe is running.
    pub gpu_probing: bool,
    /// Settings (saved on change).
    pub settings: Settings,
    /// The Generate form.
    pub form: GenerateForm,
    /// Prompt token counts.
    pub tokens: TokenCounts,
    /// Jobs, previews, results.
    pub jobs: JobsState,
    /// Zoom and pan of the result viewer.
    pub viewer: ImageViewer,
    /// The Gallery panel.
    pub gallery: GalleryState,
    /// The Models panel.
    pub models: ModelsState,
    /// The model manager: catalog, downloads, Hub token field.
    pub downloads: downloads::DownloadsState,
    /// The Presets panel.
    pub presets: PresetsState,
    /// The Canvas section.
    pub canvas: CanvasState,
    /// The Batch section.
    pub batch: BatchState,
    /// The Comic section.
    pub comic: comic::ComicState,
    /// The Video section.
    pub video: video::VideoState,
    /// The Portrait section.
    pub portrait: PortraitState,
    /// Where the ControlNet cards were drawn (row id, rect): a file dropped on one becomes its
    /// guide.
    pub controlnet_drop_targets: Vec<(u64, egui::Rect)>,
    /// Where the mask controls were drawn: a file dropped there becomes the mask.
    pub mask_drop_target: Option<egui::Rect>,
    /// Messages at the top of the window.
    pub notices: Vec<Notice>,
    next_notice: u64,
    /// Files are being dragged over the window.
    pub files_hovering: bool,
    /// Frames drawn (for thumbnail LRU).
    pub frame: u64,
}

impl AppState {
    /// The state at start-up: the form restored from the last recipe.
    pub fn new(settings: Settings) -> Self {
        let mut form = GenerateForm::default();
        if let Some(recipe) = &settings.last_recipe {
            form.apply_recipe(recipe);
            // A restored recipe keeps its settings but draws a new seed, as A1111 does.
            form.seed_mode = crate::gui::form::SeedMode::Random;
        }
        AppState {
            section: Section::Generate,
            gpu_adapter: None,
            gpu_probing: false,
            settings,
            form,
            tokens: TokenCounts::default(),
            jobs: JobsState::default(),
            viewer: ImageViewer::default(),
            gallery: GalleryState::new(),
            models: ModelsState::default(),
            downloads: downloads::DownloadsState::default(),
            presets: PresetsState::default(),
            canvas: CanvasState::default(),
            batch: BatchState::new(),
            comic: comic::ComicState::default(),
            video: video::VideoState::default(),
            portrait: PortraitState::default(),
            controlnet_drop_targets: Vec::new(),
            mask_drop_target: None,
            notices: Vec::new(),
            next_notice: 1,
            files_hovering: false,
            frame: 0,
        }
    }

    /// The UI language.
    pub fn lang(&self) -> Lang {
        lang_of(self.settings.language)
    }

    /// Adds a notice.
    pub fn notify(&mut self, kind: NoticeKind, text: impl Into<String>) {
        let id = self.next_notice;
        self.next_notice += 1;
        self.notices.push(Notice {
            id,
            kind,
            text: text.into(),
            shown_at: None,
        });
        // Keep the strip short: the oldest go first.
        if self.notices.len() > 4 {
            self.notices.remove(0);
        }
    }
}

/// The translation language of a settings language.
pub fn lang_of(language: Language) -> Lang {
    match language {
        Language::English => Lang::En,
        Language::SimplifiedChinese => Lang::ZhCn,
    }
}

/// The settings language of a translation language.
pub fn language_of(lang: Lang) -> Language {
    match lang {
        Lang::En => Language::English,
        Lang::ZhCn => Language::SimplifiedChinese,
    }
}
