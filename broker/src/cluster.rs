//! Cluster mode on etcd (`etcd_endpoints`): so far membership — each node registers under a leased key, and `floe broker list` reads them.
//!
//! Without `etcd_endpoints` a node runs alone, exactly as before. Keys live under
//! `/floe/<cluster_name>/`; see `membership.rs` for the broker keys. The etcd client speaks etcd's
//! JSON gateway (`etcd.rs`), so the build needs neither protoc nor a gRPC stack.

pub mod etcd;
pub mod membership;

/// The key prefix of a cluster.
pub fn root(cluster_name: &str) -> String {
    format!("/floe/{cluster_name}/")
}
