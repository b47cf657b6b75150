//! What a Table Topic reports: committed offsets, lag, last commit, invalid records, paused or not.

use serde::{Deserialize, Serialize};

use crate::offsets::Offsets;

/// The state of one Table Topic, for the metrics endpoint and `floe table-topic status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub topic: String,
    pub table: String,
    /// Next offset per partition committed in the table.
    pub offsets: Offsets,
    /// Records in the log not yet in the table (as of the last cycle).
    pub lag_records: i64,
    /// When the last commit landed (ms since the epoch; 0: never in this process).
    pub last_commit_ms: i64,
    /// When the table last had everything the log had (ms since the epoch).
    pub caught_up_ms: i64,
    /// When this process started the table's loop (ms since the epoch).
    pub started_ms: i64,
    pub committed_records: u64,
    pub commits: u64,
    pub invalid_records: u64,
    /// Why the table is paused (errors.tolerance=none and a bad record), if it is.
    pub paused: Option<String>,
    pub last_error: Option<String>,
    /// Compactions committed, and the files they replaced.
    pub compactions: u64,
    pub compacted_files: u64,
    /// Data and delete files written by commits, and their bytes.
    pub files_written: u64,
    pub bytes_written: u64,
    /// Time spent in commit cycles that committed (decode, write, commit), in milliseconds.
    pub commit_ms_sum: u64,
    pub last_commit_duration_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Status {
    /// Seconds the table is behind its log: 0 when it holds everything, else the time since it
    /// last did (since it started when it never did).
    pub fn freshness_seconds(&self, now_ms: i64) -> f64 {
        if self.lag_records == 0 && self.paused.is_none() {
            return 0.0;
        }
        (now_ms - self.caught_up_ms.max(self.started_ms)).max(0) as f64 / 1000.0
    }

    /// Files a commit wrote, and how long the cycle took.
    pub fn wrote(&mut self, files: u64, bytes: u64, duration_ms: u64) {
        self.files_written += files;
        self.bytes_written += bytes;
        self.commit_ms_sum += duration_ms;
        self.last_commit_duration_ms = duration_ms;
    }

    /// A commit landed.
    pub fn committed(&mut self, offsets: &Offsets, records: u64, invalid: u64, lag: i64) {
        self.offsets = offsets.clone();
        self.committed_records += records;
        self.invalid_records += invalid;
        self.commits += 1;
        self.last_commit_ms = now_ms();
        self.lag_records = lag;
        if lag == 0 {
            self.caught_up_ms = self.last_commit_ms;
        }
        self.paused = None;
        self.last_error = None;
    }

    /// Nothing new to commit.
    pub fn caught_up(&mut self, lag: i64) {
        self.lag_records = lag;
        if lag == 0 {
            self.caught_up_ms = now_ms();
        }
    }

    /// A compaction replaced `files` files.
    pub fn compacted(&mut self, files: usize) {
        self.compactions += 1;
        self.compacted_files += files as u64;
    }

    /// The table stopped at a bad record.
    pub fn pause(&mut self, reason: &str) {
        self.paused = Some(reason.to_string());
    }
}
