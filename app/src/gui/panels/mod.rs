//! The panels: the sidebar, then one panel per section. Each draws from [`AppState`] and
//! pushes [`Action`]s; none of them touches the worker, the library or the disk.

pub mod batch;
pub mod canvas;
pub mod comic;
pub mod controlnets;
pub mod gallery;
pub mod generate;
pub mod loras;
pub mod model_catalog;
pub mod models;
pub mod portrait;
pub mod presets;
pub mod queue;
pub mod settings;
pub mod sidebar;
pub mod video;

use crate::gui::action::Action;
use crate::gui::state::{AppState, NoticeKind, Section};
use crate::gui::theme::{self, Palette};
use crate::i18n::tr;
use egui::{Align2, Color32, FontId, Margin};

/// How long an info notice stays, in seconds.
const INFO_NOTICE_SECS: f64 = 6.0;

/// The whole window: sidebar, notices, the open section, and the drop overlay.
pub fn app_ui(ui: &mut egui::Ui, state: &mut AppState, busy: bool, actions: &mut Vec<Action>) {
    sidebar::sidebar_ui(ui, state, busy, actions);
    let palette = Palette::of_ui(ui);
    let frame = egui::Frame::new()
        .fill(palette.panel)
        .inner_margin(Margin::same(theme::PANEL_MARGIN));
    egui::CentralPanel::default().frame(frame).show(ui, |ui| {
        notices_ui(ui, state, actions);
        match state.section {
            Section::Generate => generate::generate_panel_ui(ui, state, actions),
            Section::Canvas => canvas::canvas_panel_ui(ui, state, actions),
            Section::Presets => presets::presets_panel_ui(ui, state, actions),
            Section::Batch => batch::batch_panel_ui(ui, state, actions),
            Section::Comic => comic::comic_panel_ui(ui, state, actions),
            Section::Video => video::video_panel_ui(ui, state, actions),
            Section::Portrait => portrait::portrait_panel_ui(ui, state, actions),
            Section::Gallery => gallery::gallery_panel_ui(ui, state, actions),
            Section::Models => models::models_panel_ui(ui, state, actions),
            Section::Settings => settings::settings_panel_ui(ui, state, actions),
        }
    });
    if state.files_hovering {
        drop_overlay_ui(ui, state);
    }
}

/// Dismissable messages above the panel; info ones fade out by themselves.
fn notices_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    if state.notices.is_empty() {
        return;
    }
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let now = ui.input(|i| i.time);
    for notice in &mut state.notices {
        let shown_at = *notice.shown_at.get_or_insert(now);
        if notice.kind == NoticeKind::Info {
            let left = INFO_NOTICE_SECS - (now - shown_at);
            if left <= 0.0 {
                actions.push(Action::DismissNotice(notice.id));
                continue;
            }
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_secs_f64(left));
        }
        let (frame, color) = match notice.kind {
            NoticeKind::Error => (palette.error_frame(), palette.error),
            NoticeKind::Info => (palette.card_frame(), palette.success),
            NoticeKind::Warning => (palette.card_frame(), palette.warning),
        };
        frame.show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(tr(lang, "common.dismiss")).clicked() {
                        actions.push(Action::DismissNotice(notice.id));
                    }
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        ui.add(
                            egui::Label::new(egui::RichText::new(&notice.text).color(color)).wrap(),
                        );
                    });
                });
            });
        });
        ui.add_space(6.0);
    }
}

/// A veil over the window while files are dragged over it.
fn drop_overlay_ui(ui: &mut egui::Ui, state: &AppState) {
    let palette = Palette::of_ui(ui);
    let rect = ui.ctx().content_rect();
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop-overlay"),
    ));
    painter.rect_filled(rect, 0.0, palette.drop_highlight);
    painter.rect_stroke(
        rect.shrink(6.0),
        8.0,
        egui::Stroke::new(3.0, palette.accent),
        egui::StrokeKind::Inside,
    );
    let text_color = if ui.visuals().dark_mode {
        Color32::WHITE
    } else {
        Color32::BLACK
    };
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        tr(
            state.lang(),
            match state.section {
                Section::Presets => "drop.hint_presets",
                Section::Batch => "drop.hint_batch",
                Section::Portrait => "drop.hint_portrait",
                _ => "drop.hint",
            },
        ),
        FontId::proportional(22.0),
        text_color,
    );
}

/// A heading with the section's title and an optional muted subtitle.
pub fn heading_ui(ui: &mut egui::Ui, title: &str, subtitle: Option<&str>) {
    ui.label(egui::RichText::new(title).heading().strong());
    if let Some(subtitle) = subtitle {
        ui.label(egui::RichText::new(subtitle).color(Palette::of_ui(ui).muted));
    }
    ui.add_space(theme::SECTION_GAP / 2.0);
}

/// A primary (accent-filled) button.
pub fn primary_button(
    ui: &mut egui::Ui,
    text: &str,
    enabled: bool,
    min_width: f32,
) -> egui::Response {
    let palette = Palette::of_ui(ui);
    let label = egui::RichText::new(text).strong().color(if enabled {
        palette.on_accent
    } else {
        palette.muted
    });
    let button = egui::Button::new(label)
        .fill(if enabled {
            palette.accent
        } else {
            palette.card
        })
        .min_size(egui::vec2(min_width, 34.0));
    ui.add_enabled(enabled, button)
}

/// Bytes as "1.9 GB", "312 MB", "44 kB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let unit_name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {unit_name}")
    } else {
        format!("{value:.0} {unit_name}")
    }
}

/// A duration as "1:05" or "12.3 s".
pub fn human_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = duration.as_secs();
        format!("{}:{:02}", whole / 60, whole % 60)
    }
}

/// The file name of a path, for display.
pub fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2_132_000_000), "2.1 GB");
        assert_eq!(human_size(312_400_000), "312 MB");
        assert_eq!(
            human_duration(std::time::Duration::from_millis(12_345)),
            "12.3 s"
        );
        assert_eq!(human_duration(std::time::Duration::from_secs(65)), "1:05");
    }
}
