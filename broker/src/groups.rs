//! The consumer group coordinator (classic protocol): joins, syncs, heartbeats, leaves,
//! rebalance deadlines, session expiry and static members. Assignors run in the clients; the
//! coordinator only carries their metadata and assignments.
//!
//! A rebalance starts when a member joins or leaves; it completes when every known member has
//! rejoined, or at the deadline (the largest rebalance timeout; for a new group, the initial
//! delay), when members that did not rejoin are removed. A tick (`tick`) enforces deadlines and
//! session timeouts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Clock;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{BrokerError, Result};

/// (member id, instance id, outcome) of one member leaving.
pub type LeaveResult = (String, Option<String>, Result<()>);

/// Groups kept at most (new ones are refused past this).
pub const GROUPS_MAX: usize = 100_000;
/// A member id handed out by MEMBER_ID_REQUIRED is forgotten if not used within this long.
const PENDING_MEMBER_MS: i64 = 300_000;
/// Members per group at most.
pub const MEMBERS_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a joining member is told.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata) — for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A join request.
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member with no id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// A member as described.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as described.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberView>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_tx: Option<oneshot::Sender<Result<JoinOutcome>>>,
    sync_tx: Option<oneshot::Sender<Result<Bytes>>>,
    /// The broker's clock, in ms.
    last_seen: i64,
    joined_at: u64,
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    statics: HashMap<String, String>,
    /// Member ids handed out and not yet used, with when (ms).
    pending: HashMap<String, i64>,
    /// When the join phase ends at the latest (ms).
    deadline: Option<i64>,
    /// The rebalance started from an empty group: wait the initial delay for more members.
    delaying: bool,
    join_seq: u64,
}

impl Group {
    fn new() -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            deadline: None,
            delaying: false,
            join_seq: 0,
        }
    }

    fn all_joined(&self) -> bool {
        self.members.values().all(|m| m.join_tx.is_some())
    }

    fn start_rebalance(&mut self, now: i64, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        // A rebalance cancels a sync in progress.
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync_tx.take() {
                let _ = tx.send(Err(BrokerError::RebalanceInProgress));
            }
        }
        let wait =
            if self.state == GroupState::Empty { initial_delay } else { self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(initial_delay) };
        self.delaying = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.deadline = Some(now.saturating_add(wait.as_millis() as i64));
    }

    /// Removes a member; its pending join or sync is answered with `why()`.
    fn remove_member(&mut self, id: &str, why: impl Fn() -> BrokerError) {
        if let Some(m) = self.members.remove(id) {
            if let Some(i) = &m.instance_id {
                if self.statics.get(i).is_some_and(|x| x == id) {
                    self.statics.remove(i);
                }
            }
            if let Some(tx) = m.join_tx {
                let _ = tx.send(Err(why()));
            }
            if let Some(tx) = m.sync_tx {
                let _ = tx.send(Err(why()));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// Completes the join phase: a new generation, a protocol, a leader, answers to all.
    fn complete_join(&mut self, now: i64) {
        let stale: Vec<String> = self.members.iter().filter(|(_, m)| m.join_tx.is_none()).map(|(k, _)| k.clone()).collect();
        for id in stale {
            self.remove_member(&id, || BrokerError::UnknownMemberId(id.clone()));
        }
        self.deadline = None;
        self.delaying = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol.clear();
            self.leader = None;
            return;
        }
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.iter().min_by_key(|(_, m)| m.joined_at).map(|(k, _)| k.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        let candidates: Vec<String> = self.members.get(&leader).map(|m| m.protocols.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default();
        let protocol = candidates.into_iter().find(|p| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == p))).unwrap_or_default();
        self.protocol = protocol.clone();
        self.state = GroupState::CompletingRebalance;
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
                (id.clone(), m.instance_id.clone(), meta)
            })
            .collect();
        for (id, m) in self.members.iter_mut() {
            m.assignment = Bytes::new();
            m.last_seen = now;
            if let Some(tx) = m.join_tx.take() {
                let _ = tx.send(Ok(JoinOutcome {
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader { all.clone() } else { vec![] },
                }));
            }
        }
    }

    fn after_departure(&mut self, now: i64, initial_delay: Duration) {
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.deadline = None;
            self.leader = None;
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.start_rebalance(now, initial_delay),
            GroupState::PreparingRebalance if self.all_joined() => self.complete_join(now),
            _ => {}
        }
    }
}

/// Timeouts the coordinator enforces.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
}

/// All groups of the node.
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    settings: GroupSettings,
    /// Deadlines and session timeouts are decided by this clock (injected: tests advance it).
    clock: Arc<dyn Clock>,
}

impl Coordinator {
    pub fn new(settings: GroupSettings, clock: Arc<dyn Clock>) -> Self {
        Self { groups: Mutex::new(HashMap::new()), settings, clock }
    }

    /// Joins a member; waits for the rebalance to complete.
    pub async fn join(&self, req: JoinRequest) -> Result<JoinOutcome> {
        if req.group.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.settings.min_session_timeout_ms || req.session_timeout_ms > self.settings.max_session_timeout_ms {
            return Err(BrokerError::InvalidSessionTimeout(req.session_timeout_ms));
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return Err(BrokerError::InconsistentGroupProtocol);
        }
        let now = self.clock.now_ms();
        let (rx, wait) = {
            let mut groups = self.groups.lock();
            if !groups.contains_key(&req.group) && groups.len() >= GROUPS_MAX {
                return Err(BrokerError::Internal("too many groups".into()));
            }
            let g = groups.entry(req.group.clone()).or_insert_with(Group::new);
            if !g.members.is_empty() && g.protocol_type != req.protocol_type {
                return Err(BrokerError::InconsistentGroupProtocol);
            }
            if !g.members.is_empty() && !req.protocols.iter().any(|(p, _)| g.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == p))) {
                return Err(BrokerError::InconsistentGroupProtocol);
            }
            let mut member_id = req.member_id.clone();
            if member_id.is_empty() {
                let fresh = format!("{}-{}", if req.client_id.is_empty() { "member" } else { &req.client_id }, uuid::Uuid::new_v4());
                if let Some(old) = req.instance_id.as_ref().and_then(|i| g.statics.get(i)).cloned() {
                    // A static member came back under a new id: the old one is fenced.
                    if let Some(m) = g.members.remove(&old) {
                        if let Some(tx) = m.join_tx {
                            let _ = tx.send(Err(BrokerError::FencedInstanceId(old.clone())));
                        }
                        if let Some(tx) = m.sync_tx {
                            let _ = tx.send(Err(BrokerError::FencedInstanceId(old.clone())));
                        }
                        let keep = Member { join_tx: None, sync_tx: None, ..m };
                        g.members.insert(fresh.clone(), keep);
                    }
                    if g.leader.as_deref() == Some(old.as_str()) {
                        g.leader = Some(fresh.clone());
                    }
                } else if req.require_known_member_id && req.instance_id.is_none() {
                    g.pending.insert(fresh.clone(), now);
                    return Err(BrokerError::MemberIdRequired(fresh));
                }
                member_id = fresh;
            } else if !g.members.contains_key(&member_id) && g.pending.remove(&member_id).is_none() {
                if let Some(i) = &req.instance_id {
                    if g.statics.get(i).is_some_and(|x| *x != member_id) {
                        return Err(BrokerError::FencedInstanceId(i.clone()));
                    }
                }
                return Err(BrokerError::UnknownMemberId(member_id));
            }
            if g.members.len() >= MEMBERS_MAX && !g.members.contains_key(&member_id) {
                return Err(BrokerError::Internal("too many members in the group".into()));
            }
            if let Some(i) = &req.instance_id {
                g.statics.insert(i.clone(), member_id.clone());
            }
            let (tx, rx) = oneshot::channel();
            g.join_seq += 1;
            let seq = g.join_seq;
            let existing = g.members.remove(&member_id);
            let changed = existing.as_ref().is_none_or(|m| m.protocols != req.protocols);
            let joined_at = existing.as_ref().map_or(seq, |m| m.joined_at);
            let assignment = existing.as_ref().map(|m| m.assignment.clone()).unwrap_or_default();
            if let Some(old) = existing.and_then(|m| m.join_tx) {
                let _ = old.send(Err(BrokerError::UnknownMemberId(member_id.clone())));
            }
            g.members.insert(
                member_id.clone(),
                Member {
                    instance_id: req.instance_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    session_timeout: Duration::from_millis(req.session_timeout_ms as u64),
                    rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64),
                    protocols: req.protocols.clone(),
                    assignment,
                    join_tx: Some(tx),
                    sync_tx: None,
                    last_seen: now,
                    joined_at,
                },
            );
            g.protocol_type = req.protocol_type.clone();
            match g.state {
                GroupState::Stable if !changed && req.instance_id.is_some() && g.leader.as_deref() != Some(member_id.as_str()) => {
                    // A static follower rejoining unchanged gets its old assignment without a rebalance.
                    let outcome = JoinOutcome {
                        generation: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        leader: g.leader.clone().unwrap_or_default(),
                        member_id: member_id.clone(),
                        members: vec![],
                    };
                    if let Some(m) = g.members.get_mut(&member_id) {
                        m.join_tx = None;
                    }
                    return Ok(outcome);
                }
                GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                    g.start_rebalance(now, self.settings.initial_rebalance_delay);
                }
                GroupState::PreparingRebalance => {}
            }
            if g.all_joined() && !g.delaying {
                g.complete_join(now);
            }
            let wait = Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64)
                + self.settings.initial_rebalance_delay
                + Duration::from_secs(5);
            (rx, wait)
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(BrokerError::RebalanceInProgress),
            Err(_) => Err(BrokerError::RebalanceInProgress),
        }
    }

    /// Syncs a member: the leader hands in assignments, everybody gets theirs.
    pub async fn sync(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<(String, String, Bytes)> {
        let rx = {
            let mut groups = self.groups.lock();
            let g = groups.get_mut(group).ok_or_else(|| BrokerError::UnknownMemberId(member_id.to_string()))?;
            check_member(g, member_id, instance_id)?;
            if g.generation != generation {
                return Err(BrokerError::IllegalGeneration(generation));
            }
            let names = (g.protocol_type.clone(), g.protocol.clone());
            match g.state {
                GroupState::PreparingRebalance | GroupState::Empty => return Err(BrokerError::RebalanceInProgress),
                GroupState::Stable => {
                    let m = g.members.get_mut(member_id).ok_or_else(|| BrokerError::UnknownMemberId(member_id.to_string()))?;
                    m.last_seen = self.clock.now_ms();
                    return Ok((names.0, names.1, m.assignment.clone()));
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_seen = self.clock.now_ms();
                m.sync_tx = Some(tx);
            }
            if g.leader.as_deref() == Some(member_id) {
                for (id, a) in assignments {
                    if let Some(m) = g.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                g.state = GroupState::Stable;
                for m in g.members.values_mut() {
                    if let Some(tx) = m.sync_tx.take() {
                        let _ = tx.send(Ok(m.assignment.clone()));
                    }
                }
            }
            (rx, names)
        };
        let (rx, names) = rx;
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(Ok(a))) => Ok((names.0, names.1, a)),
            Ok(Ok(Err(e))) => Err(e),
            _ => Err(BrokerError::RebalanceInProgress),
        }
    }

    /// A heartbeat; tells a member to rejoin when a rebalance is under way.
    pub fn heartbeat(&self, group: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<()> {
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group).ok_or_else(|| BrokerError::UnknownMemberId(member_id.to_string()))?;
        check_member(g, member_id, instance_id)?;
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_seen = self.clock.now_ms();
        }
        if g.state == GroupState::PreparingRebalance {
            return Err(BrokerError::RebalanceInProgress);
        }
        if g.generation != generation {
            return Err(BrokerError::IllegalGeneration(generation));
        }
        Ok(())
    }

    /// Members leave; returns an error per member.
    pub fn leave(&self, group: &str, members: Vec<(String, Option<String>)>) -> Result<Vec<LeaveResult>> {
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group).ok_or_else(|| BrokerError::UnknownMemberId(String::new()))?;
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for (member_id, instance_id) in members {
            let id = match (&instance_id, member_id.is_empty()) {
                (Some(i), true) => g.statics.get(i).cloned().unwrap_or_default(),
                _ => member_id.clone(),
            };
            let r = if let Some(i) = &instance_id {
                match g.statics.get(i) {
                    Some(x) if *x == id => Ok(()),
                    Some(_) => Err(BrokerError::FencedInstanceId(i.clone())),
                    None => Err(BrokerError::UnknownMemberId(id.clone())),
                }
            } else if g.members.contains_key(&id) {
                Ok(())
            } else {
                Err(BrokerError::UnknownMemberId(id.clone()))
            };
            if r.is_ok() {
                g.remove_member(&id, || BrokerError::UnknownMemberId(id.clone()));
            }
            out.push((member_id, instance_id, r));
        }
        g.after_departure(now, self.settings.initial_rebalance_delay);
        Ok(out)
    }

    /// Checks that an offset commit comes from a current member (or from outside any group).
    pub fn check_commit(&self, group: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<()> {
        let groups = self.groups.lock();
        let Some(g) = groups.get(group) else {
            return if generation < 0 { Ok(()) } else { Err(BrokerError::IllegalGeneration(generation)) };
        };
        if generation < 0 && member_id.is_empty() {
            return if g.members.is_empty() { Ok(()) } else { Err(BrokerError::IllegalGeneration(generation)) };
        }
        check_member(g, member_id, instance_id)?;
        if g.state == GroupState::CompletingRebalance {
            return Err(BrokerError::RebalanceInProgress);
        }
        if g.generation != generation {
            return Err(BrokerError::IllegalGeneration(generation));
        }
        Ok(())
    }

    /// (group, protocol type, state) of every group with members or state.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.groups.lock();
        let mut v: Vec<_> = groups.iter().map(|(k, g)| (k.clone(), g.protocol_type.clone(), g.state)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A group's description; None if the coordinator has never seen it.
    pub fn describe(&self, group: &str) -> Option<GroupView> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        Some(GroupView {
            state: g.state,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            generation: g.generation,
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.protocols.iter().find(|(n, _)| *n == g.protocol).map(|(_, b)| b.clone()).unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Forgets an empty group; NON_EMPTY_GROUP if it has members.
    pub fn delete(&self, group: &str) -> Result<()> {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get(group) {
            if !g.members.is_empty() {
                return Err(BrokerError::NonEmptyGroup(group.to_string()));
            }
        }
        groups.remove(group);
        Ok(())
    }

    /// Forgets groups whatever their state (their coordinator moved to another broker; members
    /// find it again on NOT_COORDINATOR).
    pub fn forget(&self, groups: &[String]) {
        let mut all = self.groups.lock();
        for g in groups {
            all.remove(g);
        }
    }

    /// Forgets a group with neither members nor member ids handed out and not yet used; true if
    /// it went.
    pub fn remove_if_idle(&self, group: &str) -> bool {
        let mut groups = self.groups.lock();
        let idle = groups.get(group).is_some_and(|g| g.members.is_empty() && g.pending.is_empty());
        if idle {
            groups.remove(group);
        }
        idle
    }

    /// True when the group has members.
    pub fn has_members(&self, group: &str) -> bool {
        self.groups.lock().get(group).is_some_and(|g| !g.members.is_empty())
    }

    /// Enforces rebalance deadlines and session timeouts; called periodically.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            g.pending.retain(|_, t| now.saturating_sub(*t) < PENDING_MEMBER_MS);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| m.join_tx.is_none() && m.sync_tx.is_none() && now.saturating_sub(m.last_seen) > m.session_timeout.as_millis() as i64)
                .map(|(k, _)| k.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(member = %id, "group member's session expired");
                    g.remove_member(id, || BrokerError::UnknownMemberId(id.clone()));
                }
                g.after_departure(now, self.settings.initial_rebalance_delay);
            }
            if g.state == GroupState::PreparingRebalance && g.deadline.is_some_and(|d| d <= now) {
                g.complete_join(now);
            }
        }
    }
}

fn check_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<()> {
    if let Some(i) = instance_id {
        match g.statics.get(i) {
            Some(x) if x == member_id => {}
            Some(_) => return Err(BrokerError::FencedInstanceId(i.to_string())),
            None => {}
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(BrokerError::UnknownMemberId(member_id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
