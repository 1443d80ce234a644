//! Worker tests with a fake runner: ordering, cancel, queue removal, panics.

use super::*;
use kiln_inference::Stage;
use std::time::{Duration, Instant};

/// Sends `steps` progress events, sleeping `step_ms` each; panics on prompt "panic".
struct FakeRunner {
    steps: usize,
    step_ms: u64,
}

impl Runner for FakeRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        if recipe.prompt == "panic" {
            panic!("boom");
        }
        for step in 1..=self.steps {
            if cancel.is_cancelled() {
                return Err(kiln_inference::Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(self.step_ms));
            on_progress(&Progress {
                stage: Stage::Sampling,
                step,
                total: self.steps,
                image: 0,
                images: 1,
                elapsed: Duration::ZERO,
                eta: None,
                preview: None,
            });
        }
        Ok(vec![Output {
            image: image::RgbImage::new(8, 8),
            recipe: recipe.clone(),
            warnings: Vec::new(),
        }])
    }
}

fn recipe(prompt: &str) -> Recipe {
    Recipe {
        prompt: prompt.into(),
        ..Recipe::default()
    }
}

fn saver() -> Saver {
    Box::new(|output: &Output| Ok(PathBuf::from(format!("{}.png", output.recipe.prompt))))
}

/// Collects events until `n` jobs finished (or 10 s pass).
fn collect(handle: &WorkerHandle, finished: usize) -> Vec<WorkerEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    let mut done = 0;
    while done < finished && Instant::now() < deadline {
        if let Ok(e) = handle.events().recv_timeout(Duration::from_millis(100)) {
            if matches!(e, WorkerEvent::Finished { .. }) {
                done += 1;
            }
            events.push(e);
        }
    }
    events
}

#[test]
fn progress_arrives_in_order_then_the_saved_result() {
    let handle = spawn(
        FakeRunner {
            steps: 5,
            step_ms: 1,
        },
        saver(),
        || {},
    )
    .unwrap();
    let id = handle.submit(recipe("fox"));
    let events = collect(&handle, 1);
    let steps: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Progress { id: i, progress } if *i == id => Some(progress.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5]);
    assert!(matches!(events.first(), Some(WorkerEvent::Started { id: i }) if *i == id));
    match events.last() {
        Some(WorkerEvent::Finished {
            id: i,
            outcome: JobOutcome::Done(saved),
        }) => {
            assert_eq!(*i, id);
            assert_eq!(saved[0].path, PathBuf::from("fox.png"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn cancel_stops_the_running_job_and_removes_waiting_ones() {
    let handle = spawn(
        FakeRunner {
            steps: 1000,
            step_ms: 5,
        },
        saver(),
        || {},
    )
    .unwrap();
    let first = handle.submit(recipe("long"));
    let second = handle.submit(recipe("waiting"));
    let third = handle.submit(recipe("after"));
    // Wait until the first job runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.queue().first().map(|j| j.state) != Some(JobState::Running) {
        assert!(Instant::now() < deadline, "job never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        handle.queue().iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![first, second, third]
    );
    assert!(handle.cancel(second), "waiting job removed");
    let started = Instant::now();
    assert!(handle.cancel(first));
    let events = collect(&handle, 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cancel within a step"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        WorkerEvent::Finished { id, outcome: JobOutcome::Cancelled(_) } if *id == first
    )));
    // The third job runs next; the second never does.
    assert!(handle.cancel(third) || handle.queue().is_empty());
    let events = collect(&handle, 1);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Started { id } if *id == second))
    );
}

#[test]
fn a_panicking_job_fails_and_the_worker_carries_on() {
    let handle = spawn(
        FakeRunner {
            steps: 2,
            step_ms: 1,
        },
        saver(),
        || {},
    )
    .unwrap();
    let bad = handle.submit(recipe("panic"));
    let good = handle.submit(recipe("fine"));
    let events = collect(&handle, 2);
    let outcome = |want: JobId| {
        events.iter().find_map(|e| match e {
            WorkerEvent::Finished { id, outcome } if *id == want => Some(outcome.clone()),
            _ => None,
        })
    };
    assert!(matches!(outcome(bad), Some(JobOutcome::Failed(m)) if m.contains("boom")));
    assert!(matches!(outcome(good), Some(JobOutcome::Done(_))));
}

#[test]
fn a_failing_save_is_reported() {
    let failing: Saver = Box::new(|_| anyhow::bail!("disk full"));
    let handle = spawn(
        FakeRunner {
            steps: 1,
            step_ms: 1,
        },
        failing,
        || {},
    )
    .unwrap();
    handle.submit(recipe("x"));
    let events = collect(&handle, 1);
    assert!(events.iter().any(|e| matches!(
        e,
        WorkerEvent::Finished { outcome: JobOutcome::Failed(m), .. } if m.contains("disk full")
    )));
}

#[test]
fn tasks_run_in_queue_order_with_the_runner_and_a_removed_one_is_cancelled() {
    let handle = spawn(
        FakeRunner {
            steps: 100,
            step_ms: 2,
        },
        saver(),
        || {},
    )
    .unwrap();
    let blocker = handle.submit(recipe("first"));
    let task: Task = Box::new(|runner, on_progress, cancel| {
        match runner.run(&recipe("inside a task"), on_progress, cancel) {
            Ok(outputs) if outputs.len() == 1 => JobOutcome::Done(Vec::new()),
            other => JobOutcome::Failed(format!("{other:?}")),
        }
    });
    let ran = handle.submit_task("batch".into(), CancelToken::default(), task);
    let dropped_token = CancelToken::default();
    let never: Task = Box::new(|_, _, _| JobOutcome::Failed("must not run".into()));
    let dropped = handle.submit_task("dropped".into(), dropped_token.clone(), never);
    let labels: Vec<JobKind> = handle.queue().into_iter().map(|job| job.kind).collect();
    assert!(labels.contains(&JobKind::Task("batch".into())));
    assert!(handle.cancel(dropped));
    assert!(dropped_token.is_cancelled());
    let events = collect(&handle, 2);
    let finished: Vec<(JobId, bool)> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Finished { id, outcome } => {
                Some((*id, matches!(outcome, JobOutcome::Done(_))))
            }
            _ => None,
        })
        .collect();
    assert_eq!(finished, vec![(blocker, true), (ran, true)]);
    // The task's progress went out under its own id.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, WorkerEvent::Progress { id, .. } if *id == ran))
    );
}
