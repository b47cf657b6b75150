//! Floe broker.
