//! Undo and redo. An edit stores only the tiles it touched, as they were before it (tiles that
//! were transparent cost nothing); undoing swaps them with the layer's current tiles, so the
//! same entry, now holding the "after" tiles, becomes the redo step. Layer removals keep the
//! layer itself.
//!
//! At least [`MIN_STEPS`] steps are always kept; older ones go once the history holds more than
//! [`BYTE_BUDGET`] bytes or [`MAX_STEPS`] steps.

use super::layer::{Layer, TileData, TileIndex};
use super::region::RegionPrompt;
use super::text::TextSpec;

/// Steps always kept.
pub const MIN_STEPS: usize = 100;
/// Steps never exceeded.
pub const MAX_STEPS: usize = 1000;
/// Bytes of saved pixels above which old steps (beyond [`MIN_STEPS`]) are dropped.
pub const BYTE_BUDGET: usize = 1 << 30;

/// One undoable step.
#[derive(Debug)]
pub enum Entry {
    /// Tiles of one layer as they were on the other side of the step.
    Pixels {
        /// The layer.
        layer: u64,
        /// The saved tiles.
        tiles: Vec<(TileIndex, TileData)>,
    },
    /// A layer was removed from `index`.
    LayerRemoved {
        /// Where it was.
        index: usize,
        /// The layer.
        layer: Box<Layer>,
    },
    /// A layer was added.
    LayerInserted {
        /// The layer.
        id: u64,
    },
    /// A text layer's text as it was on the other side of the step.
    Text {
        /// The layer.
        layer: u64,
        /// The text.
        spec: TextSpec,
        /// Further edits of the same layer join this step (typing, dragging).
        open: bool,
    },
    /// A region layer's prompt as it was on the other side of the step.
    Region {
        /// The layer.
        layer: u64,
        /// The prompt, negative and weight.
        region: RegionPrompt,
        /// Further edits of the same layer join this step (typing, dragging the weight).
        open: bool,
    },
}

impl Entry {
    /// Bytes of pixels held.
    pub fn bytes(&self) -> usize {
        match self {
            Entry::Pixels { tiles, .. } => tiles.iter().map(|(_, t)| t.bytes()).sum(),
            Entry::LayerRemoved { layer, .. } => layer.pixels().map_or(0, <[u8]>::len),
            Entry::LayerInserted { .. } => 0,
            Entry::Text { spec, .. } => spec.text.len(),
            Entry::Region { region, .. } => region.prompt.len() + region.negative.len(),
        }
    }

    /// Whether the step concerns layer `id`.
    fn concerns(&self, id: u64) -> bool {
        match self {
            Entry::Pixels { layer, .. } => *layer == id,
            Entry::LayerRemoved { layer, .. } => layer.id == id,
            Entry::LayerInserted { id: inserted } => *inserted == id,
            Entry::Text { layer, .. } | Entry::Region { layer, .. } => *layer == id,
        }
    }
}

/// The undo and redo stacks.
#[derive(Debug, Default)]
pub struct History {
    undo: Vec<Entry>,
    redo: Vec<Entry>,
}

impl History {
    /// Records a new step (the redo stack is dropped) and trims old steps.
    pub fn push(&mut self, entry: Entry) {
        self.redo.clear();
        self.undo.push(entry);
        self.trim();
    }

    /// The step to undo, taken off the stack.
    pub fn take_undo(&mut self) -> Option<Entry> {
        self.undo.pop()
    }

    /// The step to redo, taken off the stack.
    pub fn take_redo(&mut self) -> Option<Entry> {
        self.redo.pop()
    }

    /// Puts an undone step's inverse on the redo stack.
    pub fn undone(&mut self, inverse: Entry) {
        self.redo.push(inverse);
    }

    /// Puts a redone step's inverse back on the undo stack.
    pub fn redone(&mut self, inverse: Entry) {
        self.undo.push(inverse);
        self.trim();
    }

    /// Whether the last step is an open text or region edit of layer `id` (nothing to redo),
    /// which a further edit joins.
    pub fn text_edit_open(&self, id: u64) -> bool {
        self.redo.is_empty()
            && matches!(
                self.undo.last(),
                Some(
                    Entry::Text { layer, open: true, .. } | Entry::Region { layer, open: true, .. }
                ) if *layer == id
            )
    }

    /// Closes an open text or region edit: the next edit is a step of its own.
    pub fn close_text_edit(&mut self) {
        if let Some(Entry::Text { open, .. } | Entry::Region { open, .. }) = self.undo.last_mut() {
            *open = false;
        }
    }

    /// Steps that can be undone.
    pub fn undo_steps(&self) -> usize {
        self.undo.len()
    }

    /// Steps that can be redone.
    pub fn redo_steps(&self) -> usize {
        self.redo.len()
    }

    /// Bytes of pixels held by both stacks.
    pub fn bytes(&self) -> usize {
        self.undo.iter().chain(&self.redo).map(Entry::bytes).sum()
    }

    /// Drops every step.
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
    }

    /// Drops the steps about layer `id` (its pixels were replaced outside the history).
    pub fn forget_layer(&mut self, id: u64) {
        self.undo.retain(|e| !e.concerns(id));
        self.redo.retain(|e| !e.concerns(id));
    }

    fn trim(&mut self) {
        let mut bytes = self.bytes();
        while self.undo.len() > MAX_STEPS || (self.undo.len() > MIN_STEPS && bytes > BYTE_BUDGET) {
            let dropped = self.undo.remove(0);
            bytes = bytes.saturating_sub(dropped.bytes());
        }
    }
}
