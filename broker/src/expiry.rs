//! Groups and committed offsets past Kafka's offsets retention are forgotten, by the broker's clock.
//!
//! As Kafka's `offsets.retention.minutes` (here `offsets_retention_ms`): the offsets of a group
//! with no members expire once the group has been inactive that long — inactive counted from its
//! last commit or the last pass that saw it with members, whichever is later (after a restart,
//! from the last commit). Offsets committed for a group that never joined (a standalone
//! consumer, or a client inventing group names) expire the same way. A group the coordinator
//! knows that has no members and no offsets is removed at once.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::error::Result;

/// When each group was last seen with members (ms, the broker's clock).
#[derive(Default)]
pub struct Activity(Mutex<HashMap<String, i64>>);

impl Activity {
    fn mark(&self, group: &str, now_ms: i64) {
        self.0.lock().insert(group.to_string(), now_ms);
    }

    fn last(&self, group: &str) -> Option<i64> {
        self.0.lock().get(group).copied()
    }

    fn forget(&self, group: &str) {
        self.0.lock().remove(group);
    }
}

/// One pass; returns the groups whose offsets expired.
pub async fn expire_groups(b: &Broker, now_ms: i64) -> Result<Vec<String>> {
    let retention_ms = b.settings.offsets_retention_ms.0 as i64;
    for (group, _, _) in b.groups.list() {
        if b.groups.has_members(&group) {
            b.group_activity.mark(&group, now_ms);
        } else if b.state.group_offsets(&group).is_empty() && b.groups.remove_if_idle(&group) {
            // Empty, no member joining, no offsets: nothing left to keep.
            b.group_activity.forget(&group);
        }
    }
    let mut expired = Vec::new();
    for group in b.state.groups_with_offsets() {
        if b.groups.has_members(&group) {
            continue;
        }
        let offsets = b.state.group_offsets(&group);
        let last_commit = offsets.iter().map(|(_, _, c)| c.commit_ms).max().unwrap_or(i64::MIN);
        let inactive_since = last_commit.max(b.group_activity.last(&group).unwrap_or(i64::MIN));
        if now_ms.saturating_sub(inactive_since) <= retention_ms {
            continue;
        }
        // Deleted as DeleteGroups deletes them: durably, in the state stream.
        b.state.commit(&group, offsets.into_iter().map(|(t, p, _)| (t, p, None)).collect()).await?;
        let _ = b.groups.delete(&group);
        b.group_activity.forget(&group);
        tracing::info!(%group, retention_ms, "offsets of an inactive group expired");
        expired.push(group);
    }
    Ok(expired)
}
