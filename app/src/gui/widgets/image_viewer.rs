//! An image viewer with zoom (mouse wheel or pinch, around the pointer), pan (drag) and fit
//! (double-click or [`ImageViewer::fit`]).

use crate::gui::theme::Palette;
use egui::{Pos2, Rect, Sense, Vec2};

/// Smallest and largest zoom, in screen points per image pixel.
const ZOOM_RANGE: (f32, f32) = (0.05, 32.0);
/// Zoom change per point of wheel scroll.
const WHEEL_ZOOM_SPEED: f32 = 0.0018;

/// Zoom and pan of one viewer.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageViewer {
    /// Fit the image into the view (the zoom follows the view size).
    pub fit: bool,
    /// Points per image pixel when not fitting.
    pub zoom: f32,
    /// Offset of the image centre from the view centre, in points.
    pub pan: Vec2,
}

impl Default for ImageViewer {
    fn default() -> Self {
        ImageViewer {
            fit: true,
            zoom: 1.0,
            pan: Vec2::ZERO,
        }
    }
}

impl ImageViewer {
    /// Back to "fit into the view".
    pub fn fit(&mut self) {
        *self = ImageViewer::default();
    }

    /// Shows `texture` (of `image_size` pixels) filling the available space.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        texture: egui::TextureId,
        image_size: Vec2,
    ) -> egui::Response {
        let palette = Palette::of_ui(ui);
        let size = ui.available_size().max(Vec2::splat(32.0));
        let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, palette.canvas);
        if image_size.x < 1.0 || image_size.y < 1.0 {
            return response;
        }
        // Fitting may enlarge a small image (a latent preview) beyond the manual zoom range.
        let fit_zoom = (rect.width() / image_size.x)
            .min(rect.height() / image_size.y)
            .max(ZOOM_RANGE.0);
        let mut zoom = if self.fit { fit_zoom } else { self.zoom };

        if response.double_clicked() {
            self.fit();
            zoom = fit_zoom;
        } else {
            if response.dragged() {
                self.fit = false;
                self.zoom = zoom;
                self.pan += response.drag_delta();
            }
            if response.hovered() {
                let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta().y, i.zoom_delta()));
                let factor = pinch * (scroll * WHEEL_ZOOM_SPEED).exp();
                if (factor - 1.0).abs() > f32::EPSILON {
                    let new_zoom = (zoom * factor).clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
                    let pointer = response.hover_pos().unwrap_or(rect.center());
                    self.pan = zoom_about(pointer, rect.center(), self.pan, zoom, new_zoom);
                    self.fit = false;
                    self.zoom = new_zoom;
                    zoom = new_zoom;
                }
            }
        }
        if self.fit {
            self.pan = Vec2::ZERO;
        }
        let image_rect = Rect::from_center_size(rect.center() + self.pan, image_size * zoom);
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(texture, image_rect, uv, egui::Color32::WHITE);
        response
    }
}

/// The pan after zooming from `old` to `new` so that the image point under `pointer` stays put.
fn zoom_about(pointer: Pos2, view_center: Pos2, pan: Vec2, old: f32, new: f32) -> Vec2 {
    let image_center = view_center + pan;
    let from_center_in_image = (pointer - image_center) / old;
    let new_center = pointer - from_center_in_image * new;
    new_center - view_center
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_point_under_the_pointer() {
        let view = Pos2::new(100.0, 100.0);
        let pointer = Pos2::new(150.0, 80.0);
        let pan = Vec2::new(10.0, -5.0);
        let new_pan = zoom_about(pointer, view, pan, 2.0, 3.0);
        let before = (pointer - (view + pan)) / 2.0;
        let after = (pointer - (view + new_pan)) / 3.0;
        assert!((before - after).length() < 1e-4);
    }
}
