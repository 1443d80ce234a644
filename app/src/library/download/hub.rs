//! The Hugging Face Hub's file URLs, `{endpoint}/{repo}/resolve/{revision}/{path}`, and the
//! HTTP client settings (endpoint, token, proxy, timeouts, retries) a download runs with.
//!
//! Mirrors such as `https://hf-mirror.com` serve the same layout, so the endpoint is all that
//! changes. LFS files answer `resolve` with a redirect to a CDN whose first response carries
//! `X-Linked-Etag` (the file's SHA-256) and `X-Linked-Size`, as `huggingface_hub` reads them.

use std::time::Duration;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Environment variable `huggingface_hub` reads for a mirror; Kiln honours it too.
pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";
/// Environment variable with a Hub token.
pub const TOKEN_ENV: &str = "HF_TOKEN";
/// Branch downloaded when the catalog pins no revision.
pub const DEFAULT_REVISION: &str = "main";

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Tries in a row without progress before giving up (at least 1).
    pub attempts: u32,
    /// Wait before the second try; doubled for each further one.
    pub base_delay: Duration,
    /// Longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (`attempt` ≥ 1 failed tries so far): `base · 2^(attempt-1)`,
    /// at most `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where and how to download from.
#[derive(Clone, Debug, PartialEq)]
pub struct HubOptions {
    /// Hub endpoint, e.g. `https://huggingface.co` or `https://hf-mirror.com` (no trailing `/`
    /// needed).
    pub endpoint: String,
    /// Hub token for gated or private files (sent as `Authorization: Bearer`, only to the
    /// endpoint's own host, never to the CDN it redirects to).
    pub token: Option<String>,
    /// HTTP(S) or SOCKS proxy URL; `None` uses the `HTTPS_PROXY`/`ALL_PROXY` environment.
    pub proxy: Option<String>,
    /// Retries on transient failures.
    pub retry: RetryPolicy,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest silence while reading (a stalled connection is dropped and resumed).
    pub read_timeout: Duration,
    /// Check free disk space before starting.
    pub check_disk_space: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token: None,
            proxy: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
            check_disk_space: true,
        }
    }
}

impl HubOptions {
    /// Defaults, with the endpoint from `HF_ENDPOINT` and the token from `HF_TOKEN` when set.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        HubOptions {
            endpoint: var(ENDPOINT_ENV).unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            token: var(TOKEN_ENV),
            ..HubOptions::default()
        }
    }

    /// The HTTP agent for these options: redirects followed by hand (so the token stays on the
    /// endpoint's host and `Range` survives), statuses returned rather than turned into errors,
    /// no compression (resumable byte ranges of the file itself).
    pub fn agent(&self) -> Result<ureq::Agent, String> {
        let proxy = match &self.proxy {
            Some(url) if !url.trim().is_empty() => Some(
                ureq::Proxy::new(url.trim()).map_err(|e| format!("invalid proxy {url:?}: {e}"))?,
            ),
            _ => ureq::Proxy::try_from_env(),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(proxy)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(self.connect_timeout))
            .timeout_recv_response(Some(self.read_timeout))
            .timeout_per_read(Some(self.read_timeout))
            .build();
        Ok(config.into())
    }
}

/// `{endpoint}/{repo}/resolve/{revision}/{path}`, each path segment percent-encoded.
pub fn resolve_url(endpoint: &str, repo: &str, revision: &str, path: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let encode_path = |p: &str| {
        p.split('/')
            .map(percent_encode)
            .collect::<Vec<_>>()
            .join("/")
    };
    format!(
        "{endpoint}/{}/resolve/{}/{}",
        encode_path(repo),
        percent_encode(revision),
        encode_path(path)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of a URL (lower case), for "same host" checks.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// The absolute URL a `Location` header points to from `base`.
pub fn join_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.contains("://") {
        return Some(location.to_owned());
    }
    let origin = origin(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = origin.split("://").next()?;
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    // Relative to the base's folder.
    let path = base
        .get(origin.len()..)?
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let folder = path.rfind('/').map_or("/", |i| &path[..=i]);
    Some(format!("{origin}{folder}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_urls_follow_the_hub_layout() {
        assert_eq!(
            resolve_url(
                "https://huggingface.co/",
                "h94/IP-Adapter",
                "main",
                "models/ip-adapter_sd15.safetensors"
            ),
            "https://huggingface.co/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors"
        );
        assert_eq!(
            resolve_url("http://127.0.0.1:9", "a/b", "refs/pr/1", "dir/x y+.onnx"),
            "http://127.0.0.1:9/a/b/resolve/refs%2Fpr%2F1/dir/x%20y%2B.onnx"
        );
    }

    #[test]
    fn locations_are_joined() {
        let base = "https://huggingface.co/a/b/resolve/main/x.safetensors";
        assert_eq!(
            join_location(base, "https://cdn.example/x?sig=1").as_deref(),
            Some("https://cdn.example/x?sig=1")
        );
        assert_eq!(
            join_location(base, "/api/resolve-cache/models/a/b/x").as_deref(),
            Some("https://huggingface.co/api/resolve-cache/models/a/b/x")
        );
        assert_eq!(
            join_location(base, "y.safetensors").as_deref(),
            Some("https://huggingface.co/a/b/resolve/main/y.safetensors")
        );
        assert_eq!(
            join_location(base, "//mirror.example/z").as_deref(),
            Some("https://mirror.example/z")
        );
        assert_eq!(origin("HTTP://Host:8/x").as_deref(), Some("http://host:8"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
        };
        let delays: Vec<u128> = (1..=5).map(|a| policy.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
    }
}
