//! The Gallery panel: a virtual thumbnail grid over the SQLite index (newest first; only the
//! visible rows are fetched and only their thumbnails loaded), text search, model and date
//! filters, a details pane with the full recipe, "rebuild index", and the creation record:
//! "Export record…" (the entry's chain of steps as HTML + JSON) and a side-by-side comparison of
//! two entries with their differing settings.

use crate::gui::action::Action;
use crate::gui::panels::{file_name, generate::sampler_label};
use crate::gui::state::AppState;
use crate::gui::state::gallery::{DateFilter, ExportStatus, GalleryState, PAGE_SIZE, Thumb};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args, tr_count};
use crate::library::gallery::GalleryEntry;
use crate::library::record::{entry_recipe, format_date as record_date, recipe_differences};
use egui::{Rect, RichText, Sense, Vec2};
use kiln_inference::SamplerKind;

/// The Gallery panel.
pub fn gallery_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    filter_bar_ui(ui, state, actions);
    ui.add_space(8.0);
    if let Some(error) = &state.gallery.error {
        ui.label(RichText::new(error).color(Palette::of_ui(ui).error));
    }
    if state.gallery.selected.is_some() {
        egui::Panel::right("gallery-details")
            .exact_size(theme::DETAILS_WIDTH)
            .resizable(false)
            .show_separator_line(false)
            .frame(egui::Frame::new().inner_margin(egui::Margin {
                left: 12,
                right: 0,
                top: 0,
                bottom: 0,
            }))
            .show(ui, |ui| details_ui(ui, state, lang, actions));
    }
    let comparing = state.gallery.selected.is_some() && state.gallery.compare.is_some();
    egui::CentralPanel::default()
        .frame(egui::Frame::new())
        .show(ui, |ui| {
            if comparing {
                compare_ui(ui, state, lang, actions);
            } else {
                if state.gallery.compare_picking {
                    picking_banner_ui(ui, &mut state.gallery, lang);
                }
                grid_ui(ui, state, lang, actions);
            }
        });
}

/// "Click another image…" above the grid while picking the entry to compare with.
fn picking_banner_ui(ui: &mut egui::Ui, gallery: &mut GalleryState, lang: Lang) {
    let palette = Palette::of_ui(ui);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "record.picking")).color(palette.accent));
        if ui.small_button(tr(lang, "record.cancel")).clicked() {
            gallery.compare_picking = false;
        }
    });
    ui.add_space(6.0);
}

/// The selected entry and the one compared with it side by side, their differing settings,
/// and "Export comparison".
fn compare_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let gallery = &mut state.gallery;
    let (Some(a), Some(b)) = (gallery.selected.clone(), gallery.compare.clone()) else {
        return;
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "record.compare_title")).strong());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button(tr(lang, "record.back")).clicked() {
                gallery.compare = None;
            }
            let running = gallery.export == Some(ExportStatus::Running);
            if ui
                .add_enabled(
                    !running,
                    egui::Button::new(tr(lang, "record.export_comparison")),
                )
                .on_hover_text(tr(lang, "record.export_comparison_hint"))
                .clicked()
            {
                actions.push(Action::ExportComparison(Box::new((a.clone(), b.clone()))));
            }
        });
    });
    if let Some(status) = &gallery.export {
        export_status_ui(ui, status, lang, actions);
    }
    ui.add_space(6.0);
    let mut wanted = Vec::new();
    let frame = state.frame;
    ui.columns(2, |columns| {
        for (ui, (label, entry)) in columns.iter_mut().zip([("A", &a), ("B", &b)]) {
            let size = Vec2::new(ui.available_width(), 300.0);
            match gallery.thumbnails.get_mut(&entry.id) {
                Some(Thumb::Loaded { texture, last_used }) => {
                    *last_used = frame;
                    let image_size = texture.size_vec2();
                    let scale = (size.x / image_size.x).min(size.y / image_size.y);
                    ui.add(
                        egui::Image::new((texture.id(), image_size * scale))
                            .corner_radius(theme::RADIUS),
                    );
                }
                other => {
                    if other.is_none() {
                        wanted.push((entry.id, entry.path.clone()));
                    }
                    let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
                    ui.painter()
                        .rect_filled(rect, theme::RADIUS, palette.canvas);
                }
            }
            ui.label(
                RichText::new(format!(
                    "{label} · {} · {}",
                    file_name(&entry.path),
                    record_date(entry.created_unix)
                ))
                .color(palette.muted),
            );
        }
    });
    let ids: Vec<i64> = wanted.iter().map(|(id, _)| *id).collect();
    if !wanted.is_empty() && ids != gallery.last_wanted {
        gallery.last_wanted = ids;
        actions.push(Action::WantThumbnails(wanted));
    }
    ui.add_space(10.0);
    let differences = recipe_differences(&entry_recipe(&a), &entry_recipe(&b));
    if differences.is_empty() {
        ui.label(RichText::new(tr(lang, "record.no_differences")).color(palette.muted));
        return;
    }
    ui.label(RichText::new(tr_count(lang, "record.differences", differences.len())).strong());
    ui.add_space(4.0);
    egui::ScrollArea::vertical()
        .id_salt("gallery-compare-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let column = ((ui.available_width() - 160.0) / 2.0).max(120.0);
            egui::Grid::new("gallery-compare-grid")
                .num_columns(3)
                .spacing([16.0, 6.0])
                .striped(true)
                .show(ui, |ui| {
                    ui.label(RichText::new(tr(lang, "record.setting")).color(palette.muted));
                    ui.label(RichText::new("A").color(palette.muted));
                    ui.label(RichText::new("B").color(palette.muted));
                    ui.end_row();
                    for (field, value_a, value_b) in &differences {
                        ui.label(
                            RichText::new(tr(lang, &format!("record.field_{field}")))
                                .color(palette.accent),
                        );
                        for value in [value_a, value_b] {
                            ui.add_sized(
                                [column, 0.0],
                                egui::Label::new(value.as_str()).selectable(true).wrap(),
                            );
                        }
                        ui.end_row();
                    }
                });
        });
}

/// Where the last export stands: a spinner, the folder with "Open folder", or the error.
fn export_status_ui(
    ui: &mut egui::Ui,
    status: &ExportStatus,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    match status {
        ExportStatus::Running => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new(tr(lang, "record.exporting")).color(palette.muted));
            });
        }
        ExportStatus::Done(folder) => {
            ui.add(
                egui::Label::new(
                    RichText::new(tr_args(
                        lang,
                        "record.exported",
                        &[("path", &folder.display())],
                    ))
                    .small()
                    .color(palette.success),
                )
                .wrap(),
            );
            if ui.small_button(tr(lang, "record.open_folder")).clicked() {
                actions.push(Action::OpenDir(folder.clone()));
            }
        }
        ExportStatus::Failed(error) => {
            ui.add(
                egui::Label::new(
                    RichText::new(tr_args(lang, "record.export_failed", &[("error", error)]))
                        .small()
                        .color(palette.error),
                )
                .wrap(),
            );
        }
    }
}

fn filter_bar_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let gallery = &mut state.gallery;
    let mut changed = false;
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "gallery.title")).heading().strong());
        if let Some(count) = gallery.count {
            ui.label(RichText::new(tr_count(lang, "gallery.count", count)).color(palette.muted));
        }
        ui.with_layout(
            egui::Layout::right_to_left(egui::Align::Center),
            |ui| match gallery.rebuild {
                Some((done, total)) => {
                    let fraction = if total == 0 {
                        0.0
                    } else {
                        done as f32 / total as f32
                    };
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .desired_width(180.0)
                            .text(tr_args(
                                lang,
                                "gallery.rebuilding",
                                &[("done", &done), ("total", &total)],
                            )),
                    );
                }
                None => {
                    if ui
                        .button(tr(lang, "gallery.rebuild"))
                        .on_hover_text(tr(lang, "gallery.rebuild_hint"))
                        .clicked()
                    {
                        actions.push(Action::RebuildIndex);
                    }
                    match &gallery.rebuild_result {
                        Some(Ok(count)) => {
                            ui.label(
                                RichText::new(tr_count(lang, "gallery.rebuilt", *count))
                                    .small()
                                    .color(palette.success),
                            );
                        }
                        Some(Err(error)) => {
                            ui.label(RichText::new(error).small().color(palette.error));
                        }
                        None => {}
                    }
                }
            },
        );
    });
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        let search = ui.add(
            egui::TextEdit::singleline(&mut gallery.search)
                .desired_width(280.0)
                .hint_text(tr(lang, "gallery.search_hint")),
        );
        changed |= search.changed();
        let all_models = tr(lang, "gallery.all_models").to_owned();
        ui.name_inputs(tr(lang, "gallery.model_filter"), |ui| {
            egui::ComboBox::from_id_salt("gallery-model")
                .width(200.0)
                .selected_text(gallery.model.clone().unwrap_or_else(|| all_models.clone()))
                .truncate()
                .show_ui(ui, |ui| {
                    changed |= ui
                        .selectable_value(&mut gallery.model, None, all_models)
                        .changed();
                    for model in gallery.models.clone() {
                        changed |= ui
                            .selectable_value(&mut gallery.model, Some(model.clone()), model)
                            .changed();
                    }
                });
        });
        ui.name_inputs(tr(lang, "gallery.date_filter"), |ui| {
            egui::ComboBox::from_id_salt("gallery-date")
                .width(150.0)
                .selected_text(tr(lang, gallery.date.label_key()))
                .show_ui(ui, |ui| {
                    for date in DateFilter::ALL {
                        changed |= ui
                            .selectable_value(&mut gallery.date, date, tr(lang, date.label_key()))
                            .changed();
                    }
                });
        });
    });
    if changed {
        gallery.invalidate();
    }
}

fn grid_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let frame = state.frame;
    let gallery = &mut state.gallery;
    let total = gallery.count.unwrap_or(0);
    if gallery.count == Some(0) {
        let filtered = !gallery.search.trim().is_empty()
            || gallery.model.is_some()
            || gallery.date != DateFilter::All;
        let (title, hint) = if filtered {
            ("gallery.no_matches", "gallery.no_matches_hint")
        } else {
            ("gallery.empty", "gallery.empty_hint")
        };
        ui.add_space(60.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new(tr(lang, title)).size(17.0));
            ui.label(RichText::new(tr(lang, hint)).color(palette.muted));
        });
        return;
    }
    let gap = theme::GRID_GAP;
    let width = ui.available_width() - ui.spacing().scroll.bar_width - gap;
    let columns = (((width + gap) / (theme::THUMB_CELL + gap)).floor() as usize).max(1);
    // Cells grow a little so the columns fill the width.
    let cell = ((width - gap * (columns as f32 - 1.0)) / columns as f32).floor();
    let rows = total.div_ceil(columns);
    let mut wanted_pages = Vec::new();
    let mut wanted_thumbs = Vec::new();
    let mut clicked = None;
    let mut visible: Option<std::ops::Range<usize>> = None;
    let mut without_entry = 0;
    ui.spacing_mut().item_spacing.y = gap;
    egui::ScrollArea::vertical()
        .id_salt("gallery-grid")
        .auto_shrink([false, false])
        .show_rows(ui, cell, rows, |ui, row_range| {
            for row in row_range {
                ui.horizontal(|ui| {
                    ui.spacing_mut().item_spacing.x = gap;
                    for column in 0..columns {
                        let index = row * columns + column;
                        if index >= total {
                            break;
                        }
                        let page = index / PAGE_SIZE;
                        if !wanted_pages.contains(&page) {
                            wanted_pages.push(page);
                        }
                        let entry = gallery.entry(index).cloned();
                        visible = Some(match visible.take() {
                            Some(range) => range.start.min(index)..range.end.max(index + 1),
                            None => index..index + 1,
                        });
                        without_entry += usize::from(entry.is_none());
                        let selected = entry
                            .as_ref()
                            .zip(gallery.selected.as_ref())
                            .is_some_and(|(a, b)| a.id == b.id);
                        let response = cell_ui(
                            ui,
                            gallery,
                            entry.as_ref(),
                            (cell, selected, frame),
                            &mut wanted_thumbs,
                        );
                        if response.clicked() {
                            clicked = entry;
                        }
                    }
                });
            }
        });
    if let Some(entry) = clicked {
        gallery.click(entry);
    }
    gallery.visible = visible.unwrap_or(0..0);
    gallery.visible_without_entry = without_entry;
    // Prefetch the pages next to the visible ones, so scrolling rarely shows empty cells.
    let visible = gallery.visible.clone();
    if !visible.is_empty() {
        let last_page = total.saturating_sub(1) / PAGE_SIZE;
        let before = (visible.start / PAGE_SIZE).saturating_sub(1);
        let after = ((visible.end - 1) / PAGE_SIZE + 1).min(last_page);
        for page in [before, after] {
            if !wanted_pages.contains(&page) {
                wanted_pages.push(page);
            }
        }
    }
    let missing: Vec<usize> = wanted_pages
        .into_iter()
        .filter(|page| !gallery.requested.contains(page))
        .collect();
    if !missing.is_empty() {
        actions.push(Action::GalleryPages(missing));
    }
    let ids: Vec<i64> = wanted_thumbs.iter().map(|(id, _)| *id).collect();
    if ids != gallery.last_wanted {
        gallery.last_wanted = ids;
        actions.push(Action::WantThumbnails(wanted_thumbs));
    }
}

/// One grid cell: the thumbnail fitted into a square card.
fn cell_ui(
    ui: &mut egui::Ui,
    gallery: &mut GalleryState,
    entry: Option<&GalleryEntry>,
    (cell, selected, frame): (f32, bool, u64),
    wanted: &mut Vec<(i64, std::path::PathBuf)>,
) -> egui::Response {
    let palette = Palette::of_ui(ui);
    let size = Vec2::splat(cell);
    let (rect, response) = ui.allocate_exact_size(size, Sense::click());
    let label = entry.map(|e| e.prompt.clone()).unwrap_or_default();
    response.widget_info(|| {
        egui::WidgetInfo::selected(egui::Role::ListBoxOption, true, selected, &label)
    });
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, theme::RADIUS, palette.canvas);
    if let Some(entry) = entry {
        match gallery.thumbnails.get_mut(&entry.id) {
            Some(Thumb::Loaded { texture, last_used }) => {
                *last_used = frame;
                let image_size = texture.size_vec2();
                let scale = (rect.width() / image_size.x).min(rect.height() / image_size.y);
                let image_rect = Rect::from_center_size(rect.center(), image_size * scale);
                let uv = Rect::from_min_max(egui::Pos2::ZERO, egui::Pos2::new(1.0, 1.0));
                painter.image(texture.id(), image_rect, uv, egui::Color32::WHITE);
            }
            Some(Thumb::Failed) => {
                painter.text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "?",
                    egui::FontId::proportional(28.0),
                    palette.muted,
                );
            }
            None => wanted.push((entry.id, entry.path.clone())),
        }
    }
    let stroke = if selected {
        egui::Stroke::new(2.5, palette.accent)
    } else if response.hovered() {
        egui::Stroke::new(1.5, palette.accent)
    } else {
        egui::Stroke::new(1.0, palette.card_stroke)
    };
    painter.rect_stroke(rect, theme::RADIUS, stroke, egui::StrokeKind::Inside);
    match entry {
        Some(entry) if !entry.prompt.is_empty() => response.on_hover_text(&entry.prompt),
        _ => response,
    }
}

/// A "label  value" row of the details grid.
fn detail_row(ui: &mut egui::Ui, label: &str, value: &str) {
    let palette = Palette::of_ui(ui);
    ui.label(RichText::new(label).color(palette.muted));
    ui.add(egui::Label::new(value).wrap());
    ui.end_row();
}

fn details_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let Some(entry) = state.gallery.selected.clone() else {
        return;
    };
    egui::ScrollArea::vertical()
        .id_salt("gallery-details-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new(tr(lang, "gallery.details")).strong());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.small_button(tr(lang, "common.close")).clicked() {
                        state.gallery.deselect();
                    }
                });
            });
            if let Some(Thumb::Loaded { texture, .. }) = state.gallery.thumbnails.get(&entry.id) {
                let image_size = texture.size_vec2();
                let width = ui.available_width();
                let scale = (width / image_size.x).min(340.0 / image_size.y);
                ui.add(
                    egui::Image::new((texture.id(), image_size * scale))
                        .corner_radius(theme::RADIUS),
                );
            }
            ui.add_space(6.0);
            details_actions_ui(ui, &entry, lang, actions);
            record_actions_ui(ui, &entry, &mut state.gallery, lang, actions);
            ui.add_space(6.0);
            ui.label(RichText::new(tr(lang, "generate.prompt")).color(palette.muted));
            ui.add(egui::Label::new(&entry.prompt).selectable(true).wrap());
            if let Some(negative) = entry.negative.as_deref().filter(|n| !n.is_empty()) {
                ui.label(RichText::new(tr(lang, "generate.negative")).color(palette.muted));
                ui.add(egui::Label::new(negative).selectable(true).wrap());
            }
            ui.add_space(6.0);
            egui::Grid::new("gallery-details-grid")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| details_grid_ui(ui, &entry, lang));
            if let Some(recipe) = entry.recipe() {
                ui.add_space(6.0);
                egui::CollapsingHeader::new(tr(lang, "gallery.full_recipe"))
                    .id_salt("gallery-recipe")
                    .show(ui, |ui| {
                        let json = serde_json::to_string_pretty(&recipe).unwrap_or_default();
                        ui.add(
                            egui::Label::new(RichText::new(json).monospace().small())
                                .selectable(true)
                                .wrap(),
                        );
                    });
            }
        });
}

/// The entry's actions as a 2×2 block of equal buttons.
fn details_actions_ui(
    ui: &mut egui::Ui,
    entry: &GalleryEntry,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let gap = ui.spacing().item_spacing.x;
    let width = ((ui.available_width() - gap) / 2.0).floor();
    let size = egui::vec2(width, 28.0);
    let recipe = entry.recipe();
    ui.horizontal(|ui| {
        let reuse = ui
            .add_enabled_ui(recipe.is_some(), |ui| {
                ui.add_sized(size, egui::Button::new(tr(lang, "result.reuse")))
            })
            .inner
            .on_disabled_hover_text(tr(lang, "gallery.no_recipe"));
        if reuse.clicked()
            && let Some(recipe) = recipe
        {
            actions.push(Action::ReuseSettings(Box::new(recipe)));
        }
        if ui
            .add_sized(size, egui::Button::new(tr(lang, "result.use_as_init")))
            .clicked()
        {
            actions.push(Action::UseAsInit(entry.path.clone()));
        }
    });
    ui.horizontal(|ui| {
        if ui
            .add_sized(size, egui::Button::new(tr(lang, "result.open_folder")))
            .clicked()
        {
            actions.push(Action::OpenFolder(entry.path.clone()));
        }
        if ui
            .add_sized(size, egui::Button::new(tr(lang, "result.copy")))
            .clicked()
        {
            actions.push(Action::CopyImage(entry.path.clone()));
        }
    });
    if ui
        .add_sized(
            egui::vec2(2.0 * width + gap, 28.0),
            egui::Button::new(tr(lang, "result.to_video")),
        )
        .clicked()
    {
        actions.push(Action::ShowSection(crate::gui::state::Section::Video));
        actions.push(Action::Video(
            crate::gui::state::video::VideoAction::SetImage(entry.path.clone()),
        ));
    }
}

/// "Export record…" and "Compare with…" under the entry's actions, and the last export.
fn record_actions_ui(
    ui: &mut egui::Ui,
    entry: &GalleryEntry,
    gallery: &mut GalleryState,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let gap = ui.spacing().item_spacing.x;
    let width = ((ui.available_width() - gap) / 2.0).floor();
    let size = egui::vec2(width, 28.0);
    let running = gallery.export == Some(ExportStatus::Running);
    ui.horizontal(|ui| {
        let export = ui
            .add_enabled_ui(!running, |ui| {
                ui.add_sized(size, egui::Button::new(tr(lang, "record.export")))
            })
            .inner
            .on_hover_text(tr(lang, "record.export_hint"));
        if export.clicked() {
            actions.push(Action::ExportRecord(entry.id));
        }
        let picking = gallery.compare_picking;
        let label = if picking {
            tr(lang, "record.cancel")
        } else {
            tr(lang, "record.compare_with")
        };
        let compare = ui
            .add_sized(size, egui::Button::new(label).selected(picking))
            .on_hover_text(tr(lang, "record.compare_hint"));
        if compare.clicked() {
            gallery.compare_picking = !picking;
            gallery.compare = None;
        }
    });
    if gallery.compare.is_none()
        && let Some(status) = &gallery.export
    {
        export_status_ui(ui, status, lang, actions);
    }
}

/// Model, seed, size, sampler … of an entry, as rows of a two-column grid.
fn details_grid_ui(ui: &mut egui::Ui, entry: &GalleryEntry, lang: Lang) {
    detail_row(ui, tr(lang, "generate.model"), &entry.model);
    if let Some(hash) = &entry.model_hash {
        detail_row(ui, tr(lang, "models.hash"), hash);
    }
    detail_row(ui, tr(lang, "generate.seed"), &entry.seed.to_string());
    detail_row(
        ui,
        tr(lang, "generate.size"),
        &format!("{} × {}", entry.width, entry.height),
    );
    let sampler = SamplerKind::from_cli_name(&entry.sampler)
        .map(sampler_label)
        .unwrap_or_else(|| entry.sampler.clone());
    detail_row(ui, tr(lang, "generate.sampler"), &sampler);
    detail_row(ui, tr(lang, "generate.steps"), &entry.steps.to_string());
    detail_row(ui, tr(lang, "generate.cfg"), &format!("{:.1}", entry.cfg));
    detail_row(
        ui,
        tr(lang, "gallery.created"),
        &format_date(entry.created_unix),
    );
    if let Some(parent) = &entry.parent {
        detail_row(ui, tr(lang, "gallery.parent"), &file_name(parent));
    }
    detail_row(ui, tr(lang, "gallery.file"), &file_name(&entry.path));
}

/// "2026-11-23 09:41 UTC".
fn format_date(unix_secs: i64) -> String {
    let stamp = crate::gui::services::saver::timestamp(unix_secs);
    // `YYYYMMDD-HHMMSS` → `YYYY-MM-DD HH:MM`.
    let digits: Vec<char> = stamp.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 12 {
        return stamp;
    }
    let part = |from: usize, to: usize| {
        digits
            .get(from..to)
            .map(|d| d.iter().collect::<String>())
            .unwrap_or_default()
    };
    format!(
        "{}-{}-{} {}:{} UTC",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        part(8, 10),
        part(10, 12)
    )
}
