//! What the Canvas section shows and edits: the document, the tool and brush settings, the
//! selected layer, the view (zoom, pan, layer textures), and the guide images being loaded.

use crate::gui::canvas::layer::GuideSource;
use crate::gui::canvas::raster::{BrushTip, StrokeMode};
use crate::gui::canvas::text::TextSpec;
use crate::gui::canvas::{Document, Layer, LayerKind, Tool};
use crate::gui::form::ControlRow;
use crate::gui::widgets::canvas::CanvasView;
use crate::i18n::{Lang, tr, tr_args};
use kiln_inference::recipe::OutpaintSpec;
use std::collections::HashMap;
use std::path::PathBuf;

/// The brush size slider's range, in pixels.
pub const BRUSH_SIZE_RANGE: std::ops::RangeInclusive<f32> = 1.0..=512.0;

/// Brush, eraser and line settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BrushSettings {
    /// Diameter in pixels.
    pub size: f32,
    /// 0 soft ..= 1 hard.
    pub hardness: f32,
    /// Paint colour (straight alpha).
    pub color: egui::Color32,
    /// Stroke opacity, 0..=1.
    pub opacity: f32,
}

impl Default for BrushSettings {
    fn default() -> Self {
        BrushSettings {
            size: 12.0,
            hardness: 0.8,
            // White on the black paper: the colours of a scribble guide.
            color: egui::Color32::WHITE,
            opacity: 1.0,
        }
    }
}

/// A layer as other panels list it ("From canvas" menus).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// The layer.
    pub id: u64,
    /// Its name, translated.
    pub name: String,
    /// What it is.
    pub kind: LayerKind,
}

/// The Canvas section's state.
pub struct CanvasState {
    /// The layers and their history.
    pub document: Document,
    /// The active tool.
    pub tool: Tool,
    /// Brush settings (shared by brush, eraser and line).
    pub brush: BrushSettings,
    /// Fill tolerance, per channel.
    pub fill_tolerance: u8,
    /// The layer tools draw on.
    pub selected: Option<u64>,
    /// Zoom, pan and textures.
    pub view: CanvasView,
    /// Guide layers whose image is being loaded, with what is being loaded.
    pub guide_loads: HashMap<u64, GuideSource>,
    /// The look of new text (the text tool's settings).
    pub text: TextSpec,
    /// Composite the text layers over results at full resolution (set with the init image).
    pub keep_text_crisp: bool,
    /// The Extend controls: pixels per side (multiples of 8) and the overlap band.
    pub extend: OutpaintSpec,
    /// The init image of the outpainting job set up by Extend: its result comes back as a new
    /// background layer.
    pub outpaint_init: Option<PathBuf>,
}

impl Default for CanvasState {
    fn default() -> Self {
        let (width, height) = (512, 512);
        let document = Document::new(width, height);
        let selected = document.first_of(LayerKind::Sketch).map(|l| l.id);
        CanvasState {
            document,
            tool: Tool::Brush,
            brush: BrushSettings::default(),
            fill_tolerance: 24,
            selected,
            view: CanvasView::default(),
            guide_loads: HashMap::new(),
            text: TextSpec {
                text: "Kiln".to_owned(),
                ..TextSpec::default()
            },
            keep_text_crisp: true,
            extend: OutpaintSpec::default(),
            outpaint_init: None,
        }
    }
}

impl CanvasState {
    /// The selected layer, if it still exists.
    pub fn selected_layer(&self) -> Option<&Layer> {
        self.selected.and_then(|id| self.document.layer(id))
    }

    /// The brush tip for the current tool on layer `kind` (the mask and regions paint white).
    pub fn tip(&self, kind: LayerKind) -> BrushTip {
        let color = if kind.paints_mask() {
            [255, 255, 255, 255]
        } else {
            self.brush.color.to_srgba_unmultiplied()
        };
        BrushTip {
            radius: self.brush.size / 2.0,
            hardness: self.brush.hardness,
            opacity: self.brush.opacity,
            mode: if self.tool == Tool::Eraser {
                StrokeMode::Erase
            } else {
                StrokeMode::Paint(color)
            },
        }
    }

    /// The layers, top first, with translated names.
    pub fn layer_summaries(&self, lang: Lang, rows: &[ControlRow]) -> Vec<LayerSummary> {
        self.document
            .layers()
            .iter()
            .rev()
            .map(|layer| LayerSummary {
                id: layer.id,
                name: layer_name(layer, lang, rows),
                kind: layer.kind,
            })
            .collect()
    }

    /// Keeps a layer selected (the sketch when the selected one went away).
    pub fn fix_selection(&mut self) {
        if self.selected_layer().is_none() {
            self.selected = self
                .document
                .first_of(LayerKind::Sketch)
                .or_else(|| self.document.layers().last())
                .map(|l| l.id);
        }
    }
}

/// A layer's name: "Background 2", "Sketch", "Inpaint mask", "Guide · ControlNet 1".
pub fn layer_name(layer: &Layer, lang: Lang, rows: &[ControlRow]) -> String {
    let numbered = |key: &str| {
        if layer.number <= 1 {
            tr(lang, key).to_owned()
        } else {
            format!("{} {}", tr(lang, key), layer.number)
        }
    };
    match layer.kind {
        LayerKind::Background => numbered("canvas.layer_background"),
        LayerKind::Sketch => numbered("canvas.layer_sketch"),
        LayerKind::Mask => tr(lang, "canvas.layer_mask").to_owned(),
        LayerKind::Region => {
            let snippet: String = layer
                .region()
                .map(|r| r.prompt.trim().chars().take(16).collect())
                .unwrap_or_default();
            if snippet.is_empty() {
                numbered("canvas.layer_region")
            } else {
                format!("{} · {snippet}", numbered("canvas.layer_region"))
            }
        }
        LayerKind::Text => {
            let snippet: String = layer
                .text()
                .map(|t| {
                    t.text
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(16)
                        .collect()
                })
                .unwrap_or_default();
            format!("{} · {snippet}", numbered("canvas.layer_text"))
        }
        LayerKind::Guide { row } => {
            let index = rows.iter().position(|r| r.id == row).map_or(0, |i| i + 1);
            tr_args(lang, "canvas.layer_guide", &[("row", &index)])
        }
    }
}
