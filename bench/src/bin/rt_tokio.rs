//! The runtime comparison, tokio's side: `rt_tokio <case> <workers>` prints
//! one line of JSON (see `coio_bench::rt`; `bench/run.sh runtime` runs all
//! runtimes and prints the table).
//!
//! tokio's multi-thread runtime with `workers` worker threads (the
//! multi-thread flavour even for one worker). The measuring code runs as a
//! spawned task, so it shares the workers with the tasks it spawns, as Go's
//! `main` goroutine does.
//!
//! One "op" is:
//! - `spawn_all`: one trivial task spawned and run to its end, with all
//!   1,000,000 spawned before the measuring task waits for them (ns = wall
//!   time / 1,000,000); they are detached and counted, and the last one
//!   wakes the waiter (a wait group, see `coio_bench::rt`);
//! - `spawn_waves`: the same, 1,000 spawned and waited for at a time;
//! - `yield`: one `tokio::task::yield_now().await`, 100 tasks yielding at
//!   once (ns = wall time / all yields);
//! - `pingpong`: one round trip of a token between two tasks, each waiting on
//!   its own `tokio::sync::Notify` (tokio has no park);
//! - `idle100k`, `idle1m`: creating one task that then waits forever on
//!   `std::future::pending()`; the line also gives resident bytes per task.
//!
//! Each timed case runs once to warm up and then `REPS` times; the line
//! gives the median.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coio_bench::rt::{self, Case, REPS, ROUNDS, SPAWN_N, WAVE, YIELDERS, YIELDS_EACH};
use tokio::sync::Notify;

const RUNTIME: &str = "tokio";

/// The spawn cases' wait group: every spawned task increments `COUNTER`
/// (and the idle tasks do as they start); the one that brings it to the
/// target wakes the measuring task through `DONE`.
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static DONE: Notify = Notify::const_new();

/// A trivial task: counts itself, and wakes the measuring task if it is the
/// `target`th.
async fn trivial(target: usize) {
    if COUNTER.fetch_add(1, Ordering::AcqRel) + 1 == target {
        DONE.notify_one();
    }
}

async fn spawn_all() -> f64 {
    COUNTER.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..SPAWN_N {
        // Detached: the wait group says when all have run.
        tokio::spawn(trivial(SPAWN_N));
    }
    DONE.notified().await;
    let ns = rt::ns_per(start, SPAWN_N);
    assert_eq!(COUNTER.load(Ordering::Relaxed), SPAWN_N);
    ns
}

async fn spawn_waves() -> f64 {
    COUNTER.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for wave in 1..=SPAWN_N / WAVE {
        for _ in 0..WAVE {
            tokio::spawn(trivial(wave * WAVE));
        }
        DONE.notified().await;
    }
    let ns = rt::ns_per(start, SPAWN_N);
    assert_eq!(COUNTER.load(Ordering::Relaxed), SPAWN_N);
    ns
}

async fn yields() -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..YIELDERS)
        .map(|_| {
            tokio::spawn(async {
                for _ in 0..YIELDS_EACH {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    rt::ns_per(start, YIELDERS * YIELDS_EACH)
}

/// The measuring task is A; it spawns B. A wakes B and waits to be woken.
async fn pingpong() -> f64 {
    let ping = Arc::new(Notify::new());
    let pong = Arc::new(Notify::new());
    let b = {
        let (ping, pong) = (ping.clone(), pong.clone());
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                ping.notified().await;
                pong.notify_one();
            }
        })
    };
    let start = Instant::now();
    for _ in 0..ROUNDS {
        ping.notify_one();
        pong.notified().await;
    }
    let ns = rt::ns_per(start, ROUNDS);
    b.await.unwrap();
    ns
}

/// Spawns `n` tasks that wait forever and waits until all have started.
/// Returns ns per task and the resident set before the first spawn.
async fn idle(n: usize) -> (f64, usize) {
    COUNTER.store(0, Ordering::Relaxed);
    let baseline = rt::rss_bytes();
    let start = Instant::now();
    for _ in 0..n {
        // Detached: the handle is dropped at once.
        tokio::spawn(async move {
            trivial(n).await;
            std::future::pending::<()>().await;
        });
    }
    DONE.notified().await;
    (rt::ns_per(start, n), baseline)
}

async fn run(case: Case) -> f64 {
    match case {
        Case::SpawnAll => spawn_all().await,
        Case::SpawnWaves => spawn_waves().await,
        Case::Yield => yields().await,
        Case::PingPong => pingpong().await,
        Case::Idle(_) => unreachable!(),
    }
}

fn main() {
    let args = rt::args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .build()
        .expect("tokio runtime");
    match args.case {
        Case::Idle(n) => {
            let (ns, baseline) =
                runtime.block_on(async move { tokio::spawn(idle(n)).await.unwrap() });
            std::thread::sleep(Duration::from_millis(rt::IDLE_SETTLE_MS));
            rt::report_idle(RUNTIME, &args, ns, rt::bytes_per(baseline, n));
            // The tasks never finish: leave without shutting the runtime down.
            std::process::exit(0);
        }
        case => {
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
            let (median, samples) = rt::median_after_warmup(samples);
            rt::report(RUNTIME, &args, median, &samples);
        }
    }
}
