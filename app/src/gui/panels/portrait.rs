//! The Portrait section: face-preserving portraits with InstantID. Left: the face photo with
//! the faces found drawn as numbered boxes (click one to pick it), an optional pose photo, the
//! style (a preset or the prompt with the Generate settings), identity and keypoint strengths,
//! face fix and the number of images. Right: the running job and the results side by side,
//! each with its identity score (ArcFace cosine to the reference face), the best one marked.

use crate::gui::action::{Action, PortraitAction};
use crate::gui::panels::settings::card;
use crate::gui::panels::{heading_ui, human_duration, model_catalog, primary_button};
use crate::gui::state::AppState;
use crate::gui::state::portrait::{
    DetectProblem, FacePhoto, InstantIdStatus, MAX_IMAGES, PortraitStyle, STRENGTH_RANGE,
    STRONG_IDENTITY, WEAK_IDENTITY,
};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use egui::{Color32, RichText, Sense, Stroke, StrokeKind};

/// Largest height of the face photo on screen.
const PHOTO_MAX_HEIGHT: f32 = 300.0;
/// Side of a result cell.
const RESULT_CELL: f32 = 220.0;

/// The Portrait section.
pub fn portrait_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    if state.portrait.instantid == InstantIdStatus::Unknown && !state.portrait.checking {
        // First visit: are InstantID's files there, and converted?
        state.portrait.checking = true;
        actions.push(Action::Portrait(PortraitAction::Recheck));
    }
    heading_ui(
        ui,
        tr(lang, "portrait.title"),
        Some(tr(lang, "portrait.subtitle")),
    );
    egui::Panel::left("portrait-setup")
        .exact_size(theme::FORM_WIDTH + 60.0)
        .resizable(false)
        .frame(egui::Frame::new())
        .show(ui, |ui| {
            // Generate stays in view under the scrolling setup, with the reason it failed.
            let portrait = &state.portrait;
            let extra = if portrait.error.is_some() {
                64.0
            } else if portrait.preparing {
                24.0
            } else {
                0.0
            };
            egui::Panel::bottom("portrait-run")
                .exact_size(theme::GENERATE_BAR_HEIGHT + extra)
                .resizable(false)
                .show_separator_line(true)
                .frame(egui::Frame::new().inner_margin(egui::Margin {
                    left: 0,
                    right: 8,
                    top: 10,
                    bottom: 2,
                }))
                .show(ui, |ui| generate_bar_ui(ui, state, lang, actions));
            egui::ScrollArea::vertical()
                .id_salt("portrait-setup-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| setup_ui(ui, state, lang, actions));
        });
    egui::CentralPanel::default()
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 12,
            ..Default::default()
        }))
        .show(ui, |ui| results_ui(ui, state, lang, actions));
}

fn setup_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    model_catalog::offers_ui(ui, state, actions);
    instantid_ui(ui, state, lang, actions);
    card(ui, tr(lang, "portrait.photo"), |ui| {
        photo_ui(ui, state, lang, actions)
    });
    pose_ui(ui, state, lang, actions);
    card(ui, tr(lang, "portrait.style"), |ui| {
        style_ui(ui, state, lang)
    });
    card(ui, tr(lang, "portrait.settings"), |ui| {
        settings_ui(ui, state, lang);
    });
}

/// The Generate button, with what is going on or what went wrong under it.
fn generate_bar_ui(ui: &mut egui::Ui, state: &AppState, lang: Lang, actions: &mut Vec<Action>) {
    let portrait = &state.portrait;
    let usable = !matches!(
        portrait.instantid,
        InstantIdStatus::Missing | InstantIdStatus::Unconverted(_)
    );
    let enabled = portrait.ready() && usable;
    let response = primary_button(
        ui,
        tr(lang, "portrait.generate"),
        enabled,
        ui.available_width(),
    );
    if response.clicked() {
        actions.push(Action::Portrait(PortraitAction::Generate));
    }
    if portrait.preparing {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(tr(lang, "portrait.preparing"));
        });
    }
    if let Some(error) = &portrait.error {
        let palette = Palette::of_ui(ui);
        ui.add(egui::Label::new(RichText::new(error).color(palette.error)).wrap());
    }
}

/// The face photo with its boxes, the face buttons, and what went wrong.
fn photo_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let portrait = &mut state.portrait;
    match &portrait.photo {
        Some(photo) => {
            if let Some(clicked) = photo_with_boxes_ui(ui, photo, portrait.selected) {
                portrait.select(clicked);
            }
        }
        None => {
            let (rect, _) =
                ui.allocate_exact_size(egui::vec2(ui.available_width(), 120.0), Sense::hover());
            ui.painter().rect_stroke(
                rect,
                theme::RADIUS,
                Stroke::new(1.5, palette.card_stroke),
                StrokeKind::Inside,
            );
            ui.put(
                rect,
                egui::Label::new(
                    RichText::new(tr(lang, "portrait.drop_photo")).color(palette.muted),
                ),
            );
        }
    }
    ui.horizontal(|ui| {
        if ui.button(tr(lang, "portrait.open_photo")).clicked() {
            actions.push(Action::Portrait(PortraitAction::OpenPhoto));
        }
        if portrait.detecting.is_some() {
            ui.spinner();
            ui.label(RichText::new(tr(lang, "portrait.detecting")).color(palette.muted));
        }
    });
    let count = portrait.faces().len();
    if count > 0 {
        ui.horizontal_wrapped(|ui| {
            ui.label(tr(lang, "portrait.pick_face"));
            for index in 0..count {
                let label = tr_args(lang, "portrait.face_n", &[("n", &(index + 1))]);
                let selected = portrait.selected == index;
                if ui.selectable_label(selected, label).clicked() {
                    portrait.select(index);
                }
            }
        });
    }
    let Some(problem) = &portrait.problem else {
        return;
    };
    let text = match problem {
        DetectProblem::ModelsMissing => tr(lang, "portrait.models_missing").to_owned(),
        DetectProblem::NoFace => tr(lang, "portrait.no_face").to_owned(),
        DetectProblem::TooSmall(side) => tr_args(
            lang,
            "portrait.too_small",
            &[
                ("size", &format!("{side:.0}")),
                (
                    "min",
                    &format!("{:.0}", kiln_inference::vision::face::MIN_FACE_SIZE),
                ),
            ],
        ),
        DetectProblem::Failed(message) => {
            tr_args(lang, "portrait.detect_failed", &[("error", message)])
        }
    };
    ui.add(egui::Label::new(RichText::new(text).color(palette.error)).wrap());
    if *problem == DetectProblem::ModelsMissing {
        ui.horizontal(|ui| {
            if ui.button(tr(lang, "portrait.download_models")).clicked() {
                let id = kiln_inference::vision::face::CATALOG_ID.to_owned();
                actions.push(Action::Portrait(PortraitAction::Offer(id)));
            }
            if ui.button(tr(lang, "portrait.open_models")).clicked() {
                actions.push(Action::ShowSection(crate::gui::state::Section::Models));
            }
        });
    }
}

/// Draws the photo fitted to the width with numbered face boxes; returns a clicked face.
fn photo_with_boxes_ui(ui: &mut egui::Ui, photo: &FacePhoto, selected: usize) -> Option<usize> {
    let palette = Palette::of_ui(ui);
    let texture_size = photo.texture.size_vec2();
    let scale = (ui.available_width() / texture_size.x.max(1.0))
        .min(PHOTO_MAX_HEIGHT / texture_size.y.max(1.0));
    let size = texture_size * scale;
    let (rect, _) =
        ui.allocate_exact_size(egui::vec2(ui.available_width(), size.y), Sense::hover());
    let image_rect = egui::Rect::from_center_size(rect.center(), size);
    egui::Image::new(&photo.texture)
        .corner_radius(theme::RADIUS)
        .paint_at(ui, image_rect);
    // Faces are in photo pixels; the texture may be scaled down.
    let [width, height] = photo.photo_size;
    let to_screen = egui::vec2(
        image_rect.width() / width.max(1) as f32,
        image_rect.height() / height.max(1) as f32,
    );
    let mut clicked = None;
    for (index, face) in photo.faces.iter().enumerate() {
        let [x1, y1, x2, y2] = face.bbox;
        let min = image_rect.min + egui::vec2(x1 * to_screen.x, y1 * to_screen.y);
        let max = image_rect.min + egui::vec2(x2 * to_screen.x, y2 * to_screen.y);
        let face_rect = egui::Rect::from_min_max(min, max).intersect(image_rect);
        let id = egui::Id::unique(("portrait-face", index));
        let response = ui.interact(face_rect, id, Sense::click());
        let number = (index + 1).to_string();
        response.widget_info(|| {
            egui::WidgetInfo::selected(egui::Role::Button, true, index == selected, &number)
        });
        let is_selected = index == selected;
        let color = if is_selected {
            palette.accent
        } else if response.hovered() {
            Color32::WHITE
        } else {
            Color32::from_white_alpha(180)
        };
        let width = if is_selected { 3.0 } else { 1.5 };
        ui.painter().rect_stroke(
            face_rect,
            2.0,
            Stroke::new(width, color),
            StrokeKind::Outside,
        );
        let tag = egui::Rect::from_min_size(
            face_rect.min - egui::vec2(0.0, 18.0),
            egui::vec2(18.0, 18.0),
        );
        ui.painter().rect_filled(tag, 2.0, color);
        ui.painter().text(
            tag.center(),
            egui::Align2::CENTER_CENTER,
            &number,
            egui::FontId::proportional(12.0),
            if is_selected {
                palette.on_accent
            } else {
                Color32::BLACK
            },
        );
        if response.clicked() {
            clicked = Some(index);
        }
        response.on_hover_cursor(egui::CursorIcon::PointingHand);
    }
    clicked
}

fn pose_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let top = ui.cursor().min;
    card(ui, tr(lang, "portrait.pose"), |ui| {
        match &state.portrait.pose {
            Some(pose) => {
                ui.horizontal(|ui| {
                    match &pose.texture {
                        Some(texture) => {
                            let size = texture.size_vec2();
                            let scale = 72.0 / size.x.max(size.y).max(1.0);
                            ui.add(
                                egui::Image::new(texture)
                                    .fit_to_exact_size(size * scale)
                                    .corner_radius(theme::RADIUS),
                            );
                        }
                        None => {
                            ui.spinner();
                        }
                    }
                    ui.vertical(|ui| {
                        ui.label(crate::gui::panels::file_name(&pose.path));
                        if ui.button(tr(lang, "portrait.clear_pose")).clicked() {
                            actions.push(Action::Portrait(PortraitAction::ClearPose));
                        }
                    });
                });
            }
            None => {
                ui.label(
                    RichText::new(tr(lang, "portrait.pose_hint"))
                        .small()
                        .color(palette.muted),
                );
            }
        }
        if ui.button(tr(lang, "portrait.open_pose")).clicked() {
            actions.push(Action::Portrait(PortraitAction::OpenPose));
        }
    });
    let bottom = ui.cursor().min;
    state.portrait.pose_drop_target = Some(egui::Rect::from_min_max(
        top,
        egui::pos2(top.x + ui.available_width(), bottom.y),
    ));
}

fn style_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang) {
    let language = state.settings.language;
    let portrait = &mut state.portrait;
    let selected = match &portrait.style {
        PortraitStyle::Prompt => tr(lang, "portrait.style_prompt").to_owned(),
        PortraitStyle::Preset(id) => state
            .presets
            .entry(id)
            .map_or_else(|| id.clone(), |e| e.name(language).to_owned()),
    };
    egui::ComboBox::from_id_salt("portrait-style")
        .selected_text(selected)
        .width(ui.available_width() - 8.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(
                &mut portrait.style,
                PortraitStyle::Prompt,
                tr(lang, "portrait.style_prompt"),
            );
            for entry in &state.presets.entries {
                ui.selectable_value(
                    &mut portrait.style,
                    PortraitStyle::Preset(entry.id().to_owned()),
                    entry.name(language),
                );
            }
        });
    ui.add(
        egui::TextEdit::multiline(&mut portrait.prompt)
            .hint_text(tr(lang, "portrait.prompt_hint"))
            .desired_rows(2)
            .desired_width(f32::INFINITY),
    );
    if portrait.style == PortraitStyle::Prompt {
        let model = state
            .form
            .model
            .as_deref()
            .map(crate::gui::panels::file_name)
            .unwrap_or_else(|| tr(lang, "portrait.no_model").to_owned());
        ui.label(
            RichText::new(tr_args(lang, "portrait.form_hint", &[("model", &model)]))
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    }
}

fn settings_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang) {
    let portrait = &mut state.portrait;
    let slider_width = ui.available_width() - theme::LABEL_WIDTH - 70.0;
    ui.spacing_mut().slider_width = slider_width.max(80.0);
    let row = |ui: &mut egui::Ui, key: &str, hint: &str, value: &mut f32| {
        ui.horizontal(|ui| {
            let label =
                crate::gui::panels::generate::fixed_label(ui, tr(lang, key), theme::LABEL_WIDTH);
            ui.label_inputs_by(label.id, |ui| {
                ui.add(egui::Slider::new(value, STRENGTH_RANGE).fixed_decimals(2))
                    .on_hover_text(tr(lang, hint));
            });
        });
    };
    row(
        ui,
        "portrait.identity_strength",
        "portrait.identity_hint",
        &mut portrait.identity,
    );
    row(
        ui,
        "portrait.keypoint_strength",
        "portrait.keypoint_hint",
        &mut portrait.keypoints,
    );
    ui.horizontal(|ui| {
        let label = crate::gui::panels::generate::fixed_label(
            ui,
            tr(lang, "portrait.images"),
            theme::LABEL_WIDTH,
        );
        ui.label_inputs_by(label.id, |ui| {
            ui.add(egui::DragValue::new(&mut portrait.images).range(1..=MAX_IMAGES));
        });
    });
    ui.checkbox(&mut portrait.face_fix, tr(lang, "portrait.face_fix"))
        .on_hover_text(tr(lang, "portrait.face_fix_hint"));
}

/// InstantID missing or still a pickle: what to do about it.
fn instantid_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let portrait = &state.portrait;
    let (text, convert) = match &portrait.instantid {
        InstantIdStatus::Unconverted(_) => (tr(lang, "portrait.needs_convert"), true),
        InstantIdStatus::Missing => (tr(lang, "portrait.instantid_missing"), false),
        InstantIdStatus::Ready(_) | InstantIdStatus::Unknown => return,
    };
    palette.card_frame().show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.add(egui::Label::new(RichText::new(text).color(palette.warning)).wrap());
        ui.horizontal(|ui| {
            if convert {
                let enabled = !portrait.converting;
                if ui
                    .add_enabled(enabled, egui::Button::new(tr(lang, "portrait.convert")))
                    .clicked()
                {
                    actions.push(Action::Portrait(PortraitAction::Convert));
                }
                if portrait.converting {
                    ui.spinner();
                    ui.label(tr(lang, "portrait.converting"));
                }
            } else {
                if ui.button(tr(lang, "portrait.download_instantid")).clicked() {
                    let id = kiln_inference::adapters::instantid::CATALOG_ID.to_owned();
                    actions.push(Action::Portrait(PortraitAction::Offer(id)));
                }
                if ui.button(tr(lang, "portrait.recheck")).clicked() {
                    actions.push(Action::Portrait(PortraitAction::Recheck));
                }
                if let Some(dir) = state.settings.model_dirs.first()
                    && ui.button(tr(lang, "portrait.open_model_folder")).clicked()
                {
                    actions.push(Action::OpenDir(dir.clone()));
                }
            }
        });
    });
    ui.add_space(theme::SECTION_GAP);
}

/// The running job and the results with their identity scores.
fn results_ui(ui: &mut egui::Ui, state: &AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let portrait = &state.portrait;
    if let Some(job) = portrait.job {
        ui.horizontal(|ui| {
            let queued = state.jobs.running().is_none_or(|running| running.id != job);
            let progress = state.jobs.progress.as_ref().filter(|p| p.id == job);
            let text = match progress {
                Some(progress) => {
                    let eta = progress
                        .eta
                        .map(|eta| tr_args(lang, "portrait.eta", &[("eta", &human_duration(eta))]))
                        .unwrap_or_default();
                    tr_args(
                        lang,
                        "portrait.running",
                        &[
                            ("image", &(progress.image + 1)),
                            ("images", &progress.images.max(1)),
                            ("eta", &eta),
                        ],
                    )
                }
                None if queued => tr(lang, "portrait.queued").to_owned(),
                None => tr(lang, "portrait.starting").to_owned(),
            };
            ui.label(RichText::new(text).strong());
            if ui.button(tr(lang, "portrait.cancel")).clicked() {
                actions.push(Action::Cancel(job));
            }
        });
        let fraction = state
            .jobs
            .progress
            .as_ref()
            .filter(|p| p.id == job)
            .map_or(0.0, |p| p.fraction());
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_height(8.0)
                .fill(palette.accent),
        );
        ui.add_space(8.0);
    }
    if portrait.results.is_empty() {
        if portrait.job.is_none() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.label(
                    RichText::new(tr(lang, "portrait.empty"))
                        .size(16.0)
                        .color(palette.muted),
                );
            });
        }
        return;
    }
    ui.label(
        RichText::new(tr(lang, "portrait.results"))
            .strong()
            .size(15.0),
    );
    ui.label(
        RichText::new(tr(lang, "portrait.results_hint"))
            .small()
            .color(palette.muted),
    );
    ui.add_space(6.0);
    let best = portrait.best();
    egui::ScrollArea::vertical()
        .id_salt("portrait-results")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            // As many whole cells as fit side by side, then the next row.
            let gap = theme::GRID_GAP * 2.0;
            let width = ui.available_width();
            let columns = (((width + gap) / (RESULT_CELL + gap)).floor() as usize).max(1);
            let cell = RESULT_CELL.min(width);
            let indexed: Vec<_> = portrait.results.iter().enumerate().collect();
            for row in indexed.chunks(columns) {
                ui.horizontal(|ui| {
                    ui.spacing_mut().item_spacing.x = gap;
                    for (index, result) in row {
                        let is_best = best == Some(*index);
                        ui.vertical(|ui| {
                            ui.set_width(cell);
                            result_ui(ui, result, *index, is_best, cell, lang, actions);
                        });
                    }
                });
                ui.add_space(theme::GRID_GAP);
            }
        });
}

/// One result: the picture (click: open it), its identity score, "Best" on the best one.
fn result_ui(
    ui: &mut egui::Ui,
    result: &crate::gui::state::portrait::PortraitResult,
    index: usize,
    is_best: bool,
    cell: f32,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    let size = result.texture.size_vec2();
    let scale = cell / size.x.max(size.y).max(1.0);
    let response = ui
        .add(
            egui::Image::new(&result.texture)
                .fit_to_exact_size(size * scale)
                .corner_radius(theme::RADIUS)
                .sense(Sense::click()),
        )
        .on_hover_text(tr_args(
            lang,
            "portrait.seed",
            &[("seed", &result.recipe.seed)],
        ));
    if is_best {
        ui.painter().rect_stroke(
            response.rect,
            theme::RADIUS,
            Stroke::new(3.0, palette.success),
            StrokeKind::Outside,
        );
    }
    if response.clicked() {
        actions.push(Action::Portrait(PortraitAction::ShowResult(index)));
    }
    ui.horizontal(|ui| {
        let (text, color) = identity_text(result.identity(), lang, &palette);
        ui.label(RichText::new(text).strong().color(color));
        if is_best {
            ui.label(
                RichText::new(tr(lang, "portrait.best"))
                    .small()
                    .color(palette.success),
            );
        }
    });
}

/// "Identity 0.82" in green, amber or red; "No face" when the output has none.
pub fn identity_text(score: Option<f32>, lang: Lang, palette: &Palette) -> (String, Color32) {
    match score {
        Some(score) => {
            let color = if score >= STRONG_IDENTITY {
                palette.success
            } else if score >= WEAK_IDENTITY {
                palette.warning
            } else {
                palette.error
            };
            (
                tr_args(
                    lang,
                    "portrait.identity",
                    &[("score", &format!("{score:.2}"))],
                ),
                color,
            )
        }
        None => (
            tr(lang, "portrait.no_face_in_result").to_owned(),
            palette.muted,
        ),
    }
}
