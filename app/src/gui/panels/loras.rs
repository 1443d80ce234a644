//! The Generate panel's LoRA section: one row per applied LoRA (name, weight slider −2…2,
//! remove) and "Add LoRA", a menu of the library's LoRA files (those made for another family
//! than the model's are shown disabled, with the reason) plus "Browse…" for any file.
//! `<lora:name:w>` tags typed into the prompt apply on top of the rows (see
//! [`GenerateForm::recipe_loras`]).

use crate::gui::action::Action;
use crate::gui::form::{GenerateForm, LORA_WEIGHT_RANGE, LoraRow};
use crate::gui::services::tasks::PickPurpose;
use crate::gui::theme::Palette;
use crate::i18n::{Lang, tr, tr_args};
use crate::library::models::ModelEntry;
use egui::RichText;

/// The section: title with "Add LoRA", the rows, and a hint about prompt tags.
pub fn loras_ui(ui: &mut egui::Ui, form: &mut GenerateForm, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    ui.add_space(crate::gui::theme::SECTION_GAP / 2.0);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "lora.title")).strong());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            add_menu_ui(ui, form, lang, actions);
        });
    });
    let mut removed = None;
    for (index, row) in form.loras.iter_mut().enumerate() {
        if row_ui(ui, row, form.family, lang) {
            removed = Some(index);
        }
    }
    if let Some(index) = removed
        && index < form.loras.len()
    {
        form.loras.remove(index);
    }
    if form.loras.is_empty() {
        ui.label(
            RichText::new(tr(lang, "lora.empty_hint"))
                .small()
                .color(palette.muted),
        );
    }
}

/// One row; returns whether its remove button was clicked.
fn row_ui(
    ui: &mut egui::Ui,
    row: &mut LoraRow,
    model_family: Option<kiln_inference::io::family::Family>,
    lang: Lang,
) -> bool {
    let palette = Palette::of_ui(ui);
    let mut remove = false;
    ui.horizontal(|ui| {
        let problem = if row.missing {
            Some(tr_args(
                lang,
                "lora.missing",
                &[("path", &row.path.display())],
            ))
        } else if row.family_mismatch(model_family) {
            Some(tr_args(
                lang,
                "lora.other_family",
                &[
                    ("lora", &row.family.map(|f| f.label()).unwrap_or("?")),
                    ("model", &model_family.map(|f| f.label()).unwrap_or("?")),
                ],
            ))
        } else {
            None
        };
        let name_width = 128.0;
        let size = egui::vec2(name_width, ui.spacing().interact_size.y);
        let name = ui
            .allocate_ui_with_layout(
                size,
                egui::Layout::left_to_right(egui::Align::Center),
                |ui| {
                    ui.set_min_size(size);
                    ui.spacing_mut().item_spacing.x = 4.0;
                    if let Some(problem) = &problem {
                        ui.label(RichText::new("▲").color(palette.warning))
                            .on_hover_text(problem);
                    }
                    let text = if row.missing {
                        RichText::new(&row.label).color(palette.warning)
                    } else {
                        RichText::new(&row.label)
                    };
                    ui.add(egui::Label::new(text).truncate())
                        .on_hover_text(row.path.display().to_string())
                },
            )
            .inner;
        // Slider (track, then value), then the remove button at the row's end.
        let remove_width = 22.0;
        let value_width = 52.0;
        ui.spacing_mut().slider_width =
            (ui.available_width() - value_width - remove_width - 2.0 * ui.spacing().item_spacing.x)
                .max(40.0);
        ui.add(
            egui::Slider::new(&mut row.weight, LORA_WEIGHT_RANGE)
                .step_by(0.05)
                .fixed_decimals(2),
        )
        .labelled_by(name.id)
        .on_hover_text(tr(lang, "lora.weight_hint"));
        remove = ui
            .small_button("✕")
            .on_hover_text(tr_args(lang, "lora.remove", &[("name", &row.label)]))
            .clicked();
    });
    remove
}

/// "Add LoRA": the library's LoRA files, then "Browse…".
fn add_menu_ui(ui: &mut egui::Ui, form: &mut GenerateForm, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    ui.menu_button(tr(lang, "lora.add"), |ui| {
        ui.set_min_width(240.0);
        let mut chosen = None;
        if form.lora_library.is_empty() {
            ui.label(RichText::new(tr(lang, "lora.none_in_library")).color(palette.muted));
        }
        // Usable choices first, then the others (disabled, with the reason on hover).
        let mut choices: Vec<_> = form
            .lora_library
            .iter()
            .map(|entry| (entry, unavailable_reason(form, entry, lang)))
            .collect();
        choices.sort_by_key(|(_, reason)| reason.is_some());
        egui::ScrollArea::vertical()
            .max_height(320.0)
            .show(ui, |ui| {
                for (entry, reason) in &choices {
                    let family = entry.family.map(|f| f.label()).unwrap_or("?");
                    let label = format!("{}  ·  {family}", entry.name);
                    let response = ui.add_enabled(reason.is_none(), egui::Button::new(label));
                    let response = match reason {
                        Some(reason) => response.on_disabled_hover_text(reason),
                        None => response.on_hover_text(entry.path.display().to_string()),
                    };
                    if response.clicked() {
                        chosen = Some(LoraRow::from_entry(entry));
                    }
                }
            });
        ui.separator();
        if ui.button(tr(lang, "lora.browse")).clicked() {
            actions.push(Action::Pick(PickPurpose::Lora));
        }
        if let Some(row) = chosen {
            form.add_lora(row);
            ui.close();
        }
    })
    .response
    .on_hover_text(tr(lang, "lora.add_hint"));
}

/// Why a library LoRA cannot be added now: unusable file, already a row, or another family.
fn unavailable_reason(form: &GenerateForm, entry: &ModelEntry, lang: Lang) -> Option<String> {
    if let Some(problem) = &entry.problem {
        return Some(problem.clone());
    }
    if form.loras.iter().any(|r| r.path == entry.path) {
        return Some(tr(lang, "lora.already_added").to_owned());
    }
    match (entry.family, form.family) {
        (Some(lora), Some(model)) if lora != model => Some(tr_args(
            lang,
            "lora.other_family",
            &[("lora", &lora.label()), ("model", &model.label())],
        )),
        _ => None,
    }
}
