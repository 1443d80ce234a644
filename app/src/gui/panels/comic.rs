//! The Comic section (issue 10): a story script becomes a page. Left: the script editor (its
//! error with the line number as you type), the character cards read from it (a reference
//! photo picked or dropped is written back into the card's line), the preset and layout pickers
//! (they edit the script's `preset:` and `layout:` lines) and Generate. Right: the panels
//! (thumbnail, caption, progress, drift score with outliers flagged, Regenerate, drag or ▲/▼ to
//! reorder, which moves the panel lines in the script), the page preview and the exports.

use crate::comic::edit::set_setting;
use crate::comic::layout::Template;
use crate::gui::action::Action;
use crate::gui::panels::settings::card;
use crate::gui::panels::{heading_ui, human_duration, primary_button};
use crate::gui::state::AppState;
use crate::gui::state::comic::{ComicAction, ComicState};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::settings::Language;
use egui::RichText;

/// Side of a panel thumbnail in the list.
const THUMB: f32 = 88.0;
/// Width of the page preview column.
const PAGE_COLUMN: f32 = 330.0;

/// The Comic section.
pub fn comic_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    heading_ui(
        ui,
        tr(lang, "comic.title"),
        Some(tr(lang, "comic.subtitle")),
    );
    egui::Panel::left("comic-script")
        .exact_size(theme::FORM_WIDTH + 40.0)
        .resizable(false)
        .frame(egui::Frame::new())
        .show(ui, |ui| {
            // Generate stays in view below the scrolling script and cards.
            egui::Panel::bottom("comic-generate")
                .frame(egui::Frame::new().inner_margin(egui::Margin::symmetric(0, 8)))
                .show(ui, |ui| generate_ui(ui, &state.comic, lang, actions));
            egui::ScrollArea::vertical()
                .id_salt("comic-script-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| script_ui(ui, state, lang, actions));
        });
    egui::CentralPanel::default()
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 12,
            ..Default::default()
        }))
        .show(ui, |ui| {
            egui::Panel::right("comic-page")
                .exact_size(PAGE_COLUMN)
                .resizable(false)
                .frame(egui::Frame::new().inner_margin(egui::Margin {
                    left: 12,
                    ..Default::default()
                }))
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("comic-page-scroll")
                        .auto_shrink([false, false])
                        .show(ui, |ui| page_ui(ui, &state.comic, lang, actions));
                });
            egui::ScrollArea::vertical()
                .id_salt("comic-panels-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| panels_ui(ui, &mut state.comic, lang, actions));
        });
}

fn script_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let language = state.settings.language;
    card(ui, tr(lang, "comic.script"), |ui| {
        let comic = &mut state.comic;
        let editor = egui::TextEdit::multiline(&mut comic.script)
            .id_salt("comic-script-editor")
            .font(egui::TextStyle::Monospace)
            .code_editor()
            .desired_rows(14)
            .desired_width(f32::INFINITY);
        let response = ui.add(editor);
        if response.changed() {
            comic.reparse();
        }
        match &comic.parsed {
            Ok(story) => {
                ui.label(
                    RichText::new(tr_args(
                        lang,
                        "comic.parsed",
                        &[
                            ("panels", &story.panels.len()),
                            ("characters", &story.characters.len()),
                        ],
                    ))
                    .small()
                    .color(palette.muted),
                );
            }
            Err(error) => {
                palette.error_frame().show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(
                        RichText::new(tr_args(
                            lang,
                            "comic.script_error",
                            &[("line", &error.line), ("message", &error.message)],
                        ))
                        .color(palette.error),
                    );
                });
            }
        }
    });
    characters_ui(ui, &mut state.comic, lang, actions);
    card(ui, tr(lang, "comic.style"), |ui| {
        style_ui(ui, state, lang, language);
    });
}

fn characters_ui(ui: &mut egui::Ui, comic: &mut ComicState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    comic.card_rects.clear();
    let Some(story) = &comic.story else { return };
    if story.characters.is_empty() {
        return;
    }
    let mut rects = Vec::new();
    card(ui, tr(lang, "comic.characters"), |ui| {
        for character in &story.characters {
            let inner = palette
                .card_frame()
                .inner_margin(egui::Margin::same(8))
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(RichText::new(&character.name).strong());
                    ui.add(egui::Label::new(&character.description).wrap());
                    ui.horizontal(|ui| {
                        match &character.photo {
                            Some(photo) => {
                                ui.label(
                                    RichText::new(crate::gui::panels::file_name(photo))
                                        .monospace()
                                        .small(),
                                );
                                if ui.small_button(tr(lang, "common.remove")).clicked() {
                                    actions.push(Action::Comic(ComicAction::ClearPhoto(
                                        character.name.clone(),
                                    )));
                                }
                            }
                            None => {
                                ui.label(
                                    RichText::new(tr(lang, "comic.no_photo"))
                                        .small()
                                        .color(palette.muted),
                                );
                            }
                        }
                        if ui.small_button(tr(lang, "comic.pick_photo")).clicked() {
                            actions.push(Action::Comic(ComicAction::PickPhoto(
                                character.name.clone(),
                            )));
                        }
                    });
                });
            rects.push((character.name.clone(), inner.response.rect));
            ui.add_space(4.0);
        }
        ui.label(
            RichText::new(tr(lang, "comic.photo_hint"))
                .small()
                .color(palette.muted),
        );
    });
    comic.card_rects = rects;
}

fn style_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, language: Language) {
    let palette = Palette::of_ui(ui);
    let (preset, layout) = match &state.comic.story {
        Some(story) => (story.preset.clone(), story.layout.clone()),
        None => (None, None),
    };
    let mut new_preset = preset.clone();
    let selected = match &preset {
        None => tr(lang, "comic.preset_form").to_owned(),
        Some(id) => state
            .presets
            .entry(id)
            .map_or_else(|| id.clone(), |e| e.name(language).to_owned()),
    };
    ui.horizontal(|ui| {
        ui.label(tr(lang, "comic.preset"));
        egui::ComboBox::from_id_salt("comic-preset")
            .selected_text(selected)
            .width(ui.available_width() - 8.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut new_preset, None, tr(lang, "comic.preset_form"));
                for entry in &state.presets.entries {
                    ui.selectable_value(
                        &mut new_preset,
                        Some(entry.id().to_owned()),
                        entry.name(language),
                    );
                }
            });
    });
    if preset.is_none() {
        ui.label(
            RichText::new(tr(lang, "comic.form_hint"))
                .small()
                .color(palette.muted),
        );
    }
    let mut new_layout = layout.clone();
    ui.horizontal(|ui| {
        ui.label(tr(lang, "comic.layout"));
        egui::ComboBox::from_id_salt("comic-layout")
            .selected_text(
                layout
                    .clone()
                    .unwrap_or_else(|| tr(lang, "comic.layout_auto").to_owned()),
            )
            .width(ui.available_width() - 8.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut new_layout, None, tr(lang, "comic.layout_auto"));
                let panels = state.comic.story.as_ref().map_or(0, |s| s.panels.len());
                for name in Template::NAMES {
                    let fits = Template::by_name(name).is_some_and(|t| t.capacity() >= panels);
                    ui.add_enabled_ui(fits, |ui| {
                        ui.selectable_value(&mut new_layout, Some((*name).to_owned()), *name);
                    });
                }
            });
    });
    let comic = &mut state.comic;
    if new_preset != preset {
        let text = set_setting(&comic.script, "preset", new_preset.as_deref());
        comic.set_script(text);
    }
    if new_layout != layout {
        let text = set_setting(&comic.script, "layout", new_layout.as_deref());
        comic.set_script(text);
    }
}

fn generate_ui(ui: &mut egui::Ui, comic: &ComicState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let busy = comic.busy();
    ui.horizontal(|ui| {
        let enabled = comic.parsed.is_ok() && !busy;
        let response = primary_button(ui, tr(lang, "comic.generate"), enabled, 160.0);
        let response = match &comic.parsed {
            Err(error) => response.on_disabled_hover_text(tr_args(
                lang,
                "comic.script_error",
                &[("line", &error.line), ("message", &error.message)],
            )),
            Ok(_) => response,
        };
        if response.clicked() && enabled {
            actions.push(Action::Comic(ComicAction::Generate));
        }
        if busy && ui.button(tr(lang, "comic.cancel")).clicked() {
            actions.push(Action::Comic(ComicAction::Cancel));
        }
    });
    if let Some(run) = comic.run.as_ref().filter(|r| !r.ended) {
        let text = match (&run.step, run.eta()) {
            (Some(report), Some(eta)) => tr_args(
                lang,
                "comic.progress_eta",
                &[
                    ("done", &report.done),
                    ("total", &report.total),
                    ("step", &report.step),
                    ("steps", &report.steps),
                    ("eta", &human_duration(eta)),
                ],
            ),
            (Some(report), None) => tr_args(
                lang,
                "comic.progress",
                &[
                    ("done", &report.done),
                    ("total", &report.total),
                    ("step", &report.step),
                    ("steps", &report.steps),
                ],
            ),
            (None, _) => tr(lang, "comic.starting").to_owned(),
        };
        ui.add(egui::ProgressBar::new(run.fraction()).text(text));
    }
    if let Some(error) = &comic.error {
        ui.label(RichText::new(error).color(palette.error));
    }
    for warning in &comic.warnings {
        ui.label(RichText::new(warning).small().color(palette.warning));
    }
}

fn panels_ui(ui: &mut egui::Ui, comic: &mut ComicState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let Some(story) = comic.story.clone() else {
        return;
    };
    ui.label(RichText::new(tr(lang, "comic.panels")).strong().size(15.0));
    ui.add_space(4.0);
    let busy = comic.busy();
    let count = story.panels.len();
    for (k, panel) in story.panels.iter().enumerate() {
        let Some(view) = comic.panels.get(k) else {
            continue;
        };
        let frame = palette.card_frame().inner_margin(egui::Margin::same(8));
        let (_, payload) = ui.dnd_drop_zone::<usize, _>(frame, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                let handle = ui
                    .dnd_drag_source(egui::Id::unique(("comic-panel-drag", k)), k, |ui| {
                        ui.label(RichText::new("↕").size(18.0).color(palette.muted));
                    })
                    .response;
                handle.on_hover_text(tr(lang, "comic.drag_hint"));
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(THUMB, THUMB), egui::Sense::hover());
                ui.painter().rect_filled(rect, 4.0, palette.canvas);
                if let Some(texture) = &view.texture {
                    let size = texture.size_vec2();
                    let scale = (THUMB / size.x.max(size.y).max(1.0)).min(THUMB);
                    let fitted = egui::Rect::from_center_size(rect.center(), size * scale);
                    ui.painter().image(
                        texture.id(),
                        fitted,
                        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                        egui::Color32::WHITE,
                    );
                }
                ui.vertical(|ui| {
                    ui.label(
                        RichText::new(tr_args(lang, "comic.panel", &[("number", &(k + 1))]))
                            .strong(),
                    );
                    ui.add(
                        egui::Label::new(RichText::new(story.panel_prompt(panel)).small()).wrap(),
                    );
                    let annotation = [panel.caption.as_deref(), panel.speech.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" · ");
                    if !annotation.is_empty() {
                        ui.label(RichText::new(annotation).italics().small());
                    }
                    let step = comic.run.as_ref().and_then(|r| r.panel_step(k));
                    if let Some((step, steps)) = step {
                        ui.add(
                            egui::ProgressBar::new(step as f32 / steps.max(1) as f32)
                                .desired_width(180.0)
                                .text(tr_args(
                                    lang,
                                    "comic.panel_step",
                                    &[("step", &step), ("steps", &steps)],
                                )),
                        );
                    }
                    ui.horizontal(|ui| {
                        if let Some(recipe) = &view.recipe {
                            ui.label(
                                RichText::new(tr_args(
                                    lang,
                                    "comic.seed",
                                    &[("seed", &recipe.seed)],
                                ))
                                .small()
                                .color(palette.muted),
                            );
                        }
                        if let Some(score) = view.score {
                            let text =
                                tr_args(lang, "comic.score", &[("score", &format!("{score:.3}"))]);
                            if view.outlier {
                                ui.label(
                                    RichText::new(format!("▲ {text}"))
                                        .small()
                                        .color(palette.warning),
                                )
                                .on_hover_text(tr(lang, "comic.outlier"));
                            } else {
                                ui.label(RichText::new(text).small().color(palette.success));
                            }
                        }
                        if let Some(identity) = view.identity {
                            let text = tr_args(
                                lang,
                                "comic.identity",
                                &[("score", &format!("{identity:.3}"))],
                            );
                            ui.label(RichText::new(text).small().color(palette.muted))
                                .on_hover_text(tr(lang, "comic.identity_hint"));
                        }
                    });
                    ui.horizontal(|ui| {
                        let can_regenerate = !busy && view.image.is_some();
                        if ui
                            .add_enabled(
                                can_regenerate,
                                egui::Button::new(tr(lang, "comic.regenerate")),
                            )
                            .clicked()
                        {
                            actions.push(Action::Comic(ComicAction::Regenerate(k)));
                        }
                        if ui
                            .add_enabled(k > 0 && !busy, egui::Button::new("▲").small())
                            .on_hover_text(tr(lang, "comic.move_up"))
                            .clicked()
                        {
                            actions.push(Action::Comic(ComicAction::Move { from: k, to: k - 1 }));
                        }
                        if ui
                            .add_enabled(k + 1 < count && !busy, egui::Button::new("▼").small())
                            .on_hover_text(tr(lang, "comic.move_down"))
                            .clicked()
                        {
                            actions.push(Action::Comic(ComicAction::Move { from: k, to: k + 1 }));
                        }
                    });
                });
            });
        });
        if let Some(from) = payload
            && !busy
        {
            actions.push(Action::Comic(ComicAction::Move { from: *from, to: k }));
        }
        ui.add_space(4.0);
    }
}

fn page_ui(ui: &mut egui::Ui, comic: &ComicState, lang: Lang, actions: &mut Vec<Action>) {
    ui.label(RichText::new(tr(lang, "comic.page")).strong().size(15.0));
    ui.add_space(4.0);
    if let Some(page) = &comic.page {
        let size = page.size_vec2();
        let width = ui.available_width().min(size.x.max(1.0));
        let height = width * size.y / size.x.max(1.0);
        ui.add(egui::Image::new((page.id(), egui::vec2(width, height))));
    }
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        let enabled = !comic.exporting && comic.page.is_some();
        if ui
            .add_enabled(enabled, egui::Button::new(tr(lang, "comic.export_png")))
            .clicked()
        {
            actions.push(Action::Comic(ComicAction::ExportPng));
        }
        if ui
            .add_enabled(enabled, egui::Button::new(tr(lang, "comic.export_pdf")))
            .clicked()
        {
            actions.push(Action::Comic(ComicAction::ExportPdf));
        }
    });
}
