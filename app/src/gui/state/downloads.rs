//! What the model manager shows: the catalog, which entries are installed, running downloads
//! with their progress, errors, the licence confirmation, downloads offered for a preset that
//! lacks a model, and the Hub token field.

use crate::library::catalog::CatalogModel;
use crate::library::download::{InstallState, ModelProgress};
use std::collections::HashMap;

/// Requests about model downloads (Models panel, Presets panel, Settings).
#[derive(Clone, Debug, PartialEq)]
pub enum DownloadAction {
    /// Show the licence of catalog model `id` and ask before downloading it.
    ShowLicence(String),
    /// Download catalog model `id` (the user has seen its licence).
    Start(String),
    /// Stop the download of `id` (its `.part` files stay for a later resume).
    Cancel(String),
    /// Delete the files of `id` from Kiln's model folder.
    Remove(String),
    /// Look at the disk again (install states).
    Refresh,
    /// Save the token typed in Settings (keyring, else a private file).
    SaveToken,
    /// Forget the saved token.
    ClearToken,
}

/// A download running.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActiveDownload {
    /// The last progress report.
    pub progress: Option<ModelProgress>,
    /// Cancel was asked for; the thread ends at its next chunk.
    pub cancelling: bool,
}

/// Downloads offered because a preset lacks models.
#[derive(Clone, Debug, PartialEq)]
pub struct DownloadOffer {
    /// The preset's name, for the banner.
    pub preset: String,
    /// Catalog ids to offer, in order.
    pub ids: Vec<String>,
}

/// The model manager's state.
#[derive(Clone, Debug, Default)]
pub struct DownloadsState {
    /// The catalog (built-in, or `KILN_CATALOG`).
    pub catalog: Vec<CatalogModel>,
    /// Why the catalog could not be read.
    pub catalog_error: Option<String>,
    /// Install state by catalog id (from the last look at the disk).
    pub states: HashMap<String, InstallState>,
    /// Running downloads by catalog id.
    pub active: HashMap<String, ActiveDownload>,
    /// The last failure by catalog id.
    pub errors: HashMap<String, String>,
    /// Catalog id whose licence is shown for confirmation before its download starts.
    pub confirm: Option<String>,
    /// Downloads offered for presets.
    pub offers: Vec<DownloadOffer>,
    /// The Hub token being typed in Settings (cleared once saved).
    pub token_input: String,
    /// What happened to the token last (saved where, removed, or why not).
    pub token_status: Option<String>,
}

impl DownloadsState {
    /// The catalog entry `id`.
    pub fn model(&self, id: &str) -> Option<&CatalogModel> {
        self.catalog.iter().find(|m| m.id == id)
    }

    /// Whether `id` is installed.
    pub fn installed(&self, id: &str) -> bool {
        self.states.get(id) == Some(&InstallState::Installed)
    }

    /// Offers the catalog models in `ids` that are known and not installed, for `preset`
    /// (replacing an earlier offer for the same preset).
    pub fn offer(&mut self, preset: &str, ids: impl IntoIterator<Item = String>) {
        let mut wanted: Vec<String> = Vec::new();
        for id in ids {
            if self.model(&id).is_some() && !self.installed(&id) && !wanted.contains(&id) {
                wanted.push(id);
            }
        }
        self.offers.retain(|o| o.preset != preset);
        if !wanted.is_empty() {
            self.offers.push(DownloadOffer {
                preset: preset.to_owned(),
                ids: wanted,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> CatalogModel {
        CatalogModel {
            id: id.into(),
            ..CatalogModel::default()
        }
    }

    #[test]
    fn offers_skip_installed_unknown_and_repeated_models() {
        let mut state = DownloadsState {
            catalog: vec![model("a"), model("b"), model("c")],
            ..DownloadsState::default()
        };
        state.states.insert("b".into(), InstallState::Installed);
        let ids = ["a", "b", "x", "a", "c"].map(String::from);
        state.offer("Clay", ids);
        assert_eq!(state.offers.len(), 1);
        assert_eq!(state.offers[0].ids, ["a", "c"]);
        // A new offer for the same preset replaces the old one; nothing left: no offer.
        state.states.insert("a".into(), InstallState::Installed);
        state.states.insert("c".into(), InstallState::Installed);
        state.offer("Clay", ["a".to_owned()]);
        assert!(state.offers.is_empty());
    }
}
