//! Pipelines: each a function of a Recipe.

pub mod conditioning;
pub mod inpaint;
pub mod outpaint;
pub mod regions;
pub mod stable_diffusion;
