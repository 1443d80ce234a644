//! AutoV2 model hashes (first 10 hex digits of the file's SHA-256, as A1111 and Civitai show
//! them) computed on a background thread. Hashing a 7 GB checkpoint takes tens of seconds, so
//! each file is hashed once: results are cached in `<data_dir>/model-hashes.json`, keyed by
//! path and checked against size and modification time.

use crate::library::fsutil::{atomic_write, mtime_nanos};
use crate::library::settings::data_dir;
use crossbeam_channel::{Receiver, Sender};
use kiln_inference::io::model::ModelFiles;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// File name of the hash cache in the data folder.
pub const HASH_CACHE_FILE: &str = "model-hashes.json";

/// Results waiting for the UI; the worker waits (losing nothing) when the UI falls behind.
const RESULT_CAPACITY: usize = 256;

/// Length of an AutoV2 hash.
const AUTOV2_LEN: usize = 10;

/// One hash result: the requested path and its AutoV2 hash, or why it could not be hashed.
pub type HashResult = (PathBuf, Result<String, String>);

/// Background AutoV2 hashing. [`HashJobs::request`] queues a file or diffusers folder (its UNet
/// file is hashed, as A1111 names folders' models); [`HashJobs::try_results`] drains what is
/// done without blocking. `wake` is called after each result (pass `ctx.request_repaint`).
/// Dropping it stops the thread within one megabyte of reading.
pub struct HashJobs {
    queue: Arc<Queue>,
    kick: Option<Sender<()>>,
    results: Receiver<HashResult>,
    stop: Arc<AtomicBool>,
    /// Why the thread could not start; every request then fails with it.
    start_error: Option<String>,
    failed: Mutex<Vec<HashResult>>,
}

impl std::fmt::Debug for HashJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashJobs")
            .field("start_error", &self.start_error)
            .finish_non_exhaustive()
    }
}

/// Paths waiting to be hashed, each once.
#[derive(Default)]
struct Queue {
    waiting: Mutex<(VecDeque<PathBuf>, HashSet<PathBuf>)>,
}

impl Queue {
    /// Adds `path` unless it is already waiting; returns whether it was added.
    fn push(&self, path: PathBuf) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let (order, members) = &mut *waiting;
        if members.insert(path.clone()) {
            order.push_back(path);
            true
        } else {
            false
        }
    }

    fn pop(&self) -> Option<PathBuf> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let (order, members) = &mut *waiting;
        let path = order.pop_front()?;
        members.remove(&path);
        Some(path)
    }
}

/// One cached hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CacheEntry {
    /// The file that was hashed (a folder's UNet file).
    file: PathBuf,
    size: u64,
    /// Modification time in nanoseconds since the epoch (as text: JSON numbers are f64 to many
    /// readers).
    mtime_ns: String,
    /// Full SHA-256, hex.
    sha256: String,
}

/// The cache file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct HashCache {
    version: u32,
    /// Requested path → hash.
    entries: BTreeMap<PathBuf, CacheEntry>,
}

impl HashCache {
    /// Reads the cache; a missing or unreadable one starts empty (it is only a cache).
    fn load(path: Option<&Path>) -> HashCache {
        path.and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self, path: Option<&Path>) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        atomic_write(path, &json).map_err(|e| format!("{e:#}"))
    }
}

/// Size and modification time of a file, as the cache compares them.
fn file_stamp(file: &Path) -> Result<(u64, String), String> {
    let metadata = std::fs::metadata(file).map_err(|e| format!("{e}: {}", file.display()))?;
    if !metadata.is_file() {
        return Err(format!("not a file: {}", file.display()));
    }
    Ok((metadata.len(), mtime_nanos(&metadata).to_string()))
}

/// Streams the SHA-256 of `file`, giving up when `stop` is set.
fn sha256_stoppable(file: &Path, stop: &AtomicBool) -> Result<String, String> {
    let mut reader =
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("cancelled".into());
        }
        let n = reader
            .read(&mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let Some(chunk) = buffer.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        hasher.update(chunk);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The file whose hash names the model at `path`: the file itself, or a folder's UNet file.
fn hash_file_of(path: &Path) -> Result<PathBuf, String> {
    if path.is_dir() {
        ModelFiles::open(path)
            .map(|files| files.hash_file)
            .map_err(|e| e.to_string())
    } else {
        Ok(path.to_path_buf())
    }
}

/// The hashing thread's state.
struct Worker {
    cache: HashCache,
    cache_path: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// Full SHA-256 of the model at `path`, from the cache when the file is unchanged.
    fn sha256(&mut self, path: &Path) -> Result<String, String> {
        if let Some(entry) = self.cache.entries.get(path)
            && file_stamp(&entry.file).ok() == Some((entry.size, entry.mtime_ns.clone()))
        {
            return Ok(entry.sha256.clone());
        }
        let file = hash_file_of(path)?;
        let (size, mtime_ns) = file_stamp(&file)?;
        let sha256 = sha256_stoppable(&file, &self.stop)?;
        let entry = CacheEntry {
            file,
            size,
            mtime_ns,
            sha256: sha256.clone(),
        };
        self.cache.entries.insert(path.to_path_buf(), entry);
        // A cache that cannot be written costs time later, not correctness.
        self.cache.save(self.cache_path.as_deref()).ok();
        Ok(sha256)
    }

    fn run(
        mut self,
        queue: &Queue,
        kick: &Receiver<()>,
        results: &Sender<HashResult>,
        wake: &dyn Fn(),
    ) {
        self.cache = HashCache::load(self.cache_path.as_deref());
        loop {
            let Some(path) = queue.pop() else {
                if kick.recv().is_err() {
                    return; // The `HashJobs` was dropped.
                }
                continue;
            };
            let result = self
                .sha256(&path)
                .map(|sha| sha.chars().take(AUTOV2_LEN).collect());
            if self.stop.load(Ordering::Relaxed) || results.send((path, result)).is_err() {
                return;
            }
            wake();
        }
    }
}

impl HashJobs {
    /// Starts the hashing thread, caching in `<data_dir>/model-hashes.json`.
    pub fn spawn(wake: impl Fn() + Send + 'static) -> HashJobs {
        HashJobs::spawn_with_cache(Some(data_dir().join(HASH_CACHE_FILE)), wake)
    }

    /// Starts the hashing thread with the cache at `cache_file` (`None`: no cache on disk).
    pub fn spawn_with_cache(
        cache_file: Option<PathBuf>,
        wake: impl Fn() + Send + 'static,
    ) -> HashJobs {
        let queue = Arc::new(Queue::default());
        let (kick_tx, kick_rx) = crossbeam_channel::bounded::<()>(1);
        let (result_tx, result_rx) = crossbeam_channel::bounded(RESULT_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cache: HashCache::default(),
            cache_path: cache_file,
            stop: stop.clone(),
        };
        let thread_queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("kiln-model-hash".into())
            .spawn(move || worker.run(&thread_queue, &kick_rx, &result_tx, &wake));
        let start_error = spawned
            .err()
            .map(|e| format!("cannot start the hashing thread: {e}"));
        HashJobs {
            queue,
            kick: Some(kick_tx),
            results: result_rx,
            stop,
            start_error,
            failed: Mutex::new(Vec::new()),
        }
    }

    /// Queues `path` (a model file or diffusers folder) for hashing; a path already waiting is
    /// not queued twice. Never blocks.
    pub fn request(&self, path: impl Into<PathBuf>) {
        let path = path.into();
        if let Some(error) = &self.start_error {
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((path, Err(error.clone())));
            return;
        }
        if self.queue.push(path)
            && let Some(kick) = &self.kick
        {
            // Full means a wake-up is already pending, so the worker will see the new path;
            // disconnected means the worker has ended (it only does when dropped or panicking).
            kick.try_send(()).ok();
        }
    }

    /// The results finished since the last call, in completion order: `Ok(autov2)` (10
    /// lower-case hex digits) or `Err(reason)`. Never blocks.
    pub fn try_results(&self) -> Vec<HashResult> {
        let mut results: Vec<HashResult> =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        results.extend(self.results.try_iter());
        results
    }
}

impl Drop for HashJobs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.kick = None; // Disconnects: a waiting worker wakes and ends.
    }
}
