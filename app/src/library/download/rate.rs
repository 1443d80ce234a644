//! Download speed over a sliding window and the ETA it gives.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the speed looks.
const WINDOW: Duration = Duration::from_secs(5);

/// Bytes-per-second over the last few seconds.
#[derive(Clone, Debug)]
pub struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// A meter starting at `bytes` now.
    pub fn new(now: Instant, bytes: u64) -> Self {
        RateMeter {
            samples: VecDeque::from([(now, bytes)]),
        }
    }

    /// Records the byte count at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window (0 until some time has passed).
    pub fn bytes_per_sec(&self) -> f64 {
        let (Some((t0, b0)), Some((t1, b1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let secs = t1.duration_since(*t0).as_secs_f64();
        if secs < 0.05 {
            return 0.0;
        }
        b1.saturating_sub(*b0) as f64 / secs
    }
}

/// Time left for `remaining` bytes at `bytes_per_sec`; `None` while the speed is unknown.
pub fn eta(remaining: u64, bytes_per_sec: f64) -> Option<Duration> {
    (bytes_per_sec > 1.0).then(|| Duration::from_secs_f64(remaining as f64 / bytes_per_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_eta() {
        let start = Instant::now();
        let mut meter = RateMeter::new(start, 0);
        assert_eq!(meter.bytes_per_sec(), 0.0);
        meter.record(start + Duration::from_secs(1), 1000);
        meter.record(start + Duration::from_secs(2), 2000);
        assert!((meter.bytes_per_sec() - 1000.0).abs() < 1e-6);
        // Old samples leave the window: the speed follows the recent rate.
        for s in 3..=12 {
            meter.record(start + Duration::from_secs(s), 2000 + (s - 2) * 10);
        }
        assert!(meter.bytes_per_sec() < 20.0, "{}", meter.bytes_per_sec());
        assert_eq!(eta(5000, 1000.0), Some(Duration::from_secs(5)));
        assert_eq!(eta(5000, 0.0), None);
    }
}
