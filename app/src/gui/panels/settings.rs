//! The Settings panel: output folder, model folders, language, theme, CPU threads and live
//! previews. Every change is saved at once (`Action::SettingsChanged` and friends).

use crate::gui::action::Action;
use crate::gui::panels::generate::fixed_label;
use crate::gui::panels::heading_ui;
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::{AppState, lang_of};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::settings::{Language, Precision, Theme};
use egui::RichText;

/// Most CPU threads offered.
const MAX_THREADS: usize = 256;

/// The Settings panel.
pub fn settings_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    heading_ui(
        ui,
        tr(lang, "settings.title"),
        Some(tr(lang, "settings.subtitle")),
    );
    egui::ScrollArea::vertical()
        .id_salt("settings-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.set_max_width(760.0);
            card(ui, tr(lang, "settings.files"), |ui| {
                files_ui(ui, state, lang, actions)
            });
            card(ui, tr(lang, "settings.appearance"), |ui| {
                appearance_ui(ui, state, lang, actions)
            });
            card(ui, tr(lang, "settings.performance"), |ui| {
                performance_ui(ui, state, lang, actions)
            });
            card(ui, tr(lang, "downloads.settings_title"), |ui| {
                crate::gui::panels::model_catalog::hub_settings_ui(ui, state, lang, actions)
            });
            let palette = Palette::of_ui(ui);
            ui.label(
                RichText::new(tr(lang, "settings.saved_automatically"))
                    .small()
                    .color(palette.muted),
            );
        });
}

/// A titled card (also used by the Batch section).
pub fn card(ui: &mut egui::Ui, title: &str, add: impl FnOnce(&mut egui::Ui)) {
    let palette = Palette::of_ui(ui);
    palette
        .card_frame()
        .inner_margin(egui::Margin::same(14))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(title).strong().size(15.0));
            ui.add_space(6.0);
            add(ui);
        });
    ui.add_space(theme::SECTION_GAP);
}

/// A row: a label of fixed width, then the widgets it names.
pub fn row(ui: &mut egui::Ui, label: &str, add: impl FnOnce(&mut egui::Ui)) {
    ui.horizontal(|ui| {
        let label = fixed_label(ui, label, theme::LABEL_WIDTH + 30.0);
        ui.label_inputs_by(label.id, add);
    });
}

fn files_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    row(ui, tr(lang, "settings.output_dir"), |ui| {
        ui.label(RichText::new(state.settings.output_dir.display().to_string()).monospace());
    });
    ui.horizontal(|ui| {
        ui.add_space(theme::LABEL_WIDTH + 30.0 + ui.spacing().item_spacing.x);
        if ui.button(tr(lang, "common.change")).clicked() {
            actions.push(Action::Pick(PickPurpose::OutputDir));
        }
        if ui.button(tr(lang, "common.open")).clicked() {
            actions.push(Action::OpenDir(state.settings.output_dir.clone()));
        }
    });
    ui.add_space(8.0);
    row(ui, tr(lang, "settings.model_dirs"), |ui| {
        ui.vertical(|ui| {
            if state.settings.model_dirs.is_empty() {
                ui.label(RichText::new(tr(lang, "settings.no_model_dirs")).color(palette.muted));
            }
            for dir in &state.settings.model_dirs {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(dir.display().to_string()).monospace());
                    if ui.small_button(tr(lang, "common.remove")).clicked() {
                        actions.push(Action::RemoveModelDir(dir.clone()));
                    }
                });
            }
            if ui.button(tr(lang, "models.add_folder")).clicked() {
                actions.push(Action::Pick(PickPurpose::ModelDir));
            }
        });
    });
}

fn appearance_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    row(ui, tr(lang, "settings.language"), |ui| {
        for language in Language::ALL {
            if ui
                .selectable_label(state.settings.language == language, language.native_name())
                .clicked()
                && state.settings.language != language
            {
                actions.push(Action::SetLanguage(lang_of(language)));
            }
        }
    });
    row(ui, tr(lang, "settings.theme"), |ui| {
        for (theme, key) in [
            (Theme::Dark, "settings.theme_dark"),
            (Theme::Light, "settings.theme_light"),
        ] {
            if ui
                .selectable_label(state.settings.theme == theme, tr(lang, key))
                .clicked()
                && state.settings.theme != theme
            {
                actions.push(Action::SetTheme(theme));
            }
        }
    });
}

fn performance_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    row(ui, tr(lang, "settings.threads"), |ui| {
        let mut automatic = state.settings.threads.is_none();
        if ui
            .checkbox(&mut automatic, tr(lang, "settings.threads_auto"))
            .changed()
        {
            state.settings.threads = if automatic { None } else { Some(available) };
            actions.push(Action::SettingsChanged);
        }
        if let Some(threads) = &mut state.settings.threads
            && ui
                .add(
                    egui::DragValue::new(threads)
                        .range(1..=MAX_THREADS)
                        .speed(0.1),
                )
                .changed()
        {
            actions.push(Action::SettingsChanged);
        }
    });
    ui.horizontal(|ui| {
        ui.add_space(theme::LABEL_WIDTH + 30.0 + ui.spacing().item_spacing.x);
        ui.label(
            RichText::new(tr_args(
                lang,
                "settings.threads_hint",
                &[("count", &available)],
            ))
            .small()
            .color(palette.muted),
        );
    });
    row(ui, tr(lang, "settings.precision"), |ui| {
        for (precision, key) in [
            (Precision::Fp32, "settings.precision_fp32"),
            (Precision::Bf16, "settings.precision_bf16"),
            (Precision::Int8, "settings.precision_int8"),
        ] {
            if ui
                .radio_value(&mut state.settings.precision, precision, tr(lang, key))
                .changed()
            {
                actions.push(Action::SettingsChanged);
            }
        }
    });
    ui.horizontal(|ui| {
        ui.add_space(theme::LABEL_WIDTH + 30.0 + ui.spacing().item_spacing.x);
        ui.label(
            RichText::new(tr(lang, "settings.precision_hint"))
                .small()
                .color(palette.muted),
        );
    });
    row(ui, tr(lang, "settings.device"), |ui| {
        use crate::library::settings::ComputeDevice;
        for (device, key) in [
            (ComputeDevice::Auto, "settings.device_auto"),
            (ComputeDevice::Cpu, "settings.device_cpu"),
            (ComputeDevice::Gpu, "settings.device_gpu"),
        ] {
            if ui
                .radio_value(&mut state.settings.device, device, tr(lang, key))
                .changed()
            {
                actions.push(Action::SettingsChanged);
            }
        }
    });
    ui.horizontal(|ui| {
        ui.add_space(theme::LABEL_WIDTH + 30.0 + ui.spacing().item_spacing.x);
        let adapter = match &state.gpu_adapter {
            None => {
                if !state.gpu_probing {
                    state.gpu_probing = true;
                    actions.push(Action::ProbeGpu);
                }
                tr(lang, "settings.device_probing").to_owned()
            }
            Some(Ok(name)) => {
                crate::i18n::tr_args(lang, "settings.device_adapter", &[("name", name)])
            }
            Some(Err(_)) => tr(lang, "settings.device_none").to_owned(),
        };
        ui.label(
            RichText::new(format!("{adapter} {}", tr(lang, "settings.device_hint")))
                .small()
                .color(palette.muted),
        );
    });
    row(ui, tr(lang, "settings.previews"), |ui| {
        if ui
            .checkbox(
                &mut state.settings.previews,
                tr(lang, "settings.previews_on"),
            )
            .changed()
        {
            actions.push(Action::SettingsChanged);
        }
    });
}
