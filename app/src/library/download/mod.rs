//! Model downloads from the Hugging Face Hub (or a mirror): catalog models into Kiln's model
//! folder with HTTP range resume, SHA-256 verification, retries with exponential backoff, a
//! free-space check first, temp file + rename, cancel, and progress with speed and ETA.
//!
//! The HTTP client is `ureq` (blocking, rustls): run downloads on their own thread. The UI
//! reports through [`ModelProgress`]; the CLI prints it as one line.

pub mod error;
pub mod fetch;
pub mod hub;
pub mod install;
pub mod rate;
pub mod token;

pub use error::DownloadError;
pub use fetch::{Checked, FileJob, fetch_file, part_path};
pub use hub::{HubOptions, RetryPolicy, resolve_url};
pub use install::{
    FileReport, FileStatus, InstallState, ModelProgress, download_model, file_dest, install_state,
    model_dir, remove_model, verify_model,
};
