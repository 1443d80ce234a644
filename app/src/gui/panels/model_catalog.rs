//! The model manager's side of the Models panel: the catalog with licence, size, a
//! "not for commercial use" badge and the install state; Download (after the licence is shown),
//! progress with speed and ETA, Cancel and Remove. Also the banner that offers the exact
//! downloads a preset lacks, the recommended first download, and the Hub settings card.
//! Draws from [`AppState`] and pushes [`Action`]s only.

use crate::gui::action::Action;
use crate::gui::panels::{human_duration, human_size};
use crate::gui::state::AppState;
use crate::gui::state::downloads::{DownloadAction, DownloadsState};
use crate::gui::theme::Palette;
use crate::i18n::{Lang, tr, tr_args};
use crate::library::catalog::CatalogModel;
use crate::library::download::InstallState;
use egui::RichText;

fn push(actions: &mut Vec<Action>, action: DownloadAction) {
    actions.push(Action::Download(action));
}

fn size_text(model: &CatalogModel) -> String {
    match model.approx_size_mb() {
        0 => "—".to_owned(),
        mb => human_size(mb.saturating_mul(1_000_000)),
    }
}

/// The red "not for commercial use" badge.
pub fn non_commercial_badge(ui: &mut egui::Ui, lang: Lang) {
    let palette = Palette::of_ui(ui);
    ui.label(
        RichText::new(tr(lang, "downloads.non_commercial"))
            .small()
            .strong()
            .color(palette.error),
    )
    .on_hover_text(tr(lang, "downloads.non_commercial_hint"));
}

/// Progress text: "1.2 GB / 6.9 GB · 25 MB/s · 4:01 left".
fn progress_text(downloads: &DownloadsState, id: &str, lang: Lang) -> Option<(f32, String)> {
    let active = downloads.active.get(id)?;
    let Some(progress) = &active.progress else {
        return Some((0.0, tr(lang, "downloads.starting").to_owned()));
    };
    let fraction = if progress.total_bytes > 0 {
        (progress.done_bytes as f64 / progress.total_bytes as f64) as f32
    } else {
        0.0
    };
    let mut text = format!(
        "{} / {}",
        human_size(progress.done_bytes),
        human_size(progress.total_bytes)
    );
    if progress.bytes_per_sec > 0.0 {
        text.push_str(&format!(
            " · {}/s",
            human_size(progress.bytes_per_sec as u64)
        ));
    }
    if let Some(eta) = progress.eta {
        text.push_str(&format!(
            " · {}",
            tr_args(lang, "downloads.eta", &[("time", &human_duration(eta))])
        ));
    }
    if progress.file_count > 1 {
        text.push_str(&format!(
            " · {}/{}",
            progress.file_index + 1,
            progress.file_count
        ));
    }
    Some((fraction.clamp(0.0, 1.0), text))
}

/// Download / Cancel / Remove for one catalog entry, with progress while it runs.
pub fn model_controls_ui(
    ui: &mut egui::Ui,
    downloads: &DownloadsState,
    model: &CatalogModel,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    let id = &model.id;
    if let Some(active) = downloads.active.get(id) {
        if let Some((fraction, text)) = progress_text(downloads, id, lang) {
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_width(180.0)
                    .show_percentage(),
            );
            ui.label(RichText::new(text).small().color(palette.muted));
        }
        let cancel = egui::Button::new(tr(lang, "downloads.cancel"));
        if ui.add_enabled(!active.cancelling, cancel).clicked() {
            push(actions, DownloadAction::Cancel(id.clone()));
        }
        return;
    }
    match downloads.states.get(id) {
        Some(InstallState::Installed) => {
            ui.label(RichText::new(tr(lang, "downloads.installed")).color(palette.success));
            if ui.small_button(tr(lang, "downloads.remove")).clicked() {
                push(actions, DownloadAction::Remove(id.clone()));
            }
        }
        state => {
            let key = if matches!(state, Some(InstallState::Partial { .. })) {
                "downloads.resume"
            } else {
                "downloads.download"
            };
            let button = ui.button(tr(lang, key)).on_hover_text(format!(
                "{} · {}",
                model.repo,
                size_text(model)
            ));
            if button.clicked() {
                push(actions, DownloadAction::ShowLicence(id.clone()));
            }
            if let Some(InstallState::Partial { bytes }) = state {
                ui.label(
                    RichText::new(human_size(*bytes))
                        .small()
                        .color(palette.muted),
                );
            }
        }
    }
}

/// The licence card shown before a download starts: licence (with its link), the
/// non-commercial warning, the gated note; "Agree and download" or "Cancel".
fn confirm_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let Some(id) = state.downloads.confirm.clone() else {
        return;
    };
    let Some(model) = state.downloads.model(&id).cloned() else {
        state.downloads.confirm = None;
        return;
    };
    let palette = Palette::of_ui(ui);
    palette.card_frame().show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(
            RichText::new(tr_args(
                lang,
                "downloads.confirm_title",
                &[("name", &model.name)],
            ))
            .strong(),
        );
        ui.horizontal_wrapped(|ui| {
            ui.label(tr_args(
                lang,
                "downloads.licence",
                &[("licence", &model.license)],
            ));
            if let Some(url) = &model.license_url {
                ui.hyperlink_to(tr(lang, "downloads.read_licence"), url);
            } else {
                ui.hyperlink_to(tr(lang, "downloads.model_page"), model.url());
            }
            ui.label(
                RichText::new(format!("· {} · {}", size_text(&model), model.repo))
                    .color(palette.muted),
            );
        });
        if model.non_commercial {
            ui.label(
                RichText::new(tr(lang, "downloads.non_commercial_warning")).color(palette.error),
            );
        }
        if model.gated {
            ui.label(RichText::new(tr(lang, "downloads.gated")).color(palette.warning));
        }
        if let Some(notes) = &model.notes {
            ui.add(egui::Label::new(RichText::new(notes).small().color(palette.muted)).wrap());
        }
        ui.horizontal(|ui| {
            if ui.button(tr(lang, "downloads.agree")).clicked() {
                state.downloads.confirm = None;
                push(actions, DownloadAction::Start(id.clone()));
            }
            if ui.button(tr(lang, "downloads.cancel")).clicked() {
                state.downloads.confirm = None;
            }
        });
    });
    ui.add_space(8.0);
}

/// The catalog section of the Models panel.
pub fn catalog_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    ui.add_space(8.0);
    ui.label(
        RichText::new(tr(lang, "downloads.title"))
            .strong()
            .size(16.0),
    );
    ui.label(
        RichText::new(tr_args(
            lang,
            "downloads.subtitle",
            &[(
                "dir",
                &state
                    .settings
                    .model_dirs
                    .first()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            )],
        ))
        .color(palette.muted),
    );
    if let Some(error) = &state.downloads.catalog_error {
        ui.label(RichText::new(error).color(palette.error));
    }
    ui.add_space(4.0);
    confirm_ui(ui, state, lang, actions);
    let downloads = &state.downloads;
    egui::Grid::new("catalog-table")
        .striped(true)
        .num_columns(5)
        .spacing([16.0, 8.0])
        .show(ui, |ui| {
            for key in [
                "models.name",
                "models.type",
                "models.size",
                "downloads.licence_column",
            ] {
                ui.label(RichText::new(tr(lang, key)).strong());
            }
            ui.label("");
            ui.end_row();
            for model in &downloads.catalog {
                ui.vertical(|ui| {
                    ui.set_max_width(360.0);
                    ui.add(egui::Label::new(RichText::new(&model.name).strong()).truncate())
                        .on_hover_text(format!("{} — {}", model.id, model.url()));
                    if let Some(error) = downloads.errors.get(&model.id) {
                        ui.add(
                            egui::Label::new(RichText::new(error).small().color(palette.error))
                                .wrap(),
                        );
                    }
                });
                ui.label(format!(
                    "{}{}",
                    model.kind,
                    model
                        .family
                        .as_deref()
                        .map(|f| format!(" · {f}"))
                        .unwrap_or_default()
                ));
                ui.label(size_text(model));
                ui.horizontal(|ui| {
                    ui.label(&model.license);
                    if model.non_commercial {
                        non_commercial_badge(ui, lang);
                    }
                });
                ui.horizontal(|ui| model_controls_ui(ui, downloads, model, lang, actions));
                ui.end_row();
            }
        });
}

/// Above the Presets gallery: "Clay needs: <model> [Download]" for each offer.
pub fn offers_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    if state.downloads.offers.is_empty() {
        return;
    }
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let mut dismissed = None;
    let show_confirm = state
        .downloads
        .confirm
        .as_ref()
        .is_some_and(|id| state.downloads.offers.iter().any(|o| o.ids.contains(id)));
    if show_confirm {
        confirm_ui(ui, state, lang, actions);
    }
    let downloads = &state.downloads;
    for (index, offer) in downloads.offers.iter().enumerate() {
        ui.add_space(6.0);
        palette.card_frame().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(tr_args(lang, "downloads.offer", &[("name", &offer.preset)]))
                        .strong()
                        .color(palette.warning),
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(tr(lang, "common.dismiss")).clicked() {
                        dismissed = Some(index);
                    }
                });
            });
            for id in &offer.ids {
                let Some(model) = downloads.model(id) else {
                    continue;
                };
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "{} · {} · {}",
                        model.name,
                        size_text(model),
                        model.license
                    ));
                    if model.non_commercial {
                        non_commercial_badge(ui, lang);
                    }
                    model_controls_ui(ui, downloads, model, lang, actions);
                });
            }
        });
    }
    if let Some(index) = dismissed {
        state.downloads.offers.remove(index);
    }
}

/// In the "no model found" card: download the recommended model.
pub fn recommended_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let Some(model) = state
        .downloads
        .catalog
        .iter()
        .find(|m| m.recommended)
        .cloned()
    else {
        return;
    };
    ui.add_space(8.0);
    ui.label(
        RichText::new(tr_args(
            lang,
            "downloads.recommended",
            &[("name", &model.name), ("size", &size_text(&model))],
        ))
        .strong(),
    );
    confirm_ui(ui, state, lang, actions);
    ui.horizontal(|ui| model_controls_ui(ui, &state.downloads, &model, lang, actions));
}

/// The Settings card: Hub endpoint, proxy and token.
pub fn hub_settings_ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    let mut changed = false;
    egui::Grid::new("hub-settings")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label(tr(lang, "downloads.endpoint"));
            let mut endpoint = state.settings.hub_endpoint.clone().unwrap_or_default();
            let edit = ui.add(
                egui::TextEdit::singleline(&mut endpoint)
                    .hint_text(crate::library::download::hub::DEFAULT_ENDPOINT)
                    .desired_width(320.0),
            );
            if edit.changed() {
                state.settings.hub_endpoint =
                    Some(endpoint.trim().to_owned()).filter(|e| !e.is_empty());
            }
            changed |= edit.lost_focus();
            ui.end_row();
            ui.label(tr(lang, "downloads.proxy"));
            let mut proxy = state.settings.proxy.clone().unwrap_or_default();
            let edit = ui.add(
                egui::TextEdit::singleline(&mut proxy)
                    .hint_text("http://host:port")
                    .desired_width(320.0),
            );
            if edit.changed() {
                state.settings.proxy = Some(proxy.trim().to_owned()).filter(|p| !p.is_empty());
            }
            changed |= edit.lost_focus();
            ui.end_row();
            ui.label(tr(lang, "downloads.token"));
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut state.downloads.token_input)
                        .password(true)
                        .hint_text("hf_…")
                        .desired_width(240.0),
                );
                let typed = !state.downloads.token_input.trim().is_empty();
                if ui
                    .add_enabled(typed, egui::Button::new(tr(lang, "downloads.save_token")))
                    .clicked()
                {
                    push(actions, DownloadAction::SaveToken);
                }
                if ui.button(tr(lang, "downloads.clear_token")).clicked() {
                    push(actions, DownloadAction::ClearToken);
                }
            });
            ui.end_row();
        });
    if let Some(status) = &state.downloads.token_status {
        ui.label(RichText::new(status).small().color(palette.muted));
    }
    ui.label(
        RichText::new(tr(lang, "downloads.token_hint"))
            .small()
            .color(palette.muted),
    );
    if changed {
        actions.push(Action::SettingsChanged);
    }
}
