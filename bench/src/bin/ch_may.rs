//! The channel and lock comparison, may's side: `ch_may <case> <workers>`
//! prints one line of JSON (see `coio_bench::ch`; `bench/run.sh chan` runs
//! all runtimes and prints the table).
//!
//! may with `may::config().set_workers(workers)`, its other settings left
//! at their defaults (32 KiB stacks, workers pinned to cores). The
//! measuring code runs as a coroutine, so it shares the workers with the
//! coroutines it spawns, as Go's `main` goroutine does.
//!
//! may's channels are all unbounded (`may::sync::mpsc`, `mpmc`, `spsc`):
//! senders never wait.
//!
//! One "op" is:
//! - `pingpong`: one round trip of a value between two coroutines over two
//!   `may::sync::mpsc::channel()`, unbounded as may has no rendezvous
//!   channel: a send never waits for the receiver;
//! - `mpmc_bounded`: not run: may has no bounded channel. The binary says
//!   so and exits with `EXIT_UNSUPPORTED` (the table shows "n/a");
//! - `mpmc_unbounded`: one of 1,000,000 `u64` moved from 4 producer
//!   coroutines to 4 consumer coroutines through one
//!   `may::sync::mpmc::channel()`;
//! - `mutex`: one of 1,000,000 increments of a counter behind one
//!   `may::sync::Mutex`, made by 8 coroutines at once.
//!
//! Each case runs once to warm up and then `REPS` times; the line gives the
//! median.

use std::sync::Arc;
use std::time::Instant;

use coio_bench::ch::{self, CONSUMERS, Case, INCREMENTS_EACH, LOCKERS, PRODUCERS, REPS};
use may::go;
use may::sync::{Mutex, mpmc, mpsc};

const RUNTIME: &str = "may";

/// The measuring coroutine is A; it spawns B, which sends back what it
/// gets.
fn pingpong() -> f64 {
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    let b = go!(move || {
        for _ in 0..ch::ROUNDS {
            let v = ping_rx.recv().unwrap();
            pong_tx.send(v).unwrap();
        }
    });
    for i in 0..ch::ROUNDS as u64 {
        ping_tx.send(i).unwrap();
        pong_rx.recv().unwrap();
    }
    ch::joined(b.join());
    ch::ns_per(start, ch::ROUNDS)
}

/// 4 consumers, then 4 producers, on one unbounded MPMC channel.
fn mpmc_unbounded() -> f64 {
    let (tx, rx) = mpmc::channel::<u64>();
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            go!(move || {
                let (mut count, mut sum) = (0usize, 0u64);
                while let Ok(v) = rx.recv() {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            go!(move || {
                for v in ch::share(p) {
                    tx.send(v).unwrap();
                }
            })
        })
        .collect();
    // The producers' clones are now the only senders.
    drop(tx);
    for h in producers {
        ch::joined(h.join());
    }
    let (mut count, mut sum) = (0, 0);
    for h in consumers {
        let (c, s) = ch::joined(h.join());
        count += c;
        sum += s;
    }
    let ns = ch::ns_per(start, ch::MESSAGES);
    ch::check_received(count, sum);
    ns
}

/// 8 coroutines incrementing one counter, each taking the lock for every
/// increment.
fn mutex() -> f64 {
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let lockers: Vec<_> = (0..LOCKERS)
        .map(|_| {
            let counter = counter.clone();
            go!(move || {
                for _ in 0..INCREMENTS_EACH {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in lockers {
        ch::joined(h.join());
    }
    let ns = ch::ns_per(start, ch::INCREMENTS);
    ch::check_count(*counter.lock().unwrap());
    ns
}

fn run(case: Case) -> f64 {
    match case {
        Case::PingPong => pingpong(),
        Case::MpmcBounded => unreachable!("refused in main"),
        Case::MpmcUnbounded => mpmc_unbounded(),
        Case::Mutex => mutex(),
    }
}

fn main() {
    let args = ch::args();
    if args.case == Case::MpmcBounded {
        ch::unsupported(
            RUNTIME,
            &args,
            "may has no bounded channel (may::sync::mpmc is unbounded only)",
        );
    }
    may::config().set_workers(args.workers);
    let case = args.case;
    let samples = ch::joined(
        go!(move || {
            let mut samples = Vec::with_capacity(REPS + 1);
            for _ in 0..=REPS {
                samples.push(run(case));
            }
            samples
        })
        .join(),
    );
    let (median, samples) = ch::median_after_warmup(samples);
    ch::report(RUNTIME, &args, median, &samples);
}
