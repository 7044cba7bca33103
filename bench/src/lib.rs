//! Shared helpers for the comparison benchmarks.

pub mod rt;
