//! The registry's log kept small: every `COMPACT_EVERY_EVENTS` events the whole state is written
//! again as a bounded run of events, and the log is trimmed before it.
//!
//! The run is `CompactBegin`, the state in parts (schemas by id, subject versions, levels, the
//! last id given out — so that an id is never reused even once its schema is gone), then
//! `CompactEnd` with the number of parts. Replay takes the run's state only once its end is
//! read; a run cut by a crash is ignored and the events before it still hold.

use super::{Compatibility, State, StoredSchema};
use serde::{Deserialize, Serialize};

/// Events appended between two compactions.
pub const COMPACT_EVERY_EVENTS: u64 = 1_000;
/// Bytes of schema text one part holds at most (the log's records stay far below the engine's
/// append limit).
const PART_BYTES_MAX: usize = 1 << 20;

/// One part of a compaction run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Part {
    Schemas(Vec<StoredSchema>),
    /// (subject, version, schema id, soft-deleted)
    Versions(Vec<(String, i32, u32, bool)>),
    Levels {
        global: Option<Compatibility>,
        subjects: Vec<(String, Compatibility)>,
        last_id: u32,
    },
}

/// The state as parts.
pub fn parts(state: &State) -> Vec<Part> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut size = 0;
    for s in state.schemas.values() {
        if size + s.schema.len() > PART_BYTES_MAX && !chunk.is_empty() {
            out.push(Part::Schemas(std::mem::take(&mut chunk)));
            size = 0;
        }
        size += s.schema.len() + 64;
        chunk.push(s.clone());
    }
    if !chunk.is_empty() {
        out.push(Part::Schemas(chunk));
    }
    let versions: Vec<(String, i32, u32, bool)> =
        state.subjects.iter().flat_map(|(subject, vs)| vs.iter().map(move |(v, (id, deleted))| (subject.clone(), *v, *id, *deleted))).collect();
    for c in versions.chunks(10_000) {
        out.push(Part::Versions(c.to_vec()));
    }
    out.push(Part::Levels { global: state.global, subjects: state.subject_levels.iter().map(|(s, l)| (s.clone(), *l)).collect(), last_id: state.last_id });
    out
}

impl State {
    /// Adds a compaction part to a state being rebuilt.
    pub(super) fn add_part(&mut self, part: Part) {
        match part {
            Part::Schemas(schemas) => {
                for s in schemas {
                    self.last_id = self.last_id.max(s.id);
                    self.schemas.insert(s.id, s);
                }
            }
            Part::Versions(vs) => {
                for (subject, version, id, deleted) in vs {
                    self.subjects.entry(subject).or_default().insert(version, (id, deleted));
                }
            }
            Part::Levels { global, subjects, last_id } => {
                self.global = global;
                self.subject_levels = subjects.into_iter().collect();
                self.last_id = self.last_id.max(last_id);
            }
        }
    }
}
