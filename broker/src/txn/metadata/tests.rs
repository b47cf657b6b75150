//! The state machine case by case, and against a model under random request sequences.

use proptest::prelude::*;

use super::*;

fn part(t: &str, p: i32) -> TxnPartition {
    (t.to_string(), p)
}

fn ready(o: InitOutcome) -> TxnMetadata {
    match o {
        InitOutcome::Ready(m) => m,
        other => panic!("expected Ready, got {other:?}"),
    }
}

#[test]
fn a_transaction_commits_and_a_zombie_is_fenced() {
    let m = ready(TxnMetadata::new("app", 7, 60_000, 0).init_producer_id(None, 60_000, 1, || 99).expect("init"));
    assert_eq!((m.producer_id, m.producer_epoch, m.state), (7, 1, TxnState::Empty));
    let m = m.add_partitions(7, 1, &[part("out", 0), part("out", 1)], 2).expect("add");
    assert_eq!((m.state, m.partitions.len(), m.start_ms), (TxnState::Ongoing, 2, 2));
    // A second producer with the same id takes over: the open transaction is aborted first.
    let InitOutcome::AbortFirst(aborting) = m.init_producer_id(None, 60_000, 3, || 99).expect("init") else { panic!("abort first") };
    assert_eq!((aborting.state, aborting.producer_epoch), (TxnState::PrepareAbort, 2));
    let err = aborting.add_partitions(7, 1, &[part("out", 2)], 4).expect_err("the zombie");
    assert!(matches!(err, BrokerError::ProducerFenced { epoch: 1, current: 2, .. }), "{err}");
    assert!(matches!(aborting.init_producer_id(None, 60_000, 4, || 99), Err(BrokerError::ConcurrentTransactions(_))));
    let done = aborting.complete(5).expect("markers written");
    assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteAbort, 0));
    let m = ready(done.init_producer_id(None, 60_000, 6, || 99).expect("retry"));
    assert_eq!(m.producer_epoch, 3);
    let m = m.add_partitions(7, 3, &[part("out", 0)], 7).expect("add");
    let p = m.end_txn(7, 3, true, 8).expect("end").expect("prepare");
    assert_eq!(p.state, TxnState::PrepareCommit);
    assert!(matches!(p.end_txn(7, 3, true, 9), Err(BrokerError::ConcurrentTransactions(_))), "markers pending");
    let c = p.complete(10).expect("complete");
    assert_eq!(c.end_txn(7, 3, true, 11).expect("a retried commit"), None);
    assert!(matches!(c.end_txn(7, 3, false, 11), Err(BrokerError::InvalidTxnState(_))), "abort after commit");
    assert!(matches!(c.add_partitions(8, 3, &[], 12), Err(BrokerError::InvalidProducerIdMapping(_))));
}

#[test]
fn an_exhausted_epoch_takes_a_new_producer_id_and_a_retried_bump_is_answered_the_same() {
    let mut m = TxnMetadata::new("app", 7, 1000, 0);
    m.producer_epoch = EPOCH_MAX;
    let next = ready(m.init_producer_id(Some((7, EPOCH_MAX)), 1000, 1, || 42).expect("bump"));
    assert_eq!((next.producer_id, next.producer_epoch, next.prev_producer_id), (42, 0, 7));
    let again = ready(next.init_producer_id(Some((7, EPOCH_MAX)), 1000, 2, || 43).expect("retried"));
    assert_eq!((again.producer_id, again.producer_epoch), (42, 0), "no second bump");
    assert!(matches!(next.init_producer_id(Some((42, 5)), 1000, 2, || 43), Err(BrokerError::ProducerFenced { .. })));
}

#[test]
fn an_open_transaction_expires_into_an_abort_at_a_fencing_epoch() {
    let m = ready(TxnMetadata::new("app", 1, 1000, 0).init_producer_id(None, 1000, 0, || 2).expect("init"));
    let m = m.add_partitions(1, 1, &[part("t", 0)], 100).expect("add");
    assert_eq!(m.expire(1100), None, "not past the timeout yet");
    let aborting = m.expire(1101).expect("expired");
    assert_eq!((aborting.state, aborting.producer_epoch), (TxnState::PrepareAbort, 2));
    assert!(matches!(aborting.end_txn(1, 1, true, 1102), Err(BrokerError::ProducerFenced { .. })), "the late commit is fenced");
    assert_eq!(TxnMetadata::new("x", 1, 10, 0).expire(1_000_000), None, "nothing open");
}

/// A request of the generated sequences.
#[derive(Debug, Clone)]
enum Op {
    Init { kip360: bool },
    Add { stale: bool, partition: i32 },
    End { stale: bool, commit: bool },
    Complete,
    Expire { after_ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(|kip360| Op::Init { kip360 }),
        (any::<bool>(), 0..4i32).prop_map(|(stale, partition)| Op::Add { stale, partition }),
        (any::<bool>(), any::<bool>()).prop_map(|(stale, commit)| Op::End { stale, commit }),
        Just(Op::Complete),
        (0..3000i64).prop_map(|after_ms| Op::Expire { after_ms }),
    ]
}

/// The model: what a transactional id's life must look like, told apart from how it is kept.
#[derive(Debug, Default)]
struct Model {
    /// Bumps so far (producer id changes included): the fencing order.
    generation: u32,
    open: bool,
    /// Some(commit) while markers are pending.
    ending: Option<bool>,
    last_end: Option<bool>,
    partitions: BTreeSet<i32>,
}

proptest! {
    #[test]
    fn the_state_machine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut next_id = 100i64;
        let mut m = TxnMetadata::new("app", 1, 1000, 0);
        let mut model = Model::default();
        let mut now = 0i64;
        let mut last = (m.producer_id, m.producer_epoch);
        let mut last_generation = 0;
        for op in ops {
            now += 1;
            match op {
                Op::Init { kip360 } => {
                    let expected = kip360.then_some((m.producer_id, m.producer_epoch));
                    let r = m.init_producer_id(expected, 1000, now, || { next_id += 1; next_id });
                    match (r, model.ending.is_some()) {
                        (Err(BrokerError::ConcurrentTransactions(_)), true) => {}
                        (Ok(InitOutcome::AbortFirst(n)), false) if model.open => {
                            model.generation += 1;
                            model.open = false;
                            model.ending = Some(false);
                            m = n;
                        }
                        (Ok(InitOutcome::Ready(n)), false) if !model.open => {
                            model.partitions.clear();
                            // A retried bump (KIP-360) changes nothing; a real one starts afresh.
                            if n != m {
                                model.generation += 1;
                                model.last_end = None;
                            }
                            m = n;
                        }
                        (r, ending) => prop_assert!(false, "init: {r:?} with model {model:?} (ending {ending})"),
                    }
                }
                Op::Add { stale, partition } => {
                    let epoch = if stale { m.producer_epoch.wrapping_sub(1) } else { m.producer_epoch };
                    let r = m.add_partitions(m.producer_id, epoch, &[part("t", partition)], now);
                    match r {
                        Err(BrokerError::ProducerFenced { .. }) => prop_assert!(stale),
                        Err(BrokerError::ConcurrentTransactions(_)) => prop_assert!(!stale && model.ending.is_some()),
                        Ok(n) => {
                            prop_assert!(!stale && model.ending.is_none());
                            if !model.open {
                                model.partitions.clear();
                                model.last_end = None;
                            }
                            model.open = true;
                            model.partitions.insert(partition);
                            m = n;
                        }
                        Err(e) => prop_assert!(false, "add: {e}"),
                    }
                }
                Op::End { stale, commit } => {
                    let epoch = if stale { m.producer_epoch.wrapping_sub(1) } else { m.producer_epoch };
                    match m.end_txn(m.producer_id, epoch, commit, now) {
                        Err(BrokerError::ProducerFenced { .. }) => prop_assert!(stale),
                        Ok(Some(n)) => {
                            prop_assert!(!stale && model.open);
                            model.open = false;
                            model.ending = Some(commit);
                            m = n;
                        }
                        Ok(None) => prop_assert!(!stale && !model.open && model.ending.is_none() && model.last_end == Some(commit)),
                        Err(BrokerError::ConcurrentTransactions(_)) => prop_assert_eq!(model.ending, Some(commit)),
                        Err(BrokerError::InvalidTxnState(_)) => prop_assert!(!model.open && model.ending != Some(commit) && model.last_end != Some(commit)),
                        Err(e) => prop_assert!(false, "end: {e}"),
                    }
                }
                Op::Complete => match m.complete(now) {
                    Ok(n) => {
                        let commit = model.ending.take();
                        prop_assert!(commit.is_some());
                        model.last_end = commit;
                        model.partitions.clear();
                        m = n;
                    }
                    Err(_) => prop_assert!(model.ending.is_none()),
                },
                Op::Expire { after_ms } => {
                    now += after_ms;
                    match m.expire(now) {
                        Some(n) => {
                            prop_assert!(model.open && now > m.start_ms + 1000);
                            model.open = false;
                            model.ending = Some(false);
                            // (At the last epoch the abort cannot bump it; the next init takes a new id.)
                            if n.producer_epoch != m.producer_epoch {
                                model.generation += 1;
                            }
                            m = n;
                        }
                        None => prop_assert!(!model.open || now <= m.start_ms + 1000),
                    }
                }
            }
            // Invariants: the fencing order only moves forward; partitions only while open or ending.
            prop_assert!((m.producer_id, m.producer_epoch) >= last || m.prev_producer_id == last.0);
            prop_assert_eq!(model.generation != last_generation, (m.producer_id, m.producer_epoch) != last, "the epoch moves exactly when the model's generation does");
            last = (m.producer_id, m.producer_epoch);
            last_generation = model.generation;
            prop_assert_eq!(m.state == TxnState::Ongoing, model.open);
            prop_assert_eq!(m.state.preparing(), model.ending.is_some());
            if model.open {
                prop_assert_eq!(m.partitions.iter().map(|(_, p)| *p).collect::<BTreeSet<_>>(), model.partitions.clone());
            }
            if matches!(m.state, TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty) {
                prop_assert!(m.partitions.is_empty());
            }
        }
    }
}

#[test]
fn offsets_pend_in_the_transaction_the_last_of_a_partition_winning() {
    let c = |offset| Committed { offset, leader_epoch: -1, metadata: None, commit_ms: 0 };
    let m = ready(TxnMetadata::new("app", 7, 60_000, 0).init_producer_id(None, 60_000, 1, || 99).expect("init"));
    let err = m.commit_offsets(7, 1, "g", vec![("in".into(), 0, c(5))], 2).expect_err("the group was not added");
    assert!(matches!(err, BrokerError::InvalidTxnState(_)), "{err}");
    let m = m.add_group(7, 1, "g", 2).expect("add offsets");
    let m = m.commit_offsets(7, 1, "g", vec![("in".into(), 0, c(5)), ("in".into(), 1, c(8)), ("in".into(), 0, c(6))], 3).expect("commit");
    let m = m.commit_offsets(7, 1, "g", vec![("in".into(), 1, c(9))], 4).expect("again");
    let mut pending: Vec<(String, i32, i64)> = m.pending_offsets.iter().map(|o| (o.topic.clone(), o.partition, o.committed.offset)).collect();
    pending.sort();
    assert_eq!(pending, vec![("in".to_string(), 0, 6), ("in".to_string(), 1, 9)]);
    assert!(matches!(m.commit_offsets(7, 0, "g", vec![], 5), Err(BrokerError::ProducerFenced { .. })));
    let done = m.end_txn(7, 1, false, 6).expect("abort").expect("prepare").complete(7).expect("complete");
    assert!(done.pending_offsets.is_empty() && done.groups.is_empty(), "an ended transaction holds nothing");
}
