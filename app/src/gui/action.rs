//! Requests panels make of the app, like rerun's `SystemCommand`: panels never touch the
//! worker, the library or the disk; they push an [`Action`] and `KilnApp` routes it.

use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::Section;
use crate::gui::state::presets::PresetWrite;
use crate::i18n::Lang;
use crate::library::gallery::GalleryEntry;
use crate::library::settings::Theme;
use crate::worker::JobId;
use kiln_inference::Recipe;
use std::path::PathBuf;

/// Something a panel asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open a section.
    ShowSection(Section),
    /// Queue a recipe.
    Submit(Box<Recipe>),
    /// Stop the running job (or remove a waiting one).
    Cancel(JobId),
    /// Remove a waiting job from the queue.
    RemoveQueued(JobId),
    /// Make this image the Generate form's init image (and open Generate).
    UseAsInit(PathBuf),
    /// Restore the Generate form from a recipe (and open Generate).
    ReuseSettings(Box<Recipe>),
    /// Copy an image file elsewhere (file dialog).
    SaveAs(PathBuf),
    /// Put an image on the clipboard.
    CopyImage(PathBuf),
    /// Show the folder containing a file.
    OpenFolder(PathBuf),
    /// Show a folder (created when missing, e.g. an empty models folder).
    OpenDir(PathBuf),
    /// Switch the UI language.
    SetLanguage(Lang),
    /// Switch the colour theme.
    SetTheme(Theme),
    /// A setting was edited: save the settings.
    SettingsChanged,
    /// Open a file or folder dialog.
    Pick(PickPurpose),
    /// Add a folder to the model folders (and rescan).
    AddModelDir(PathBuf),
    /// Remove a folder from the model folders (and rescan).
    RemoveModelDir(PathBuf),
    /// Scan the model folders again.
    RescanModels,
    /// Compute the AutoV2 hash of a model file.
    HashModel(PathBuf),
    /// Load these gallery pages of the current filter.
    GalleryPages(Vec<usize>),
    /// Load these thumbnails (most important first).
    WantThumbnails(Vec<(i64, PathBuf)>),
    /// Re-index the output folder.
    RebuildIndex,
    /// Export the creation record of this gallery entry (its chain of parents) as HTML + JSON.
    ExportRecord(i64),
    /// Export two gallery entries side by side (first, second) as an HTML page.
    ExportComparison(Box<(GalleryEntry, GalleryEntry)>),
    /// Hide a job's error.
    DismissJobError(JobId),
    /// Hide a notice.
    DismissNotice(u64),
    /// Something for the style presets.
    Preset(PresetAction),
    /// Something for the canvas.
    Canvas(CanvasAction),
    /// Something for model downloads.
    Download(crate::gui::state::downloads::DownloadAction),
    /// Something for the Batch section.
    Batch(BatchAction),
    /// Something for the Comic section.
    Comic(crate::gui::state::comic::ComicAction),
    /// Look for the GPU (Settings shows its name).
    ProbeGpu,
    /// Something for the Video section.
    Video(crate::gui::state::video::VideoAction),
    /// Something for the Portrait section.
    Portrait(PortraitAction),
}

/// Requests of the Portrait section.
#[derive(Clone, Debug, PartialEq)]
pub enum PortraitAction {
    /// Pick the face photo (file dialog).
    OpenPhoto,
    /// Pick the pose photo (file dialog).
    OpenPose,
    /// Use this file as the face photo (its faces are looked for).
    SetPhoto(PathBuf),
    /// Use this file as the pose photo.
    SetPose(PathBuf),
    /// Forget the pose photo.
    ClearPose,
    /// Look at the InstantID files again.
    Recheck,
    /// Convert InstantID's adapter from its published pickle.
    Convert,
    /// Queue the portrait job.
    Generate,
    /// Show result `index` in the Generate section's viewer.
    ShowResult(usize),
    /// Offer the download of a catalog model (the model manager's banner in the section).
    Offer(String),
}

/// Requests of the Batch section.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchAction {
    /// Run the batch as set up.
    Start,
    /// Pause at the next step.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Stop the batch (the current file is abandoned; nothing half-written is left).
    Cancel,
    /// Forget the finished batch's results.
    Clear,
    /// Files or a folder were dropped: set them up as the input and open the Batch section;
    /// dropped on a preset card (`preset`), start that style at once.
    Dropped {
        /// The dropped paths.
        paths: Vec<PathBuf>,
        /// The preset card they were dropped on.
        preset: Option<String>,
    },
}

/// Requests about the canvas (from the Canvas section and the Generate panel).
#[derive(Clone, Debug, PartialEq)]
pub enum CanvasAction {
    /// Write the picture up to layer `0` to a PNG and make it the init image.
    UseAsInit(u64),
    /// Write a layer as a guide (over black) and set it as a ControlNet row's guide image
    /// (`row: None`: a new row).
    UseAsGuide {
        /// The layer.
        layer: u64,
        /// The ControlNet row, by id.
        row: Option<u64>,
    },
    /// Write a layer as a mask (white = repaint) and make it the inpainting mask (the picture
    /// becomes the init image too when the form has none).
    UseAsMask(u64),
    /// Write the visible region layers with a prompt as mask PNGs and make them the form's
    /// regional prompts (also done by `UseAsInit`).
    UseRegions,
    /// Pick a PNG and load it into a layer.
    Import(u64),
    /// Save a layer as a PNG (file dialog).
    Export(u64),
    /// Load an image (a generation result) as a new background layer and open the canvas.
    AddBackground(PathBuf),
    /// Grow the canvas on some sides and set up the outpainting job that fills the new area
    /// (its result comes back as a new background layer).
    Extend(kiln_inference::recipe::OutpaintSpec),
}

/// Requests of the Presets panel.
#[derive(Clone, Debug, PartialEq)]
pub enum PresetAction {
    /// List the presets again (after a change on disk).
    Reload,
    /// Fill the Generate form from preset `id` (and open Generate).
    Apply(String),
    /// Run preset `id` on a photo: a job, captioned on the worker when the preset asks.
    Run {
        /// The preset.
        id: String,
        /// The photo.
        photo: PathBuf,
    },
    /// Save, edit, import or export; `overwrite` after the user said "replace".
    Write {
        /// What to write.
        write: Box<PresetWrite>,
        /// Replace what is in the way.
        overwrite: bool,
    },
    /// Delete user preset `id` (after the user confirmed).
    Delete(String),
    /// Export preset `id`: pick a folder, then write.
    Export(String),
}
