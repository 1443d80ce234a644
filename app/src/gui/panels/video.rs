//! The Video section: a still to a short clip with Stable Video Diffusion. Left: the still (drop
//! an image or open one; with the motion brush on, paint where it may move), the model, the
//! clip's settings and Generate with the time estimate. Right: progress per step and per
//! decoded frame with an ETA and Cancel, then the player (play, pause, scrub, loop) and export.

use crate::gui::action::Action;
use crate::gui::panels::settings::card;
use crate::gui::panels::{file_name, heading_ui, human_duration, model_catalog, primary_button};
use crate::gui::state::AppState;
use crate::gui::state::video::{BRUSH_RADIUS, ExportKind, FRAME_COUNTS, SIZES, VideoAction};
use crate::gui::theme::{self, Palette};
use crate::i18n::{Lang, tr, tr_args};
use egui::{Color32, ColorImage, RichText, Sense, Stroke, StrokeKind, TextureOptions};

/// Largest height of the still on screen.
const STILL_MAX_HEIGHT: f32 = 260.0;

/// The Video section.
pub fn video_panel_ui(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let lang = state.lang();
    heading_ui(
        ui,
        tr(lang, "video.title"),
        Some(tr(lang, "video.subtitle")),
    );
    egui::Panel::left("video-setup")
        .exact_size(theme::FORM_WIDTH + 60.0)
        .resizable(false)
        .frame(egui::Frame::new())
        .show(ui, |ui| {
            egui::Panel::bottom("video-run")
                .exact_size(theme::GENERATE_BAR_HEIGHT + 24.0)
                .resizable(false)
                .show_separator_line(true)
                .frame(egui::Frame::new().inner_margin(egui::Margin {
                    left: 0,
                    right: 8,
                    top: 10,
                    bottom: 2,
                }))
                .show(ui, |ui| generate_bar_ui(ui, state, lang, actions));
            egui::ScrollArea::vertical()
                .id_salt("video-setup-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    model_catalog::offers_ui(ui, state, actions);
                    card(ui, tr(lang, "video.still"), |ui| {
                        still_ui(ui, state, lang, actions)
                    });
                    card(ui, tr(lang, "video.model"), |ui| {
                        model_ui(ui, state, lang, actions)
                    });
                    card(ui, tr(lang, "video.settings"), |ui| {
                        settings_ui(ui, state, lang)
                    });
                });
        });
    egui::CentralPanel::default()
        .frame(egui::Frame::new().inner_margin(egui::Margin {
            left: 12,
            ..Default::default()
        }))
        .show(ui, |ui| result_ui(ui, state, lang, actions));
}

fn generate_bar_ui(ui: &mut egui::Ui, state: &AppState, lang: Lang, actions: &mut Vec<Action>) {
    let video = &state.video;
    if video.busy() {
        if primary_button(ui, tr(lang, "video.cancel"), true, ui.available_width()).clicked() {
            actions.push(Action::Video(VideoAction::Cancel));
        }
    } else if primary_button(
        ui,
        tr(lang, "video.generate"),
        video.ready(),
        ui.available_width(),
    )
    .clicked()
    {
        actions.push(Action::Video(VideoAction::Generate));
    }
    let palette = Palette::of_ui(ui);
    let hint = if video.still.is_none() {
        tr(lang, "video.need_still")
    } else if video.model.is_none() {
        tr(lang, "video.need_model")
    } else {
        tr(lang, "video.cpu_hint")
    };
    ui.label(RichText::new(hint).small().color(palette.muted));
}

/// The still, with the motion brush painted over it; a drop zone when there is none.
fn still_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let ctx = ui.ctx().clone();
    let video = &mut state.video;
    let Some(still) = &mut video.still else {
        let (rect, response) =
            ui.allocate_exact_size(egui::vec2(ui.available_width(), 120.0), Sense::click());
        ui.painter().rect_stroke(
            rect,
            theme::RADIUS,
            Stroke::new(1.5, palette.card_stroke),
            StrokeKind::Inside,
        );
        ui.put(
            rect,
            egui::Label::new(RichText::new(tr(lang, "video.drop_still")).color(palette.muted)),
        );
        if response.clicked() {
            actions.push(Action::Video(VideoAction::PickImage));
        }
        if let Some(error) = &video.still_error {
            ui.label(RichText::new(error).small().color(palette.error));
        }
        return;
    };
    let texture = still.texture.get_or_insert_with(|| {
        let size = [still.image.width() as usize, still.image.height() as usize];
        ctx.load_texture(
            "video-still",
            ColorImage::from_rgb(size, still.image.as_raw()),
            TextureOptions::LINEAR,
        )
    });
    let texture_size = texture.size_vec2();
    let scale = (ui.available_width() / texture_size.x.max(1.0))
        .min(STILL_MAX_HEIGHT / texture_size.y.max(1.0));
    let size = texture_size * scale;
    let (rect, response) = ui.allocate_exact_size(
        egui::vec2(ui.available_width(), size.y),
        if video.brush {
            Sense::click_and_drag()
        } else {
            Sense::hover()
        },
    );
    let image_rect = egui::Rect::from_center_size(rect.center(), size);
    egui::Image::new(&*texture)
        .corner_radius(theme::RADIUS)
        .paint_at(ui, image_rect);
    let (w, h) = (still.image.width() as f32, still.image.height() as f32);
    let still_name = file_name(&still.path);
    if video.brush {
        if let Some(pos) = response.interact_pointer_pos()
            && (response.dragged() || response.clicked())
            && image_rect.contains(pos)
        {
            let x = (pos.x - image_rect.min.x) / scale;
            let y = (pos.y - image_rect.min.y) / scale;
            video.paint(x, y, BRUSH_RADIUS / 100.0 * w.max(h));
        }
        if video.mask_dirty || video.mask_texture.is_none() {
            video.mask_dirty = false;
            if let Some(mask) = &video.mask {
                // Where it stays still: a dark veil; where it may move: clear.
                let pixels: Vec<Color32> = mask
                    .pixels()
                    .map(|p| {
                        if p.0[0] > 127 {
                            Color32::from_rgba_unmultiplied(80, 200, 255, 60)
                        } else {
                            Color32::from_black_alpha(150)
                        }
                    })
                    .collect();
                let overlay =
                    ColorImage::new([mask.width() as usize, mask.height() as usize], pixels);
                video.mask_texture =
                    Some(ctx.load_texture("video-mask", overlay, TextureOptions::NEAREST));
            }
        }
        if let Some(overlay) = &video.mask_texture {
            egui::Image::new(overlay).paint_at(ui, image_rect);
        }
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new(still_name).small().color(palette.muted));
        if ui.small_button(tr(lang, "video.open")).clicked() {
            actions.push(Action::Video(VideoAction::PickImage));
        }
    });
    ui.horizontal(|ui| {
        let mut brush = video.brush;
        if ui
            .checkbox(&mut brush, tr(lang, "video.brush"))
            .on_hover_text(tr(lang, "video.brush_hint"))
            .changed()
        {
            video.set_brush(brush);
        }
        if video.brush {
            ui.checkbox(&mut video.erase, tr(lang, "video.erase"));
            if ui.small_button(tr(lang, "video.clear")).clicked() {
                video.clear_mask();
            }
        }
    });
}

fn model_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let video = &state.video;
    let current = video
        .model
        .as_deref()
        .map(file_name)
        .unwrap_or_else(|| tr(lang, "video.no_model").to_owned());
    let mut chosen = None;
    egui::ComboBox::from_id_salt("video-model")
        .selected_text(current)
        .width(ui.available_width() - 90.0)
        .show_ui(ui, |ui| {
            for path in &video.found {
                let selected = video.model.as_ref() == Some(path);
                if ui.selectable_label(selected, file_name(path)).clicked() {
                    chosen = Some(path.clone());
                }
            }
        });
    if let Some(path) = chosen {
        actions.push(Action::Video(VideoAction::SetModel(path)));
    }
    ui.horizontal(|ui| {
        if ui.small_button(tr(lang, "video.pick_model")).clicked() {
            actions.push(Action::Video(VideoAction::PickModel));
        }
        if ui.small_button(tr(lang, "video.rescan")).clicked() {
            actions.push(Action::Video(VideoAction::FindModels));
        }
    });
    if video.found.is_empty() && video.searched {
        ui.label(
            RichText::new(tr(lang, "video.none_found"))
                .small()
                .color(palette.muted),
        );
    }
}

fn settings_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang) {
    let video = &mut state.video;
    let enabled = !video.busy();
    ui.add_enabled_ui(enabled, |ui| {
        egui::Grid::new("video-settings")
            .num_columns(2)
            .spacing([10.0, 6.0])
            .show(ui, |ui| {
                ui.label(tr(lang, "video.size"));
                egui::ComboBox::from_id_salt("video-size")
                    .selected_text(size_text(video.size))
                    .show_ui(ui, |ui| {
                        for i in 0..SIZES.len() {
                            ui.selectable_value(&mut video.size, i, size_text(i));
                        }
                    });
                ui.end_row();
                ui.label(tr(lang, "video.frames"));
                ui.horizontal(|ui| {
                    for n in FRAME_COUNTS {
                        ui.selectable_value(&mut video.frames, n, n.to_string());
                    }
                });
                ui.end_row();
                ui.label(tr(lang, "video.fps"));
                ui.add(egui::Slider::new(&mut video.fps, 3..=30));
                ui.end_row();
                ui.label(tr(lang, "video.motion"))
                    .on_hover_text(tr(lang, "video.motion_hint"));
                ui.add(egui::Slider::new(&mut video.motion, 1..=255));
                ui.end_row();
                ui.label(tr(lang, "video.noise_aug"));
                ui.add(egui::Slider::new(&mut video.noise_aug, 0.0..=0.3).step_by(0.01));
                ui.end_row();
                ui.label(tr(lang, "video.steps"));
                ui.add(egui::Slider::new(&mut video.steps, 1..=50));
                ui.end_row();
                ui.label(tr(lang, "video.seed"));
                ui.horizontal(|ui| {
                    ui.add_enabled(!video.random_seed, egui::DragValue::new(&mut video.seed));
                    ui.checkbox(&mut video.random_seed, tr(lang, "video.random"));
                });
                ui.end_row();
            });
        ui.checkbox(&mut video.loop_clip, tr(lang, "video.loop"))
            .on_hover_text(tr(lang, "video.loop_hint"));
        ui.checkbox(&mut video.ping_pong, tr(lang, "video.ping_pong"))
            .on_hover_text(tr(lang, "video.ping_pong_hint"));
    });
}

fn size_text(index: usize) -> String {
    let (w, h) = SIZES.get(index).copied().unwrap_or(SIZES[0]);
    format!("{w} × {h}")
}

/// Progress of the running clip, or the player of the last one.
fn result_ui(ui: &mut egui::Ui, state: &mut AppState, lang: Lang, actions: &mut Vec<Action>) {
    let palette = Palette::of_ui(ui);
    let video = &mut state.video;
    if let Some(run) = &video.run {
        card(ui, tr(lang, "video.making"), |ui| {
            if let Some(estimate) = run.estimate {
                ui.label(tr_args(
                    lang,
                    "video.estimate",
                    &[(
                        "time",
                        &human_duration(std::time::Duration::from_secs_f64(estimate)),
                    )],
                ));
            } else {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(tr(lang, "video.loading"));
                });
            }
            let (step, steps) = run.steps;
            let (decoded, frames) = run.decoded;
            let text = if frames > 0 {
                tr_args(
                    lang,
                    "video.decoding",
                    &[
                        ("done", &decoded.to_string()),
                        ("total", &frames.to_string()),
                    ],
                )
            } else {
                tr_args(
                    lang,
                    "video.step",
                    &[("step", &step.to_string()), ("total", &steps.to_string())],
                )
            };
            ui.add(egui::ProgressBar::new(run.fraction()).text(text));
            if let Some(eta) = run.eta() {
                ui.label(
                    RichText::new(tr_args(
                        lang,
                        "video.eta",
                        &[("time", &human_duration(eta))],
                    ))
                    .color(palette.muted),
                );
            }
        });
    }
    if let Some(error) = &video.error {
        ui.label(RichText::new(error).color(palette.error));
    }
    let Some(clip) = &video.clip else {
        if video.run.is_none() {
            ui.label(RichText::new(tr(lang, "video.empty")).color(palette.muted));
        }
        return;
    };
    let frames = video.textures.len();
    let now = ui.input(|i| i.time);
    if video.player.tick(now, clip.fps, frames) || video.player.playing {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs_f64(
                1.0 / f64::from(clip.fps.max(1)),
            ));
    }
    if let Some(texture) = video.textures.get(video.player.index) {
        let size = texture.size_vec2();
        let scale = (ui.available_width() / size.x.max(1.0))
            .min((ui.available_height() - 120.0).max(120.0) / size.y.max(1.0));
        ui.add(egui::Image::new(texture).fit_to_exact_size(size * scale));
    }
    ui.horizontal(|ui| {
        let player = &mut video.player;
        let label = if player.playing {
            tr(lang, "video.pause")
        } else {
            tr(lang, "video.play")
        };
        if ui.button(label).clicked() {
            player.playing = !player.playing;
            if player.playing && player.index + 1 >= frames && !player.looping {
                player.index = 0;
            }
            player.shown_at = now;
        }
        // Frames are numbered from 1 on screen, as in the exported file names.
        let mut number = player.index + 1;
        if ui
            .add(egui::Slider::new(&mut number, 1..=frames.max(1)).text(tr(lang, "video.frame")))
            .changed()
        {
            player.index = number.saturating_sub(1);
            player.playing = false;
        }
        ui.checkbox(&mut player.looping, tr(lang, "video.loop_playback"));
    });
    ui.label(
        RichText::new(tr_args(
            lang,
            "video.done",
            &[
                ("frames", &frames.to_string()),
                (
                    "time",
                    &human_duration(std::time::Duration::from_secs_f64(clip.seconds)),
                ),
            ],
        ))
        .small()
        .color(palette.muted),
    );
    ui.horizontal(|ui| {
        ui.label(tr(lang, "video.export"));
        for kind in ExportKind::ALL {
            if ui
                .add_enabled(
                    !video.exporting,
                    egui::Button::new(tr(lang, kind.label_key())),
                )
                .clicked()
            {
                actions.push(Action::Video(VideoAction::Export(kind)));
            }
        }
    });
}
