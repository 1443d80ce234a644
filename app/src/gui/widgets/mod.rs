//! Reusable widgets.

pub mod canvas;
pub mod image_viewer;
