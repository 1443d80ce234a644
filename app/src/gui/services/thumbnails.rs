//! Thumbnail loading for the gallery grid: one thread that makes (or reads from the disk cache)
//! the thumbnails the grid currently shows. The UI replaces the wanted list every frame it
//! changes, newest request first, so fast scrolling never queues thousands of stale loads.

use crate::library::gallery::load_or_make_thumbnail;
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// A loaded thumbnail (or why it could not be made).
pub struct Thumbnail {
    /// Gallery entry id.
    pub id: i64,
    /// The pixels.
    pub image: Result<image::RgbaImage, String>,
}

#[derive(Default)]
struct Wanted {
    /// Entries to load, most important last.
    list: Vec<(i64, PathBuf)>,
    /// Entries being loaded now (not asked for again until answered).
    taken: std::collections::HashSet<i64>,
    shutdown: bool,
}

struct Shared {
    wanted: Mutex<Wanted>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Wanted> {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The UI's handle on the thumbnail thread.
pub struct ThumbnailLoader {
    shared: Arc<Shared>,
    answers: Receiver<Thumbnail>,
}

const ANSWER_CAPACITY: usize = 64;

impl ThumbnailLoader {
    /// Starts the thread; thumbnails are `size` pixels and cached under `cache_dir`.
    pub fn spawn(
        cache_dir: PathBuf,
        size: u32,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            wanted: Mutex::new(Wanted::default()),
            ready: Condvar::new(),
        });
        let (answer_tx, answers) = crossbeam_channel::bounded(ANSWER_CAPACITY);
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("kiln-thumbnails".into())
            .spawn(move || serve(&thread_shared, &cache_dir, size, &answer_tx, &*wake))?;
        Ok(ThumbnailLoader { shared, answers })
    }

    /// Replaces what to load: `wanted` in order of importance (first = most important).
    pub fn set_wanted(&self, wanted: Vec<(i64, PathBuf)>) {
        let mut state = self.shared.lock();
        let taken = std::mem::take(&mut state.taken);
        state.list = wanted
            .into_iter()
            .rev()
            .filter(|(id, _)| !taken.contains(id))
            .collect();
        state.taken = taken;
        drop(state);
        self.shared.ready.notify_one();
    }

    /// Loaded thumbnails since the last call.
    pub fn try_loaded(&self) -> impl Iterator<Item = Thumbnail> + '_ {
        self.answers.try_iter()
    }
}

impl Drop for ThumbnailLoader {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.ready.notify_all();
    }
}

fn serve(
    shared: &Shared,
    cache_dir: &std::path::Path,
    size: u32,
    answers: &Sender<Thumbnail>,
    wake: &(dyn Fn() + Send + Sync),
) {
    loop {
        let (id, path) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(next) = state.list.pop() {
                    state.taken.insert(next.0);
                    break next;
                }
                state = shared.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let image = load_or_make_thumbnail(cache_dir, &path, size).map_err(|e| format!("{e:#}"));
        if answers.send(Thumbnail { id, image }).is_err() {
            return;
        }
        shared.lock().taken.remove(&id);
        wake();
    }
}
