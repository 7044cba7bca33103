//! The channel and lock comparison, plain OS threads with crossbeam-channel:
//! `ch_xbeam <case> <workers>` prints one line of JSON (see
//! `coio_bench::ch`; `bench/run.sh chan` runs all runtimes and prints the
//! table). It mirrors the coroutine binaries with threads in place of
//! coroutines: what a Rust program without a runtime would do.
//!
//! There is no runtime, so no workers: the measuring code runs on the main
//! thread and every other party is a `std::thread::spawn`ed thread (whose
//! creation and joining fall inside the clock, as spawning and joining do
//! for the coroutines). `workers` only goes into the JSON line;
//! `bench/run.sh` makes it true by running this binary under `taskset -c 0`
//! (every thread on one CPU) for 1 worker, and unpinned (both CPUs of the
//! machine) for 2.
//!
//! One "op" is:
//! - `pingpong`: one round trip of a value between two threads over two
//!   `crossbeam_channel::bounded(0)` (rendezvous) channels;
//! - `mpmc_bounded`: one of 1,000,000 `u64` moved from 4 producer threads
//!   to 4 consumer threads through one `crossbeam_channel::bounded(128)`;
//! - `mpmc_unbounded`: the same through one `crossbeam_channel::unbounded()`;
//! - `mutex`: one of 1,000,000 increments of a counter behind one
//!   `std::sync::Mutex`, made by 8 threads at once.
//!
//! Each case runs once to warm up and then `REPS` times; the line gives the
//! median.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use coio_bench::ch::{self, CAPACITY, CONSUMERS, Case, INCREMENTS_EACH, LOCKERS, PRODUCERS, REPS};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

const RUNTIME: &str = "crossbeam";

/// The main thread is A; it spawns B, which sends back what it gets.
fn pingpong() -> f64 {
    let (ping_tx, ping_rx) = bounded::<u64>(0);
    let (pong_tx, pong_rx) = bounded::<u64>(0);
    let start = Instant::now();
    let b = thread::spawn(move || {
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

/// 4 consumers, then 4 producers, on the channel `tx`, `rx`.
fn mpmc(tx: Sender<u64>, rx: Receiver<u64>) -> f64 {
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
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
            thread::spawn(move || {
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

/// 8 threads incrementing one counter, each taking the lock for every
/// increment.
fn mutex() -> f64 {
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let lockers: Vec<_> = (0..LOCKERS)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
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
        Case::MpmcBounded => {
            let (tx, rx) = bounded(CAPACITY);
            mpmc(tx, rx)
        }
        Case::MpmcUnbounded => {
            let (tx, rx) = unbounded();
            mpmc(tx, rx)
        }
        Case::Mutex => mutex(),
    }
}

fn main() {
    let args = ch::args();
    let mut samples = Vec::with_capacity(REPS + 1);
    for _ in 0..=REPS {
        samples.push(run(args.case));
    }
    let (median, samples) = ch::median_after_warmup(samples);
    ch::report(RUNTIME, &args, median, &samples);
}
