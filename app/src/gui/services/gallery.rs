//! The gallery's background thread: it owns the SQLite [`Gallery`] and answers page, count and
//! model-list queries, index rebuilds and creation-record exports, tagged with the UI's query generation so stale
//! answers can be dropped.

use crate::library::gallery::{Gallery, GalleryEntry, GalleryQuery};
use crate::library::record::export_record;
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the UI asks of the gallery thread.
#[derive(Clone, Debug)]
pub enum GalleryRequest {
    /// Count the matches of a query.
    Count {
        /// The UI's query generation.
        generation: u64,
        /// The query.
        query: GalleryQuery,
    },
    /// One page of entries (the query's offset and limit).
    Page {
        /// The UI's query generation.
        generation: u64,
        /// Page index.
        page: usize,
        /// The query with offset and limit of the page.
        query: GalleryQuery,
    },
    /// The model names for the filter.
    Models,
    /// Re-index every PNG in a folder.
    Rebuild {
        /// The output folder.
        dir: PathBuf,
    },
    /// Index one file (a dropped or imported PNG).
    AddPng(PathBuf),
    /// Export the creation record of an entry into a new folder under `out_dir`.
    ExportRecord {
        /// The entry (its parents come along).
        id: i64,
        /// The records folder.
        out_dir: PathBuf,
    },
}

/// What the gallery thread answers.
#[derive(Clone, Debug)]
pub enum GalleryAnswer {
    /// Number of matches.
    Count {
        /// Generation of the request.
        generation: u64,
        /// Matches.
        count: usize,
    },
    /// Entries of a page.
    Page {
        /// Generation of the request.
        generation: u64,
        /// Page index.
        page: usize,
        /// The entries.
        entries: Vec<GalleryEntry>,
    },
    /// Model names in the index.
    Models(Vec<String>),
    /// Rebuild progress (lossy).
    RebuildProgress {
        /// Files done.
        done: usize,
        /// Files in all.
        total: usize,
    },
    /// Rebuild finished: images indexed, or the error.
    RebuildDone(Result<usize, String>),
    /// A creation record was written: its folder, or the error.
    RecordExported(Result<PathBuf, String>),
    /// A query failed.
    Failed(String),
}

/// The UI's handle on the gallery thread.
pub struct GalleryService {
    requests: Sender<GalleryRequest>,
    answers: Receiver<GalleryAnswer>,
}

const REQUEST_CAPACITY: usize = 256;
const ANSWER_CAPACITY: usize = 256;

impl GalleryService {
    /// Opens the index at `db_path` on a new thread (an in-memory index when the file cannot be
    /// opened; the error is reported as the first answer).
    pub fn spawn(db_path: &Path, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        let (requests, request_rx) = crossbeam_channel::bounded(REQUEST_CAPACITY);
        let (answer_tx, answers) = crossbeam_channel::bounded(ANSWER_CAPACITY);
        let db_path = db_path.to_path_buf();
        std::thread::Builder::new()
            .name("kiln-gallery".into())
            .spawn(move || {
                let gallery = match Gallery::open(&db_path) {
                    Ok(gallery) => gallery,
                    Err(e) => {
                        answer_tx.send(GalleryAnswer::Failed(format!("{e:#}"))).ok();
                        match Gallery::open_in_memory() {
                            Ok(gallery) => gallery,
                            Err(_) => return,
                        }
                    }
                };
                serve(&gallery, &request_rx, &answer_tx, &*wake);
            })?;
        Ok(GalleryService { requests, answers })
    }

    /// Sends a request; false when the queue is full (ask again next frame).
    pub fn request(&self, request: GalleryRequest) -> bool {
        self.requests.try_send(request).is_ok()
    }

    /// Answers since the last call.
    pub fn try_answers(&self) -> impl Iterator<Item = GalleryAnswer> + '_ {
        self.answers.try_iter()
    }
}

fn serve(
    gallery: &Gallery,
    requests: &Receiver<GalleryRequest>,
    answers: &Sender<GalleryAnswer>,
    wake: &(dyn Fn() + Send + Sync),
) {
    for request in requests {
        let answer = match request {
            GalleryRequest::Count { generation, query } => match gallery.count(&query) {
                Ok(count) => GalleryAnswer::Count { generation, count },
                Err(e) => GalleryAnswer::Failed(format!("{e:#}")),
            },
            GalleryRequest::Page {
                generation,
                page,
                query,
            } => match gallery.query(&query) {
                Ok(entries) => GalleryAnswer::Page {
                    generation,
                    page,
                    entries,
                },
                Err(e) => GalleryAnswer::Failed(format!("{e:#}")),
            },
            GalleryRequest::Models => match gallery.models() {
                Ok(models) => GalleryAnswer::Models(models),
                Err(e) => GalleryAnswer::Failed(format!("{e:#}")),
            },
            GalleryRequest::Rebuild { dir } => {
                let mut progress = |done: usize, total: usize| {
                    answers
                        .try_send(GalleryAnswer::RebuildProgress { done, total })
                        .ok(); // Lossy by design.
                    wake();
                };
                let result = gallery
                    .rebuild_from_folder(&dir, &mut progress)
                    .map_err(|e| format!("{e:#}"));
                GalleryAnswer::RebuildDone(result)
            }
            GalleryRequest::AddPng(path) => match gallery.add_png(&path) {
                Ok(_) => continue,
                Err(e) => GalleryAnswer::Failed(format!("{e:#}")),
            },
            GalleryRequest::ExportRecord { id, out_dir } => GalleryAnswer::RecordExported(
                gallery
                    .chain(id)
                    .and_then(|chain| export_record(&chain, &out_dir))
                    .map_err(|e| format!("{e:#}")),
            ),
        };
        if answers.send(answer).is_err() {
            return; // The UI is gone.
        }
        wake();
    }
}
