//! The channel and lock comparison, tokio's side: `ch_tokio <case>
//! <workers>` prints one line of JSON (see `coio_bench::ch`; `bench/run.sh
//! chan` runs all runtimes and prints the table).
//!
//! tokio's multi-thread runtime with `workers` worker threads (the
//! multi-thread flavour even for one worker). The measuring code runs as a
//! spawned task, so it shares the workers with the tasks it spawns, as Go's
//! `main` goroutine does.
//!
//! One "op" is:
//! - `pingpong`: one round trip of a value between two tasks over two
//!   `tokio::sync::mpsc::channel(1)`: tokio has no rendezvous channel
//!   (capacity 0 panics), so a send completes once the value is in the
//!   one-slot buffer instead of when the receiver takes it;
//! - `mpmc_bounded`: one of 1,000,000 `u64` moved from 4 producer tasks to 4
//!   consumer tasks through one `mpsc::channel(128)`;
//! - `mpmc_unbounded`: the same through one `mpsc::unbounded_channel()`.
//!   tokio's mpsc has a single consumer: in both MPMC cases the 4 consumers
//!   share the receiver behind an `Arc<tokio::sync::Mutex<Receiver>>`, each
//!   locking it for one `recv` at a time (the lock is part of what is
//!   measured, as it is part of what a tokio program needs for this);
//! - `mutex`: one of 1,000,000 increments of a counter behind one
//!   `tokio::sync::Mutex`, made by 8 tasks at once.
//!
//! Each case runs once to warm up and then `REPS` times; the line gives the
//! median.

use std::sync::Arc;
use std::time::Instant;

use coio_bench::ch::{self, CAPACITY, CONSUMERS, Case, INCREMENTS_EACH, LOCKERS, PRODUCERS, REPS};
use tokio::sync::{Mutex, mpsc};

const RUNTIME: &str = "tokio";

/// The measuring task is A; it spawns B, which sends back what it gets.
async fn pingpong() -> f64 {
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let start = Instant::now();
    let b = tokio::spawn(async move {
        for _ in 0..ch::ROUNDS {
            let v = ping_rx.recv().await.unwrap();
            pong_tx.send(v).await.unwrap();
        }
    });
    for i in 0..ch::ROUNDS as u64 {
        ping_tx.send(i).await.unwrap();
        pong_rx.recv().await.unwrap();
    }
    b.await.unwrap();
    ch::ns_per(start, ch::ROUNDS)
}

/// The sending end of either kind of tokio channel, so that one body serves
/// both MPMC cases.
#[derive(Clone)]
enum Tx {
    /// Of `mpsc::channel`.
    Bounded(mpsc::Sender<u64>),
    /// Of `mpsc::unbounded_channel`.
    Unbounded(mpsc::UnboundedSender<u64>),
}

impl Tx {
    /// Sends `v`, waiting for room in a full bounded channel.
    async fn send(&self, v: u64) {
        match self {
            Tx::Bounded(tx) => tx.send(v).await.unwrap(),
            Tx::Unbounded(tx) => tx.send(v).unwrap(),
        }
    }
}

/// The receiving end of either kind of tokio channel.
enum Rx {
    /// Of `mpsc::channel`.
    Bounded(mpsc::Receiver<u64>),
    /// Of `mpsc::unbounded_channel`.
    Unbounded(mpsc::UnboundedReceiver<u64>),
}

impl Rx {
    /// The next value, or `None` once every sender is gone and the channel
    /// is empty.
    async fn recv(&mut self) -> Option<u64> {
        match self {
            Rx::Bounded(rx) => rx.recv().await,
            Rx::Unbounded(rx) => rx.recv().await,
        }
    }
}

/// 4 consumers, then 4 producers, on one channel; the consumers share its
/// receiver behind a mutex (mpsc has one consumer).
async fn mpmc(tx: Tx, rx: Rx) -> f64 {
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let (mut count, mut sum) = (0usize, 0u64);
                loop {
                    // The guard goes at the end of this statement.
                    let next = rx.lock().await.recv().await;
                    let Some(v) = next else { break };
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
            tokio::spawn(async move {
                for v in ch::share(p) {
                    tx.send(v).await;
                }
            })
        })
        .collect();
    // The producers' clones are now the only senders.
    drop(tx);
    for h in producers {
        h.await.unwrap();
    }
    let (mut count, mut sum) = (0, 0);
    for h in consumers {
        let (c, s) = h.await.unwrap();
        count += c;
        sum += s;
    }
    let ns = ch::ns_per(start, ch::MESSAGES);
    ch::check_received(count, sum);
    ns
}

async fn mpmc_bounded() -> f64 {
    let (tx, rx) = mpsc::channel(CAPACITY);
    mpmc(Tx::Bounded(tx), Rx::Bounded(rx)).await
}

async fn mpmc_unbounded() -> f64 {
    let (tx, rx) = mpsc::unbounded_channel();
    mpmc(Tx::Unbounded(tx), Rx::Unbounded(rx)).await
}

/// 8 tasks incrementing one counter, each taking the lock for every
/// increment.
async fn mutex() -> f64 {
    let counter = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let lockers: Vec<_> = (0..LOCKERS)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS_EACH {
                    *counter.lock().await += 1;
                }
            })
        })
        .collect();
    for h in lockers {
        h.await.unwrap();
    }
    let ns = ch::ns_per(start, ch::INCREMENTS);
    ch::check_count(*counter.lock().await);
    ns
}

async fn run(case: Case) -> f64 {
    match case {
        Case::PingPong => pingpong().await,
        Case::MpmcBounded => mpmc_bounded().await,
        Case::MpmcUnbounded => mpmc_unbounded().await,
        Case::Mutex => mutex().await,
    }
}

fn main() {
    let args = ch::args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .build()
        .expect("tokio runtime");
    let case = args.case;
    let samples = runtime.block_on(async move {
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(REPS + 1);
            for _ in 0..=REPS {
                samples.push(run(case).await);
            }
            samples
        })
        .await
        .unwrap()
    });
    let (median, samples) = ch::median_after_warmup(samples);
    ch::report(RUNTIME, &args, median, &samples);
}
