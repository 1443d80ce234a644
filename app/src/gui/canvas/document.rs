//! The canvas document: its size (the generation size), its layers bottom to top (background
//! images, sketches, guides, the mask on top), the stroke in progress and the undo history.
//! Exports ([`Export`]) copy the pixels they need so that flattening and PNG encoding can run
//! off the UI thread.

use super::PixelRect;
use super::history::{Entry, History};
use super::layer::{GuideSource, Layer, LayerKind};
#[cfg(test)]
use super::raster::StrokeMode;
use super::raster::{self, BrushTip, Stroke};
use super::region::RegionPrompt;
use super::text::TextSpec;

/// The colour under all layers (the paper): black, the background of a scribble guide.
pub const PAPER: [u8; 3] = [0, 0, 0];

/// A canvas tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Soft round brush.
    #[default]
    Brush,
    /// Removes paint.
    Eraser,
    /// Flood fill.
    Fill,
    /// Straight line with the brush.
    Line,
    /// Picks the colour under the pointer.
    Picker,
    /// Adds a text layer where clicked, or moves the text under the pointer.
    Text,
    /// Fills the box dragged out (a region's or the mask's area).
    Rect,
}

impl Tool {
    /// Every tool, in toolbar order.
    pub const ALL: [Tool; 7] = [
        Tool::Brush,
        Tool::Eraser,
        Tool::Fill,
        Tool::Line,
        Tool::Rect,
        Tool::Picker,
        Tool::Text,
    ];
}

/// What an export is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// The picture (image layers up to the chosen one, with their opacity) over the paper.
    Init,
    /// One layer over black (a ControlNet guide).
    Guide,
    /// One layer as a gray mask (white = repaint).
    Mask,
    /// One layer as it is, with alpha.
    Layer,
    /// The visible text layers over transparency, with their opacity (composited over the
    /// generated result so the text stays crisp).
    Overlay,
}

/// Pixels copied out of the document to be flattened and encoded elsewhere.
#[derive(Clone, Debug)]
pub struct Export {
    /// What the image is for.
    pub kind: ExportKind,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layers bottom to top: RGBA pixels (`None`: transparent), opacity, and whether it is a
    /// mask layer (whose alpha is the mask).
    pub layers: Vec<(Option<Vec<u8>>, f32, bool)>,
}

impl Export {
    /// Flattens the copied layers into the image the export is for.
    pub fn render(&self) -> image::DynamicImage {
        let (width, height) = (self.width, self.height);
        match self.kind {
            ExportKind::Init => {
                let mut out = image::RgbImage::from_pixel(width, height, image::Rgb(PAPER));
                for (pixels, opacity, _) in &self.layers {
                    let Some(pixels) = pixels else { continue };
                    let opacity = opacity.clamp(0.0, 1.0);
                    for (target, source) in out.pixels_mut().zip(pixels.chunks_exact(4)) {
                        if let &[r, g, b, a] = source {
                            let [red, green, blue] = target.0;
                            let out =
                                raster::paint_over([red, green, blue, 255], [r, g, b, a], opacity);
                            target.0 = [out[0], out[1], out[2]];
                        }
                    }
                }
                out.into()
            }
            ExportKind::Guide => match self.layers.first() {
                Some((Some(pixels), _, _)) => {
                    raster::flatten_over(pixels, width, height, [0, 0, 0]).into()
                }
                _ => image::RgbImage::new(width, height).into(),
            },
            ExportKind::Mask => {
                let mut out = image::GrayImage::new(width, height);
                if let Some((Some(pixels), _, is_mask)) = self.layers.first() {
                    for (target, source) in out.pixels_mut().zip(pixels.chunks_exact(4)) {
                        if let &[r, g, b, a] = source {
                            // A mask layer is its alpha; any other layer its brightness over black.
                            let value = if *is_mask {
                                u32::from(a)
                            } else {
                                u32::from(r.max(g).max(b)) * u32::from(a) / 255
                            };
                            target.0 = [value as u8];
                        }
                    }
                }
                out.into()
            }
            ExportKind::Overlay => {
                let mut out = vec![0u8; (width * height * 4) as usize];
                for (pixels, opacity, _) in &self.layers {
                    let Some(pixels) = pixels else { continue };
                    for (target, source) in out.chunks_exact_mut(4).zip(pixels.chunks_exact(4)) {
                        if let (&mut [r0, g0, b0, a0], &[r, g, b, a]) = (&mut *target, source) {
                            let mixed =
                                raster::paint_over([r0, g0, b0, a0], [r, g, b, a], *opacity);
                            target.copy_from_slice(&mixed);
                        }
                    }
                }
                image::RgbaImage::from_raw(width, height, out)
                    .unwrap_or_else(|| image::RgbaImage::new(width, height))
                    .into()
            }
            ExportKind::Layer => match self.layers.first() {
                Some((Some(pixels), _, _)) => {
                    image::RgbaImage::from_raw(width, height, pixels.clone())
                        .unwrap_or_else(|| image::RgbaImage::new(width, height))
                        .into()
                }
                _ => image::RgbaImage::new(width, height).into(),
            },
        }
    }
}

/// The canvas document.
#[derive(Debug)]
pub struct Document {
    width: u32,
    height: u32,
    layers: Vec<Layer>,
    history: History,
    stroke: Option<Stroke>,
    next_id: u64,
}

impl Document {
    /// A `width × height` document with a background, a sketch and a mask layer.
    pub fn new(width: u32, height: u32) -> Self {
        let mut document = Document {
            width: width.max(1),
            height: height.max(1),
            layers: Vec::new(),
            history: History::default(),
            stroke: None,
            next_id: 1,
        };
        for kind in [LayerKind::Background, LayerKind::Sketch, LayerKind::Mask] {
            let layer = document.make_layer(kind);
            let index = document.insertion_index(kind);
            document.layers.insert(index, layer);
        }
        document
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layers, bottom first, for visibility and opacity edits (pixels are edited through
    /// the document, so the history sees them).
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// The layer `id`.
    pub fn layer(&self, id: u64) -> Option<&Layer> {
        self.layers.iter().find(|l| l.id == id)
    }

    fn layer_mut(&mut self, id: u64) -> Option<&mut Layer> {
        self.layers.iter_mut().find(|l| l.id == id)
    }

    /// The first layer of a kind.
    pub fn first_of(&self, kind: LayerKind) -> Option<&Layer> {
        self.layers.iter().find(|l| l.kind == kind)
    }

    /// The undo history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Whether a stroke is in progress.
    pub fn stroking(&self) -> bool {
        self.stroke.is_some()
    }

    fn make_layer(&mut self, kind: LayerKind) -> Layer {
        let id = self.next_id;
        self.next_id += 1;
        let number = self
            .layers
            .iter()
            .filter(|l| std::mem::discriminant(&l.kind) == std::mem::discriminant(&kind))
            .map(|l| l.number)
            .max()
            .unwrap_or(0)
            + 1;
        Layer::new(id, kind, number, self.width, self.height)
    }

    /// Where a new layer of `kind` goes: backgrounds, then sketches, then text, then guides,
    /// then regions, then the mask.
    fn insertion_index(&self, kind: LayerKind) -> usize {
        let rank = |kind: LayerKind| match kind {
            LayerKind::Background => 0,
            LayerKind::Sketch => 1,
            LayerKind::Text => 2,
            LayerKind::Guide { .. } => 3,
            LayerKind::Region => 4,
            LayerKind::Mask => 5,
        };
        let wanted = rank(kind);
        self.layers
            .iter()
            .position(|l| rank(l.kind) > wanted)
            .unwrap_or(self.layers.len())
    }

    /// Adds a layer of `kind` in its place (undoable) and returns its id.
    pub fn add_layer(&mut self, kind: LayerKind) -> u64 {
        self.end_stroke();
        let layer = self.make_layer(kind);
        let id = layer.id;
        let index = self.insertion_index(kind);
        self.layers.insert(index, layer);
        self.history.push(Entry::LayerInserted { id });
        id
    }

    /// Adds a background layer holding `rgba` (a `width × height` image), undoable.
    pub fn add_background(&mut self, rgba: Vec<u8>) -> Option<u64> {
        let id = self.add_layer(LayerKind::Background);
        let layer = self.layer_mut(id)?;
        layer.set_pixels(rgba).then_some(id)
    }

    /// Adds a text layer showing `spec` (one undo step) and returns its id.
    pub fn add_text(&mut self, spec: TextSpec) -> u64 {
        let id = self.add_layer(LayerKind::Text);
        if let Some(layer) = self.layer_mut(id) {
            layer.set_text(spec);
        }
        id
    }

    /// Changes a text layer's text (undoable). With `join`, an open edit of the same layer
    /// (typing, dragging) takes the change into its step instead of making a new one.
    /// Returns whether the layer is a text layer.
    pub fn set_text(&mut self, id: u64, spec: TextSpec, join: bool) -> bool {
        self.end_stroke();
        let joins = join && self.history.text_edit_open(id);
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        if layer.text() == Some(&spec) {
            return layer.text().is_some();
        }
        let Some(old) = layer.set_text(spec) else {
            return false;
        };
        if !joins {
            self.history.close_text_edit();
            self.history.push(Entry::Text {
                layer: id,
                spec: old,
                open: join,
            });
        }
        true
    }

    /// Adds a region layer (one undo step) and returns its id.
    pub fn add_region(&mut self) -> u64 {
        self.add_layer(LayerKind::Region)
    }

    /// Changes a region layer's prompt, negative or weight (undoable). With `join`, an open
    /// edit of the same layer (typing, dragging the weight) takes the change into its step.
    /// Returns whether the layer is a region layer.
    pub fn set_region(&mut self, id: u64, region: RegionPrompt, join: bool) -> bool {
        self.end_stroke();
        let joins = join && self.history.text_edit_open(id);
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        if layer.region() == Some(&region) {
            return true;
        }
        let Some(old) = layer.set_region(region) else {
            return false;
        };
        if !joins {
            self.history.close_text_edit();
            self.history.push(Entry::Region {
                layer: id,
                region: old,
                open: join,
            });
        }
        true
    }

    /// Fills the box between two corners `from` and `to` (canvas pixels, clipped) on layer
    /// `id` with `color` at `opacity`, or erases it with `erase` (one undo step). Returns
    /// whether anything changed.
    pub fn fill_box(
        &mut self,
        id: u64,
        from: (f32, f32),
        to: (f32, f32),
        color: [u8; 4],
        opacity: f32,
        erase: bool,
    ) -> bool {
        self.end_stroke();
        let (width, height) = (self.width, self.height);
        let clamp = |v: f32, max: u32| (v.round().max(0.0) as u32).min(max);
        let bounds = PixelRect {
            x0: clamp(from.0.min(to.0), width),
            y0: clamp(from.1.min(to.1), height),
            x1: clamp(from.0.max(to.0), width),
            y1: clamp(from.1.max(to.1), height),
        };
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        if bounds.is_empty() || layer.text().is_some() {
            return false;
        }
        let saved: Vec<_> = layer
            .tiles_in(bounds)
            .map(|tile| (tile, layer.read_tile(tile)))
            .collect();
        let pixels = layer.pixels_mut();
        let opacity = opacity.clamp(0.0, 1.0);
        for y in bounds.y0..bounds.y1 {
            let start = ((y * width + bounds.x0) * 4) as usize;
            let end = ((y * width + bounds.x1) * 4) as usize;
            let Some(row) = pixels.get_mut(start..end) else {
                continue;
            };
            for target in row.chunks_exact_mut(4) {
                let below = [target[0], target[1], target[2], target[3]];
                let out = if erase {
                    raster::erase(below, opacity)
                } else {
                    raster::paint_over(below, color, opacity)
                };
                target.copy_from_slice(&out);
            }
        }
        layer.mark_dirty(bounds);
        self.history.push(Entry::Pixels {
            layer: id,
            tiles: saved,
        });
        true
    }

    /// The visible region layers, bottom first: `(id, prompt)`.
    pub fn visible_regions(&self) -> Vec<(u64, RegionPrompt)> {
        self.layers
            .iter()
            .filter(|l| l.visible)
            .filter_map(|l| Some((l.id, l.region()?.clone())))
            .collect()
    }

    /// Ends an open text edit: the next change is a step of its own.
    pub fn close_text_edit(&mut self) {
        self.history.close_text_edit();
    }

    /// Grows the canvas by `left`/`top`/`right`/`bottom` pixels: every layer keeps its pixels
    /// at their place, the new area transparent; text moves with its layer. The history is
    /// dropped: its tiles no longer fit.
    pub fn extend(&mut self, left: u32, top: u32, right: u32, bottom: u32) {
        self.stroke = None;
        let (width, height) = (self.width + left + right, self.height + top + bottom);
        for layer in &mut self.layers {
            layer.extend(left, top, width, height);
        }
        self.width = width;
        self.height = height;
        self.history.clear();
    }

    /// Removes a layer (undoable). Returns whether it was there.
    pub fn remove_layer(&mut self, id: u64) -> bool {
        self.end_stroke();
        let Some(index) = self.layers.iter().position(|l| l.id == id) else {
            return false;
        };
        let layer = self.layers.remove(index);
        self.history.push(Entry::LayerRemoved {
            index,
            layer: Box::new(layer),
        });
        true
    }

    /// Replaces a layer's pixels with `rgba` (`width × height × 4` bytes), undoable.
    pub fn replace_pixels(&mut self, id: u64, rgba: Vec<u8>) -> bool {
        self.end_stroke();
        if rgba.len() != (self.width * self.height * 4) as usize {
            return false;
        }
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        let saved: Vec<_> = layer
            .tiles_in(PixelRect::full(layer.width(), layer.height()))
            .map(|tile| (tile, layer.read_tile(tile)))
            .collect();
        layer.set_pixels(rgba);
        self.history.push(Entry::Pixels {
            layer: id,
            tiles: saved,
        });
        true
    }

    /// Makes a layer transparent (undoable).
    pub fn clear_layer(&mut self, id: u64) -> bool {
        let blank = vec![0; (self.width * self.height * 4) as usize];
        self.replace_pixels(id, blank)
    }

    /// Shows a guide in a guide layer (not undoable: the steps about the layer are dropped).
    pub fn set_guide(&mut self, id: u64, guide: &image::RgbImage, source: GuideSource) -> bool {
        if guide.dimensions() != (self.width, self.height) {
            return false;
        }
        if self.stroke.as_ref().is_some_and(|s| s.layer == id) {
            self.end_stroke();
        }
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        layer.set_pixels(raster::guide_to_layer(guide));
        layer.guide_source = Some(source);
        layer.guide_error = None;
        self.history.forget_layer(id);
        true
    }

    /// The guide layer of ControlNet row `row`, added (not undoable) when missing.
    pub fn ensure_guide_layer(&mut self, row: u64) -> u64 {
        let kind = LayerKind::Guide { row };
        if let Some(layer) = self.layers.iter().find(|l| l.kind == kind) {
            return layer.id;
        }
        let layer = self.make_layer(kind);
        let id = layer.id;
        let index = self.insertion_index(kind);
        self.layers.insert(index, layer);
        id
    }

    /// Removes (not undoably) the guide layers of rows not in `rows`; returns whether any went.
    pub fn keep_guides_of(&mut self, rows: &[u64]) -> bool {
        let gone: Vec<u64> = self
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Guide { row } if !rows.contains(&row)))
            .map(|l| l.id)
            .collect();
        for id in &gone {
            if self.stroke.as_ref().is_some_and(|s| s.layer == *id) {
                self.stroke = None;
            }
            self.layers.retain(|l| l.id != *id);
            self.history.forget_layer(*id);
        }
        !gone.is_empty()
    }

    /// Scales every layer to a new size (the generation size changed). The history is
    /// dropped: its tiles no longer fit.
    pub fn resize(&mut self, width: u32, height: u32) {
        let (width, height) = (width.max(1), height.max(1));
        if (width, height) == (self.width, self.height) {
            return;
        }
        self.stroke = None;
        self.width = width;
        self.height = height;
        let (sx, sy) = (
            width as f32 / self.layers.first().map_or(1, Layer::width).max(1) as f32,
            height as f32 / self.layers.first().map_or(1, Layer::height).max(1) as f32,
        );
        for layer in &mut self.layers {
            layer.resize(width, height);
            if let Some(spec) = layer.text().cloned() {
                // Text is drawn again at the new scale rather than resampled.
                layer.set_text(TextSpec {
                    x: spec.x * sx,
                    y: spec.y * sy,
                    size: spec.size * sx.min(sy),
                    wrap_width: spec.wrap_width * sx,
                    ..spec
                });
            }
        }
        self.history.clear();
    }

    /// Starts a stroke on layer `id` (a stroke in progress ends first).
    pub fn begin_stroke(&mut self, id: u64, tip: BrushTip) {
        self.end_stroke();
        if self.layer(id).is_some() {
            self.stroke = Some(Stroke::new(id, tip));
        }
    }

    /// Continues the stroke to `(x, y)` in pixels.
    pub fn stroke_to(&mut self, x: f32, y: f32, pressure: f32) {
        let Some(stroke) = self.stroke.as_mut() else {
            return;
        };
        let Some(layer) = self.layers.iter_mut().find(|l| l.id == stroke.layer) else {
            return;
        };
        stroke.to(layer, x, y, pressure);
    }

    /// Ends the stroke, recording it for undo. Returns whether it changed anything.
    pub fn end_stroke(&mut self) -> bool {
        let Some(stroke) = self.stroke.take() else {
            return false;
        };
        let layer = stroke.layer;
        let touched = !stroke.touched.is_empty();
        let tiles = stroke.finish();
        if touched && !tiles.is_empty() {
            self.history.push(Entry::Pixels { layer, tiles });
        }
        touched
    }

    /// A straight line from `from` to `to` with `tip` (one undo step).
    pub fn line(&mut self, id: u64, tip: BrushTip, from: (f32, f32), to: (f32, f32)) {
        self.begin_stroke(id, tip);
        self.stroke_to(from.0, from.1, 1.0);
        self.stroke_to(to.0, to.1, 1.0);
        self.end_stroke();
    }

    /// Flood-fills the region of similar colour around `(x, y)` on layer `id` with `color` at
    /// `opacity` (one undo step). Returns whether anything changed.
    pub fn fill(
        &mut self,
        id: u64,
        (x, y): (u32, u32),
        color: [u8; 4],
        opacity: f32,
        tolerance: u8,
    ) -> bool {
        self.end_stroke();
        let Some(layer) = self.layer_mut(id) else {
            return false;
        };
        let (inside, bounds) = raster::flood_region(layer, x, y, tolerance);
        if bounds.is_empty() {
            return false;
        }
        let saved: Vec<_> = layer
            .tiles_in(bounds)
            .map(|tile| (tile, layer.read_tile(tile)))
            .collect();
        let width = layer.width();
        let pixels = layer.pixels_mut();
        for y in bounds.y0..bounds.y1 {
            for x in bounds.x0..bounds.x1 {
                let index = (y * width + x) as usize;
                if !inside.get(index).copied().unwrap_or(false) {
                    continue;
                }
                let at = index * 4;
                if let Some(target) = pixels.get_mut(at..at + 4) {
                    let below = [target[0], target[1], target[2], target[3]];
                    target.copy_from_slice(&raster::paint_over(below, color, opacity));
                }
            }
        }
        layer.mark_dirty(bounds);
        self.history.push(Entry::Pixels {
            layer: id,
            tiles: saved,
        });
        true
    }

    /// The colour seen at `(x, y)`: the visible image and guide layers over the paper.
    pub fn pick(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let mut out = [PAPER[0], PAPER[1], PAPER[2], 255];
        for layer in self
            .layers
            .iter()
            .filter(|l| l.visible && !l.kind.paints_mask())
        {
            out = raster::paint_over(out, layer.pixel(x, y), layer.opacity);
        }
        Some(out)
    }

    /// Undoes the last step. Returns whether there was one.
    pub fn undo(&mut self) -> bool {
        self.end_stroke();
        let Some(entry) = self.history.take_undo() else {
            return false;
        };
        if let Some(inverse) = self.apply(entry) {
            self.history.undone(inverse);
        }
        true
    }

    /// Redoes the last undone step. Returns whether there was one.
    pub fn redo(&mut self) -> bool {
        self.end_stroke();
        let Some(entry) = self.history.take_redo() else {
            return false;
        };
        if let Some(inverse) = self.apply(entry) {
            self.history.redone(inverse);
        }
        true
    }

    /// Applies a step and returns its inverse.
    fn apply(&mut self, entry: Entry) -> Option<Entry> {
        match entry {
            Entry::Pixels { layer: id, tiles } => {
                let layer = self.layer_mut(id)?;
                let swapped = tiles
                    .into_iter()
                    .map(|(tile, saved)| (tile, layer.swap_tile(tile, saved)))
                    .collect();
                Some(Entry::Pixels {
                    layer: id,
                    tiles: swapped,
                })
            }
            Entry::LayerRemoved { index, layer } => {
                let id = layer.id;
                let mut layer = *layer;
                layer.mark_dirty(PixelRect::full(layer.width(), layer.height()));
                self.layers.insert(index.min(self.layers.len()), layer);
                Some(Entry::LayerInserted { id })
            }
            Entry::Text {
                layer: id, spec, ..
            } => {
                let layer = self.layer_mut(id)?;
                let old = layer.set_text(spec)?;
                Some(Entry::Text {
                    layer: id,
                    spec: old,
                    open: false,
                })
            }
            Entry::Region {
                layer: id, region, ..
            } => {
                let layer = self.layer_mut(id)?;
                let old = layer.set_region(region)?;
                Some(Entry::Region {
                    layer: id,
                    region: old,
                    open: false,
                })
            }
            Entry::LayerInserted { id } => {
                let index = self.layers.iter().position(|l| l.id == id)?;
                let layer = self.layers.remove(index);
                Some(Entry::LayerRemoved {
                    index,
                    layer: Box::new(layer),
                })
            }
        }
    }

    /// Whether a visible text layer has ink (an overlay export would show something).
    pub fn has_visible_text(&self) -> bool {
        self.layers.iter().any(|l| {
            l.visible
                && l.kind == LayerKind::Text
                && l.text().is_some_and(|t| !t.text.trim().is_empty())
        })
    }

    /// The topmost visible text layer whose text box holds `(x, y)`.
    pub fn text_at(&self, x: f32, y: f32) -> Option<u64> {
        self.layers.iter().rev().find_map(|l| {
            let spec = l.text().filter(|_| l.visible)?;
            let (x0, y0, x1, y1) = super::text::hit_box(spec, self.width, self.height);
            (x >= x0 && x <= x1 && y >= y0 && y <= y1).then_some(l.id)
        })
    }

    /// Copies what an export of layer `id` needs. For [`ExportKind::Init`]: the visible image
    /// layers up to `id` (all of them when `id` is not an image layer).
    pub fn export(&self, id: u64, kind: ExportKind) -> Option<Export> {
        let layer = self.layer(id)?;
        let copy = |l: &Layer| {
            (
                l.pixels().map(<[u8]>::to_vec),
                l.opacity,
                l.kind.paints_mask(),
            )
        };
        let layers = match kind {
            ExportKind::Init => {
                let last = if layer.kind.is_image() {
                    self.layers.iter().position(|l| l.id == id)?
                } else {
                    self.layers.len().saturating_sub(1)
                };
                self.layers
                    .iter()
                    .take(last + 1)
                    .filter(|l| l.visible && l.kind.is_image())
                    .map(copy)
                    .collect()
            }
            ExportKind::Overlay => self
                .layers
                .iter()
                .filter(|l| l.visible && l.kind == LayerKind::Text)
                .map(copy)
                .collect(),
            ExportKind::Guide | ExportKind::Mask | ExportKind::Layer => vec![copy(layer)],
        };
        Some(Export {
            kind,
            width: self.width,
            height: self.height,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn white_tip(radius: f32) -> BrushTip {
        BrushTip {
            radius,
            hardness: 1.0,
            opacity: 1.0,
            mode: StrokeMode::Paint([255, 255, 255, 255]),
        }
    }

    fn sketch(document: &Document) -> u64 {
        document.first_of(LayerKind::Sketch).unwrap().id
    }

    #[test]
    fn strokes_undo_and_redo_for_more_than_a_hundred_steps() {
        let mut document = Document::new(256, 256);
        let id = sketch(&document);
        for i in 0..120 {
            let y = 2.5 + i as f32 * 2.0;
            document.line(id, white_tip(0.7), (10.0, y), (240.0, y));
            if i == 0 {
                // A stroke on transparent tiles stores nothing.
                assert_eq!(document.history().bytes(), 0);
            }
        }
        assert_eq!(document.history().undo_steps(), 120);
        assert_eq!(document.layer(id).unwrap().pixel(100, 2)[3], 255);
        for _ in 0..120 {
            assert!(document.undo());
        }
        assert!(!document.undo());
        let layer = document.layer(id).unwrap();
        assert!(layer.pixels().unwrap().chunks(4).all(|p| p[3] == 0));
        for _ in 0..120 {
            assert!(document.redo());
        }
        assert_eq!(document.layer(id).unwrap().pixel(100, 240)[3], 255);
        // Each step holds only the 64² tiles its line crossed (4 or 8 of them).
        assert!(document.history().bytes() <= 120 * 8 * 64 * 64 * 4);
    }

    #[test]
    fn a_new_stroke_drops_the_redo_steps() {
        let mut document = Document::new(64, 64);
        let id = sketch(&document);
        document.line(id, white_tip(2.0), (5.0, 5.0), (60.0, 5.0));
        document.undo();
        assert_eq!(document.history().redo_steps(), 1);
        document.line(id, white_tip(2.0), (5.0, 30.0), (60.0, 30.0));
        assert_eq!(document.history().redo_steps(), 0);
        assert_eq!(document.layer(id).unwrap().pixel(30, 5)[3], 0);
    }

    #[test]
    fn removed_layers_come_back_on_undo() {
        let mut document = Document::new(32, 32);
        let id = sketch(&document);
        document.line(id, white_tip(3.0), (4.0, 4.0), (28.0, 28.0));
        let count = document.layers().len();
        assert!(document.remove_layer(id));
        assert_eq!(document.layers().len(), count - 1);
        document.undo();
        assert_eq!(document.layers().len(), count);
        assert_eq!(document.layer(id).unwrap().pixel(16, 16)[3], 255);
        document.redo();
        assert!(document.layer(id).is_none());
    }

    #[test]
    fn fill_and_replace_undo_to_the_old_pixels() {
        let mut document = Document::new(40, 40);
        let id = sketch(&document);
        assert!(document.fill(id, (3, 3), [10, 20, 30, 255], 1.0, 0));
        assert_eq!(document.layer(id).unwrap().pixel(39, 39), [10, 20, 30, 255]);
        let image: Vec<u8> = (0..40 * 40).flat_map(|_| [1, 2, 3, 255]).collect();
        assert!(document.replace_pixels(id, image));
        document.undo();
        assert_eq!(document.layer(id).unwrap().pixel(0, 0), [10, 20, 30, 255]);
        document.undo();
        assert_eq!(document.layer(id).unwrap().pixel(0, 0), [0; 4]);
    }

    #[test]
    fn exports_flatten_as_their_purpose_needs() {
        let mut document = Document::new(16, 16);
        let id = sketch(&document);
        document.line(id, white_tip(1.5), (2.0, 8.0), (14.0, 8.0));
        let guide = document.export(id, ExportKind::Guide).unwrap().render();
        let guide = guide.to_rgb8();
        assert_eq!(guide.get_pixel(8, 8).0, [255, 255, 255]);
        assert_eq!(guide.get_pixel(8, 1).0, [0, 0, 0]);

        let mask_id = document.first_of(LayerKind::Mask).unwrap().id;
        document.line(mask_id, white_tip(2.0), (8.0, 2.0), (8.0, 14.0));
        let mask = document.export(mask_id, ExportKind::Mask).unwrap().render();
        let mask = mask.to_luma8();
        assert_eq!(mask.get_pixel(8, 4).0, [255]);
        assert_eq!(mask.get_pixel(1, 4).0, [0]);

        let init = document.export(id, ExportKind::Init).unwrap().render();
        assert_eq!(init.to_rgb8().get_pixel(8, 8).0, [255, 255, 255]);
        assert_eq!(document.pick(8, 8), Some([255, 255, 255, 255]));
    }

    #[test]
    fn guide_layers_follow_the_rows() {
        let mut document = Document::new(8, 8);
        let a = document.ensure_guide_layer(7);
        assert_eq!(document.ensure_guide_layer(7), a);
        document.ensure_guide_layer(9);
        // Guides sit under the mask.
        assert_eq!(document.layers().last().unwrap().kind, LayerKind::Mask);
        assert!(document.keep_guides_of(&[9]));
        assert!(document.layer(a).is_none());
        let guide = image::RgbImage::from_pixel(8, 8, image::Rgb([255, 255, 255]));
        let b = document.ensure_guide_layer(9);
        let source = GuideSource {
            image: "/g.png".into(),
            preprocessor: kiln_inference::recipe::Preprocessor::None,
            mask: None,
        };
        assert!(document.set_guide(b, &guide, source));
        assert_eq!(document.layer(b).unwrap().pixel(3, 3), [255, 255, 255, 255]);
    }

    #[test]
    fn text_edits_join_into_one_step_and_extend_moves_everything() {
        let mut document = Document::new(64, 64);
        let spec = TextSpec {
            text: "A".into(),
            size: 16.0,
            x: 4.0,
            y: 4.0,
            ..TextSpec::default()
        };
        let id = document.add_text(spec.clone());
        let steps = document.history().undo_steps();
        for text in ["AB", "ABC", "ABCD"] {
            let next = TextSpec {
                text: text.into(),
                ..spec.clone()
            };
            assert!(document.set_text(id, next, true));
        }
        assert_eq!(
            document.history().undo_steps(),
            steps + 1,
            "typing is one step"
        );
        document.close_text_edit();
        let moved = TextSpec {
            x: 20.0,
            text: "ABCD".into(),
            ..spec.clone()
        };
        document.set_text(id, moved, true);
        assert_eq!(document.history().undo_steps(), steps + 2);
        let ink = |d: &Document, x0: u32, x1: u32| {
            (x0..x1).any(|x| (0..64).any(|y| d.layer(id).unwrap().pixel(x, y)[3] > 0))
        };
        assert!(!ink(&document, 0, 19) && ink(&document, 20, 64));
        document.undo();
        assert!(ink(&document, 4, 10), "the old place has the text again");
        document.undo();
        assert_eq!(document.layer(id).unwrap().text().unwrap().text, "A");
        document.redo();
        document.redo();
        assert_eq!(document.layer(id).unwrap().text().unwrap().x, 20.0);
        assert!(document.has_visible_text());
        assert_eq!(document.text_at(25.0, 10.0), Some(id));
        assert_eq!(document.text_at(2.0, 60.0), None);

        // Extend: layers keep their pixels at their place, text moves along.
        let sketch = sketch(&document);
        document.line(sketch, white_tip(1.0), (2.0, 50.0), (10.0, 50.0));
        document.extend(16, 8, 0, 24);
        assert_eq!(document.size(), (80, 96));
        assert_eq!(
            document.layer(sketch).unwrap().pixel(16 + 6, 8 + 50)[3],
            255
        );
        assert_eq!(document.layer(sketch).unwrap().pixel(6, 50)[3], 0);
        let text = document.layer(id).unwrap().text().unwrap();
        assert_eq!((text.x, text.y), (36.0, 12.0));
        let overlay = document.export(id, ExportKind::Overlay).unwrap().render();
        let overlay = overlay.to_rgba8();
        assert_eq!(overlay.dimensions(), (80, 96));
        assert!(overlay.pixels().any(|p| p.0[3] == 255));
        assert!(
            overlay.get_pixel(22, 58).0[3] == 0,
            "only text in the overlay"
        );
    }

    #[test]
    fn region_layers_export_gray_masks_and_undo_their_prompts() {
        let mut document = Document::new(32, 32);
        let id = document.add_region();
        // Regions sit between the guides and the inpaint mask, tinted by their number.
        let kinds: Vec<_> = document.layers().iter().map(|l| l.kind).collect();
        assert_eq!(
            &kinds[kinds.len() - 2..],
            [LayerKind::Region, LayerKind::Mask]
        );
        assert_eq!(document.visible_regions(), [(id, RegionPrompt::default())]);

        // Typing the prompt is one step; the weight another.
        let steps = document.history().undo_steps();
        for prompt in ["a", "a p", "a puppy"] {
            let region = RegionPrompt {
                prompt: prompt.into(),
                ..RegionPrompt::default()
            };
            assert!(document.set_region(id, region, true));
        }
        document.close_text_edit();
        let weighted = RegionPrompt {
            prompt: "a puppy".into(),
            weight: 0.5,
            ..RegionPrompt::default()
        };
        assert!(document.set_region(id, weighted.clone(), true));
        assert_eq!(document.history().undo_steps(), steps + 2);
        document.undo();
        assert_eq!(document.layer(id).unwrap().region().unwrap().weight, 1.0);
        document.undo();
        assert_eq!(document.layer(id).unwrap().region().unwrap().prompt, "");
        document.redo();
        document.redo();
        assert_eq!(document.layer(id).unwrap().region(), Some(&weighted));
        // Other layers have no region.
        let sketch = sketch(&document);
        assert!(!document.set_region(sketch, weighted.clone(), false));

        // A painted stroke (any brush colour: the alpha is the mask), a box at half opacity.
        let tip = BrushTip {
            mode: StrokeMode::Paint([255, 0, 0, 255]),
            ..white_tip(2.0)
        };
        document.line(id, tip, (2.0, 4.0), (30.0, 4.0));
        assert!(document.fill_box(id, (20.0, 20.0), (10.0, 30.0), [255; 4], 0.5, false));
        let mask = document.export(id, ExportKind::Mask).unwrap().render();
        let mask = mask.to_luma8();
        assert_eq!(mask.dimensions(), (32, 32));
        assert_eq!(mask.get_pixel(16, 4).0, [255], "painted: white");
        assert_eq!(mask.get_pixel(16, 12).0, [0], "elsewhere: black");
        assert_eq!(mask.get_pixel(15, 25).0, [128], "half opacity: gray");
        assert_eq!(mask.get_pixel(9, 25).0, [0], "the box ends at its corners");
        assert_eq!(mask.get_pixel(20, 25).0, [0]);
        // The box is one undo step; an erased box clears it.
        document.undo();
        let mask = document.export(id, ExportKind::Mask).unwrap().render();
        assert_eq!(mask.to_luma8().get_pixel(15, 25).0, [0]);
        document.redo();
        assert!(document.fill_box(id, (0.0, 0.0), (32.0, 8.0), [0; 4], 1.0, true));
        assert_eq!(document.layer(id).unwrap().pixel(16, 4)[3], 0);
        // Region layers are not part of the picture.
        assert_eq!(document.pick(15, 25), Some([0, 0, 0, 255]));
        document.layers_mut().last_mut().unwrap().visible = true;
        let hidden = document.layers().iter().position(|l| l.id == id).unwrap();
        document.layers_mut()[hidden].visible = false;
        assert!(document.visible_regions().is_empty());
    }

    #[test]
    fn resizing_scales_the_layers() {
        let mut document = Document::new(32, 32);
        let id = sketch(&document);
        document.line(id, white_tip(4.0), (0.0, 16.0), (32.0, 16.0));
        document.resize(64, 64);
        assert_eq!(document.size(), (64, 64));
        assert_eq!(document.layer(id).unwrap().pixel(32, 32)[3], 255);
        assert_eq!(document.history().undo_steps(), 0);
    }
}
