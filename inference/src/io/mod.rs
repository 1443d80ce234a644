//! Files in and out: safetensors, model folders and single-file checkpoints, hashes, PNG metadata.

pub mod family;
pub mod ldm;
// pub mod model; (enabled once ldm::inspect_single_file lands)
pub mod png_meta;
pub mod weights;
