//! Reusable widgets.

pub mod image_viewer;
