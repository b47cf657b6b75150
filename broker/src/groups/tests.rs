//! Coordinator tests: a full rebalance, a member leaving, session expiry, static members — on a
//! manual clock, so deadlines pass when a test says so.

use super::*;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The coordinator's clock, moved by hand.
#[derive(Default)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A coordinator, and its clock; a background ticker moves the clock 10 ms per tick, so the
/// initial rebalance delay passes after a few ticks whatever the machine's speed.
fn coord() -> (Arc<Coordinator>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let c = Arc::new(Coordinator::new(
        GroupSettings { initial_rebalance_delay: Duration::from_millis(50), min_session_timeout_ms: 10, max_session_timeout_ms: 60_000 },
        clock.clone(),
    ));
    let (weak, ticking) = (Arc::downgrade(&c), clock.clone());
    tokio::spawn(async move {
        while let Some(c) = weak.upgrade() {
            ticking.advance(10);
            c.tick();
            drop(c);
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (c, clock)
}

fn req(member: &str, instance: Option<&str>, session_ms: i32) -> JoinRequest {
    JoinRequest {
        group: "g".into(),
        member_id: member.into(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: session_ms,
        rebalance_timeout_ms: 500,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: true,
    }
}

async fn join_new(c: &Arc<Coordinator>, instance: Option<&str>, session_ms: i32) -> tokio::task::JoinHandle<Result<JoinOutcome>> {
    let id = match c.join(req("", instance, session_ms)).await {
        Err(BrokerError::MemberIdRequired(id)) => id,
        Ok(o) if instance.is_some() => o.member_id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    };
    let c = c.clone();
    let instance = instance.map(str::to_string);
    tokio::spawn(async move { c.join(req(&id, instance.as_deref(), session_ms)).await })
}

#[tokio::test]
async fn two_members_rebalance_then_one_leaves() {
    let (c, _clock) = coord();
    let a = join_new(&c, None, 10_000).await;
    let b = join_new(&c, None, 10_000).await;
    let (a, b) = (a.await.expect("task").expect("join a"), b.await.expect("task").expect("join b"));
    assert_eq!(a.generation, b.generation);
    assert_eq!(a.leader, b.leader);
    let (leader, follower) = if a.member_id == a.leader { (a, b) } else { (b, a) };
    assert_eq!(leader.members.len(), 2, "the leader sees every member");
    assert!(follower.members.is_empty());
    let c2 = c.clone();
    let f = follower.clone();
    let fsync = tokio::spawn(async move { c2.sync("g", &f.member_id, None, f.generation, vec![]).await });
    let assignments = vec![(leader.member_id.clone(), Bytes::from_static(b"L")), (follower.member_id.clone(), Bytes::from_static(b"F"))];
    let (_, proto, mine) = c.sync("g", &leader.member_id, None, leader.generation, assignments).await.expect("leader sync");
    assert_eq!((proto.as_str(), &mine[..]), ("range", &b"L"[..]));
    assert_eq!(&fsync.await.expect("task").expect("follower sync").2[..], b"F");
    c.heartbeat("g", &follower.member_id, None, follower.generation).expect("stable");
    // The leader leaves: the follower is told to rejoin, and gets a group of its own.
    c.leave("g", vec![(leader.member_id.clone(), None)]).expect("leave");
    assert!(matches!(c.heartbeat("g", &follower.member_id, None, follower.generation), Err(BrokerError::RebalanceInProgress)));
    let again = c.join(req(&follower.member_id, None, 10_000)).await.expect("rejoin");
    assert_eq!(again.generation, follower.generation + 1);
    assert_eq!(again.leader, follower.member_id);
}

#[tokio::test]
async fn an_expired_session_removes_the_member() {
    let (c, clock) = coord();
    let a = join_new(&c, None, 30_000).await.await.expect("task").expect("join");
    c.sync("g", &a.member_id, None, a.generation, vec![(a.member_id.clone(), Bytes::new())]).await.expect("sync");
    c.heartbeat("g", &a.member_id, None, a.generation).expect("alive");
    clock.advance(30_001);
    c.tick();
    assert!(matches!(c.heartbeat("g", &a.member_id, None, a.generation), Err(BrokerError::UnknownMemberId(_))));
    assert_eq!(c.describe("g").expect("group").state, GroupState::Empty);
}

#[tokio::test]
async fn a_static_member_keeps_its_place_and_fences_its_old_self() {
    let (c, _clock) = coord();
    let first = c.join(req("", Some("i1"), 10_000)).await.expect("static join");
    c.sync("g", &first.member_id, Some("i1"), first.generation, vec![(first.member_id.clone(), Bytes::from_static(b"A"))]).await.expect("sync");
    let again = c.join(req("", Some("i1"), 10_000)).await.expect("rejoin after restart");
    assert_ne!(again.member_id, first.member_id);
    assert!(matches!(c.heartbeat("g", &first.member_id, Some("i1"), first.generation), Err(BrokerError::FencedInstanceId(_))));
}

#[tokio::test]
async fn a_group_is_idle_only_with_no_member_and_no_member_id_handed_out() {
    let (c, clock) = coord();
    assert!(matches!(c.join(req("", None, 10_000)).await, Err(BrokerError::MemberIdRequired(_))));
    assert!(!c.remove_if_idle("g"), "a member id was handed out and may come back");
    clock.advance(PENDING_MEMBER_MS + 1);
    c.tick();
    assert!(c.remove_if_idle("g"), "once it lapsed, the group is idle");
    assert!(c.describe("g").is_none());
}
