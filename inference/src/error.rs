//! The error type of the inference core.

use std::path::PathBuf;

/// Everything that can go wrong in the inference core. Messages are meant for users: they say
/// what is wrong and, where it helps, what to do; paths come last.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Width or height not accepted by the model.
    #[error("size must be a positive multiple of 8, got {width}x{height}")]
    BadSize {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// A model file or folder whose layout Kiln does not recognise.
    #[error("unrecognised model ({detail}): {path:?}")]
    UnknownCheckpoint {
        /// What was looked for and not found.
        detail: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// A file that could not be read as the format it claims to be.
    #[error("invalid {format} file ({detail}): {path:?}")]
    InvalidFile {
        /// Format name, e.g. "safetensors".
        format: &'static str,
        /// What is wrong.
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// A file format Kiln refuses to load (pickle), with the reason and the way out.
    #[error("{0}")]
    Refused(String),
    /// A required weight is missing from the loaded files.
    #[error("missing weight {name} in {component}")]
    MissingWeight {
        /// Model component, e.g. "unet".
        component: String,
        /// Tensor name.
        name: String,
    },
    /// A LoRA file that cannot be applied to the loaded model (wrong family, bad shapes).
    #[error("LoRA {path:?}: {detail}")]
    Lora {
        /// What is wrong, in words a user can act on.
        detail: String,
        /// The LoRA file.
        path: PathBuf,
    },
    /// A user-supplied option that is out of range or inconsistent.
    #[error("{0}")]
    InvalidArgument(String),
    /// The job was cancelled through its [`crate::CancelToken`].
    #[error("cancelled")]
    Cancelled,
    /// File system error, with the path it happened on.
    #[error("{source}: {path:?}")]
    Io {
        /// The underlying error.
        source: std::io::Error,
        /// The file or folder.
        path: PathBuf,
    },
    /// Image decoding or encoding error.
    #[error("image error: {0}")]
    Image(String),
    /// Tensor error from candle.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// The GPU (wgpu) could not be used or ran out of memory.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(source: std::io::Error, path: impl Into<PathBuf>) -> Self {
        Error::Io {
            source,
            path: path.into(),
        }
    }
}

/// Result with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
