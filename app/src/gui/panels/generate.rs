//! The Generate panel: the form on the left (model, prompts with token counts, seed, sampler,
//! steps, CFG, size presets, batch, init image), the live preview or result viewer with its
//! actions in the middle, and the job queue underneath. Ctrl+Enter generates, Esc cancels.

use crate::gui::action::{Action, CanvasAction};
use crate::gui::form::{Aspect, FormError, GenerateForm, MAX_BATCH, MAX_SIDE, MAX_STEPS, SeedMode};
use crate::gui::panels::{controlnets, file_name, loras, primary_button, queue};
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::{AppState, Section};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::models::ModelEntry;
use egui::{Key, Modifiers, RichText, Vec2};
use kiln_inference::SamplerKind;

/// The Generate panel.
pub fn generate_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    shortcuts(ui, state, actions);
    let palette = Palette::of_ui(ui);
    theme::left_column("generate-form", theme::FORM_WIDTH).show(ui, |ui| {
        // Generate stays in view under the scrolling form.
        // Taller while the reason Generate is off shows under it.
        let bar_height = if state.form.to_recipe_with(|| 0).is_ok() {
            theme::GENERATE_BAR_HEIGHT
        } else {
            theme::GENERATE_BAR_HEIGHT + 20.0
        };
        egui::Panel::bottom("generate-run")
            .exact_size(bar_height)
            .resizable(false)
            .show_separator_line(true)
            .frame(egui::Frame::new().inner_margin(egui::Margin {
                left: 0,
                right: 0,
                top: 10,
                bottom: 2,
            }))
            .show(ui, |ui| generate_button_ui(ui, state, actions));
        egui::ScrollArea::vertical()
            .id_salt("generate-form-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.add_space(2.0);
                form_ui(ui, state, actions);
                ui.add_space(8.0);
            });
    });
    egui::Panel::bottom("generate-queue")
        .exact_size(theme::QUEUE_HEIGHT)
        .resizable(false)
        .show_separator_line(false)
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 0,
            right: 0,
            top: 10,
            bottom: 0,
        }))
        .show(ui, |ui| queue::queue_ui(ui, state, actions));
    egui::CentralPanel::default()
        .frame(egui::Frame::new().fill(palette.panel))
        .show(ui, |ui| {
            job_errors_ui(ui, state, actions);
            viewer_ui(ui, state, actions);
        });
}

/// Ctrl+Enter generates (when the form is valid), Esc cancels the running job.
fn shortcuts(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::Enter))
        && let Ok(recipe) = state.form.to_recipe()
    {
        actions.push(Action::Submit(Box::new(recipe)));
    }
    if let Some(running) = state.jobs.running()
        && ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape))
    {
        actions.push(Action::Cancel(running.id));
    }
}

/// A form row: a fixed-width label, then the widgets it names.
fn row_ui<R>(ui: &mut egui::Ui, label: &str, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.horizontal(|ui| {
        let label = fixed_label(ui, label, theme::LABEL_WIDTH);
        ui.label_inputs_by(label.id, add)
    })
    .inner
}

/// A left-aligned label in a column of `width` points.
pub fn fixed_label(ui: &mut egui::Ui, text: &str, width: f32) -> egui::Response {
    let size = egui::vec2(width, ui.spacing().interact_size.y);
    ui.allocate_ui_with_layout(
        size,
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(size);
            ui.add(egui::Label::new(text).truncate())
        },
    )
    .inner
}

/// A small section title inside the form.
fn group_title(ui: &mut egui::Ui, text: &str) {
    ui.add_space(theme::SECTION_GAP / 2.0);
    ui.label(RichText::new(text).strong());
    ui.add_space(2.0);
}

fn form_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    model_ui(ui, state, actions);
    prompts_ui(ui, state);
    loras::loras_ui(ui, &mut state.form, lang, actions);
    group_title(ui, tr(lang, "generate.parameters"));
    seed_ui(ui, state);
    sampler_ui(ui, &mut state.form, lang);
    size_ui(ui, &mut state.form, lang);
    row_ui(ui, tr(lang, "generate.batch"), |ui| {
        ui.add(
            egui::DragValue::new(&mut state.form.batch)
                .range(1..=MAX_BATCH)
                .speed(0.1),
        );
        ui.label(
            RichText::new(tr(lang, "generate.batch_hint"))
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    });
    face_fix_ui(ui, &mut state.form, lang);
    init_ui(ui, state, actions);
    controlnets::controlnets_ui(ui, state, actions);
}

/// Face fix: a checkbox and the strength of the redo.
fn face_fix_ui(ui: &mut egui::Ui, form: &mut GenerateForm, lang: Lang) {
    row_ui(ui, tr(lang, "generate.face_fix"), |ui| {
        let checkbox = ui
            .checkbox(&mut form.face_fix, "")
            .on_hover_text(tr(lang, "generate.face_fix_hint"));
        // Screen readers (and tests) hear the row's name, not the hover text.
        let on = form.face_fix;
        checkbox.widget_info(|| {
            egui::WidgetInfo::selected(
                egui::Role::CheckBox,
                true,
                on,
                tr(lang, "generate.face_fix"),
            )
        });
        ui.add_enabled_ui(form.face_fix, |ui| {
            ui.spacing_mut().slider_width = ui.available_width() - 50.0;
            let strength = &mut form.face_fix_settings.strength;
            ui.add(egui::Slider::new(strength, 0.05..=1.0).fixed_decimals(2))
                .on_hover_text(tr(lang, "generate.face_fix_strength"));
        });
    });
}

fn model_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    group_title(ui, tr(lang, "generate.model"));
    let mut chosen = None;
    ui.horizontal(|ui| model_row_ui(ui, state, lang, &mut chosen, actions));
    if let Some(entry) = chosen {
        state.form.set_model(entry.path, entry.family, entry.hash);
    }
    match (&state.form.model, state.form.family) {
        (Some(_), Some(family)) => {
            let (w, h) = family.native_size();
            ui.label(
                RichText::new(tr_args(
                    lang,
                    "generate.family_line",
                    &[("family", &family.label()), ("size", &format!("{w}×{h}"))],
                ))
                .small()
                .color(palette.muted),
            );
        }
        (None, _) if state.models.scanned && state.models.checkpoints().next().is_none() => {
            ui.horizontal_wrapped(|ui| {
                ui.label(
                    RichText::new(tr(lang, "generate.no_models_found"))
                        .small()
                        .color(palette.muted),
                );
                if ui.small_button(tr(lang, "generate.open_models")).clicked() {
                    actions.push(Action::ShowSection(Section::Models));
                }
            });
        }
        _ => {}
    }
}

/// The model picker and the browse menu, filling the row.
fn model_row_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    lang: Lang,
    chosen: &mut Option<ModelEntry>,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    let selected_name = match &state.form.model {
        Some(path) => state
            .models
            .entry(path)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| file_name(path)),
        None => tr(lang, "generate.no_model").to_owned(),
    };
    // The picker takes the row except the browse menu's width.
    let browse_text = tr(lang, "common.browse");
    let text_width = ui.fonts_mut(|fonts| {
        fonts
            .layout_no_wrap(
                browse_text.to_owned(),
                egui::TextStyle::Button.resolve(ui.style()),
                egui::Color32::WHITE,
            )
            .size()
            .x
    });
    let browse_width = text_width + 2.0 * ui.spacing().button_padding.x;
    let combo_width =
        (ui.available_width() - browse_width - ui.spacing().item_spacing.x).max(120.0);
    ui.name_inputs(tr(lang, "generate.model"), |ui| {
        egui::ComboBox::from_id_salt("model-picker")
            .width(combo_width)
            .selected_text(selected_name)
            .truncate()
            .show_ui(ui, |ui| {
                let mut any = false;
                for entry in state.models.checkpoints() {
                    any = true;
                    let selected = state.form.model.as_deref() == Some(entry.path.as_path());
                    let family = entry.family.map(|f| f.label()).unwrap_or("?");
                    let label = format!("{}  ·  {family}", entry.name);
                    if ui.selectable_label(selected, label).clicked() {
                        *chosen = Some(entry.clone());
                    }
                }
                if !any {
                    ui.label(
                        RichText::new(tr(lang, "generate.no_models_found")).color(palette.muted),
                    );
                }
            });
    });
    ui.menu_button(tr(lang, "common.browse"), |ui| {
        if ui.button(tr(lang, "generate.browse_file")).clicked() {
            actions.push(Action::Pick(PickPurpose::Model));
        }
        if ui.button(tr(lang, "generate.browse_folder")).clicked() {
            actions.push(Action::Pick(PickPurpose::ModelFolder));
        }
    })
    .response
    .on_hover_text(tr(lang, "generate.browse_model_hint"));
}

fn token_label(counts: Option<(usize, usize)>, lang: Lang, ui: &egui::Ui) -> RichText {
    let palette = Palette::of_ui(ui);
    match counts {
        Some((tokens, limit)) => {
            let text = tr_args(
                lang,
                "generate.tokens",
                &[("count", &tokens), ("limit", &limit)],
            );
            // Past the first chunk the prompt is split, as A1111 does: worth a glance.
            let color = if tokens > 75 {
                palette.accent
            } else {
                palette.muted
            };
            RichText::new(text).small().color(color)
        }
        None => RichText::new("…").small().color(palette.muted),
    }
}

fn prompts_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    for (key, hint_key, rows, negative) in [
        ("generate.prompt", "generate.prompt_hint", 5, false),
        ("generate.negative", "generate.negative_hint", 2, true),
    ] {
        ui.add_space(theme::SECTION_GAP / 2.0);
        let counts = if negative {
            state.tokens.negative
        } else {
            state.tokens.prompt
        };
        let label = ui
            .horizontal(|ui| {
                let label = ui.label(RichText::new(tr(lang, key)).strong());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(token_label(counts, lang, ui));
                });
                label
            })
            .inner;
        let text = if negative {
            &mut state.form.negative
        } else {
            &mut state.form.prompt
        };
        ui.add(
            egui::TextEdit::multiline(text)
                .desired_rows(rows)
                .desired_width(f32::INFINITY)
                .hint_text(tr(lang, hint_key)),
        )
        .labelled_by(label.id);
    }
}

fn seed_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let last_seed = state.jobs.last_seed;
    let form = &mut state.form;
    row_ui(ui, tr(lang, "generate.seed"), |ui| {
        ui.selectable_value(
            &mut form.seed_mode,
            SeedMode::Random,
            tr(lang, "generate.seed_random"),
        );
        ui.selectable_value(
            &mut form.seed_mode,
            SeedMode::Fixed,
            tr(lang, "generate.seed_fixed"),
        );
        ui.spacing_mut().item_spacing.x = 6.0;
        ui.add_enabled(
            form.seed_mode == SeedMode::Fixed,
            egui::DragValue::new(&mut form.seed).range(0..=u64::from(u32::MAX)),
        );
        let reuse = ui
            .add_enabled(
                last_seed.is_some(),
                egui::Button::new(tr(lang, "generate.seed_reuse")).small(),
            )
            .on_hover_text(tr(lang, "generate.seed_reuse_hint"));
        if reuse.clicked()
            && let Some(seed) = last_seed
        {
            form.seed = seed;
            form.seed_mode = SeedMode::Fixed;
        }
    });
}

/// "DPM++ 2M Karras", as A1111 users know the samplers.
pub fn sampler_label(sampler: SamplerKind) -> String {
    match sampler.a1111_names() {
        (name, "Automatic") => name.to_owned(),
        (name, schedule) => format!("{name} {schedule}"),
    }
}

fn sampler_ui(ui: &mut egui::Ui, form: &mut GenerateForm, lang: Lang) {
    row_ui(ui, tr(lang, "generate.sampler"), |ui| {
        egui::ComboBox::from_id_salt("sampler")
            .width(ui.available_width() - 8.0)
            .selected_text(sampler_label(form.sampler))
            .show_ui(ui, |ui| {
                for sampler in SamplerKind::ALL {
                    ui.selectable_value(&mut form.sampler, sampler, sampler_label(sampler));
                }
            });
    });
    row_ui(ui, tr(lang, "generate.steps"), |ui| {
        ui.spacing_mut().slider_width = ui.available_width() - 50.0;
        ui.add(egui::Slider::new(&mut form.steps, 1..=MAX_STEPS));
    });
    row_ui(ui, tr(lang, "generate.cfg"), |ui| {
        ui.spacing_mut().slider_width = ui.available_width() - 50.0;
        ui.add(
            egui::Slider::new(&mut form.cfg, 1.0..=20.0)
                .step_by(0.5)
                .fixed_decimals(1),
        );
    });
}

fn size_ui(ui: &mut egui::Ui, form: &mut GenerateForm, lang: Lang) {
    row_ui(ui, tr(lang, "generate.size"), |ui| {
        let mut changed = false;
        changed |= ui
            .add(
                egui::DragValue::new(&mut form.width)
                    .range(64..=MAX_SIDE)
                    .speed(8),
            )
            .changed();
        ui.label("×");
        changed |= ui
            .add(
                egui::DragValue::new(&mut form.height)
                    .range(64..=MAX_SIDE)
                    .speed(8),
            )
            .changed();
        if changed {
            form.width = form.width / 8 * 8;
            form.height = form.height / 8 * 8;
            form.aspect = Aspect::matching((form.width, form.height), form.native_size());
        }
        ui.label(
            RichText::new(tr(lang, "generate.pixels"))
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    });
    // The presets span the form's width, equally sized.
    ui.horizontal(|ui| {
        let gap = 4.0;
        ui.spacing_mut().item_spacing.x = gap;
        let count = Aspect::ALL.len() as f32;
        let width = ((ui.available_width() - gap * (count - 1.0)) / count).floor();
        for aspect in Aspect::ALL {
            let button = egui::Button::selectable(form.aspect == Some(aspect), aspect.label())
                .min_size(egui::vec2(width, 24.0));
            if ui
                .add(button)
                .on_hover_text(tr(lang, "generate.aspect"))
                .clicked()
            {
                form.set_aspect(aspect);
            }
        }
    });
}

/// What the canvas added to the init image: outpainting (Extend) and the text overlay, each
/// with a button that drops it.
fn canvas_extras_ui(
    ui: &mut egui::Ui,
    form: &mut crate::gui::form::GenerateForm,
    lang: crate::i18n::Lang,
    palette: Palette,
) {
    if let Some(spec) = form.outpaint {
        let text = tr_args(
            lang,
            "generate.outpaint_line",
            &[
                ("left", &spec.left),
                ("right", &spec.right),
                ("top", &spec.top),
                ("bottom", &spec.bottom),
                ("overlap", &spec.overlap),
            ],
        );
        ui.horizontal(|ui| {
            ui.add(egui::Label::new(RichText::new(text).small().color(palette.muted)).truncate());
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .small_button("✕")
                    .on_hover_text(tr(lang, "generate.outpaint_clear"))
                    .clicked()
                {
                    form.outpaint = None;
                }
            });
        });
    }
    if form.overlay.is_some() {
        ui.horizontal(|ui| {
            ui.add(
                egui::Label::new(
                    RichText::new(tr(lang, "generate.overlay_line"))
                        .small()
                        .color(palette.muted),
                )
                .truncate(),
            );
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .small_button("✕")
                    .on_hover_text(tr(lang, "generate.overlay_clear"))
                    .clicked()
                {
                    form.overlay = None;
                }
            });
        });
    }
}

fn init_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    group_title(ui, tr(lang, "generate.init"));
    let layers = state.canvas.layer_summaries(lang, &state.form.controls);
    state.mask_drop_target = None;
    let form = &mut state.form;
    match form.init.clone() {
        Some(path) => {
            ui.horizontal(|ui| {
                let text = if form.init_missing {
                    RichText::new(format!("▲ {}", file_name(&path))).color(palette.warning)
                } else {
                    RichText::new(file_name(&path)).monospace()
                };
                ui.add(egui::Label::new(text).truncate())
                    .on_hover_text(path.display().to_string());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.small_button(tr(lang, "generate.init_clear")).clicked() {
                        form.init = None;
                        form.init_missing = false;
                    }
                    if ui.small_button(tr(lang, "common.change")).clicked() {
                        actions.push(Action::Pick(PickPurpose::InitImage));
                    }
                });
            });
            row_ui(ui, tr(lang, "generate.strength"), |ui| {
                ui.spacing_mut().slider_width = ui.available_width() - 50.0;
                ui.add(egui::Slider::new(&mut form.strength, 0.05..=1.0).fixed_decimals(2));
            });
            canvas_extras_ui(ui, form, lang, palette);
            let mask_rect = controlnets::mask_ui(ui, form, &layers, lang, actions);
            state.mask_drop_target = Some(mask_rect);
        }
        None => {
            ui.horizontal_wrapped(|ui| {
                if ui.button(tr(lang, "generate.init_choose")).clicked() {
                    actions.push(Action::Pick(PickPurpose::InitImage));
                }
                ui.label(
                    RichText::new(tr(lang, "generate.init_hint"))
                        .small()
                        .color(palette.muted),
                );
            });
        }
    }
    regions_ui(ui, form, lang, palette);
}

/// The regional prompts (from the canvas's region layers), one line each with a remove button.
fn regions_ui(
    ui: &mut egui::Ui,
    form: &mut crate::gui::form::GenerateForm,
    lang: crate::i18n::Lang,
    palette: Palette,
) {
    let mut removed = None;
    for (index, region) in form.regions.iter().enumerate() {
        let text = tr_args(
            lang,
            "generate.region_line",
            &[("n", &(index + 1)), ("prompt", &region.prompt)],
        );
        // The remove button first: a truncated label takes all the width after it.
        ui.horizontal(|ui| {
            let hint = tr_args(lang, "generate.region_remove", &[("n", &(index + 1))]);
            let button = ui.small_button("✕");
            // Screen readers hear what the button does, not "✕".
            button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &hint));
            if button.on_hover_text(&hint).clicked() {
                removed = Some(index);
            }
            ui.add(egui::Label::new(RichText::new(text).small().color(palette.muted)).truncate())
                .on_hover_text(region.summary());
        });
    }
    if let Some(index) = removed {
        form.regions.remove(index);
    }
}

fn generate_button_ui(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let validity = state.form.to_recipe_with(|| 0);
    let enabled = validity.is_ok();
    ui.horizontal(|ui| {
        let response = primary_button(
            ui,
            tr(lang, "generate.run"),
            enabled,
            ui.available_width() - 96.0,
        );
        let response = match &validity {
            Err(error) => response.on_disabled_hover_text(form_error_text(error, lang)),
            Ok(_) => response.on_hover_text(tr(lang, "generate.run_hint")),
        };
        if response.clicked()
            && let Ok(recipe) = state.form.to_recipe()
        {
            actions.push(Action::Submit(Box::new(recipe)));
        }
        ui.label(
            RichText::new("Ctrl+Enter")
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    });
    if let Err(error) = &validity {
        ui.label(
            RichText::new(form_error_text(error, lang))
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    }
}

/// The message for a form error.
pub fn form_error_text(error: &FormError, lang: Lang) -> String {
    match error {
        FormError::UnknownLora { name } | FormError::MissingLora { name } => {
            tr_args(lang, error.message_key(), &[("name", name)])
        }
        FormError::UnusableLora { name, problem } => tr_args(
            lang,
            error.message_key(),
            &[("name", name), ("problem", problem)],
        ),
        FormError::ControlNetWithoutModel { row }
        | FormError::ControlNetWithoutImage { row }
        | FormError::BadControlRange { row } => tr_args(lang, error.message_key(), &[("row", row)]),
        FormError::MissingFile { path } => {
            tr_args(lang, error.message_key(), &[("path", &path.display())])
        }
        FormError::BadSize { width, height } => tr_args(
            lang,
            error.message_key(),
            &[("width", width), ("height", height)],
        ),
        _ => tr(lang, error.message_key()).to_owned(),
    }
}

fn job_errors_ui(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    for error in &state.jobs.errors {
        palette.error_frame().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
                    if ui.button(tr(lang, "common.dismiss")).clicked() {
                        actions.push(Action::DismissJobError(error.id));
                    }
                    ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
                        ui.label(
                            RichText::new(tr_args(
                                lang,
                                "generate.job_failed",
                                &[("id", &error.id)],
                            ))
                            .strong()
                            .color(palette.error),
                        );
                        ui.add(
                            egui::Label::new(RichText::new(&error.message).color(palette.error))
                                .wrap(),
                        );
                    });
                });
            });
        });
        ui.add_space(8.0);
    }
}

fn viewer_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    // The running job's preview wins over the last result.
    let running_preview = state
        .jobs
        .preview
        .as_ref()
        .filter(|(id, _)| state.jobs.running().is_some_and(|job| job.id == *id))
        .map(|(_, texture)| (texture.id(), texture.size_vec2()));
    let result = state.jobs.selected_result();
    ui.horizontal(|ui| {
        let title = if running_preview.is_some() {
            tr(lang, "generate.preview").to_owned()
        } else if let Some(result) = result {
            tr_args(
                lang,
                "generate.result_line",
                &[
                    ("width", &result.size[0]),
                    ("height", &result.size[1]),
                    ("seed", &result.recipe.seed),
                ],
            )
        } else {
            tr(lang, "generate.result").to_owned()
        };
        ui.label(RichText::new(title).strong());
    });
    if running_preview.is_none()
        && let Some(result) = result
    {
        ui.horizontal_wrapped(|ui| {
            let path = result.path.clone();
            if ui.button(tr(lang, "result.fit")).clicked() {
                state.viewer.fit();
            }
            if ui.button(tr(lang, "result.save_as")).clicked() {
                actions.push(Action::SaveAs(path.clone()));
            }
            if ui.button(tr(lang, "result.copy")).clicked() {
                actions.push(Action::CopyImage(path.clone()));
            }
            if ui.button(tr(lang, "result.open_folder")).clicked() {
                actions.push(Action::OpenFolder(path.clone()));
            }
            if ui.button(tr(lang, "result.use_as_init")).clicked() {
                actions.push(Action::UseAsInit(path.clone()));
            }
            if ui
                .button(tr(lang, "result.to_canvas"))
                .on_hover_text(tr(lang, "result.to_canvas_hint"))
                .clicked()
            {
                actions.push(Action::Canvas(CanvasAction::AddBackground(path.clone())));
            }
            if ui.button(tr(lang, "result.to_video")).clicked() {
                actions.push(Action::ShowSection(crate::gui::state::Section::Video));
                actions.push(Action::Video(
                    crate::gui::state::video::VideoAction::SetImage(path.clone()),
                ));
            }
            if ui.button(tr(lang, "result.reuse")).clicked() {
                actions.push(Action::ReuseSettings(Box::new(result.recipe.clone())));
            }
        });
        for warning in &result.warnings {
            ui.add(
                egui::Label::new(
                    RichText::new(format!("▲ {warning}"))
                        .small()
                        .color(palette.warning),
                )
                .wrap(),
            );
        }
        if state.jobs.results.len() > 1 {
            ui.horizontal_wrapped(|ui| {
                for index in 0..state.jobs.results.len() {
                    let label = format!("{}", index + 1);
                    if ui
                        .add(egui::Button::selectable(state.jobs.selected == index, label).small())
                        .clicked()
                    {
                        state.jobs.selected = index;
                        state.viewer.fit();
                    }
                }
            });
        }
    }
    ui.add_space(4.0);
    let shown = running_preview.or_else(|| {
        state
            .jobs
            .selected_result()
            .map(|r| (r.texture.id(), r.texture.size_vec2()))
    });
    match shown {
        Some((texture, size)) => {
            state.viewer.ui(ui, texture, size);
        }
        None => {
            let size = ui.available_size().max(Vec2::splat(32.0));
            let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
            let painter = ui.painter_at(rect);
            painter.rect_filled(rect, 4.0, palette.canvas);
            let running = state.jobs.running().is_some();
            let text = if running {
                tr(lang, "generate.waiting_for_preview")
            } else {
                tr(lang, "generate.empty_viewer")
            };
            painter.text(
                rect.center() - Vec2::new(0.0, 10.0),
                egui::Align2::CENTER_CENTER,
                text,
                egui::FontId::proportional(16.0),
                palette.muted,
            );
            painter.text(
                rect.center() + Vec2::new(0.0, 14.0),
                egui::Align2::CENTER_CENTER,
                tr(lang, "generate.empty_viewer_hint"),
                egui::FontId::proportional(12.5),
                palette.muted,
            );
        }
    }
}
