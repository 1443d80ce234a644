//! What the Presets panel shows: the preset list (built-ins and the user's), thumbnails as
//! textures (decoded once, off the UI thread), the search text, the photo waiting for a style,
//! card rectangles for drops, and the open dialog (save, edit, delete, replace).

use crate::library::presets::{Preset, PresetEntry};
use egui::TextureHandle;
use std::collections::HashMap;
use std::path::PathBuf;

/// A card's thumbnail: the texture and the key of the PNG bytes it was decoded from.
pub struct PresetThumb {
    /// Hash of the PNG bytes (a changed thumbnail is decoded again).
    pub key: u64,
    /// The uploaded pixels.
    pub texture: TextureHandle,
}

/// The fields of the save and edit dialogs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresetDraft {
    /// Name (in the UI language).
    pub name: String,
    /// Short description (in the UI language).
    pub description: String,
    /// Prompt template (`{prompt}` is the user's prompt or the photo's caption).
    pub template: String,
}

/// A write to the user presets that may ask "replace?" first.
#[derive(Clone, Debug, PartialEq)]
pub enum PresetWrite {
    /// Save the form as a new user preset.
    SaveNew {
        /// The fields typed into the dialog.
        draft: PresetDraft,
        /// The form as a recipe.
        recipe: Box<kiln_inference::Recipe>,
        /// Image to make the thumbnail from (the last output).
        thumbnail_from: Option<PathBuf>,
    },
    /// Save an edited preset under its id (a built-in's id makes a user copy that replaces it).
    Update {
        /// The edited preset.
        preset: Box<Preset>,
        /// New thumbnail source; `None` keeps the current one.
        thumbnail_from: Option<PathBuf>,
    },
    /// Import a preset file (and the PNG of the same name next to it).
    Import(PathBuf),
    /// Export preset `id` into a folder.
    Export {
        /// The preset.
        id: String,
        /// The folder.
        dir: PathBuf,
    },
}

/// The dialog open over the Presets panel.
#[derive(Clone, Debug, PartialEq)]
pub enum PresetDialog {
    /// "Save current settings as a preset".
    Save(PresetDraft),
    /// Edit a preset's name, description and template.
    Edit {
        /// The preset being edited (as listed).
        preset: Box<Preset>,
        /// The fields.
        draft: PresetDraft,
    },
    /// "Delete this preset?"
    ConfirmDelete {
        /// The preset id.
        id: String,
        /// Its name, for the question.
        name: String,
    },
    /// A write found something in the way: replace it?
    ConfirmReplace {
        /// The write to repeat with overwrite.
        write: PresetWrite,
        /// What is in the way, for the question.
        message: String,
    },
}

/// The preset applied to the form last: re-applying (or applying another) fills the template
/// with the prompt the user had typed, not with the previous template's result.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedPreset {
    /// The preset id.
    pub id: String,
    /// The user's own prompt before the template.
    pub subject: String,
    /// The prompt the template produced.
    pub prompt: String,
}

/// The Presets panel's state.
#[derive(Default)]
pub struct PresetsState {
    /// Presets in gallery order (built-ins, then the user's).
    pub entries: Vec<PresetEntry>,
    /// User preset files that could not be read (shown, never dropped silently).
    pub issues: Vec<String>,
    /// A listing has arrived at least once.
    pub loaded: bool,
    /// A listing is being made.
    pub loading: bool,
    /// Something changed while listing: list again when it ends.
    pub reload_again: bool,
    /// The search box.
    pub search: String,
    /// Thumbnails by preset id.
    pub thumbnails: HashMap<String, PresetThumb>,
    /// Card rectangles of the last frame, for drops onto a card.
    pub card_rects: Vec<(String, egui::Rect)>,
    /// A photo waiting for a style: clicking a card runs the preset on it.
    pub photo: Option<PathBuf>,
    /// Presets being resolved (apply or run), by id.
    pub busy: Vec<String>,
    /// The open dialog.
    pub dialog: Option<PresetDialog>,
    /// A write is running (dialog buttons wait).
    pub writing: bool,
    /// The preset applied to the form last.
    pub applied: Option<AppliedPreset>,
    /// The preset whose export folder is being picked.
    pub export_id: Option<String>,
}

impl PresetsState {
    /// The entries matching the search box, in gallery order.
    pub fn visible(&self) -> Vec<&PresetEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.matches(&self.search))
            .collect()
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<&PresetEntry> {
        self.entries.iter().find(|e| e.id() == id)
    }

    /// The card under `pos` in the last frame.
    pub fn card_at(&self, pos: egui::Pos2) -> Option<&str> {
        self.card_rects
            .iter()
            .find(|(_, rect)| rect.contains(pos))
            .map(|(id, _)| id.as_str())
    }
}
