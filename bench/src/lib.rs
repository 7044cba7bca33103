//! Shared helpers for the comparison benchmarks.

pub mod ch;
pub mod net;
pub mod rt;
