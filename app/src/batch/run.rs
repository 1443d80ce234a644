//! The batch loop: scan, claim, prepare, generate, write, report; again while other processes
//! hold claims, and forever in watch mode.

use super::claim::ClaimAttempt;
use super::scan::{InputFile, Readiness, Stamp};
use super::write::Written;
use super::{
    Batch, BatchControl, BatchEvent, DoneFile, FailReason, FailedFile, ScanCounts, SkipReason,
    SkippedFile, Summary,
};
use crate::worker::Runner;
use kiln_inference::Error as EngineError;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// After this many engine failures in a row, with no success, the batch stops: the engine
/// (model, memory), not the inputs, is the problem.
const MAX_ENGINE_FAILURES_IN_A_ROW: usize = 3;

/// What this run knows about an input.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Done, skipped, or not ours: never looked at again.
    Settled,
    /// Failed with this stamp (tried again only if the file changes, in watch mode).
    Failed(Stamp),
    /// Claimed by another process when last seen.
    Pending,
}

/// How one claimed input ended.
enum Outcome {
    Done,
    Failed,
    Cancelled,
    EngineFailed,
}

/// Runs `batch` with `runner` until every input is done, failed or skipped (or forever in
/// watch mode), reporting through `on_event`; `control` pauses, resumes and cancels.
pub fn run_batch(
    batch: &Batch,
    runner: &mut dyn Runner,
    control: &BatchControl,
    on_event: &mut dyn FnMut(BatchEvent),
) -> Summary {
    let started = Instant::now();
    let options = batch.options();
    let mut summary = Summary::default();
    let mut states: HashMap<String, State> = HashMap::new();
    let mut readiness = Readiness::new(options.settle);
    // Without watch, the batch is the folder as it was at the start.
    let mut initial: Option<HashSet<String>> = None;
    let mut last_counts = None;
    let mut engine_failures = 0usize;
    let mut shard_counted: HashSet<String> = HashSet::new();
    let mut ignored_seen: HashSet<String> = HashSet::new();
    'passes: loop {
        if control.is_cancelled() {
            summary.cancelled = true;
            break;
        }
        let scan = match batch.scan() {
            Ok(scan) => scan,
            Err(e) => {
                summary.error = Some(format!(
                    "cannot read the input folder ({e}): {}",
                    batch.input_dir().display()
                ));
                break;
            }
        };
        for name in &scan.ignored {
            if ignored_seen.insert(name.clone()) {
                summary.ignored.push(name.clone());
            }
        }
        let now = SystemTime::now();
        let mut files: Vec<&InputFile> = Vec::new();
        let mut counts = ScanCounts {
            inputs: scan.inputs.len(),
            ignored: scan.ignored.len(),
            ..ScanCounts::default()
        };
        let set =
            initial.get_or_insert_with(|| scan.inputs.iter().map(|f| f.rel.clone()).collect());
        for file in &scan.inputs {
            if !options.watch && !set.contains(&file.rel) {
                continue;
            }
            if !batch.in_shard(&file.rel) {
                if shard_counted.insert(file.rel.clone()) {
                    summary.other_shard += 1;
                }
                continue;
            }
            counts.in_shard += 1;
            match states.get(&file.rel) {
                Some(State::Settled) => {
                    counts.finished += 1;
                    continue;
                }
                Some(State::Failed(stamp)) if !options.watch || *stamp == file.stamp => continue,
                _ => {}
            }
            if batch.output_path(&file.rel).exists() {
                counts.finished += 1;
            } else if options.watch && !readiness.ready(file, now) {
                counts.settling += 1;
                continue;
            } else {
                counts.to_do += 1;
            }
            files.push(file);
        }
        if last_counts != Some(counts) {
            on_event(BatchEvent::Scanned(counts));
            last_counts = Some(counts);
        }

        let mut pending = 0usize;
        for file in files {
            if control.is_cancelled() {
                summary.cancelled = true;
                break 'passes;
            }
            let output = batch.output_path(&file.rel);
            let was_pending = states.get(&file.rel) == Some(&State::Pending);
            let skip = |summary: &mut Summary, on_event: &mut dyn FnMut(BatchEvent)| {
                let reason = if was_pending {
                    SkipReason::DoneElsewhere {
                        output: output.clone(),
                    }
                } else {
                    SkipReason::AlreadyDone {
                        output: output.clone(),
                    }
                };
                let skipped = SkippedFile {
                    input: file.rel.clone(),
                    reason,
                };
                summary.skipped.push(skipped.clone());
                on_event(BatchEvent::Skipped(skipped));
            };
            if output.exists() {
                // Its maker may have died between writing it and releasing the claim.
                batch.claims().remove_if_stale(&batch.key(&file.rel));
                states.insert(file.rel.clone(), State::Settled);
                skip(&mut summary, on_event);
                continue;
            }
            control.wait_while_paused();
            if control.is_cancelled() {
                summary.cancelled = true;
                break 'passes;
            }
            let key = batch.key(&file.rel);
            let claim = match batch.claims().try_claim(&key, &file.rel) {
                Ok(ClaimAttempt::Claimed(claim)) => claim,
                Ok(ClaimAttempt::Busy(_)) => {
                    states.insert(file.rel.clone(), State::Pending);
                    pending += 1;
                    continue;
                }
                Err(e) => {
                    summary.error = Some(format!(
                        "cannot write claim files ({e}): {}",
                        batch.claims().path_of(&key).display()
                    ));
                    break 'passes;
                }
            };
            // Finished by another process between our look and our claim?
            if output.exists() {
                drop(claim);
                states.insert(file.rel.clone(), State::Settled);
                skip(&mut summary, on_event);
                continue;
            }
            let outcome = process(batch, file, runner, control, on_event, &mut summary);
            drop(claim);
            match outcome {
                Outcome::Done => {
                    engine_failures = 0;
                    states.insert(file.rel.clone(), State::Settled);
                }
                Outcome::Failed => {
                    states.insert(file.rel.clone(), State::Failed(file.stamp));
                }
                Outcome::EngineFailed => {
                    states.insert(file.rel.clone(), State::Failed(file.stamp));
                    engine_failures += 1;
                    if engine_failures >= MAX_ENGINE_FAILURES_IN_A_ROW {
                        let last = summary
                            .failed
                            .last()
                            .map(|f| f.message.clone())
                            .unwrap_or_default();
                        summary.error = Some(format!(
                            "stopped after {engine_failures} generation failures in a row \
                             (last: {last})"
                        ));
                        break 'passes;
                    }
                }
                Outcome::Cancelled => {
                    summary.cancelled = true;
                    break 'passes;
                }
            }
        }
        if !options.watch && pending == 0 {
            break;
        }
        on_event(BatchEvent::Waiting { pending });
        control.sleep(options.poll);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

/// Prepares, generates and writes one claimed input.
fn process(
    batch: &Batch,
    file: &InputFile,
    runner: &mut dyn Runner,
    control: &BatchControl,
    on_event: &mut dyn FnMut(BatchEvent),
    summary: &mut Summary,
) -> Outcome {
    let started = Instant::now();
    let output = batch.output_path(&file.rel);
    on_event(BatchEvent::Started {
        input: file.rel.clone(),
        output,
    });
    let job = match batch.prepare(file) {
        Ok(job) => job,
        Err(reason) => {
            let engine = matches!(reason, FailReason::Generation { .. });
            fail(file, reason, summary, on_event);
            return if engine {
                Outcome::EngineFailed
            } else {
                Outcome::Failed
            };
        }
    };
    let result = {
        let mut on_progress = |progress: &kiln_inference::Progress| {
            control.wait_while_paused();
            on_event(BatchEvent::Progress {
                input: file.rel.clone(),
                progress: progress.clone(),
            });
        };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runner.run(&job.recipe, &mut on_progress, control.cancel_token())
        }));
        match caught {
            Ok(result) => result.map_err(|e| match e {
                EngineError::Cancelled => None,
                other => Some(format!("{other:#}")),
            }),
            Err(_) => Err(Some("internal error in the engine (panic)".to_string())),
        }
    };
    let mut outputs = match result {
        Ok(outputs) => outputs,
        Err(None) => return Outcome::Cancelled,
        Err(Some(detail)) => {
            fail(file, FailReason::Generation { detail }, summary, on_event);
            return Outcome::EngineFailed;
        }
    };
    if control.is_cancelled() {
        return Outcome::Cancelled;
    }
    let Some(mut image) = outputs.pop() else {
        let detail = "the engine returned no image".to_string();
        fail(file, FailReason::Generation { detail }, summary, on_event);
        return Outcome::EngineFailed;
    };
    match batch.commit(&job, &mut image) {
        Ok(Written::New) => {
            let mut warnings = job.warnings.clone();
            for warning in image.warnings {
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
            let done = DoneFile {
                input: file.rel.clone(),
                output: job.output.clone(),
                seed: image.recipe.seed,
                size: (image.recipe.width, image.recipe.height),
                seconds: started.elapsed().as_secs_f64(),
                warnings,
                image: None,
            };
            summary.done.push(done.clone());
            on_event(BatchEvent::Done(DoneFile {
                image: Some(Arc::new(image.image)),
                ..done
            }));
            Outcome::Done
        }
        Ok(Written::Existed) => {
            let skipped = SkippedFile {
                input: file.rel.clone(),
                reason: SkipReason::DoneElsewhere {
                    output: job.output.clone(),
                },
            };
            summary.skipped.push(skipped.clone());
            on_event(BatchEvent::Skipped(skipped));
            Outcome::Done
        }
        Err(reason) => {
            fail(file, reason, summary, on_event);
            Outcome::Failed
        }
    }
}

fn fail(
    file: &InputFile,
    reason: FailReason,
    summary: &mut Summary,
    on_event: &mut dyn FnMut(BatchEvent),
) {
    let failed = FailedFile {
        input: file.rel.clone(),
        message: reason.to_string(),
        reason,
    };
    summary.failed.push(failed.clone());
    on_event(BatchEvent::Failed(failed));
}
