//! The admin side of transactions: DescribeTransactions, ListTransactions (state, producer, duration and id-pattern filters) and DescribeProducers.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_request::DescribeProducersRequest;
use kafka_protocol::messages::describe_producers_response::{DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::{DescribeTransactionsResponse, TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::{self, ListTransactionsResponse};
use kafka_protocol::messages::{ProducerId, TopicName, TransactionalId};

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::security::acl::{Operation, ResourceType};
use crate::txn::metadata::{TxnMetadata, TxnState};

/// Longest transactional-id pattern ListTransactions compiles.
const PATTERN_BYTES_MAX: usize = 1024;
/// Compiled size a pattern may take.
const PATTERN_COMPILED_BYTES_MAX: usize = 1 << 20;

/// DescribeTransactions: each id's state, partitions and timing (Describe on the id).
pub fn describe(b: &Arc<Broker>, req: DescribeTransactionsRequest, ctx: &RequestContext) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut s = TransactionState::default();
        s.transactional_id = id.clone();
        s.producer_id = ProducerId(-1);
        s.producer_epoch = -1;
        s.transaction_start_time_ms = -1;
        let found = match ctx.allowed(b, Operation::Describe, ResourceType::TransactionalId, &id) {
            false => Err(BrokerError::TransactionalIdAuthorizationFailed(id.to_string())),
            true => b.txn.get(&id).ok_or_else(|| BrokerError::TransactionalIdNotFound(id.to_string())),
        };
        match found {
            Ok(m) => fill(&mut s, &m, b, ctx),
            Err(e) => s.error_code = e.code(),
        }
        resp.transaction_states.push(s);
    }
    resp
}

fn fill(s: &mut TransactionState, m: &TxnMetadata, b: &Broker, ctx: &RequestContext) {
    s.transaction_state = sb(m.state.name());
    s.transaction_timeout_ms = m.timeout_ms;
    s.transaction_start_time_ms = m.start_ms;
    s.producer_id = ProducerId(m.producer_id);
    s.producer_epoch = m.producer_epoch;
    for (topic, partition) in &m.partitions {
        // Partitions of topics the sender may not Describe are left out, as Kafka does.
        if !ctx.may(b, Operation::Describe, ResourceType::Topic, topic) {
            continue;
        }
        match s.topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
            _ => {
                let mut t = TopicData::default();
                t.topic = TopicName(sb(topic));
                t.partitions.push(*partition);
                s.topics.push(t);
            }
        }
    }
}

/// ListTransactions: the ids the sender may Describe, filtered.
pub fn list(b: &Arc<Broker>, req: ListTransactionsRequest, ctx: &RequestContext) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    let pattern = match compile(req.transactional_id_pattern.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            resp.error_code = e.code();
            return resp;
        }
    };
    let mut states = Vec::new();
    for f in &req.state_filters {
        match TxnState::ALL.iter().find(|s| s.name() == f.as_str()) {
            Some(s) => states.push(*s),
            None => resp.unknown_state_filters.push(f.clone()),
        }
    }
    let now = b.clock.now_ms();
    let mut all = b.txn.all();
    all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    for m in all {
        let keep = (req.state_filters.is_empty() || states.contains(&m.state))
            && (req.producer_id_filters.is_empty() || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
            && (req.duration_filter < 0 || (m.start_ms >= 0 && now.saturating_sub(m.start_ms) > req.duration_filter))
            && pattern.as_ref().is_none_or(|p| p.is_match(&m.transactional_id))
            && ctx.may(b, Operation::Describe, ResourceType::TransactionalId, &m.transactional_id);
        if keep {
            let mut s = list_transactions_response::TransactionState::default();
            s.transactional_id = TransactionalId(sb(&m.transactional_id));
            s.producer_id = ProducerId(m.producer_id);
            s.transaction_state = sb(m.state.name());
            resp.transaction_states.push(s);
        }
    }
    resp
}

fn compile(pattern: Option<&str>) -> Result<Option<regex::Regex>> {
    let Some(p) = pattern.filter(|p| !p.is_empty()) else { return Ok(None) };
    if p.len() > PATTERN_BYTES_MAX {
        return Err(BrokerError::InvalidRequest(format!("a transactional id pattern is at most {PATTERN_BYTES_MAX} bytes")));
    }
    let re = regex::RegexBuilder::new(&format!("^(?:{p})$")).size_limit(PATTERN_COMPILED_BYTES_MAX).build();
    re.map(Some).map_err(|e| BrokerError::InvalidRequest(format!("transactional id pattern: {e}")))
}

/// DescribeProducers: each partition's active producers (Read on the topic).
pub fn describe_producers(b: &Arc<Broker>, req: DescribeProducersRequest, ctx: &RequestContext) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let mut tr = TopicResponse::default();
        tr.name = t.name.clone();
        let allowed = ctx.allowed(b, Operation::Read, ResourceType::Topic, &t.name);
        for index in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = index;
            let found = match allowed {
                false => Err(BrokerError::TopicAuthorizationFailed(t.name.to_string())),
                true => b.topics.partition(&t.name, index),
            };
            match found {
                Ok(p) => {
                    let producers = p.producers.lock().producers.clone();
                    let txn = p.txn.lock();
                    let mut ids: Vec<_> = producers.into_iter().collect();
                    ids.sort_by_key(|(id, _)| *id);
                    for (id, e) in ids {
                        let mut s = ProducerState::default();
                        s.producer_id = ProducerId(id);
                        s.producer_epoch = i32::from(e.epoch);
                        s.last_sequence = e.batches.back().map_or(-1, |x| x.last_seq);
                        s.last_timestamp = e.last_seen_ms;
                        s.coordinator_epoch = crate::txn::markers::COORDINATOR_EPOCH;
                        s.current_txn_start_offset = txn.open_since(id).unwrap_or(-1);
                        pr.active_producers.push(s);
                    }
                }
                Err(e) => {
                    pr.error_code = e.code();
                    pr.error_message = Some(sb(&e.to_string()));
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
