//! The runtime comparison, coio's side: `rt_coio <case> <workers> [small]`
//! prints one line of JSON (see `coio_bench::rt`; `bench/run.sh runtime`
//! runs all runtimes and prints the table). It mirrors `rt_may.rs` line for
//! line.
//!
//! A `coio::Runtime` with `workers` workers, its other settings left at
//! their defaults. With the third word `small` the coroutines' stacks are
//! `coio::MIN_STACK_SIZE` instead and the line says `"runtime":"coio_small"`.
//! The measuring code runs as the `block_on` coroutine, so it shares the
//! workers with the coroutines it spawns, as Go's `main` goroutine does.
//!
//! One "op" is:
//! - `spawn_all`: one trivial coroutine spawned and run to its end, with all
//!   1,000,000 spawned before the measuring coroutine waits for them (ns =
//!   wall time / 1,000,000); they are detached and counted, and the last one
//!   wakes the waiter (a wait group, see `coio_bench::rt`);
//! - `spawn_waves`: the same, 1,000 spawned and waited for at a time;
//! - `yield`: one `coio::yield_now()`, 100 coroutines yielding at once (ns =
//!   wall time / all yields);
//! - `pingpong`: one round trip of a token between two coroutines with
//!   `coio::park` and `Coroutine::unpark` (a shared turn flag decides, since
//!   park can return early);
//! - `idle100k`, `idle1m`: creating one coroutine that then parks forever;
//!   the line also gives resident bytes per coroutine.
//!
//! Each timed case runs once to warm up and then `REPS` times; the line
//! gives the median.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use coio::Coroutine;
use coio_bench::rt::{self, Case, REPS, ROUNDS, SPAWN_N, WAVE, YIELDERS, YIELDS_EACH};

/// The spawn cases' wait group: every spawned coroutine increments
/// `COUNTER` (and the idle coroutines do as they start); the one that brings
/// it to the target unparks the measuring coroutine, `WAITER`.
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static WAITER: OnceLock<Coroutine> = OnceLock::new();

/// The body of a trivial coroutine: counts itself, and wakes the measuring
/// coroutine if it is the `target`th.
fn trivial(target: usize) {
    if COUNTER.fetch_add(1, Ordering::AcqRel) + 1 == target {
        WAITER.get().unwrap().unpark();
    }
}

/// Parks the measuring coroutine until `target` coroutines have counted
/// themselves (park can return early: the counter decides).
fn wait_for(target: usize) {
    while COUNTER.load(Ordering::Acquire) < target {
        coio::park();
    }
}

fn spawn_all() -> f64 {
    COUNTER.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..SPAWN_N {
        // Detached: the wait group says when all have run.
        coio::spawn(|| trivial(SPAWN_N));
    }
    wait_for(SPAWN_N);
    let ns = rt::ns_per(start, SPAWN_N);
    assert_eq!(COUNTER.load(Ordering::Relaxed), SPAWN_N);
    ns
}

fn spawn_waves() -> f64 {
    COUNTER.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for wave in 1..=SPAWN_N / WAVE {
        for _ in 0..WAVE {
            coio::spawn(move || trivial(wave * WAVE));
        }
        wait_for(wave * WAVE);
    }
    let ns = rt::ns_per(start, SPAWN_N);
    assert_eq!(COUNTER.load(Ordering::Relaxed), SPAWN_N);
    ns
}

fn yields() -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..YIELDERS)
        .map(|_| {
            coio::spawn(|| {
                for _ in 0..YIELDS_EACH {
                    coio::yield_now();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    rt::ns_per(start, YIELDERS * YIELDS_EACH)
}

/// The measuring coroutine is A; it spawns B, which publishes its handle.
/// `b_turn` says whose move it is; each side parks until it is its own
/// (park can return early: the flag decides).
fn pingpong() -> f64 {
    let b_turn = Arc::new(AtomicBool::new(false));
    let b_slot: Arc<OnceLock<Coroutine>> = Arc::new(OnceLock::new());
    let a = coio::current();
    let b = {
        let (b_turn, b_slot) = (b_turn.clone(), b_slot.clone());
        coio::spawn(move || {
            b_slot.set(coio::current()).ok().unwrap();
            a.unpark();
            for _ in 0..ROUNDS {
                while !b_turn.load(Ordering::Acquire) {
                    coio::park();
                }
                b_turn.store(false, Ordering::Release);
                a.unpark();
            }
        })
    };
    let b_co = loop {
        match b_slot.get() {
            Some(co) => break co.clone(),
            None => coio::park(),
        }
    };
    let start = Instant::now();
    for _ in 0..ROUNDS {
        b_turn.store(true, Ordering::Release);
        b_co.unpark();
        while b_turn.load(Ordering::Acquire) {
            coio::park();
        }
    }
    let ns = rt::ns_per(start, ROUNDS);
    b.join().unwrap();
    ns
}

/// Spawns `n` coroutines that park forever and waits until all have
/// started. Returns ns per coroutine and the resident set before the first
/// spawn.
fn idle(n: usize) -> (f64, usize) {
    COUNTER.store(0, Ordering::Relaxed);
    let baseline = rt::rss_bytes();
    let start = Instant::now();
    for _ in 0..n {
        // Detached: the handle is dropped at once.
        coio::spawn(move || {
            trivial(n);
            loop {
                coio::park();
            }
        });
    }
    wait_for(n);
    (rt::ns_per(start, n), baseline)
}

fn run(case: Case) -> f64 {
    match case {
        Case::SpawnAll => spawn_all(),
        Case::SpawnWaves => spawn_waves(),
        Case::Yield => yields(),
        Case::PingPong => pingpong(),
        Case::Idle(_) => unreachable!(),
    }
}

fn main() {
    let args = rt::args();
    let mut builder = coio::Runtime::builder().workers(args.workers);
    let runtime = match args.variant.as_deref() {
        None => "coio",
        Some("small") => {
            builder = builder.stack_size(coio::MIN_STACK_SIZE);
            "coio_small"
        }
        Some(other) => {
            eprintln!("unknown variant {other:?} (only: small)");
            std::process::exit(2);
        }
    };
    let coio_rt = builder.build().expect("coio runtime");
    match args.case {
        Case::Idle(n) => {
            let (ns, baseline) = coio_rt.block_on(move || {
                WAITER.set(coio::current()).ok().unwrap();
                idle(n)
            });
            std::thread::sleep(Duration::from_millis(rt::IDLE_SETTLE_MS));
            rt::report_idle(runtime, &args, ns, rt::bytes_per(baseline, n));
            // The coroutines never finish: leave without shutting the
            // runtime down (which would cancel them all).
            std::process::exit(0);
        }
        case => {
            let samples = coio_rt.block_on(move || {
                WAITER.set(coio::current()).ok().unwrap();
                let mut samples = Vec::with_capacity(REPS + 1);
                for _ in 0..=REPS {
                    samples.push(run(case));
                }
                samples
            });
            let (median, samples) = rt::median_after_warmup(samples);
            rt::report(runtime, &args, median, &samples);
        }
    }
}
