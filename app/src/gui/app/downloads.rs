//! `KilnApp`'s side of the model manager: loads the catalog, routes [`DownloadAction`]s to the
//! [`DownloadService`], applies its events (progress, finished downloads, install states, the
//! token) to the UI state, and offers the downloads a preset lacks.

use super::KilnApp;
use crate::gui::services::downloads::{DownloadEvent, DownloadSetup};
use crate::gui::state::NoticeKind;
use crate::gui::state::downloads::{ActiveDownload, DownloadAction};
use crate::i18n::{tr, tr_args};
use crate::library::catalog::Catalog;
use std::path::PathBuf;

impl KilnApp {
    /// Kiln's own model folder: where downloads go.
    fn downloads_dir(&self) -> PathBuf {
        self.state
            .settings
            .model_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| self.paths.data_dir.join("models"))
    }

    fn download_setup(&self) -> DownloadSetup {
        DownloadSetup {
            models_dir: self.downloads_dir(),
            config_dir: self.paths.config_dir.clone(),
            endpoint: self.state.settings.hub_endpoint.clone(),
            proxy: self.state.settings.proxy.clone(),
        }
    }

    /// Reads the catalog (`KILN_CATALOG` or the built-in one) and looks at the disk.
    pub(super) fn init_downloads(&mut self) {
        match Catalog::from_env() {
            Ok(catalog) => self.state.downloads.catalog = catalog.models,
            Err(error) => self.state.downloads.catalog_error = Some(error),
        }
        self.refresh_download_states();
    }

    /// Looks at the disk again for every catalog model.
    pub fn refresh_download_states(&mut self) {
        let catalog = self.state.downloads.catalog.clone();
        let dir = self.downloads_dir();
        self.services.downloads.refresh_states(catalog, dir);
    }

    /// Carries out one download action.
    pub(super) fn route_download(&mut self, action: DownloadAction) {
        let lang = self.state.lang();
        match action {
            DownloadAction::ShowLicence(id) => self.state.downloads.confirm = Some(id),
            DownloadAction::Start(id) => {
                let Some(model) = self.state.downloads.model(&id).cloned() else {
                    return;
                };
                self.state.downloads.errors.remove(&id);
                self.state
                    .downloads
                    .active
                    .insert(id, ActiveDownload::default());
                let setup = self.download_setup();
                self.services.downloads.start(model, setup);
            }
            DownloadAction::Cancel(id) => {
                if let Some(active) = self.state.downloads.active.get_mut(&id) {
                    active.cancelling = true;
                }
                self.services.downloads.cancel(&id);
            }
            DownloadAction::Remove(id) => {
                if let Some(model) = self.state.downloads.model(&id).cloned() {
                    let dir = self.downloads_dir();
                    self.services.downloads.remove(model, dir);
                }
            }
            DownloadAction::Refresh => self.refresh_download_states(),
            DownloadAction::SaveToken => {
                let token = std::mem::take(&mut self.state.downloads.token_input);
                if !token.trim().is_empty() {
                    self.state.downloads.token_status = Some(tr(lang, "downloads.saving").into());
                    let config = self.paths.config_dir.clone();
                    self.services.downloads.set_token(config, Some(token));
                }
            }
            DownloadAction::ClearToken => {
                self.state.downloads.token_input.clear();
                let config = self.paths.config_dir.clone();
                self.services.downloads.set_token(config, None);
            }
        }
    }

    /// Applies what the download threads reported.
    pub(super) fn drain_downloads(&mut self, ctx: &egui::Context) {
        let lang = self.state.lang();
        let events = self.services.downloads.try_events();
        let mut rescan = false;
        for event in events {
            let downloads = &mut self.state.downloads;
            match event {
                DownloadEvent::Progress { id, progress } => {
                    if let Some(active) = downloads.active.get_mut(&id) {
                        active.progress = Some(progress);
                    }
                }
                DownloadEvent::Finished { id, result } => {
                    downloads.active.remove(&id);
                    let name = downloads.model(&id).map_or(id.clone(), |m| m.name.clone());
                    match result {
                        Ok(_) => {
                            rescan = true;
                            for offer in &mut downloads.offers {
                                offer.ids.retain(|i| *i != id);
                            }
                            downloads.offers.retain(|o| !o.ids.is_empty());
                            self.state.notify(
                                NoticeKind::Info,
                                tr_args(lang, "downloads.done", &[("name", &name)]),
                            );
                        }
                        Err(None) => {}
                        Err(Some(error)) => {
                            downloads.errors.insert(id, error.clone());
                            self.state.notify(
                                NoticeKind::Error,
                                tr_args(
                                    lang,
                                    "downloads.failed",
                                    &[("name", &name), ("error", &error)],
                                ),
                            );
                        }
                    }
                    self.refresh_download_states();
                }
                DownloadEvent::States(states) => {
                    // Each refresh runs on its own thread, so an earlier one (for an earlier
                    // catalog) may answer last: keep only the models listed now.
                    let listed: std::collections::HashSet<String> =
                        downloads.catalog.iter().map(|m| m.id.clone()).collect();
                    downloads.states.retain(|id, _| listed.contains(id));
                    downloads
                        .states
                        .extend(states.into_iter().filter(|(id, _)| listed.contains(id)));
                }
                DownloadEvent::Removed { id, result } => {
                    match result {
                        Ok(_) => rescan = true,
                        Err(error) => {
                            downloads.errors.insert(id, error);
                        }
                    }
                    self.refresh_download_states();
                }
                DownloadEvent::Token(result) => {
                    downloads.token_status = Some(match result {
                        Ok(Some(place)) => {
                            tr_args(lang, "downloads.token_saved", &[("place", &place)])
                        }
                        Ok(None) => tr(lang, "downloads.token_cleared").to_owned(),
                        Err(error) => error,
                    });
                }
            }
        }
        if rescan {
            self.rescan_models();
        }
        if !self.state.downloads.active.is_empty() {
            // Speed and ETA keep moving between progress events.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
    }

    /// Offers the catalog downloads `ids` for a preset that lacks them.
    pub(super) fn offer_downloads(&mut self, preset: &str, ids: Vec<String>) {
        self.state.downloads.offer(preset, ids);
    }
}
