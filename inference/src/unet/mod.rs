//! The denoising UNet (SD1.x, SD2.x, SDXL) with hooks.
