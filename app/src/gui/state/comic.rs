//! What the Comic section shows: the story script being edited (parsed on every change, its
//! error with the line number), the panels drawn so far (thumbnail, seed, drift score), the
//! story or panel being generated on the worker ([`crate::gui::services::comic`]) and the page
//! preview. Panel pictures follow their script lines when panels are dragged into a new order.

use crate::comic::script::{ScriptError, Story, parse};
use crate::worker::JobId;
use crossbeam_channel::Receiver;
use egui::{ColorImage, TextureHandle, TextureOptions};
use kiln_inference::pipelines::stable_diffusion::GenerateRequest;
use kiln_inference::{CancelToken, Recipe};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The example story (`docs/examples/story.txt`): the editor's text when it starts empty.
pub const EXAMPLE_SCRIPT: &str = include_str!("../../../../docs/examples/story.txt");

/// Requests of the Comic section.
#[derive(Clone, Debug, PartialEq)]
pub enum ComicAction {
    /// Generate every panel of the script.
    Generate,
    /// Stop the story or panel being generated.
    Cancel,
    /// Draw panel `k` again with a new seed (the others stay).
    Regenerate(usize),
    /// Move panel `from` to position `to` (the script's panel lines trade places).
    Move {
        /// The panel dragged.
        from: usize,
        /// Where it was dropped.
        to: usize,
    },
    /// Pick a reference photo for the character called this (file dialog).
    PickPhoto(String),
    /// Use this file as the character's reference photo.
    SetPhoto {
        /// The character.
        name: String,
        /// The photo.
        path: PathBuf,
    },
    /// Forget the character's reference photo.
    ClearPhoto(String),
    /// Save the page as a PNG (file dialog).
    ExportPng,
    /// Save the page as a one-page PDF (file dialog).
    ExportPdf,
}

/// What the worker's comic task tells the UI, in order.
#[derive(Debug)]
pub enum ComicEvent {
    /// The panels' recipes were made: warnings about them (presets, LoRAs).
    Ready(Vec<String>),
    /// A step of a batch of panels (several at once for a character's reference panels).
    Step(StepReport),
    /// Panel `index` is drawn.
    Panel {
        /// The panel (story index).
        index: usize,
        /// Its picture.
        image: Arc<image::RgbImage>,
        /// Its thumbnail.
        thumbnail: ColorImage,
        /// What made it.
        recipe: Box<Recipe>,
    },
    /// The requests of a character's reference panels (to regenerate its other panels later).
    References {
        /// The character, lower case.
        character: String,
        /// The reference panels' requests, in story order.
        requests: Vec<GenerateRequest>,
    },
    /// Drift scores of every panel (`None` where there is nothing to compare).
    Scores(Vec<Option<f32>>),
    /// Identity scores of every panel against its character's photo (ArcFace cosine; `None`
    /// where there is no photo or no face).
    Identities(Vec<Option<f32>>),
    /// The run ended: `Ok`, or the error (`None` inside: cancelled).
    Finished(Result<(), Option<String>>),
}

/// A step of a batch of panels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// Panels of the batch (story indices; `None`: a reference panel drawn again only for its
    /// tokens).
    pub panels: Vec<Option<usize>>,
    /// Panels finished before this batch.
    pub done: usize,
    /// Panels this run draws.
    pub total: usize,
    /// Steps done in the batch.
    pub step: usize,
    /// Steps per panel.
    pub steps: usize,
}

/// What a run draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// Every panel.
    Story,
    /// One panel again.
    Panel(usize),
}

/// A story or panel handed to the worker, and what it reported so far.
pub struct ComicRun {
    /// The worker job.
    pub job: JobId,
    /// Stops it.
    pub cancel: CancelToken,
    /// Events from the worker.
    pub events: Receiver<ComicEvent>,
    /// What it draws.
    pub kind: RunKind,
    /// When it was queued.
    pub started: Instant,
    /// When its first step came (the ETA counts from there: model loading is not a step).
    pub first_step: Option<Instant>,
    /// The newest step report.
    pub step: Option<StepReport>,
    /// Whether it ended.
    pub ended: bool,
}

impl ComicRun {
    /// A run just queued.
    pub fn new(
        job: JobId,
        cancel: CancelToken,
        events: Receiver<ComicEvent>,
        kind: RunKind,
    ) -> Self {
        ComicRun {
            job,
            cancel,
            events,
            kind,
            started: Instant::now(),
            first_step: None,
            step: None,
            ended: false,
        }
    }

    /// Progress of the whole run in [0, 1].
    pub fn fraction(&self) -> f32 {
        let Some(report) = &self.step else {
            return 0.0;
        };
        let in_batch = report.panels.len() as f32 * report.step as f32 / report.steps.max(1) as f32;
        ((report.done as f32 + in_batch) / report.total.max(1) as f32).clamp(0.0, 1.0)
    }

    /// Time left at the pace so far (none before the first step).
    pub fn eta(&self) -> Option<Duration> {
        let fraction = self.fraction();
        let first = self.first_step?;
        if fraction <= 0.0 || self.ended {
            return None;
        }
        let elapsed = first.elapsed().as_secs_f64();
        Some(Duration::from_secs_f64(
            elapsed * f64::from(1.0 - fraction) / f64::from(fraction),
        ))
    }

    /// Step `step` of `steps` of panel `k`, while it is being drawn.
    pub fn panel_step(&self, k: usize) -> Option<(usize, usize)> {
        let report = self.step.as_ref()?;
        (!self.ended && report.panels.contains(&Some(k))).then_some((report.step, report.steps))
    }
}

/// A panel as the list shows it.
#[derive(Default)]
pub struct PanelView {
    /// Its picture, once drawn.
    pub image: Option<Arc<image::RgbImage>>,
    /// Its thumbnail.
    pub texture: Option<TextureHandle>,
    /// What made it.
    pub recipe: Option<Box<Recipe>>,
    /// Drift score against its character's first panel.
    pub score: Option<f32>,
    /// Flagged: far below the story's other scores.
    pub outlier: bool,
    /// Identity score against its character's photo (face models installed).
    pub identity: Option<f32>,
}

/// The Comic section's state.
pub struct ComicState {
    /// The script text (the editor's).
    pub script: String,
    /// The script parsed (updated by [`ComicState::set_script`]).
    pub parsed: Result<Story, ScriptError>,
    /// The last script that parsed (the panel list and the page follow it).
    pub story: Option<Story>,
    /// One view per panel of the last good parse.
    pub panels: Vec<PanelView>,
    /// Reference panels' requests per character (lower-case name), from the last story run.
    pub references: HashMap<String, Vec<GenerateRequest>>,
    /// The story or panel being drawn (or the last one).
    pub run: Option<ComicRun>,
    /// Warnings of the last run.
    pub warnings: Vec<String>,
    /// The last run's error.
    pub error: Option<String>,
    /// The page preview.
    pub page: Option<TextureHandle>,
    /// Bumped when the page must be drawn again.
    pub page_generation: u64,
    /// The generation the preview shows (or is being drawn for).
    pub page_requested: u64,
    /// Where each character card was drawn (a photo dropped there becomes its photo).
    pub card_rects: Vec<(String, egui::Rect)>,
    /// An export is being written.
    pub exporting: bool,
    /// A page preview is being drawn.
    pub page_drawing: bool,
    /// Generate the story once the presets and models are listed (screenshots).
    pub generate_when_ready: bool,
}

impl Default for ComicState {
    fn default() -> Self {
        let mut state = ComicState {
            script: String::new(),
            parsed: parse(""),
            story: None,
            panels: Vec::new(),
            references: HashMap::new(),
            run: None,
            warnings: Vec::new(),
            error: None,
            page: None,
            page_generation: 1,
            page_requested: 0,
            card_rects: Vec::new(),
            exporting: false,
            page_drawing: false,
            generate_when_ready: false,
        };
        state.set_script(EXAMPLE_SCRIPT.to_owned());
        state
    }
}

impl ComicState {
    /// Replaces the script text and parses it; the panel list follows the new panel count.
    pub fn set_script(&mut self, text: String) {
        self.script = text;
        self.reparse();
    }

    /// Parses the script again (after the editor changed it).
    pub fn reparse(&mut self) {
        self.parsed = parse(&self.script);
        if let Ok(story) = &self.parsed {
            self.panels
                .resize_with(story.panels.len(), PanelView::default);
            self.story = Some(story.clone());
        }
        self.page_generation += 1;
    }

    /// Whether a story or panel is being drawn.
    pub fn busy(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.ended)
    }

    /// Moves panel `from` to `to` in the script and in the list. Returns whether it moved.
    pub fn move_panel(&mut self, from: usize, to: usize) -> bool {
        if from == to {
            return false;
        }
        let Some(text) = crate::comic::edit::move_panel(&self.script, from, to) else {
            return false;
        };
        let view = self.panels.remove(from);
        self.panels.insert(to, view);
        self.set_script(text);
        true
    }

    /// Applies the events that arrived; uploads thumbnails into `ctx`. Returns the run's end
    /// when it ended now.
    pub fn drain(&mut self, ctx: &egui::Context) -> Option<Result<(), Option<String>>> {
        let run = self.run.as_mut()?;
        let events: Vec<ComicEvent> = run.events.try_iter().collect();
        let mut ended = None;
        for event in events {
            match event {
                ComicEvent::Ready(warnings) => self.warnings = warnings,
                ComicEvent::Step(report) => {
                    if let Some(run) = &mut self.run {
                        run.first_step.get_or_insert_with(Instant::now);
                        run.step = Some(report);
                    }
                }
                ComicEvent::Panel {
                    index,
                    image,
                    thumbnail,
                    recipe,
                } => {
                    if let Some(view) = self.panels.get_mut(index) {
                        let name = format!("comic-panel-{index}-{}", recipe.seed);
                        view.texture =
                            Some(ctx.load_texture(name, thumbnail, TextureOptions::LINEAR));
                        view.image = Some(image);
                        view.recipe = Some(recipe);
                        self.page_generation += 1;
                    }
                }
                ComicEvent::References {
                    character,
                    requests,
                } => {
                    self.references.insert(character, requests);
                }
                ComicEvent::Identities(scores) => {
                    for (view, score) in self.panels.iter_mut().zip(scores) {
                        view.identity = score;
                    }
                }
                ComicEvent::Scores(scores) => {
                    let flags = crate::comic::story::outliers(&scores);
                    for ((view, score), outlier) in self.panels.iter_mut().zip(scores).zip(flags) {
                        view.score = score;
                        view.outlier = outlier;
                    }
                }
                ComicEvent::Finished(result) => {
                    if let Some(run) = &mut self.run {
                        run.ended = true;
                    }
                    if let Err(Some(error)) = &result {
                        self.error = Some(error.clone());
                    }
                    ended = Some(result);
                }
            }
        }
        ended
    }
}
