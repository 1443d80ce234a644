//! The sidebar: the app's name, one entry per section, and the queue status at the bottom.

use crate::gui::action::Action;
use crate::gui::state::{AppState, Section};
use crate::gui::theme::{self, Palette};
use crate::i18n::{tr, tr_args, tr_count};
use egui::{Margin, RichText, Sense, Vec2};

/// Height of a section entry.
const ENTRY_HEIGHT: f32 = 36.0;

/// Draws the sidebar as a left panel of `ui`.
pub fn sidebar_ui(ui: &mut egui::Ui, state: &AppState, busy: bool, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let lang = state.lang();
    let frame = egui::Frame::new()
        .fill(palette.sidebar)
        .inner_margin(Margin::symmetric(10, 14));
    egui::Panel::left("sidebar")
        .exact_size(theme::SIDEBAR_WIDTH)
        .resizable(false)
        .frame(frame)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.add_space(6.0);
                ui.label(
                    RichText::new("Kiln")
                        .size(24.0)
                        .strong()
                        .color(palette.accent),
                );
            });
            ui.add_space(2.0);
            ui.horizontal(|ui| {
                ui.add_space(6.0);
                ui.label(
                    RichText::new(tr(lang, "app.tagline"))
                        .small()
                        .color(palette.muted),
                );
            });
            ui.add_space(18.0);
            for section in Section::ALL {
                if entry_ui(ui, tr(lang, section.label_key()), state.section == section).clicked() {
                    actions.push(Action::ShowSection(section));
                }
                ui.add_space(2.0);
            }
            ui.with_layout(egui::Layout::bottom_up(egui::Align::Min), |ui| {
                status_ui(ui, state, busy);
            });
        });
}

/// One full-width section entry, accent bar on the left when selected.
fn entry_ui(ui: &mut egui::Ui, label: &str, selected: bool) -> egui::Response {
    let palette = Palette::of_ui(ui);
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(Vec2::new(width, ENTRY_HEIGHT), Sense::click());
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::Tab, true, selected, label));
    let visuals = ui.visuals();
    let fill = if selected {
        palette.card
    } else if response.hovered() {
        palette.card.gamma_multiply(0.5)
    } else {
        egui::Color32::TRANSPARENT
    };
    let painter = ui.painter();
    painter.rect_filled(rect, theme::RADIUS, fill);
    if selected {
        let bar = egui::Rect::from_min_size(rect.min, Vec2::new(3.0, rect.height()))
            .shrink2(Vec2::new(0.0, 7.0));
        painter.rect_filled(bar, 1.5, palette.accent);
    }
    let text_color = if selected {
        visuals.strong_text_color()
    } else {
        visuals.text_color()
    };
    painter.text(
        rect.left_center() + Vec2::new(14.0, 0.0),
        egui::Align2::LEFT_CENTER,
        label,
        egui::FontId::proportional(15.0),
        text_color,
    );
    response.on_hover_cursor(egui::CursorIcon::PointingHand)
}

/// "Idle" / "Generating 3/20" / "2 waiting" at the bottom of the sidebar.
fn status_ui(ui: &mut egui::Ui, state: &AppState, busy: bool) {
    let palette = Palette::of_ui(ui);
    let lang = state.lang();
    ui.label(
        RichText::new(concat!("v", env!("CARGO_PKG_VERSION")))
            .small()
            .color(palette.muted),
    );
    let waiting = state
        .jobs
        .queue
        .len()
        .saturating_sub(usize::from(state.jobs.running().is_some()));
    let text = match &state.jobs.progress {
        Some(progress) if state.jobs.running().is_some() => tr_args(
            lang,
            "sidebar.running",
            &[("step", &progress.step), ("total", &progress.total)],
        ),
        _ if state.jobs.running().is_some() => tr(lang, "sidebar.starting").to_owned(),
        _ => tr(lang, "sidebar.idle").to_owned(),
    };
    if waiting > 0 {
        ui.label(
            RichText::new(tr_count(lang, "sidebar.waiting", waiting))
                .small()
                .color(palette.muted),
        );
    }
    ui.horizontal(|ui| {
        // A still dot, not a spinner: an animation would repaint the window every frame and take
        // CPU time from the generation running on the same cores.
        if state.jobs.running().is_some() || busy {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(8.0, 8.0), Sense::hover());
            ui.painter()
                .circle_filled(rect.center(), 4.0, palette.accent);
        }
        ui.label(RichText::new(text).small());
    });
}
