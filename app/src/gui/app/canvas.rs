//! `KilnApp`'s side of the canvas: turns layers into the PNGs the form uses (init image,
//! ControlNet guides, inpainting mask; written off the UI thread into `canvas/` in the data
//! folder, named by their content so a recipe that names one always finds the same pixels),
//! loads images into layers, keeps one guide layer per ControlNet row showing the row's
//! preprocessed guide, and checks restored files on disk.

use super::KilnApp;
use crate::gui::action::CanvasAction;
use crate::gui::canvas::LayerKind;
use crate::gui::canvas::document::{Export, ExportKind};
use crate::gui::canvas::layer::GuideSource;
use crate::gui::canvas::region::RegionPrompt;
use crate::gui::form::valid_side;
use crate::gui::services::tasks::{PickPurpose, TaskDone};
use crate::gui::state::canvas::layer_name;
use crate::gui::state::{NoticeKind, Section};
use crate::i18n::{tr, tr_args};
use kiln_inference::recipe::{OutpaintSpec, Preprocessor, RegionSpec};
use sha2::Digest;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a canvas export is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanvasPurpose {
    /// The init image.
    Init,
    /// The guide of a ControlNet row, made from a layer.
    Guide {
        /// The layer it was made from.
        layer: u64,
        /// The row, by id.
        row: u64,
    },
    /// The inpainting mask.
    Mask,
    /// The text overlay composited over results.
    Overlay,
    /// The init image of an outpainting job (the picture before Extend).
    Outpaint(OutpaintSpec),
}

/// The canvas's regions written as mask PNGs.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionsWritten {
    /// The form's regions, bottom layer first.
    pub regions: Vec<RegionSpec>,
    /// Layers left out because nothing is painted on them (names).
    pub blank: Vec<String>,
}

/// One region layer to write: its name, prompt and mask export.
type RegionExport = (String, RegionPrompt, Export);

/// Writes each region's mask (gray, white = inside) as a content-named `region-…` PNG; blank
/// masks are left out and named.
pub fn write_region_masks(dir: &Path, exports: &[RegionExport]) -> Result<RegionsWritten, String> {
    let mut written = RegionsWritten {
        regions: Vec::new(),
        blank: Vec::new(),
    };
    for (name, region, export) in exports {
        let image = export.render();
        if image.as_bytes().iter().all(|&v| v == 0) {
            written.blank.push(name.clone());
            continue;
        }
        let path = write_content_named_png(dir, "region", &image)?;
        written.regions.push(region.to_spec(path));
    }
    Ok(written)
}

/// Where an image loaded for the canvas goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanvasTarget {
    /// Replaces a layer's pixels (undoable).
    Layer(u64),
    /// A new background layer.
    NewBackground,
}

/// Encodes `image` as PNG and writes it to `dir` as `<prefix>-<first 16 hex of its SHA-256>.png`
/// (atomically; an existing file of that name has the same pixels and is kept).
pub fn write_content_named_png(
    dir: &Path,
    prefix: &str,
    image: &image::DynamicImage,
) -> Result<PathBuf, String> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{prefix}-{hex}.png"));
    if !path.is_file() {
        crate::library::fsutil::atomic_write(&path, &bytes).map_err(|e| format!("{e:#}"))?;
    }
    Ok(path)
}

/// Reads an image as RGBA at `width × height` (Lanczos when the size differs).
fn read_rgba_at(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let image = image::open(path).map_err(|e| format!("{e} ({})", path.display()))?;
    let rgba = image.to_rgba8();
    if rgba.dimensions() == (width, height) {
        return Ok(rgba.into_raw());
    }
    Ok(
        image::imageops::resize(&rgba, width, height, image::imageops::FilterType::Lanczos3)
            .into_raw(),
    )
}

/// The guide a ControlNet row's image makes at `width × height`, as the engine makes it
/// (networks for depth, line art and photo scribbles found in `model_dirs`).
fn make_guide(
    source: &GuideSource,
    width: u32,
    height: u32,
    model_dirs: Vec<PathBuf>,
) -> Result<image::RgbImage, String> {
    use kiln_inference::vision::annotators::Preprocessors;
    use kiln_inference::vision::preprocess::{PreprocessOptions, guide_with};
    let image = kiln_inference::engine::load_init_image(&source.image, width, height)
        .map_err(|e| format!("{e:#}"))?;
    if source.preprocessor == Preprocessor::Inpaint {
        let Some(mask) = &source.mask else {
            return Err("an inpainting guide needs the inpainting mask (Mask in Generate)".into());
        };
        let mask =
            kiln_inference::engine::load_mask(mask, width, height).map_err(|e| format!("{e:#}"))?;
        return kiln_inference::vision::preprocess::inpaint_preview(&image, &mask)
            .ok_or_else(|| "the mask's size differs from the canvas".to_string());
    }
    let mut networks = Preprocessors::new(model_dirs);
    let options = PreprocessOptions::default();
    let device = candle_core::Device::Cpu;
    guide_with(
        &mut networks,
        source.preprocessor,
        &image,
        None,
        &options,
        &device,
    )
    .map_err(|e| format!("{e:#}"))
}

impl KilnApp {
    /// The folder canvas PNGs are written to.
    pub fn canvas_dir(&self) -> PathBuf {
        self.paths.data_dir.join("canvas")
    }

    /// Makes the canvas the generation size (when the form's size is valid).
    fn fit_canvas_to_form(&mut self) {
        let (width, height) = (self.state.form.width, self.state.form.height);
        if valid_side(width) && valid_side(height) {
            self.state.canvas.document.resize(width, height);
        }
    }

    /// Carries out one canvas action.
    pub(super) fn route_canvas(&mut self, action: CanvasAction) {
        let lang = self.state.lang();
        match action {
            CanvasAction::UseAsInit(layer) => {
                self.export_layer(layer, ExportKind::Init, CanvasPurpose::Init);
                self.state.form.outpaint = None;
                self.export_overlay();
                self.export_regions(false);
            }
            CanvasAction::UseRegions => self.export_regions(true),
            CanvasAction::Extend(spec) => self.extend_canvas(spec),
            CanvasAction::UseAsGuide { layer, row } => {
                let row = match row {
                    Some(row) if self.state.form.controls.iter().any(|r| r.id == row) => row,
                    _ => self.state.form.add_control(),
                };
                self.export_layer(
                    layer,
                    ExportKind::Guide,
                    CanvasPurpose::Guide { layer, row },
                );
            }
            CanvasAction::UseAsMask(layer) => {
                if self.state.form.init.is_none() {
                    // Inpainting needs an init image: the picture on the canvas.
                    let top_image = self
                        .state
                        .canvas
                        .document
                        .layers()
                        .iter()
                        .rev()
                        .find(|l| l.kind.is_image())
                        .map(|l| l.id);
                    if let Some(top) = top_image {
                        self.export_layer(top, ExportKind::Init, CanvasPurpose::Init);
                    }
                }
                self.export_layer(layer, ExportKind::Mask, CanvasPurpose::Mask);
            }
            CanvasAction::Import(layer) => self.pick(PickPurpose::CanvasImport(layer), lang),
            CanvasAction::Export(layer) => {
                self.fit_canvas_to_form();
                let Some(export) = self.state.canvas.document.export(layer, ExportKind::Layer)
                else {
                    return;
                };
                let title = tr(lang, "dialog.save_canvas_layer").to_owned();
                self.services.tasks.spawn("canvas-export", move || {
                    let Some(target) = rfd::FileDialog::new()
                        .set_title(title)
                        .set_file_name("canvas-layer.png")
                        .add_filter("PNG", &["png"])
                        .save_file()
                    else {
                        return TaskDone::SavedAs(Ok(None));
                    };
                    let result = export
                        .render()
                        .save_with_format(&target, image::ImageFormat::Png)
                        .map(|()| Some(target.clone()))
                        .map_err(|e| format!("{e} ({})", target.display()));
                    TaskDone::SavedAs(result)
                });
            }
            CanvasAction::AddBackground(path) => {
                self.load_into_canvas(path, CanvasTarget::NewBackground);
                self.state.section = Section::Canvas;
            }
        }
    }

    /// Writes the visible text layers as the overlay of the next jobs (when text is to be kept
    /// crisp and there is some), else drops the overlay.
    fn export_overlay(&mut self) {
        let canvas = &self.state.canvas;
        let top = canvas.document.layers().last().map(|l| l.id);
        match top {
            Some(top) if canvas.keep_text_crisp && canvas.document.has_visible_text() => {
                self.export_layer(top, ExportKind::Overlay, CanvasPurpose::Overlay);
            }
            _ => self.state.form.overlay = None,
        }
    }

    /// Writes the visible region layers with a prompt as mask PNGs (in the background); they
    /// become the form's regions. Regions without a prompt are left out with a notice. Without
    /// region layers the form's regions stay unless `always` (the user asked for the regions).
    fn export_regions(&mut self, always: bool) {
        let lang = self.state.lang();
        self.fit_canvas_to_form();
        let canvas = &self.state.canvas;
        let regions = canvas.document.visible_regions();
        if regions.is_empty() && !always {
            return;
        }
        let rows = &self.state.form.controls;
        let mut exports: Vec<RegionExport> = Vec::new();
        let mut unnamed = Vec::new();
        for (id, region) in regions {
            let Some(layer) = canvas.document.layer(id) else {
                continue;
            };
            let name = layer_name(layer, lang, rows);
            if !region.is_usable() {
                unnamed.push(name);
                continue;
            }
            if let Some(export) = canvas.document.export(id, ExportKind::Mask) {
                exports.push((name, region, export));
            }
        }
        if !unnamed.is_empty() {
            self.state.notify(
                NoticeKind::Warning,
                tr_args(
                    lang,
                    "notice.canvas_region_no_prompt",
                    &[("layers", &unnamed.join(", "))],
                ),
            );
        }
        let dir = self.canvas_dir();
        self.services.tasks.spawn("canvas-regions", move || {
            TaskDone::CanvasRegionsWritten(write_region_masks(&dir, &exports))
        });
    }

    /// The region masks were written: the form takes the regions.
    pub(super) fn canvas_regions_written(&mut self, result: Result<RegionsWritten, String>) {
        let lang = self.state.lang();
        let written = match result {
            Ok(written) => written,
            Err(message) => {
                self.state.notify(
                    NoticeKind::Error,
                    tr_args(lang, "notice.canvas_write_failed", &[("error", &message)]),
                );
                return;
            }
        };
        if !written.blank.is_empty() {
            self.state.notify(
                NoticeKind::Warning,
                tr_args(
                    lang,
                    "notice.canvas_region_blank",
                    &[("layers", &written.blank.join(", "))],
                ),
            );
        }
        let count = written.regions.len();
        self.state.form.regions = written.regions;
        if count > 0 {
            self.state.notify(
                NoticeKind::Info,
                tr_args(lang, "notice.canvas_regions_set", &[("count", &count)]),
            );
        }
    }

    /// Grows the canvas by `spec` (every layer, text moved along) and sets up the outpainting
    /// job: the picture as it was becomes the init image (strength 1), the form takes the new
    /// size; the result comes back as a new background layer.
    fn extend_canvas(&mut self, spec: OutpaintSpec) {
        let lang = self.state.lang();
        self.fit_canvas_to_form();
        let (width, height) = self.state.canvas.document.size();
        let (new_width, new_height) = (
            width + spec.left + spec.right,
            height + spec.top + spec.bottom,
        );
        if !valid_side(new_width)
            || !valid_side(new_height)
            || (new_width, new_height) == (width, height)
        {
            self.state.notify(
                NoticeKind::Error,
                tr_args(
                    lang,
                    "notice.canvas_extend_bad",
                    &[("width", &new_width), ("height", &new_height)],
                ),
            );
            return;
        }
        let top_image = self
            .state
            .canvas
            .document
            .layers()
            .iter()
            .rev()
            .find(|l| l.kind.is_image())
            .map(|l| l.id);
        let Some(top_image) = top_image else {
            return;
        };
        self.export_layer(top_image, ExportKind::Init, CanvasPurpose::Outpaint(spec));
        let canvas = &mut self.state.canvas;
        canvas
            .document
            .extend(spec.left, spec.top, spec.right, spec.bottom);
        canvas.outpaint_init = None;
        let form = &mut self.state.form;
        (form.width, form.height, form.aspect) = (new_width, new_height, None);
        self.export_overlay();
    }

    /// A finished job's results: the outpainting job Extend set up comes back as a new
    /// background layer.
    pub(super) fn outpaint_results_to_canvas(&mut self) {
        let Some(init) = self.state.canvas.outpaint_init.clone() else {
            return;
        };
        let result = self.state.jobs.results.iter().find(|r| {
            r.recipe.outpaint.is_some() && r.recipe.init.as_ref().is_some_and(|i| i.path == init)
        });
        if let Some(result) = result {
            let path = result.path.clone();
            self.state.canvas.outpaint_init = None;
            self.load_into_canvas(path, CanvasTarget::NewBackground);
        }
    }

    /// Copies a layer's pixels and writes the image for `purpose` in the background.
    fn export_layer(&mut self, layer: u64, kind: ExportKind, purpose: CanvasPurpose) {
        self.fit_canvas_to_form();
        let Some(export) = self.state.canvas.document.export(layer, kind) else {
            return;
        };
        let dir = self.canvas_dir();
        let prefix = match purpose {
            CanvasPurpose::Init => "init",
            CanvasPurpose::Guide { .. } => "guide",
            CanvasPurpose::Mask => "mask",
            CanvasPurpose::Overlay => "overlay",
            CanvasPurpose::Outpaint(_) => "outpaint",
        };
        self.services.tasks.spawn("canvas-write", move || {
            let result = write_export(&dir, prefix, &export);
            TaskDone::CanvasWritten { purpose, result }
        });
    }

    /// Reads an image for the canvas in the background.
    pub(super) fn load_into_canvas(&mut self, path: PathBuf, target: CanvasTarget) {
        self.fit_canvas_to_form();
        let size = self.state.canvas.document.size();
        self.services.tasks.spawn("canvas-load", move || {
            let result = read_rgba_at(&path, size.0, size.1);
            TaskDone::CanvasImageLoaded {
                target,
                size,
                result,
            }
        });
    }

    /// A canvas PNG was written: the form uses it.
    pub(super) fn canvas_written(
        &mut self,
        purpose: CanvasPurpose,
        result: Result<PathBuf, String>,
    ) {
        let lang = self.state.lang();
        let path = match result {
            Ok(path) => path,
            Err(message) => {
                self.state.notify(
                    NoticeKind::Error,
                    tr_args(lang, "notice.canvas_write_failed", &[("error", &message)]),
                );
                return;
            }
        };
        match purpose {
            CanvasPurpose::Init => {
                self.state.form.set_init(path);
                self.state
                    .notify(NoticeKind::Info, tr(lang, "notice.canvas_init_set"));
            }
            CanvasPurpose::Overlay => self.state.form.overlay = Some(path),
            CanvasPurpose::Outpaint(spec) => {
                let form = &mut self.state.form;
                form.set_init(path.clone());
                form.strength = 1.0;
                form.outpaint = Some(spec);
                form.mask.path = None;
                self.state.canvas.outpaint_init = Some(path);
                self.state
                    .notify(NoticeKind::Info, tr(lang, "notice.canvas_outpaint_set"));
            }
            CanvasPurpose::Mask => {
                self.state.form.outpaint = None;
                self.state.form.mask.set(path);
                self.state
                    .notify(NoticeKind::Info, tr(lang, "notice.canvas_mask_set"));
            }
            CanvasPurpose::Guide { layer, row } => {
                let Some(index) = self.state.form.controls.iter().position(|r| r.id == row) else {
                    return; // The row was removed meanwhile.
                };
                if let Some(control) = self.state.form.controls.get_mut(index) {
                    control.set_image(path.clone());
                    // The layer already is the guide.
                    control.preprocessor = Preprocessor::None;
                }
                // The row's guide layer shows the new guide: at once when it was made from it.
                let document = &mut self.state.canvas.document;
                let guide_layer = document.ensure_guide_layer(row);
                if guide_layer == layer
                    && let Some(target) = document.layers_mut().iter_mut().find(|l| l.id == layer)
                {
                    target.guide_source = Some(GuideSource {
                        image: path,
                        preprocessor: Preprocessor::None,
                        mask: None,
                    });
                    target.guide_error = None;
                }
                self.state.notify(
                    NoticeKind::Info,
                    tr_args(lang, "notice.canvas_guide_set", &[("row", &(index + 1))]),
                );
            }
        }
    }

    /// An image for the canvas was read.
    pub(super) fn canvas_image_loaded(
        &mut self,
        target: CanvasTarget,
        size: (u32, u32),
        result: Result<Vec<u8>, String>,
    ) {
        let lang = self.state.lang();
        let pixels = match result {
            Ok(pixels) => pixels,
            Err(message) => {
                self.state.notify(
                    NoticeKind::Error,
                    tr_args(lang, "notice.canvas_load_failed", &[("error", &message)]),
                );
                return;
            }
        };
        let canvas = &mut self.state.canvas;
        if canvas.document.size() != size {
            // The canvas changed size meanwhile: scale the image to it.
            let Some(image) = image::RgbaImage::from_raw(size.0, size.1, pixels) else {
                return;
            };
            let (width, height) = canvas.document.size();
            let scaled = image::imageops::resize(
                &image,
                width,
                height,
                image::imageops::FilterType::Triangle,
            );
            return self.canvas_image_loaded(target, (width, height), Ok(scaled.into_raw()));
        }
        match target {
            CanvasTarget::Layer(id) => {
                canvas.document.replace_pixels(id, pixels);
            }
            CanvasTarget::NewBackground => {
                if let Some(id) = canvas.document.add_background(pixels) {
                    canvas.selected = Some(id);
                }
            }
        }
    }

    /// Keeps one guide layer per ControlNet row and loads each row's guide into its layer
    /// when the row's image or preprocessor changed (in the background).
    pub(super) fn sync_canvas_guides(&mut self) {
        let form = &self.state.form;
        let rows: Vec<(u64, Option<GuideSource>)> = form
            .controls
            .iter()
            .map(|row| {
                let inpaint = row.preprocessor == Preprocessor::Inpaint;
                // An inpainting row without an image of its own uses the init image.
                let image = match &row.image {
                    Some(image) if !row.image_missing => Some(image.clone()),
                    None if inpaint => form.init.clone(),
                    _ => None,
                };
                let source = image.map(|image| GuideSource {
                    image,
                    preprocessor: row.preprocessor,
                    mask: if inpaint {
                        form.mask.path.clone()
                    } else {
                        None
                    },
                });
                (row.id, source)
            })
            .collect();
        let ids: Vec<u64> = rows.iter().map(|(id, _)| *id).collect();
        let canvas = &mut self.state.canvas;
        if canvas.document.keep_guides_of(&ids) {
            canvas.fix_selection();
        }
        let size = canvas.document.size();
        // The canvas takes the generation size when it is next shown (or exported from);
        // guides are made at that size, not at a stale one.
        let (width, height) = (self.state.form.width, self.state.form.height);
        let stale = size != (width, height) && valid_side(width) && valid_side(height);
        for (row, source) in rows {
            let layer = canvas.document.ensure_guide_layer(row);
            let Some(source) = source.filter(|_| !stale) else {
                continue;
            };
            let shown = canvas
                .document
                .layer(layer)
                .and_then(|l| l.guide_source.as_ref());
            if shown == Some(&source) || canvas.guide_loads.get(&layer) == Some(&source) {
                continue;
            }
            canvas.guide_loads.insert(layer, source.clone());
            let model_dirs = self.state.settings.model_dirs.clone();
            self.services.tasks.spawn("canvas-guide", move || {
                let result = make_guide(&source, size.0, size.1, model_dirs);
                TaskDone::GuideLoaded {
                    layer,
                    source,
                    result,
                }
            });
        }
    }

    /// A row's guide was made: show it (unless the row changed meanwhile).
    pub(super) fn guide_loaded(
        &mut self,
        layer: u64,
        source: GuideSource,
        result: Result<image::RgbImage, String>,
    ) {
        let canvas = &mut self.state.canvas;
        if canvas.guide_loads.get(&layer) != Some(&source) {
            return; // A newer load is on its way.
        }
        canvas.guide_loads.remove(&layer);
        match result {
            Ok(guide) => {
                if !canvas.document.set_guide(layer, &guide, source) {
                    // The canvas changed size meanwhile; the next sync loads it again.
                }
            }
            Err(message) => {
                if let Some(target) = canvas
                    .document
                    .layers_mut()
                    .iter_mut()
                    .find(|l| l.id == layer)
                {
                    target.guide_source = Some(source);
                    target.guide_error = Some(message);
                }
            }
        }
    }

    /// Looks for the form's restored files on disk (off the UI thread) and marks the missing.
    pub(super) fn check_form_files(&mut self) {
        let files = self.state.form.referenced_files();
        if files.is_empty() {
            self.state.form.mark_missing(&HashSet::new());
            return;
        }
        self.services.tasks.spawn("check-files", move || {
            let missing = files.into_iter().filter(|path| !path.exists()).collect();
            TaskDone::FilesChecked(missing)
        });
    }

    /// A file dropped on the Generate panel's ControlNet cards or mask controls, or on the
    /// Canvas section (a new background layer). Returns whether it was taken.
    pub(super) fn canvas_drop(&mut self, path: &Path, pos: Option<egui::Pos2>) -> bool {
        match self.state.section {
            Section::Canvas => {
                self.load_into_canvas(path.to_path_buf(), CanvasTarget::NewBackground);
                true
            }
            Section::Generate => {
                let Some(pos) = pos else { return false };
                let row = self
                    .state
                    .controlnet_drop_targets
                    .iter()
                    .find(|(_, rect)| rect.contains(pos))
                    .map(|(id, _)| *id);
                if let Some(row) = row
                    && let Some(control) = self.state.form.control_mut(row)
                {
                    control.set_image(path.to_path_buf());
                    return true;
                }
                if self
                    .state
                    .mask_drop_target
                    .is_some_and(|rect| rect.contains(pos))
                {
                    self.state.form.mask.set(path.to_path_buf());
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// For screenshots: loads images into the background and sketch layers, makes the guide
    /// layers of the form's ControlNet rows and selects the first.
    pub fn prepare_canvas_shot(&mut self, background: Option<PathBuf>, sketch: Option<PathBuf>) {
        let document = &self.state.canvas.document;
        let layer_of = |kind| document.first_of(kind).map(|l| l.id);
        let targets = [
            (background, layer_of(LayerKind::Background)),
            (sketch, layer_of(LayerKind::Sketch)),
        ];
        for (path, layer) in targets {
            if let (Some(path), Some(layer)) = (path, layer) {
                self.load_into_canvas(path, CanvasTarget::Layer(layer));
            }
        }
        self.sync_canvas_guides();
        let first_guide = self
            .state
            .form
            .controls
            .first()
            .and_then(|row| self.canvas_guide_layer(row.id));
        if let Some(layer) = first_guide {
            self.state.canvas.selected = Some(layer);
        }
    }

    /// For screenshots: a text layer showing `text` (`\n` for line breaks) near the top left,
    /// selected, with the text tool active.
    pub fn add_canvas_shot_text(&mut self, text: &str) {
        self.fit_canvas_to_form();
        let canvas = &mut self.state.canvas;
        let (width, height) = canvas.document.size();
        let spec = crate::gui::canvas::text::TextSpec {
            text: text.replace("\\n", "\n"),
            size: (height as f32 / 8.0).round(),
            color: [255, 222, 120, 255],
            x: (width as f32 * 0.05).round(),
            y: (height as f32 * 0.05).round(),
            ..canvas.text.clone()
        };
        let id = canvas.document.add_text(spec);
        canvas.selected = Some(id);
        canvas.tool = crate::gui::canvas::Tool::Text;
    }

    /// The guide layer of ControlNet row `row` (by the row's id).
    pub fn canvas_guide_layer(&self, row: u64) -> Option<u64> {
        self.state
            .canvas
            .document
            .layers()
            .iter()
            .find(|l| l.kind == LayerKind::Guide { row })
            .map(|l| l.id)
    }
}

/// Renders an export and writes it as a content-named PNG.
fn write_export(dir: &Path, prefix: &str, export: &Export) -> Result<PathBuf, String> {
    write_content_named_png(dir, prefix, &export.render())
}

#[cfg(test)]
mod guide_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn depth_guides_use_the_network_in_the_model_folders() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let source = GuideSource {
            image: fixtures.join("init-64.png"),
            preprocessor: Preprocessor::Depth,
            mask: None,
        };
        // No network anywhere: the error names what to get.
        let empty = tempfile::tempdir().unwrap();
        let error = make_guide(&source, 64, 64, vec![empty.path().to_path_buf()]).unwrap_err();
        assert!(error.contains("Depth-Anything"), "{error}");
        // The tiny Depth Anything in a model folder: a grey guide at the canvas size.
        let guide = make_guide(&source, 64, 64, vec![fixtures.join("tiny-depth-anything")]);
        let guide = guide.unwrap();
        assert_eq!(guide.dimensions(), (64, 64));
        assert!(guide.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        let (min, max) = guide
            .pixels()
            .fold((255, 0), |(lo, hi), p| (lo.min(p.0[0]), hi.max(p.0[0])));
        assert_eq!((min, max), (0, 255), "min-max normalised depth");
    }

    #[test]
    fn inpaint_guides_show_the_mask_area_black() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut source = GuideSource {
            image: fixtures.join("init-64.png"),
            preprocessor: Preprocessor::Inpaint,
            mask: None,
        };
        let error = make_guide(&source, 64, 64, Vec::new()).unwrap_err();
        assert!(error.contains("mask"), "{error}");
        source.mask = Some(fixtures.join("mask-64.png"));
        let guide = make_guide(&source, 64, 64, Vec::new()).unwrap();
        let mask = image::open(fixtures.join("mask-64.png"))
            .unwrap()
            .to_luma8();
        let photo = image::open(fixtures.join("init-64.png")).unwrap().to_rgb8();
        for ((g, p), m) in guide.pixels().zip(photo.pixels()).zip(mask.pixels()) {
            if m.0[0] >= 128 {
                assert_eq!(g.0, [0, 0, 0]);
            } else {
                assert_eq!(g, p);
            }
        }
    }
}
