//! Noise schedules, samplers and the torch-compatible CPU RNG.

pub mod rng;
pub(crate) mod schedule;
pub mod scheduler;
pub mod scheduler_config;
