//! The user's library: settings (TOML under the OS config dir), the outputs gallery and history
//! index (SQLite), creation records exported as HTML and JSON, and the model library (Kiln's own model folder plus existing
//! A1111/Forge, ComfyUI and Fooocus installs).
//!
//! Nothing here draws. Functions that touch the disk more than once (folder scans, gallery
//! queries, thumbnails) say "call off the UI thread" in their docs; [`models::HashJobs`] runs
//! its own thread and reports through a channel.

pub mod catalog;
pub mod download;
pub mod gallery;
pub mod instantid;
pub mod models;
pub mod presets;
pub mod record;
pub mod settings;

pub(crate) mod fsutil;

pub use gallery::{Gallery, GalleryEntry, GalleryQuery};
pub use models::{ExternalLayout, HashJobs, ModelEntry, ModelFileKind};
pub use settings::{Language, Precision, Settings, Theme};
