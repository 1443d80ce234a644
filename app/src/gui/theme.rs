//! Colours, spacing and text sizes of the app, dark and light. Everything that paints reads its
//! colours from [`Palette`]; nothing else in `gui/` names a colour.

use crate::library::settings::Theme;
use egui::{Color32, CornerRadius, FontFamily, FontId, Margin, Stroke, TextStyle, Vec2};

/// Width of the section sidebar, in points.
pub const SIDEBAR_WIDTH: f32 = 168.0;
/// Width of the Generate form column.
pub const FORM_WIDTH: f32 = 380.0;
/// Width of detail panes (gallery details).
pub const DETAILS_WIDTH: f32 = 360.0;
/// Height of the queue strip under the viewer.
pub const QUEUE_HEIGHT: f32 = 168.0;
/// Side of a gallery thumbnail cell, in points.
pub const THUMB_CELL: f32 = 168.0;
/// Pixel size thumbnails are made at (on disk and as textures).
pub const THUMB_PIXELS: u32 = 256;
/// Gap between gallery cells.
pub const GRID_GAP: f32 = 8.0;
/// Space between groups of controls.
pub const SECTION_GAP: f32 = 14.0;
/// Inner margin of the central panels.
pub const PANEL_MARGIN: i8 = 14;
/// Corner radius of cards and buttons.
pub const RADIUS: u8 = 6;
/// Width of label columns in forms.
pub const LABEL_WIDTH: f32 = 108.0;
/// Height of the Generate button's strip under the form (20 more while it shows why Generate
/// is off).
pub const GENERATE_BAR_HEIGHT: f32 = 56.0;
/// Width of the Canvas section's tool and layer column.
pub const CANVAS_SIDE_WIDTH: f32 = 300.0;

/// The app's colours for one theme.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    /// Accent: selection, primary button, progress.
    pub accent: Color32,
    /// Text on the accent colour.
    pub on_accent: Color32,
    /// Errors.
    pub error: Color32,
    /// Background of error boxes.
    pub error_fill: Color32,
    /// Success notes.
    pub success: Color32,
    /// Warnings (LoRA layers that matched nothing, a missing LoRA file).
    pub warning: Color32,
    /// Secondary text.
    pub muted: Color32,
    /// Main panel background.
    pub panel: Color32,
    /// Sidebar background.
    pub sidebar: Color32,
    /// Cards (queue items, gallery cells, model rows).
    pub card: Color32,
    /// Card border.
    pub card_stroke: Color32,
    /// Behind images (viewer, thumbnails).
    pub canvas: Color32,
    /// Drop-zone highlight while files hover over the window.
    pub drop_highlight: Color32,
    /// Tint of the canvas's inpainting mask layer.
    pub mask_overlay: Color32,
    /// Tint of the canvas's ControlNet guide layers.
    pub guide_overlay: Color32,
    /// The brush outline on the canvas (over [`Palette::cursor_shadow`]).
    pub on_canvas: Color32,
    /// The dark ring under the brush outline, so it shows on light and dark pixels.
    pub cursor_shadow: Color32,
}

impl Palette {
    /// The palette of `theme`.
    pub fn of(theme: Theme) -> Palette {
        match theme {
            Theme::Dark => Palette {
                accent: Color32::from_rgb(0xE0, 0x7A, 0x3F),
                on_accent: Color32::from_rgb(0x1A, 0x12, 0x0C),
                error: Color32::from_rgb(0xFF, 0x6B, 0x6B),
                error_fill: Color32::from_rgb(0x3A, 0x1C, 0x1C),
                success: Color32::from_rgb(0x7C, 0xC8, 0x7E),
                warning: Color32::from_rgb(0xE8, 0xC0, 0x4A),
                muted: Color32::from_gray(150),
                panel: Color32::from_rgb(0x1E, 0x1F, 0x22),
                sidebar: Color32::from_rgb(0x17, 0x18, 0x1A),
                card: Color32::from_rgb(0x27, 0x28, 0x2C),
                card_stroke: Color32::from_rgb(0x36, 0x37, 0x3C),
                canvas: Color32::from_rgb(0x14, 0x14, 0x16),
                drop_highlight: Color32::from_rgba_unmultiplied(0xE0, 0x7A, 0x3F, 40),
                mask_overlay: Color32::from_rgb(0xFF, 0x40, 0x60),
                guide_overlay: Color32::from_rgb(0x6C, 0xE0, 0xFF),
                on_canvas: Color32::WHITE,
                cursor_shadow: Color32::BLACK,
            },
            Theme::Light => Palette {
                accent: Color32::from_rgb(0xC2, 0x5A, 0x1E),
                on_accent: Color32::WHITE,
                error: Color32::from_rgb(0xC0, 0x28, 0x28),
                error_fill: Color32::from_rgb(0xFD, 0xE8, 0xE8),
                success: Color32::from_rgb(0x2E, 0x7D, 0x32),
                warning: Color32::from_rgb(0x9A, 0x6A, 0x00),
                muted: Color32::from_gray(100),
                panel: Color32::from_rgb(0xF6, 0xF5, 0xF3),
                sidebar: Color32::from_rgb(0xEB, 0xE9, 0xE6),
                card: Color32::WHITE,
                card_stroke: Color32::from_rgb(0xDD, 0xDA, 0xD5),
                canvas: Color32::from_rgb(0xE4, 0xE2, 0xDE),
                drop_highlight: Color32::from_rgba_unmultiplied(0xC2, 0x5A, 0x1E, 40),
                mask_overlay: Color32::from_rgb(0xFF, 0x40, 0x60),
                guide_overlay: Color32::from_rgb(0x6C, 0xE0, 0xFF),
                on_canvas: Color32::WHITE,
                cursor_shadow: Color32::BLACK,
            },
        }
    }

    /// The palette of the theme `ui` is painted in.
    pub fn of_ui(ui: &egui::Ui) -> Palette {
        Palette::of(if ui.visuals().dark_mode {
            Theme::Dark
        } else {
            Theme::Light
        })
    }

    /// A frame for a card (queue item, model row, details section).
    pub fn card_frame(&self) -> egui::Frame {
        egui::Frame::new()
            .fill(self.card)
            .stroke(Stroke::new(1.0, self.card_stroke))
            .corner_radius(CornerRadius::same(RADIUS))
            .inner_margin(Margin::same(10))
    }

    /// A frame for an error box.
    pub fn error_frame(&self) -> egui::Frame {
        egui::Frame::new()
            .fill(self.error_fill)
            .stroke(Stroke::new(1.0, self.error))
            .corner_radius(CornerRadius::same(RADIUS))
            .inner_margin(Margin::same(10))
    }
}

/// The canvas paper under all layers: the colour exports flatten onto
/// ([`crate::gui::canvas::document::PAPER`], black like a scribble guide's background).
pub fn canvas_paper() -> Color32 {
    let [r, g, b] = crate::gui::canvas::document::PAPER;
    Color32::from_rgb(r, g, b)
}

/// Installs Kiln's styles for both themes; call once at start-up, then [`set_theme`].
pub fn install(ctx: &egui::Context) {
    for theme in Theme::ALL {
        let egui_theme = egui_theme(theme);
        let palette = Palette::of(theme);
        ctx.style_mut_of(egui_theme, |style| style_for(style, palette));
    }
}

/// Switches between the installed dark and light styles.
pub fn set_theme(ctx: &egui::Context, theme: Theme) {
    ctx.set_theme(egui_theme(theme));
}

fn egui_theme(theme: Theme) -> egui::Theme {
    match theme {
        Theme::Dark => egui::Theme::Dark,
        Theme::Light => egui::Theme::Light,
    }
}

fn style_for(style: &mut egui::Style, palette: Palette) {
    style.text_styles = [
        (
            TextStyle::Small,
            FontId::new(11.5, FontFamily::Proportional),
        ),
        (TextStyle::Body, FontId::new(14.0, FontFamily::Proportional)),
        (
            TextStyle::Button,
            FontId::new(14.0, FontFamily::Proportional),
        ),
        (
            TextStyle::Heading,
            FontId::new(20.0, FontFamily::Proportional),
        ),
        (
            TextStyle::Monospace,
            FontId::new(13.0, FontFamily::Monospace),
        ),
    ]
    .into();
    let spacing = &mut style.spacing;
    spacing.item_spacing = Vec2::new(8.0, 7.0);
    spacing.button_padding = Vec2::new(10.0, 4.0);
    spacing.interact_size = Vec2::new(40.0, 24.0);
    spacing.combo_width = 160.0;
    spacing.slider_width = 160.0;

    let visuals = &mut style.visuals;
    visuals.panel_fill = palette.panel;
    visuals.window_fill = palette.card;
    visuals.extreme_bg_color = palette.canvas;
    visuals.faint_bg_color = palette.card;
    visuals.error_fg_color = palette.error;
    visuals.hyperlink_color = palette.accent;
    visuals.selection.bg_fill = palette.accent;
    visuals.selection.stroke = Stroke::new(1.0, palette.on_accent);
    visuals.slider_trailing_fill = true;
    let radius = CornerRadius::same(RADIUS);
    for widget in [
        &mut visuals.widgets.noninteractive,
        &mut visuals.widgets.inactive,
        &mut visuals.widgets.hovered,
        &mut visuals.widgets.active,
        &mut visuals.widgets.open,
    ] {
        widget.corner_radius = radius;
    }
    visuals.widgets.hovered.bg_stroke = Stroke::new(1.0, palette.accent);
    visuals.window_corner_radius = CornerRadius::same(RADIUS + 2);
    visuals.menu_corner_radius = radius;
}

/// A fixed-width left column (the Generate form, the canvas tools) with the gutter to the
/// content on its right.
pub fn left_column(id: &'static str, width: f32) -> egui::Panel {
    egui::Panel::left(id)
        .exact_size(width)
        .resizable(false)
        .show_separator_line(false)
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 0,
            right: 12,
            top: 0,
            bottom: 0,
        }))
}
