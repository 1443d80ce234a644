//! The worker: the one thread that owns the inference `Engine`, runs a queue of jobs, and
//! reports progress, previews and results to the UI (or the CLI) over a bounded channel.
//!
//! The UI never blocks on it: it submits recipes, reads events with `try_iter`, and cancels by
//! id. A panic inside a job becomes that job's error and the worker carries on.

use crossbeam_channel::{Receiver, Sender};
use kiln_inference::{CancelToken, Engine, Output, Progress, Recipe};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Identifies a submitted job; ids increase with submission order.
pub type JobId = u64;

/// Something that turns recipes into images: the real [`Engine`], or a fake in tests.
pub trait Runner: Send + 'static {
    /// Runs one recipe, reporting progress, stopping when `cancel` is set.
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>>;

    /// The engine itself, for tasks that drive a pipeline panel by panel (comic stories);
    /// `None` for runners without one (test fakes).
    fn engine(&mut self) -> Option<&mut Engine> {
        None
    }
}

impl Runner for Engine {
    fn run(
        &mut self,
        recipe: &Recipe,
        on_progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> kiln_inference::Result<Vec<Output>> {
        Engine::run(self, recipe, on_progress, cancel)
    }

    fn engine(&mut self) -> Option<&mut Engine> {
        Some(self)
    }
}

/// Stores a finished image (file + index) and returns where it went.
pub type Saver = Box<dyn FnMut(&Output) -> anyhow::Result<PathBuf> + Send>;

/// A finished and saved image.
#[derive(Clone, Debug)]
pub struct SavedImage {
    /// Where the PNG was written.
    pub path: PathBuf,
    /// The recipe that reproduces it.
    pub recipe: Recipe,
    /// The pixels (shared, for display).
    pub image: Arc<image::RgbImage>,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub enum JobOutcome {
    /// All images done and saved.
    Done(Vec<SavedImage>),
    /// Stopped by the user; images finished before the stop are kept.
    Cancelled(Vec<SavedImage>),
    /// Failed with a message for the user.
    Failed(String),
}

/// What the worker tells the UI.
#[derive(Clone, Debug)]
pub enum WorkerEvent {
    /// A job left the queue and began.
    Started {
        /// The job.
        id: JobId,
    },
    /// Progress of the running job (lossy: only the newest matter).
    Progress {
        /// The job.
        id: JobId,
        /// Step, ETA, preview.
        progress: Progress,
    },
    /// A job ended (lossless).
    Finished {
        /// The job.
        id: JobId,
        /// Result.
        outcome: JobOutcome,
    },
}

/// State of a job in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its turn.
    Waiting,
    /// Running now.
    Running,
}

/// Work that is more than one recipe (a batch folder): it runs on the worker thread with the
/// runner, may report progress like a recipe job, stops when the token is cancelled, and says
/// how it ended.
pub type Task =
    Box<dyn FnOnce(&mut dyn Runner, &mut dyn FnMut(&Progress), &CancelToken) -> JobOutcome + Send>;

/// What a queued job does, as the queue list shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum JobKind {
    /// Makes the images of one recipe.
    Recipe(Box<Recipe>),
    /// A task, described for the user (e.g. "Batch: holiday → clay").
    Task(String),
}

impl JobKind {
    /// The recipe, for recipe jobs.
    pub fn recipe(&self) -> Option<&Recipe> {
        match self {
            JobKind::Recipe(recipe) => Some(recipe),
            JobKind::Task(_) => None,
        }
    }
}

/// A job as the queue list shows it.
#[derive(Clone, Debug)]
pub struct QueuedJob {
    /// The job.
    pub id: JobId,
    /// What it will make.
    pub kind: JobKind,
    /// Waiting or running.
    pub state: JobState,
}

enum Work {
    Recipe(Box<Recipe>),
    Task(Task),
}

struct Job {
    id: JobId,
    kind: JobKind,
    work: Work,
    cancel: CancelToken,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    running: Option<(JobId, JobKind, CancelToken)>,
    next_id: JobId,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic never happens while the lock is held, but recover the data if it did.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The UI's handle on the worker thread.
pub struct WorkerHandle {
    shared: Arc<Shared>,
    events: Receiver<WorkerEvent>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Events buffered before the worker waits for the UI (progress beyond it is dropped).
const EVENT_CAPACITY: usize = 256;

/// Starts the worker thread with its runner and saver; `wake` is called after every event
/// (the GUI passes `ctx.request_repaint`, the CLI `|| {}`).
pub fn spawn(
    runner: impl Runner,
    saver: Saver,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<WorkerHandle> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            next_id: 1,
            ..Queue::default()
        }),
        ready: Condvar::new(),
    });
    let (event_tx, events) = crossbeam_channel::bounded(EVENT_CAPACITY);
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name("kiln-worker".into())
        .spawn(move || worker_loop(runner, saver, &thread_shared, &event_tx, &wake))?;
    Ok(WorkerHandle {
        shared,
        events,
        thread: Some(thread),
    })
}

fn next_job(shared: &Shared) -> Option<Job> {
    let mut queue = shared.lock();
    loop {
        if queue.shutdown {
            return None;
        }
        if let Some(job) = queue.waiting.pop_front() {
            queue.running = Some((job.id, job.kind.clone(), job.cancel.clone()));
            return Some(job);
        }
        queue = shared.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn worker_loop(
    mut runner: impl Runner,
    mut saver: Saver,
    shared: &Shared,
    events: &Sender<WorkerEvent>,
    wake: &dyn Fn(),
) {
    while let Some(job) = next_job(shared) {
        let id = job.id;
        if events.send(WorkerEvent::Started { id }).is_err() {
            return; // The UI is gone.
        }
        wake();
        let mut on_progress = |p: &Progress| {
            let event = WorkerEvent::Progress {
                id,
                progress: p.clone(),
            };
            events.try_send(event).ok(); // Lossy by design.
            wake();
        };
        let cancel = job.cancel;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| match job.work {
            Work::Recipe(recipe) => match runner.run(&recipe, &mut on_progress, &cancel) {
                Ok(outputs) => save_all(&mut saver, &outputs),
                Err(kiln_inference::Error::Cancelled) => JobOutcome::Cancelled(Vec::new()),
                Err(e) => JobOutcome::Failed(format!("{e:#}")),
            },
            Work::Task(task) => task(&mut runner, &mut on_progress, &cancel),
        }));
        let outcome = result.unwrap_or_else(|payload| {
            JobOutcome::Failed(format!(
                "internal error: {} (the job was stopped; Kiln is still usable)",
                panic_message(payload.as_ref())
            ))
        });
        shared.lock().running = None;
        if events.send(WorkerEvent::Finished { id, outcome }).is_err() {
            return;
        }
        wake();
    }
}

fn save_all(saver: &mut Saver, outputs: &[Output]) -> JobOutcome {
    let mut saved = Vec::with_capacity(outputs.len());
    for output in outputs {
        match saver(output) {
            Ok(path) => saved.push(SavedImage {
                path,
                recipe: output.recipe.clone(),
                image: Arc::new(output.image.clone()),
            }),
            Err(e) => return JobOutcome::Failed(format!("could not save the image: {e:#}")),
        }
    }
    JobOutcome::Done(saved)
}

impl WorkerHandle {
    /// Queues a recipe; returns its id.
    pub fn submit(&self, recipe: Recipe) -> JobId {
        self.push(
            JobKind::Recipe(Box::new(recipe.clone())),
            Work::Recipe(Box::new(recipe)),
            CancelToken::default(),
        )
    }

    /// Queues a task described by `label`; `cancel` is its token (cancelling the job sets
    /// it, and the task's owner may set it too). Returns its id.
    pub fn submit_task(&self, label: String, cancel: CancelToken, task: Task) -> JobId {
        self.push(JobKind::Task(label), Work::Task(task), cancel)
    }

    fn push(&self, kind: JobKind, work: Work, cancel: CancelToken) -> JobId {
        let mut queue = self.shared.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiting.push_back(Job {
            id,
            kind,
            work,
            cancel,
        });
        drop(queue);
        self.shared.ready.notify_one();
        id
    }

    /// Cancels a job: a waiting one is removed, a running one stops within one step.
    /// Returns whether the job was found.
    pub fn cancel(&self, id: JobId) -> bool {
        let mut queue = self.shared.lock();
        if let Some((running, _, token)) = &queue.running
            && *running == id
        {
            token.cancel();
            return true;
        }
        let before = queue.waiting.len();
        queue.waiting.retain(|j| {
            if j.id == id {
                j.cancel.cancel();
            }
            j.id != id
        });
        queue.waiting.len() != before
    }

    /// The running job (if any) followed by the waiting ones, in order.
    pub fn queue(&self) -> Vec<QueuedJob> {
        let queue = self.shared.lock();
        let running = queue.running.iter().map(|(id, kind, _)| QueuedJob {
            id: *id,
            kind: kind.clone(),
            state: JobState::Running,
        });
        let waiting = queue.waiting.iter().map(|j| QueuedJob {
            id: j.id,
            kind: j.kind.clone(),
            state: JobState::Waiting,
        });
        running.chain(waiting).collect()
    }

    /// Events since the last call, without blocking.
    pub fn try_events(&self) -> impl Iterator<Item = WorkerEvent> + '_ {
        self.events.try_iter()
    }

    /// The event receiver (tests and the CLI may block on it).
    pub fn events(&self) -> &Receiver<WorkerEvent> {
        &self.events
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        {
            let mut queue = self.shared.lock();
            queue.shutdown = true;
            queue.waiting.clear();
            if let Some((_, _, token)) = &queue.running {
                token.cancel();
            }
        }
        self.shared.ready.notify_all();
        // Drain so a worker blocked on a full channel can finish, then join.
        while self.events.try_recv().is_ok() {}
        if let Some(thread) = self.thread.take() {
            // The worker ends within one step; if the UI is quitting anyway, don't wait forever
            // on a stuck model load: detach after the cancel.
            let _detached = thread;
        }
    }
}

#[cfg(test)]
mod tests;
