//! The Batch section: a folder of photos (or dropped files) through a style preset or the
//! Generate form's settings. Left: what to run and how; right: the running batch (overall and
//! per-file progress, ETA, pause/resume/cancel), a grid of finished results and the failed files
//! with their reasons. Outputs go to a sibling `<folder>-kiln`; nothing is ever overwritten, and
//! running the same batch again continues where it stopped.

use crate::gui::action::{Action, BatchAction};
use crate::gui::panels::settings::{card, row};
use crate::gui::panels::{file_name, heading_ui, human_duration, primary_button};
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::AppState;
use crate::gui::state::batch::{BatchRun, BatchStyle};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use egui::RichText;

/// Side of a result cell in the grid.
const RESULT_CELL: f32 = 112.0;

/// The Batch section.
pub fn batch_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    heading_ui(
        ui,
        tr(lang, "batch.title"),
        Some(tr(lang, "batch.subtitle")),
    );
    egui::Panel::left("batch-setup")
        .exact_size(theme::FORM_WIDTH + 60.0)
        .resizable(false)
        .frame(egui::Frame::new())
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("batch-setup-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| setup_ui(ui, state, lang, actions));
        });
    egui::CentralPanel::default()
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 12,
            ..Default::default()
        }))
        .show(ui, |ui| match &state.batch.run {
            Some(run) => run_ui(ui, run, state.jobs.progress.as_ref(), lang, actions),
            None => {
                let palette = Palette::of_ui(ui);
                ui.add_space(40.0);
                ui.vertical_centered(|ui| {
                    ui.label(
                        RichText::new(tr(lang, "batch.empty"))
                            .size(16.0)
                            .color(palette.muted),
                    );
                });
            }
        });
}

fn setup_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let language = state.settings.language;
    card(ui, tr(lang, "batch.input"), |ui| {
        let batch = &state.batch;
        let text = match (&batch.input, batch.selection_len()) {
            (None, _) => tr(lang, "batch.no_input").to_owned(),
            (Some(dir), None) => dir.display().to_string(),
            (Some(dir), Some(count)) => tr_args(
                lang,
                "batch.selection",
                &[("count", &count), ("folder", &dir.display())],
            ),
        };
        ui.add(egui::Label::new(RichText::new(text).monospace()).wrap());
        ui.horizontal(|ui| {
            if ui.button(tr(lang, "batch.pick_input")).clicked() {
                actions.push(Action::Pick(PickPurpose::BatchInput));
            }
            ui.label(
                RichText::new(tr(lang, "batch.drop_hint"))
                    .small()
                    .color(palette.muted),
            );
        });
    });
    card(ui, tr(lang, "batch.style"), |ui| {
        let selected = match &state.batch.style {
            BatchStyle::Form => tr(lang, "batch.style_form").to_owned(),
            BatchStyle::Preset(id) => state
                .presets
                .entry(id)
                .map_or_else(|| id.clone(), |e| e.name(language).to_owned()),
        };
        egui::ComboBox::from_id_salt("batch-style")
            .selected_text(selected)
            .width(ui.available_width() - 8.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(
                    &mut state.batch.style,
                    BatchStyle::Form,
                    tr(lang, "batch.style_form"),
                );
                for entry in &state.presets.entries {
                    ui.selectable_value(
                        &mut state.batch.style,
                        BatchStyle::Preset(entry.id().to_owned()),
                        entry.name(language),
                    );
                }
            });
        let batch = &mut state.batch;
        match &batch.style {
            BatchStyle::Form => {
                ui.label(
                    RichText::new(tr(lang, "batch.form_hint"))
                        .small()
                        .color(palette.muted),
                );
            }
            BatchStyle::Preset(id) => {
                let captions = state.presets.entry(id).is_some_and(|e| {
                    e.preset
                        .image
                        .as_ref()
                        .is_some_and(|i| i.auto_caption.is_some())
                });
                if captions {
                    ui.checkbox(&mut batch.auto_caption, tr(lang, "batch.auto_caption"));
                }
                let caption_on = captions && batch.auto_caption;
                ui.add_enabled(
                    !caption_on,
                    egui::TextEdit::singleline(&mut batch.prompt)
                        .hint_text(tr(lang, "batch.prompt_hint"))
                        .desired_width(f32::INFINITY),
                );
            }
        }
    });
    card(ui, tr(lang, "batch.options"), |ui| {
        let batch = &mut state.batch;
        ui.checkbox(&mut batch.keep_aspect, tr(lang, "batch.keep_aspect"))
            .on_hover_text(tr(lang, "batch.keep_aspect_hint"));
        ui.horizontal(|ui| {
            ui.checkbox(&mut batch.fixed_seed, tr(lang, "batch.fixed_seed"));
            ui.add_enabled(batch.fixed_seed, egui::DragValue::new(&mut batch.seed));
        });
        ui.checkbox(&mut batch.watch, tr(lang, "batch.watch"))
            .on_hover_text(tr(lang, "batch.watch_hint"));
        ui.checkbox(&mut batch.keep_faces, tr(lang, "batch.keep_faces"))
            .on_hover_text(tr(lang, "batch.keep_faces_hint"));
        if batch.keep_faces {
            ui.add(
                egui::Slider::new(&mut batch.face_strength, 0.0..=1.5)
                    .text(tr(lang, "batch.face_strength")),
            );
        }
        ui.add_space(4.0);
        row(ui, tr(lang, "batch.output"), |ui| {
            let text = match (&batch.output, &batch.input) {
                (Some(dir), _) => dir.display().to_string(),
                (None, Some(input)) => crate::batch::default_output(input).display().to_string(),
                (None, None) => tr(lang, "batch.output_default").to_owned(),
            };
            ui.add(egui::Label::new(RichText::new(text).monospace().small()).wrap());
        });
        ui.horizontal(|ui| {
            if ui.button(tr(lang, "common.change")).clicked() {
                actions.push(Action::Pick(PickPurpose::BatchOutput));
            }
            if batch.output.is_some() && ui.button(tr(lang, "batch.output_reset")).clicked() {
                batch.output = None;
            }
        });
    });
    let can_start = state.batch.input.is_some() && !state.batch.active();
    if primary_button(ui, tr(lang, "batch.start"), can_start, ui.available_width()).clicked() {
        actions.push(Action::Batch(BatchAction::Start));
    }
    ui.label(
        RichText::new(tr(lang, "batch.safe_hint"))
            .small()
            .color(palette.muted),
    );
}

fn run_ui(
    ui: &mut egui::Ui,
    run: &BatchRun,
    job_progress: Option<&crate::gui::state::jobs::JobProgress>,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    ui.horizontal(|ui| {
        ui.label(RichText::new(file_name(&run.input)).strong().size(16.0));
        if let Some(output) = &run.output {
            ui.label(RichText::new("→").color(palette.muted));
            ui.label(RichText::new(file_name(output)).strong().size(16.0));
        }
    });
    let counts = tr_args(
        lang,
        "batch.counts",
        &[
            ("done", &run.done),
            ("skipped", &run.skipped),
            ("failed", &run.failed.len()),
            ("left", &run.remaining),
        ],
    );
    ui.add(
        egui::ProgressBar::new(run.fraction())
            .desired_height(10.0)
            .fill(palette.accent),
    );
    ui.label(RichText::new(counts));
    let status = status_text(run, lang);
    ui.label(RichText::new(status).color(palette.muted));
    if let (Some(progress), Some(_)) = (job_progress.filter(|p| p.id == run.job), &run.current) {
        ui.add(
            egui::ProgressBar::new(progress.fraction())
                .desired_height(6.0)
                .fill(palette.accent.gamma_multiply(0.7)),
        );
    }
    ui.horizontal(|ui| {
        if run.active() {
            let paused = run.control.is_paused();
            let (key, action) = if paused {
                ("batch.resume", BatchAction::Resume)
            } else {
                ("batch.pause", BatchAction::Pause)
            };
            if ui.button(tr(lang, key)).clicked() {
                actions.push(Action::Batch(action));
            }
            if ui.button(tr(lang, "batch.cancel")).clicked() {
                actions.push(Action::Batch(BatchAction::Cancel));
            }
        } else if ui.button(tr(lang, "batch.clear")).clicked() {
            actions.push(Action::Batch(BatchAction::Clear));
        }
        if let Some(output) = &run.output
            && ui.button(tr(lang, "batch.open_output")).clicked()
        {
            actions.push(Action::OpenDir(output.clone()));
        }
    });
    for warning in &run.warnings {
        ui.label(RichText::new(warning).small().color(palette.warning));
    }
    if let Some(error) = run.ended.as_ref().and_then(|s| s.error.as_ref()) {
        ui.label(RichText::new(error).color(palette.error));
    }
    ui.add_space(8.0);
    egui::ScrollArea::vertical()
        .id_salt("batch-results")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if !run.failed.is_empty() {
                ui.label(
                    RichText::new(tr_args(
                        lang,
                        "batch.failed_title",
                        &[("count", &run.failed.len())],
                    ))
                    .strong()
                    .color(palette.error),
                );
                for failed in &run.failed {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(&failed.input).monospace());
                        ui.label(RichText::new(reason_text(&failed.reason, lang)).small())
                            .on_hover_text(&failed.message);
                    });
                }
                ui.add_space(8.0);
            }
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing = egui::vec2(theme::GRID_GAP, theme::GRID_GAP);
                for result in run.results.iter().rev() {
                    let size = result.texture.size_vec2();
                    let scale = RESULT_CELL / size.x.max(size.y).max(1.0);
                    let response = ui
                        .add(
                            egui::Image::new(&result.texture)
                                .fit_to_exact_size(size * scale)
                                .corner_radius(theme::RADIUS)
                                .sense(egui::Sense::click()),
                        )
                        .on_hover_text(&result.input);
                    if response.clicked() {
                        actions.push(Action::OpenFolder(result.output.clone()));
                    }
                }
            });
        });
}

/// "Working on a.jpg · 1:20 left", "Paused", "Waiting for 3 files other processes hold", …
fn status_text(run: &BatchRun, lang: Lang) -> String {
    if let Some(summary) = &run.ended {
        let key = if summary.cancelled {
            "batch.cancelled"
        } else if summary.error.is_some() {
            "batch.stopped"
        } else {
            "batch.finished"
        };
        return tr_args(
            lang,
            key,
            &[(
                "time",
                &human_duration(std::time::Duration::from_secs_f64(summary.seconds)),
            )],
        );
    }
    if run.control.is_paused() {
        return tr(lang, "batch.paused").to_owned();
    }
    let eta = run
        .eta()
        .map(|eta| tr_args(lang, "batch.eta", &[("eta", &human_duration(eta))]))
        .unwrap_or_default();
    match (&run.current, run.waiting) {
        (Some(current), _) => tr_args(
            lang,
            "batch.working",
            &[("file", &current.as_str()), ("eta", &eta)],
        ),
        (None, Some(_)) if run.watch && run.remaining == 0 => tr(lang, "batch.watching").to_owned(),
        (None, Some(pending)) => tr_args(lang, "batch.waiting", &[("count", &pending)]),
        (None, None) if run.output.is_none() => tr(lang, "batch.queued").to_owned(),
        (None, None) => tr(lang, "batch.scanning").to_owned(),
    }
}

/// Why a file failed, in the UI language, with the technical detail after it.
fn reason_text(reason: &crate::batch::FailReason, lang: Lang) -> String {
    let key = format!("batch.reason.{}", reason.code().replace('-', "_"));
    match reason.detail() {
        Some(detail) if !detail.is_empty() => format!("{} ({detail})", tr(lang, &key)),
        _ => tr(lang, &key).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::FailReason;

    #[test]
    fn every_fail_reason_has_a_translation() {
        let detail = || "x".to_owned();
        let reasons = [
            FailReason::Unreadable { detail: detail() },
            FailReason::Empty,
            FailReason::NotAnImage { detail: detail() },
            FailReason::Unsupported { detail: detail() },
            FailReason::Truncated { detail: detail() },
            FailReason::Corrupt { detail: detail() },
            FailReason::TooLarge {
                size: Some((20000, 20000)),
                detail: detail(),
            },
            FailReason::Generation { detail: detail() },
            FailReason::Write { detail: detail() },
        ];
        for reason in &reasons {
            for lang in Lang::ALL {
                let text = reason_text(reason, lang);
                assert!(!text.starts_with("batch.reason."), "{text}");
            }
        }
        assert_eq!(
            reason_text(&reasons[6], Lang::En),
            "image too large (20000×20000, x)"
        );
        assert_eq!(reason_text(&reasons[1], Lang::ZhCn), "空文件（0 字节）");
    }
}
