//! Start-up timing: `KILN_TIMING=1` prints the time from process start to the first frame.

use std::sync::OnceLock;
use std::time::Instant;

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Records the process start; call first thing in `main`.
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// Whether timing output is on.
pub fn enabled() -> bool {
    std::env::var_os("KILN_TIMING").is_some_and(|v| v == "1")
}

/// Logs a start-up milestone with the time since process start.
pub fn milestone(what: &str) {
    if enabled() {
        let since = PROCESS_START.get_or_init(Instant::now).elapsed();
        eprintln!(
            "kiln timing: {what} after {:.0} ms",
            since.as_secs_f64() * 1000.0
        );
    }
}

/// Called when the first frame's UI has been built (it is painted right after).
pub fn first_frame_drawn() {
    milestone("first frame");
}
