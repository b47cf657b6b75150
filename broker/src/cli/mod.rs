//! Admin subcommands of the `floe` binary that talk to a running node.

pub mod acl;
pub mod broker;
pub mod command_config;
pub mod consume;
pub mod group;
pub mod kafka;
pub mod partition;
pub mod produce;
pub mod render;
pub mod table_status;
pub mod topic;
pub mod txn;
pub mod user;
