//! What the Gallery panel shows: the filter, the match count, the pages of entries loaded so far
//! (the grid is virtual: only visible rows are fetched), thumbnails, the selection and the
//! rebuild progress.

use crate::library::gallery::{GalleryEntry, GalleryQuery};
use egui::TextureHandle;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Entries fetched per request.
pub const PAGE_SIZE: usize = 120;
/// Thumbnail textures kept; the least recently shown beyond this are freed.
pub const THUMBNAILS_KEPT: usize = 600;

/// The date filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateFilter {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// Everything.
    #[default]
    All,
}

impl DateFilter {
    /// Every filter, in menu order.
    pub const ALL: [DateFilter; 3] = [DateFilter::Day, DateFilter::Week, DateFilter::All];

    /// The translation key of its label.
    pub fn label_key(self) -> &'static str {
        match self {
            DateFilter::Day => "gallery.date_day",
            DateFilter::Week => "gallery.date_week",
            DateFilter::All => "gallery.date_all",
        }
    }

    /// Seconds back from now, `None` for no limit.
    pub fn seconds(self) -> Option<i64> {
        match self {
            DateFilter::Day => Some(24 * 3600),
            DateFilter::Week => Some(7 * 24 * 3600),
            DateFilter::All => None,
        }
    }
}

/// A thumbnail's state.
pub enum Thumb {
    /// Uploaded; `last_used` is the frame it was last drawn.
    Loaded {
        /// The texture.
        texture: TextureHandle,
        /// Frame number it was last shown.
        last_used: u64,
    },
    /// Could not be made (missing or unreadable file).
    Failed,
}

/// Where an export (creation record or comparison) stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ExportStatus {
    /// Being written in the background.
    Running,
    /// Written: the folder holding `index.html`.
    Done(PathBuf),
    /// Failed: why.
    Failed(String),
}

/// The Gallery panel's state.
#[derive(Default)]
pub struct GalleryState {
    /// Search text over prompts.
    pub search: String,
    /// Model filter.
    pub model: Option<String>,
    /// Date filter.
    pub date: DateFilter,
    /// Model names for the filter menu.
    pub models: Vec<String>,
    /// Bumped on every filter change or refresh; answers of older generations are dropped.
    pub generation: u64,
    /// Matches of the current filter, once counted.
    pub count: Option<usize>,
    /// Loaded pages: index → (generation, entries).
    pub pages: HashMap<usize, (u64, Vec<GalleryEntry>)>,
    /// Pages asked for in the current generation.
    pub requested: HashSet<usize>,
    /// The selected entry (details pane).
    pub selected: Option<GalleryEntry>,
    /// Thumbnails by entry id.
    pub thumbnails: HashMap<i64, Thumb>,
    /// Rebuild progress `(done, total)` while one runs.
    pub rebuild: Option<(usize, usize)>,
    /// Result of the last rebuild: images indexed, or the error.
    pub rebuild_result: Option<Result<usize, String>>,
    /// The last query error.
    pub error: Option<String>,
    /// Whether the current filter needs to be (re)counted.
    pub stale: bool,
    /// Thumbnail ids last asked for (to ask again only when they change).
    pub last_wanted: Vec<i64>,
    /// Select the newest entry once it is loaded (screenshots).
    pub select_first: bool,
    /// Indices of the cells drawn in the last frame.
    pub visible: std::ops::Range<usize>,
    /// How many of them were still waiting for their entry (page not loaded yet).
    pub visible_without_entry: usize,
    /// "Compare with…" was clicked: the next thumbnail clicked becomes [`Self::compare`].
    pub compare_picking: bool,
    /// The entry compared with the selected one; while set (with a selection), the panel shows
    /// the two side by side instead of the grid.
    pub compare: Option<GalleryEntry>,
    /// The last export, shown in the details pane and the comparison view.
    pub export: Option<ExportStatus>,
}

impl GalleryState {
    /// A state that loads on first show.
    pub fn new() -> Self {
        GalleryState {
            stale: true,
            ..GalleryState::default()
        }
    }

    /// The query of the current filter (no paging), relative to `now_unix`.
    pub fn query(&self, now_unix: i64) -> GalleryQuery {
        GalleryQuery {
            text: self.search.trim().to_owned(),
            model: self.model.clone(),
            since_unix: self.date.seconds().map(|s| now_unix - s),
            until_unix: None,
            offset: 0,
            limit: 0,
        }
    }

    /// Marks everything for reloading (filter changed or a new image arrived); the pages shown
    /// stay until their replacements arrive.
    pub fn invalidate(&mut self) {
        self.generation += 1;
        self.requested.clear();
        self.stale = true;
    }

    /// The entry at `index` in the current order, if its page is loaded.
    pub fn entry(&self, index: usize) -> Option<&GalleryEntry> {
        let (_, entries) = self.pages.get(&(index / PAGE_SIZE))?;
        entries.get(index % PAGE_SIZE)
    }

    /// A thumbnail was clicked: it becomes the selection, or, while picking, the entry to
    /// compare with (clicking the selection itself keeps picking).
    pub fn click(&mut self, entry: GalleryEntry) {
        if self.compare_picking {
            if self.selected.as_ref().is_some_and(|s| s.id != entry.id) {
                self.compare_picking = false;
                self.compare = Some(entry);
            }
        } else {
            if self.selected.as_ref().is_none_or(|s| s.id != entry.id)
                && self.export != Some(ExportStatus::Running)
            {
                self.export = None; // The last export was of another entry.
            }
            self.selected = Some(entry);
        }
    }

    /// Closes the details (and the comparison that depends on them).
    pub fn deselect(&mut self) {
        self.selected = None;
        self.compare = None;
        self.compare_picking = false;
    }

    /// Accepts a count answer; drops pages of older generations.
    pub fn set_count(&mut self, generation: u64, count: usize) {
        if generation != self.generation {
            return;
        }
        self.count = Some(count);
        let current = self.generation;
        let fresh: HashSet<usize> = self
            .pages
            .iter()
            .filter(|(_, (g, _))| *g == current)
            .map(|(page, _)| *page)
            .collect();
        // Keep stale pages still being refreshed so the grid does not flash empty.
        self.pages
            .retain(|page, _| fresh.contains(page) || self.requested.contains(page));
    }

    /// Accepts a page answer.
    pub fn set_page(&mut self, generation: u64, page: usize, entries: Vec<GalleryEntry>) {
        if generation != self.generation {
            return;
        }
        if let Some(selected) = &self.selected
            && let Some(updated) = entries.iter().find(|e| e.id == selected.id)
        {
            self.selected = Some(updated.clone());
        }
        if self.select_first
            && page == 0
            && let Some(first) = entries.first()
        {
            self.select_first = false;
            self.selected = Some(first.clone());
        }
        self.pages.insert(page, (generation, entries));
    }

    /// Frees the least recently shown thumbnails beyond [`THUMBNAILS_KEPT`].
    pub fn trim_thumbnails(&mut self) {
        if self.thumbnails.len() <= THUMBNAILS_KEPT {
            return;
        }
        let mut used: Vec<(u64, i64)> = self
            .thumbnails
            .iter()
            .filter_map(|(id, thumb)| match thumb {
                Thumb::Loaded { last_used, .. } => Some((*last_used, *id)),
                Thumb::Failed => None,
            })
            .collect();
        used.sort_unstable();
        let excess = self.thumbnails.len().saturating_sub(THUMBNAILS_KEPT);
        for (_, id) in used.into_iter().take(excess) {
            self.thumbnails.remove(&id);
        }
    }
}
