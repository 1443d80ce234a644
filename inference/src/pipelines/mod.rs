//! Pipelines: each a function of a Recipe.

pub mod conditioning;
pub mod face_fix;
pub mod faces;
pub mod inpaint;
pub mod outpaint;
pub mod regions;
pub mod stable_diffusion;
pub mod story;
