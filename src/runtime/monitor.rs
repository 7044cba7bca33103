//! The stall monitor: warns when a worker has been running one coroutine
//! for a long time without coming back to the scheduler.
//!
//! Coroutines are not preempted, and a started one never leaves its worker
//! (see the runtime's docs), so a coroutine that computes for seconds, or
//! blocks its thread in a system call, holds up every other coroutine homed
//! on that worker. The monitor (a reduced Go `sysmon`, one thread per
//! runtime) makes that visible: each worker publishes a resume counter and
//! the id of the coroutine it runs (two relaxed stores per resume, on a
//! cache line of their own); the monitor samples them every quarter of the
//! threshold, and when the same resume has lasted longer than the threshold
//! it prints one warning for it.
//!
//! An idle runtime must burn no CPU, so the monitor does not tick while
//! every worker sleeps: it parks, and the first worker to wake up from that
//! state unparks it (`Idle::unpark`/`notify_work`, via [`Monitor::kick`]).
//! The handshake is Dekker's: the monitor sets `parked` then reads the idle
//! counts, a waking worker changes the counts then swaps `parked`, all
//! SeqCst; at least one of them sees the other.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::Shared;

/// What a worker publishes for the monitor.
#[derive(Default)]
pub(crate) struct Progress {
    /// Resumes so far (wrapping).
    resumes: AtomicU64,
    /// Id of the coroutine being resumed now; 0 in the scheduler loop.
    running: AtomicU64,
    /// Runnable started coroutines, published now and then for the other
    /// workers' balancing (not the monitor's: it shares the line).
    load: AtomicUsize,
    /// Started, unfinished coroutines homed on the worker (its registry),
    /// published at every start and finish for the others' placement
    /// decisions (`worker::Local::deal`).
    homed: AtomicUsize,
    /// Fresh coroutines in the worker's local overflow, which other
    /// workers cannot see otherwise; published when it changes.
    overflow: AtomicUsize,
    /// Fresh coroutines dealt to the worker and not yet in its queues.
    pub(crate) dealt: AtomicUsize,
    /// The worker's recent busy fraction (awake, not sleeping in its
    /// poller), in 1/65536, as of its last change of state (see `busy`).
    busy: AtomicU32,
    /// When the worker last woke or fell asleep, in µs since the monitor's
    /// epoch, with [`ASLEEP`] set while it sleeps.
    since: AtomicU64,
    /// The running coroutine is blocked while it unwinds: it cannot
    /// switch, so the worker thread waits in its place (see
    /// `worker::Local::block_in_place`), which the warning then explains.
    blocked_unwinding: AtomicBool,
    /// The running coroutine is in the panic hook (coio's, in front of the
    /// program's: `panic_note`), whose time is not a stall of its code.
    in_panic_hook: AtomicBool,
}

/// A worker's event counters for `coio::metrics()`. Each is written by the
/// worker's own thread only ([`bump`]: a load and a store, no locked
/// instruction), on cache lines of their own: no other thread writes
/// there (thieves count a victim's `stolen_out` in [`Monitor::stolen_out`])
/// and only `metrics()` reads them, so they cost the worker no cache
/// traffic. (Counted beside `Progress`, whose lines other workers read and
/// thieves wrote, spawning took 5% longer.)
#[derive(Default)]
pub(crate) struct Counts {
    /// Coroutines spawned by this worker's coroutines.
    pub(crate) spawned: AtomicU64,
    /// Coroutines homed here that finished.
    pub(crate) finished: AtomicU64,
    /// Fresh coroutines this worker stole from others' queues.
    pub(crate) stolen_in: AtomicU64,
    /// Times the worker went to sleep in its driver.
    pub(crate) parks: AtomicU64,
    /// I/O events and completions the driver handed over.
    pub(crate) io_events: AtomicU64,
    /// Timers that fired (sleeps, timeouts, async sleeps).
    pub(crate) timers_fired: AtomicU64,
    /// Yields forced by the cooperative budget (`Local::coop_spend`).
    pub(crate) coop_yields: AtomicU64,
    /// Time spent awake (see [`BusyClock`]).
    pub(crate) busy: BusyClock,
    /// The most `Progress::busy_time` has answered (written by readers,
    /// the metrics' callers).
    pub(crate) busy_answered: AtomicU64,
}

/// A worker's time spent awake (not sleeping in its driver), in µs, which
/// only the worker writes and `metrics()` reads from any thread.
///
/// The total and the state are one word, so that a reader sees them
/// together: kept as two (the total up to the last change of state, and the
/// time of that change), a reader between the worker's two stores counted
/// the stretch that was ending twice, and the answer ran ahead of the wall
/// clock by as much as that stretch. The word holds, shifted left by one:
/// - asleep, the total, with bit 0 set;
/// - awake, the total minus the time the worker woke (wrapping, read back
///   sign-extended), with bit 0 clear; a reader adds its `now`.
///
/// The epoch's word, 0, is a worker awake since the epoch.
#[derive(Default)]
pub(crate) struct BusyClock(AtomicU64);

impl BusyClock {
    /// The worker falls asleep at `now`. Only the worker calls it.
    pub(crate) fn fall_asleep(&self, now: u64) {
        let (total, asleep) = self.read(now);
        if !asleep {
            self.0.store(total << 1 | 1, Relaxed);
        }
    }

    /// The worker wakes at `now`. Only the worker calls it.
    pub(crate) fn wake(&self, now: u64) {
        let w = self.0.load(Relaxed);
        if w & 1 == 1 {
            self.0.store((w >> 1).wrapping_sub(now) << 1, Relaxed);
        }
    }

    /// The time spent awake as of `now`, and whether the worker sleeps.
    /// A `now` read before the worker woke gives less than the total up to
    /// the wake (never less than 0); `Progress::busy_time` keeps its
    /// answers monotone.
    pub(crate) fn read(&self, now: u64) -> (u64, bool) {
        let w = self.0.load(Relaxed);
        if w & 1 == 1 {
            (w >> 1, true)
        } else {
            // Total minus the wake time, as a signed number.
            let offset = (w as i64) >> 1;
            (offset.saturating_add(now as i64).max(0) as u64, false)
        }
    }
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// How fast a worker's busy fraction forgets: a period of this length
/// replaces it entirely (a moving average, folded at each change of state).
pub(crate) const BUSY_TAU: Duration = Duration::from_millis(250);

/// `Progress::since`'s mark of a sleeping worker.
const ASLEEP: u64 = 1 << 63;

/// `f` moved towards `x` for a period of `micros` (see [`BUSY_TAU`]).
fn fold(f: f64, x: f64, micros: u64) -> f64 {
    let w = (micros as f64 / BUSY_TAU.as_micros() as f64).min(1.0);
    f + (x - f) * w
}

impl Progress {
    /// The worker falls asleep (`asleep`) or wakes at `now` (µs since the
    /// epoch): folds the period since its last change into its busy
    /// fraction. Called by the worker alone, twice per sleep.
    pub(crate) fn set_asleep(&self, asleep: bool, now: u64, counts: &Counts) {
        if asleep {
            counts.busy.fall_asleep(now);
        } else {
            counts.busy.wake(now);
        }
        let f = self.busy(now);
        self.busy
            .store((f.clamp(0.0, 1.0) * 65536.0) as u32, Relaxed);
        self.since
            .store(now | if asleep { ASLEEP } else { 0 }, Relaxed);
    }

    /// The worker's recent busy fraction, 0 to 1, seen at `now` (µs since
    /// the epoch): the fraction of the last [`BUSY_TAU`] or so it spent
    /// awake, the time since its last change of state included (a worker
    /// that never sleeps is busy, though it publishes nothing).
    pub(crate) fn busy(&self, now: u64) -> f64 {
        let since = self.since.load(Relaxed);
        let awake = if since & ASLEEP == 0 { 1.0 } else { 0.0 };
        fold(
            f64::from(self.busy.load(Relaxed)) / 65536.0,
            awake,
            now.saturating_sub(since & !ASLEEP),
        )
    }

    /// Coroutine resumes so far (for metrics: its `polls`).
    pub(crate) fn resumes(&self) -> u64 {
        self.resumes.load(Relaxed)
    }

    /// Microseconds the worker has spent awake, as of `now` (µs since the
    /// epoch), and whether it sleeps now.
    ///
    /// Never less than an earlier answer: the worker's clock read at a
    /// change of state may come after a reader's `now` (a reader that
    /// still sees it awake then answers a little more than the worker
    /// counts when it falls asleep), so answers are kept monotone with a
    /// `fetch_max`. The gap is that of two clock reads, never a stretch:
    /// the total and the state are one word.
    pub(crate) fn busy_time(&self, now: u64, counts: &Counts) -> (u64, bool) {
        let (busy, asleep) = counts.busy.read(now);
        let before = counts.busy_answered.fetch_max(busy, Relaxed);
        (busy.max(before), asleep)
    }

    /// The worker is about to resume coroutine `id`.
    #[inline(always)]
    pub(crate) fn enter(&self, id: u64) {
        self.resumes
            .store(self.resumes.load(Relaxed).wrapping_add(1), Relaxed);
        self.running.store(id, Relaxed);
    }

    /// Publishes the worker's load.
    #[inline]
    pub(crate) fn set_load(&self, load: usize) {
        self.load.store(load, Relaxed);
    }

    /// The worker's load as last published.
    #[inline]
    pub(crate) fn load(&self) -> usize {
        self.load.load(Relaxed)
    }

    /// Publishes how many coroutines the worker homes.
    #[inline(always)]
    pub(crate) fn set_homed(&self, homed: usize) {
        self.homed.store(homed, Relaxed);
    }

    /// How many coroutines the worker homes, as last published.
    #[inline]
    pub(crate) fn homed(&self) -> usize {
        self.homed.load(Relaxed)
    }

    /// Publishes the length of the worker's overflow queue.
    #[inline]
    pub(crate) fn set_overflow(&self, len: usize) {
        self.overflow.store(len, Relaxed);
    }

    /// The length of the worker's overflow queue, as last published.
    #[inline]
    pub(crate) fn overflow(&self) -> usize {
        self.overflow.load(Relaxed)
    }

    /// Resumes so far and whether a coroutine runs now: a thief's view of
    /// whether the worker has moved on (see `worker::Local::steal`).
    #[inline]
    pub(crate) fn activity(&self) -> (u64, bool) {
        (self.resumes.load(Relaxed), self.running.load(Relaxed) != 0)
    }

    /// The running coroutine blocks its worker in place (it unwinds), or
    /// no longer does.
    #[cold]
    pub(crate) fn set_in_panic_hook(&self, inside: bool) {
        self.in_panic_hook.store(inside, Relaxed);
    }

    pub(crate) fn set_blocked_unwinding(&self, blocked: bool) {
        self.blocked_unwinding.store(blocked, Relaxed);
    }

    /// The coroutine switched back to the scheduler.
    #[inline(always)]
    pub(crate) fn leave(&self) {
        self.running.store(0, Relaxed);
    }
}

/// The monitor's shared state.
pub(crate) struct Monitor {
    /// One per worker.
    pub(crate) progress: Box<[CachePadded<Progress>]>,
    /// One per worker: its metrics counters (see [`Counts`]).
    pub(crate) counts: Box<[CachePadded<Counts>]>,
    /// One per worker: fresh coroutines other workers stole from it (added
    /// to by the thieves, on a line of its own).
    pub(crate) stolen_out: Box<[CachePadded<AtomicU64>]>,
    /// The monitor thread, once started.
    pub(crate) thread: OnceLock<Thread>,
    /// The monitor sleeps until a worker wakes (see module docs).
    parked: AtomicBool,
    /// Set by the runtime's drop once every worker thread has ended: the
    /// monitor watches through the shutdown too, where a coroutine that
    /// blocks in a destructor while it unwinds holds the drop forever.
    pub(crate) stop: AtomicBool,
    /// Warn after this long; None: no monitor thread.
    pub(crate) threshold: Option<Duration>,
    /// Where the workers' published times count from.
    pub(crate) epoch: Instant,
}

impl Monitor {
    /// `t` in µs since the epoch.
    #[inline]
    pub(crate) fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub(crate) fn new(workers: usize, threshold: Option<Duration>) -> Monitor {
        Monitor {
            progress: (0..workers)
                .map(|_| CachePadded::new(Progress::default()))
                .collect(),
            counts: (0..workers)
                .map(|_| CachePadded::new(Counts::default()))
                .collect(),
            stolen_out: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            thread: OnceLock::new(),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            threshold,
            epoch: Instant::now(),
        }
    }

    /// A worker woke while every worker slept: wake the monitor if it
    /// sleeps. (The caller changed the idle counts with SeqCst before.)
    #[inline]
    pub(crate) fn kick(&self) {
        if self.parked.load(SeqCst)
            && self.parked.swap(false, SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }
}

/// The monitor thread's loop; returns when the runtime's drop has seen
/// every worker end (`Monitor::stop`): a shutdown that hangs is warned
/// about as a running runtime's stall is.
pub(crate) fn run(shared: &Shared, thread_prefix: &str) {
    let monitor = &shared.monitor;
    let Some(threshold) = monitor.threshold else {
        return;
    };
    let period = (threshold / 4).max(Duration::from_millis(5));
    let n = monitor.progress.len();
    // Per worker: (resumes seen, running id seen, since when, warned:
    // NONE, STALLED or UNWINDING).
    const NONE: u8 = 0;
    const STALLED: u8 = 1;
    const UNWINDING: u8 = 2;
    let mut seen: Vec<(u64, u64, Instant, u8)> = vec![(0, 0, Instant::now(), NONE); n];
    while !monitor.stop.load(Acquire) {
        monitor.parked.store(true, SeqCst);
        if shared.idle.all_parked() && !shared.closed.load(SeqCst) {
            thread::park();
            monitor.parked.store(false, SeqCst);
            let now = Instant::now();
            for s in seen.iter_mut() {
                *s = (0, 0, now, NONE);
            }
            continue;
        }
        monitor.parked.store(false, SeqCst);
        thread::park_timeout(period);
        let now = Instant::now();
        for (i, (p, s)) in monitor.progress.iter().zip(seen.iter_mut()).enumerate() {
            let resumes = p.resumes.load(Relaxed);
            let running = p.running.load(Relaxed);
            if running == 0 || resumes != s.0 || running != s.1 {
                *s = (resumes, running, now, NONE);
                continue;
            }
            let stalled = now - s.2;
            // A stall first warned as such may turn out to be a wait while
            // unwinding (the panic's own report can take longer than the
            // threshold): that gets its own warning too.
            if stalled >= threshold && s.3 != UNWINDING && p.blocked_unwinding.load(Relaxed) {
                s.3 = UNWINDING;
                note!(
                    "coio: worker {thread_prefix}-{i} has been blocked for {:.1} s in coroutine \
                     #{running}, which waits while it unwinds from a panic, without coming back \
                     to the scheduler: a coroutine that unwinds cannot switch, so its whole \
                     worker waits in its place. If what it waits for (a join, a scope, a lock, \
                     a channel) needs a coroutine of that worker, this is a deadlock, for sure \
                     on a runtime of one worker. Do not block in a Drop that can run during a \
                     panic, or let the wait time out.",
                    stalled.as_secs_f64()
                );
            } else if stalled >= threshold && s.3 == NONE {
                s.3 = STALLED;
                // What it runs, captured on its thread (a signal): the
                // coroutine's name, spawn site and stack.
                let hook_before = p.in_panic_hook.load(Relaxed);
                let (what, waited) = super::dump::describe_running(shared, i, running);
                // A capture that found nothing, because the stall ended
                // meanwhile: nothing to warn about. (One that found the
                // coroutine running is a stall, even if it ended while its
                // stack was named, which takes a good part of a second the
                // first time in a debug build; so is one that ended while
                // the capture waited for a dump, warned about without its
                // stack.)
                if what.is_none()
                    && !waited
                    && (p.resumes.load(Relaxed) != resumes || p.running.load(Relaxed) != running)
                {
                    *s = (resumes, running, now, NONE);
                    continue;
                }
                // The panic hook's own report (std's prints a backtrace,
                // whose first symbolisation takes a good part of a second)
                // is not a stall of the user's code: no warning for it.
                // Looked at again after another threshold: what follows
                // the hook in the same resume (a destructor that spins as
                // the panic unwinds) is warned about as any stall. Known by
                // the mark coio's hook sets, or, for a hook the program set
                // after coio's, by the stack's names (none in a stripped
                // binary).
                if hook_before
                    || p.in_panic_hook.load(Relaxed)
                    || what.as_deref().is_some_and(in_panic_hook)
                {
                    *s = (resumes, running, now, NONE);
                    continue;
                }
                let what = match what {
                    Some(d) => format!(" {d}"),
                    None if waited => " (Its stack was not captured: a coroutine dump was \
                                       being made.)\n"
                        .into(),
                    None => "\n".into(),
                };
                note!(
                    "coio: worker {thread_prefix}-{i} has been running coroutine {running} for \
                     {:.1} s without coming back to the scheduler; the other coroutines homed on \
                     that worker cannot run until it does.{what}\
                     Long computations need yield points (coio::yield_now), blocking system \
                     calls belong on the pool (coio::blocking), std's Mutex and RwLock held \
                     across a wait are coio::sync's to use, and a future is awaited with \
                     coio::future::block_on, not with a thread-blocking block_on: see \
                     \"Blocking inside coroutines\" in coio's crate docs (cargo doc -p coio \
                     --open) for the whole list.",
                    stalled.as_secs_f64()
                );
            }
        }
    }
}

/// Whether a running coroutine's stack, as `dump::describe_running`
/// renders it, is inside the panic hook: std's panic entry calls the hook
/// from `panic_with_hook` (`rust_panic_with_hook` in older versions), and
/// that frame is gone once the unwind runs destructors (so a slow
/// destructor during a panic is still warned about).
fn in_panic_hook(stack: &str) -> bool {
    stack.contains("panicking::panic_with_hook")
        || stack.contains("panicking::rust_panic_with_hook")
}

#[cfg(test)]
mod tests {
    use super::BusyClock;

    #[test]
    fn busy_clock_counts_the_awake_stretches_only() {
        let c = BusyClock::default();
        // Awake since the epoch.
        assert_eq!(c.read(5), (5, false));
        c.fall_asleep(10);
        assert_eq!(c.read(100), (10, true));
        // A second fall asleep changes nothing.
        c.fall_asleep(20);
        assert_eq!(c.read(100), (10, true));
        c.wake(50);
        assert_eq!(c.read(60), (20, false));
        // A reader's clock read before the wake: less, never negative.
        assert_eq!(c.read(45), (5, false));
        assert_eq!(c.read(0), (0, false));
        // A second wake changes nothing.
        c.wake(55);
        assert_eq!(c.read(60), (20, false));
        c.fall_asleep(70);
        assert_eq!(c.read(80), (30, true));
        // Far from the epoch (a year of µs), where the awake word's offset
        // is a large negative number.
        let year = 365 * 24 * 3600 * 1_000_000u64;
        c.wake(year);
        assert_eq!(c.read(year + 7), (37, false));
        c.fall_asleep(year + 10);
        assert_eq!(c.read(year + 1000), (40, true));
    }
}
