//! The job queue under the viewer: the running job with its progress bar, step count, elapsed
//! time and ETA, then the waiting jobs, each removable.

use crate::gui::action::Action;
use crate::gui::panels::human_duration;
use crate::gui::state::AppState;
use crate::gui::state::jobs::JobProgress;
use crate::gui::theme::Palette;
use crate::i18n::{Lang, tr, tr_args, tr_count};
use crate::worker::{JobKind, JobState, QueuedJob};
use egui::RichText;
use kiln_inference::Stage;

/// Width of one job card.
const CARD_WIDTH: f32 = 270.0;

/// The queue strip.
pub fn queue_ui(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "queue.title")).strong());
        if !state.jobs.queue.is_empty() {
            ui.label(
                RichText::new(tr_count(lang, "queue.count", state.jobs.queue.len()))
                    .color(palette.muted),
            );
        }
    });
    if state.jobs.queue.is_empty() {
        ui.label(RichText::new(tr(lang, "queue.empty")).color(palette.muted));
        return;
    }
    egui::ScrollArea::horizontal()
        .id_salt("queue-scroll")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for job in &state.jobs.queue {
                    let progress = state.jobs.progress.as_ref().filter(|p| p.id == job.id);
                    job_card_ui(ui, job, progress, lang, actions);
                }
            });
        });
}

/// The first line of a prompt, shortened.
fn prompt_line(prompt: &str, lang: Lang) -> String {
    let line = prompt.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return tr(lang, "queue.no_prompt").to_owned();
    }
    let mut short: String = line.chars().take(60).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

fn stage_text(progress: Option<&JobProgress>, lang: Lang) -> String {
    let Some(progress) = progress else {
        return tr(lang, "queue.starting").to_owned();
    };
    match &progress.stage {
        Stage::Loading(part) => tr_args(lang, "queue.loading", &[("part", part)]),
        Stage::Decoding => tr(lang, "queue.decoding").to_owned(),
        Stage::FixingFace { face, faces } => tr_args(
            lang,
            "queue.fixing_face",
            &[
                ("face", &(face + 1)),
                ("faces", faces),
                ("step", &progress.step),
                ("total", &progress.total),
            ],
        ),
        Stage::Sampling if progress.images > 1 => tr_args(
            lang,
            "queue.step_image",
            &[
                ("step", &progress.step),
                ("total", &progress.total),
                ("image", &(progress.image + 1)),
                ("images", &progress.images),
            ],
        ),
        Stage::Sampling => tr_args(
            lang,
            "queue.step",
            &[("step", &progress.step), ("total", &progress.total)],
        ),
    }
}

fn job_card_ui(
    ui: &mut egui::Ui,
    job: &QueuedJob,
    progress: Option<&JobProgress>,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    palette.card_frame().show(ui, |ui| {
        ui.set_width(CARD_WIDTH);
        ui.vertical(|ui| job_card_contents_ui(ui, job, progress, lang, actions));
    });
}

fn job_card_contents_ui(
    ui: &mut egui::Ui,
    job: &QueuedJob,
    progress: Option<&JobProgress>,
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    {
        match &job.kind {
            JobKind::Recipe(recipe) => {
                ui.add(
                    egui::Label::new(RichText::new(prompt_line(&recipe.prompt, lang)).strong())
                        .truncate(),
                );
                let details = tr_args(
                    lang,
                    "queue.details",
                    &[
                        ("width", &recipe.width),
                        ("height", &recipe.height),
                        ("steps", &recipe.steps),
                        ("batch", &recipe.batch),
                    ],
                );
                ui.label(RichText::new(details).small().color(palette.muted));
            }
            JobKind::Task(label) => {
                ui.add(egui::Label::new(RichText::new(label).strong()).truncate());
            }
        }
        match job.state {
            JobState::Running => {
                let fraction = progress.map(JobProgress::fraction).unwrap_or(0.0);
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_height(8.0)
                        .fill(palette.accent),
                );
                ui.horizontal(|ui| {
                    ui.label(RichText::new(stage_text(progress, lang)).small());
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui
                            .small_button(tr(lang, "queue.cancel"))
                            .on_hover_text(tr(lang, "queue.cancel_hint"))
                            .clicked()
                        {
                            actions.push(Action::Cancel(job.id));
                        }
                    });
                });
                if let Some(progress) = progress {
                    let eta = progress
                        .eta
                        .map(human_duration)
                        .unwrap_or_else(|| "…".to_owned());
                    let timing = tr_args(
                        lang,
                        "queue.timing",
                        &[
                            ("elapsed", &human_duration(progress.elapsed)),
                            ("eta", &eta),
                        ],
                    );
                    ui.label(RichText::new(timing).small().color(palette.muted));
                }
            }
            JobState::Waiting => {
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new(tr(lang, "queue.waiting"))
                            .small()
                            .color(palette.muted),
                    );
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui.small_button(tr(lang, "queue.remove")).clicked() {
                            actions.push(Action::RemoveQueued(job.id));
                        }
                    });
                });
            }
        }
    }
}
