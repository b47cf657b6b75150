//! KIP-890's check of a transactional produce whose coordinator is another broker of the cluster: an AddPartitionsToTxn (v4, verify-only) to it, for the first batch of a transaction in a partition.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::handlers::sb;
use crate::topics::TXN_TOPIC;

/// AddPartitionsToTxn v4: batched, verify-only (sent by brokers).
const VERIFY_VERSION: i16 = 4;

/// The broker coordinating transactional id `id`: the leader of its transaction state partition.
pub fn coordinator_of(b: &Broker, id: &str) -> Result<i32> {
    let p = super::log::partition_for(id, b.txn.partitions());
    let leader = b.topics.get(TXN_TOPIC).and_then(|t| t.partitions.get(p as usize).map(|x| x.leader_id)).unwrap_or(-1);
    if leader < 0 {
        return Err(BrokerError::CoordinatorNotAvailable(id.to_string()));
    }
    Ok(leader)
}

/// Whether `id`'s open transaction, of `producer_id` at `epoch`, holds `topic`-`index`, asked of
/// its coordinator. A fenced producer is answered as produce answers one (INVALID_PRODUCER_EPOCH).
pub async fn verify_remote(b: &Broker, id: &str, producer_id: i64, epoch: i16, topic: &str, index: i32) -> Result<()> {
    let node = coordinator_of(b, id)?;
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = TopicName(sb(topic));
    t.partitions.push(index);
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(sb(id));
    txn.producer_id = ProducerId(producer_id);
    txn.producer_epoch = epoch;
    txn.verify_only = true;
    txn.topics.push(t);
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions.push(txn);
    // Unanswered: the producer retries (REQUEST_TIMED_OUT).
    let resp = crate::cluster::peers::request(b, node, &req, VERIFY_VERSION).await.map_err(|e| {
        tracing::warn!(transactional_id = id, coordinator = node, error = %e, "verifying a transactional produce failed");
        BrokerError::RequestTimedOut
    })?;
    let code = match resp.error_code {
        0 => resp
            .results_by_transaction
            .first()
            .and_then(|r| r.topic_results.first())
            .and_then(|t| t.results_by_partition.first())
            .map(|p| p.partition_error_code)
            .ok_or(BrokerError::RequestTimedOut)?,
        c => c,
    };
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => Err(BrokerError::InvalidProducerEpoch { producer_id, epoch, current: -1 }),
        // Retriable for the producer: its coordinator is moving or away.
        Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress) => {
            Err(BrokerError::RequestTimedOut)
        }
        Some(e) => Err(BrokerError::InvalidTxnState(format!("{topic}-{index} is not in {id}'s transaction ({e})"))),
    }
}
