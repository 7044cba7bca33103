//! Shared helpers for the comparison benchmarks.

pub mod ch;
pub mod rt;
