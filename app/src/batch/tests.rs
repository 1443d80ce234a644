//! The batch loop without weights: a fake runner paints the init image's mean colour, so
//! claims, shards, resume, failures, pause and cancel are checked in milliseconds.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::worker::Runner;
use kiln_inference::engine::Stage;
use kiln_inference::recipe::ModelRef;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Reads the init image, reports `steps` progress events, returns a flat image.
struct FakeRunner {
    runs: Arc<AtomicUsize>,
    delay: Duration,
    on_step: Option<Box<dyn FnMut(usize) + Send>>,
}

impl FakeRunner {
    fn new() -> Self {
        FakeRunner {
            runs: Arc::default(),
            delay: Duration::ZERO,
            on_step: None,
        }
    }
}

impl Runner for FakeRunner {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let init = recipe.init.as_ref().unwrap();
        let image = image::open(&init.path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (recipe.width, recipe.height));
        for step in 1..=recipe.steps {
            if cancel.is_cancelled() {
                return Err(kiln_inference::Error::Cancelled);
            }
            std::thread::sleep(self.delay);
            if let Some(hook) = &mut self.on_step {
                hook(step);
            }
            on_progress(&Progress {
                stage: Stage::Sampling,
                step,
                total: recipe.steps,
                image: 0,
                images: 1,
                elapsed: Duration::ZERO,
                eta: None,
                preview: None,
            });
        }
        if cancel.is_cancelled() {
            return Err(kiln_inference::Error::Cancelled);
        }
        Ok(vec![Output {
            image,
            recipe: recipe.clone(),
            warnings: Vec::new(),
        }])
    }
}

fn recipe() -> Recipe {
    Recipe {
        model: ModelRef {
            path: fixtures().join("tiny-sd15"),
            ..ModelRef::default()
        },
        prompt: "clay".into(),
        steps: 3,
        width: 64,
        height: 64,
        ..Recipe::default()
    }
}

/// A folder of `n` good PNG inputs (two in a subfolder).
fn inputs(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixtures().join("init-64.png")).unwrap();
    std::fs::create_dir_all(dir.path().join("in/sub")).unwrap();
    for i in 0..n {
        let name = if i < 2 {
            format!("in/sub/s{i}.png")
        } else {
            format!("in/p{i:03}.png")
        };
        std::fs::write(dir.path().join(name), &png).unwrap();
    }
    dir
}

fn options(root: &Path) -> BatchOptions {
    let mut options = BatchOptions::new(root.join("in"), RecipeSource::Recipe(Box::new(recipe())));
    options.output = Some(root.join("out"));
    options.poll = Duration::from_millis(50);
    options
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            found.extend(pngs(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn run(batch: &Batch, runner: &mut FakeRunner) -> (Summary, Vec<BatchEvent>) {
    let mut events = Vec::new();
    let summary = run_batch(batch, runner, &BatchControl::new(), &mut |e| events.push(e));
    (summary, events)
}

#[test]
fn every_input_once_then_a_rerun_skips_all() {
    let dir = inputs(5);
    let batch = Batch::new(options(dir.path())).unwrap();
    let mut runner = FakeRunner::new();
    let (summary, events) = run(&batch, &mut runner);
    assert!(summary.success(), "{summary:?}");
    assert_eq!(summary.done.len(), 5);
    let outputs = pngs(&dir.path().join("out"));
    assert_eq!(outputs.len(), 5);
    // Names: stem + 8 hex, subfolders mirrored.
    let sub = outputs
        .iter()
        .find(|p| p.to_string_lossy().contains("/out/sub/s0-"))
        .unwrap();
    let name = sub.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), "s0-".len() + 8 + ".png".len(), "{name}");
    // The embedded recipe names the real input, its own seed, and the output size.
    let bytes = std::fs::read(sub).unwrap();
    let stored = kiln_inference::io::png_meta::read_recipe(&bytes)
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.init.as_ref().unwrap().path,
        batch.input_dir().join("sub/s0.png")
    );
    assert_eq!(stored.seed, scan::seed_for("sub/s0.png"));
    assert!((stored.init.unwrap().strength - 0.5).abs() < 1e-6);
    // Events: a scan first, then started/progress/done per file.
    assert!(matches!(events.first(), Some(BatchEvent::Scanned(c)) if c.to_do == 5));
    let progress = events
        .iter()
        .filter(|e| matches!(e, BatchEvent::Progress { .. }))
        .count();
    assert_eq!(progress, 5 * 3);
    // Nothing private left behind.
    let work = dir.path().join("out/.kiln-batch");
    assert_eq!(std::fs::read_dir(work.join("claims")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(work.join("tmp")).unwrap().count(), 0);

    let again = Batch::new(options(dir.path())).unwrap();
    let mut runner = FakeRunner::new();
    let (summary, _) = run(&again, &mut runner);
    assert_eq!(runner.runs.load(Ordering::SeqCst), 0);
    assert_eq!(summary.done.len(), 0);
    assert_eq!(summary.skipped.len(), 5);
    assert_eq!(pngs(&dir.path().join("out")), outputs);
}

#[test]
fn a_changed_recipe_makes_new_names_and_a_fixed_seed_is_used() {
    let dir = inputs(3);
    let batch = Batch::new(options(dir.path())).unwrap();
    run(&batch, &mut FakeRunner::new());
    let mut changed = options(dir.path());
    changed.overrides.seed = SeedMode::Fixed(7);
    let batch = Batch::new(changed).unwrap();
    let (summary, _) = run(&batch, &mut FakeRunner::new());
    assert_eq!(summary.done.len(), 3);
    assert!(summary.done.iter().all(|d| d.seed == 7));
    assert_eq!(pngs(&dir.path().join("out")).len(), 6);
}

#[test]
fn shards_cover_every_input_exactly_once() {
    let dir = inputs(12);
    let mut by_input: HashMap<String, usize> = HashMap::new();
    for k in 0..3 {
        let mut opts = options(dir.path());
        opts.shard = Some(Shard { index: k, count: 3 });
        let batch = Batch::new(opts).unwrap();
        let (summary, _) = run(&batch, &mut FakeRunner::new());
        assert!(summary.success());
        assert_eq!(summary.done.len() + summary.other_shard, 12);
        for done in summary.done {
            *by_input.entry(done.input).or_default() += 1;
        }
    }
    assert_eq!(by_input.len(), 12);
    assert!(by_input.values().all(|&n| n == 1), "{by_input:?}");
}

#[test]
fn two_runners_on_one_folder_share_the_work() {
    let dir = inputs(10);
    let root = dir.path().to_path_buf();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                let batch = Batch::new(options(&root)).unwrap();
                let mut runner = FakeRunner::new();
                runner.delay = Duration::from_millis(5);
                run(&batch, &mut runner).0
            })
        })
        .collect();
    let summaries: Vec<Summary> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut done: Vec<String> = summaries
        .iter()
        .flat_map(|s| s.done.iter().map(|d| d.input.clone()))
        .collect();
    done.sort();
    let before = done.len();
    done.dedup();
    assert_eq!(before, done.len(), "an input was done twice");
    assert_eq!(done.len(), 10);
    assert_eq!(pngs(&root.join("out")).len(), 10);
}

#[test]
fn bad_inputs_fail_with_reasons_and_the_good_ones_are_done() {
    let dir = inputs(2);
    let root = dir.path().join("in");
    let png = std::fs::read(fixtures().join("init-64.png")).unwrap();
    std::fs::write(root.join("empty.png"), b"").unwrap();
    std::fs::write(root.join("cut.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(root.join("letter.jpg"), b"Dear shop owner,\n").unwrap();
    std::fs::write(root.join("notes.txt"), b"not an input").unwrap();
    std::fs::copy(
        fixtures().join("batch/huge-20000.png"),
        root.join("huge.png"),
    )
    .unwrap();
    std::fs::copy(fixtures().join("batch/cmyk-64.jpg"), root.join("cmyk.jpg")).unwrap();
    let batch = Batch::new(options(dir.path())).unwrap();
    let (summary, _) = run(&batch, &mut FakeRunner::new());
    let reasons: HashMap<&str, &str> = summary
        .failed
        .iter()
        .map(|f| (f.input.as_str(), f.reason.code()))
        .collect();
    assert_eq!(reasons.get("empty.png"), Some(&"empty"));
    assert_eq!(reasons.get("cut.png"), Some(&"truncated"));
    assert_eq!(reasons.get("letter.jpg"), Some(&"not-an-image"));
    assert_eq!(reasons.get("huge.png"), Some(&"too-large"));
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(summary.done.len(), 3, "two PNGs and the CMYK JPEG");
    assert_eq!(summary.ignored, ["notes.txt"]);
    assert!(!summary.success());
}

#[test]
fn cancel_writes_nothing_and_releases_the_claim() {
    let dir = inputs(3);
    let batch = Batch::new(options(dir.path())).unwrap();
    let control = BatchControl::new();
    let cancel = control.clone();
    let mut runner = FakeRunner::new();
    runner.on_step = Some(Box::new(move |step| {
        if step == 2 {
            cancel.cancel();
        }
    }));
    let summary = run_batch(&batch, &mut runner, &control, &mut |_| {});
    assert!(summary.cancelled);
    assert!(summary.done.is_empty());
    assert!(pngs(&dir.path().join("out")).is_empty());
    let work = dir.path().join("out/.kiln-batch");
    assert_eq!(std::fs::read_dir(work.join("claims")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(work.join("tmp")).unwrap().count(), 0);
}

#[test]
fn pause_holds_the_batch_until_resume() {
    let dir = inputs(2);
    let batch = Batch::new(options(dir.path())).unwrap();
    let control = BatchControl::new();
    control.pause();
    let resumer = control.clone();
    let resumed_at = Arc::new(Mutex::new(None));
    let mark = resumed_at.clone();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        *mark.lock().unwrap() = Some(std::time::Instant::now());
        resumer.resume();
    });
    let mut first_progress = None;
    let summary = run_batch(&batch, &mut FakeRunner::new(), &control, &mut |e| {
        if matches!(e, BatchEvent::Progress { .. }) && first_progress.is_none() {
            first_progress = Some(std::time::Instant::now());
        }
    });
    waker.join().unwrap();
    assert_eq!(summary.done.len(), 2);
    let resumed = resumed_at.lock().unwrap().unwrap();
    assert!(first_progress.unwrap() >= resumed, "work ran while paused");
}

#[test]
fn watch_mode_takes_a_new_file_once_it_is_quiet() {
    let dir = inputs(1);
    let mut opts = options(dir.path());
    opts.watch = true;
    opts.settle = Duration::from_millis(300);
    let batch = Batch::new(opts).unwrap();
    let control = BatchControl::new();
    let stopper = control.clone();
    let folder = dir.path().join("in");
    let png = std::fs::read(fixtures().join("init-64.png")).unwrap();
    let mut done = Vec::new();
    let mut added = false;
    let started = std::time::Instant::now();
    let summary = run_batch(&batch, &mut FakeRunner::new(), &control, &mut |e| {
        if let BatchEvent::Done(d) = &e {
            done.push(d.input.clone());
        }
        if let BatchEvent::Failed(f) = &e {
            panic!("nothing should fail: {f:?}");
        }
        if matches!(e, BatchEvent::Waiting { .. }) {
            if !added && done.len() == 1 {
                // Half a file now, the rest a moment later: it must not be taken half-written.
                std::fs::write(folder.join("late.png"), &png[..png.len() / 2]).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(folder.join("late.png"), &png).unwrap();
                added = true;
            }
            if done.len() == 2 || started.elapsed() > Duration::from_secs(20) {
                stopper.cancel();
            }
        }
    });
    assert_eq!(done, ["sub/s0.png", "late.png"].map(String::from).to_vec());
    assert!(summary.failed.is_empty());
}

#[test]
fn the_app_can_move_a_batch_to_its_worker_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Batch>();
    send_sync::<BatchControl>();
    send_sync::<BatchEvent>();
    send_sync::<Summary>();
}
