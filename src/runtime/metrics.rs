//! Runtime metrics: [`Metrics`], a snapshot of a runtime's counters
//! (`coio::metrics()`, `Runtime::metrics()`), and the schedule trace that
//! `COIO_SCHEDTRACE=<ms>` prints (Go's `schedtrace`).
//!
//! # Cost
//!
//! The counters are always on. Each worker's live on cache lines of their
//! own (`monitor::Counts`) and are written by that worker's thread alone,
//! with a plain load and store: no locked instruction, and no other thread
//! writes or routinely reads those lines, so the hot paths (spawn, start,
//! resume, finish) pay no cache traffic for them. A steal adds to its
//! victim's `stolen_out`, on a line of its own, and only a spawn from
//! outside the workers touches a shared counter. A snapshot reads them all with relaxed loads: each
//! number is exact for its worker at some moment, but numbers of different
//! workers (and the totals) are not from one instant.

use std::fmt;
use std::io::Write;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::Shared;

/// A snapshot of one worker's counters and queues (see [`Metrics`]).
///
/// ```
/// let rt = coio::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(|| ());
/// for (i, w) in rt.metrics().workers.iter().enumerate() {
///     println!("worker {i}: {} homed, {} resumes, busy {:?}", w.homed, w.polls, w.busy);
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Started, unfinished coroutines homed on the worker (it runs them
    /// until they finish).
    pub homed: usize,
    /// Runnable started coroutines, as the worker last published it (every
    /// few dozen scheduling steps, and 0 when it goes to sleep).
    pub runnable: usize,
    /// Fresh (not yet started) coroutines in the worker's queues, which
    /// other workers may steal.
    pub fresh: usize,
    /// Coroutines spawned by coroutines of this worker.
    pub spawned: u64,
    /// Coroutines that started on this worker (it became their home).
    pub started: u64,
    /// Coroutines homed here that finished.
    pub finished: u64,
    /// Fresh coroutines this worker stole from other workers' queues.
    pub stolen_in: u64,
    /// Fresh coroutines other workers stole from this worker's queue.
    pub stolen_out: u64,
    /// Times the worker went to sleep in its driver (nothing to run).
    pub parks: u64,
    /// Coroutine resumes: runs of a coroutine until it suspends or ends.
    pub polls: u64,
    /// I/O readiness events and io_uring completions handed over.
    pub io_events: u64,
    /// Timers fired (sleeps, timeouts, async sleeps).
    pub timers_fired: u64,
    /// Yields forced by the cooperative budget: a coroutine completed 128
    /// I/O or channel operations in a row without waiting, and was made to
    /// let the worker's other coroutines run.
    pub coop_yields: u64,
    /// Time spent awake (running coroutines, or looking for work) since
    /// the runtime started.
    pub busy: Duration,
    /// Whether the worker sleeps now.
    pub asleep: bool,
}

/// A snapshot of a runtime's counters: per worker, and totals. From
/// [`coio::metrics()`](crate::metrics) or
/// [`Runtime::metrics`](crate::Runtime::metrics).
///
/// ```
/// let rt = coio::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(|| {
///     let hs: Vec<_> = (0..10).map(|i| coio::spawn(move || i)).collect();
///     for h in hs {
///         h.join().unwrap();
///     }
///     let m = coio::metrics();
///     assert_eq!(m.workers.len(), 2);
///     // The 10 children and block_on's own coroutine.
///     assert_eq!(m.spawned, 11);
///     assert!(m.workers.iter().map(|w| w.started).sum::<u64>() >= 10);
/// });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerMetrics>,
    /// Coroutines spawned (queued to run) so far: by coroutines, and from
    /// outside (`Runtime::block_on`, `Runtime::spawn`).
    pub spawned: u64,
    /// Coroutines finished so far (including those that never started:
    /// no stack could be had, or the runtime shut down first).
    pub finished: u64,
    /// Coroutines alive: `spawned - finished`.
    pub live: u64,
    /// Workers not asleep.
    pub awake: usize,
    /// Workers looking for work to steal.
    pub searching: usize,
}

impl Shared {
    /// A snapshot of the counters (see [`Metrics`]).
    pub(crate) fn metrics(&self) -> Metrics {
        let monitor = &self.monitor;
        let now = monitor.micros(std::time::Instant::now());
        let mut m = Metrics {
            spawned: self.injected.load(Relaxed),
            finished: self.abandoned.load(Relaxed),
            ..Metrics::default()
        };
        for (i, p) in monitor.progress.iter().enumerate() {
            let c = &monitor.counts[i];
            let (busy_us, asleep) = p.busy_time(now, c);
            // Finished before homed: a coroutine that finishes in between
            // is then counted in neither, never in both.
            let finished = c.finished.load(Relaxed);
            let homed = p.homed();
            let w = WorkerMetrics {
                homed,
                runnable: p.load(),
                fresh: self.remotes[i].stealer.len() + p.overflow(),
                spawned: c.spawned.load(Relaxed),
                // Every coroutine started here is homed here until it
                // finishes (one counter fewer on the spawn path).
                started: finished + homed as u64,
                finished,
                stolen_in: c.stolen_in.load(Relaxed),
                stolen_out: monitor.stolen_out[i].load(Relaxed),
                parks: c.parks.load(Relaxed),
                polls: p.resumes(),
                io_events: c.io_events.load(Relaxed),
                timers_fired: c.timers_fired.load(Relaxed),
                coop_yields: c.coop_yields.load(Relaxed),
                busy: Duration::from_micros(busy_us),
                asleep,
            };
            m.spawned += w.spawned;
            m.finished += w.finished;
            m.workers.push(w);
        }
        m.live = m.spawned.saturating_sub(m.finished);
        let (awake, searching) = self.idle.counts();
        m.awake = awake;
        m.searching = searching;
        m
    }
}

impl fmt::Display for Metrics {
    /// One line in the spirit of Go's `schedtrace`: workers, awake,
    /// searching, coroutines spawned and alive, then per worker its
    /// runnable, fresh and homed counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |g: fn(&WorkerMetrics) -> usize| {
            self.workers
                .iter()
                .map(|w| g(w).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        write!(
            f,
            "workers={} awake={} searching={} spawned={} live={} runnable=[{}] fresh=[{}] \
             homed=[{}]",
            self.workers.len(),
            self.awake,
            self.searching,
            self.spawned,
            self.live,
            list(|w| w.runnable),
            list(|w| w.fresh),
            list(|w| w.homed),
        )
    }
}

/// The period `COIO_SCHEDTRACE` asks for, in milliseconds (unset, empty,
/// 0 or not a number: none; a bad value is said once on stderr).
pub(crate) fn schedtrace_period() -> Option<Duration> {
    let v = std::env::var("COIO_SCHEDTRACE").ok()?;
    match v.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(ms) => Some(Duration::from_millis(ms)),
        Err(_) if v.trim().is_empty() => None,
        Err(_) => {
            note!("coio: COIO_SCHEDTRACE={v:?} is not a number of milliseconds; no schedule trace");
            None
        }
    }
}

/// The schedule trace's thread: one line to stderr every `period` until
/// the runtime closes, `SCHED <ms since start>ms: <metrics>`.
pub(crate) fn schedtrace(shared: &Shared, period: Duration) {
    let start = std::time::Instant::now();
    while !shared.closed.load(Acquire) {
        std::thread::park_timeout(period);
        if shared.closed.load(Acquire) {
            break;
        }
        let line = format!(
            "SCHED {}ms: {}\n",
            start.elapsed().as_millis(),
            shared.metrics()
        );
        // One write per line, so that lines of several runtimes (or of
        // other threads) do not interleave within a line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
