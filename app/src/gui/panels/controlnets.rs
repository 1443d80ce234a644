//! The Generate panel's ControlNet section: one card per ControlNet (model from the library,
//! filtered by the model's family, or any file; guide image from a file dialog, a drop on the
//! card or a canvas layer; preprocessor; scale; start and end), "Add ControlNet", and guess
//! mode. The rows become the recipe's `controls` in [`GenerateForm::to_recipe`].

use crate::gui::action::{Action, CanvasAction};
use crate::gui::form::{CONTROL_SCALE_RANGE, ControlRow, GenerateForm, PREPROCESSORS};
use crate::gui::panels::file_name;
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::AppState;
use crate::gui::state::canvas::LayerSummary;
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::models::ModelEntry;
use egui::RichText;
use kiln_inference::io::family::Family;
use kiln_inference::recipe::Preprocessor;

/// Width of the label column inside a ControlNet card.
const LABEL_WIDTH: f32 = 84.0;

/// The translation key of a preprocessor's name.
pub fn preprocessor_key(preprocessor: Preprocessor) -> &'static str {
    match preprocessor {
        Preprocessor::None => "controlnet.pre_none",
        Preprocessor::Canny => "controlnet.pre_canny",
        Preprocessor::Scribble => "controlnet.pre_scribble",
        Preprocessor::Lineart => "controlnet.pre_lineart",
        Preprocessor::Depth => "controlnet.pre_depth",
        Preprocessor::Inpaint => "controlnet.pre_inpaint",
    }
}

/// The section: title with "Add ControlNet", one card per row, guess mode.
pub fn controlnets_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    ui.add_space(theme::SECTION_GAP / 2.0);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "controlnet.title")).strong());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .button(tr(lang, "controlnet.add"))
                .on_hover_text(tr(lang, "controlnet.add_hint"))
                .clicked()
            {
                state.form.add_control();
            }
        });
    });
    let layers = state.canvas.layer_summaries(lang, &state.form.controls);
    let family = state.form.family;
    let library = state.form.controlnet_library.clone();
    let mut removed = None;
    state.controlnet_drop_targets.clear();
    for (index, row) in state.form.controls.iter_mut().enumerate() {
        let card = palette.card_frame().show(ui, |ui| {
            ui.set_width(ui.available_width());
            let context = RowContext {
                index,
                family,
                library: &library,
                layers: &layers,
                lang,
            };
            row_ui(ui, row, &context, actions)
        });
        if card.inner {
            removed = Some(index);
        }
        state
            .controlnet_drop_targets
            .push((row.id, card.response.rect));
        ui.add_space(4.0);
    }
    if let Some(index) = removed
        && index < state.form.controls.len()
    {
        state.form.controls.remove(index);
    }
    if state.form.controls.is_empty() {
        ui.label(
            RichText::new(tr(lang, "controlnet.empty_hint"))
                .small()
                .color(palette.muted),
        );
    } else {
        ui.checkbox(
            &mut state.form.guess_mode,
            tr(lang, "controlnet.guess_mode"),
        )
        .on_hover_text(tr(lang, "controlnet.guess_mode_hint"));
    }
}

/// What every row needs besides itself.
struct RowContext<'a> {
    index: usize,
    family: Option<Family>,
    library: &'a [ModelEntry],
    layers: &'a [LayerSummary],
    lang: Lang,
}

/// A label in the card's label column.
fn card_label(ui: &mut egui::Ui, text: &str) -> egui::Response {
    crate::gui::panels::generate::fixed_label(ui, text, LABEL_WIDTH)
}

/// One card; returns whether its remove button was clicked.
fn row_ui(
    ui: &mut egui::Ui,
    row: &mut ControlRow,
    context: &RowContext<'_>,
    actions: &mut Vec<Action>,
) -> bool {
    let lang = context.lang;
    let palette = Palette::of_ui(ui);
    let number = context.index + 1;
    let mut remove = false;
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(tr_args(lang, "controlnet.row_title", &[("row", &number)])).strong(),
        );
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            remove = ui
                .small_button("✕")
                .on_hover_text(tr_args(lang, "controlnet.remove", &[("row", &number)]))
                .clicked();
        });
    });
    ui.horizontal(|ui| {
        let label = card_label(ui, tr(lang, "controlnet.model"));
        ui.label_inputs_by(label.id, |ui| model_menu_ui(ui, row, context, actions));
    });
    if let Some(problem) = model_problem(row, context.family, lang) {
        ui.label(
            RichText::new(format!("▲ {problem}"))
                .small()
                .color(palette.warning),
        );
    }
    ui.horizontal(|ui| {
        let label = card_label(ui, tr(lang, "controlnet.guide"));
        ui.label_inputs_by(label.id, |ui| guide_ui(ui, row, context, actions));
    });
    ui.horizontal(|ui| {
        let label = card_label(ui, tr(lang, "controlnet.preprocessor"));
        ui.label_inputs_by(label.id, |ui| preprocessor_ui(ui, row, lang));
    });
    ui.horizontal(|ui| {
        let label = card_label(ui, tr(lang, "controlnet.scale"));
        ui.spacing_mut().slider_width = ui.available_width() - 60.0;
        ui.add(
            egui::Slider::new(&mut row.scale, CONTROL_SCALE_RANGE)
                .step_by(0.05)
                .fixed_decimals(2),
        )
        .labelled_by(label.id);
    });
    ui.horizontal(|ui| {
        let label = card_label(ui, tr(lang, "controlnet.steps_range"));
        ui.label_inputs_by(label.id, |ui| {
            let start = ui.add(
                egui::DragValue::new(&mut row.start)
                    .range(0.0..=1.0)
                    .speed(0.01)
                    .fixed_decimals(2),
            );
            ui.label("–");
            let end = ui.add(
                egui::DragValue::new(&mut row.end)
                    .range(0.0..=1.0)
                    .speed(0.01)
                    .fixed_decimals(2),
            );
            start.on_hover_text(tr(lang, "controlnet.start_hint"));
            end.on_hover_text(tr(lang, "controlnet.end_hint"));
        });
    });
    remove
}

/// Why the row's model is a problem: missing file or another family.
fn model_problem(row: &ControlRow, family: Option<Family>, lang: Lang) -> Option<String> {
    let model = row.model.as_ref()?;
    if row.model_missing {
        return Some(tr_args(
            lang,
            "controlnet.missing",
            &[("path", &model.display())],
        ));
    }
    row.family_mismatch(family).then(|| {
        tr_args(
            lang,
            "controlnet.other_family",
            &[
                ("controlnet", &row.family.map(|f| f.label()).unwrap_or("?")),
                ("model", &family.map(|f| f.label()).unwrap_or("?")),
            ],
        )
    })
}

/// The model menu: library ControlNets (other families disabled), then browse entries.
fn model_menu_ui(
    ui: &mut egui::Ui,
    row: &mut ControlRow,
    context: &RowContext<'_>,
    actions: &mut Vec<Action>,
) {
    let lang = context.lang;
    let palette = Palette::of_ui(ui);
    let selected = match &row.model {
        Some(_) => row.label.clone(),
        None => tr(lang, "controlnet.choose_model").to_owned(),
    };
    let mut chosen = None;
    egui::ComboBox::from_id_salt(("controlnet-model", row.id))
        .width(ui.available_width() - 8.0)
        .selected_text(selected)
        .truncate()
        .show_ui(ui, |ui| {
            ui.set_min_width(260.0);
            if context.library.is_empty() {
                ui.label(
                    RichText::new(tr(lang, "controlnet.none_in_library")).color(palette.muted),
                );
            }
            let mut choices: Vec<_> = context
                .library
                .iter()
                .map(|entry| (entry, unavailable_reason(entry, context.family, lang)))
                .collect();
            choices.sort_by_key(|(_, reason)| reason.is_some());
            for (entry, reason) in &choices {
                let family = entry.family.map(|f| f.label()).unwrap_or("?");
                let label = format!("{}  ·  {family}", entry.name);
                let current = row
                    .model
                    .as_ref()
                    .is_some_and(|m| *m == crate::gui::form::controlnet_load_path(&entry.path));
                let response =
                    ui.add_enabled(reason.is_none(), egui::Button::selectable(current, label));
                let response = match reason {
                    Some(reason) => response.on_disabled_hover_text(reason),
                    None => response.on_hover_text(entry.path.display().to_string()),
                };
                if response.clicked() {
                    chosen = Some((*entry).clone());
                }
            }
            ui.separator();
            if ui.button(tr(lang, "controlnet.browse_file")).clicked() {
                actions.push(Action::Pick(PickPurpose::ControlNetFile(row.id)));
            }
            if ui.button(tr(lang, "controlnet.browse_folder")).clicked() {
                actions.push(Action::Pick(PickPurpose::ControlNetFolder(row.id)));
            }
        });
    if let Some(entry) = chosen {
        row.set_entry(&entry);
    }
}

/// Why a library ControlNet cannot be picked: unusable file or another family.
fn unavailable_reason(entry: &ModelEntry, family: Option<Family>, lang: Lang) -> Option<String> {
    if let Some(problem) = &entry.problem {
        return Some(problem.clone());
    }
    match (entry.family, family) {
        (Some(controlnet), Some(model)) if controlnet != model => Some(tr_args(
            lang,
            "controlnet.other_family",
            &[
                ("controlnet", &controlnet.label()),
                ("model", &model.label()),
            ],
        )),
        _ => None,
    }
}

/// The guide: its file name (or "none"), "Choose…", and "From canvas" (a menu of layers).
fn guide_ui(
    ui: &mut egui::Ui,
    row: &mut ControlRow,
    context: &RowContext<'_>,
    actions: &mut Vec<Action>,
) {
    let lang = context.lang;
    let palette = Palette::of_ui(ui);
    ui.spacing_mut().item_spacing.x = 6.0;
    let buttons_width = 150.0;
    let name_width = (ui.available_width() - buttons_width).max(60.0);
    let size = egui::vec2(name_width, ui.spacing().interact_size.y);
    ui.allocate_ui_with_layout(
        size,
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(size);
            match &row.image {
                Some(path) => {
                    let text = if row.image_missing {
                        RichText::new(format!("▲ {}", file_name(path))).color(palette.warning)
                    } else {
                        RichText::new(file_name(path)).monospace()
                    };
                    let hover = if row.image_missing {
                        tr_args(lang, "controlnet.missing", &[("path", &path.display())])
                    } else {
                        path.display().to_string()
                    };
                    ui.add(egui::Label::new(text).truncate())
                        .on_hover_text(hover);
                }
                None => {
                    ui.add(
                        egui::Label::new(
                            RichText::new(tr(lang, "controlnet.no_guide")).color(palette.muted),
                        )
                        .truncate(),
                    )
                    .on_hover_text(tr(lang, "controlnet.guide_hint"));
                }
            }
        },
    );
    if ui
        .small_button(tr(lang, "controlnet.guide_choose"))
        .on_hover_text(tr(lang, "controlnet.guide_hint"))
        .clicked()
    {
        actions.push(Action::Pick(PickPurpose::ControlImage(row.id)));
    }
    ui.menu_button(tr(lang, "controlnet.from_canvas"), |ui| {
        ui.set_min_width(200.0);
        if context.layers.is_empty() {
            ui.label(RichText::new(tr(lang, "controlnet.canvas_empty")).color(palette.muted));
        }
        for layer in context.layers {
            if ui.button(&layer.name).clicked() {
                actions.push(Action::Canvas(CanvasAction::UseAsGuide {
                    layer: layer.id,
                    row: Some(row.id),
                }));
                ui.close();
            }
        }
    })
    .response
    .on_hover_text(tr(lang, "controlnet.from_canvas_hint"));
}

/// The preprocessor menu; the ones that run a network say where it comes from.
fn preprocessor_ui(ui: &mut egui::Ui, row: &mut ControlRow, lang: Lang) {
    egui::ComboBox::from_id_salt(("controlnet-pre", row.id))
        .width(ui.available_width() - 8.0)
        .selected_text(tr(lang, preprocessor_key(row.preprocessor)))
        .show_ui(ui, |ui| {
            for preprocessor in PREPROCESSORS {
                let response = ui.selectable_value(
                    &mut row.preprocessor,
                    preprocessor,
                    tr(lang, preprocessor_key(preprocessor)),
                );
                if matches!(
                    preprocessor,
                    Preprocessor::Depth | Preprocessor::Lineart | Preprocessor::Scribble
                ) {
                    response.on_hover_text(tr(lang, "controlnet.pre_network"));
                } else if preprocessor == Preprocessor::Inpaint {
                    response.on_hover_text(tr(lang, "controlnet.pre_inpaint_hint"));
                }
            }
        });
}

/// The form's mask controls, under the init image: the mask file (choose, clear, from canvas),
/// blur, and "only masked" with its padding.
pub fn mask_ui(
    ui: &mut egui::Ui,
    form: &mut GenerateForm,
    layers: &[LayerSummary],
    lang: Lang,
    actions: &mut Vec<Action>,
) -> egui::Rect {
    let palette = Palette::of_ui(ui);
    let top = ui.cursor().min;
    ui.horizontal(|ui| {
        let label = crate::gui::panels::generate::fixed_label(
            ui,
            tr(lang, "inpaint.mask"),
            theme::LABEL_WIDTH,
        );
        ui.label_inputs_by(label.id, |ui| {
            ui.spacing_mut().item_spacing.x = 6.0;
            match form.mask.path.clone() {
                Some(path) => {
                    let text = if form.mask.missing {
                        RichText::new(format!("▲ {}", file_name(&path))).color(palette.warning)
                    } else {
                        RichText::new(file_name(&path)).monospace()
                    };
                    ui.add(egui::Label::new(text).truncate())
                        .on_hover_text(path.display().to_string());
                    if ui.small_button(tr(lang, "inpaint.clear")).clicked() {
                        form.mask.path = None;
                        form.mask.missing = false;
                    }
                }
                None => {
                    if ui.small_button(tr(lang, "inpaint.choose")).clicked() {
                        actions.push(Action::Pick(PickPurpose::Mask));
                    }
                }
            }
            ui.menu_button(tr(lang, "inpaint.from_canvas"), |ui| {
                ui.set_min_width(200.0);
                if layers.is_empty() {
                    ui.label(
                        RichText::new(tr(lang, "controlnet.canvas_empty")).color(palette.muted),
                    );
                }
                for layer in layers {
                    if ui.button(&layer.name).clicked() {
                        actions.push(Action::Canvas(CanvasAction::UseAsMask(layer.id)));
                        ui.close();
                    }
                }
            });
        });
    });
    if form.mask.path.is_none() {
        ui.label(
            RichText::new(tr(lang, "inpaint.hint"))
                .small()
                .color(palette.muted),
        );
    } else {
        ui.horizontal(|ui| {
            let label = crate::gui::panels::generate::fixed_label(
                ui,
                tr(lang, "inpaint.blur"),
                theme::LABEL_WIDTH,
            );
            ui.spacing_mut().slider_width = ui.available_width() - 60.0;
            ui.add(egui::Slider::new(
                &mut form.mask.blur,
                crate::gui::form::MASK_BLUR_RANGE,
            ))
            .labelled_by(label.id);
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut form.mask.only_masked, tr(lang, "inpaint.only_masked"))
                .on_hover_text(tr(lang, "inpaint.only_masked_hint"));
            ui.add_enabled_ui(form.mask.only_masked, |ui| {
                let label = ui.label(tr(lang, "inpaint.padding"));
                ui.add(
                    egui::DragValue::new(&mut form.mask.padding)
                        .range(crate::gui::form::MASK_PADDING_RANGE)
                        .suffix(" px"),
                )
                .labelled_by(label.id);
            });
        });
    }
    egui::Rect::from_min_max(top, egui::pos2(ui.max_rect().right(), ui.cursor().min.y))
}
