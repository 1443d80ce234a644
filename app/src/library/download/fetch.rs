//! One file from a Hub URL into `<dest>.part`, resumed with HTTP `Range` after a dropped
//! connection or a restart, retried with exponential backoff on transient failures, checked
//! against the expected length and SHA-256, then renamed to `dest`. The final name only ever
//! holds a complete, verified file.

use super::error::DownloadError;
use super::hub::{HubOptions, join_location, origin};
use kiln_inference::CancelToken;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most redirects followed for one request.
const MAX_REDIRECTS: u32 = 10;
/// Read buffer size.
const CHUNK: usize = 256 * 1024;

/// What to fetch.
#[derive(Clone, Debug)]
pub struct FileJob {
    /// The URL (`{endpoint}/{repo}/resolve/{revision}/{path}`).
    pub url: String,
    /// The final file.
    pub dest: PathBuf,
    /// SHA-256 (hex) the file must have, when the catalog knows it.
    pub sha256: Option<String>,
    /// Exact length, when the catalog knows it.
    pub size: Option<u64>,
}

/// Where the SHA-256 a file was checked against came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The catalog's `sha256`.
    Catalog,
    /// The Hub's `X-Linked-Etag` (LFS files).
    Hub,
    /// Nothing to check against (small non-LFS files such as `config.json`).
    Unchecked,
}

/// A finished file.
#[derive(Clone, Debug)]
pub struct FileDone {
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// What the SHA-256 was checked against.
    pub checked: Checked,
    /// Bytes that were already there from an earlier, interrupted download.
    pub resumed_from: u64,
}

/// `<dest>.part`: where the bytes go until the file is complete and verified.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

/// The `.part` file being written, with the SHA-256 of what it holds so far.
struct Part {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Sha256,
}

impl Part {
    /// Opens (or creates) the part file and hashes what it already holds.
    fn open(path: &Path) -> Result<Part, DownloadError> {
        let io = |e| DownloadError::io("opening", path, e);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut reader = File::open(path).map_err(io)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            len += n as u64;
        }
        Ok(Part {
            path: path.to_path_buf(),
            file,
            len,
            hasher,
        })
    }

    fn truncate(&mut self) -> Result<(), DownloadError> {
        self.file
            .set_len(0)
            .map_err(|e| DownloadError::io("truncating", &self.path, e))?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        self.file
            .write_all(bytes)
            .map_err(|e| DownloadError::io("writing", &self.path, e))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// What the server told about the file across the attempts.
#[derive(Default)]
struct Learned {
    /// SHA-256 from `X-Linked-Etag`.
    sha256: Option<String>,
    /// Total length from `Content-Range`, `Content-Length` or `X-Linked-Size`.
    total: Option<u64>,
}

/// A 64-hex SHA-256 out of an ETag value (`"abc…"` or `W/"abc…"`).
fn sha_from_etag(value: &str) -> Option<String> {
    let value = value.trim().trim_start_matches("W/").trim_matches('"');
    (value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

fn header<'a>(response: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

fn network(url: &str, message: impl std::fmt::Display) -> DownloadError {
    DownloadError::Network {
        message: message.to_string(),
        attempts: 1,
        url: url.to_owned(),
    }
}

/// Free bytes on the file system holding `dir` (or its nearest existing ancestor).
pub fn available_space(dir: &Path) -> Option<u64> {
    let mut probe = Some(dir);
    while let Some(path) = probe {
        if path.exists() {
            return fs4::available_space(path).ok();
        }
        probe = path.parent();
    }
    None
}

/// Fails with [`DownloadError::DiskSpace`] when fewer than `needed` bytes are free in `dir`.
pub fn check_disk_space(dir: &Path, needed: u64) -> Result<(), DownloadError> {
    if needed == 0 {
        return Ok(());
    }
    match available_space(dir) {
        Some(available) if available < needed => Err(DownloadError::DiskSpace {
            needed,
            available,
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Sleeps `duration` in short slices, returning early with `Cancelled`.
fn sleep_unless_cancelled(duration: Duration, cancel: &CancelToken) -> Result<(), DownloadError> {
    let deadline = std::time::Instant::now() + duration;
    loop {
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Downloads `job` (see the module docs). `on_bytes(bytes_in_part, total)` is called after every
/// chunk. On cancel or failure the `.part` file stays for the next try, except after a
/// checksum or size mismatch, when it is removed.
pub fn fetch_file(
    agent: &ureq::Agent,
    options: &HubOptions,
    job: &FileJob,
    cancel: &CancelToken,
    on_bytes: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FileDone, DownloadError> {
    if let Some(parent) = job.dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| DownloadError::io("creating the folder", parent, e))?;
    }
    let part_path = part_path(&job.dest);
    let mut part = Part::open(&part_path)?;
    let resumed_from = part.len;
    let mut learned = Learned {
        total: job.size,
        ..Learned::default()
    };
    let attempts = options.retry.attempts.max(1);
    let mut failures = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let before = part.len;
        match attempt(
            agent,
            options,
            job,
            &mut part,
            &mut learned,
            cancel,
            on_bytes,
        ) {
            Ok(()) => break,
            Err(error) if error.is_transient() => {
                if part.len > before {
                    failures = 0; // Progress was made: only failures in a row count.
                }
                failures += 1;
                if failures >= attempts {
                    return Err(match error {
                        DownloadError::Network { message, url, .. } => DownloadError::Network {
                            message,
                            attempts: failures,
                            url,
                        },
                        other => other,
                    });
                }
                sleep_unless_cancelled(options.retry.delay(failures), cancel)?;
            }
            Err(error) => return Err(error),
        }
    }
    finish(part, job, learned, resumed_from)
}

/// Checks length and SHA-256 of the complete part file and renames it to `dest`.
fn finish(
    part: Part,
    job: &FileJob,
    learned: Learned,
    resumed_from: u64,
) -> Result<FileDone, DownloadError> {
    let Part {
        path,
        file,
        len,
        hasher,
    } = part;
    file.sync_all()
        .map_err(|e| DownloadError::io("writing", &path, e))?;
    drop(file);
    let remove = |path: &Path| {
        // Best effort: the error about the content is what matters.
        std::fs::remove_file(path).ok();
    };
    if let Some(expected) = job.size.or(learned.total)
        && expected != len
    {
        remove(&path);
        return Err(DownloadError::Size {
            expected,
            actual: len,
            path,
        });
    }
    let actual = format!("{:x}", hasher.finalize());
    let (expected, checked) = match (&job.sha256, &learned.sha256) {
        (Some(sha), _) => (Some(sha.to_ascii_lowercase()), Checked::Catalog),
        (None, Some(sha)) => (Some(sha.clone()), Checked::Hub),
        (None, None) => (None, Checked::Unchecked),
    };
    if let Some(expected) = expected
        && expected != actual
    {
        remove(&path);
        return Err(DownloadError::Checksum {
            expected,
            actual,
            path: job.dest.clone(),
        });
    }
    std::fs::rename(&path, &job.dest)
        .map_err(|e| DownloadError::io("renaming the finished download", &job.dest, e))?;
    Ok(FileDone {
        bytes: len,
        sha256: actual,
        checked,
        resumed_from,
    })
}

/// Sends the request (following redirects by hand) and returns the final response.
fn request(
    agent: &ureq::Agent,
    options: &HubOptions,
    job: &FileJob,
    offset: u64,
    learned: &mut Learned,
) -> Result<(String, ureq::http::Response<ureq::Body>), DownloadError> {
    let token_origin = origin(&job.url);
    let mut url = job.url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut request = agent.get(&url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        if let Some(token) = options.token.as_deref().filter(|t| !t.trim().is_empty())
            && origin(&url) == token_origin
        {
            request = request.header("Authorization", format!("Bearer {}", token.trim()));
        }
        let response = request.call().map_err(|e| network(&url, e))?;
        if learned.sha256.is_none() {
            learned.sha256 = header(&response, "x-linked-etag").and_then(sha_from_etag);
        }
        if learned.total.is_none() {
            learned.total = header(&response, "x-linked-size").and_then(|v| v.trim().parse().ok());
        }
        let status = response.status().as_u16();
        if (300..400).contains(&status) && status != 304 {
            let location = header(&response, "location")
                .and_then(|location| join_location(&url, location))
                .ok_or_else(|| DownloadError::BadResponse {
                    detail: format!("HTTP {status} without a usable Location"),
                    url: url.clone(),
                })?;
            url = location;
            continue;
        }
        return Ok((url, response));
    }
    Err(DownloadError::BadResponse {
        detail: format!("more than {MAX_REDIRECTS} redirects"),
        url,
    })
}

/// One try: request from the part's length on and append the body to it.
fn attempt(
    agent: &ureq::Agent,
    options: &HubOptions,
    job: &FileJob,
    part: &mut Part,
    learned: &mut Learned,
    cancel: &CancelToken,
    on_bytes: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), DownloadError> {
    let offset = part.len;
    let (url, response) = request(agent, options, job, offset, learned)?;
    let status = response.status().as_u16();
    let token_sent = options
        .token
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty());
    match status {
        200 => {
            if offset > 0 {
                part.truncate()?; // The server ignored the range: start over.
            }
            if let Some(length) = response.body().content_length() {
                learned.total = Some(length);
            }
        }
        206 => {
            let range = header(&response, "content-range").and_then(parse_content_range);
            match range {
                Some((start, total)) if start == offset => {
                    if total.is_some() {
                        learned.total = total;
                    }
                }
                _ => {
                    part.truncate()?;
                    return Err(network(&url, "the server sent another byte range"));
                }
            }
        }
        416 => {
            if learned.total == Some(part.len) {
                return Ok(()); // Already complete.
            }
            part.truncate()?;
            return Err(network(&url, "the partial download did not fit the file"));
        }
        401 | 403 => {
            return Err(DownloadError::Unauthorized {
                status,
                token_sent,
                url,
            });
        }
        404 => return Err(DownloadError::NotFound { url }),
        _ => return Err(DownloadError::Status { status, url }),
    }
    if options.check_disk_space
        && let (Some(total), Some(dir)) = (learned.total, job.dest.parent())
    {
        check_disk_space(dir, total.saturating_sub(part.len))?;
    }
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    on_bytes(part.len, learned.total);
    loop {
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(network(&url, e)),
        };
        part.write(buf.get(..n).unwrap_or_default())?;
        on_bytes(part.len, learned.total);
    }
    if let Some(total) = learned.total
        && part.len < total
    {
        return Err(network(
            &url,
            format!("connection closed after {} of {total} bytes", part.len),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_ranges_parse() {
        let sha = "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b";
        assert_eq!(sha_from_etag(&format!("\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(sha_from_etag(&format!("W/\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(sha_from_etag("\"a1b2c3\""), None);
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(
            part_path(Path::new("/m/a.safetensors")),
            PathBuf::from("/m/a.safetensors.part")
        );
    }

    #[test]
    fn disk_space_check_refuses_what_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_disk_space(dir.path(), 1).is_ok());
        let missing_child = dir.path().join("not/yet/made");
        assert!(available_space(&missing_child).is_some());
        let error = check_disk_space(&missing_child, u64::MAX / 2).unwrap_err();
        assert!(matches!(error, DownloadError::DiskSpace { .. }), "{error}");
        assert!(
            error.to_string().contains("not enough disk space"),
            "{error}"
        );
    }
}
