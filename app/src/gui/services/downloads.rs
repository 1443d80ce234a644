//! Model downloads for the app: each download on its own thread (blocking HTTP, see
//! [`crate::library::download`]), install states, removals and the Hub token on short-lived
//! threads. Everything reports through one bounded channel polled in `logic`; progress is
//! lossy, outcomes are not.

use crate::library::catalog::CatalogModel;
use crate::library::download::{
    self, DownloadError, FileReport, HubOptions, InstallState, ModelProgress,
};
use crossbeam_channel::{Receiver, Sender};
use kiln_inference::CancelToken;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Reports buffered before a finishing thread waits for the UI.
const CAPACITY: usize = 256;

/// What a download thread or task reports.
#[derive(Debug)]
pub enum DownloadEvent {
    /// Progress of a running download.
    Progress {
        /// Catalog id.
        id: String,
        /// Where it is.
        progress: ModelProgress,
    },
    /// A download ended.
    Finished {
        /// Catalog id.
        id: String,
        /// The files, or why not (`Err(None)`: cancelled).
        result: Result<Vec<FileReport>, Option<String>>,
    },
    /// Install states of the catalog.
    States(HashMap<String, InstallState>),
    /// A model's files were removed (how many), or why not.
    Removed {
        /// Catalog id.
        id: String,
        /// Files removed, or the error.
        result: Result<usize, String>,
    },
    /// The token was saved (where), removed (`Ok(None)`), or why not.
    Token(Result<Option<String>, String>),
}

/// Where downloads go and how.
#[derive(Clone, Debug)]
pub struct DownloadSetup {
    /// Kiln's model folder (the first model folder).
    pub models_dir: PathBuf,
    /// Config folder (the token's fallback file).
    pub config_dir: PathBuf,
    /// Hub endpoint (`None`: `HF_ENDPOINT`, else huggingface.co).
    pub endpoint: Option<String>,
    /// Proxy (`None`: the environment).
    pub proxy: Option<String>,
}

/// Runs downloads and reports back.
pub struct DownloadService {
    events_tx: Sender<DownloadEvent>,
    events_rx: Receiver<DownloadEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
    cancels: HashMap<String, CancelToken>,
}

impl DownloadService {
    /// A service; `wake` asks the UI for a frame when something arrives.
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (events_tx, events_rx) = crossbeam_channel::bounded(CAPACITY);
        DownloadService {
            events_tx,
            events_rx,
            wake,
            cancels: HashMap::new(),
        }
    }

    fn spawn(&self, name: &str, work: impl FnOnce(&Sender<DownloadEvent>) + Send + 'static) {
        let tx = self.events_tx.clone();
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("kiln-{name}"))
            .spawn(move || {
                work(&tx);
                wake();
            });
        if let Err(e) = spawned {
            self.events_tx
                .try_send(DownloadEvent::Token(Err(format!(
                    "cannot start a background thread: {e}"
                ))))
                .ok();
        }
    }

    /// Whether `id` is downloading.
    pub fn running(&self, id: &str) -> bool {
        self.cancels.contains_key(id)
    }

    /// Starts downloading `model` (nothing when it already runs).
    pub fn start(&mut self, model: CatalogModel, setup: DownloadSetup) {
        if self.running(&model.id) {
            return;
        }
        let cancel = CancelToken::default();
        self.cancels.insert(model.id.clone(), cancel.clone());
        let wake = self.wake.clone();
        self.spawn("download", move |tx| {
            let mut options = HubOptions::from_env();
            if let Some(endpoint) = setup.endpoint.filter(|e| !e.trim().is_empty()) {
                options.endpoint = endpoint.trim().to_owned();
            }
            options.proxy = setup.proxy.filter(|p| !p.trim().is_empty());
            if options.token.is_none() {
                options.token = download::token::load_token(&setup.config_dir);
            }
            let id = model.id.clone();
            let result = download::download_model(
                &model,
                &setup.models_dir,
                &options,
                &cancel,
                &mut |progress| {
                    let event = DownloadEvent::Progress {
                        id: id.clone(),
                        progress: progress.clone(),
                    };
                    if tx.try_send(event).is_ok() {
                        wake();
                    }
                },
            );
            let result = match result {
                Ok(files) => Ok(files),
                Err(DownloadError::Cancelled) => Err(None),
                Err(error) => Err(Some(error.to_string())),
            };
            // The UI is gone when this fails; nothing is left to tell.
            tx.send(DownloadEvent::Finished { id, result }).ok();
        });
    }

    /// Asks the download of `id` to stop.
    pub fn cancel(&self, id: &str) {
        if let Some(cancel) = self.cancels.get(id) {
            cancel.cancel();
        }
    }

    /// Looks at the disk for every catalog model.
    pub fn refresh_states(&self, catalog: Vec<CatalogModel>, models_dir: PathBuf) {
        self.spawn("download-states", move |tx| {
            let states = catalog
                .iter()
                .map(|m| (m.id.clone(), download::install_state(m, &models_dir)))
                .collect();
            tx.send(DownloadEvent::States(states)).ok();
        });
    }

    /// Removes the files of `model`.
    pub fn remove(&self, model: CatalogModel, models_dir: PathBuf) {
        self.spawn("download-remove", move |tx| {
            let result = download::remove_model(&model, &models_dir)
                .map(|removed| removed.len())
                .map_err(|e| e.to_string());
            tx.send(DownloadEvent::Removed {
                id: model.id,
                result,
            })
            .ok();
        });
    }

    /// Saves (`Some`) or forgets (`None`) the Hub token.
    pub fn set_token(&self, config_dir: PathBuf, token: Option<String>) {
        self.spawn("hub-token", move |tx| {
            let result = match token {
                Some(token) => download::token::save_token(&config_dir, &token)
                    .map(|location| {
                        Some(match location {
                            download::token::TokenLocation::Keyring => "keyring".to_owned(),
                            download::token::TokenLocation::File(path, _) => {
                                path.display().to_string()
                            }
                        })
                    })
                    .map_err(|e| format!("{e:#}")),
                None => download::token::delete_token(&config_dir)
                    .map(|()| None)
                    .map_err(|e| format!("{e:#}")),
            };
            tx.send(DownloadEvent::Token(result)).ok();
        });
    }

    /// Events since the last call, without blocking. A finished download is forgotten here.
    pub fn try_events(&mut self) -> Vec<DownloadEvent> {
        let events: Vec<DownloadEvent> = self.events_rx.try_iter().collect();
        for event in &events {
            if let DownloadEvent::Finished { id, .. } = event {
                self.cancels.remove(id);
            }
        }
        events
    }
}
