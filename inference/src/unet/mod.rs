//! The denoising UNet (SD1.x, SD2.x, SDXL) with hooks for ControlNet residuals and per-layer
//! attention processors.

pub mod attention;
pub mod config;
pub mod consistent;
pub mod flops;
pub mod model;
pub mod regional;
pub mod resnet;

pub use config::UNetConfig;
pub use model::{TextTimeInputs, UNet, UNetHooks};
