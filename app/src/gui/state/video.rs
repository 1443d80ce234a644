//! State of the Video section: the still, the SVD model, the clip's settings, the motion brush,
//! the running clip's progress (steps, then decoded frames, with an estimate before it starts and
//! an ETA while it runs), and the player of the finished clip.

use crate::worker::JobId;
use crossbeam_channel::Receiver;
use egui::{ColorImage, TextureHandle, TextureOptions};
use image::{GrayImage, RgbImage};
use kiln_inference::CancelToken;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frame sizes offered (width, height): SVD's native 1024×576, quicker ones, portrait, and a
/// draft size for a first look on a CPU.
pub const SIZES: [(usize, usize); 5] =
    [(1024, 576), (768, 432), (512, 288), (576, 1024), (384, 216)];

/// Frame counts offered: SVD's 14, SVD-XT's 25, and short tries.
pub const FRAME_COUNTS: [usize; 4] = [6, 8, 14, 25];

/// Radius of the motion brush, in still pixels per 100 of its longer side.
pub const BRUSH_RADIUS: f32 = 6.0;

/// What the section asks the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoAction {
    /// Open a dialog for the still.
    PickImage,
    /// Use this still.
    SetImage(PathBuf),
    /// Open a dialog for an SVD folder or file.
    PickModel,
    /// Use this model.
    SetModel(PathBuf),
    /// Look for SVD models in the model folders (and offer the download when there is none).
    FindModels,
    /// Make the clip.
    Generate,
    /// Stop it.
    Cancel,
    /// Write the clip: `.mp4`, `.gif`, `.webp` or a folder of PNG frames.
    Export(ExportKind),
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// H.264 MP4.
    Mp4,
    /// Animated GIF.
    Gif,
    /// Animated lossless WebP.
    Webp,
    /// A folder of PNG frames.
    Frames,
}

impl ExportKind {
    /// Every format, in button order.
    pub const ALL: [ExportKind; 4] = [
        ExportKind::Mp4,
        ExportKind::Gif,
        ExportKind::Webp,
        ExportKind::Frames,
    ];

    /// Button label key.
    pub fn label_key(self) -> &'static str {
        match self {
            ExportKind::Mp4 => "video.export_mp4",
            ExportKind::Gif => "video.export_gif",
            ExportKind::Webp => "video.export_webp",
            ExportKind::Frames => "video.export_frames",
        }
    }

    /// File extension (`None` for a folder).
    pub fn extension(self) -> Option<&'static str> {
        match self {
            ExportKind::Mp4 => Some("mp4"),
            ExportKind::Gif => Some("gif"),
            ExportKind::Webp => Some("webp"),
            ExportKind::Frames => None,
        }
    }
}

/// What a running clip reports.
#[derive(Debug)]
pub enum VideoEvent {
    /// The model is loaded: the estimate for these settings, in seconds.
    Estimate(f64),
    /// A denoising step finished.
    Step {
        /// Steps done.
        step: usize,
        /// All steps.
        total: usize,
    },
    /// Frames were decoded.
    Decoded {
        /// Frames decoded so far.
        frames: usize,
        /// All frames.
        total: usize,
    },
    /// The clip is done (`Err(None)`: cancelled).
    Finished(Result<Clip, Option<String>>),
}

/// A finished clip.
#[derive(Clone, Debug)]
pub struct Clip {
    /// The frames, in generation order.
    pub frames: Vec<Arc<RgbImage>>,
    /// Its recipe (written beside exports).
    pub recipe: serde_json::Value,
    /// Frames per second.
    pub fps: u32,
    /// Seconds it took.
    pub seconds: f64,
}

/// A clip handed to the worker, and what it reported so far.
pub struct VideoRun {
    /// The worker job.
    pub job: JobId,
    /// Stops it.
    pub cancel: CancelToken,
    /// Events from the worker.
    pub events: Receiver<VideoEvent>,
    /// When it was queued.
    pub started: Instant,
    /// When the first step finished (the ETA counts from there: loading is not a step).
    pub first_step: Option<Instant>,
    /// Estimated seconds for the whole clip (from the model's FLOPs).
    pub estimate: Option<f64>,
    /// Steps done / all.
    pub steps: (usize, usize),
    /// Frames decoded / all.
    pub decoded: (usize, usize),
}

impl VideoRun {
    /// A run just queued.
    pub fn new(job: JobId, cancel: CancelToken, events: Receiver<VideoEvent>) -> Self {
        VideoRun {
            job,
            cancel,
            events,
            started: Instant::now(),
            first_step: None,
            estimate: None,
            steps: (0, 0),
            decoded: (0, 0),
        }
    }

    /// Progress in [0, 1]: denoising weighs 80 %, decoding 20 %.
    pub fn fraction(&self) -> f32 {
        let part = |(done, total): (usize, usize)| {
            if total == 0 {
                0.0
            } else {
                done as f32 / total as f32
            }
        };
        (0.8 * part(self.steps) + 0.2 * part(self.decoded)).clamp(0.0, 1.0)
    }

    /// Time left: at the pace so far once a step finished, else from the estimate.
    pub fn eta(&self) -> Option<Duration> {
        let fraction = self.fraction();
        match self.first_step {
            Some(first) if fraction > 0.0 => {
                let elapsed = first.elapsed().as_secs_f64();
                let start_fraction = 0.8 / self.steps.1.max(1) as f32;
                let done = (fraction - start_fraction).max(1e-3);
                Some(Duration::from_secs_f64(
                    elapsed * f64::from(1.0 - fraction) / f64::from(done),
                ))
            }
            _ => self.estimate.map(|s| {
                Duration::from_secs_f64((s - self.started.elapsed().as_secs_f64()).max(0.0))
            }),
        }
    }
}

/// The player of a finished clip.
#[derive(Debug, Default)]
pub struct Player {
    /// Playing (else paused).
    pub playing: bool,
    /// Frame shown.
    pub index: usize,
    /// Start again at the end.
    pub looping: bool,
    /// When the shown frame appeared (seconds of `egui` time).
    pub shown_at: f64,
}

impl Player {
    /// Advances by whole frames at `fps` since the last frame change; stops at the end
    /// unless looping. Returns whether the frame changed.
    pub fn tick(&mut self, now: f64, fps: u32, frames: usize) -> bool {
        if !self.playing || frames == 0 {
            self.shown_at = now;
            return false;
        }
        let period = 1.0 / f64::from(fps.max(1));
        if now - self.shown_at < period {
            return false;
        }
        let steps = ((now - self.shown_at) / period).floor() as usize;
        self.shown_at += steps as f64 * period;
        let next = self.index + steps;
        if next >= frames {
            if self.looping {
                self.index = next % frames;
            } else {
                self.index = frames - 1;
                self.playing = false;
            }
        } else {
            self.index = next;
        }
        true
    }
}

/// The still being animated.
pub struct Still {
    /// Its file.
    pub path: PathBuf,
    /// Its pixels.
    pub image: Arc<RgbImage>,
    /// On screen.
    pub texture: Option<TextureHandle>,
}

/// Everything the Video section shows.
pub struct VideoState {
    /// The still.
    pub still: Option<Still>,
    /// Why the still could not be read.
    pub still_error: Option<String>,
    /// The SVD model (folder or single file).
    pub model: Option<PathBuf>,
    /// SVD models found in the model folders.
    pub found: Vec<PathBuf>,
    /// Whether the model folders were searched.
    pub searched: bool,
    /// Frames per second.
    pub fps: u32,
    /// Motion bucket id.
    pub motion: u32,
    /// Noise augmentation.
    pub noise_aug: f32,
    /// Frames.
    pub frames: usize,
    /// Denoising steps.
    pub steps: usize,
    /// Seed (a new random one per clip when `random_seed`).
    pub seed: u64,
    /// Draw a new seed for every clip.
    pub random_seed: bool,
    /// Index into [`SIZES`].
    pub size: usize,
    /// Loop back to the first frame.
    pub loop_clip: bool,
    /// Export forward then backward.
    pub ping_pong: bool,
    /// Motion brush on: the mask below is used (white = may move).
    pub brush: bool,
    /// Erase instead of paint.
    pub erase: bool,
    /// The motion mask, at the still's size (created black when the brush is turned on).
    pub mask: Option<GrayImage>,
    /// The mask changed since its overlay texture was made.
    pub mask_dirty: bool,
    /// The mask overlay on screen.
    pub mask_texture: Option<TextureHandle>,
    /// The running clip.
    pub run: Option<VideoRun>,
    /// The last finished clip.
    pub clip: Option<Clip>,
    /// Its frames on screen.
    pub textures: Vec<TextureHandle>,
    /// The player.
    pub player: Player,
    /// An export is being written.
    pub exporting: bool,
    /// What went wrong last.
    pub error: Option<String>,
    /// Start a clip as soon as the still and the model are there (screenshots).
    pub generate_when_ready: bool,
}

impl Default for VideoState {
    fn default() -> Self {
        VideoState {
            still: None,
            still_error: None,
            model: None,
            found: Vec::new(),
            searched: false,
            fps: 7,
            motion: 127,
            noise_aug: 0.02,
            frames: 14,
            steps: 25,
            seed: 1,
            random_seed: true,
            size: 0,
            loop_clip: false,
            ping_pong: false,
            brush: false,
            erase: false,
            mask: None,
            mask_dirty: false,
            mask_texture: None,
            run: None,
            clip: None,
            textures: Vec::new(),
            player: Player {
                looping: true,
                ..Player::default()
            },
            exporting: false,
            error: None,
            generate_when_ready: false,
        }
    }
}

impl VideoState {
    /// Whether a clip is being made.
    pub fn busy(&self) -> bool {
        self.run.is_some()
    }

    /// Whether Generate can start.
    pub fn ready(&self) -> bool {
        self.still.is_some() && self.model.is_some() && !self.busy()
    }

    /// The still read from `path` (its mask is dropped).
    pub fn set_still(&mut self, path: PathBuf, image: RgbImage) {
        self.still = Some(Still {
            path,
            image: Arc::new(image),
            texture: None,
        });
        self.still_error = None;
        self.mask = None;
        self.mask_texture = None;
        self.brush = false;
    }

    /// Turns the brush on (a black mask: nothing moves until painted) or off (no mask).
    pub fn set_brush(&mut self, on: bool) {
        self.brush = on;
        if on
            && self.mask.is_none()
            && let Some(still) = &self.still
        {
            self.mask = Some(GrayImage::new(still.image.width(), still.image.height()));
            self.mask_dirty = true;
        }
    }

    /// Clears the mask (black again).
    pub fn clear_mask(&mut self) {
        if let Some(mask) = &mut self.mask {
            mask.pixels_mut().for_each(|p| p.0 = [0]);
            self.mask_dirty = true;
        }
    }

    /// Paints (or erases) a disc at still pixel `(x, y)` of radius `radius`.
    pub fn paint(&mut self, x: f32, y: f32, radius: f32) {
        let value = if self.erase { 0 } else { 255 };
        let Some(mask) = &mut self.mask else {
            return;
        };
        let (w, h) = mask.dimensions();
        let r = radius.max(1.0);
        let (x0, x1) = (
            (x - r).floor().max(0.0) as u32,
            (x + r).ceil().min(w as f32) as u32,
        );
        let (y0, y1) = (
            (y - r).floor().max(0.0) as u32,
            (y + r).ceil().min(h as f32) as u32,
        );
        for py in y0..y1 {
            for px in x0..x1 {
                let (dx, dy) = (px as f32 + 0.5 - x, py as f32 + 0.5 - y);
                if dx * dx + dy * dy <= r * r {
                    mask.put_pixel(px, py, image::Luma([value]));
                }
            }
        }
        self.mask_dirty = true;
    }

    /// The mask the clip uses: only with the brush on.
    pub fn motion_mask(&self) -> Option<GrayImage> {
        self.mask.clone().filter(|_| self.brush)
    }

    /// Takes a finished clip: its frames become textures and the player starts.
    pub fn show_clip(&mut self, clip: Clip, ctx: &egui::Context) {
        self.textures = clip
            .frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let size = [frame.width() as usize, frame.height() as usize];
                let pixels = ColorImage::from_rgb(size, frame.as_raw());
                ctx.load_texture(format!("video-frame-{i}"), pixels, TextureOptions::LINEAR)
            })
            .collect();
        self.player.index = 0;
        self.player.playing = true;
        self.player.shown_at = ctx.input(|i| i.time);
        self.clip = Some(clip);
    }

    /// Applies the run's events; returns the error of a failed run.
    pub fn drain(&mut self, ctx: &egui::Context) -> Option<String> {
        let mut finished = None;
        if let Some(run) = &mut self.run {
            for event in run.events.try_iter() {
                match event {
                    VideoEvent::Estimate(s) => run.estimate = Some(s),
                    VideoEvent::Step { step, total } => {
                        run.first_step.get_or_insert_with(Instant::now);
                        run.steps = (step, total);
                    }
                    VideoEvent::Decoded { frames, total } => run.decoded = (frames, total),
                    VideoEvent::Finished(result) => finished = Some(result),
                }
            }
            ctx.request_repaint_after(Duration::from_millis(250));
        }
        match finished? {
            Ok(clip) => {
                self.run = None;
                self.error = None;
                self.show_clip(clip, ctx);
                None
            }
            Err(None) => {
                self.run = None;
                None
            }
            Err(Some(e)) => {
                self.run = None;
                self.error = Some(e.clone());
                Some(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_player_steps_at_the_clip_rate_and_loops_or_stops() {
        let mut p = Player {
            playing: true,
            looping: false,
            ..Player::default()
        };
        assert!(!p.tick(0.05, 10, 3));
        assert!(p.tick(0.1, 10, 3));
        assert_eq!(p.index, 1);
        p.tick(0.35, 10, 3);
        assert_eq!((p.index, p.playing), (2, false));
        p.looping = true;
        p.playing = true;
        p.tick(0.45, 10, 3);
        assert_eq!(p.index, 0);
    }

    #[test]
    fn the_brush_paints_white_and_erases_black() {
        let mut s = VideoState::default();
        s.set_still(PathBuf::from("a.png"), RgbImage::new(40, 20));
        assert!(s.motion_mask().is_none());
        s.set_brush(true);
        assert!(s.motion_mask().unwrap().pixels().all(|p| p.0[0] == 0));
        s.paint(10.0, 10.0, 3.0);
        let mask = s.motion_mask().unwrap();
        assert_eq!(mask.get_pixel(10, 10).0[0], 255);
        assert_eq!(mask.get_pixel(30, 10).0[0], 0);
        s.erase = true;
        s.paint(10.0, 10.0, 3.0);
        assert_eq!(s.motion_mask().unwrap().get_pixel(10, 10).0[0], 0);
        s.set_brush(false);
        assert!(s.motion_mask().is_none());
    }

    #[test]
    fn progress_weighs_steps_then_decoding() {
        let (_tx, rx) = crossbeam_channel::unbounded();
        let mut run = VideoRun::new(1, CancelToken::default(), rx);
        run.estimate = Some(100.0);
        assert!(run.eta().unwrap().as_secs_f64() > 99.0);
        run.steps = (5, 10);
        assert!((run.fraction() - 0.4).abs() < 1e-6);
        run.steps = (10, 10);
        run.decoded = (7, 14);
        assert!((run.fraction() - 0.9).abs() < 1e-6);
    }
}
