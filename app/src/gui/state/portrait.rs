//! What the Portrait section shows: the face photo with the faces found in it (detected off
//! the UI thread, [`crate::gui::services::portrait`]), the picked face, an optional pose photo,
//! the style (a preset or a prompt), InstantID's identity and keypoint strengths, and the
//! results of the last portrait job side by side with their identity scores.

use crate::worker::JobId;
use egui::{TextureHandle, TextureOptions};
use kiln_inference::recipe::DEFAULT_FACE_STRENGTH;
use std::path::PathBuf;

/// Default number of images (seeds) per portrait job.
pub const DEFAULT_IMAGES: u32 = 4;
/// Most images per portrait job.
pub const MAX_IMAGES: u32 = 8;
/// The slider range of both strengths.
pub const STRENGTH_RANGE: std::ops::RangeInclusive<f32> = 0.0..=1.5;
/// Identity scores at or above this read as "same person" (green); below [`WEAK_IDENTITY`]
/// as a miss (red); amber between. ArcFace cosines of one person's photos are typically
/// 0.4–0.8, of two people below 0.2.
pub const STRONG_IDENTITY: f32 = 0.5;
/// See [`STRONG_IDENTITY`].
pub const WEAK_IDENTITY: f32 = 0.25;

/// A face found in the photo (pixels of the photo).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Detection score.
    pub score: f32,
}

/// Why the photo's faces cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub enum DetectProblem {
    /// The antelopev2 face models are not in the model folders.
    ModelsMissing,
    /// The photo has no face the detector finds.
    NoFace,
    /// The picked face is smaller than the identity model needs (its shorter side, in px).
    TooSmall(f32),
    /// Anything else (unreadable photo, broken model), for the user.
    Failed(String),
}

/// Whether InstantID can run, as last looked at on disk.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum InstantIdStatus {
    /// Not looked at yet.
    #[default]
    Unknown,
    /// Ready: the folder.
    Ready(PathBuf),
    /// Found, but its adapter is still the published pickle: it needs converting.
    Unconverted(PathBuf),
    /// Not in the model folders.
    Missing,
}

/// The face photo and what was found in it.
pub struct FacePhoto {
    /// The photo file.
    pub path: PathBuf,
    /// Size of the photo in pixels (faces are in these pixels).
    pub photo_size: [u32; 2],
    /// Its pixels for display (scaled down).
    pub texture: TextureHandle,
    /// Faces, largest first.
    pub faces: Vec<FaceBox>,
}

/// A pose photo (head position and angle).
pub struct PosePhoto {
    /// The file.
    pub path: PathBuf,
    /// Its pixels for display (none while loading or when unreadable).
    pub texture: Option<TextureHandle>,
}

/// A finished portrait.
pub struct PortraitResult {
    /// The PNG on disk.
    pub path: PathBuf,
    /// Its pixels.
    pub texture: TextureHandle,
    /// Its recipe; `recipe.identity` is the ArcFace cosine between the reference face and the
    /// output's largest face (`None`: no face found in the output).
    pub recipe: kiln_inference::Recipe,
}

impl PortraitResult {
    /// The identity score.
    pub fn identity(&self) -> Option<f32> {
        self.recipe.identity
    }
}

/// Where the style comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortraitStyle {
    /// The prompt below with the Generate form's model, LoRAs and settings.
    #[default]
    Prompt,
    /// A style preset, by id (its model, LoRAs and prompt template).
    Preset(String),
}

/// The Portrait section's state.
pub struct PortraitState {
    /// The face photo, once read.
    pub photo: Option<FacePhoto>,
    /// A photo being read and analysed (id of the request, path).
    pub detecting: Option<(u64, PathBuf)>,
    /// Ids of detection requests (answers to older ones are dropped).
    pub next_request: u64,
    /// Why the photo's faces cannot be used.
    pub problem: Option<DetectProblem>,
    /// The picked face (index into the faces, largest first).
    pub selected: usize,
    /// The face-analysis folder the detection used.
    pub analysis: Option<PathBuf>,
    /// The pose photo.
    pub pose: Option<PosePhoto>,
    /// The style.
    pub style: PortraitStyle,
    /// The prompt (fills a preset's `{prompt}`).
    pub prompt: String,
    /// Identity strength (the face tokens' attention weight).
    pub identity: f32,
    /// Keypoint strength (IdentityNet's scale).
    pub keypoints: f32,
    /// Redo each face at a higher resolution after generation.
    pub face_fix: bool,
    /// Images (seeds) per job.
    pub images: u32,
    /// InstantID's files.
    pub instantid: InstantIdStatus,
    /// InstantID's files are being looked at.
    pub checking: bool,
    /// The adapter is being converted.
    pub converting: bool,
    /// The job being prepared (a preset resolved) before it is queued.
    pub preparing: bool,
    /// The queued or running portrait job.
    pub job: Option<JobId>,
    /// Generate as soon as the photo's faces are found (screenshots).
    pub generate_when_found: bool,
    /// Why the last Generate did not start or the job failed.
    pub error: Option<String>,
    /// Results of the last portrait job.
    pub results: Vec<PortraitResult>,
    /// Where the photo and pose drop zones were drawn (a file dropped on the pose zone becomes
    /// the pose photo).
    pub pose_drop_target: Option<egui::Rect>,
    /// Where the photo's faces were drawn: the photo's pixel → screen mapping (`rect` of the
    /// photo on screen).
    pub photo_rect: Option<egui::Rect>,
}

impl Default for PortraitState {
    fn default() -> Self {
        PortraitState {
            photo: None,
            detecting: None,
            next_request: 1,
            problem: None,
            selected: 0,
            analysis: None,
            pose: None,
            style: PortraitStyle::default(),
            prompt: String::new(),
            identity: DEFAULT_FACE_STRENGTH,
            keypoints: DEFAULT_FACE_STRENGTH,
            face_fix: false,
            images: DEFAULT_IMAGES,
            instantid: InstantIdStatus::Unknown,
            checking: false,
            converting: false,
            preparing: false,
            job: None,
            generate_when_found: false,
            error: None,
            results: Vec::new(),
            pose_drop_target: None,
            photo_rect: None,
        }
    }
}

impl PortraitState {
    /// The faces of the photo (empty without one).
    pub fn faces(&self) -> &[FaceBox] {
        self.photo.as_ref().map_or(&[], |p| p.faces.as_slice())
    }

    /// Whether Generate can be pressed (a photo with a usable face, nothing in progress).
    pub fn ready(&self) -> bool {
        !self.faces().is_empty()
            && self.problem.is_none()
            && self.detecting.is_none()
            && !self.converting
            && !self.preparing
    }

    /// Picks face `index` (ignored when out of range); a face too small for the identity
    /// model is reported.
    pub fn select(&mut self, index: usize) {
        let Some(face) = self.faces().get(index).copied() else {
            return;
        };
        self.selected = index;
        let side = (face.bbox[2] - face.bbox[0]).min(face.bbox[3] - face.bbox[1]);
        self.problem = (side < kiln_inference::vision::face::MIN_FACE_SIZE)
            .then_some(DetectProblem::TooSmall(side));
    }

    /// The index of the result with the highest identity score.
    pub fn best(&self) -> Option<usize> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.identity().map(|s| (i, s)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Starts waiting for the detection of `path`; returns the request id.
    pub fn begin_detection(&mut self, path: PathBuf) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        self.detecting = Some((id, path));
        self.problem = None;
        id
    }

    /// A detection answered: keeps it when it answers the newest request.
    pub fn detected(&mut self, ctx: &egui::Context, answer: FacesDetected) {
        if self.detecting.as_ref().map(|(id, _)| *id) != Some(answer.request) {
            return; // A newer photo was dropped meanwhile.
        }
        self.detecting = None;
        self.selected = 0;
        self.analysis = answer.analysis;
        match answer.result {
            Ok((pixels, faces)) => {
                let texture = ctx.load_texture(
                    format!("portrait-{}", answer.path.display()),
                    pixels,
                    TextureOptions::LINEAR,
                );
                let no_face = faces.is_empty();
                self.photo = Some(FacePhoto {
                    path: answer.path,
                    photo_size: answer.photo_size,
                    texture,
                    faces,
                });
                if no_face {
                    self.problem = Some(answer.problem.unwrap_or(DetectProblem::NoFace));
                } else {
                    self.select(0);
                    if self.problem.is_none() {
                        self.problem = answer.problem;
                    }
                }
            }
            Err(problem) => {
                self.photo = None;
                self.problem = Some(problem);
            }
        }
    }
}

/// A detection's answer.
#[derive(Debug)]
pub struct FacesDetected {
    /// The request it answers.
    pub request: u64,
    /// The photo.
    pub path: PathBuf,
    /// The face-analysis folder used (when found).
    pub analysis: Option<PathBuf>,
    /// The photo's size in pixels.
    pub photo_size: [u32; 2],
    /// The photo's pixels (scaled down for display) and its faces in photo pixels, or why
    /// the photo cannot be read.
    pub result: Result<(egui::ColorImage, Vec<FaceBox>), DetectProblem>,
    /// A problem besides a readable photo (face models missing: the photo is shown, no boxes).
    pub problem: Option<DetectProblem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo_with(faces: Vec<FaceBox>) -> PortraitState {
        let ctx = egui::Context::default();
        let mut state = PortraitState::default();
        let request = state.begin_detection(PathBuf::from("me.png"));
        state.detected(
            &ctx,
            FacesDetected {
                request,
                path: PathBuf::from("me.png"),
                analysis: None,
                photo_size: [4, 4],
                result: Ok((egui::ColorImage::filled([4, 4], egui::Color32::RED), faces)),
                problem: None,
            },
        );
        state
    }

    #[test]
    fn picking_faces_reports_small_ones_and_ignores_bad_indices() {
        let big = FaceBox {
            bbox: [0.0, 0.0, 100.0, 120.0],
            score: 0.9,
        };
        let small = FaceBox {
            bbox: [0.0, 0.0, 20.0, 24.0],
            score: 0.8,
        };
        let mut state = photo_with(vec![big, small]);
        assert_eq!((state.selected, &state.problem), (0, &None));
        assert!(state.ready());
        state.select(1);
        assert_eq!(state.selected, 1);
        assert_eq!(state.problem, Some(DetectProblem::TooSmall(20.0)));
        assert!(!state.ready());
        state.select(7);
        assert_eq!(state.selected, 1);
        state.select(0);
        assert_eq!(state.problem, None);
    }

    #[test]
    fn best_is_the_highest_score_and_faceless_results_never_win() {
        let ctx = egui::Context::default();
        let mut state = PortraitState::default();
        assert_eq!(state.best(), None);
        for (seed, identity) in [(1, Some(0.31)), (2, None), (3, Some(0.72)), (4, Some(0.5))] {
            state.results.push(PortraitResult {
                path: PathBuf::from(format!("{seed}.png")),
                texture: ctx.load_texture(
                    "r",
                    egui::ColorImage::filled([1, 1], egui::Color32::BLACK),
                    TextureOptions::LINEAR,
                ),
                recipe: kiln_inference::Recipe {
                    seed,
                    identity,
                    ..kiln_inference::Recipe::default()
                },
            });
        }
        assert_eq!(state.best(), Some(2));
        state.results.retain(|r| r.identity().is_none());
        assert_eq!(state.best(), None);
    }

    #[test]
    fn no_face_and_stale_answers() {
        let mut state = photo_with(Vec::new());
        assert_eq!(state.problem, Some(DetectProblem::NoFace));
        assert!(!state.ready());
        let old = state.begin_detection(PathBuf::from("a.png"));
        let _new = state.begin_detection(PathBuf::from("b.png"));
        state.detected(
            &egui::Context::default(),
            FacesDetected {
                request: old,
                path: PathBuf::from("a.png"),
                analysis: None,
                photo_size: [4, 4],
                result: Err(DetectProblem::ModelsMissing),
                problem: None,
            },
        );
        assert!(state.detecting.is_some(), "a stale answer is dropped");
        assert_eq!(state.problem, None);
    }
}
