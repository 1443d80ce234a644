//! Image-side models and operators: the WD14 image tagger for auto-captions, ControlNet
//! preprocessors (canny, depth, lineart, scribble) and their networks (more to come: face
//! detection and embedding).

pub mod annotators;
pub mod depth;
pub mod face;
pub mod hed;
pub mod interpolate;
pub mod layers;
pub mod lineart;
pub mod preprocess;
pub mod resample;
pub mod scribble;
pub mod tagger;

pub use tagger::{Tag, TagCategory, Tagger, Thresholds};
