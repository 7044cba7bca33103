//! Shared helpers for the comparison benchmarks.

pub mod balance;
pub mod ch;
pub mod net;
pub mod rt;
