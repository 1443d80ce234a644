//! LDM / A1111 single-file checkpoints: family detection, config inference and key mapping to diffusers names.
