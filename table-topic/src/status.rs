//! What a Table Topic reports: committed offsets, lag, last commit, invalid records, paused or not.

use serde::Serialize;

use crate::offsets::Offsets;

/// The state of one Table Topic, for the metrics endpoint and `floe table-topic status`.
#[derive(Debug, Clone, Default, Serialize)]
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
    pub committed_records: u64,
    pub commits: u64,
    pub invalid_records: u64,
    /// Why the table is paused (errors.tolerance=none and a bad record), if it is.
    pub paused: Option<String>,
    pub last_error: Option<String>,
    /// Compactions committed, and the files they replaced.
    pub compactions: u64,
    pub compacted_files: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Status {
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
