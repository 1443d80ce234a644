//! Files in and out: safetensors, model folders and single-file checkpoints, hashes, PNG metadata.

pub mod convert;
pub mod family;
pub mod ldm;
pub mod model;
pub mod png_meta;
pub mod weights;
