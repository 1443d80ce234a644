//! A clip as a worker task: the worker thread loads the SVD model (kept between clips while
//! the model and precision stay the same), reports the time estimate, every step and every
//! decoded chunk to the job (sidebar, queue) and to the Video section, and honours Cancel.
//! Finding SVD models and writing exports run on task threads.

use crate::gui::state::video::{Clip, ExportKind, VideoEvent, VideoRun};
use crate::video::{ClipOptions, Target, recipe_json, target_of, write_clip};
use crate::worker::{JobOutcome, Task, WorkerHandle};
use image::{GrayImage, RgbImage};
use kiln_inference::engine::Precision;
use kiln_inference::video::{
    SvdPipeline, VideoParams, VideoProgress, auto_decode_chunk, default_gflops_per_core,
};
use kiln_inference::{CancelToken, Progress, Stage};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One clip to make.
#[derive(Clone, Debug)]
pub struct VideoJob {
    /// SVD folder or single file.
    pub model: PathBuf,
    /// The still's file (for the recipe).
    pub image_path: PathBuf,
    /// The still.
    pub image: Arc<RgbImage>,
    /// Settings (the decode chunk is chosen for the size when `None`).
    pub params: VideoParams,
    /// Weight precision.
    pub precision: Precision,
    /// Ping-pong playback in exports (kept in the recipe).
    pub ping_pong: bool,
}

/// The loaded model, kept for the next clip.
type Loaded = Arc<Mutex<Option<(PathBuf, Precision, Arc<SvdPipeline>)>>>;

/// Loads SVD models on the worker and keeps the last one.
#[derive(Clone, Default)]
pub struct VideoModels {
    loaded: Loaded,
}

impl VideoModels {
    fn get(&self, model: &Path, precision: Precision) -> Result<Arc<SvdPipeline>, String> {
        let mut slot = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((path, p, pipe)) = slot.as_ref()
            && path == model
            && *p == precision
        {
            return Ok(pipe.clone());
        }
        // Drop the old model before loading the next (two would not fit in memory).
        *slot = None;
        let pipe = SvdPipeline::load_with_precision(model, &candle_core::Device::Cpu, precision)
            .map_err(|e| format!("{e}"))?;
        let pipe = Arc::new(pipe);
        *slot = Some((model.to_path_buf(), precision, pipe.clone()));
        Ok(pipe)
    }
}

/// Seconds `estimate` should take on this machine (the per-core rates of
/// [`default_gflops_per_core`] times the cores).
pub fn estimate_seconds(pipe: &SvdPipeline, params: &VideoParams, precision: Precision) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (unet, decode) = default_gflops_per_core(precision.packs());
    pipe.estimate(params).seconds(unet * cores, decode * cores)
}

/// Queues `job` on the worker; the returned run receives its events.
pub fn start_video(
    worker: &WorkerHandle,
    models: &VideoModels,
    job: VideoJob,
    label: String,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> VideoRun {
    let cancel = CancelToken::default();
    let (sender, events) = crossbeam_channel::unbounded();
    let models = models.clone();
    let task: Task = Box::new(move |_runner, on_progress, cancel| {
        let send = |event: VideoEvent| {
            // The UI is gone when this fails: the job stops at its next cancel check anyway.
            sender.send(event).ok();
            wake();
        };
        let result = run(&job, &models, on_progress, cancel, &send);
        let outcome = match &result {
            Ok(_) => JobOutcome::Done(Vec::new()),
            Err(None) => JobOutcome::Cancelled(Vec::new()),
            Err(Some(e)) => JobOutcome::Failed(e.clone()),
        };
        send(VideoEvent::Finished(result));
        outcome
    });
    let id = worker.submit_task(label, cancel.clone(), task);
    VideoRun::new(id, cancel, events)
}

/// `Err(None)`: cancelled.
fn run(
    job: &VideoJob,
    models: &VideoModels,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &CancelToken,
    send: &dyn Fn(VideoEvent),
) -> Result<Clip, Option<String>> {
    let started = Instant::now();
    let report = |on_progress: &mut dyn FnMut(&Progress), stage: Stage, step, total| {
        on_progress(&Progress {
            stage,
            step,
            total,
            image: 0,
            images: 1,
            elapsed: started.elapsed(),
            eta: None,
            preview: None,
        });
    };
    report(on_progress, Stage::Loading("video model".into()), 0, 1);
    let pipe = models.get(&job.model, job.precision).map_err(Some)?;
    if cancel.is_cancelled() {
        return Err(None);
    }
    let frames = job.params.frames.unwrap_or(pipe.default_frames());
    let params = VideoParams {
        frames: Some(frames),
        decode_chunk: Some(
            job.params
                .decode_chunk
                .unwrap_or_else(|| auto_decode_chunk(job.params.width, job.params.height, frames)),
        ),
        ..job.params.clone()
    };
    send(VideoEvent::Estimate(estimate_seconds(
        &pipe,
        &params,
        job.precision,
    )));
    let mut on_video = |p: VideoProgress| {
        match p {
            VideoProgress::Step { step, total } => {
                report(on_progress, Stage::Sampling, step, total);
            }
            VideoProgress::Decoded { frames, total } => {
                report(on_progress, Stage::Decoding, frames, total);
            }
        }
        send(match p {
            VideoProgress::Step { step, total } => VideoEvent::Step { step, total },
            VideoProgress::Decoded { frames, total } => VideoEvent::Decoded { frames, total },
        });
    };
    let out = pipe.run(&job.image, &params, &mut on_video, cancel);
    let frames_out = match out {
        Ok(f) => f,
        Err(kiln_inference::Error::Cancelled) => return Err(None),
        Err(e) => return Err(Some(format!("{e}"))),
    };
    let options = ClipOptions {
        fps: params.fps,
        ping_pong: job.ping_pong,
    };
    let recipe = recipe_json(
        &job.model,
        &job.image_path,
        &params,
        frames_out.len(),
        job.precision,
        options,
    );
    Ok(Clip {
        frames: frames_out.into_iter().map(Arc::new).collect(),
        recipe,
        fps: params.fps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// SVD models in `dirs` (one level deep): diffusers folders whose UNet is spatio-temporal,
/// and single files that hold one.
pub fn find_svd_models(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let config = path.join("unet").join("config.json");
            let is_folder = std::fs::read_to_string(&config)
                .is_ok_and(|text| text.contains("UNetSpatioTemporalConditionModel"));
            let is_file = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
                && kiln_inference::video::single_file::is_svd_file(&path);
            if is_folder || is_file {
                found.push(path);
            }
        }
    }
    found
}

/// Writes `clip` to `path` as `kind` (the extension is added when missing); returns the path.
pub fn export_clip(
    clip: &Clip,
    path: &Path,
    kind: ExportKind,
    ping_pong: bool,
) -> Result<PathBuf, String> {
    let path = match kind.extension() {
        Some(ext)
            if !path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(ext)) =>
        {
            path.with_extension(ext)
        }
        _ => path.to_path_buf(),
    };
    let target = target_of(&path).map_err(|e| format!("{e:#}"))?;
    if kind == ExportKind::Frames && !matches!(target, Target::Frames(_)) {
        return Err(format!("{} is not a folder name", path.display()));
    }
    let frames: Vec<RgbImage> = clip.frames.iter().map(|f| (**f).clone()).collect();
    let options = ClipOptions {
        fps: clip.fps,
        ping_pong,
    };
    write_clip(&frames, &target, options, &clip.recipe).map_err(|e| format!("{e:#}"))
}

/// Reads a still for the section (any image format the app reads).
pub fn read_still(path: &Path) -> Result<RgbImage, String> {
    image::ImageReader::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .decode()
        .map(|i| i.to_rgb8())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A mask is only worth sending when it is not all white.
pub fn useful_mask(mask: Option<GrayImage>) -> Option<GrayImage> {
    mask.filter(|m| m.pixels().any(|p| p.0[0] < 255))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn svd_models_are_found_in_the_model_folders() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let found = find_svd_models(&[fixtures.clone(), fixtures.join("tiny-svd-single")]);
        assert!(found.contains(&fixtures.join("tiny-svd")), "{found:?}");
        assert!(found.contains(&fixtures.join("tiny-svd-single/svd.safetensors")));
        assert!(!found.contains(&fixtures.join("tiny-sd15")));
        assert!(!found.iter().any(|p| p.ends_with("tiny-sd15.safetensors")));
    }
}
