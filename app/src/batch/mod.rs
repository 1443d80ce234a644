//! Batch folders (issue 13): every image in a folder through one recipe or style preset,
//! resumable, never overwriting, safe to run as several processes or cluster shards.
//!
//! - An output's name is `<input stem>-<hash>.png` (subfolders mirrored) in the output folder
//!   (default: the sibling `<input>-kiln`). The 8-hex hash covers the batch recipe and the
//!   input's relative path, so changing the recipe makes new outputs, and a finished output
//!   is skipped: stopping and restarting (or a crash, or power loss) continues where it was.
//! - Outputs are written atomically and never replaced ([`write`]); inputs are only read.
//! - Several processes on one folder split it with claim files ([`claim`]); `--shard K/N`
//!   takes a stable share by path hash ([`scan::Shard`]) for Slurm / Kubernetes arrays.
//! - Inputs are told by content; broken ones fail with a [`FailReason`] and the batch goes on
//!   ([`load`]); EXIF orientation, grey, RGBA, CMYK and 16-bit inputs work; bombs are refused.
//! - Private files live in `<output>/.kiln-batch/` (`claims/`, `tmp/`).
//!
//! For the app: build [`BatchOptions`], [`Batch::new`] (checks the recipe and folders), then
//! [`run_batch`] on the thread that owns the engine (any [`crate::worker::Runner`]) with a
//! [`BatchControl`] (pause / resume / cancel from the UI) and an event callback: forward
//! [`BatchEvent`]s through a bounded channel (progress may be dropped, the others not) and wake
//! the UI. The [`Summary`] it returns lists done, skipped and failed files with reasons.

pub mod claim;
pub mod load;
mod run;
pub mod scan;
pub mod source;
pub mod write;

pub use load::{FailReason, LoadLimits};
pub use run::run_batch;
pub use scan::{InputFile, ScanResult, Shard};
pub use source::{KeepFaces, Overrides, RecipeSource, SeedMode, read_recipe_file};

use crate::output::encode_output;
use anyhow::{Context, bail};
use claim::Claims;
use image::RgbImage;
use kiln_inference::{CancelToken, Output, Progress, Recipe};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Everything a batch needs.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// The folder of inputs (only ever read).
    pub input: PathBuf,
    /// The output folder; `None` = the sibling `<input>-kiln`.
    pub output: Option<PathBuf>,
    /// The recipe or preset.
    pub source: RecipeSource,
    /// Values replacing the recipe's for every input.
    pub overrides: Overrides,
    /// Keep each input's aspect ratio at the recipe's pixel count (`true`), or use the
    /// recipe's exact size, centre-cropping.
    pub keep_aspect: bool,
    /// Take only this share of the inputs.
    pub shard: Option<Shard>,
    /// Take only these inputs (paths relative to `input`, `/`-separated): a selection of
    /// files dropped on the app rather than a whole folder. `None` = the whole folder.
    pub only: Option<Vec<String>>,
    /// Keep watching the folder for new files.
    pub watch: bool,
    /// How often to look at the folder again (watch mode, and while other processes hold
    /// claims).
    pub poll: Duration,
    /// Watch mode: a file must be unchanged for this long before it is taken.
    pub settle: Duration,
    /// A claim not refreshed for this long belongs to a dead process on another machine.
    pub claim_timeout: Duration,
    /// Limits on inputs.
    pub limits: LoadLimits,
}

impl BatchOptions {
    /// Defaults for `input` with `source`.
    pub fn new(input: impl Into<PathBuf>, source: RecipeSource) -> Self {
        BatchOptions {
            input: input.into(),
            output: None,
            source,
            overrides: Overrides::default(),
            keep_aspect: true,
            shard: None,
            only: None,
            watch: false,
            poll: Duration::from_secs(2),
            settle: Duration::from_secs(3),
            claim_timeout: Duration::from_secs(300),
            limits: LoadLimits::default(),
        }
    }
}

/// The default output folder: `<input>-kiln` next to the input folder.
pub fn default_output(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    input.with_file_name(format!("{name}-kiln"))
}

/// Why an input was not done by this process although it needed nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// Its output existed when the batch reached it (an earlier run).
    AlreadyDone {
        /// The output.
        output: PathBuf,
    },
    /// Another process finished it during this run.
    DoneElsewhere {
        /// The output.
        output: PathBuf,
    },
}

/// A finished input.
#[derive(Clone, Debug, Serialize)]
pub struct DoneFile {
    /// Input path relative to the input folder.
    pub input: String,
    /// The output PNG.
    pub output: PathBuf,
    /// Its seed.
    pub seed: u64,
    /// Output width and height.
    pub size: (u32, u32),
    /// Seconds spent on it (load, generate, write).
    pub seconds: f64,
    /// Things the user should know about it.
    pub warnings: Vec<String>,
    /// The pixels, for the app's result grid: in the [`BatchEvent::Done`] event only (the
    /// [`Summary`] does not keep them, so a long batch's memory stays flat).
    #[serde(skip)]
    pub image: Option<Arc<RgbImage>>,
}

/// A skipped input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedFile {
    /// Input path relative to the input folder.
    pub input: String,
    /// Why.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A failed input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedFile {
    /// Input path relative to the input folder.
    pub input: String,
    /// Why.
    #[serde(flatten)]
    pub reason: FailReason,
    /// The reason in words.
    pub message: String,
}

/// Counts after a scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanCounts {
    /// Inputs found (images and image-named files).
    pub inputs: usize,
    /// Of those, in this process's shard.
    pub in_shard: usize,
    /// In the shard with an output already.
    pub finished: usize,
    /// In the shard, still to do (not yet failed in this run).
    pub to_do: usize,
    /// Watch mode: still being written.
    pub settling: usize,
    /// Non-image files (never touched).
    pub ignored: usize,
}

/// What a running batch reports, in order, on the thread that runs it.
#[derive(Clone, Debug)]
pub enum BatchEvent {
    /// The folder was scanned (first scan, and whenever the counts change).
    Scanned(ScanCounts),
    /// Work on an input begins.
    Started {
        /// Input path relative to the input folder.
        input: String,
        /// Where its output will go.
        output: PathBuf,
    },
    /// Engine progress on the current input (lossy forwarding is fine).
    Progress {
        /// Input path relative to the input folder.
        input: String,
        /// The engine's progress (step, total, ETA, preview).
        progress: Progress,
    },
    /// An input is done.
    Done(DoneFile),
    /// An input needed nothing.
    Skipped(SkippedFile),
    /// An input failed; the batch goes on.
    Failed(FailedFile),
    /// Waiting: other processes hold `pending` claims, or watch mode is idle.
    Waiting {
        /// Inputs claimed by other processes.
        pending: usize,
    },
}

/// How a batch ended.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Inputs finished by this process.
    pub done: Vec<DoneFile>,
    /// Inputs that needed nothing.
    pub skipped: Vec<SkippedFile>,
    /// Inputs that failed, with reasons.
    pub failed: Vec<FailedFile>,
    /// Non-image files left alone.
    pub ignored: Vec<String>,
    /// Inputs left to other shards.
    pub other_shard: usize,
    /// Stopped by the user.
    pub cancelled: bool,
    /// A problem that stopped the whole batch (the folder vanished, the engine failed on
    /// every file).
    pub error: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

impl Summary {
    /// Whether everything went well (nothing failed, no batch error).
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.error.is_none()
    }
}

#[derive(Debug, Default)]
struct PauseState {
    paused: bool,
}

/// Pause, resume and cancel for a running batch; clone it into the UI.
#[derive(Clone, Debug, Default)]
pub struct BatchControl {
    cancel: CancelToken,
    pause: Arc<(Mutex<PauseState>, Condvar)>,
}

impl BatchControl {
    /// A fresh control.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.pause
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Pauses at the next sampling step (the current input's claim stays held).
    pub fn pause(&self) {
        self.state().paused = true;
    }

    /// Resumes a paused batch.
    pub fn resume(&self) {
        self.state().paused = false;
        self.pause.1.notify_all();
    }

    /// Stops the batch: the current input is abandoned (no file written, claim released).
    pub fn cancel(&self) {
        self.cancel.cancel();
        self.pause.1.notify_all();
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        self.state().paused
    }

    /// Whether cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The token the engine watches.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Blocks while paused (returns at once when cancelled).
    fn wait_while_paused(&self) {
        let mut state = self.state();
        while state.paused && !self.is_cancelled() {
            state = match self.pause.1.wait_timeout(state, Duration::from_millis(200)) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Sleeps up to `duration`, waking early on cancel.
    fn sleep(&self, duration: Duration) {
        let state = self.state();
        if self.is_cancelled() {
            return;
        }
        let _state = self.pause.1.wait_timeout(state, duration);
    }
}

/// A file deleted when dropped.
#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// One input ready for the engine.
#[derive(Debug)]
pub struct FileJob {
    /// Input path relative to the input folder.
    pub input: String,
    /// The input file.
    pub input_path: PathBuf,
    /// Where the output goes.
    pub output: PathBuf,
    /// The recipe to run (its init image is a normalized copy of the input).
    pub recipe: Recipe,
    /// Warnings from resolving it.
    pub warnings: Vec<String>,
    init: TempFile,
}

/// A prepared batch: folders, the checked template recipe, the batch hash and the claims.
#[derive(Debug)]
pub struct Batch {
    options: BatchOptions,
    input: PathBuf,
    output: PathBuf,
    template: Recipe,
    warnings: Vec<String>,
    spec_hash: [u8; 32],
    claims: Claims,
    sniff: Mutex<scan::SniffCache>,
}

impl Batch {
    /// Checks the folders and the recipe (a missing model or bad value fails here, before any
    /// input is touched), creates the output folder and cleans this host's leftovers of
    /// killed runs.
    pub fn new(options: BatchOptions) -> anyhow::Result<Batch> {
        if !options.input.is_dir() {
            bail!("input folder not found: {}", options.input.display());
        }
        let input = options
            .input
            .canonicalize()
            .with_context(|| format!("cannot open input folder {}", options.input.display()))?;
        let output = match &options.output {
            Some(output) => std::path::absolute(output)
                .with_context(|| format!("bad output folder {}", output.display()))?,
            None => default_output(&input),
        };
        std::fs::create_dir_all(&output)
            .with_context(|| format!("cannot create output folder {}", output.display()))?;
        let output = output.canonicalize().unwrap_or(output);
        if output == input {
            bail!(
                "the output folder must differ from the input folder: {}",
                input.display()
            );
        }
        if let Some(strength) = options.overrides.strength
            && !(strength > 0.0 && strength <= 1.0)
        {
            bail!("--strength must be in (0, 1], got {strength}");
        }
        let (template, warnings) = options.source.template(&options.overrides)?;
        let mut check = template.clone();
        check.init = None;
        kiln_inference::engine::validate(&check)?;
        let mut hasher = Sha256::new();
        hasher.update(b"kiln-batch-v1\0");
        hasher.update(options.source.key_text(&template).as_bytes());
        hasher.update(serde_json::to_vec(&options.overrides).unwrap_or_default());
        hasher.update([u8::from(options.keep_aspect)]);
        let spec_hash: [u8; 32] = hasher.finalize().into();
        let work = output.join(".kiln-batch");
        let claims = Claims::new(
            &work.join("claims"),
            &work.join("tmp"),
            options.claim_timeout,
        )
        .with_context(|| format!("cannot write to output folder {}", output.display()))?;
        claims.clean_leftovers();
        Ok(Batch {
            options,
            input,
            output,
            template,
            warnings,
            spec_hash,
            claims,
            sniff: Mutex::default(),
        })
    }

    /// The options.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// The input folder (canonical).
    pub fn input_dir(&self) -> &Path {
        &self.input
    }

    /// The output folder.
    pub fn output_dir(&self) -> &Path {
        &self.output
    }

    /// The recipe every input starts from (overrides applied).
    pub fn template(&self) -> &Recipe {
        &self.template
    }

    /// Warnings about the recipe or preset, for the user (once per batch).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// This process's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Lists the inputs (sorted, stable).
    pub fn scan(&self) -> std::io::Result<ScanResult> {
        let mut cache = self
            .sniff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &self.options.only {
            Some(names) => Ok(scan::scan_files(&self.input, names, &mut cache)),
            None => scan::scan(&self.input, Some(&self.output), &mut cache),
        }
    }

    /// 32 hex digits naming input `rel` under this batch's recipe.
    pub fn key(&self, rel: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.spec_hash);
        hasher.update(rel.as_bytes());
        let digest = hasher.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Where input `rel` goes: `<output>/<subfolders>/<stem>-<8 hex>.png`.
    pub fn output_path(&self, rel: &str) -> PathBuf {
        let key = self.key(rel);
        let short = key.get(..8).unwrap_or(&key);
        let rel_path = Path::new(rel);
        let stem = rel_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let mut path = self.output.clone();
        if let Some(parent) = rel_path.parent() {
            path.push(parent);
        }
        path.push(format!("{stem}-{short}.png"));
        path
    }

    /// Whether input `rel` is this process's to do.
    pub fn in_shard(&self, rel: &str) -> bool {
        self.options.shard.is_none_or(|shard| shard.contains(rel))
    }

    /// The seed of input `rel`.
    pub fn seed(&self, rel: &str) -> u64 {
        match self.options.overrides.seed {
            SeedMode::PerFile => scan::seed_for(rel),
            SeedMode::Fixed(seed) => seed,
        }
    }

    /// Reads, checks and normalizes an input (upright RGB8 at its output size, written as a
    /// private PNG for the engine) and builds its recipe.
    pub fn prepare(&self, file: &InputFile) -> Result<FileJob, FailReason> {
        let decoded = load::decode(&file.path, &self.options.limits)?;
        let (width, height) = (decoded.image.width(), decoded.image.height());
        let size = load::target_size(
            width,
            height,
            (self.template.width, self.template.height),
            self.options.keep_aspect,
        );
        let rgb = load::fit_to(decoded.image, size);
        let key = self.key(&file.rel);
        let init = TempFile(self.claims.private_path(&format!("{key}.init.png")));
        rgb.save_with_format(&init.0, image::ImageFormat::Png)
            .map_err(|e| FailReason::Write {
                detail: format!("{e} ({})", init.0.display()),
            })?;
        let (recipe, warnings) = self
            .options
            .source
            .recipe_for(
                &self.template,
                &init.0,
                size,
                self.seed(&file.rel),
                &self.options.overrides,
            )
            .map_err(|e| FailReason::Generation {
                detail: format!("{e:#}"),
            })?;
        Ok(FileJob {
            input: file.rel.clone(),
            input_path: file.path.clone(),
            output: self.output_path(&file.rel),
            recipe,
            warnings,
            init,
        })
    }

    /// Writes the engine's image for `job`: its recipe names the input file (not the private
    /// copy), the PNG carries A1111 parameters and the Kiln recipe; never replaces a file.
    pub fn commit(&self, job: &FileJob, output: &mut Output) -> Result<write::Written, FailReason> {
        if let Some(init) = &mut output.recipe.init {
            init.path = job.input_path.clone();
        }
        for control in &mut output.recipe.controls {
            if control.image == job.init.0 {
                control.image = job.input_path.clone();
            }
        }
        if let Some(face) = &mut output.recipe.face
            && face.image == job.init.0
        {
            face.image = job.input_path.clone();
        }
        let bytes = encode_output(output).map_err(|e| FailReason::Write {
            detail: format!("{e:#}"),
        })?;
        let key = self.key(&job.input);
        let temp = self.claims.private_path(&format!("{key}.png.part"));
        write::write_new(&job.output, &temp, &bytes).map_err(|e| FailReason::Write {
            detail: format!("{e} ({})", job.output.display()),
        })
    }
}

#[cfg(test)]
mod tests;
