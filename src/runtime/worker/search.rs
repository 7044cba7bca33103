//! The search for work and the sleep: what a worker does when its own
//! queues are empty.
//!
//! It looks at its inbox, timers and driver, steals fresh coroutines from
//! other workers (half a victim's fresh queue, victims in random order, at
//! most its room below its share: see `placement`), spins for a while as a
//! *searching* worker (the idle protocol of `runtime::idle` keeps at most
//! half the workers searching and wakes one when work appears), and then
//! parks: it sleeps in its driver (`sleep_on_inbox`), with the nearest
//! timer as the timeout, until an I/O event, an inbox push, a wake or
//! shutdown. The decision to sleep is taken under the inbox lock with the
//! inbox's `parked` flag set for pushers to see, so a push or a deal is
//! never slept through (the loom model in `worker`).
//!
//! The spin is shortened while other threads compete for the worker's core
//! ([`Contention`]): a spinner then takes CPU time from the very worker it
//! waits for.

use std::cell::Cell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::*;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use super::{Job, Local, SPIN, SPIN_CONTENDED, STEAL_LONE_WAIT};
use crate::runtime::monitor::bump;
use crate::runtime::task::TaskRef;

impl Local {
    /// With nothing queued: look at the inbox, timers and netpoller, steal
    /// if allowed to search, spinning for up to [`SPIN`] ([`SPIN_CONTENDED`]
    /// while workers wait for cores: [`Contention`]). None: time to park.
    ///
    /// A worker with sockets registered polls them once and, if that and
    /// one round of stealing find nothing, parks at once, in `epoll_wait`,
    /// which returns on the first I/O event or wake (Go's `findrunnable`
    /// likewise polls the network once and leaves the waiting to the
    /// blocking poll). Spinning there would mean a system call per round
    /// to see I/O, and CPU taken from whatever else runs on the machine:
    /// with the echo benchmark's load generator sharing the two cores,
    /// spinning workers cost it throughput (measured, noisy: 2 workers, 50
    /// connections, 98k–182k requests/s spinning against 157k–190k
    /// parking).
    pub(super) fn find_work(&self) -> Option<Job> {
        if !self.searching.get() && !self.closing.get() && self.shared.idle.try_search() {
            self.searching.set(true);
        }
        let start = Instant::now();
        let mut spins = 0u32;
        // With sockets registered the worker parks in its poll at once
        // (above). So does it under valgrind, which runs one thread at a
        // time: nothing can arrive while this one spins, and the worker
        // that would send it waits for this thread's time slice to end
        // (see `yield_current`); a park is a blocking system call, which
        // lets it run. (Decided once here, the spin loop keeps no branch
        // for valgrind.)
        let no_spin = self.driver.borrow().has_work() || self.valgrind;
        let spin = self.contention.spin(start);
        loop {
            self.drain_inbox();
            self.fire_timers();
            if spins == 0 {
                self.poll_io();
            }
            let local = match self.ready.borrow_mut().pop_front() {
                Some(t) => Some(Job::Started(t)),
                None => self.take_fresh().map(Job::Fresh),
            };
            if let Some(job) = local {
                self.stop_searching();
                return Some(job);
            }
            // Only so many workers may search at once; a spinner retries
            // for the permission each round. A worker past its share does
            // not steal, nor hold a searcher's place (while one searches,
            // the idle protocol wakes nobody else).
            if !self.may_steal() {
                self.stop_searching();
            } else if !self.searching.get() && !self.closing.get() && self.shared.idle.try_search()
            {
                self.searching.set(true);
            }
            if self.searching.get()
                && let Some(t) = self.steal()
            {
                self.stop_searching();
                return Some(Job::Fresh(t));
            }
            if self.shared.closed.load(Relaxed) {
                self.stop_searching();
                return None;
            }
            spins += 1;
            if no_spin || (spins.is_multiple_of(16) && start.elapsed() > spin) {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Leaves the searching state; the last searcher passes the baton on if
    /// stealable work is still visible.
    pub(super) fn stop_searching(&self) {
        if self.searching.replace(false)
            && self.shared.idle.stop_searching()
            && self.stealable_work()
        {
            self.shared.notify_work(true);
        }
    }

    /// Whether any queue others may steal from is non-empty.
    pub(super) fn stealable_work(&self) -> bool {
        !self.shared.injector.is_empty()
            || self.shared.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Steals from the injector, then half of a random victim's fresh queue.
    pub(super) fn steal(&self) -> Option<TaskRef> {
        if let Some(t) = self.steal_injector() {
            return Some(t);
        }
        let n = self.shared.remotes.len();
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        let start = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n;
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.index {
                continue;
            }
            let stealer = &self.shared.remotes[i].stealer;
            let queued = stealer.len();
            if queued == 0 {
                continue;
            }
            // Half of the victim's queue (crossbeam's default batch is at
            // most 32, which leaves a burst of spawns lopsided), but no
            // more than this worker's room below its share: a batch that
            // overshoots makes a placement no later deal corrects. The
            // cap is recounted when it would limit the batch (it may be
            // from before the burst).
            let mut room = self.home_cap.get().saturating_sub(self.load());
            if room < queued.div_ceil(2) {
                self.refresh_cap();
                room = self.home_cap.get().saturating_sub(self.load());
            }
            if queued == 1 {
                self.let_victim_move_on(i);
            }
            let room = room.max(1);
            loop {
                let before = self.fresh.len();
                match stealer.steal_batch_with_limit_and_pop(&self.fresh, room) {
                    Steal::Success(t) => {
                        let n = (self.fresh.len() - before) as u64 + 1;
                        bump(&self.counts().stolen_in, n);
                        self.shared.monitor.stolen_out[i].fetch_add(n, Relaxed);
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// Before stealing the only fresh coroutine of worker `i` while that
    /// worker runs a coroutine: waits until it has switched (or for
    /// [`STEAL_LONE_WAIT`]). A lone fresh coroutine was most likely just
    /// spawned by the running one, which is about to wait for it (spawn,
    /// then send, receive or join): its worker starts it at that switch,
    /// and the pair stays on one worker, where a handoff costs no
    /// cross-core traffic and no wake-up of a sleeping worker. Go waits the
    /// same way before it steals a P's `runnext`. Measured: a two-worker
    /// channel ping-pong whose partner was stolen ran at ~108 µs per round
    /// trip instead of ~80 ns, in a third of the runs.
    #[cold]
    pub(super) fn let_victim_move_on(&self, i: usize) {
        let progress = &self.shared.monitor.progress[i];
        let (seen, running) = progress.activity();
        if !running {
            return;
        }
        let start = Instant::now();
        while progress.activity() == (seen, true)
            && self.shared.remotes[i].stealer.len() == 1
            && start.elapsed() < STEAL_LONE_WAIT
        {
            // Yield rather than spin: this thread was just woken, quite
            // possibly onto the victim's own core, and spinning there would
            // keep the victim from running at all.
            thread::yield_now();
        }
    }

    /// Sleeps until woken (inbox push, idle notification, shutdown) or
    /// until the next timer is due.
    pub(super) fn park(&self) {
        let searching = self.searching.replace(false);
        let idle = &self.shared.idle;
        if idle.park(self.index, searching) && self.stealable_work() {
            // The last searcher saw work appear while it was giving up.
            if !idle.unpark(self.index) || idle.try_search() {
                self.searching.set(true);
            }
            self.shared.monitor.kick();
            return;
        }
        // Work injected from outside the workers (`block_on`,
        // `Runtime::spawn`) wakes nobody while every worker is awake
        // (`notify_work`: a busy one will take it), and a worker past its
        // cap neither steals nor searches; caps computed at different
        // moments can leave every awake worker past its own, and the work
        // would wait for an unrelated wake. So after `idle.park` (fenced,
        // against the injector's push and fenced notify) a worker about to
        // sleep takes injected work itself, past its cap or not: with
        // nothing else to run, it is as good a home as any.
        if !self.shared.injector.is_empty() {
            if !idle.unpark(self.index) {
                self.searching.set(true);
            }
            if let Some(t) = self.steal_injector() {
                self.pending.set(Some(Job::Fresh(t)));
            }
            self.shared.monitor.kick();
            return;
        }
        // Nothing runnable here: others may count on this worker.
        self.progress().set_load(0);
        // Once this worker has begun closing it may sleep too: what it still
        // waits for arrives through the inbox or its timers.
        self.sleep_on_inbox(self.closing.get() || !self.shared.closed.load(SeqCst), None);
        // The shares may have changed while it slept (a cap computed
        // before a quiet spell would let a new burst all start here).
        if !self.alone() {
            self.refresh_cap();
        }
        if !idle.unpark(self.index) {
            self.searching.set(true);
        }
        self.shared.monitor.kick();
    }

    /// Sleeps in the netpoller's `epoll_wait` until an I/O event, an inbox
    /// push, an unpark, the next timer or `until`, unless the inbox has
    /// tasks or `may_sleep` is false. The decision is taken under the inbox
    /// lock, with `parked` set for pushers to see; a wake that comes before
    /// the sleep stays in epoll's ready list (see `crate::driver`).
    pub(super) fn sleep_on_inbox(&self, may_sleep: bool, until: Option<Instant>) {
        // Only a worker that spins cares (see `find_work`), and it reads
        // before it marks itself parked: a pusher meanwhile need not wake it.
        if may_sleep && !self.valgrind && !self.driver.borrow().has_work() {
            self.contention.sample(Instant::now());
        }
        let remote = self.remote();
        {
            let mut inbox = remote.lock();
            inbox.parked = may_sleep && inbox.tasks.is_empty() && inbox.dealt.is_empty();
            if !inbox.parked {
                return;
            }
        }
        let next = self.timers.borrow_mut().next_deadline();
        let asleep = Instant::now();
        let timeout = [until, next]
            .into_iter()
            .flatten()
            .min()
            .map(|d| d.saturating_duration_since(asleep));
        // Busy time, for placement (`effective_loads`): two clock reads
        // per sleep, which is a system call anyway.
        let monitor = &self.shared.monitor;
        self.progress()
            .set_asleep(true, monitor.micros(asleep), self.counts());
        bump(&self.counts().parks, 1);
        {
            let mut driver = self.driver.borrow_mut();
            self.bookkeeping(|| driver.poll(timeout));
            self.counts().io_events.store(driver.events(), Relaxed);
        }
        remote.lock().parked = false;
        let now = Instant::now();
        self.set_clock();
        self.progress()
            .set_asleep(false, monitor.micros(now), self.counts());
    }
}

/// How long the spin stays short after contention was last seen.
const CONTENDED_HOLD: Duration = Duration::from_millis(50);

/// Least time between two readings of the thread's wait for a core: a
/// reading is a system call (a `pread` of `/proc/thread-self/schedstat`,
/// ~2 µs), taken only on the way to sleep, which costs a system call
/// anyway, and only by a worker that spins (no sockets registered).
const CONTENTION_WINDOW: Duration = Duration::from_millis(2);

/// The share of the time between two readings that the thread spent
/// runnable but waiting for a core, above which its core counts as
/// contended: one part in this many.
const CONTENDED_SHARE: u32 = 8;

/// Until when every worker's spin stays short: microseconds since
/// [`epoch`] (0: not contended yet).
static CONTENDED_UNTIL: AtomicU64 = AtomicU64::new(0);

/// The instant [`CONTENDED_UNTIL`] counts from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` in microseconds since [`epoch`].
fn micros(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_micros()).unwrap_or(u64::MAX)
}

/// Whether other threads compete for the workers' cores, from the time a
/// worker's thread spent runnable but waiting for a core (the scheduler's
/// `run_delay`, in `/proc/thread-self/schedstat`), read when the worker is
/// about to sleep: a worker that waited for more than one part in
/// [`CONTENDED_SHARE`] of the time since its last reading shares its core
/// with something runnable. Then every worker of the process, of any
/// runtime, spins for [`SPIN_CONTENDED`] instead of [`SPIN`] until
/// [`CONTENDED_HOLD`] has passed without such a reading: contention is the
/// machine's, and the worker that waits for a core is often not the one
/// whose spin keeps it waiting (a thread woken by another is first queued
/// on the waker's core).
///
/// Each worker keeps its schedstat file open (opened as it starts, on its
/// own thread: one descriptor more per worker); where it cannot be opened
/// (no `/proc`, no descriptor left) that worker does not read, and the
/// spin stays long unless another worker tells.
///
/// Why: with two spinning processes beside 2 workers on 2 cores, each
/// handoff between the workers needs the receiving worker's thread on a
/// core, and a 50 µs spin took CPU time from it (and from the program)
/// at every idle moment: rounds of channel traffic took ~112 ms against
/// ~38 ms with the short spin (`contended 2 2`, see BENCHMARKS.md). On an
/// idle machine a worker hardly ever waits for a core (the runtime's own
/// monitor thread, waking every 25 ms, takes a core for microseconds), so
/// the long spin, and its sub-microsecond handoffs, stay. The count of
/// preemptions would not tell the two apart: two busy threads sharing one
/// core preempt each other only ~130 times a second here, the monitor up
/// to 40 and, while it captures a stalled worker's stack, 10 times a
/// millisecond.
pub(in crate::runtime) struct Contention {
    /// The thread's `/proc/thread-self/schedstat` (none: it could not be
    /// opened).
    schedstat: Option<File>,
    /// Nanoseconds the thread had waited for a core at the last reading.
    waited: Cell<u64>,
    /// When the last reading was tried (none yet: the next park reads).
    read_at: Cell<Option<Instant>>,
    /// Whether that reading succeeded (the next one is compared with it).
    read_ok: Cell<bool>,
    /// Where the verdict goes: [`CONTENDED_UNTIL`] but in tests.
    until: &'static AtomicU64,
}

impl Contention {
    /// The calling thread's: opens its schedstat file.
    pub(in crate::runtime) fn new() -> Contention {
        Contention::with_flag(&CONTENDED_UNTIL)
    }

    fn with_flag(until: &'static AtomicU64) -> Contention {
        Contention {
            schedstat: File::open("/proc/thread-self/schedstat").ok(),
            waited: Cell::new(0),
            read_at: Cell::new(None),
            read_ok: Cell::new(false),
            until,
        }
    }

    /// How long a spin that starts at `now` lasts.
    #[inline]
    fn spin(&self, now: Instant) -> Duration {
        let until = self.until.load(Relaxed);
        if until != 0 && micros(now) < until {
            SPIN_CONTENDED
        } else {
            SPIN
        }
    }

    /// Reads the thread's wait for a core, at most once per
    /// [`CONTENTION_WINDOW`] (failed reads too), and holds the short spin
    /// if it waited more than one part in [`CONTENDED_SHARE`] of the time
    /// since the last reading.
    fn sample(&self, now: Instant) {
        let Some(file) = &self.schedstat else {
            return;
        };
        if self
            .read_at
            .get()
            .is_some_and(|at| now.saturating_duration_since(at) < CONTENTION_WINDOW)
        {
            return;
        }
        match read_waited(file) {
            Some(waited) => {
                self.record(now, waited);
            }
            None => {
                self.read_at.set(Some(now));
                self.read_ok.set(false);
            }
        }
    }

    /// Records a reading of `waited` nanoseconds taken at `now`; true if
    /// it shows contention (then held for [`CONTENDED_HOLD`]).
    fn record(&self, now: Instant, waited: u64) -> bool {
        let before = self.waited.replace(waited);
        let last = self.read_at.replace(Some(now));
        let compare = self.read_ok.replace(true);
        let Some(last) = last.filter(|_| compare) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(last);
        let new = Duration::from_nanos(waited.saturating_sub(before));
        let contended = new.saturating_mul(CONTENDED_SHARE) > elapsed;
        if contended {
            self.until.fetch_max(micros(now + CONTENDED_HOLD), Relaxed);
        }
        contended
    }
}

/// The wait for a core so far, in nanoseconds, of the thread whose
/// schedstat `file` is: its second field (none if it cannot be read).
fn read_waited(file: &File) -> Option<u64> {
    let mut buf = [0u8; 96];
    let n = file.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::*;

    /// Pins the calling thread to `cpu`.
    fn pin(cpu: usize) {
        // SAFETY: cpu_set_t is a plain bit set, valid zeroed; CPU_SET and
        // sched_setaffinity get a valid pointer to it and its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
                0,
                "sched_setaffinity"
            );
        }
    }

    /// A CPU this process may run on.
    fn some_cpu() -> usize {
        // SAFETY: as in `pin`; sched_getaffinity fills the set.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
                0
            );
            (0..libc::CPU_SETSIZE as usize)
                .find(|&c| libc::CPU_ISSET(c, &set))
                .expect("no CPU")
        }
    }

    /// Spins on this thread for `d`.
    fn busy(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    /// A `Contention` of the calling thread whose verdicts go to a flag of
    /// its own (the process's is shared with every other test's runtimes).
    fn own() -> Contention {
        Contention::with_flag(Box::leak(Box::new(AtomicU64::new(0))))
    }

    #[test]
    fn a_thread_that_shares_its_core_with_a_busy_one_spins_briefly() {
        let cpu = some_cpu();
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin(cpu);
                while !stop.load(Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let seen = std::thread::spawn(move || {
            pin(cpu);
            let c = own();
            c.sample(Instant::now());
            let before = c.spin(Instant::now());
            // The hog and this thread take turns on one CPU: a few time
            // slices of a few milliseconds each.
            busy(Duration::from_millis(100));
            let now = Instant::now();
            c.sample(now);
            (
                before,
                c.schedstat.as_ref().and_then(read_waited),
                c.spin(now),
            )
        })
        .join()
        .unwrap();
        stop.store(true, Relaxed);
        hog.join().unwrap();
        assert_eq!(seen.0, SPIN, "before any contention");
        let waited = seen.1.expect("/proc/thread-self/schedstat unreadable");
        assert!(waited >= 20_000_000, "waited {waited} ns in 100 ms");
        assert_eq!(seen.2, SPIN_CONTENDED, "after sharing a core");
    }

    #[test]
    fn waiting_more_than_an_eighth_of_the_time_is_contention() {
        let c = own();
        let t0 = Instant::now();
        assert!(
            !c.record(t0, 1_000),
            "a first reading has nothing to compare"
        );
        let t1 = t0 + Duration::from_millis(8);
        assert!(!c.record(t1, 1_000 + 1_000_000), "1 ms in 8");
        assert_eq!(c.spin(t1), SPIN);
        let t2 = t1 + Duration::from_millis(8);
        assert!(c.record(t2, 1_000 + 2_000_001), "just over 1 ms in 8");
        assert_eq!(c.spin(t2), SPIN_CONTENDED);
        assert_eq!(c.spin(t2 + CONTENDED_HOLD), SPIN);
    }

    #[test]
    fn a_reading_after_a_failed_one_is_not_compared() {
        let c = own();
        let t0 = Instant::now();
        c.record(t0, 0);
        // A failed read (as `sample` records it), then a success with a
        // big wait since the first: no verdict from it.
        c.read_at.set(Some(t0 + CONTENTION_WINDOW));
        c.read_ok.set(false);
        assert!(!c.record(t0 + 2 * CONTENTION_WINDOW, 1_000_000_000));
        assert!(c.record(t0 + 3 * CONTENTION_WINDOW, 2_000_000_000));
    }

    #[test]
    fn readings_closer_than_the_window_are_skipped() {
        let c = own();
        if c.schedstat.is_none() {
            return;
        }
        let t0 = Instant::now();
        c.sample(t0);
        assert_eq!(c.read_at.get(), Some(t0));
        c.sample(t0 + CONTENTION_WINDOW / 2);
        assert_eq!(c.read_at.get(), Some(t0), "a reading was taken");
        c.sample(t0 + CONTENTION_WINDOW);
        assert_eq!(c.read_at.get(), Some(t0 + CONTENTION_WINDOW));
    }
}
