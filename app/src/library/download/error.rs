//! Why a download failed, in words a user can act on. [`DownloadError::is_transient`] says which
//! failures are worth another try (network trouble, 5xx, 429); 401/403/404 and checksum
//! mismatches are not.

use std::path::PathBuf;

/// A failed download.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The cancel token was set. The `.part` file is kept, so the next download resumes.
    #[error("download cancelled")]
    Cancelled,
    /// 401 or 403: the file is gated or private.
    #[error(
        "the Hub refused the download (HTTP {status}): {hint} ({url})",
        hint = if *.token_sent {
            "the token was not accepted, or its account has not accepted the model's licence on its Hugging Face page"
        } else {
            "this file is gated or private; accept its licence on the model's Hugging Face page and give Kiln a Hub token (--token, HF_TOKEN or Settings)"
        }
    )]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// Whether an `Authorization` header was sent.
        token_sent: bool,
        /// The URL asked for.
        url: String,
    },
    /// 404: no such repository, revision or file on this endpoint.
    #[error("not found on the Hub (HTTP 404; is the endpoint right?): {url}")]
    NotFound {
        /// The URL asked for.
        url: String,
    },
    /// Any other HTTP status that is not worth retrying, or a transient one after the last try.
    #[error("the server answered HTTP {status}: {url}")]
    Status {
        /// The status code.
        status: u16,
        /// The URL asked for.
        url: String,
    },
    /// The server said something that makes no sense for a download (bad redirect, wrong range).
    #[error("unexpected answer from the server ({detail}): {url}")]
    BadResponse {
        /// What was wrong.
        detail: String,
        /// The URL asked for.
        url: String,
    },
    /// The connection failed (after the retries).
    #[error("network error after {attempts} tries ({message}): {url}")]
    Network {
        /// What went wrong the last time.
        message: String,
        /// Tries made.
        attempts: u32,
        /// The URL asked for.
        url: String,
    },
    /// The downloaded bytes do not have the expected SHA-256. The file was removed.
    #[error(
        "checksum mismatch: expected SHA-256 {expected}, got {actual}; the file was removed, \
         download it again: {path}"
    )]
    Checksum {
        /// The SHA-256 the catalog or the Hub gave.
        expected: String,
        /// The SHA-256 of what arrived.
        actual: String,
        /// The file that was removed.
        path: PathBuf,
    },
    /// The downloaded file has the wrong length. The file was removed.
    #[error("size mismatch: expected {expected} bytes, got {actual}; the file was removed: {path}")]
    Size {
        /// Expected length.
        expected: u64,
        /// Length that arrived.
        actual: u64,
        /// The file that was removed.
        path: PathBuf,
    },
    /// Not enough free space for what is left to download.
    #[error(
        "not enough disk space: {needed} bytes needed, {available} bytes free: {dir}",
        dir = dir.display()
    )]
    DiskSpace {
        /// Bytes still to download.
        needed: u64,
        /// Bytes free on the file system.
        available: u64,
        /// The folder downloaded into.
        dir: PathBuf,
    },
    /// The catalog entry cannot be downloaded (bad path, no files).
    #[error("{0}")]
    Catalog(String),
    /// Reading or writing a local file failed.
    #[error("{action} failed ({source}): {path}", path = path.display())]
    Io {
        /// What was being done ("writing", "renaming", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl DownloadError {
    /// Whether another try may succeed: network errors and transient HTTP statuses.
    pub fn is_transient(&self) -> bool {
        match self {
            DownloadError::Network { .. } => true,
            DownloadError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        DownloadError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// HTTP statuses worth retrying: 408, 425, 429 and 5xx.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_trouble_is_retried() {
        let url = "http://x".to_owned();
        assert!(
            DownloadError::Network {
                message: "reset".into(),
                attempts: 1,
                url: url.clone()
            }
            .is_transient()
        );
        for status in [500, 502, 503, 429, 408] {
            let error = DownloadError::Status {
                status,
                url: url.clone(),
            };
            assert!(error.is_transient(), "{status}");
        }
        assert!(
            !DownloadError::Status {
                status: 400,
                url: url.clone()
            }
            .is_transient()
        );
        assert!(!DownloadError::NotFound { url: url.clone() }.is_transient());
        let unauthorized = DownloadError::Unauthorized {
            status: 401,
            token_sent: false,
            url,
        };
        assert!(!unauthorized.is_transient());
        assert!(unauthorized.to_string().contains("token"), "{unauthorized}");
    }
}
