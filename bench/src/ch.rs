//! What the channel and lock comparison binaries (`ch_coio`, `ch_tokio`,
//! `ch_may`, `ch_xbeam`, and the Go program in `bench/go/ch`) share: the
//! command line, the sizes of every case, the checks of what arrived, and
//! the one line of JSON each run prints. The median and the ns-per-op
//! arithmetic are the runtime comparison's (`coio_bench::rt`).
//!
//! Every binary is called as `ch_<runtime> <case> <workers>` and prints one
//! line such as
//! `{"runtime":"tokio","case":"mpmc_bounded","workers":2,"ns_per_op":123.4,"samples":[...]}`.
//! A runtime that has no tool for a case prints no line, says why on stderr
//! and exits with [`EXIT_UNSUPPORTED`] (the table shows "n/a").
//! `bench/run.sh chan` runs them all, each in its own process, and prints
//! the table.
//!
//! In every runtime the measuring code itself runs as a coroutine (task,
//! goroutine) of the runtime under test, as `main` does in Go, and every
//! other party of a case (the pingpong partner, producers, consumers,
//! lockers) is a coroutine it spawns, consumers before producers;
//! crossbeam-channel, which has no runtime, uses the main thread and OS
//! threads instead. The clock runs, in
//! every binary, from just before the first spawn to just after the last
//! join (Go: until a `WaitGroup` of all of them is done); channels and the
//! mutex are made before it starts, and what arrived is checked after it
//! stops.
//!
//! The MPMC cases close the channel the same way everywhere: each producer
//! sends its share and then lets go of its sender (Rust: drops its clone,
//! the measuring code having dropped the original; Go: the last producer to
//! finish calls `close`), and each consumer receives until the channel
//! reports it closed and empty, then returns how many values it got and
//! their sum, which the measuring code checks with [`check_received`].

use std::ops::Range;

pub use crate::rt::{REPS, joined, median_after_warmup, ns_per};

/// Round trips in `pingpong`.
pub const ROUNDS: usize = 100_000;
/// Producers in the MPMC cases.
pub const PRODUCERS: usize = 4;
/// Consumers in the MPMC cases.
pub const CONSUMERS: usize = 4;
/// Messages moved in all, by all producers together, in the MPMC cases.
pub const MESSAGES: usize = 1_000_000;
/// Capacity of the channel in `mpmc_bounded`.
pub const CAPACITY: usize = 128;
/// Coroutines taking the lock at once in `mutex`.
pub const LOCKERS: usize = 8;
/// Increments of the shared counter in `mutex`, by all lockers together.
pub const INCREMENTS: usize = 1_000_000;
/// Increments each locker makes in `mutex`.
pub const INCREMENTS_EACH: usize = INCREMENTS / LOCKERS;
/// Exit status of a binary asked for a case its runtime has no tool for
/// (`bench/run.sh` shows the cell as "n/a", with the reason from stderr).
pub const EXIT_UNSUPPORTED: i32 = 3;

/// The case a binary is asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Two coroutines passing a value back and forth [`ROUNDS`] times over
    /// two rendezvous channels.
    PingPong,
    /// [`PRODUCERS`] producers and [`CONSUMERS`] consumers moving
    /// [`MESSAGES`] values through one channel of capacity [`CAPACITY`].
    MpmcBounded,
    /// The same through one unbounded channel.
    MpmcUnbounded,
    /// [`LOCKERS`] coroutines making [`INCREMENTS`] increments in all of one
    /// counter behind one mutex.
    Mutex,
}

impl Case {
    /// Parses a case name.
    pub fn parse(s: &str) -> Option<Case> {
        Some(match s {
            "pingpong" => Case::PingPong,
            "mpmc_bounded" => Case::MpmcBounded,
            "mpmc_unbounded" => Case::MpmcUnbounded,
            "mutex" => Case::Mutex,
            _ => return None,
        })
    }
}

/// The parsed command line: `<case> <workers>`.
pub struct Args {
    /// The case name as given (it goes into the JSON line unchanged).
    pub name: String,
    /// The case.
    pub case: Case,
    /// Worker threads of the runtime (`ch_xbeam` has none and ignores it:
    /// `bench/run.sh` pins it to one CPU for 1).
    pub workers: usize,
}

/// Reads the command line, or prints the usage and exits with status 2.
pub fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: {} <pingpong|mpmc_bounded|mpmc_unbounded|mutex> <workers>",
            argv.first().map(String::as_str).unwrap_or("ch")
        );
        std::process::exit(2)
    };
    if argv.len() != 3 {
        usage();
    }
    let Some(case) = Case::parse(&argv[1]) else {
        usage()
    };
    let workers = match argv[2].parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => usage(),
    };
    Args {
        name: argv[1].clone(),
        case,
        workers,
    }
}

/// The values producer `p` (counted from 0) sends: its own slice of
/// `0..MESSAGES`, so that all producers together send every value once.
pub fn share(p: usize) -> Range<u64> {
    let each = (MESSAGES / PRODUCERS) as u64;
    let p = p as u64;
    p * each..(p + 1) * each
}

/// Checks, after an MPMC run, what the consumers received in all: exactly
/// [`MESSAGES`] values adding up to the sum of `0..MESSAGES`. Panics
/// otherwise (a value lost, doubled or skipped).
pub fn check_received(count: usize, sum: u64) {
    let n = MESSAGES as u64;
    let expected = n * (n - 1) / 2;
    assert!(
        count == MESSAGES && sum == expected,
        "consumers received {count} values summing to {sum}, expected {MESSAGES} summing to {expected}"
    );
}

/// Checks the counter after a `mutex` run. Panics unless it is
/// [`INCREMENTS`] (an increment lost: the lock did not exclude).
pub fn check_count(count: u64) {
    assert!(
        count == INCREMENTS as u64,
        "the counter is {count} after {INCREMENTS} increments"
    );
}

/// Says on stderr that `runtime` has no tool for the case, and why, and
/// exits with [`EXIT_UNSUPPORTED`].
pub fn unsupported(runtime: &str, args: &Args, why: &str) -> ! {
    eprintln!("{runtime} cannot run {}: {why}", args.name);
    std::process::exit(EXIT_UNSUPPORTED)
}

/// Prints the result line of a case.
pub fn report(runtime: &str, args: &Args, ns_per_op: f64, samples: &[f64]) {
    let samples: Vec<String> = samples.iter().map(|s| format!("{s:.1}")).collect();
    println!(
        "{{\"runtime\":\"{runtime}\",\"case\":\"{}\",\"workers\":{},\"ns_per_op\":{ns_per_op:.1},\"samples\":[{}]}}",
        args.name,
        args.workers,
        samples.join(",")
    );
}
