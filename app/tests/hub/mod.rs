//! A tiny Hugging Face Hub stand-in on 127.0.0.1 for download tests: `/{repo}/resolve/{rev}/{path}`
//! answers like the Hub does for LFS files (a 302 to a CDN on another port, with `X-Linked-Etag`
//! and `X-Linked-Size`), or serves small files directly; the CDN serves byte ranges. Faults can
//! be injected per file: a connection dropped mid-file, a slow trickle, 404, 401 without the
//! right token, 503s, a wrong Hub checksum. Only answers requests; every connection is closed
//! after one response.

#![allow(dead_code, clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What goes wrong when a file is asked for.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The first body response stops after this many bytes (the connection is closed).
    pub drop_after: Option<usize>,
    /// Bytes per 20 ms (a slow server).
    pub trickle: Option<usize>,
    /// Answer 401 unless `Authorization: Bearer <token>` is sent.
    pub token: Option<String>,
    /// Answer 503 to this many requests first.
    pub unavailable: usize,
    /// Send this (wrong) SHA-256 as `X-Linked-Etag`.
    pub wrong_etag: bool,
    /// Serve directly (like a small non-LFS file): no redirect, no `X-Linked-Etag`.
    pub direct: bool,
}

/// A file the server has.
#[derive(Clone, Debug)]
pub struct Served {
    /// `owner/name`.
    pub repo: String,
    /// Path in the repository.
    pub path: String,
    /// The bytes.
    pub content: Vec<u8>,
    /// Injected faults.
    pub faults: Faults,
}

impl Served {
    /// A file without faults.
    pub fn new(repo: &str, path: &str, content: Vec<u8>) -> Served {
        Served {
            repo: repo.into(),
            path: path.into(),
            content,
            faults: Faults::default(),
        }
    }

    /// Its SHA-256 (hex).
    pub fn sha256(&self) -> String {
        format!("{:x}", Sha256::digest(&self.content))
    }
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Request path.
    pub path: String,
    /// `Range` header.
    pub range: Option<String>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// Status answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    cdn: String,
    files: Vec<Served>,
    body_responses: HashMap<usize, usize>,
    unavailable_sent: HashMap<usize, usize>,
    seen: Vec<Seen>,
}

/// The running server.
pub struct HubServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

impl HubServer {
    /// Starts serving `files` on a free port.
    pub fn start(files: Vec<Served>) -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            cdn: format!("http://{}", cdn_listener.local_addr().unwrap()),
            files,
            ..State::default()
        }));
        for listener in [listener, cdn_listener] {
            let shared = state.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let state = shared.clone();
                    std::thread::spawn(move || handle(stream, &state));
                }
            });
        }
        HubServer { endpoint, state }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests seen for paths containing `needle`.
    pub fn seen_for(&self, needle: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.contains(needle))
            .collect()
    }

    /// Replaces the faults of file `index`.
    pub fn set_faults(&self, index: usize, faults: Faults) {
        let mut state = self.state.lock().unwrap();
        state.files.get_mut(index).unwrap().faults = faults;
        state.body_responses.remove(&index);
    }
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, headers: &[(String, String)]) {
    let mut text = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).ok();
}

fn handle(mut stream: TcpStream, state: &Arc<Mutex<State>>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let range = headers.get("range").cloned();
    let authorization = headers.get("authorization").cloned();
    // Recorded before the answer is sent, so a client that has its answer finds it recorded.
    let mut record = |status: u16| {
        state.lock().unwrap().seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
            authorization: authorization.clone(),
            status,
        });
    };
    serve(
        &mut stream,
        state,
        &path,
        range.as_deref(),
        authorization.as_deref(),
        &mut record,
    );
    stream.shutdown(std::net::Shutdown::Both).ok();
}

/// Answers one request, calling `record` with the status just before sending it.
fn serve(
    stream: &mut TcpStream,
    state: &Arc<Mutex<State>>,
    path: &str,
    range: Option<&str>,
    authorization: Option<&str>,
    record: &mut dyn FnMut(u16),
) {
    let cdn_base = state.lock().unwrap().cdn.clone();
    let (index, file, cdn) = {
        let state = state.lock().unwrap();
        let found = state.files.iter().enumerate().find_map(|(i, f)| {
            if path == format!("/{}/resolve/main/{}", f.repo, f.path) {
                Some((i, f.clone(), false))
            } else if path == format!("/cdn/{i}") {
                Some((i, f.clone(), true))
            } else {
                None
            }
        });
        match found {
            Some(found) => found,
            None => {
                drop(state);
                record(404);
                respond(
                    stream,
                    404,
                    "Not Found",
                    &[("Content-Length".into(), "0".into())],
                );
                return;
            }
        }
    };
    let faults = &file.faults;
    if !cdn {
        if let Some(token) = &faults.token
            && authorization != Some(format!("Bearer {token}").as_str())
        {
            record(401);
            respond(
                stream,
                401,
                "Unauthorized",
                &[("Content-Length".into(), "0".into())],
            );
            return;
        }
        {
            let mut state = state.lock().unwrap();
            let sent = state.unavailable_sent.entry(index).or_insert(0);
            if *sent < faults.unavailable {
                *sent += 1;
                drop(state);
                record(503);
                respond(
                    stream,
                    503,
                    "Service Unavailable",
                    &[("Content-Length".into(), "0".into())],
                );
                return;
            }
        }
        if !faults.direct {
            let sha = if faults.wrong_etag {
                format!("{:x}", Sha256::digest(b"something else"))
            } else {
                file.sha256()
            };
            record(302);
            respond(
                stream,
                302,
                "Found",
                &[
                    ("Location".into(), format!("{cdn_base}/cdn/{index}")),
                    ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                    ("X-Linked-Size".into(), file.content.len().to_string()),
                    ("Content-Length".into(), "0".into()),
                ],
            );
            return;
        }
    } else if authorization.is_some() {
        // Like a signed CDN URL: a token here is a leak and is refused.
        record(400);
        respond(
            stream,
            400,
            "Bad Request",
            &[("Content-Length".into(), "0".into())],
        );
        return;
    }
    let len = file.content.len();
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let (status, start) = match start {
        Some(start) if start >= len => {
            record(416);
            respond(
                stream,
                416,
                "Range Not Satisfiable",
                &[
                    ("Content-Range".into(), format!("bytes */{len}")),
                    ("Content-Length".into(), "0".into()),
                ],
            );
            return;
        }
        Some(start) => (206, start),
        None => (200, 0),
    };
    let mut headers = vec![("Content-Length".to_owned(), (len - start).to_string())];
    if status == 206 {
        headers.push((
            "Content-Range".into(),
            format!("bytes {start}-{}/{len}", len - 1),
        ));
    }
    record(status);
    respond(
        stream,
        status,
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        },
        &headers,
    );
    let body = &file.content[start..];
    let responses = {
        let mut state = state.lock().unwrap();
        let n = state.body_responses.entry(index).or_insert(0);
        *n += 1;
        *n
    };
    let body = match faults.drop_after {
        Some(limit) if responses == 1 => &body[..limit.min(body.len())],
        _ => body,
    };
    match faults.trickle {
        Some(chunk) => {
            for piece in body.chunks(chunk.max(1)) {
                if stream.write_all(piece).is_err() || stream.flush().is_err() {
                    break; // The client went away.
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => {
            stream.write_all(body).ok();
        }
    }
}
