//! Claim files: several `kiln batch` processes (on one PC or several sharing a folder) split a
//! batch without a scheduler. Before working on an input a process creates
//! `<output>/.kiln-batch/claims/<key>.claim` atomically (written under a private name, then
//! hard-linked into place, so a claim is never seen half-written) holding its host, pid,
//! process start time and a random token.
//!
//! A claim is live while its owner touches it (a heartbeat thread sets its modification time
//! every `timeout / 5`). It is stale when it was not touched for `timeout`, or at once when it
//! belongs to this host and its process is gone (killed, crashed; a zombie or a reused pid
//! counts as gone). A stale claim is taken over by renaming it to a private name (only one
//! process can win the rename) and checking that what was renamed is the stale claim that was
//! read; a fresh claim renamed by mistake is put back. The owner releases its claim when the
//! file is done, failed or cancelled; the output itself is written with a no-replace link, so
//! even a lost race can never write an output twice.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who this process is, as written into claims and temp-file names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Host name (`unknown` when it cannot be read).
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Process start time in clock ticks since boot (Linux), to tell a reused pid apart.
    pub start: Option<u64>,
}

impl Identity {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Identity {
            host: hostname(),
            pid,
            start: process_start(pid),
        }
    }

    /// Whether the host name is real (two hosts both called `unknown` must not judge each
    /// other's processes).
    fn host_known(&self) -> bool {
        self.host != "unknown"
    }
}

/// The host name, with characters unsafe in file names replaced.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}

/// Fields of `/proc/<pid>/stat` after the command name: state is `[0]`, start time `[19]`.
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid)?.get(19)?.parse().ok()
}

/// Whether process `pid` (started at `start`) still runs on this host. Without `/proc` the
/// answer is "yes" (claims then go stale by their timeout only).
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if !Path::new("/proc/self/stat").exists() {
        return true;
    }
    let Some(fields) = proc_stat(pid) else {
        return false;
    };
    if matches!(fields.first().map(String::as_str), Some("Z" | "X" | "x")) {
        return false;
    }
    match (start, fields.get(19).and_then(|s| s.parse::<u64>().ok())) {
        (Some(wanted), Some(actual)) => wanted == actual,
        _ => true,
    }
}

/// A random-enough token (hash of the time, pid and the OS's hash seed).
fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The content of a claim file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimInfo {
    /// The owner.
    #[serde(flatten)]
    pub owner: Identity,
    /// When it was claimed (seconds since 1970).
    pub time: u64,
    /// Random token of this claim.
    pub token: String,
    /// The input, relative to the input folder.
    pub input: String,
}

impl ClaimInfo {
    /// `host:pid`.
    pub fn owner_label(&self) -> String {
        format!("{}:{}", self.owner.host, self.owner.pid)
    }
}

/// Result of [`Claims::try_claim`].
#[derive(Debug)]
pub enum ClaimAttempt {
    /// This process owns the input now.
    Claimed(Claim),
    /// Another live process owns it (its claim, when readable).
    Busy(Option<ClaimInfo>),
}

type Held = Arc<Mutex<HashMap<PathBuf, File>>>;

fn lock(held: &Held) -> MutexGuard<'_, HashMap<PathBuf, File>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The claims of one batch: where they live, who we are, and the heartbeat.
#[derive(Debug)]
pub struct Claims {
    dir: PathBuf,
    tmp_dir: PathBuf,
    me: Identity,
    timeout: Duration,
    held: Held,
    /// Dropping it stops the heartbeat thread.
    _stop: crossbeam_channel::Sender<()>,
}

impl Claims {
    /// Claims in `dir` (created), private files in `tmp_dir` (created); claims not touched for
    /// `timeout` are stale. Starts the heartbeat thread.
    pub fn new(dir: &Path, tmp_dir: &Path, timeout: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all(tmp_dir)?;
        let held: Held = Arc::default();
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let beat = (timeout / 5).max(Duration::from_millis(200));
        let beat_held = held.clone();
        std::thread::Builder::new()
            .name("kiln-batch-heartbeat".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(beat)
                {
                    let now = SystemTime::now();
                    for file in lock(&beat_held).values() {
                        // A failed touch only risks a takeover, which the no-replace output
                        // write makes harmless.
                        file.set_modified(now).ok();
                    }
                }
            })?;
        Ok(Claims {
            dir: dir.to_path_buf(),
            tmp_dir: tmp_dir.to_path_buf(),
            me: Identity::current(),
            timeout,
            held,
            _stop: stop,
        })
    }

    /// This process's identity.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The claim file of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.claim"))
    }

    /// A private file name in the temp folder: `<host>#<pid>#<what>`.
    pub fn private_path(&self, what: &str) -> PathBuf {
        self.tmp_dir
            .join(format!("{}#{}#{what}", self.me.host, self.me.pid))
    }

    /// Whether a claim (read from `path`) is stale.
    fn is_stale(&self, info: Option<&ClaimInfo>, path: &Path) -> bool {
        if let Some(info) = info
            && self.me.host_known()
            && info.owner.host == self.me.host
            && !process_alive(info.owner.pid, info.owner.start)
        {
            return true;
        }
        let touched = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::now());
        SystemTime::now()
            .duration_since(touched)
            .is_ok_and(|age| age > self.timeout)
    }

    /// Tries to claim input `rel` (claim key `key`), taking over a stale claim.
    pub fn try_claim(&self, key: &str, rel: &str) -> std::io::Result<ClaimAttempt> {
        let path = self.path_of(key);
        for _ in 0..4 {
            let info = ClaimInfo {
                owner: self.me.clone(),
                time: unix_secs(SystemTime::now()),
                token: token(),
                input: rel.to_owned(),
            };
            let fresh = self.private_path(&format!("{key}.claim-new"));
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&fresh)?;
            file.write_all(&serde_json::to_vec(&info).unwrap_or_default())?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&fresh, &path);
            std::fs::remove_file(&fresh).ok();
            match linked {
                Ok(()) => return Ok(ClaimAttempt::Claimed(self.hold(path, file, info.token))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => {
                    // No hard links here (some network or FAT file systems): create_new is
                    // atomic too; its content follows a moment later.
                    drop(file);
                    match OpenOptions::new().write(true).create_new(true).open(&path) {
                        Ok(mut file) => {
                            file.write_all(&serde_json::to_vec(&info).unwrap_or_default())?;
                            file.sync_all()?;
                            return Ok(ClaimAttempt::Claimed(self.hold(path, file, info.token)));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            // Someone holds it: live or stale?
            match self.take_if_stale(key, &path)? {
                Taken::Removed | Taken::Gone => continue,
                Taken::Live(info) => return Ok(ClaimAttempt::Busy(info)),
            }
        }
        Ok(ClaimAttempt::Busy(read_claim(&path)))
    }

    /// Removes the claim at `path` if it is stale, safely against other processes doing the
    /// same: the claim is renamed to a private name (one rename wins), and if what was renamed
    /// is not the stale claim that was read (a fresh one made meanwhile), it is put back.
    fn take_if_stale(&self, key: &str, path: &Path) -> std::io::Result<Taken> {
        let existing = read_claim(path);
        if !path.exists() {
            return Ok(Taken::Gone);
        }
        if !self.is_stale(existing.as_ref(), path) {
            return Ok(Taken::Live(existing));
        }
        let moved = self.private_path(&format!("{key}.claim-stale"));
        match std::fs::rename(path, &moved) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Taken::Gone),
            Err(e) => return Err(e),
        }
        let what_moved = read_claim(&moved);
        let same = match (&what_moved, &existing) {
            (Some(a), Some(b)) => a.token == b.token,
            (None, None) => true,
            _ => false,
        };
        if !same {
            std::fs::hard_link(&moved, path).ok();
            std::fs::remove_file(&moved).ok();
            return Ok(Taken::Live(what_moved));
        }
        std::fs::remove_file(&moved).ok();
        Ok(Taken::Removed)
    }

    /// Removes the claim of `key` if its owner is gone (e.g. killed after writing the output
    /// but before releasing the claim). Live claims are left alone.
    pub fn remove_if_stale(&self, key: &str) {
        let path = self.path_of(key);
        if path.exists() {
            // A failure leaves a harmless stale file behind.
            self.take_if_stale(key, &path).ok();
        }
    }

    fn hold(&self, path: PathBuf, file: File, token: String) -> Claim {
        lock(&self.held).insert(path.clone(), file);
        Claim {
            path,
            token,
            held: self.held.clone(),
        }
    }

    /// Removes stale claims, this host's private files left by processes that are gone, and
    /// any private file left for more than a day.
    pub fn clean_leftovers(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(key) = name.strip_suffix(".claim") {
                    self.remove_if_stale(key);
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.tmp_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut parts = name.splitn(3, '#');
            let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let gone = self.me.host_known()
                && host == self.me.host
                && pid != self.me.pid
                && !process_alive(pid, None);
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600).max(self.timeout));
            if gone || old {
                std::fs::remove_file(entry.path()).ok();
            }
        }
    }
}

fn read_claim(path: &Path) -> Option<ClaimInfo> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What [`Claims::take_if_stale`] found.
enum Taken {
    /// The stale claim was removed.
    Removed,
    /// There was no claim (any more).
    Gone,
    /// The claim is live (its content, when readable).
    Live(Option<ClaimInfo>),
}

/// An input this process owns; dropping it releases the claim.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    token: String,
    held: Held,
}

impl Claim {
    /// The claim file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the claim file is still ours (not taken over after a stall).
    pub fn still_ours(&self) -> bool {
        read_claim(&self.path).is_some_and(|info| info.token == self.token)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.held).remove(&self.path);
        if self.still_ours() {
            std::fs::remove_file(&self.path).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(root: &Path, timeout: Duration) -> Claims {
        Claims::new(&root.join("claims"), &root.join("tmp"), timeout).unwrap()
    }

    #[test]
    fn one_owner_at_a_time_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = claims(dir.path(), Duration::from_secs(60));
        let b = claims(dir.path(), Duration::from_secs(60));
        let ClaimAttempt::Claimed(claim) = a.try_claim("k1", "x.png").unwrap() else {
            panic!("first claim must win");
        };
        let ClaimAttempt::Busy(Some(info)) = b.try_claim("k1", "x.png").unwrap() else {
            panic!("second claim must see the first");
        };
        assert_eq!(info.owner.pid, std::process::id());
        assert_eq!(info.input, "x.png");
        assert!(claim.still_ours());
        drop(claim);
        assert!(!a.path_of("k1").exists());
        assert!(matches!(
            b.try_claim("k1", "x.png").unwrap(),
            ClaimAttempt::Claimed(_)
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_dead_process_claim_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = claims(dir.path(), Duration::from_secs(3600));
        // A claim of a process that has exited (a finished child's pid).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let info = ClaimInfo {
            owner: Identity {
                host: c.identity().host.clone(),
                pid,
                start: None,
            },
            time: 0,
            token: "dead".into(),
            input: "x.png".into(),
        };
        std::fs::write(c.path_of("k"), serde_json::to_vec(&info).unwrap()).unwrap();
        let ClaimAttempt::Claimed(claim) = c.try_claim("k", "x.png").unwrap() else {
            panic!("the dead claim must be taken over");
        };
        assert!(claim.still_ours());
    }

    #[test]
    fn a_remote_claim_goes_stale_after_the_timeout_and_heartbeats_keep_ours_alive() {
        let dir = tempfile::tempdir().unwrap();
        let owner = claims(dir.path(), Duration::from_millis(600));
        let other = claims(dir.path(), Duration::from_millis(600));
        let ClaimAttempt::Claimed(live) = owner.try_claim("live", "a.png").unwrap() else {
            panic!()
        };
        let remote = ClaimInfo {
            owner: Identity {
                host: "elsewhere".into(),
                pid: 1,
                start: None,
            },
            time: 0,
            token: "remote".into(),
            input: "b.png".into(),
        };
        std::fs::write(
            owner.path_of("remote"),
            serde_json::to_vec(&remote).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            other.try_claim("remote", "b.png").unwrap(),
            ClaimAttempt::Busy(_)
        ));
        std::thread::sleep(Duration::from_millis(1200));
        assert!(matches!(
            other.try_claim("remote", "b.png").unwrap(),
            ClaimAttempt::Claimed(_)
        ));
        // Our own claim was touched by the heartbeat: still live for others.
        assert!(matches!(
            other.try_claim("live", "a.png").unwrap(),
            ClaimAttempt::Busy(_)
        ));
        assert!(live.still_ours());
    }

    #[test]
    fn leftovers_of_dead_processes_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let c = claims(dir.path(), Duration::from_secs(60));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let host = c.identity().host.clone();
        let dead = dir.path().join(format!("tmp/{host}#{pid}#x.png.part"));
        let mine = c.private_path("y.png.part");
        std::fs::write(&dead, b"half").unwrap();
        std::fs::write(&mine, b"busy").unwrap();
        // A claim of the dead process (killed after writing its output, before releasing).
        let info = ClaimInfo {
            owner: Identity {
                host,
                pid,
                start: None,
            },
            time: 0,
            token: "dead".into(),
            input: "x.png".into(),
        };
        std::fs::write(c.path_of("dead"), serde_json::to_vec(&info).unwrap()).unwrap();
        let ClaimAttempt::Claimed(live) = c.try_claim("live", "y.png").unwrap() else {
            panic!()
        };
        c.clean_leftovers();
        assert!(!dead.exists());
        assert!(mine.exists());
        assert!(!c.path_of("dead").exists());
        assert!(live.still_ours());
    }
}
