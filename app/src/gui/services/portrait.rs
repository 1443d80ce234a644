//! The Portrait section's work off the UI thread, as one-off tasks: reading a face photo and
//! finding its faces (the SCRFD detector of the antelopev2 models, loaded once and kept), the
//! InstantID files' state on disk, the adapter's one-time conversion from its published pickle,
//! and turning the section's settings into a recipe (a style preset is resolved against the
//! model library). The generation itself is an ordinary worker job.

use crate::gui::state::portrait::{DetectProblem, FaceBox, FacesDetected, InstantIdStatus};
use crate::library::instantid::{find_instantid, unconverted_adapter};
use crate::library::models::ModelEntry;
use crate::library::presets::{ModelLibrary, Preset, PresetError, PresetWarning, ResolveRequest};
use egui::ColorImage;
use kiln_inference::Recipe;
use kiln_inference::io::family::Family;
use kiln_inference::recipe::{FaceFixSpec, FaceSpec};
use kiln_inference::vision::face::scrfd::Detector;
use kiln_inference::vision::face::{DETECTOR_FILE, find_models};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest side of the photo as shown (its faces stay in photo pixels).
pub const DISPLAY_SIDE: u32 = 768;
/// The prompt when none is typed.
pub const DEFAULT_PROMPT: &str = "a portrait photo of a person";

/// What a Portrait task brings back.
#[derive(Debug)]
pub enum PortraitDone {
    /// A photo's faces were looked for; InstantID's files were looked at too.
    Detected(FacesDetected, InstantIdStatus),
    /// A file dialog closed: the face photo (`pose` false) or the pose photo.
    Picked {
        /// For the pose photo.
        pose: bool,
        /// The file (`None`: cancelled).
        path: Option<PathBuf>,
    },
    /// A pose photo was read for display (or not).
    PoseLoaded(PathBuf, Option<ColorImage>),
    /// InstantID's files were looked at.
    Checked(InstantIdStatus),
    /// The adapter was converted (the InstantID folder), or why not.
    Converted(Result<PathBuf, String>),
    /// The recipe of a portrait job (and what to tell about its preset), or why it cannot run.
    Prepared(Result<(Box<Recipe>, Vec<String>), PrepareError>),
}

/// Why a portrait job cannot start.
#[derive(Debug)]
pub enum PrepareError {
    /// The preset did not resolve (its name, the error).
    Preset(String, Box<PresetError>),
    /// The model is not SDXL (its family id).
    NotSdxl(String),
    /// InstantID's files are missing or unconverted.
    InstantId(InstantIdStatus),
    /// Anything else, for the user.
    Other(String),
}

/// The detector of the last folder used, kept between photos.
static DETECTOR: Mutex<Option<(PathBuf, Arc<Detector>)>> = Mutex::new(None);

fn detector(folder: &Path) -> kiln_inference::Result<Arc<Detector>> {
    let mut cached = DETECTOR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((dir, detector)) = cached.as_ref()
        && dir == folder
    {
        return Ok(detector.clone());
    }
    let detector = Arc::new(Detector::load(&folder.join(DETECTOR_FILE))?);
    *cached = Some((folder.to_path_buf(), detector.clone()));
    Ok(detector)
}

/// Reads `path` and finds its faces (largest first) with the face models in `model_dirs`.
pub fn detect_faces(request: u64, path: PathBuf, model_dirs: &[PathBuf]) -> FacesDetected {
    let analysis = find_models(model_dirs);
    let mut answer = FacesDetected {
        request,
        path: path.clone(),
        analysis: analysis.clone(),
        photo_size: [0, 0],
        result: Err(DetectProblem::NoFace),
        problem: None,
    };
    let photo = match image::open(&path) {
        Ok(photo) => photo.to_rgb8(),
        Err(e) => {
            answer.result = Err(DetectProblem::Failed(format!("{e} ({})", path.display())));
            return answer;
        }
    };
    answer.photo_size = [photo.width(), photo.height()];
    let shown = display_image(&photo);
    let Some(folder) = analysis else {
        answer.result = Ok((shown, Vec::new()));
        answer.problem = Some(DetectProblem::ModelsMissing);
        return answer;
    };
    let found = detector(&folder).and_then(|d| d.detect(&photo));
    answer.result = match found {
        Ok(mut faces) => {
            // The engine's order (`FaceAnalyzer::detect`): largest box first.
            faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
            let boxes = faces
                .iter()
                .map(|f| FaceBox {
                    bbox: f.bbox,
                    score: f.score,
                })
                .collect();
            Ok((shown, boxes))
        }
        Err(e) => {
            answer.problem = Some(DetectProblem::Failed(format!("{e:#}")));
            Ok((shown, Vec::new()))
        }
    };
    answer
}

/// The photo scaled down to [`DISPLAY_SIDE`] for display.
pub fn display_image(photo: &image::RgbImage) -> ColorImage {
    let (width, height) = photo.dimensions();
    let longest = width.max(height).max(1);
    let small = if longest > DISPLAY_SIDE {
        let scale = f64::from(DISPLAY_SIDE) / f64::from(longest);
        let w = ((f64::from(width) * scale).round() as u32).max(1);
        let h = ((f64::from(height) * scale).round() as u32).max(1);
        image::imageops::thumbnail(photo, w, h)
    } else {
        photo.clone()
    };
    ColorImage::from_rgb(
        [small.width() as usize, small.height() as usize],
        small.as_raw(),
    )
}

/// A pose photo's pixels for display.
pub fn load_pose(path: PathBuf) -> PortraitDone {
    let shown = image::open(&path)
        .ok()
        .map(|photo| display_image(&photo.to_rgb8()));
    PortraitDone::PoseLoaded(path, shown)
}

/// Whether InstantID's files are in the model folders, converted.
pub fn instantid_status(model_dirs: &[PathBuf]) -> InstantIdStatus {
    match find_instantid(model_dirs) {
        None => InstantIdStatus::Missing,
        Some(dir) => match unconverted_adapter(&dir) {
            Some(_) => InstantIdStatus::Unconverted(dir),
            None => InstantIdStatus::Ready(dir),
        },
    }
}

/// Converts the InstantID folder's `ip-adapter.bin` to `ip-adapter.safetensors` beside it.
pub fn convert_adapter(dir: PathBuf) -> PortraitDone {
    use kiln_inference::adapters::instantid::{ADAPTER_FILE, ADAPTER_PICKLE};
    let result = kiln_inference::io::convert::torch_to_safetensors(
        &dir.join(ADAPTER_PICKLE),
        &dir.join(ADAPTER_FILE),
    )
    .map(|_| dir)
    .map_err(|e| format!("{e:#}"));
    PortraitDone::Converted(result)
}

/// Where a portrait job's style comes from.
#[derive(Clone, Debug)]
pub enum StyleSource {
    /// The Generate form's recipe (model, negative, sampler, LoRAs, size…).
    Form(Box<Recipe>),
    /// A preset, resolved here against the library, the form's model as the fallback.
    Preset {
        /// The preset.
        preset: Box<Preset>,
        /// Its name, for messages.
        name: String,
        /// The form's model.
        fallback_model: Option<PathBuf>,
        /// The library as scanned.
        entries: Vec<ModelEntry>,
    },
}

/// Everything a portrait job needs, copied from the UI state.
#[derive(Clone, Debug)]
pub struct PortraitRequest {
    /// The style.
    pub style: StyleSource,
    /// The prompt as typed (empty: [`DEFAULT_PROMPT`]).
    pub prompt: String,
    /// The face photo.
    pub photo: PathBuf,
    /// The picked face (0 = the largest).
    pub face_index: usize,
    /// The pose photo.
    pub pose: Option<PathBuf>,
    /// Identity strength.
    pub identity: f32,
    /// Keypoint strength.
    pub keypoints: f32,
    /// Face fix after generation.
    pub face_fix: bool,
    /// Images (seeds).
    pub images: u32,
    /// The first seed.
    pub seed: u64,
    /// The face-analysis folder of the detection.
    pub analysis: Option<PathBuf>,
    /// The model folders.
    pub model_dirs: Vec<PathBuf>,
}

/// The recipe of a portrait job (and warnings about the preset), or why it cannot run.
pub fn prepare(request: PortraitRequest) -> Result<(Recipe, Vec<PresetWarning>), PrepareError> {
    let instantid = match instantid_status(&request.model_dirs) {
        InstantIdStatus::Ready(dir) => dir,
        other => return Err(PrepareError::InstantId(other)),
    };
    let typed = request.prompt.trim();
    let prompt = if typed.is_empty() {
        DEFAULT_PROMPT
    } else {
        typed
    };
    let (base, warnings) = match request.style {
        StyleSource::Form(recipe) => {
            let recipe = *recipe;
            // The form's look, without its image inputs: the face photo drives the picture.
            let base = Recipe {
                version: recipe.version,
                model: recipe.model,
                prompt: prompt.to_owned(),
                negative: recipe.negative,
                sampler: recipe.sampler,
                steps: recipe.steps,
                cfg: recipe.cfg,
                width: recipe.width,
                height: recipe.height,
                clip_skip: recipe.clip_skip,
                loras: recipe.loras,
                ..Recipe::default()
            };
            (base, Vec::new())
        }
        StyleSource::Preset {
            preset,
            name,
            fallback_model,
            entries,
        } => {
            let library = ModelLibrary::from_entries(request.model_dirs.clone(), entries);
            let resolve = ResolveRequest {
                prompt: prompt.to_owned(),
                init_image: None,
                caption: None,
                model_override: None,
                fallback_model,
            };
            let resolved = crate::library::presets::resolve(&preset, &resolve, &library)
                .map_err(|e| PrepareError::Preset(name, Box::new(e)))?;
            let mut recipe = resolved.recipe;
            // Preset ControlNets guide a photo; here the face photo and IdentityNet do.
            recipe.controls.clear();
            recipe.init = None;
            (recipe, resolved.warnings)
        }
    };
    let sdxl = Family::Sdxl.id();
    match base.model.family.as_deref() {
        Some(family) if family != sdxl => return Err(PrepareError::NotSdxl(family.to_owned())),
        _ => {}
    }
    if !request.photo.is_file() {
        return Err(PrepareError::Other(format!(
            "face photo not found: {}",
            request.photo.display()
        )));
    }
    let face = FaceSpec {
        image: request.photo,
        index: (request.face_index > 0).then_some(request.face_index),
        strength: request.identity,
        keypoints: request.keypoints,
        pose: request.pose,
        model: instantid,
        analysis: request.analysis.unwrap_or_default(),
    };
    let recipe = Recipe {
        seed: request.seed,
        batch: request.images.max(1),
        face: Some(face),
        face_fix: request.face_fix.then(FaceFixSpec::default),
        ..base
    };
    Ok((recipe, warnings))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
    use super::*;
    use kiln_inference::recipe::ModelRef;

    fn request(dirs: Vec<PathBuf>, family: &str, photo: PathBuf) -> PortraitRequest {
        let form = Recipe {
            model: ModelRef {
                path: PathBuf::from("model"),
                hash: None,
                family: Some(family.to_owned()),
            },
            prompt: "form prompt".into(),
            width: 64,
            height: 64,
            ..Recipe::default()
        };
        PortraitRequest {
            style: StyleSource::Form(Box::new(form)),
            prompt: String::new(),
            photo,
            face_index: 1,
            pose: None,
            identity: 0.7,
            keypoints: 0.6,
            face_fix: true,
            images: 3,
            seed: 42,
            analysis: None,
            model_dirs: dirs,
        }
    }

    #[test]
    fn prepare_checks_instantid_and_the_family() {
        use kiln_inference::adapters::instantid::{ADAPTER_FILE, ADAPTER_PICKLE, CONTROLNET_DIR};
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().to_path_buf()];
        let photo = root.path().join("me.png");
        std::fs::write(&photo, b"x").unwrap();
        let missing = prepare(request(dirs.clone(), "sdxl", photo.clone())).unwrap_err();
        assert!(matches!(
            missing,
            PrepareError::InstantId(InstantIdStatus::Missing)
        ));
        let folder = root.path().join("InstantID");
        std::fs::create_dir_all(folder.join(CONTROLNET_DIR)).unwrap();
        std::fs::write(folder.join(ADAPTER_PICKLE), b"x").unwrap();
        let unconverted = prepare(request(dirs.clone(), "sdxl", photo.clone())).unwrap_err();
        assert!(matches!(
            unconverted,
            PrepareError::InstantId(InstantIdStatus::Unconverted(_))
        ));
        std::fs::write(folder.join(ADAPTER_FILE), b"x").unwrap();
        let sd1 = prepare(request(dirs.clone(), "sd1", photo.clone())).unwrap_err();
        assert!(matches!(sd1, PrepareError::NotSdxl(ref f) if f == "sd1"));
        let (recipe, _) = prepare(request(dirs, "sdxl", photo.clone())).unwrap();
        assert_eq!(recipe.prompt, DEFAULT_PROMPT);
        assert_eq!((recipe.seed, recipe.batch, recipe.width), (42, 3, 64));
        let face = recipe.face.unwrap();
        assert_eq!(face.image, photo);
        assert_eq!(face.index, Some(1));
        assert_eq!((face.strength, face.keypoints), (0.7, 0.6));
        assert_eq!(face.model, folder);
        assert!(recipe.face_fix.is_some());
    }
}
