//! The Models panel: every model file in the model folders with its kind, family, size, AutoV2
//! hash (computed in the background) and, in red, why it cannot be used; other apps' installs
//! found on this machine, offered with an "add" button; a "no model found" guide with the
//! recommended download; and the model catalog with downloads ([`model_catalog`]).

use crate::gui::action::Action;
use crate::gui::panels::{human_size, model_catalog};
use crate::gui::services::tasks::PickPurpose;
use crate::gui::state::{AppState, Section};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args, tr_count};
use crate::library::models::{ExternalLayout, ModelEntry, ModelFileKind};
use egui::RichText;

/// The Models panel.
pub fn models_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    let palette = Palette::of_ui(ui);
    ui.horizontal(|ui| {
        ui.label(RichText::new(tr(lang, "models.title")).heading().strong());
        if state.models.scanning {
            ui.label(RichText::new(tr(lang, "models.scanning")).color(palette.muted));
        } else if state.models.scanned {
            ui.label(
                RichText::new(tr_count(lang, "models.count", state.models.entries.len()))
                    .color(palette.muted),
            );
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button(tr(lang, "models.rescan")).clicked() {
                actions.push(Action::RescanModels);
            }
            if ui.button(tr(lang, "models.add_folder")).clicked() {
                actions.push(Action::Pick(PickPurpose::ModelDir));
            }
        });
    });
    ui.label(RichText::new(tr(lang, "models.subtitle")).color(palette.muted));
    ui.add_space(theme::SECTION_GAP / 2.0);
    egui::ScrollArea::vertical()
        .id_salt("models-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            folders_ui(ui, state, lang, actions);
            externals_ui(ui, &state.models.externals, lang, actions);
            if state.models.scanned && state.models.entries.is_empty() {
                empty_ui(ui, state, lang, actions);
            } else {
                request_hashes(state, actions);
                table_ui(ui, state, lang, actions);
            }
            model_catalog::catalog_ui(ui, state, lang, actions);
        });
}

fn folders_ui(ui: &mut egui::Ui, state: &AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(tr(lang, "models.folders")).color(palette.muted));
        for dir in &state.settings.model_dirs {
            if ui
                .link(RichText::new(dir.display().to_string()).monospace())
                .on_hover_text(tr(lang, "models.open_folder_hint"))
                .clicked()
            {
                actions.push(Action::OpenDir(dir.clone()));
            }
        }
    });
    ui.add_space(theme::SECTION_GAP / 2.0);
}

fn externals_ui(
    ui: &mut egui::Ui,
    externals: &[ExternalLayout],
    lang: Lang,
    actions: &mut Vec<Action>,
) {
    let palette = Palette::of_ui(ui);
    for layout in externals {
        palette.card_frame().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(tr(lang, "models.add_install")).clicked() {
                        for dir in layout.all_dirs() {
                            actions.push(Action::AddModelDir(dir.clone()));
                        }
                    }
                    ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
                        ui.label(
                            RichText::new(tr_args(
                                lang,
                                "models.found_install",
                                &[("app", &layout.app)],
                            ))
                            .strong(),
                        );
                        ui.label(
                            RichText::new(layout.root.display().to_string())
                                .monospace()
                                .small(),
                        );
                    });
                });
            });
        });
        ui.add_space(6.0);
    }
}

fn empty_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let models_dir = state
        .settings
        .model_dirs
        .first()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    palette.card_frame().show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(
            RichText::new(tr(lang, "models.empty_title"))
                .size(17.0)
                .strong(),
        );
        ui.add_space(4.0);
        ui.add(egui::Label::new(tr(lang, "models.empty_body")).wrap());
        ui.add_space(4.0);
        ui.label(RichText::new(models_dir).monospace());
        ui.add_space(4.0);
        ui.add(
            egui::Label::new(RichText::new(tr(lang, "models.empty_formats")).color(palette.muted))
                .wrap(),
        );
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if let Some(dir) = state.settings.model_dirs.first()
                && ui.button(tr(lang, "models.open_models_folder")).clicked()
            {
                actions.push(Action::OpenDir(dir.clone()));
            }
            if ui.button(tr(lang, "models.add_folder")).clicked() {
                actions.push(Action::Pick(PickPurpose::ModelDir));
            }
            if ui.button(tr(lang, "models.rescan")).clicked() {
                actions.push(Action::RescanModels);
            }
        });
        model_catalog::recommended_ui(ui, state, lang, actions);
    });
}

/// Asks for the hash of every usable model not hashed yet (the hasher caches on disk).
fn request_hashes(state: &AppState, actions: &mut Vec<Action>) {
    for entry in &state.models.entries {
        if entry.hash.is_none()
            && entry.problem.is_none()
            && !state.models.hash_requested.contains(&entry.path)
        {
            actions.push(Action::HashModel(entry.path.clone()));
        }
    }
}

/// The translation key of a model kind's name.
pub fn kind_key(kind: ModelFileKind) -> &'static str {
    match kind {
        ModelFileKind::Checkpoint => "models.kind.checkpoint",
        ModelFileKind::DiffusersFolder => "models.kind.diffusers",
        ModelFileKind::Lora => "models.kind.lora",
        ModelFileKind::ControlNet => "models.kind.controlnet",
        ModelFileKind::Vae => "models.kind.vae",
        ModelFileKind::Embedding => "models.kind.embedding",
        ModelFileKind::IpAdapter => "models.kind.ip_adapter",
        ModelFileKind::Onnx => "models.kind.onnx",
        ModelFileKind::Unknown => "models.kind.unknown",
    }
}

fn hash_text(state: &AppState, entry: &ModelEntry, lang: Lang) -> (String, bool) {
    if let Some(hash) = &entry.hash {
        return (hash.clone(), false);
    }
    match state.models.hashes.get(&entry.path) {
        Some(Ok(hash)) => (hash.clone(), false),
        Some(Err(_)) => (tr(lang, "models.hash_failed").to_owned(), true),
        None if entry.problem.is_some() => ("—".to_owned(), true),
        None => (tr(lang, "models.hashing").to_owned(), true),
    }
}

fn table_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let mut use_model = None;
    egui::Grid::new("models-table")
        .striped(true)
        .num_columns(6)
        .spacing([18.0, 8.0])
        .min_col_width(60.0)
        .show(ui, |ui| {
            for key in [
                "models.name",
                "models.type",
                "models.family",
                "models.size",
                "models.hash",
            ] {
                ui.label(RichText::new(tr(lang, key)).strong());
            }
            ui.label("");
            ui.end_row();
            for entry in &state.models.entries {
                ui.vertical(|ui| {
                    ui.set_min_width(320.0);
                    ui.set_max_width(420.0);
                    ui.add(egui::Label::new(RichText::new(&entry.name).strong()).truncate())
                        .on_hover_text(entry.path.display().to_string());
                    if let Some(problem) = &entry.problem {
                        ui.add(
                            egui::Label::new(RichText::new(problem).small().color(palette.error))
                                .wrap(),
                        );
                    }
                });
                ui.label(tr(lang, kind_key(entry.kind)));
                ui.label(entry.family.map(|f| f.label()).unwrap_or("—"));
                ui.label(human_size(entry.size_bytes));
                let (hash, muted) = hash_text(state, entry, lang);
                let hash = RichText::new(hash).monospace();
                ui.label(if muted {
                    hash.color(palette.muted)
                } else {
                    hash
                });
                if entry.kind.is_base_model() && entry.usable() {
                    let in_use = state.form.model.as_deref() == Some(entry.path.as_path());
                    let label = if in_use {
                        "models.in_use"
                    } else {
                        "models.use"
                    };
                    if ui
                        .add_enabled(!in_use, egui::Button::new(tr(lang, label)).small())
                        .clicked()
                    {
                        use_model = Some(entry.clone());
                    }
                } else {
                    ui.label("");
                }
                ui.end_row();
            }
        });
    if let Some(entry) = use_model {
        let hash = state.models.hash(&entry.path).map(str::to_owned);
        state.form.set_model(entry.path, entry.family, hash);
        actions.push(Action::ShowSection(Section::Generate));
    }
    if !state.models.errors.is_empty() {
        ui.add_space(8.0);
        for error in &state.models.errors {
            ui.label(RichText::new(error).color(palette.error));
        }
    }
}
