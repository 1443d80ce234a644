//! A batch folder as a worker task: the worker thread owns the engine, so the batch runs
//! there like any job (queued behind the jobs before it, shown in the queue, cancelled like
//! them). Engine progress becomes the job's progress (the sidebar, the queue card and the live
//! preview follow it); everything else goes to the Batch section over its own channel, finished
//! results with a small thumbnail made here, off the UI thread.

use crate::batch::{Batch, BatchControl, BatchEvent, BatchOptions, run_batch};
use crate::gui::state::batch::{BatchRun, BatchUiEvent};
use crate::worker::{JobOutcome, Task, WorkerHandle};
use egui::ColorImage;
use std::sync::Arc;

/// Longest side of a result thumbnail in the grid, in pixels.
pub const THUMB_SIDE: u32 = 160;

/// Queues `options` on the worker as a task labelled `label`; the returned run receives its
/// events (`wake` repaints the UI after each).
pub fn start_batch(
    worker: &WorkerHandle,
    options: BatchOptions,
    label: String,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> BatchRun {
    let control = BatchControl::new();
    let (sender, events) = crossbeam_channel::unbounded();
    let input = options.input.clone();
    let watch = options.watch;
    let task_control = control.clone();
    let task: Task = Box::new(move |runner, on_progress, _cancel| {
        let send = |event: BatchUiEvent| {
            // The UI is gone when this fails: the batch stops at its next check anyway.
            sender.send(event).ok();
            wake();
        };
        let batch = match Batch::new(options) {
            Ok(batch) => batch,
            Err(error) => {
                let message = format!("{error:#}");
                send(BatchUiEvent::Finished(crate::batch::Summary {
                    error: Some(message.clone()),
                    ..Default::default()
                }));
                return JobOutcome::Failed(message);
            }
        };
        send(BatchUiEvent::Ready {
            output: batch.output_dir().to_path_buf(),
            warnings: batch.warnings().to_vec(),
        });
        let summary = run_batch(&batch, runner, &task_control, &mut |event| match event {
            BatchEvent::Progress { progress, .. } => on_progress(&progress),
            BatchEvent::Done(mut done) => {
                let thumb = done.image.take().map(|image| thumbnail(&image));
                send(BatchUiEvent::Done(
                    done,
                    thumb.unwrap_or_else(|| ColorImage::filled([1, 1], egui::Color32::BLACK)),
                ));
            }
            other => send(BatchUiEvent::Event(other)),
        });
        let outcome = if summary.cancelled {
            JobOutcome::Cancelled(Vec::new())
        } else if let Some(error) = &summary.error {
            JobOutcome::Failed(error.clone())
        } else {
            JobOutcome::Done(Vec::new())
        };
        send(BatchUiEvent::Finished(summary));
        outcome
    });
    let job = worker.submit_task(label, control.cancel_token().clone(), task);
    BatchRun::new(job, control, events, input, watch)
}

/// A thumbnail of a result, longest side [`THUMB_SIDE`].
fn thumbnail(image: &image::RgbImage) -> ColorImage {
    let (width, height) = image.dimensions();
    let scale = f64::from(THUMB_SIDE) / f64::from(width.max(height).max(1));
    let small = if scale < 1.0 {
        let w = ((f64::from(width) * scale).round() as u32).max(1);
        let h = ((f64::from(height) * scale).round() as u32).max(1);
        image::imageops::thumbnail(image, w, h)
    } else {
        image.clone()
    };
    ColorImage::from_rgb(
        [small.width() as usize, small.height() as usize],
        small.as_raw(),
    )
}
