//! The Canvas section: tools and layers on the left (brush, eraser, fill, line, colour pick;
//! size, hardness, colour, opacity; layers with visibility and opacity; what to do with the
//! selected layer), the canvas on the right with undo/redo, fit and zoom. The canvas is the
//! generation size. Ctrl+Z undoes, Ctrl+Shift+Z (or Ctrl+Y) redoes; B, E, G, L, I pick tools;
//! [ and ] change the brush size.

use crate::gui::action::{Action, CanvasAction};
use crate::gui::canvas::layer::Layer;
use crate::gui::canvas::text::{TEXT_SIZE_RANGE, TextFont, TextSpec};
use crate::gui::canvas::{LayerKind, Tool};
use crate::gui::form::MAX_SIDE;
use crate::gui::panels::controlnets::preprocessor_key;
use crate::gui::panels::{file_name, generate::fixed_label};
use crate::gui::state::AppState;
use crate::gui::state::canvas::{BRUSH_SIZE_RANGE, layer_name};
use crate::gui::theme::{self, Palette};
use crate::gui::widgets::canvas::canvas_ui;
use crate::i18n::{Lang, tr, tr_args};
use egui::{Key, Modifiers, RichText};

/// Label column width in the tool settings.
const LABEL_WIDTH: f32 = 78.0;

/// The translation key of a tool's name.
pub fn tool_key(tool: Tool) -> &'static str {
    match tool {
        Tool::Brush => "canvas.tool_brush",
        Tool::Eraser => "canvas.tool_eraser",
        Tool::Fill => "canvas.tool_fill",
        Tool::Line => "canvas.tool_line",
        Tool::Picker => "canvas.tool_picker",
        Tool::Text => "canvas.tool_text",
        Tool::Rect => "canvas.tool_box",
    }
}

fn tool_shortcut(tool: Tool) -> Key {
    match tool {
        Tool::Brush => Key::B,
        Tool::Eraser => Key::E,
        Tool::Fill => Key::G,
        Tool::Line => Key::L,
        Tool::Picker => Key::I,
        Tool::Text => Key::T,
        Tool::Rect => Key::R,
    }
}

/// The Canvas section.
pub fn canvas_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let (width, height) = (state.form.width, state.form.height);
    if crate::gui::form::valid_side(width) && crate::gui::form::valid_side(height) {
        state.canvas.document.resize(width, height);
    }
    state.canvas.fix_selection();
    shortcuts(ui, state);
    theme::left_column("canvas-side", theme::CANVAS_SIDE_WIDTH).show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt("canvas-side-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                tools_ui(ui, state);
                text_ui(ui, state);
                region_ui(ui, state);
                ui.add_space(theme::SECTION_GAP);
                layers_ui(ui, state);
                ui.add_space(theme::SECTION_GAP);
                layer_actions_ui(ui, state, actions);
                ui.add_space(theme::SECTION_GAP);
                extend_ui(ui, state, actions);
            });
    });
    let palette = Palette::of_ui(ui);
    egui::CentralPanel::default()
        .frame(egui::Frame::new().fill(palette.panel))
        .show(ui, |ui| {
            toolbar_ui(ui, state);
            ui.add_space(4.0);
            let label = tr(state.lang(), "canvas.title").to_owned();
            canvas_ui(ui, &mut state.canvas, &label);
        });
}

/// Undo, redo, tool keys and brush size keys, unless a text field has the keyboard.
fn shortcuts(ui: &mut egui::Ui, state: &mut AppState) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let canvas = &mut state.canvas;
    let redo = ui.input_mut(|i| {
        i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)
            || i.consume_key(Modifiers::COMMAND, Key::Y)
    });
    if redo {
        canvas.document.redo();
    } else if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::Z)) {
        canvas.document.undo();
    }
    for tool in Tool::ALL {
        if ui.input_mut(|i| i.consume_key(Modifiers::NONE, tool_shortcut(tool))) {
            canvas.tool = tool;
        }
    }
    let (smaller, larger) = ui.input_mut(|i| {
        (
            i.consume_key(Modifiers::NONE, Key::OpenBracket),
            i.consume_key(Modifiers::NONE, Key::CloseBracket),
        )
    });
    let (min, max) = (*BRUSH_SIZE_RANGE.start(), *BRUSH_SIZE_RANGE.end());
    if smaller {
        canvas.brush.size = (canvas.brush.size / 1.25).clamp(min, max);
    }
    if larger {
        canvas.brush.size = (canvas.brush.size * 1.25).clamp(min, max);
    }
}

fn group_title(ui: &mut egui::Ui, text: &str) {
    ui.label(RichText::new(text).strong());
    ui.add_space(2.0);
}

fn setting_row<R>(ui: &mut egui::Ui, label: &str, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.horizontal(|ui| {
        let label = fixed_label(ui, label, LABEL_WIDTH);
        ui.label_inputs_by(label.id, add)
    })
    .inner
}

/// Tool buttons, then the settings of the active tool.
fn tools_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let canvas = &mut state.canvas;
    group_title(ui, tr(lang, "canvas.tools"));
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(4.0, 4.0);
        for tool in Tool::ALL {
            let shortcut = format!("{:?}", tool_shortcut(tool));
            let hint = tr_args(lang, "canvas.tool_hint", &[("key", &shortcut)]);
            if ui
                .add(egui::Button::selectable(
                    canvas.tool == tool,
                    tr(lang, tool_key(tool)),
                ))
                .on_hover_text(hint)
                .clicked()
            {
                canvas.tool = tool;
            }
        }
    });
    ui.add_space(4.0);
    if canvas.tool == Tool::Text {
        return; // The text settings follow.
    }
    let brush = &mut canvas.brush;
    let uses_brush = matches!(canvas.tool, Tool::Brush | Tool::Eraser | Tool::Line);
    if uses_brush {
        setting_row(ui, tr(lang, "canvas.size"), |ui| {
            ui.spacing_mut().slider_width = ui.available_width() - 60.0;
            ui.add(
                egui::Slider::new(&mut brush.size, BRUSH_SIZE_RANGE)
                    .logarithmic(true)
                    .fixed_decimals(0)
                    .suffix(" px"),
            )
        });
        setting_row(ui, tr(lang, "canvas.hardness"), |ui| {
            ui.spacing_mut().slider_width = ui.available_width() - 60.0;
            ui.add(egui::Slider::new(&mut brush.hardness, 0.0..=1.0).fixed_decimals(2))
        });
    }
    if canvas.tool != Tool::Picker {
        setting_row(ui, tr(lang, "canvas.opacity"), |ui| {
            ui.spacing_mut().slider_width = ui.available_width() - 60.0;
            ui.add(egui::Slider::new(&mut brush.opacity, 0.0..=1.0).fixed_decimals(2))
        });
    }
    if canvas.tool == Tool::Fill {
        setting_row(ui, tr(lang, "canvas.tolerance"), |ui| {
            ui.spacing_mut().slider_width = ui.available_width() - 60.0;
            ui.add(egui::Slider::new(&mut canvas.fill_tolerance, 0..=255))
        });
    }
    if canvas.tool != Tool::Eraser {
        let is_mask = canvas
            .selected_layer()
            .is_some_and(|l| l.kind.paints_mask());
        let brush = &mut canvas.brush;
        setting_row(ui, tr(lang, "canvas.color"), |ui| {
            ui.color_edit_button_srgba(&mut brush.color);
            if is_mask {
                ui.label(
                    RichText::new(tr(lang, "canvas.mask_paints_white"))
                        .small()
                        .color(Palette::of_ui(ui).muted),
                );
            }
        });
    }
}

/// The text settings: of the selected text layer (edits are undoable; typing and dragging make
/// one step each), else of new text when the text tool is active.
fn text_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let canvas = &mut state.canvas;
    let selected_text = canvas
        .selected_layer()
        .and_then(|l| l.text().map(|t| (l.id, t.clone())));
    if selected_text.is_none() && canvas.tool != Tool::Text {
        return;
    }
    ui.add_space(4.0);
    let (layer, mut spec) = match selected_text {
        Some((id, spec)) => (Some(id), spec),
        None => (None, canvas.text.clone()),
    };
    let before = spec.clone();
    let edit = ui.add(
        egui::TextEdit::multiline(&mut spec.text)
            .id_salt("canvas-text")
            .desired_rows(2)
            .desired_width(f32::INFINITY)
            .hint_text(tr(lang, "canvas.text_hint")),
    );
    let text_field_done = edit.lost_focus();
    setting_row(ui, tr(lang, "canvas.text_font"), |ui| {
        egui::ComboBox::from_id_salt("canvas-text-font")
            .selected_text(spec.font.name())
            .width(ui.available_width())
            .show_ui(ui, |ui| {
                for font in TextFont::ALL {
                    ui.selectable_value(&mut spec.font, font, font.name());
                }
            })
            .response
    });
    let size = setting_row(ui, tr(lang, "canvas.size"), |ui| {
        ui.spacing_mut().slider_width = ui.available_width() - 60.0;
        ui.add(
            egui::Slider::new(&mut spec.size, TEXT_SIZE_RANGE)
                .logarithmic(true)
                .fixed_decimals(0)
                .suffix(" px"),
        )
    });
    let wrap = setting_row(ui, tr(lang, "canvas.text_wrap"), |ui| {
        ui.add(
            egui::DragValue::new(&mut spec.wrap_width)
                .range(0.0..=f32::from(u16::MAX))
                .speed(4.0)
                .suffix(" px"),
        )
        .on_hover_text(tr(lang, "canvas.text_wrap_hint"))
    });
    let mut color = egui::Color32::from_rgba_unmultiplied(
        spec.color[0],
        spec.color[1],
        spec.color[2],
        spec.color[3],
    );
    let color_edit = setting_row(ui, tr(lang, "canvas.color"), |ui| {
        ui.color_edit_button_srgba(&mut color)
    });
    spec.color = color.to_srgba_unmultiplied();
    ui.checkbox(&mut canvas.keep_text_crisp, tr(lang, "canvas.text_crisp"))
        .on_hover_text(tr(lang, "canvas.text_crisp_hint"));
    if !crate::gui::canvas::text::covers(spec.font, &spec.text) {
        ui.label(
            RichText::new(tr(lang, "canvas.text_missing_glyphs"))
                .small()
                .color(Palette::of_ui(ui).warning),
        );
    }
    // New text takes the look of the text edited last.
    canvas.text = TextSpec {
        text: canvas.text.text.clone(),
        x: 0.0,
        y: 0.0,
        ..spec.clone()
    };
    match layer {
        Some(id) => {
            if spec != before {
                canvas.document.set_text(id, spec, true);
            }
            let released = size.drag_stopped() || wrap.drag_stopped() || color_edit.clicked();
            if text_field_done || released {
                canvas.document.close_text_edit();
            }
        }
        None => canvas.text.text = spec.text,
    }
}

/// The selected region layer's prompt, negative and weight (undoable; typing and dragging
/// make one step each).
fn region_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let canvas = &mut state.canvas;
    let Some((id, before)) = canvas
        .selected_layer()
        .and_then(|l| Some((l.id, l.region()?.clone())))
    else {
        return;
    };
    ui.add_space(4.0);
    let mut region = before.clone();
    let prompt_label = ui.label(tr(lang, "canvas.region_prompt"));
    let prompt = ui
        .add(
            egui::TextEdit::multiline(&mut region.prompt)
                .id_salt("canvas-region-prompt")
                .desired_rows(2)
                .desired_width(f32::INFINITY)
                .hint_text(tr(lang, "canvas.region_prompt_hint")),
        )
        .labelled_by(prompt_label.id);
    let negative_label = ui.label(tr(lang, "canvas.region_negative"));
    let negative = ui
        .add(
            egui::TextEdit::singleline(&mut region.negative)
                .id_salt("canvas-region-negative")
                .desired_width(f32::INFINITY)
                .hint_text(tr(lang, "canvas.region_negative_hint")),
        )
        .labelled_by(negative_label.id);
    let weight = setting_row(ui, tr(lang, "canvas.region_weight"), |ui| {
        ui.spacing_mut().slider_width = ui.available_width() - 60.0;
        ui.add(egui::Slider::new(&mut region.weight, 0.0..=1.0).fixed_decimals(2))
            .on_hover_text(tr(lang, "canvas.region_weight_hint"))
    });
    if !region.is_usable() {
        ui.label(
            RichText::new(tr(lang, "canvas.region_needs_prompt"))
                .small()
                .color(Palette::of_ui(ui).muted),
        );
    }
    if region != before {
        canvas.document.set_region(id, region, true);
    }
    if prompt.lost_focus() || negative.lost_focus() || weight.drag_stopped() {
        canvas.document.close_text_edit();
    }
}

/// Extend: pixels to add per side and the overlap band, and the button that grows the canvas
/// and sets up the outpainting job.
fn extend_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    group_title(ui, tr(lang, "canvas.extend"));
    let extend = &mut state.canvas.extend;
    let (width, height) = state.canvas.document.size();
    egui::Grid::new("canvas-extend")
        .num_columns(4)
        .spacing(egui::vec2(6.0, 4.0))
        .show(ui, |ui| {
            let side = |ui: &mut egui::Ui, key: &str, value: &mut u32| {
                let label = ui.label(tr(lang, key));
                ui.add(
                    egui::DragValue::new(value)
                        .range(0..=MAX_SIDE)
                        .speed(8.0)
                        .suffix(" px"),
                )
                .labelled_by(label.id);
                // Whole latent pixels keep the canvas a valid generation size.
                *value = value.div_ceil(8) * 8;
            };
            side(ui, "canvas.extend_left", &mut extend.left);
            side(ui, "canvas.extend_right", &mut extend.right);
            ui.end_row();
            side(ui, "canvas.extend_top", &mut extend.top);
            side(ui, "canvas.extend_bottom", &mut extend.bottom);
            ui.end_row();
            let label = ui.label(tr(lang, "canvas.extend_overlap"));
            ui.add(
                egui::DragValue::new(&mut extend.overlap)
                    .range(0..=256)
                    .speed(1.0)
                    .suffix(" px"),
            )
            .labelled_by(label.id)
            .on_hover_text(tr(lang, "canvas.extend_overlap_hint"));
            ui.end_row();
        });
    let new_width = width + extend.left + extend.right;
    let new_height = height + extend.top + extend.bottom;
    let grows = new_width > width || new_height > height;
    let fits = new_width <= MAX_SIDE && new_height <= MAX_SIDE;
    ui.label(
        RichText::new(tr_args(
            lang,
            "canvas.extend_size",
            &[("width", &new_width), ("height", &new_height)],
        ))
        .small()
        .color(if fits { palette.muted } else { palette.warning }),
    );
    let full = egui::vec2(ui.available_width(), 26.0);
    if ui
        .add_enabled(
            grows && fits,
            egui::Button::new(tr(lang, "canvas.extend_run")).min_size(full),
        )
        .on_hover_text(tr(lang, "canvas.extend_hint"))
        .clicked()
    {
        actions.push(Action::Canvas(CanvasAction::Extend(*extend)));
    }
}

/// The layer list, top layer first, and the buttons that add layers.
fn layers_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "canvas.layers")).strong());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.menu_button(tr(lang, "canvas.add_layer"), |ui| {
                if ui.button(tr(lang, "canvas.layer_sketch")).clicked() {
                    let id = state.canvas.document.add_layer(LayerKind::Sketch);
                    state.canvas.selected = Some(id);
                    ui.close();
                }
                if ui.button(tr(lang, "canvas.layer_text")).clicked() {
                    let (width, height) = state.canvas.document.size();
                    let mut spec = state.canvas.text.clone();
                    if spec.text.trim().is_empty() {
                        spec.text = "Kiln".to_owned();
                    }
                    (spec.x, spec.y) = ((width / 10) as f32, (height / 10) as f32);
                    let id = state.canvas.document.add_text(spec);
                    state.canvas.selected = Some(id);
                    state.canvas.tool = Tool::Text;
                    ui.close();
                }
                if ui
                    .button(tr(lang, "canvas.layer_region"))
                    .on_hover_text(tr(lang, "canvas.layer_region_hint"))
                    .clicked()
                {
                    let id = state.canvas.document.add_region();
                    state.canvas.selected = Some(id);
                    if !matches!(state.canvas.tool, Tool::Brush | Tool::Eraser | Tool::Fill)
                        && state.canvas.tool != Tool::Rect
                    {
                        state.canvas.tool = Tool::Brush;
                    }
                    ui.close();
                }
                if ui.button(tr(lang, "canvas.layer_background")).clicked() {
                    let id = state.canvas.document.add_layer(LayerKind::Background);
                    state.canvas.selected = Some(id);
                    ui.close();
                }
                if ui
                    .button(tr(lang, "canvas.layer_guide_new"))
                    .on_hover_text(tr(lang, "canvas.layer_guide_new_hint"))
                    .clicked()
                {
                    // The guide layer follows the new ControlNet row.
                    state.form.add_control();
                    ui.close();
                }
            });
        });
    });
    let rows = state.form.controls.clone();
    let canvas = &mut state.canvas;
    let mut removed = None;
    let selected = canvas.selected;
    let count = canvas.document.layers().len();
    for index in (0..count).rev() {
        let Some(layer) = canvas.document.layers_mut().get_mut(index) else {
            continue;
        };
        let name = layer_name(layer, lang, &rows);
        let frame = if selected == Some(layer.id) {
            egui::Frame::new()
                .fill(palette.card)
                .stroke(egui::Stroke::new(1.0, palette.accent))
                .corner_radius(theme::RADIUS)
                .inner_margin(egui::Margin::symmetric(6, 3))
        } else {
            egui::Frame::new()
                .fill(palette.card)
                .stroke(egui::Stroke::new(1.0, palette.card_stroke))
                .corner_radius(theme::RADIUS)
                .inner_margin(egui::Margin::symmetric(6, 3))
        };
        let row = frame.show(ui, |ui| {
            ui.set_width(ui.available_width());
            layer_row_ui(ui, layer, &name, selected == Some(layer.id), lang)
        });
        match row.inner {
            LayerRowEvent::Select => canvas.selected = Some(layer.id),
            LayerRowEvent::Remove => removed = Some(layer.id),
            LayerRowEvent::None => {}
        }
        if let Some(error) = &layer.guide_error {
            ui.label(
                RichText::new(format!("▲ {error}"))
                    .small()
                    .color(palette.warning),
            );
        }
        ui.add_space(2.0);
    }
    if let Some(id) = removed {
        canvas.document.remove_layer(id);
        canvas.fix_selection();
    }
}

/// What a click on a layer row asked for.
enum LayerRowEvent {
    None,
    Select,
    Remove,
}

/// One layer: visibility, name (click selects), opacity, remove.
fn layer_row_ui(
    ui: &mut egui::Ui,
    layer: &mut Layer,
    name: &str,
    selected: bool,
    lang: Lang,
) -> LayerRowEvent {
    let mut event = LayerRowEvent::None;
    ui.horizontal(|ui| {
        ui.checkbox(&mut layer.visible, "").on_hover_text(tr_args(
            lang,
            "canvas.visible_hint",
            &[("layer", &name)],
        ));
        // Remove and opacity at the right end, the name in the space between.
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let removable = !matches!(layer.kind, LayerKind::Guide { .. });
            if ui
                .add_enabled(removable, egui::Button::new("✕").small())
                .on_hover_text(tr_args(lang, "canvas.remove_layer", &[("layer", &name)]))
                .on_disabled_hover_text(tr(lang, "canvas.guide_follows_row"))
                .clicked()
            {
                event = LayerRowEvent::Remove;
            }
            let mut percent = (layer.opacity * 100.0).round();
            let opacity = ui
                .add_sized(
                    egui::vec2(54.0, ui.spacing().interact_size.y),
                    egui::DragValue::new(&mut percent)
                        .range(0.0..=100.0)
                        .speed(1.0)
                        .suffix("%"),
                )
                .on_hover_text(tr_args(lang, "canvas.opacity_hint", &[("layer", &name)]));
            if opacity.changed() {
                layer.opacity = percent / 100.0;
            }
            if layer_name_ui(ui, name, selected).clicked() {
                event = LayerRowEvent::Select;
            }
        });
    });
    event
}

/// A layer's name filling the space left, left-aligned, clickable (a button for screen readers).
fn layer_name_ui(ui: &mut egui::Ui, name: &str, selected: bool) -> egui::Response {
    let palette = Palette::of_ui(ui);
    let size = egui::vec2(ui.available_width(), ui.spacing().interact_size.y);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, selected, name));
    if response.hovered() {
        ui.painter()
            .rect_filled(rect, theme::RADIUS, palette.card_stroke);
    }
    let font = egui::TextStyle::Body.resolve(ui.style());
    let color = if selected {
        ui.visuals().strong_text_color()
    } else {
        ui.visuals().text_color()
    };
    let galley = ui
        .painter()
        .layout(name.to_owned(), font, color, rect.width() - 8.0);
    let pos = egui::pos2(rect.left() + 4.0, rect.center().y - galley.size().y / 2.0);
    ui.painter().with_clip_rect(rect).galley(pos, galley, color);
    response.on_hover_cursor(egui::CursorIcon::PointingHand)
}

/// What to do with the selected layer.
fn layer_actions_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let Some(layer) = state.canvas.selected_layer() else {
        return;
    };
    let (id, kind) = (layer.id, layer.kind);
    let name = layer_name(layer, lang, &state.form.controls);
    group_title(
        ui,
        &tr_args(lang, "canvas.selected_layer", &[("layer", &name)]),
    );
    if let (LayerKind::Guide { row }, Some(source)) = (kind, &layer.guide_source)
        && let Some(index) = state.form.controls.iter().position(|r| r.id == row)
    {
        ui.label(
            RichText::new(tr_args(
                lang,
                "canvas.guide_shows",
                &[
                    ("row", &(index + 1)),
                    ("file", &file_name(&source.image)),
                    ("pre", &tr(lang, preprocessor_key(source.preprocessor))),
                ],
            ))
            .small()
            .color(palette.muted),
        );
    }
    let full = egui::vec2(ui.available_width(), 26.0);
    if kind == LayerKind::Region
        && ui
            .add(egui::Button::new(tr(lang, "canvas.use_regions")).min_size(full))
            .on_hover_text(tr(lang, "canvas.use_regions_hint"))
            .clicked()
    {
        actions.push(Action::Canvas(CanvasAction::UseRegions));
    }
    if ui
        .add(egui::Button::new(tr(lang, "canvas.use_as_init")).min_size(full))
        .on_hover_text(tr(lang, "canvas.use_as_init_hint"))
        .clicked()
    {
        actions.push(Action::Canvas(CanvasAction::UseAsInit(id)));
    }
    let rows: Vec<(u64, String)> = state
        .form
        .controls
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let model = if row.label.is_empty() {
                tr(lang, "controlnet.choose_model").to_owned()
            } else {
                row.label.clone()
            };
            (
                row.id,
                format!(
                    "{} · {model}",
                    tr_args(lang, "controlnet.row_title", &[("row", &(index + 1))])
                ),
            )
        })
        .collect();
    let guide_button = egui::Button::new(tr(lang, "canvas.use_as_guide")).min_size(full);
    let (guide_response, _) =
        egui::containers::menu::MenuButton::from_button(guide_button).ui(ui, |ui| {
            ui.set_min_width(240.0);
            for (row, label) in &rows {
                if ui.button(label).clicked() {
                    actions.push(Action::Canvas(CanvasAction::UseAsGuide {
                        layer: id,
                        row: Some(*row),
                    }));
                    ui.close();
                }
            }
            if ui.button(tr(lang, "canvas.new_controlnet")).clicked() {
                actions.push(Action::Canvas(CanvasAction::UseAsGuide {
                    layer: id,
                    row: None,
                }));
                ui.close();
            }
        });
    guide_response.on_hover_text(tr(lang, "canvas.use_as_guide_hint"));
    if ui
        .add(egui::Button::new(tr(lang, "canvas.use_as_mask")).min_size(full))
        .on_hover_text(tr(lang, "canvas.use_as_mask_hint"))
        .clicked()
    {
        actions.push(Action::Canvas(CanvasAction::UseAsMask(id)));
    }
    ui.add_space(6.0);
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(4.0, 4.0);
        if ui.button(tr(lang, "canvas.import")).clicked() {
            actions.push(Action::Canvas(CanvasAction::Import(id)));
        }
        if ui.button(tr(lang, "canvas.export")).clicked() {
            actions.push(Action::Canvas(CanvasAction::Export(id)));
        }
        if ui.button(tr(lang, "canvas.clear")).clicked() {
            state.canvas.document.clear_layer(id);
        }
    });
}

/// Undo, redo, fit, zoom, and the canvas size.
fn toolbar_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    let canvas = &mut state.canvas;
    ui.horizontal(|ui| {
        let history = canvas.document.history();
        let (undo_steps, redo_steps) = (history.undo_steps(), history.redo_steps());
        if ui
            .add_enabled(undo_steps > 0, egui::Button::new(tr(lang, "canvas.undo")))
            .on_hover_text("Ctrl+Z")
            .clicked()
        {
            canvas.document.undo();
        }
        if ui
            .add_enabled(redo_steps > 0, egui::Button::new(tr(lang, "canvas.redo")))
            .on_hover_text("Ctrl+Shift+Z")
            .clicked()
        {
            canvas.document.redo();
        }
        ui.separator();
        if ui.button(tr(lang, "canvas.fit")).clicked() {
            canvas.view.fit();
        }
        let (width, height) = canvas.document.size();
        let zoom = canvas.view.shown_zoom(width) * ui.ctx().pixels_per_point();
        ui.label(
            RichText::new(format!("{:.0}%", zoom * 100.0))
                .small()
                .color(palette.muted),
        );
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.label(
                RichText::new(tr_args(
                    lang,
                    "canvas.size_line",
                    &[("width", &width), ("height", &height)],
                ))
                .small()
                .color(palette.muted),
            )
            .on_hover_text(tr(lang, "canvas.size_hint"));
        });
    });
}
