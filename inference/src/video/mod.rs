//! Image to video with Stable Video Diffusion (SVD, SVD-XT): the spatio-temporal UNet
//! ([`unet`]), the temporal VAE decoder ([`vae`]), their shared blocks and the pipeline that
//! follows diffusers' `StableVideoDiffusionPipeline` ([`pipeline`]).

pub mod blocks;
pub mod cost;
pub mod pipeline;
pub mod single_file;
pub mod transformer;
pub mod unet;
pub mod vae;

pub use cost::{VideoEstimate, default_gflops_per_core};
pub use pipeline::{SvdPipeline, VideoParams, VideoProgress, auto_decode_chunk};
pub use unet::{SvdUNet, SvdUNetConfig};
pub use vae::TemporalVae;
