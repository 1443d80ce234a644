//! `KilnApp`'s side of the style presets: routes [`PresetAction`]s to background tasks and
//! applies what comes back (listings, resolved presets, writes) to the UI state. A preset run
//! on a photo is an ordinary job; its caption, when the preset asks for one, is made on the
//! worker thread ([`CaptionJob`]).

use super::KilnApp;
use crate::gui::action::PresetAction;
use crate::gui::services::presets::{
    PresetListing, PresetResolution, PresetWritten, ResolveInput, ResolvePurpose, delete_preset,
    list_presets, resolve_preset, user_presets_dir, write_preset,
};
use crate::gui::services::tasks::{PickPurpose, TaskDone};
use crate::gui::state::presets::{AppliedPreset, PresetDialog, PresetThumb, PresetWrite};
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{Lang, tr, tr_args};
use crate::library::presets::caption::caption_wanted;
use crate::library::presets::{
    Existing, ModelLibrary, ModelRole, PresetError, PresetStore, PresetWarning,
};
use std::collections::HashMap;
use std::path::PathBuf;

impl KilnApp {
    /// The store of built-in and user presets (user files in the config folder).
    fn preset_store(&self) -> PresetStore {
        PresetStore::new(user_presets_dir(&self.paths.config_dir))
    }

    /// Carries out one preset action.
    pub(super) fn route_preset(&mut self, action: PresetAction) {
        match action {
            PresetAction::Reload => self.reload_presets(),
            PresetAction::Apply(id) => self.resolve_preset(&id, ResolvePurpose::Apply),
            PresetAction::Run { id, photo } => self.resolve_preset(&id, ResolvePurpose::Run(photo)),
            PresetAction::Write { write, overwrite } => {
                let store = self.preset_store();
                let language = self.state.settings.language;
                self.state.presets.writing = true;
                self.services.tasks.spawn("preset-write", move || {
                    TaskDone::PresetWritten(Box::new(write_preset(
                        &store, *write, overwrite, language,
                    )))
                });
            }
            PresetAction::Delete(id) => {
                let store = self.preset_store();
                self.state.presets.writing = true;
                self.services.tasks.spawn("preset-delete", move || {
                    TaskDone::PresetDeleted(delete_preset(&store, &id))
                });
            }
            PresetAction::Export(id) => {
                self.state.presets.export_id = Some(id);
                self.pick(PickPurpose::PresetExportDir, self.state.lang());
            }
        }
    }

    /// Lists the presets in the background (new or changed thumbnails are decoded there).
    pub(super) fn reload_presets(&mut self) {
        if self.state.presets.loading {
            self.state.presets.reload_again = true;
            return;
        }
        let store = self.preset_store();
        let known: HashMap<String, u64> = self
            .state
            .presets
            .thumbnails
            .iter()
            .map(|(id, thumb)| (id.clone(), thumb.key))
            .collect();
        self.state.presets.loading = true;
        self.services.tasks.spawn("presets-list", move || {
            TaskDone::PresetsListed(Box::new(list_presets(&store, &known)))
        });
    }

    /// Resolves a preset for the form or a photo in the background.
    fn resolve_preset(&mut self, id: &str, purpose: ResolvePurpose) {
        let lang = self.state.lang();
        let Some(entry) = self.state.presets.entry(id) else {
            self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "presets.not_found", &[("id", &id)]),
            );
            return;
        };
        let preset = entry.preset.clone();
        let form = &self.state.form;
        // Applying again (this or another preset) fills the template with the user's own
        // prompt, not with the previous template's result.
        let subject = match &self.state.presets.applied {
            Some(applied) if applied.prompt == form.prompt => applied.subject.clone(),
            _ => form.prompt.clone(),
        };
        let input = ResolveInput {
            preset,
            purpose,
            subject,
            init_image: form.init.clone(),
            fallback_model: form.model.clone(),
            dirs: self.state.settings.model_dirs.clone(),
            entries: self.state.models.entries.clone(),
        };
        if !self.state.presets.busy.iter().any(|b| b == id) {
            self.state.presets.busy.push(id.to_owned());
        }
        self.services.tasks.spawn("preset-resolve", move || {
            TaskDone::PresetResolved(Box::new(resolve_preset(input)))
        });
    }

    /// A listing arrived: keep the entries, upload new thumbnails, drop those of gone presets.
    pub(super) fn presets_listed(&mut self, listing: PresetListing, ctx: &egui::Context) {
        let presets = &mut self.state.presets;
        presets.loading = false;
        presets.loaded = true;
        for (id, key, pixels) in listing.thumbnails {
            let texture =
                ctx.load_texture(format!("preset-{id}"), pixels, egui::TextureOptions::LINEAR);
            presets.thumbnails.insert(id, PresetThumb { key, texture });
        }
        presets.thumbnails.retain(|id, _| {
            listing
                .entries
                .iter()
                .any(|e| e.id() == id && e.thumbnail_png.is_some())
        });
        presets.entries = listing.entries;
        presets.issues = listing.issues;
        if std::mem::take(&mut presets.reload_again) {
            self.reload_presets();
        }
    }

    /// A preset was resolved: fill the form, or queue the photo's job.
    pub(super) fn preset_resolved(&mut self, resolution: PresetResolution, ctx: &egui::Context) {
        let lang = self.state.lang();
        let id = resolution.preset.id.clone();
        self.state.presets.busy.retain(|b| *b != id);
        let name = resolution
            .preset
            .name
            .get(self.state.settings.language)
            .to_owned();
        let resolved = match resolution.result {
            Ok(resolved) => resolved,
            Err(error) => {
                let text = preset_error_text(&error, &name, lang);
                self.state.notify(NoticeKind::Error, text);
                if let PresetError::MissingModel {
                    catalog_id: Some(id),
                    ..
                } = &error
                {
                    // That exact model first, then the preset's other catalog models.
                    let mut ids = vec![id.clone()];
                    let preset = &resolution.preset;
                    ids.extend(preset.catalog_ids().into_iter().map(str::to_owned));
                    self.offer_downloads(&name, ids);
                }
                return;
            }
        };
        let warnings: Vec<String> = resolved
            .warnings
            .iter()
            .map(|w| preset_warning_text(w, lang))
            .collect();
        let missing: Vec<String> = resolved
            .warnings
            .iter()
            .filter_map(|w| match w {
                PresetWarning::ControlNetMissing { catalog_id, .. }
                | PresetWarning::CaptionSkipped { catalog_id, .. } => catalog_id.clone(),
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            self.offer_downloads(&name, missing);
        }
        match resolution.purpose {
            ResolvePurpose::Apply => {
                let model_before = self.state.form.model.clone();
                self.state.form.apply_preset(&resolved.recipe);
                if self.state.form.model != model_before
                    && let Some(path) = self.state.form.model.clone()
                {
                    self.select_model(path);
                }
                self.state.presets.applied = Some(AppliedPreset {
                    id,
                    subject: resolution.subject,
                    prompt: self.state.form.prompt.clone(),
                });
                self.inspect_lora_rows();
                self.check_form_files();
                self.state.section = Section::Generate;
                self.state.notify(
                    NoticeKind::Info,
                    tr_args(lang, "presets.applied", &[("name", &name)]),
                );
            }
            ResolvePurpose::Run(photo) => {
                let mut recipe = resolved.recipe;
                recipe.seed = kiln_inference::recipe::random_seed();
                recipe.batch = 1;
                if caption_wanted(&resolution.preset, "").is_some() {
                    let library = ModelLibrary::from_entries(
                        self.state.settings.model_dirs.clone(),
                        self.state.models.entries.clone(),
                    );
                    let job = crate::gui::services::job_runner::CaptionJob {
                        recipe: recipe.clone(),
                        preset: resolution.preset.clone(),
                        photo: photo.clone(),
                        library,
                    };
                    self.services
                        .caption_jobs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(job);
                }
                self.route(crate::gui::Action::Submit(Box::new(recipe)), ctx);
                self.state.section = Section::Generate;
                self.state.notify(
                    NoticeKind::Info,
                    tr_args(
                        lang,
                        "presets.running",
                        &[
                            ("name", &name),
                            ("photo", &crate::gui::panels::file_name(&photo)),
                        ],
                    ),
                );
            }
        }
        for warning in warnings {
            self.state.notify(NoticeKind::Warning, warning);
        }
    }

    /// A write ended: close the dialog and list again, or ask before replacing.
    pub(super) fn preset_written(&mut self, written: PresetWritten) {
        let lang = self.state.lang();
        self.state.presets.writing = false;
        match written.result {
            Ok(what) => {
                self.state.presets.dialog = None;
                let key = match written.write {
                    PresetWrite::SaveNew { .. } => "presets.saved",
                    PresetWrite::Update { .. } => "presets.updated",
                    PresetWrite::Import(_) => "presets.imported",
                    PresetWrite::Export { .. } => "presets.exported",
                };
                self.state
                    .notify(NoticeKind::Info, tr_args(lang, key, &[("name", &what)]));
                self.reload_presets();
            }
            Err(PresetError::Conflict { id, existing }) => {
                let message = match existing {
                    Existing::UserPreset(_) => {
                        tr_args(lang, "presets.replace_user", &[("id", &id)])
                    }
                    Existing::BuiltIn => tr_args(lang, "presets.replace_builtin", &[("id", &id)]),
                    Existing::File(path) => {
                        tr_args(lang, "presets.replace_file", &[("path", &path.display())])
                    }
                };
                self.state.presets.dialog = Some(PresetDialog::ConfirmReplace {
                    write: written.write,
                    message,
                });
            }
            Err(error) => self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "presets.write_failed", &[("error", &error)]),
            ),
        }
    }

    /// A delete ended.
    pub(super) fn preset_deleted(&mut self, result: Result<String, PresetError>) {
        let lang = self.state.lang();
        self.state.presets.writing = false;
        self.state.presets.dialog = None;
        match result {
            Ok(id) => {
                self.state.notify(
                    NoticeKind::Info,
                    tr_args(lang, "presets.deleted", &[("id", &id)]),
                );
                self.reload_presets();
            }
            Err(error) => self.state.notify(
                NoticeKind::Error,
                tr_args(lang, "presets.write_failed", &[("error", &error)]),
            ),
        }
    }

    /// A file dialog of the Presets panel closed with a path.
    pub(super) fn preset_picked(&mut self, purpose: PickPurpose, path: PathBuf) {
        match purpose {
            PickPurpose::PresetPhoto => self.state.presets.photo = Some(path),
            PickPurpose::PresetImport => self.route_preset(PresetAction::Write {
                write: Box::new(PresetWrite::Import(path)),
                overwrite: false,
            }),
            PickPurpose::PresetExportDir => {
                if let Some(id) = self.state.presets.export_id.take() {
                    self.route_preset(PresetAction::Write {
                        write: Box::new(PresetWrite::Export { id, dir: path }),
                        overwrite: false,
                    });
                }
            }
            _ => {}
        }
    }

    /// A file dropped while the Presets panel is open: onto a card, it runs that preset on the
    /// photo; elsewhere, the photo waits for a click on a card. Returns whether it was taken.
    pub(super) fn preset_drop(&mut self, path: &std::path::Path, pos: Option<egui::Pos2>) -> bool {
        if self.state.section != Section::Presets {
            return false;
        }
        let card = pos.and_then(|pos| self.state.presets.card_at(pos).map(str::to_owned));
        match card {
            Some(id) => self.route_preset(PresetAction::Run {
                id,
                photo: path.to_path_buf(),
            }),
            None => self.state.presets.photo = Some(path.to_path_buf()),
        }
        true
    }
}

/// The user-facing text of a preset error: missing files name what to download.
pub fn preset_error_text(error: &PresetError, name: &str, lang: Lang) -> String {
    match error {
        PresetError::MissingModel {
            role,
            catalog_id,
            download,
            hints,
            ..
        } => {
            let role = tr(lang, role_key(*role));
            let what = match (download, catalog_id) {
                (Some(download), _) => download.clone(),
                (None, Some(id)) => id.clone(),
                (None, None) => hints.join(", "),
            };
            tr_args(
                lang,
                "presets.missing_model",
                &[("name", &name), ("role", &role), ("what", &what)],
            )
        }
        other => tr_args(
            lang,
            "presets.failed",
            &[("name", &name), ("error", &other)],
        ),
    }
}

fn role_key(role: ModelRole) -> &'static str {
    match role {
        ModelRole::Base => "presets.role_base",
        ModelRole::Lora => "presets.role_lora",
        ModelRole::Tagger => "presets.role_tagger",
    }
}

/// The user-facing text of a resolve warning.
fn preset_warning_text(warning: &PresetWarning, lang: Lang) -> String {
    match warning {
        PresetWarning::ControlNetUnavailable { kind } => {
            tr_args(lang, "presets.warn_controlnet", &[("kind", &kind.id())])
        }
        PresetWarning::ControlNetMissing {
            kind,
            catalog_id,
            download,
        } => {
            let what = download
                .clone()
                .or_else(|| catalog_id.clone())
                .unwrap_or_default();
            tr_args(
                lang,
                "presets.warn_controlnet_missing",
                &[("kind", &kind.id()), ("what", &what)],
            )
        }
        PresetWarning::FacePreservationUnavailable => tr(lang, "presets.warn_face").to_owned(),
        PresetWarning::UsingFallbackModel { wanted, used } => tr_args(
            lang,
            "presets.warn_fallback",
            &[
                ("wanted", &wanted),
                ("used", &crate::gui::panels::file_name(used)),
            ],
        ),
        other => other.to_string(),
    }
}
