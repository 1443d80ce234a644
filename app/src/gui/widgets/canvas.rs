//! The canvas widget: shows the document's layers (one texture per layer, split into chunks of
//! at most [`CHUNK`] pixels so any GPU takes them), turns pointer input into tool operations,
//! and zooms (wheel or pinch, around the pointer), pans (middle or right drag, or Space + drag)
//! and fits.
//!
//! Textures are never re-uploaded whole for an edit: each frame, the region a layer reports as
//! changed is copied into a [`egui::TextureHandle::set_partial`] update of the chunks it
//! touches, so a brush stroke on a 4096² canvas moves a few kilobytes per frame.

use crate::gui::canvas::layer::Layer;
use crate::gui::canvas::{LayerKind, PixelRect, Tool};
use crate::gui::state::canvas::CanvasState;
use crate::gui::theme::{self, Palette};
use egui::{Color32, PointerButton, Pos2, Rect, Sense, Vec2};
use std::collections::HashMap;

/// Largest texture side used for a layer chunk.
pub const CHUNK: u32 = 2048;
/// Smallest and largest zoom, in screen points per canvas pixel.
const ZOOM_RANGE: (f32, f32) = (0.02, 64.0);
/// Zoom change per point of wheel scroll.
const WHEEL_ZOOM_SPEED: f32 = 0.0018;
/// Share of the view a fitted canvas fills.
const FIT_MARGIN: f32 = 0.96;

/// Texture options: crisp pixels when zoomed in, smooth when zoomed out; no mipmaps (they
/// would have to be rebuilt for every partial update).
const TEXTURE_OPTIONS: egui::TextureOptions = egui::TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    minification: egui::TextureFilter::Linear,
    wrap_mode: egui::TextureWrapMode::ClampToEdge,
    mipmap_mode: None,
};

/// One layer's textures.
struct LayerTextures {
    generation: u64,
    size: (u32, u32),
    chunks: Vec<(PixelRect, egui::TextureHandle)>,
}

/// What a primary-button drag is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Gesture {
    /// Painting or erasing.
    Stroke,
    /// A straight line from here (canvas pixels).
    Line((f32, f32)),
    /// A box from this corner (canvas pixels).
    Box((f32, f32)),
    /// Panning.
    Pan,
    /// Moving a text layer, grabbed this far from its position (canvas pixels).
    MoveText {
        /// The layer.
        layer: u64,
        /// Pointer minus the text's position when grabbed.
        grab: (f32, f32),
    },
}

/// Texture traffic of the last frame (for measurements and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Pixels sent with partial updates.
    pub partial_pixels: usize,
    /// Pixels sent with whole-texture uploads.
    pub full_pixels: usize,
}

/// Zoom, pan and textures of the canvas.
pub struct CanvasView {
    /// Fit the canvas into the view.
    pub fit: bool,
    /// Points per canvas pixel when not fitting.
    pub zoom: f32,
    /// Offset of the canvas centre from the view centre, in points.
    pub pan: Vec2,
    /// Where the canvas was drawn last frame, in points.
    pub image_rect: Option<Rect>,
    /// Texture traffic of the last frame.
    pub uploads: UploadStats,
    textures: HashMap<u64, LayerTextures>,
    gesture: Option<Gesture>,
    pressure: f32,
}

impl Default for CanvasView {
    fn default() -> Self {
        CanvasView {
            fit: true,
            zoom: 1.0,
            pan: Vec2::ZERO,
            image_rect: None,
            uploads: UploadStats::default(),
            textures: HashMap::new(),
            gesture: None,
            pressure: 1.0,
        }
    }
}

impl CanvasView {
    /// Back to "fit into the view".
    pub fn fit(&mut self) {
        self.fit = true;
        self.pan = Vec2::ZERO;
    }

    /// The zoom in effect last frame (points per pixel).
    pub fn shown_zoom(&self, canvas_width: u32) -> f32 {
        self.image_rect
            .map_or(self.zoom, |r| r.width() / canvas_width.max(1) as f32)
    }

    /// Screen position of a canvas pixel position, as drawn last frame.
    pub fn ui_from_canvas(&self, canvas_size: (u32, u32), pos: (f32, f32)) -> Option<Pos2> {
        let rect = self.image_rect?;
        let zoom = rect.width() / canvas_size.0.max(1) as f32;
        Some(rect.min + Vec2::new(pos.0, pos.1) * zoom)
    }

    /// Brings every layer's textures up to date: new layers are uploaded whole, changed
    /// regions of the others with partial updates; textures of gone layers are dropped.
    pub fn sync_textures(&mut self, ctx: &egui::Context, layers: &mut [Layer]) {
        let mut stats = UploadStats::default();
        self.textures
            .retain(|id, _| layers.iter().any(|layer| layer.id == *id));
        for layer in layers.iter_mut() {
            let dirty = layer.take_dirty();
            let size = (layer.width(), layer.height());
            let current = self
                .textures
                .get(&layer.id)
                .is_some_and(|t| t.generation == layer.generation() && t.size == size);
            if !current {
                if layer.pixels().is_none() {
                    // Nothing drawn yet: no texture needed.
                    self.textures.remove(&layer.id);
                    continue;
                }
                let chunks = chunk_rects(size.0, size.1)
                    .into_iter()
                    .map(|rect| {
                        stats.full_pixels += (rect.width() * rect.height()) as usize;
                        let image = region_image(layer, rect);
                        let name = format!("canvas-{}-{}-{}", layer.id, rect.x0, rect.y0);
                        (rect, ctx.load_texture(name, image, TEXTURE_OPTIONS))
                    })
                    .collect();
                self.textures.insert(
                    layer.id,
                    LayerTextures {
                        generation: layer.generation(),
                        size,
                        chunks,
                    },
                );
                continue;
            }
            if dirty.is_empty() {
                continue;
            }
            let Some(textures) = self.textures.get_mut(&layer.id) else {
                continue;
            };
            for (chunk, texture) in &mut textures.chunks {
                let part = dirty.intersect(*chunk);
                if part.is_empty() {
                    continue;
                }
                stats.partial_pixels += (part.width() * part.height()) as usize;
                let image = region_image(layer, part);
                let at = [(part.x0 - chunk.x0) as usize, (part.y0 - chunk.y0) as usize];
                texture.set_partial(at, image, TEXTURE_OPTIONS);
            }
        }
        self.uploads = stats;
    }
}

/// The chunk rectangles of a `width × height` layer.
fn chunk_rects(width: u32, height: u32) -> Vec<PixelRect> {
    let mut rects = Vec::new();
    let mut y = 0;
    while y < height {
        let mut x = 0;
        while x < width {
            rects.push(PixelRect {
                x0: x,
                y0: y,
                x1: (x + CHUNK).min(width),
                y1: (y + CHUNK).min(height),
            });
            x += CHUNK;
        }
        y += CHUNK;
    }
    rects
}

/// A region of a layer as an egui image (transparent when the layer has no pixels).
fn region_image(layer: &Layer, rect: PixelRect) -> egui::ColorImage {
    let size = [rect.width() as usize, rect.height() as usize];
    let Some(pixels) = layer.pixels() else {
        return egui::ColorImage::filled(size, Color32::TRANSPARENT);
    };
    let width = layer.width();
    let mut bytes = Vec::with_capacity(size[0] * size[1] * 4);
    for y in rect.y0..rect.y1 {
        let start = ((y * width + rect.x0) * 4) as usize;
        let end = start + (rect.width() * 4) as usize;
        if let Some(row) = pixels.get(start..end) {
            bytes.extend_from_slice(row);
        }
    }
    bytes.resize(size[0] * size[1] * 4, 0);
    egui::ColorImage::from_rgba_unmultiplied(size, &bytes)
}

/// The pan after zooming from `old` to `new` so that the point under `pointer` stays put.
fn zoom_about(pointer: Pos2, view_center: Pos2, pan: Vec2, old: f32, new: f32) -> Vec2 {
    let image_center = view_center + pan;
    let from_center = (pointer - image_center) / old;
    let new_center = pointer - from_center * new;
    new_center - view_center
}

/// Draws the canvas in the space left in `ui` and applies the pointer's tool operations.
pub fn canvas_ui(ui: &mut egui::Ui, canvas: &mut CanvasState, label: &str) -> egui::Response {
    let palette = Palette::of_ui(ui);
    let size = ui.available_size().max(Vec2::splat(64.0));
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, label));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, palette.canvas);

    let (width, height) = canvas.document.size();
    let canvas_size = Vec2::new(width as f32, height as f32);
    let fit_zoom = ((rect.width() / canvas_size.x).min(rect.height() / canvas_size.y) * FIT_MARGIN)
        .max(ZOOM_RANGE.0);
    let mut zoom = if canvas.view.fit {
        fit_zoom
    } else {
        canvas.view.zoom
    };
    zoom_and_pan(ui, &response, rect, canvas, &mut zoom);
    if canvas.view.fit {
        canvas.view.pan = Vec2::ZERO;
    }
    let image_rect = Rect::from_center_size(rect.center() + canvas.view.pan, canvas_size * zoom);
    canvas.view.image_rect = Some(image_rect);

    tool_input(ui, &response, image_rect, zoom, canvas);

    let ctx = ui.ctx().clone();
    canvas
        .view
        .sync_textures(&ctx, canvas.document.layers_mut());
    paint_layers(&painter, image_rect, canvas, palette);
    paint_text_frame(&painter, image_rect, zoom, canvas, palette);
    paint_overlay(ui, &painter, &response, image_rect, zoom, canvas, palette);
    response
}

/// Wheel or pinch zoom around the pointer; middle or right drag, or Space + drag, pans;
/// double-click with the middle button fits.
fn zoom_and_pan(
    ui: &egui::Ui,
    response: &egui::Response,
    rect: Rect,
    canvas: &mut CanvasState,
    zoom: &mut f32,
) {
    let view = &mut canvas.view;
    let space = ui.input(|i| i.key_down(egui::Key::Space));
    let panning = response.dragged_by(PointerButton::Middle)
        || response.dragged_by(PointerButton::Secondary)
        || (space && response.dragged_by(PointerButton::Primary))
        || view.gesture == Some(Gesture::Pan);
    if panning {
        view.fit = false;
        view.zoom = *zoom;
        view.pan += response.drag_delta();
    }
    if response.hovered() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta().y, i.zoom_delta()));
        let factor = pinch * (scroll * WHEEL_ZOOM_SPEED).exp();
        if (factor - 1.0).abs() > f32::EPSILON {
            let new_zoom = (*zoom * factor).clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
            let pointer = response.hover_pos().unwrap_or(rect.center());
            view.pan = zoom_about(pointer, rect.center(), view.pan, *zoom, new_zoom);
            view.fit = false;
            view.zoom = new_zoom;
            *zoom = new_zoom;
        }
    }
}

/// Pointer events of this frame turned into tool operations on the selected layer.
fn tool_input(
    ui: &egui::Ui,
    response: &egui::Response,
    image_rect: Rect,
    zoom: f32,
    canvas: &mut CanvasState,
) {
    let to_canvas = |pos: Pos2| {
        let p = (pos - image_rect.min) / zoom;
        (p.x, p.y)
    };
    let (events, space) = ui.input(|i| (i.events.clone(), i.key_down(egui::Key::Space)));
    let Some(layer) = canvas.selected_layer() else {
        return;
    };
    let (layer_id, kind) = (layer.id, layer.kind);
    let hovered = response.hovered() || response.is_pointer_button_down_on();
    for event in events {
        match event {
            egui::Event::Touch {
                force: Some(force), ..
            } => canvas.view.pressure = force.clamp(0.05, 1.0),
            egui::Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed: true,
                ..
            } if hovered && canvas.view.gesture.is_none() => {
                if space {
                    canvas.view.gesture = Some(Gesture::Pan);
                    continue;
                }
                let at = to_canvas(pos);
                press(canvas, layer_id, kind, at);
            }
            egui::Event::PointerMoved(pos) if canvas.view.gesture == Some(Gesture::Stroke) => {
                let (x, y) = to_canvas(pos);
                let pressure = canvas.view.pressure;
                canvas.document.stroke_to(x, y, pressure);
            }
            egui::Event::PointerMoved(pos) => {
                if let Some(Gesture::MoveText { layer, grab }) = canvas.view.gesture {
                    move_text(canvas, layer, grab, to_canvas(pos));
                }
            }
            egui::Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed: false,
                ..
            } => release(canvas, layer_id, kind, to_canvas(pos)),
            egui::Event::PointerGone if canvas.view.gesture == Some(Gesture::Stroke) => {
                canvas.document.end_stroke();
                canvas.view.gesture = None;
            }
            _ => {}
        }
    }
}

/// Moves text layer `layer` so that its grab point is at `at`.
fn move_text(canvas: &mut CanvasState, layer: u64, grab: (f32, f32), at: (f32, f32)) {
    let Some(spec) = canvas.document.layer(layer).and_then(|l| l.text()) else {
        return;
    };
    let moved = crate::gui::canvas::text::TextSpec {
        x: (at.0 - grab.0).round(),
        y: (at.1 - grab.1).round(),
        ..spec.clone()
    };
    canvas.document.set_text(layer, moved, true);
}

/// The text tool (or any tool but the picker on a text layer): grab the text under the
/// pointer, else (text tool only) add a text layer there.
fn press_text(canvas: &mut CanvasState, at: (f32, f32)) {
    let (width, height) = canvas.document.size();
    if let Some(id) = canvas.document.text_at(at.0, at.1) {
        let Some(spec) = canvas.document.layer(id).and_then(|l| l.text()) else {
            return;
        };
        let grab = (at.0 - spec.x, at.1 - spec.y);
        canvas.selected = Some(id);
        canvas.document.close_text_edit();
        canvas.view.gesture = Some(Gesture::MoveText { layer: id, grab });
        return;
    }
    if canvas.tool != Tool::Text
        || at.0 < 0.0
        || at.1 < 0.0
        || at.0 >= width as f32
        || at.1 >= height as f32
    {
        return;
    }
    let mut spec = canvas.text.clone();
    if spec.text.trim().is_empty() {
        spec.text = "Kiln".to_owned();
    }
    (spec.x, spec.y) = (at.0.round(), at.1.round());
    let id = canvas.document.add_text(spec);
    canvas.selected = Some(id);
}

/// The primary button went down on the canvas at `at` (canvas pixels).
fn press(canvas: &mut CanvasState, layer_id: u64, kind: LayerKind, at: (f32, f32)) {
    if canvas.tool == Tool::Text || (kind == LayerKind::Text && canvas.tool != Tool::Picker) {
        // Text layers are not painted on: their pixels come from the text.
        press_text(canvas, at);
        return;
    }
    match canvas.tool {
        Tool::Brush | Tool::Eraser => {
            let tip = canvas.tip(kind);
            canvas.document.begin_stroke(layer_id, tip);
            let pressure = canvas.view.pressure;
            canvas.document.stroke_to(at.0, at.1, pressure);
            canvas.view.gesture = Some(Gesture::Stroke);
        }
        Tool::Line => canvas.view.gesture = Some(Gesture::Line(at)),
        Tool::Rect => canvas.view.gesture = Some(Gesture::Box(at)),
        Tool::Fill => {
            let (width, height) = canvas.document.size();
            if at.0 >= 0.0 && at.1 >= 0.0 && at.0 < width as f32 && at.1 < height as f32 {
                let color = if kind.paints_mask() {
                    [255, 255, 255, 255]
                } else {
                    canvas.brush.color.to_srgba_unmultiplied()
                };
                canvas.document.fill(
                    layer_id,
                    (at.0 as u32, at.1 as u32),
                    color,
                    canvas.brush.opacity,
                    canvas.fill_tolerance,
                );
            }
        }
        Tool::Picker => {
            if at.0 >= 0.0
                && at.1 >= 0.0
                && let Some([r, g, b, _]) = canvas.document.pick(at.0 as u32, at.1 as u32)
            {
                canvas.brush.color = Color32::from_rgb(r, g, b);
            }
        }
        Tool::Text => {}
    }
}

/// The primary button came up at `at`.
fn release(canvas: &mut CanvasState, layer_id: u64, kind: LayerKind, at: (f32, f32)) {
    match canvas.view.gesture.take() {
        Some(Gesture::Stroke) => {
            let pressure = canvas.view.pressure;
            canvas.document.stroke_to(at.0, at.1, pressure);
            canvas.document.end_stroke();
        }
        Some(Gesture::Line(start)) => {
            let tip = canvas.tip(kind);
            canvas.document.line(layer_id, tip, start, at);
        }
        Some(Gesture::Box(start)) => {
            let color = if kind.paints_mask() {
                [255, 255, 255, 255]
            } else {
                canvas.brush.color.to_srgba_unmultiplied()
            };
            let opacity = canvas.brush.opacity;
            canvas
                .document
                .fill_box(layer_id, start, at, color, opacity, false);
        }
        Some(Gesture::MoveText { layer, grab }) => {
            move_text(canvas, layer, grab, at);
            canvas.document.close_text_edit();
        }
        Some(Gesture::Pan) | None => {}
    }
    canvas.view.pressure = 1.0;
}

/// The paper, then each visible layer with its opacity (the mask and guides tinted).
fn paint_layers(painter: &egui::Painter, image_rect: Rect, canvas: &CanvasState, palette: Palette) {
    painter.rect_filled(image_rect, 0.0, theme::canvas_paper());
    let (width, height) = canvas.document.size();
    let scale = Vec2::new(
        image_rect.width() / width.max(1) as f32,
        image_rect.height() / height.max(1) as f32,
    );
    let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    for layer in canvas.document.layers().iter().filter(|l| l.visible) {
        let Some(textures) = canvas.view.textures.get(&layer.id) else {
            continue;
        };
        let base = match layer.kind {
            LayerKind::Mask => palette.mask_overlay,
            LayerKind::Region => {
                let [r, g, b] = crate::gui::canvas::region::region_color(layer.number);
                Color32::from_rgb(r, g, b)
            }
            LayerKind::Guide { .. } => palette.guide_overlay,
            LayerKind::Background | LayerKind::Sketch | LayerKind::Text => Color32::WHITE,
        };
        let tint = base.gamma_multiply(layer.opacity.clamp(0.0, 1.0));
        for (chunk, texture) in &textures.chunks {
            let min =
                image_rect.min + Vec2::new(chunk.x0 as f32 * scale.x, chunk.y0 as f32 * scale.y);
            let size = Vec2::new(
                chunk.width() as f32 * scale.x,
                chunk.height() as f32 * scale.y,
            );
            painter.image(texture.id(), Rect::from_min_size(min, size), uv, tint);
        }
    }
    painter.rect_stroke(
        image_rect,
        0.0,
        egui::Stroke::new(1.0, palette.card_stroke),
        egui::StrokeKind::Outside,
    );
}

/// The brush outline under the pointer and the straight line being dragged.
fn paint_overlay(
    ui: &egui::Ui,
    painter: &egui::Painter,
    response: &egui::Response,
    image_rect: Rect,
    zoom: f32,
    canvas: &CanvasState,
    palette: Palette,
) {
    let pointer = ui.input(|i| i.pointer.latest_pos());
    if let (Some(Gesture::Line(start)), Some(pointer)) = (canvas.view.gesture, pointer) {
        let from = image_rect.min + Vec2::new(start.0, start.1) * zoom;
        let width = (canvas.brush.size * zoom).max(1.0);
        painter.line_segment(
            [from, pointer],
            egui::Stroke::new(width, canvas.brush.color.gamma_multiply(0.7)),
        );
    }
    if let (Some(Gesture::Box(start)), Some(pointer)) = (canvas.view.gesture, pointer) {
        let from = image_rect.min + Vec2::new(start.0, start.1) * zoom;
        let rect = Rect::from_two_pos(from, pointer);
        painter.rect_filled(rect, 0.0, palette.accent.gamma_multiply(0.2));
        painter.rect_stroke(
            rect,
            0.0,
            egui::Stroke::new(1.0, palette.on_canvas),
            egui::StrokeKind::Inside,
        );
    }
    if !response.hovered() {
        return;
    }
    match canvas.tool {
        Tool::Brush | Tool::Eraser | Tool::Line => {
            if let Some(pointer) = response.hover_pos() {
                let radius = (canvas.brush.size * zoom / 2.0).max(1.5);
                painter.circle_stroke(
                    pointer,
                    radius,
                    egui::Stroke::new(2.5, palette.cursor_shadow),
                );
                painter.circle_stroke(pointer, radius, egui::Stroke::new(1.0, palette.on_canvas));
            }
            ui.ctx().set_cursor_icon(egui::CursorIcon::None);
        }
        Tool::Fill | Tool::Picker | Tool::Rect => {
            ui.ctx().set_cursor_icon(egui::CursorIcon::Crosshair);
        }
        Tool::Text => ui.ctx().set_cursor_icon(egui::CursorIcon::Text),
    }
}

/// A dashed-looking frame around the selected text layer.
fn paint_text_frame(
    painter: &egui::Painter,
    image_rect: Rect,
    zoom: f32,
    canvas: &CanvasState,
    palette: Palette,
) {
    let Some(spec) = canvas.selected_layer().and_then(|l| l.text()) else {
        return;
    };
    let (width, height) = canvas.document.size();
    let (x0, y0, x1, y1) = crate::gui::canvas::text::hit_box(spec, width, height);
    let rect = Rect::from_min_max(
        image_rect.min + Vec2::new(x0, y0) * zoom,
        image_rect.min + Vec2::new(x1, y1) * zoom,
    )
    .expand(3.0);
    painter.rect_stroke(
        rect,
        0.0,
        egui::Stroke::new(2.5, palette.cursor_shadow),
        egui::StrokeKind::Outside,
    );
    painter.rect_stroke(
        rect,
        0.0,
        egui::Stroke::new(1.0, palette.on_canvas),
        egui::StrokeKind::Outside,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_layer() {
        let rects = chunk_rects(4096, 3000);
        assert_eq!(rects.len(), 4);
        let area: u32 = rects.iter().map(|r| r.width() * r.height()).sum();
        assert_eq!(area, 4096 * 3000);
        assert_eq!(chunk_rects(64, 64).len(), 1);
    }
}
