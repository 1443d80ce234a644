//! `kiln batch`: every image in a folder through a recipe or a style preset, resumable and
//! safe to run as several processes or as cluster shards (see [`crate::batch`]).

use super::generate::{load_preset, model_dirs};
use crate::batch::{
    Batch, BatchControl, BatchEvent, BatchOptions, KeepFaces, LoadLimits, Overrides, RecipeSource,
    SeedMode, Shard, SkipReason, Summary, read_recipe_file, run_batch,
};
use crate::library::presets::{ModelLibrary, resolve_prompt_loras};
use anyhow::{Context, bail};
use clap::Args;
use kiln_inference::Engine;
use kiln_inference::engine::Stage;
use kiln_inference::recipe::DEFAULT_FACE_STRENGTH;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `kiln batch` (the contract in issue 13; keep names stable).
#[derive(Debug, Args)]
#[command(after_help = "\
Each image in --input (subfolders too; images are told by their content) becomes \
<name>-<hash>.png in --output (subfolders mirrored), the hash covering the recipe and the \
input's path. Finished outputs are skipped, so a stopped batch continues where it was when \
run again; outputs are written atomically and never replaced; the input folder is only read.

Several kiln batch processes may share one output folder (on one PC or several): they split \
the inputs with claim files in <output>/.kiln-batch/claims. On a cluster, give each task \
--shard K/N (K from 0 to N-1), e.g. --shard $SLURM_ARRAY_TASK_ID/N or \
--shard $JOB_COMPLETION_INDEX/N; see packaging/cluster/.

The exit code is 0 when nothing failed, 1 when an input failed (the summary lists each with \
its reason), 2 for bad arguments.")]
pub struct BatchArgs {
    /// Folder of input images (only ever read).
    #[arg(long, value_name = "DIR")]
    input: PathBuf,
    /// Output folder (default: the sibling folder `<input>-kiln`).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Style preset: a built-in or user preset id (`kiln presets list`) or a `.toml` file.
    #[arg(
        long,
        value_name = "ID|FILE",
        conflicts_with = "recipe",
        required_unless_present = "recipe"
    )]
    preset: Option<String>,
    /// Recipe: the JSON `kiln info --json IMAGE` prints, a bare recipe JSON, or a Kiln PNG.
    #[arg(long, value_name = "FILE")]
    recipe: Option<PathBuf>,
    /// Keep watching the input folder and process new files as they arrive (until stopped).
    #[arg(long)]
    watch: bool,
    /// Prompt: replaces the recipe's; fills the preset's {prompt} (no auto-caption then).
    #[arg(long)]
    prompt: Option<String>,
    /// Take only the inputs of shard K of N (stable hash of each input's relative path).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Negative prompt (replaces the recipe's or preset's).
    #[arg(long)]
    negative: Option<String>,
    /// Sampling steps (replaces the recipe's or preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Guidance scale (replaces the recipe's or preset's).
    #[arg(long, allow_negative_numbers = true)]
    cfg: Option<f32>,
    /// Denoising strength in (0, 1] (default: the recipe's or preset's, else 0.5).
    #[arg(long, allow_negative_numbers = true)]
    strength: Option<f32>,
    /// The same seed for every input (default: a stable seed per input, from its path).
    #[arg(long)]
    seed: Option<u64>,
    /// Use the recipe's exact width×height for every input (centre-cropped) instead of
    /// keeping each input's aspect ratio at the recipe's pixel count.
    #[arg(long)]
    exact_size: bool,
    /// Use this model instead of the recipe's or preset's.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Face preservation: every output keeps the identity of the largest face in its input
    /// (InstantID; needs an SDXL model, the InstantID files and antelopev2 in the model folders).
    #[arg(long)]
    keep_faces: bool,
    /// With --keep-faces: identity strength (0.8), also the keypoint strength unless
    /// --face-keypoints is given.
    #[arg(long, value_name = "F", requires = "keep_faces")]
    face_strength: Option<f32>,
    /// With --keep-faces: keypoint strength (IdentityNet's scale).
    #[arg(long, value_name = "F", requires = "keep_faces")]
    face_keypoints: Option<f32>,
    /// A model folder to find preset models and <lora:…> names in (repeatable; replaces the
    /// folders in Kiln's settings).
    #[arg(long, value_name = "DIR")]
    models_dir: Vec<PathBuf>,
    /// Seconds between looks at the folder (watch mode; and while other processes hold
    /// claims).
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    poll_secs: f64,
    /// Watch mode: seconds a new file must stay unchanged before it is taken.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    settle_secs: f64,
    /// Seconds after which a claim not refreshed by its process (on another machine) is taken
    /// over; claims of dead processes on this machine are taken over at once.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    claim_timeout: f64,
    /// Largest input in megapixels (larger ones are refused before decoding).
    #[arg(long, default_value_t = 100, value_name = "MP")]
    max_megapixels: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The face preservation settings of `--keep-faces`, with the InstantID and face analysis
/// folders found in the model folders.
fn keep_faces(args: &BatchArgs) -> anyhow::Result<Option<KeepFaces>> {
    if !args.keep_faces {
        return Ok(None);
    }
    let check = |v: f32, flag: &str| -> anyhow::Result<f32> {
        if !(0.0..=2.0).contains(&v) {
            bail!("{flag} must be between 0 and 2, got {v}");
        }
        Ok(v)
    };
    let strength = check(
        args.face_strength.unwrap_or(DEFAULT_FACE_STRENGTH),
        "--face-strength",
    )?;
    let keypoints = check(args.face_keypoints.unwrap_or(strength), "--face-keypoints")?;
    let dirs = model_dirs(&args.models_dir);
    let model = crate::library::instantid::find_instantid(&dirs).with_context(|| {
        "--keep-faces: the InstantID files are not in the model folders (download `instantid` \
         in the model manager, or `kiln models download instantid`)"
    })?;
    Ok(Some(KeepFaces {
        strength,
        keypoints,
        model,
        analysis: kiln_inference::vision::face::find_models(&dirs).unwrap_or_default(),
    }))
}

fn secs(value: f64, flag: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("{flag} must be a number of seconds ≥ 0, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// The batch's options from the command line (reads the recipe or preset, scans model folders
/// when needed).
fn options(args: &BatchArgs) -> anyhow::Result<BatchOptions> {
    let has_tags = args
        .prompt
        .as_deref()
        .is_some_and(|p| !kiln_inference::text::prompt::extract_loras(p).1.is_empty());
    let library = if args.preset.is_some() || has_tags {
        ModelLibrary::scan(&model_dirs(&args.models_dir))
    } else {
        ModelLibrary::default()
    };
    let source = match (&args.preset, &args.recipe) {
        (Some(spec), _) => {
            let preset = load_preset(spec)?;
            eprintln!("preset: {} ({})", preset.id, preset.name.en);
            RecipeSource::Preset {
                preset: Box::new(preset),
                library: library.clone(),
                model_override: args.model.clone(),
            }
        }
        (None, Some(path)) => {
            let mut recipe = read_recipe_file(path)?;
            if let Some(model) = &args.model {
                recipe.model = kiln_inference::recipe::ModelRef {
                    path: model.clone(),
                    hash: None,
                    family: None,
                };
            }
            RecipeSource::Recipe(Box::new(recipe))
        }
        (None, None) => bail!("give --preset NAME or --recipe FILE"),
    };
    let extra_loras = match &args.prompt {
        Some(prompt) if has_tags => resolve_prompt_loras(prompt, &library)?,
        _ => Vec::new(),
    };
    let mut options = BatchOptions::new(&args.input, source);
    options.output = args.output.clone();
    options.overrides = Overrides {
        prompt: args.prompt.clone(),
        negative: args.negative.clone(),
        steps: args.steps,
        cfg: args.cfg,
        strength: args.strength,
        seed: args.seed.map_or(SeedMode::PerFile, SeedMode::Fixed),
        extra_loras,
        keep_faces: keep_faces(args)?,
    };
    options.keep_aspect = !args.exact_size;
    options.shard = args.shard;
    options.watch = args.watch;
    options.poll = secs(args.poll_secs, "--poll-secs")?.max(Duration::from_millis(50));
    options.settle = secs(args.settle_secs, "--settle-secs")?;
    options.claim_timeout =
        secs(args.claim_timeout, "--claim-timeout")?.max(Duration::from_secs(1));
    options.limits = LoadLimits {
        max_pixels: args.max_megapixels.saturating_mul(1_000_000),
        ..LoadLimits::default()
    };
    Ok(options)
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Progress on stderr: one redrawn line on a terminal, one line per file otherwise.
struct Reporter {
    tty: bool,
    output_root: PathBuf,
    to_do: usize,
    done: usize,
    failed: usize,
    started: Instant,
    current: String,
    step: String,
    warned: Vec<String>,
    waiting_said: bool,
}

impl Reporter {
    fn line(&self) -> String {
        let width = 24;
        let finished = self.done + self.failed;
        let filled = (finished * width)
            .checked_div(self.to_do)
            .unwrap_or(0)
            .min(width);
        let eta = if self.done > 0 && self.to_do > finished {
            let per = self.started.elapsed() / (finished as u32).max(1);
            format!(" · ETA {}", short(per * (self.to_do - finished) as u32))
        } else {
            String::new()
        };
        let failed = if self.failed > 0 {
            format!(" · {} failed", self.failed)
        } else {
            String::new()
        };
        format!(
            "[{}{}] {finished}/{}{failed} · {} {}{eta}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.to_do,
            self.current,
            self.step
        )
    }

    fn draw(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            write!(err, "\r\x1b[2K{}", self.line())
                .and_then(|_| err.flush())
                .ok();
        }
    }

    fn say(&self, text: &str) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{text}");
        self.draw();
    }

    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.output_root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn event(&mut self, event: BatchEvent) {
        match event {
            BatchEvent::Scanned(counts) => {
                self.to_do = self.done + self.failed + counts.to_do;
                let settling = if counts.settling > 0 {
                    format!(", {} still being written", counts.settling)
                } else {
                    String::new()
                };
                self.say(&format!(
                    "found {} inputs: {} to do, {} done before, {} in other shards, {} not \
                     images{settling}",
                    counts.inputs,
                    counts.to_do,
                    counts.finished,
                    counts.inputs - counts.in_shard,
                    counts.ignored
                ));
                self.waiting_said = false;
            }
            BatchEvent::Started { input, .. } => {
                self.current = input;
                self.step.clear();
                self.draw();
            }
            BatchEvent::Progress { progress, .. } => {
                self.step = match progress.stage {
                    Stage::Loading(part) => format!("loading {part}"),
                    Stage::Sampling => format!("step {}/{}", progress.step, progress.total),
                    Stage::Decoding => "decoding".into(),
                    Stage::FixingFace { face, faces } => format!(
                        "face {}/{faces} step {}/{}",
                        face + 1,
                        progress.step,
                        progress.total
                    ),
                };
                self.draw();
            }
            BatchEvent::Done(done) => {
                self.done += 1;
                for warning in &done.warnings {
                    if !self.warned.contains(warning) {
                        self.say(&format!("warning: {warning}"));
                        self.warned.push(warning.clone());
                    }
                }
                if !self.tty {
                    self.say(&format!(
                        "done {} -> {} ({:.1}s)",
                        done.input,
                        self.shown(&done.output),
                        done.seconds
                    ));
                }
                self.draw();
                self.waiting_said = false;
            }
            BatchEvent::Skipped(skipped) => {
                if let SkipReason::DoneElsewhere { .. } = skipped.reason {
                    self.to_do = self.to_do.saturating_sub(1);
                }
            }
            BatchEvent::Failed(failed) => {
                self.failed += 1;
                self.say(&format!("failed {}: {}", failed.input, failed.message));
                self.waiting_said = false;
            }
            BatchEvent::Waiting { pending } => {
                if !self.waiting_said {
                    self.current.clear();
                    self.step.clear();
                    if pending > 0 {
                        self.say(&format!(
                            "waiting for {pending} inputs claimed by other processes"
                        ));
                    } else {
                        self.say("watching for new files (stop with Ctrl-C)");
                    }
                    self.waiting_said = true;
                }
            }
        }
    }
}

fn summary_line(summary: &Summary) -> String {
    let already = summary
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::AlreadyDone { .. }))
        .count();
    let elsewhere = summary.skipped.len() - already;
    let rate = if summary.done.is_empty() || summary.seconds <= 0.0 {
        String::new()
    } else {
        format!(
            ", {:.2} images/s",
            summary.done.len() as f64 / summary.seconds
        )
    };
    let shard = if summary.other_shard > 0 {
        format!(", {} left to other shards", summary.other_shard)
    } else {
        String::new()
    };
    let skipped = match (already, elsewhere) {
        (0, 0) => "0 skipped".to_string(),
        (n, 0) => format!("{n} skipped (already done)"),
        (0, n) => format!("{n} skipped (done by other processes)"),
        (a, e) => format!(
            "{} skipped ({a} already done, {e} done by other processes)",
            a + e
        ),
    };
    format!(
        "batch: {} done, {skipped}, {} failed{shard}; {:.1}s{rate}",
        summary.done.len(),
        summary.failed.len(),
        summary.seconds
    )
}

/// Runs `kiln batch`.
pub fn run(args: BatchArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    let batch = Batch::new(options)?;
    for warning in batch.warnings() {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "batch: {} -> {}{}",
        batch.input_dir().display(),
        batch.output_dir().display(),
        args.shard
            .map(|s| format!(" (shard {}/{})", s.index, s.count))
            .unwrap_or_default()
    );
    let mut reporter = Reporter {
        tty: std::io::stderr().is_terminal(),
        output_root: batch.output_dir().to_path_buf(),
        to_do: 0,
        done: 0,
        failed: 0,
        started: Instant::now(),
        current: String::new(),
        step: String::new(),
        warned: batch.warnings().to_vec(),
        waiting_said: false,
    };
    let mut engine = Engine::new();
    // pre=depth|lineart|scribble find their networks in the model folders.
    engine.preprocessors.model_dirs = model_dirs(&args.models_dir);
    let control = BatchControl::new();
    let summary = run_batch(&batch, &mut engine, &control, &mut |event| {
        reporter.event(event)
    });
    if reporter.tty {
        eprint!("\r\x1b[2K");
    }
    for failed in &summary.failed {
        eprintln!("failed: {}: {}", failed.input, failed.message);
    }
    eprintln!("{}", summary_line(&summary));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).context("cannot print the summary")?
        );
    }
    if let Some(error) = &summary.error {
        bail!("{error}");
    }
    if !summary.failed.is_empty() {
        bail!(
            "{} of {} inputs failed (see the list above)",
            summary.failed.len(),
            summary.failed.len() + summary.done.len() + summary.skipped.len()
        );
    }
    Ok(())
}
