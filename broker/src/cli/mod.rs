//! Admin subcommands of the `floe` binary that talk to a running node.

pub mod table_status;
