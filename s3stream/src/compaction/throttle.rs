//! A byte-rate limit for compaction: after each read or write the pass waits until its bytes so
//! far fit the rate (tokio time, so paused-clock tests see it without sleeping).

use std::time::Duration;

use tokio::time::Instant;

/// Paces one pass at `bytes_per_second` (0: unpaced).
pub(super) struct Throttle {
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    pub(super) fn new(bytes_per_second: u64) -> Self {
        Self { bytes_per_second, started: Instant::now(), bytes: 0 }
    }

    /// Counts `bytes` read or written, then waits until the pass is within its rate.
    pub(super) async fn spent(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.bytes_per_second == 0 {
            return;
        }
        let due = self.started + Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        tokio::time::sleep_until(due).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pass_takes_at_least_its_bytes_over_the_rate() {
        let t0 = Instant::now();
        let mut pace = Throttle::new(10 << 20);
        for _ in 0..4 {
            pace.spent(5 << 20).await;
        }
        assert_eq!(t0.elapsed(), Duration::from_secs(2), "20 MiB at 10 MiB/s");
        let t1 = Instant::now();
        let mut unpaced = Throttle::new(0);
        unpaced.spent(1 << 30).await;
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }
}
