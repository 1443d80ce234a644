//! One-off background work (file dialogs, save as, copy to clipboard, reading a dropped file,
//! saving settings): each task runs on its own short-lived thread and its [`TaskDone`] is
//! polled in `logic`, like rerun's `BackgroundTasks`.

use crossbeam_channel::{Receiver, Sender};
use kiln_inference::Recipe;
use kiln_inference::io::family::Family;
use std::path::PathBuf;
use std::sync::Arc;

/// Which file dialog a picked path answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickPurpose {
    /// A model file (single-file checkpoint) for the Generate panel.
    Model,
    /// A diffusers model folder for the Generate panel.
    ModelFolder,
    /// An init image.
    InitImage,
    /// The output folder (Settings).
    OutputDir,
    /// A folder to add to the model folders.
    ModelDir,
    /// A LoRA file for the Generate panel's LoRA rows.
    Lora,
    /// A photo for the Presets panel to run styles on.
    PresetPhoto,
    /// A preset file (`.toml`) to import.
    PresetImport,
    /// The folder to export a preset into.
    PresetExportDir,
    /// A ControlNet file for the Generate form's row (by id).
    ControlNetFile(u64),
    /// A diffusers ControlNet folder for the row (by id).
    ControlNetFolder(u64),
    /// A guide image for the row (by id).
    ControlImage(u64),
    /// An inpainting mask.
    Mask,
    /// An image to load into the canvas layer (by id).
    CanvasImport(u64),
    /// The Batch section's input folder.
    BatchInput,
    /// The Batch section's output folder.
    BatchOutput,
}

/// What a dropped or opened image turned out to be.
#[derive(Clone, Debug)]
pub enum DroppedImage {
    /// A PNG with a Kiln recipe or A1111 parameters: the form is restored from it.
    Recipe(Box<Recipe>),
    /// Any other image: it becomes the init image.
    Image(PathBuf),
    /// Not an image Kiln can read.
    Unreadable(String),
}

/// The outcome of one background task.
#[derive(Debug)]
pub enum TaskDone {
    /// A file dialog closed (`None`: cancelled).
    Picked(PickPurpose, Option<PathBuf>),
    /// A model's family was detected (or not).
    ModelInspected {
        /// The model.
        path: PathBuf,
        /// Its family, or why it cannot be used.
        family: Result<Family, String>,
    },
    /// A dropped file was read.
    Dropped(DroppedImage),
    /// "Save as" finished (`Ok(None)`: the dialog was cancelled).
    SavedAs(Result<Option<PathBuf>, String>),
    /// A folder was opened in the file manager (or why not).
    Opened(Result<(), String>),
    /// The image is on the clipboard (or why not).
    Copied(Result<(), String>),
    /// Settings were written (or why not).
    SettingsSaved(Result<(), String>),
    /// A model-folder scan finished.
    ModelsScanned {
        /// The scan's generation (older scans are dropped).
        generation: u64,
        /// Models found, in folder order.
        entries: Vec<crate::library::models::ModelEntry>,
        /// Other apps' installs found.
        externals: Vec<crate::library::models::ExternalLayout>,
    },
    /// LoRA files of the form's rows were looked at: each path with what it is (`None`: not
    /// on disk).
    LorasInspected(Vec<(PathBuf, Option<crate::library::models::ModelEntry>)>),
    /// The presets were listed (and new thumbnails decoded).
    PresetsListed(Box<crate::gui::services::presets::PresetListing>),
    /// A preset was resolved for the form or a photo.
    PresetResolved(Box<crate::gui::services::presets::PresetResolution>),
    /// A write to the user presets ended.
    PresetWritten(Box<crate::gui::services::presets::PresetWritten>),
    /// A user preset was deleted: its id, or why not.
    PresetDeleted(Result<String, crate::library::presets::PresetError>),
    /// A comparison page was exported: its folder, or why not.
    ComparisonExported(Result<PathBuf, String>),
    /// Restored files of the form were looked for: the ones not on disk.
    FilesChecked(std::collections::HashSet<PathBuf>),
    /// A canvas export was written (the PNG in the data folder), or why not.
    CanvasWritten {
        /// What it was for.
        purpose: crate::gui::app::CanvasPurpose,
        /// The PNG, or why not.
        result: Result<PathBuf, String>,
    },
    /// The canvas's region layers were written as mask PNGs: the form's regions and the names
    /// of the layers left out for covering nothing, or why not.
    CanvasRegionsWritten(Result<crate::gui::app::RegionsWritten, String>),
    /// An image was read for the canvas: RGBA at the canvas size, or why not.
    CanvasImageLoaded {
        /// Where it goes.
        target: crate::gui::app::CanvasTarget,
        /// The canvas size it was made for.
        size: (u32, u32),
        /// The pixels, or why not.
        result: Result<Vec<u8>, String>,
    },
    /// A ControlNet row's guide was made for its canvas layer.
    GuideLoaded {
        /// The guide layer.
        layer: u64,
        /// What was loaded.
        source: crate::gui::canvas::layer::GuideSource,
        /// The guide at the canvas size, or why not.
        result: Result<image::RgbImage, String>,
    },
    /// Work of the Portrait section.
    Portrait(Box<crate::gui::services::portrait::PortraitDone>),
    /// Work of the Comic section.
    Comic(Box<crate::gui::services::comic::ComicDone>),
    /// The GPU probe finished: the adapter's name, or why there is none.
    GpuProbed(Result<String, String>),
    /// Work of the Video section finished.
    Video(Box<crate::gui::app::video::VideoDone>),
    /// Something failed that has no better place to report.
    Failed(String),
}

/// Runs one-off tasks and collects their results.
pub struct Tasks {
    done_tx: Sender<TaskDone>,
    done_rx: Receiver<TaskDone>,
    wake: Arc<dyn Fn() + Send + Sync>,
    running: Arc<std::sync::atomic::AtomicUsize>,
}

/// Results buffered before a finishing task waits for the UI.
const CAPACITY: usize = 64;

impl Tasks {
    /// A task runner; `wake` asks the UI for a frame when a task finishes.
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (done_tx, done_rx) = crossbeam_channel::bounded(CAPACITY);
        Tasks {
            done_tx,
            done_rx,
            wake,
            running: Arc::default(),
        }
    }

    /// Runs `work` on a new thread named `name`.
    pub fn spawn(&self, name: &str, work: impl FnOnce() -> TaskDone + Send + 'static) {
        use std::sync::atomic::Ordering;
        let done_tx = self.done_tx.clone();
        let wake = self.wake.clone();
        let running = self.running.clone();
        running.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("kiln-{name}"))
            .spawn(move || {
                let done = work();
                running.fetch_sub(1, Ordering::Relaxed);
                // The UI is gone when this fails; nothing is left to tell.
                done_tx.send(done).ok();
                wake();
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::Relaxed);
            self.done_tx
                .try_send(TaskDone::Failed(format!(
                    "cannot start a background task: {e}"
                )))
                .ok();
        }
    }

    /// Finished tasks since the last call, without blocking.
    pub fn try_done(&self) -> impl Iterator<Item = TaskDone> + '_ {
        self.done_rx.try_iter()
    }

    /// A sender for long-lived services that report as tasks.
    pub fn sender(&self) -> Sender<TaskDone> {
        self.done_tx.clone()
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }
}
