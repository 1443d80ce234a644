//! Kiln's inference core: model loading, text encoding, UNet, VAE, samplers and pipelines.
//!
//! No UI and no network here. The app and the CLI build a [`Recipe`], hand it to an
//! [`Engine`] and receive [`Progress`] events while it runs; a [`CancelToken`] stops it.

pub mod adapters;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod pipelines;
pub mod recipe;
pub mod sampling;
pub mod text;
pub mod unet;
pub mod vae;
pub mod video;
pub mod vision;

pub use engine::{CancelToken, Engine, Output, Progress, Stage};
pub use error::{Error, Result};
pub use recipe::{LoraSpec, Recipe, SamplerKind};
