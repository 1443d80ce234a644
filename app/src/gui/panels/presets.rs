//! The Presets panel: a gallery of style cards (thumbnail, name in the UI language, the
//! description on hover) with a search box. Clicking a card applies the preset to the Generate
//! form; dropping a photo onto a card runs the preset on it (a photo dropped elsewhere, or
//! chosen with "Choose photo…", waits until a card is clicked). The current settings can be
//! saved as a preset; presets can be edited, deleted, imported and exported (card menu).

use crate::gui::action::{Action, PresetAction};
use crate::gui::form::GenerateForm;
use crate::gui::panels::generate::form_error_text;
use crate::gui::panels::{file_name, heading_ui};
use crate::gui::services::presets::{DraftProblem, draft_problem, edited};
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::AppState;
use crate::gui::state::presets::{PresetDialog, PresetDraft, PresetWrite, PresetsState};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::presets::template::PLACEHOLDER;
use crate::library::presets::{PresetEntry, PresetSource};
use crate::library::settings::Language;
use egui::{Rect, RichText, Sense, Vec2};

/// Smallest card width, in points (cards widen to fill the row).
const MIN_CARD_WIDTH: f32 = 180.0;
/// Widest card.
const MAX_CARD_WIDTH: f32 = 240.0;
/// Margin around a card's thumbnail.
const CARD_PADDING: f32 = 8.0;
/// Card height below the thumbnail: name line, family line.
const CARD_TEXT_HEIGHT: f32 = 54.0;
/// Space between cards.
const CARD_GAP: f32 = 12.0;

/// The Presets panel.
pub fn presets_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    heading_ui(
        ui,
        tr(lang, "presets.title"),
        Some(tr(lang, "presets.subtitle")),
    );
    toolbar_ui(ui, state, actions);
    photo_banner_ui(ui, &mut state.presets, lang, actions);
    crate::gui::panels::model_catalog::offers_ui(ui, state, actions);
    issues_ui(ui, &state.presets);
    ui.add_space(6.0);
    grid_ui(ui, state, actions);
    dialog_ui(ui, state, actions);
}

/// Search box, "Save current settings…", "Import…", "Choose photo…".
fn toolbar_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut state.presets.search)
                .hint_text(tr(lang, "presets.search_hint"))
                .desired_width(260.0),
        );
        if !state.presets.search.is_empty() && ui.small_button("✕").clicked() {
            state.presets.search.clear();
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button(tr(lang, "presets.import")).clicked() {
                actions.push(Action::Pick(PickPurpose::PresetImport));
            }
            let save = ui
                .button(tr(lang, "presets.save_current"))
                .on_hover_text(tr(lang, "presets.save_current_hint"));
            if save.clicked() {
                state.presets.dialog = Some(PresetDialog::Save(PresetDraft {
                    name: String::new(),
                    description: String::new(),
                    template: default_template(state),
                }));
            }
            if state.presets.photo.is_none()
                && ui.button(tr(lang, "presets.choose_photo")).clicked()
            {
                actions.push(Action::Pick(PickPurpose::PresetPhoto));
            }
        });
    });
}

/// The template a new preset starts with: the prompt with `{prompt}` where the user's own words
/// were (after applying a preset), else `{prompt}, <the prompt>`; `<lora:…>` tags removed (the
/// LoRAs are saved as the preset's LoRAs).
fn default_template(state: &AppState) -> String {
    let prompt = &state.form.prompt;
    let (text, _) = kiln_inference::text::prompt::extract_loras(prompt);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.trim().trim_matches(',').trim().to_owned();
    if let Some(applied) = &state.presets.applied
        && applied.prompt == *prompt
        && !applied.subject.trim().is_empty()
        && text.contains(applied.subject.trim())
    {
        return text.replacen(applied.subject.trim(), PLACEHOLDER, 1);
    }
    if text.contains(PLACEHOLDER) {
        text
    } else if text.is_empty() {
        PLACEHOLDER.to_owned()
    } else {
        format!("{PLACEHOLDER}, {text}")
    }
}

/// "photo.jpg is waiting: click a style to run it on this photo".
fn photo_banner_ui(
    ui: &mut egui::Ui,
    presets: &mut PresetsState,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let Some(photo) = presets.photo.clone() else {
        return;
    };
    let palette = Palette::of_ui(ui);
    ui.add_space(6.0);
    palette.card_frame().show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(tr_args(
                    lang,
                    "presets.photo_waiting",
                    &[("photo", &file_name(&photo))],
                ))
                .strong(),
            )
            .on_hover_text(photo.display().to_string());
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button(tr(lang, "presets.photo_clear")).clicked() {
                    presets.photo = None;
                }
                if ui.button(tr(lang, "common.change")).clicked() {
                    actions.push(Action::Pick(PickPurpose::PresetPhoto));
                }
            });
        });
    });
}

/// User preset files that could not be read.
fn issues_ui(ui: &mut egui::Ui, presets: &PresetsState) {
    if presets.issues.is_empty() {
        return;
    }
    let palette = Palette::of_ui(ui);
    ui.add_space(6.0);
    for issue in &presets.issues {
        ui.add(egui::Label::new(RichText::new(format!("▲ {issue}")).color(palette.warning)).wrap());
    }
}

/// The cards, wrapped into rows, scrolling.
fn grid_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let language = state.settings.language;
    state.presets.card_rects.clear();
    if !state.presets.loaded {
        ui.label(RichText::new(tr(lang, "presets.loading")).color(palette.muted));
        return;
    }
    let mut card_rects = Vec::new();
    let mut dialog = None;
    let shown: &AppState = state;
    let visible = shown.presets.visible();
    if visible.is_empty() {
        ui.label(RichText::new(tr(lang, "presets.no_match")).color(palette.muted));
        return;
    }
    let has_result = shown.jobs.selected_result().is_some();
    let drop_pointer = if shown.files_hovering {
        ui.ctx().input(|i| i.pointer.latest_pos())
    } else {
        None
    };
    egui::ScrollArea::vertical()
        .id_salt("presets-grid")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            // As many columns as fit, the cards sharing the row's width.
            let available = ui.available_width() - 2.0;
            let columns = ((available + CARD_GAP) / (MIN_CARD_WIDTH + CARD_GAP))
                .floor()
                .max(1.0);
            let card_width = ((available - CARD_GAP * (columns - 1.0)) / columns)
                .clamp(MIN_CARD_WIDTH.min(available), MAX_CARD_WIDTH);
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing = Vec2::splat(CARD_GAP);
                for entry in &visible {
                    let context = CardContext {
                        language,
                        lang,
                        has_result,
                        drop_pointer,
                        card_width,
                    };
                    let (rect, opened) = card_ui(ui, shown, entry, &context, actions);
                    if opened.is_some() {
                        dialog = opened;
                    }
                    let on_screen = rect.intersect(ui.clip_rect());
                    if on_screen.is_positive() {
                        card_rects.push((entry.id().to_owned(), on_screen));
                    }
                }
            });
        });
    state.presets.card_rects = card_rects;
    if dialog.is_some() {
        state.presets.dialog = dialog;
    }
}

/// What every card needs besides its entry.
struct CardContext {
    language: Language,
    lang: Lang,
    has_result: bool,
    drop_pointer: Option<egui::Pos2>,
    card_width: f32,
}

/// One card; returns its rectangle and the dialog its menu opened, if any.
fn card_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    entry: &PresetEntry,
    context: &CardContext,
    actions: &mut Vec<Action>,
) -> (Rect, Option<PresetDialog>) {
    let palette = Palette::of_ui(ui);
    let lang = context.lang;
    let name = entry.name(context.language).to_owned();
    let card_width = context.card_width;
    let thumb_side = card_width - 2.0 * CARD_PADDING;
    let (rect, response) = ui.allocate_exact_size(
        Vec2::new(card_width, thumb_side + CARD_PADDING + CARD_TEXT_HEIGHT),
        Sense::click(),
    );
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
    let drop_target = context.drop_pointer.is_some_and(|p| rect.contains(p));
    let busy = state.presets.busy.iter().any(|id| id == entry.id());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, theme::RADIUS, palette.card);
    let thumb_rect = Rect::from_min_size(
        rect.min + Vec2::splat(CARD_PADDING),
        Vec2::splat(thumb_side),
    );
    painter.rect_filled(thumb_rect, theme::RADIUS, palette.canvas);
    match state.presets.thumbnails.get(entry.id()) {
        Some(thumb) => {
            let uv = Rect::from_min_max(egui::Pos2::ZERO, egui::Pos2::new(1.0, 1.0));
            painter.image(thumb.texture.id(), thumb_rect, uv, egui::Color32::WHITE);
        }
        None => {
            painter.text(
                thumb_rect.center(),
                egui::Align2::CENTER_CENTER,
                initials(&name),
                egui::FontId::proportional(40.0),
                palette.muted,
            );
        }
    }
    if busy {
        painter.rect_filled(thumb_rect, theme::RADIUS, palette.panel.gamma_multiply(0.7));
        painter.text(
            thumb_rect.center(),
            egui::Align2::CENTER_CENTER,
            tr(lang, "presets.working"),
            egui::FontId::proportional(15.0),
            ui.visuals().strong_text_color(),
        );
    }
    let text_left = thumb_rect.left_bottom() + Vec2::new(2.0, 8.0);
    let name_galley = painter.layout(
        name.clone(),
        egui::FontId::proportional(15.0),
        ui.visuals().strong_text_color(),
        card_width - 48.0,
    );
    painter.galley(text_left, name_galley, ui.visuals().strong_text_color());
    let family = match &entry.source {
        PresetSource::BuiltIn => entry.preset.family.label().to_owned(),
        PresetSource::User { .. } => format!(
            "{} · {}",
            entry.preset.family.label(),
            tr(lang, "presets.yours")
        ),
    };
    painter.text(
        text_left + Vec2::new(0.0, 24.0),
        egui::Align2::LEFT_TOP,
        family,
        egui::FontId::proportional(12.0),
        palette.muted,
    );
    if entry.preset.non_commercial() {
        // The licence restriction, on the thumbnail's top right corner.
        let badge = painter.layout_no_wrap(
            tr(lang, "presets.non_commercial").to_owned(),
            egui::FontId::proportional(11.0),
            egui::Color32::WHITE,
        );
        let badge_rect = Rect::from_min_size(
            thumb_rect.right_top() + Vec2::new(-badge.size().x - 12.0, 6.0),
            badge.size() + Vec2::new(8.0, 4.0),
        );
        painter.rect_filled(badge_rect, 3.0, palette.error);
        painter.galley(
            badge_rect.min + Vec2::new(4.0, 2.0),
            badge,
            egui::Color32::WHITE,
        );
        ui.interact(badge_rect, response.id.with("nc"), Sense::hover())
            .on_hover_text(tr(lang, "downloads.non_commercial_hint"));
    }
    let stroke = if drop_target {
        egui::Stroke::new(3.0, palette.accent)
    } else if response.hovered() {
        egui::Stroke::new(1.5, palette.accent)
    } else {
        egui::Stroke::new(1.0, palette.card_stroke)
    };
    painter.rect_stroke(rect, theme::RADIUS, stroke, egui::StrokeKind::Inside);
    // The card menu, bottom right.
    let menu_rect = Rect::from_min_max(
        rect.right_bottom() - Vec2::new(48.0, 38.0),
        rect.right_bottom() - Vec2::new(CARD_PADDING, 10.0),
    );
    // A child that does not move the wrapped layout's cursor.
    let mut menu_ui = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(menu_rect)
            .layout(egui::Layout::right_to_left(egui::Align::Center)),
    );
    let dialog = card_menu_ui(&mut menu_ui, state, entry, context, actions);
    let description = entry.description(context.language);
    let hover = if let Some(photo) = &state.presets.photo {
        tr_args(
            lang,
            "presets.click_to_run",
            &[("photo", &file_name(photo))],
        )
    } else {
        tr(lang, "presets.click_to_apply").to_owned()
    };
    let response = response
        .on_hover_cursor(egui::CursorIcon::PointingHand)
        .on_hover_ui(|ui| {
            ui.set_max_width(280.0);
            ui.label(RichText::new(&name).strong());
            if !description.is_empty() {
                ui.label(description);
            }
            ui.label(RichText::new(&hover).small().color(palette.muted));
        });
    if response.clicked() && !busy {
        let id = entry.id().to_owned();
        actions.push(Action::Preset(match &state.presets.photo {
            Some(photo) => PresetAction::Run {
                id,
                photo: photo.clone(),
            },
            None => PresetAction::Apply(id),
        }));
    }
    (rect, dialog)
}

/// "Ab" for a card without a thumbnail.
fn initials(name: &str) -> String {
    name.chars().take(2).collect()
}

/// Edit, thumbnail from the last result, export, delete; returns the dialog it opened.
fn card_menu_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    entry: &PresetEntry,
    context: &CardContext,
    actions: &mut Vec<Action>,
) -> Option<PresetDialog> {
    let lang = context.lang;
    let mut dialog = None;
    ui.menu_button("…", |ui| {
        ui.set_min_width(200.0);
        if ui.button(tr(lang, "presets.edit")).clicked() {
            dialog = Some(PresetDialog::Edit {
                preset: Box::new(entry.preset.clone()),
                draft: PresetDraft {
                    name: entry.name(context.language).to_owned(),
                    description: entry.description(context.language).to_owned(),
                    template: entry.preset.prompt.clone(),
                },
            });
            ui.close();
        }
        let thumb = ui
            .add_enabled(
                context.has_result,
                egui::Button::new(tr(lang, "presets.thumbnail_from_result")),
            )
            .on_disabled_hover_text(tr(lang, "presets.thumbnail_needs_result"));
        if thumb.clicked()
            && let Some(result) = state.jobs.selected_result()
        {
            actions.push(Action::Preset(PresetAction::Write {
                write: Box::new(PresetWrite::Update {
                    preset: Box::new(entry.preset.clone()),
                    thumbnail_from: Some(result.path.clone()),
                }),
                // A built-in gets a user copy: ask first (the store answers with a conflict).
                overwrite: !entry.is_builtin(),
            }));
            ui.close();
        }
        if ui.button(tr(lang, "presets.export")).clicked() {
            actions.push(Action::Preset(PresetAction::Export(entry.id().to_owned())));
            ui.close();
        }
        let (delete_key, deletable) = match &entry.source {
            PresetSource::BuiltIn => ("presets.delete", false),
            PresetSource::User {
                overrides_builtin: true,
                ..
            } => ("presets.delete_override", true),
            PresetSource::User { .. } => ("presets.delete", true),
        };
        let delete = ui
            .add_enabled(deletable, egui::Button::new(tr(lang, delete_key)))
            .on_disabled_hover_text(tr(lang, "presets.builtin_read_only"));
        if delete.clicked() {
            dialog = Some(PresetDialog::ConfirmDelete {
                id: entry.id().to_owned(),
                name: entry.name(context.language).to_owned(),
            });
            ui.close();
        }
    })
    .response
    .on_hover_text(tr(lang, "presets.menu_hint"));
    dialog
}

/// The open dialog, as a modal.
fn dialog_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let Some(dialog) = state.presets.dialog.clone() else {
        return;
    };
    let lang = state.lang();
    let mut close = false;
    let mut next = None;
    let modal = egui::Modal::new(egui::Id::unique("preset-dialog")).show(ui.ctx(), |ui| {
        ui.set_width(460.0);
        match dialog {
            PresetDialog::Save(mut draft) => {
                let outcome = save_dialog_ui(ui, state, &mut draft, actions);
                close = outcome == DialogOutcome::Cancel;
                next = Some(PresetDialog::Save(draft));
            }
            PresetDialog::Edit { preset, mut draft } => {
                draft_fields_ui(ui, lang, &mut draft, "presets.edit_title");
                let problem = draft_problem(&draft);
                match buttons_ui(
                    ui,
                    lang,
                    "presets.save",
                    problem.as_ref(),
                    state.presets.writing,
                ) {
                    DialogOutcome::Confirm => {
                        let edited = edited(&preset, &draft, state.settings.language);
                        actions.push(Action::Preset(PresetAction::Write {
                            write: Box::new(PresetWrite::Update {
                                preset: Box::new(edited),
                                thumbnail_from: None,
                            }),
                            overwrite: !matches!(
                                state.presets.entry(&preset.id).map(|e| &e.source),
                                Some(PresetSource::BuiltIn)
                            ),
                        }));
                    }
                    DialogOutcome::Cancel => close = true,
                    DialogOutcome::None => {}
                }
                next = Some(PresetDialog::Edit { preset, draft });
            }
            PresetDialog::ConfirmDelete { id, name } => {
                ui.label(RichText::new(tr(lang, "presets.delete_title")).heading());
                ui.add_space(6.0);
                ui.label(tr_args(lang, "presets.delete_question", &[("name", &name)]));
                ui.add_space(10.0);
                match buttons_ui(
                    ui,
                    lang,
                    "presets.delete_confirm",
                    None,
                    state.presets.writing,
                ) {
                    DialogOutcome::Confirm => {
                        actions.push(Action::Preset(PresetAction::Delete(id.clone())));
                    }
                    DialogOutcome::Cancel => close = true,
                    DialogOutcome::None => {}
                }
                next = Some(PresetDialog::ConfirmDelete { id, name });
            }
            PresetDialog::ConfirmReplace { write, message } => {
                ui.label(RichText::new(tr(lang, "presets.replace_title")).heading());
                ui.add_space(6.0);
                ui.add(egui::Label::new(&message).wrap());
                ui.add_space(10.0);
                match buttons_ui(ui, lang, "presets.replace", None, state.presets.writing) {
                    DialogOutcome::Confirm => {
                        actions.push(Action::Preset(PresetAction::Write {
                            write: Box::new(write.clone()),
                            overwrite: true,
                        }));
                    }
                    DialogOutcome::Cancel => close = true,
                    DialogOutcome::None => {}
                }
                next = Some(PresetDialog::ConfirmReplace { write, message });
            }
        }
    });
    if modal.should_close() && !state.presets.writing {
        close = true;
    }
    // A write finishing closes the dialog itself (in `logic`); keep the edits until then.
    if state.presets.dialog.is_some() {
        state.presets.dialog = if close { None } else { next };
    }
}

/// How a dialog's buttons were used this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DialogOutcome {
    None,
    Confirm,
    Cancel,
}

/// "Save current settings as a preset": name, description, template; the thumbnail comes from
/// the last result.
fn save_dialog_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    draft: &mut PresetDraft,
    actions: &mut Vec<Action>,
) -> DialogOutcome {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    draft_fields_ui(ui, lang, draft, "presets.save_title");
    let result = state.jobs.selected_result();
    let thumb_note = match result {
        Some(result) => tr_args(
            lang,
            "presets.thumbnail_note",
            &[("image", &file_name(&result.path))],
        ),
        None => tr(lang, "presets.thumbnail_none").to_owned(),
    };
    ui.label(RichText::new(thumb_note).small().color(palette.muted));
    ui.add_space(8.0);
    let form: &GenerateForm = &state.form;
    let recipe = form.to_recipe_with(|| form.seed);
    let problem = match &recipe {
        Err(error) => Some(DraftProblem::Template(form_error_text(error, lang))),
        Ok(_) => draft_problem(draft),
    };
    let outcome = buttons_ui(
        ui,
        lang,
        "presets.save",
        problem.as_ref(),
        state.presets.writing,
    );
    if outcome == DialogOutcome::Confirm
        && let Ok(recipe) = recipe
    {
        actions.push(Action::Preset(PresetAction::Write {
            write: Box::new(PresetWrite::SaveNew {
                draft: draft.clone(),
                recipe: Box::new(recipe),
                thumbnail_from: result.map(|r| r.path.clone()),
            }),
            overwrite: false,
        }));
    }
    outcome
}

/// Title, then the name, description and template fields.
fn draft_fields_ui(ui: &mut egui::Ui, lang: Lang, draft: &mut PresetDraft, title_key: &str) {
    let palette = Palette::of_ui(ui);
    ui.label(RichText::new(tr(lang, title_key)).heading());
    ui.add_space(8.0);
    egui::Grid::new("preset-draft")
        .num_columns(2)
        .spacing([10.0, 8.0])
        .show(ui, |ui| {
            let label = ui.label(tr(lang, "presets.name"));
            ui.add(
                egui::TextEdit::singleline(&mut draft.name)
                    .hint_text(tr(lang, "presets.name_hint"))
                    .desired_width(330.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label(tr(lang, "presets.description"));
            ui.add(
                egui::TextEdit::singleline(&mut draft.description)
                    .hint_text(tr(lang, "presets.description_hint"))
                    .desired_width(330.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label(tr(lang, "presets.template"));
            ui.add(
                egui::TextEdit::multiline(&mut draft.template)
                    .desired_rows(3)
                    .desired_width(330.0),
            )
            .labelled_by(label.id);
            ui.end_row();
        });
    ui.label(
        RichText::new(tr(lang, "presets.template_hint"))
            .small()
            .color(palette.muted),
    );
}

/// The confirm and cancel buttons; confirm is disabled (reason on hover and below) while there
/// is a problem or a write runs.
fn buttons_ui(
    ui: &mut egui::Ui,
    lang: Lang,
    confirm_key: &str,
    problem: Option<&DraftProblem>,
    writing: bool,
) -> DialogOutcome {
    let palette = Palette::of_ui(ui);
    let reason = problem.map(|problem| match problem {
        DraftProblem::NoName => tr(lang, "presets.need_name").to_owned(),
        DraftProblem::Template(message) => message.clone(),
    });
    let mut outcome = DialogOutcome::None;
    ui.horizontal(|ui| {
        let enabled = reason.is_none() && !writing;
        let confirm = crate::gui::panels::primary_button(ui, tr(lang, confirm_key), enabled, 110.0);
        let confirm = match &reason {
            Some(reason) => confirm.on_disabled_hover_text(reason),
            None => confirm,
        };
        if confirm.clicked() {
            outcome = DialogOutcome::Confirm;
        }
        if ui.button(tr(lang, "presets.cancel")).clicked() {
            outcome = DialogOutcome::Cancel;
        }
    });
    if let Some(reason) = reason {
        ui.add(egui::Label::new(RichText::new(reason).small().color(palette.warning)).wrap());
    }
    outcome
}
