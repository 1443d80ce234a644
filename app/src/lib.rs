//! Kiln, the app side: CLI commands (and, later, the desktop UI), output files, settings.

pub mod batch;
pub mod cli;
pub mod comic;
pub mod gui;
pub mod i18n;
pub mod library;
pub mod output;
pub mod video;
pub mod worker;
