//! Image-side models and operators: the WD14 image tagger for auto-captions (more to come:
//! face detection and embedding, ControlNet preprocessors).

pub mod preprocess;
pub mod resample;
pub mod tagger;

pub use tagger::{Tag, TagCategory, Tagger, Thresholds};
