//! Idle generators: how long it takes to create N suspended generators and
//! how much memory each one holds (resident set, and page tables, which the
//! kernel does not count in the resident set).
//!
//! Run: `cargo run --release -p coio-bench --bin idle [N...]` (default:
//! 100000 1000000).

use std::time::Instant;

use coio::{Generator, GeneratorState, Yielder};

/// Resident bytes and page-table bytes of this process.
fn memory() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kib("VmRSS:"), kib("VmPTE:"))
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        counts
    };
    println!(
        "| idle generators | create (ns each) | resident (bytes each) | page tables (bytes each) | drop (ns each) |"
    );
    println!("|---|---|---|---|---|");
    for n in counts {
        let mut gens: Vec<Generator<(), (), ()>> = Vec::with_capacity(n);
        let (rss0, pte0) = memory();
        let vec_bytes = n * std::mem::size_of::<Generator<(), (), ()>>();
        let start = Instant::now();
        for _ in 0..n {
            let mut g = Generator::new(|y: &Yielder<(), ()>, ()| y.yield_(()));
            assert_eq!(g.resume(()), GeneratorState::Yielded(()));
            gens.push(g);
        }
        let create = start.elapsed().as_nanos() as f64 / n as f64;
        let (rss1, pte1) = memory();
        let start = Instant::now();
        drop(gens);
        let drop_ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "| {n} | {create:.0} | {:.0} | {:.0} | {drop_ns:.0} |",
            (rss1 - rss0 - vec_bytes) as f64 / n as f64,
            (pte1 - pte0) as f64 / n as f64
        );
    }
}
