//! A story (or one panel of it) as a worker task: the worker owns the engine, so the panels are
//! drawn there with the story pipeline (`kiln_inference::pipelines::story`, as `kiln comic`
//! does): each character's reference panels together with consistent self-attention, its later
//! panels reading their tokens, `[NC]` panels plain. Progress goes to the job (sidebar, queue)
//! and, per panel and step, to the Comic section over its own channel.
//!
//! Regenerating one panel draws the panel's character's reference panels again from the
//! requests they were drawn with (same seeds, so the same pictures and tokens; those pictures
//! are not replaced) and then the panel with a new seed, reading their tokens: no token bank is
//! kept between runs (a bank holds gigabytes at full size), so memory stays bounded, at the cost
//! of the reference batch's time. The other panels stay as they are. A panel whose character
//! has no reference panels from an earlier run is drawn on its own.

use crate::comic::layout::{PageStyle, PanelArt, compose};
use crate::comic::script::Story;
use crate::comic::story::{
    FACE_ADAPTER_SCALE, NO_FACE_ADAPTER, add_face_adapter, character_photos, drift_scores,
    find_face_adapter, find_image_encoder, identity_scores, leads, request_of,
};
use crate::gui::state::comic::{ComicEvent, ComicRun, RunKind, StepReport};
use crate::library::presets::{ModelLibrary, Preset, ResolveRequest, resolve};
use crate::worker::{JobOutcome, Runner, Task, WorkerHandle};
use egui::ColorImage;
use kiln_inference::pipelines::stable_diffusion::GenerateRequest;
use kiln_inference::pipelines::story::{StoryProgress, StoryRequest, generate_story};
use kiln_inference::unet::consistent::ConsistencySettings;
use kiln_inference::{CancelToken, Progress, Recipe, Stage};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Longest side of a panel thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 160;
/// Reference panels per character (as `kiln comic`'s default).
pub const REFERENCES: usize = 2;
/// Page width of the preview, in pixels.
pub const PREVIEW_WIDTH: u32 = 640;
/// Page width of exports, in pixels (as `kiln comic`'s default).
pub const EXPORT_WIDTH: u32 = 1600;

/// Where the panels' recipes come from.
#[derive(Clone, Debug)]
pub enum PanelSource {
    /// A style preset, resolved per panel against the model library.
    Preset {
        /// The preset.
        preset: Box<Preset>,
        /// The model folders' contents.
        library: ModelLibrary,
    },
    /// The Generate form's recipe (model, LoRAs, sampler, steps, CFG, negative, size).
    Form(Box<Recipe>),
}

/// A story to draw, or one panel of it.
#[derive(Clone, Debug)]
pub struct ComicJob {
    /// The parsed script.
    pub story: Story,
    /// Recipes' source.
    pub source: PanelSource,
    /// Seed of the first panel (panel `k` gets `seed + k`).
    pub seed: u64,
    /// What to draw.
    pub kind: RunKind,
    /// For a regeneration: the lead character's reference requests from the story run.
    pub references: Option<Vec<GenerateRequest>>,
    /// For a regeneration: every panel's current picture (for the drift scores).
    pub images: Vec<Option<Arc<image::RgbImage>>>,
    /// Folders to look for a CLIP image encoder in (drift scores; none found: no scores).
    pub model_dirs: Vec<PathBuf>,
}

/// One recipe per panel, with warnings about them.
pub fn panel_recipes(
    story: &Story,
    source: &PanelSource,
    seed: u64,
) -> Result<(Vec<Recipe>, Vec<String>), String> {
    let mut warnings: Vec<String> = Vec::new();
    let mut recipes = Vec::with_capacity(story.panels.len());
    for (k, panel) in story.panels.iter().enumerate() {
        let prompt = story.panel_prompt(panel);
        let mut recipe = match source {
            PanelSource::Preset { preset, library } => {
                let request = ResolveRequest {
                    prompt,
                    ..ResolveRequest::default()
                };
                let resolved = resolve(preset, &request, library).map_err(|e| e.to_string())?;
                for w in resolved.warnings.iter().map(ToString::to_string) {
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
                resolved.recipe
            }
            PanelSource::Form(form) => Recipe {
                model: form.model.clone(),
                prompt,
                negative: form.negative.clone(),
                sampler: form.sampler,
                steps: form.steps,
                cfg: form.cfg,
                width: form.width,
                height: form.height,
                clip_skip: form.clip_skip,
                loras: form.loras.clone(),
                ..Recipe::default()
            },
        };
        if let Some((width, height)) = story.size {
            (recipe.width, recipe.height) = (width, height);
        }
        recipe.seed = seed.wrapping_add(k as u64);
        recipe.batch = 1;
        kiln_inference::engine::validate(&recipe).map_err(|e| format!("{e:#}"))?;
        recipes.push(recipe);
    }
    Ok((recipes, warnings))
}

/// Queues `job` on the worker as a task labelled `label`; the returned run receives its events.
pub fn start_comic(
    worker: &WorkerHandle,
    job: ComicJob,
    label: String,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> ComicRun {
    let cancel = CancelToken::default();
    let (sender, events) = crossbeam_channel::unbounded();
    let kind = job.kind;
    let task: Task = Box::new(move |runner, on_progress, cancel| {
        let send = |event: ComicEvent| {
            // The UI is gone when this fails: the job stops at its next cancel check anyway.
            sender.send(event).ok();
            wake();
        };
        let result = run(&job, runner, on_progress, cancel, &send);
        let (outcome, end) = match result {
            Ok(()) => (JobOutcome::Done(Vec::new()), Ok(())),
            Err(None) => (JobOutcome::Cancelled(Vec::new()), Err(None)),
            Err(Some(e)) => (JobOutcome::Failed(e.clone()), Err(Some(e))),
        };
        send(ComicEvent::Finished(end));
        outcome
    });
    let id = worker.submit_task(label, cancel.clone(), task);
    ComicRun::new(id, cancel, events, kind)
}

/// `Err(None)`: cancelled.
fn run(
    job: &ComicJob,
    runner: &mut dyn Runner,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &CancelToken,
    send: &dyn Fn(ComicEvent),
) -> Result<(), Option<String>> {
    let story = &job.story;
    let (mut recipes, warnings) = panel_recipes(story, &job.source, job.seed).map_err(Some)?;
    let Some(first) = recipes.first() else {
        return Err(Some("the script has no panels".into()));
    };
    let Some(engine) = runner.engine() else {
        return Err(Some("comic pages need the inference engine".into()));
    };
    let started = Instant::now();
    let (sd, lora_warnings) = engine
        .prepare_model(first, on_progress)
        .map_err(|e| Some(format!("{e:#}")))?;
    let mut all_warnings = warnings;
    for w in lora_warnings {
        if !all_warnings.contains(&w) {
            all_warnings.push(w);
        }
    }
    let story_leads = leads(story);
    let mut requests: Vec<GenerateRequest> = recipes.iter().map(request_of).collect();
    // Characters with a photo: their panels read it through an IP-Adapter of the model's
    // family from the model folders (as `kiln comic` does).
    if story.characters.iter().any(|c| c.photo.is_some()) {
        match find_face_adapter(&job.model_dirs, sd) {
            Some((model, encoder)) => add_face_adapter(
                sd,
                story,
                &story_leads,
                (&model, &encoder, FACE_ADAPTER_SCALE),
                &mut recipes,
                &mut requests,
            )
            .map_err(|e| Some(format!("{e:#}")))?,
            None => all_warnings.push(NO_FACE_ADAPTER.to_string()),
        }
    }
    send(ComicEvent::Ready(all_warnings));
    // What this run draws: the story, or the panel after its character's reference panels.
    let (run_requests, run_leads, panel_of): (Vec<GenerateRequest>, Vec<Option<usize>>, Vec<_>) =
        match job.kind {
            RunKind::Story => (
                requests.clone(),
                story_leads.clone(),
                (0..requests.len()).map(Some).collect(),
            ),
            RunKind::Panel(k) => {
                let Some(request) = requests.get(k) else {
                    return Err(Some(format!("there is no panel {}", k + 1)));
                };
                let references = match story_leads.get(k) {
                    Some(Some(_)) => job.references.clone().unwrap_or_default(),
                    _ => Vec::new(),
                };
                let lead = (!references.is_empty()).then_some(0);
                let mut reqs = references;
                let mut panel_of = vec![None; reqs.len()];
                reqs.push(request.clone());
                panel_of.push(Some(k));
                let n = reqs.len();
                (reqs, vec![lead; n], panel_of)
            }
        };
    let references = match job.kind {
        RunKind::Story => REFERENCES,
        RunKind::Panel(_) => run_requests.len().saturating_sub(1).max(1),
    };
    let total_panels = run_requests.len();
    let mut on_step = |p: StoryProgress| {
        let elapsed = started.elapsed();
        on_progress(&Progress {
            stage: Stage::Sampling,
            step: p.step.step,
            total: p.step.total,
            image: p.done,
            images: total_panels,
            elapsed,
            eta: None,
            preview: None,
        });
        send(ComicEvent::Step(StepReport {
            panels: p
                .panels
                .iter()
                .map(|&i| panel_of.get(i).copied().flatten())
                .collect(),
            done: p.done,
            total: p.total_panels,
            step: p.step.step,
            steps: p.step.total,
        }));
    };
    let mut drawn: Vec<Option<Arc<image::RgbImage>>> = job.images.clone();
    drawn.resize(recipes.len(), None);
    let mut on_panel = |i: usize, image: &image::RgbImage| {
        let Some(Some(k)) = panel_of.get(i).copied() else {
            return;
        };
        let image = Arc::new(image.clone());
        if let Some(slot) = drawn.get_mut(k) {
            *slot = Some(image.clone());
        }
        let Some(recipe) = recipes.get(k) else { return };
        send(ComicEvent::Panel {
            index: k,
            thumbnail: thumbnail(&image),
            image,
            recipe: Box::new(recipe.clone()),
        });
    };
    let result = generate_story(
        sd,
        &StoryRequest {
            requests: &run_requests,
            leads: &run_leads,
            consistency: Some(ConsistencySettings::default()),
            references,
        },
        &mut on_step,
        &mut on_panel,
        cancel,
    );
    match result {
        Ok(_) => {}
        Err(kiln_inference::Error::Cancelled) => return Err(None),
        Err(e) => return Err(Some(format!("{e:#}"))),
    }
    if job.kind == RunKind::Story {
        for (c, character) in story.characters.iter().enumerate() {
            let refs: Vec<GenerateRequest> = story_leads
                .iter()
                .zip(&requests)
                .filter(|(lead, _)| **lead == Some(c))
                .take(REFERENCES)
                .map(|(_, r)| r.clone())
                .collect();
            if !refs.is_empty() {
                send(ComicEvent::References {
                    character: character.name.to_lowercase(),
                    requests: refs,
                });
            }
        }
    }
    if let Some(dir) = find_image_encoder(&job.model_dirs) {
        let encoder = kiln_inference::adapters::ip_adapter::clip_vision::ClipVisionModel::load(
            &dir,
            &candle_core::Device::Cpu,
        )
        .map_err(|e| Some(format!("{e:#}")))?;
        let images: Vec<Option<&image::RgbImage>> = drawn.iter().map(|i| i.as_deref()).collect();
        let scores =
            drift_scores(&encoder, &story_leads, &images).map_err(|e| Some(format!("{e:#}")))?;
        send(ComicEvent::Scores(scores));
    }
    // Characters with a photo and the face models installed: identity scores.
    let photos = character_photos(story);
    if photos.iter().any(Option::is_some)
        && let Some(dir) = kiln_inference::vision::face::find_models(&job.model_dirs)
    {
        let analyzer = kiln_inference::vision::face::FaceAnalyzer::load_dir(&dir)
            .map_err(|e| Some(format!("{e:#}")))?;
        let images: Vec<Option<&image::RgbImage>> = drawn.iter().map(|i| i.as_deref()).collect();
        send(ComicEvent::Identities(identity_scores(
            &analyzer,
            &photos,
            &story_leads,
            &images,
        )));
    }
    Ok(())
}

/// A thumbnail of a panel, longest side [`THUMB_SIDE`].
fn thumbnail(image: &image::RgbImage) -> ColorImage {
    let (width, height) = image.dimensions();
    let scale = f64::from(THUMB_SIDE) / f64::from(width.max(height).max(1));
    let (w, h) = (
        ((f64::from(width) * scale).round() as u32).max(1),
        ((f64::from(height) * scale).round() as u32).max(1),
    );
    let small = image::imageops::resize(image, w, h, image::imageops::FilterType::Triangle);
    ColorImage::from_rgb([w as usize, h as usize], small.as_raw())
}

/// The page of `story` at `width` pixels: drawn panels where there are pictures, light grey
/// placeholders where there are none yet.
pub fn page(
    story: &Story,
    images: &[Option<Arc<image::RgbImage>>],
    width: u32,
) -> Result<image::RgbImage, String> {
    let template = story
        .template()
        .ok_or_else(|| "the script's panels do not fit a page".to_owned())?;
    let size = story.size.unwrap_or((512, 512));
    let arts: Vec<PanelArt> = story
        .panels
        .iter()
        .enumerate()
        .map(|(k, panel)| {
            let image = match images.get(k) {
                Some(Some(image)) => (**image).clone(),
                _ => image::RgbImage::from_pixel(size.0 / 8, size.1 / 8, image::Rgb([214; 3])),
            };
            PanelArt::new(image, panel)
        })
        .collect();
    let style = PageStyle::fitted(&template, size, width);
    compose(&arts, &template, &style).map_err(|e| e.to_string())
}

/// Work of the Comic section done on task threads.
#[derive(Debug)]
pub enum ComicDone {
    /// The page preview for script generation `generation`, or why not.
    Page {
        /// The state's page generation it was drawn for.
        generation: u64,
        /// The page.
        result: Result<ColorImage, String>,
    },
    /// A reference photo was picked for a character (`None`: the dialog was cancelled).
    Photo {
        /// The character.
        name: String,
        /// The photo.
        path: Option<PathBuf>,
    },
    /// An export was written (`Ok(None)`: the dialog was cancelled).
    Exported(Result<Option<PathBuf>, String>),
}

/// The preview of the page as an egui image.
pub fn page_preview(
    story: &Story,
    images: &[Option<Arc<image::RgbImage>>],
    generation: u64,
) -> ComicDone {
    let result = page(story, images, PREVIEW_WIDTH).map(|page| {
        ColorImage::from_rgb(
            [page.width() as usize, page.height() as usize],
            page.as_raw(),
        )
    });
    ComicDone::Page { generation, result }
}

/// `path`, or the first free `name-N.ext` next to it: exports never replace a file.
fn free_path(path: &std::path::Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "page".into());
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    (1..10_000)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{extension}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// Writes the page (full size) to `path` as a PNG or a PDF (by `pdf`), atomically, under a
/// free name when `path` exists. Returns where it went.
pub fn export_page(
    story: &Story,
    images: &[Option<Arc<image::RgbImage>>],
    path: &std::path::Path,
    pdf: bool,
) -> Result<PathBuf, String> {
    let page = page(story, images, EXPORT_WIDTH)?;
    let extension = if pdf { "pdf" } else { "png" };
    let mut path = path.to_path_buf();
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
    {
        path.set_extension(extension);
    }
    let target = free_path(&path);
    let written = if pdf {
        crate::comic::export::write_pdf(&page, &target)
    } else {
        crate::comic::export::write_png(&page, &target)
    };
    written.map_err(|e| format!("{e:#}"))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_never_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let story = crate::comic::script::parse("size: 64x64\n---\none\ntwo # B\n").unwrap();
        let first = export_page(&story, &[], &dir.path().join("page.png"), false).unwrap();
        let second = export_page(&story, &[], &dir.path().join("page.png"), false).unwrap();
        assert_eq!(first, dir.path().join("page.png"));
        assert_eq!(second, dir.path().join("page-1.png"));
        let pdf = export_page(&story, &[], &dir.path().join("page"), true).unwrap();
        assert_eq!(pdf, dir.path().join("page.pdf"));
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    }
}
