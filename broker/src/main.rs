//! floe binary.
fn main() {}
