//! Noise schedules, samplers and the torch-compatible CPU RNG.

pub mod rng;
pub mod scheduler;
