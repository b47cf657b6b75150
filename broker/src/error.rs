//! The broker's one error type, and the one place where errors become Kafka error codes.

use kafka_protocol::error::ResponseError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor {0}: a Floe node keeps one copy (object storage is the replica)")]
    InvalidReplicationFactor(i16),
    #[error("invalid config {key}: {reason}")]
    InvalidConfig { key: String, reason: String },
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("record batch magic {0} is not supported: only magic v2 batches are accepted")]
    UnsupportedMessageFormat(i8),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("message of {size} bytes is over max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("out of order sequence {got} for producer {producer_id}: expected {expected}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    #[error("producer {producer_id} epoch {epoch} is older than {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("offset {0} is out of range")]
    OffsetOutOfRange(i64),
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown member id {0:?}")]
    UnknownMemberId(String),
    #[error("illegal generation {0}")]
    IllegalGeneration(i32),
    #[error("a rebalance is in progress")]
    RebalanceInProgress,
    #[error("a member id is required: rejoin with {0}")]
    MemberIdRequired(String),
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("invalid session timeout {0} ms")]
    InvalidSessionTimeout(i32),
    #[error("group {0} does not exist")]
    GroupIdNotFound(String),
    #[error("group {0} is not empty")]
    NonEmptyGroup(String),
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("static member {0} was fenced by a newer member with the same instance id")]
    FencedInstanceId(String),
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("request timed out")]
    RequestTimedOut,
    #[error("unacceptable credential: {0}")]
    UnacceptableCredential(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0} is named more than once in the request")]
    DuplicateResource(String),
    #[error("SASL mechanism {0} is not enabled")]
    UnsupportedSaslMechanism(String),
    #[error("authentication failed: invalid credentials")]
    SaslAuthenticationFailed,
    #[error("{0}")]
    IllegalSaslState(String),
    #[error("not authorized to access topic {0}")]
    TopicAuthorizationFailed(String),
    #[error("not authorized to access group {0}")]
    GroupAuthorizationFailed(String),
    #[error("not authorized to access transactional id {0}")]
    TransactionalIdAuthorizationFailed(String),
    #[error("not authorized for this cluster operation")]
    ClusterAuthorizationFailed,
    #[error("no authorizer is configured (set authorizer = true)")]
    SecurityDisabled,
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    #[error("transactional id {0} has another producer id")]
    InvalidProducerIdMapping(String),
    #[error("transactional id {0} is completing a transaction; retry")]
    ConcurrentTransactions(String),
    #[error("transaction timeout {timeout_ms} ms is outside 1..={max_ms} (transaction_max_timeout_ms)")]
    InvalidTransactionTimeout { timeout_ms: i32, max_ms: i64 },
    #[error("transactional id {0} is not known")]
    TransactionalIdNotFound(String),
    #[error("offsets of this group are pending in an open transaction")]
    UnstableOffsetCommit,
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced { producer_id: i64, epoch: i16, current: i16 },
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment of {0} is in progress")]
    NoReassignmentInProgress(String),
    /// KIP-320: the client's leader epoch is older than the partition's.
    #[error("leader epoch {asked} is fenced: the partition is at epoch {current}")]
    FencedLeaderEpoch { asked: i32, current: i32 },
    /// KIP-320: the client's leader epoch is newer than this broker knows.
    #[error("leader epoch {asked} is not known here yet (at epoch {current})")]
    UnknownLeaderEpoch { asked: i32, current: i32 },
    /// The coordinator of a group is not placed yet (cluster mode).
    #[error("no coordinator is available for {0} yet")]
    CoordinatorNotAvailable(String),
    /// Another broker coordinates this group (cluster mode), or its partition is moving.
    #[error("this broker does not coordinate group {0}")]
    NotCoordinator(String),
    /// The partition is served by another broker (cluster mode), or is moving.
    #[error("this broker does not lead {topic}-{partition} (its leader is node {leader} at epoch {leader_epoch})")]
    NotLeaderOrFollower { topic: String, partition: i32, leader: i32, leader_epoch: i32 },
    #[error("storage: {0}")]
    Storage(#[from] floe_s3stream::Error),
    #[error("internal: {0}")]
    Internal(String),
    /// The cluster's coordination service (etcd) failed or refused.
    #[error("cluster coordination: {0}")]
    Coordination(String),
}

impl BrokerError {
    /// The Kafka error this maps to.
    pub fn response_error(&self) -> ResponseError {
        use floe_s3stream::ErrorKind;
        match self {
            BrokerError::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            BrokerError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            BrokerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            BrokerError::InvalidTopic(..) => ResponseError::InvalidTopicException,
            BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            BrokerError::InvalidConfig { .. } => ResponseError::InvalidConfig,
            BrokerError::CorruptMessage(_) => ResponseError::CorruptMessage,
            BrokerError::UnsupportedMessageFormat(_) => ResponseError::UnsupportedVersion,
            BrokerError::InvalidRecord(_) => ResponseError::InvalidRecord,
            BrokerError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            BrokerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            BrokerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            BrokerError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange,
            BrokerError::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
            BrokerError::UnknownMemberId(_) => ResponseError::UnknownMemberId,
            BrokerError::IllegalGeneration(_) => ResponseError::IllegalGeneration,
            BrokerError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            BrokerError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
            BrokerError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            BrokerError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
            BrokerError::GroupIdNotFound(_) => ResponseError::GroupIdNotFound,
            BrokerError::NonEmptyGroup(_) => ResponseError::NonEmptyGroup,
            BrokerError::InvalidGroupId => ResponseError::InvalidGroupId,
            BrokerError::FencedInstanceId(_) => ResponseError::FencedInstanceId,
            BrokerError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            BrokerError::RequestTimedOut => ResponseError::RequestTimedOut,
            BrokerError::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
            BrokerError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
            BrokerError::DuplicateResource(_) => ResponseError::DuplicateResource,
            BrokerError::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
            BrokerError::SaslAuthenticationFailed => ResponseError::SaslAuthenticationFailed,
            BrokerError::IllegalSaslState(_) => ResponseError::IllegalSaslState,
            BrokerError::TopicAuthorizationFailed(_) => ResponseError::TopicAuthorizationFailed,
            BrokerError::GroupAuthorizationFailed(_) => ResponseError::GroupAuthorizationFailed,
            BrokerError::ClusterAuthorizationFailed => ResponseError::ClusterAuthorizationFailed,
            BrokerError::TransactionalIdAuthorizationFailed(_) => ResponseError::TransactionalIdAuthorizationFailed,
            BrokerError::SecurityDisabled => ResponseError::SecurityDisabled,
            BrokerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            BrokerError::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
            BrokerError::ConcurrentTransactions(_) => ResponseError::ConcurrentTransactions,
            BrokerError::ProducerFenced { .. } => ResponseError::ProducerFenced,
            BrokerError::InvalidTransactionTimeout { .. } => ResponseError::InvalidTransactionTimeout,
            BrokerError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
            BrokerError::TransactionalIdNotFound(_) => ResponseError::TransactionalIdNotFound,
            BrokerError::NotLeaderOrFollower { .. } => ResponseError::NotLeaderOrFollower,
            BrokerError::NotCoordinator(_) => ResponseError::NotCoordinator,
            BrokerError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            BrokerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            BrokerError::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
            BrokerError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            BrokerError::CoordinatorNotAvailable(_) => ResponseError::CoordinatorNotAvailable,
            BrokerError::Storage(e) => match (e, e.kind()) {
                (floe_s3stream::Error::OffsetOutOfRange { .. }, _) => ResponseError::OffsetOutOfRange,
                // A stream sealed for a move (cluster mode): the partition is on its way elsewhere.
                (floe_s3stream::Error::StreamNotOpen(_), _) => ResponseError::NotLeaderOrFollower,
                (floe_s3stream::Error::StreamNotFound(_), _) => ResponseError::UnknownTopicOrPartition,
                (_, ErrorKind::Fenced) => ResponseError::NotLeaderOrFollower,
                (_, ErrorKind::InvalidInput) => ResponseError::InvalidRequest,
                (_, ErrorKind::Unavailable) => ResponseError::KafkaStorageError,
                (_, ErrorKind::Corruption | ErrorKind::Internal) => ResponseError::UnknownServerError,
            },
            BrokerError::Internal(_) | BrokerError::Coordination(_) => ResponseError::UnknownServerError,
        }
    }

    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        self.response_error().code()
    }
}

/// Result with the broker's error.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// The error code of a result: 0 for success.
pub fn code_of<T>(r: &Result<T>) -> i16 {
    r.as_ref().err().map_or(0, BrokerError::code)
}
