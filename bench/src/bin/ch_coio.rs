//! The channel and lock comparison, coio's side: `ch_coio <case> <workers>`
//! prints one line of JSON (see `coio_bench::ch`; `bench/run.sh chan` runs
//! all runtimes and prints the table).
//!
//! A `coio::Runtime` with `workers` workers, its other settings left at
//! their defaults. The measuring code runs as the `block_on` coroutine, so
//! it shares the workers with the coroutines it spawns, as Go's `main`
//! goroutine does.
//!
//! One "op" is:
//! - `pingpong`: one round trip of a value between two coroutines over two
//!   `coio::chan::bounded(0)` (rendezvous) channels;
//! - `mpmc_bounded`: one of 1,000,000 `u64` moved from 4 producer
//!   coroutines to 4 consumer coroutines through one
//!   `coio::chan::bounded(128)`;
//! - `mpmc_unbounded`: the same through one `coio::chan::unbounded()`;
//! - `mutex`: one of 1,000,000 increments of a counter behind one
//!   `coio::sync::Mutex`, made by 8 coroutines at once.
//!
//! Each case runs once to warm up and then `REPS` times; the line gives the
//! median.

use std::sync::Arc;
use std::time::Instant;

use coio::chan::{self, Receiver, Sender};
use coio::sync::Mutex;
use coio_bench::ch::{self, CAPACITY, CONSUMERS, Case, INCREMENTS_EACH, LOCKERS, PRODUCERS, REPS};

const RUNTIME: &str = "coio";

/// The measuring coroutine is A; it spawns B, which sends back what it
/// gets.
fn pingpong() -> f64 {
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let start = Instant::now();
    let b = coio::spawn(move || {
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
            coio::spawn(move || {
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
            coio::spawn(move || {
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
            coio::spawn(move || {
                for _ in 0..INCREMENTS_EACH {
                    *counter.lock() += 1;
                }
            })
        })
        .collect();
    for h in lockers {
        ch::joined(h.join());
    }
    let ns = ch::ns_per(start, ch::INCREMENTS);
    ch::check_count(*counter.lock());
    ns
}

fn run(case: Case) -> f64 {
    match case {
        Case::PingPong => pingpong(),
        Case::MpmcBounded => {
            let (tx, rx) = chan::bounded(CAPACITY);
            mpmc(tx, rx)
        }
        Case::MpmcUnbounded => {
            let (tx, rx) = chan::unbounded();
            mpmc(tx, rx)
        }
        Case::Mutex => mutex(),
    }
}

fn main() {
    let args = ch::args();
    let coio_rt = coio::Runtime::builder()
        .workers(args.workers)
        .build()
        .expect("coio runtime");
    let case = args.case;
    let samples = coio_rt.block_on(move || {
        let mut samples = Vec::with_capacity(REPS + 1);
        for _ in 0..=REPS {
            samples.push(run(case));
        }
        samples
    });
    let (median, samples) = ch::median_after_warmup(samples);
    ch::report(RUNTIME, &args, median, &samples);
}
