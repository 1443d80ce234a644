//! What the Batch section shows: the batch being set up (input folder or dropped files, style,
//! output folder, options) and the one running or last run (counts, ETA, a grid of finished
//! results, failed files with their reasons). The batch itself runs on the worker thread
//! ([`crate::gui::services::batch`]); its events arrive here through a channel.

use crate::batch::{BatchControl, BatchEvent, DoneFile, FailedFile, ScanCounts, Summary};
use crate::worker::JobId;
use crossbeam_channel::Receiver;
use egui::{ColorImage, TextureHandle, TextureOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Finished results kept as thumbnails in the grid (the newest; the files are all on disk).
pub const RESULTS_SHOWN: usize = 120;

/// Where the recipe of every input comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BatchStyle {
    /// A style preset, by id.
    Preset(String),
    /// The Generate form's settings (model, prompt, LoRAs, sampler…), each input its init image.
    #[default]
    Form,
}

/// What the worker's batch task tells the UI, in order.
#[derive(Debug)]
pub enum BatchUiEvent {
    /// The batch was checked and began: its output folder and warnings about the recipe.
    Ready {
        /// Where outputs go.
        output: PathBuf,
        /// About the recipe or preset (once per batch).
        warnings: Vec<String>,
    },
    /// An input is done, with a thumbnail of its result.
    Done(DoneFile, ColorImage),
    /// Anything else the batch reported (engine progress goes to the job's progress instead).
    Event(BatchEvent),
    /// The batch ended.
    Finished(Summary),
}

/// A finished input in the grid.
pub struct BatchResult {
    /// Input path relative to the input folder.
    pub input: String,
    /// The output PNG.
    pub output: PathBuf,
    /// Its thumbnail.
    pub texture: TextureHandle,
}

/// A batch handed to the worker, and what it reported so far.
pub struct BatchRun {
    /// The worker job running it.
    pub job: JobId,
    /// Pause, resume, cancel.
    pub control: BatchControl,
    /// Events from the worker.
    pub events: Receiver<BatchUiEvent>,
    /// The input folder.
    pub input: PathBuf,
    /// The output folder, once the batch began.
    pub output: Option<PathBuf>,
    /// Watch mode.
    pub watch: bool,
    /// The latest folder counts.
    pub counts: ScanCounts,
    /// Inputs still to do (from the latest scan, less those handled since).
    pub remaining: usize,
    /// Done by this run.
    pub done: usize,
    /// Needed nothing (done before).
    pub skipped: usize,
    /// Failed, with reasons (newest last).
    pub failed: Vec<FailedFile>,
    /// The newest results (at most [`RESULTS_SHOWN`]).
    pub results: Vec<BatchResult>,
    /// The input being worked on.
    pub current: Option<String>,
    /// Other processes hold claims on this many inputs (or watch mode is idle).
    pub waiting: Option<usize>,
    /// Seconds spent on the inputs done (for the ETA).
    pub busy_seconds: f64,
    /// Warnings about the recipe.
    pub warnings: Vec<String>,
    /// When it was queued.
    pub started: Instant,
    /// How it ended, once it did.
    pub ended: Option<Summary>,
}

impl BatchRun {
    /// A run just handed to the worker.
    pub fn new(
        job: JobId,
        control: BatchControl,
        events: Receiver<BatchUiEvent>,
        input: PathBuf,
        watch: bool,
    ) -> Self {
        BatchRun {
            job,
            control,
            events,
            input,
            output: None,
            watch,
            counts: ScanCounts::default(),
            remaining: 0,
            done: 0,
            skipped: 0,
            failed: Vec::new(),
            results: Vec::new(),
            current: None,
            waiting: None,
            busy_seconds: 0.0,
            warnings: Vec::new(),
            started: Instant::now(),
            ended: None,
        }
    }

    /// Whether it still runs (or waits in the queue).
    pub fn active(&self) -> bool {
        self.ended.is_none()
    }

    /// Inputs handled by this run (done, skipped or failed).
    pub fn handled(&self) -> usize {
        self.done + self.skipped + self.failed.len()
    }

    /// Overall progress in [0, 1].
    pub fn fraction(&self) -> f32 {
        let total = self.handled() + self.remaining;
        if total == 0 {
            return if self.ended.is_some() { 1.0 } else { 0.0 };
        }
        self.handled() as f32 / total as f32
    }

    /// Time left at the mean time per input so far (none before the first is done).
    pub fn eta(&self) -> Option<Duration> {
        if self.done == 0 || self.ended.is_some() {
            return None;
        }
        let mean = self.busy_seconds / self.done as f64;
        Some(Duration::from_secs_f64(mean * self.remaining as f64))
    }

    /// Applies the events that arrived; uploads thumbnails into `ctx`. Returns whether
    /// anything changed.
    pub fn drain(&mut self, ctx: &egui::Context) -> bool {
        let events: Vec<BatchUiEvent> = self.events.try_iter().collect();
        let changed = !events.is_empty();
        for event in events {
            self.apply(event, ctx);
        }
        changed
    }

    fn apply(&mut self, event: BatchUiEvent, ctx: &egui::Context) {
        match event {
            BatchUiEvent::Ready { output, warnings } => {
                self.output = Some(output);
                self.warnings = warnings;
            }
            BatchUiEvent::Done(file, thumb) => {
                self.done += 1;
                self.remaining = self.remaining.saturating_sub(1);
                self.busy_seconds += file.seconds;
                self.current = None;
                let name = format!("batch-{}", file.output.display());
                self.results.push(BatchResult {
                    input: file.input,
                    output: file.output,
                    texture: ctx.load_texture(name, thumb, TextureOptions::LINEAR),
                });
                if self.results.len() > RESULTS_SHOWN {
                    self.results.remove(0);
                }
            }
            BatchUiEvent::Event(event) => self.apply_batch_event(event),
            BatchUiEvent::Finished(summary) => {
                self.current = None;
                self.waiting = None;
                if !summary.cancelled && summary.error.is_none() {
                    self.remaining = 0;
                }
                self.ended = Some(summary);
            }
        }
    }

    fn apply_batch_event(&mut self, event: BatchEvent) {
        match event {
            BatchEvent::Scanned(counts) => {
                self.counts = counts;
                self.remaining = counts.to_do;
            }
            BatchEvent::Started { input, .. } => {
                self.current = Some(input);
                self.waiting = None;
            }
            BatchEvent::Skipped(_) => {
                self.skipped += 1;
                self.remaining = self.remaining.saturating_sub(1);
            }
            BatchEvent::Failed(failed) => {
                self.remaining = self.remaining.saturating_sub(1);
                if self.current.as_deref() == Some(failed.input.as_str()) {
                    self.current = None;
                }
                self.failed.push(failed);
            }
            BatchEvent::Waiting { pending } => {
                self.current = None;
                self.waiting = Some(pending);
            }
            // Only the task's own `Done` (with a thumbnail) counts; progress goes elsewhere.
            BatchEvent::Done(_) | BatchEvent::Progress { .. } => {}
        }
    }

    /// The worker dropped the job before it ran (removed from the queue): it ended.
    pub fn removed_from_queue(&mut self) {
        if self.ended.is_none() {
            self.ended = Some(Summary {
                cancelled: true,
                ..Summary::default()
            });
        }
    }
}

/// The Batch section's state.
#[derive(Default)]
pub struct BatchState {
    /// The input folder.
    pub input: Option<PathBuf>,
    /// Files dropped or picked one by one (paths relative to `input`); `None` = the whole
    /// folder.
    pub only: Option<Vec<String>>,
    /// The output folder; `None` = the sibling `<input>-kiln`.
    pub output: Option<PathBuf>,
    /// The recipe source.
    pub style: BatchStyle,
    /// Caption every photo automatically (for presets that can); off = the prompt below.
    pub auto_caption: bool,
    /// The prompt (fills a preset's `{prompt}`, or replaces the form's prompt).
    pub prompt: String,
    /// Keep each photo's aspect ratio at the model's native area (else crop to the exact size).
    pub keep_aspect: bool,
    /// The same seed for every photo (else a stable seed per file).
    pub fixed_seed: bool,
    /// The seed when fixed.
    pub seed: u64,
    /// Keep watching the folder for new photos.
    pub watch: bool,
    /// Face preservation: each output keeps the face of its photo (InstantID, SDXL).
    pub keep_faces: bool,
    /// Identity strength of face preservation.
    pub face_strength: f32,
    /// The running or last batch.
    pub run: Option<BatchRun>,
}

impl BatchState {
    /// The defaults users expect: automatic captions, aspect kept, a seed per file.
    pub fn new() -> Self {
        BatchState {
            auto_caption: true,
            keep_aspect: true,
            seed: 1,
            face_strength: kiln_inference::recipe::DEFAULT_FACE_STRENGTH,
            ..BatchState::default()
        }
    }

    /// Sets the input from dropped or picked paths: one folder is the whole folder; several
    /// files (or files and folders) become a selection under their common folder.
    pub fn set_inputs(&mut self, paths: &[PathBuf]) {
        let Some((input, only)) = inputs_of(paths) else {
            return;
        };
        self.input = Some(input);
        self.only = only;
    }

    /// Whether a batch is running or queued.
    pub fn active(&self) -> bool {
        self.run.as_ref().is_some_and(BatchRun::active)
    }

    /// What the input is, for display: the folder, or "N files in folder".
    pub fn selection_len(&self) -> Option<usize> {
        self.only.as_ref().map(Vec::len)
    }
}

/// The input folder and selection for dropped `paths` (see [`BatchState::set_inputs`]).
pub fn inputs_of(paths: &[PathBuf]) -> Option<(PathBuf, Option<Vec<String>>)> {
    match paths {
        [] => None,
        [one] if one.is_dir() => Some((one.clone(), None)),
        _ => {
            let parents: Vec<PathBuf> = paths
                .iter()
                .map(|p| p.parent().map(PathBuf::from).unwrap_or_default())
                .collect();
            let mut common = parents.first()?.clone();
            for parent in &parents[1..] {
                while !parent.starts_with(&common) {
                    if !common.pop() {
                        return None;
                    }
                }
            }
            let mut only = Vec::new();
            for path in paths {
                let rel = path.strip_prefix(&common).ok()?;
                if path.is_dir() {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    only.extend(files_under(path, &rel));
                } else {
                    only.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            Some((common, Some(only)))
        }
    }
}

/// Every file under `dir` (relative to the selection's folder, `prefix/…`), sorted.
fn files_under(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}/{name}");
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => found.extend(files_under(&entry.path(), &rel)),
            Ok(kind) if kind.is_file() => found.push(rel),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_folder_is_the_folder_and_files_are_a_selection() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("album/sub")).unwrap();
        for name in ["album/a.png", "album/b.jpg", "album/sub/c.png"] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let album = root.join("album");
        assert_eq!(
            inputs_of(std::slice::from_ref(&album)),
            Some((album.clone(), None))
        );
        let picked = [album.join("b.jpg"), album.join("a.png")];
        assert_eq!(
            inputs_of(&picked),
            Some((
                album.clone(),
                Some(vec!["b.jpg".to_owned(), "a.png".to_owned()])
            ))
        );
        let mixed = [album.join("a.png"), album.join("sub")];
        assert_eq!(
            inputs_of(&mixed),
            Some((
                album.clone(),
                Some(vec!["a.png".into(), "sub/c.png".into()])
            ))
        );
        let across = [album.join("a.png"), album.join("sub/c.png")];
        assert_eq!(
            inputs_of(&across),
            Some((album, Some(vec!["a.png".into(), "sub/c.png".into()])))
        );
        assert_eq!(inputs_of(&[]), None);
    }
}
