//! Async sleeps on the workers' timers: [`Sleep`], the future behind
//! `coio::future::sleep` and `coio::compat::hyper::Timer`.
//!
//! A worker's timer heap (`driver::Timers`) wakes [`TimerRef`]s: a
//! coroutine blocked with a deadline, or a [`WakerTimer`], the shared half
//! of a `Sleep`, which holds the latest poll's waker. A `Sleep` polled on a
//! worker thread (in a coroutine: in `block_on`, or in a task of
//! `compat::hyper::Executor`) arms a timer on that worker, so that it fires
//! there and the worker's sleep in its driver ends at the nearest deadline,
//! as for a coroutine's `sleep`: no timer thread, and the wake of a
//! coroutine of that worker is a local queue push.
//!
//! # Who touches what
//!
//! A `WakerTimer`'s generation (see `driver::Timers`) is touched only by
//! the thread of the worker whose heap holds it: arming and firing happen
//! there, and a `Sleep` disarms only from that thread. A `Sleep` dropped
//! or re-armed elsewhere (it moved to another thread, which a future may)
//! leaves its entry in the old heap, which fires it later into nothing,
//! and arms a fresh `WakerTimer` where it is polled. The waker and the
//! `fired` flag are shared through a lock and an atomic.
//!
//! A `Sleep` polled off the workers (a plain thread's executor) has no
//! heap to use: one helper thread per such sleep waits for the deadline,
//! or until the sleep lets go of it (dropped or re-armed elsewhere: the
//! `abandoned` flag, and an unpark), whichever comes first.
//! That is a fallback, documented as costly; async code on another
//! runtime should use that runtime's timers.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::task::{self, TaskRef};
use super::worker;

/// What a worker's timer wakes.
pub(crate) enum TimerRef {
    /// A coroutine blocked with a deadline.
    Task(TaskRef),
    /// A [`Sleep`]'s shared half.
    Waker(Arc<WakerTimer>),
}

impl crate::driver::TimerTarget for TimerRef {
    #[inline]
    fn timer_generation(&self) -> &Cell<u32> {
        match self {
            TimerRef::Task(t) => &t.header().local.timer_gen,
            TimerRef::Waker(w) => &w.generation,
        }
    }
}

impl TimerRef {
    /// The timer fired (on the heap's worker thread).
    #[inline]
    pub(crate) fn fire(self) {
        match self {
            TimerRef::Task(t) => task::wake(&*t),
            TimerRef::Waker(w) => w.fire(),
        }
    }

    /// The heap's worker exits with the timer armed. A coroutine's is
    /// dropped (the coroutine is cancelled with its runtime); a
    /// [`Sleep`]'s is woken, to arm again wherever it is polled next.
    pub(crate) fn orphan(self) {
        if let TimerRef::Waker(w) = self {
            w.set_and_wake(&w.orphaned);
        }
    }
}

/// The shared half of a [`Sleep`] armed on a worker (see the module docs).
pub(crate) struct WakerTimer {
    /// The timer generation: only the arming worker's thread touches it.
    generation: Cell<u32>,
    /// The deadline passed (set by the firing worker).
    fired: AtomicBool,
    /// The worker whose heap held it exited before the deadline (see
    /// [`TimerRef::orphan`]).
    orphaned: AtomicBool,
    /// The `Sleep` let go of this timer (disarmed or dropped): a helper
    /// thread waiting for it may end early.
    abandoned: AtomicBool,
    /// The task to wake.
    waker: Mutex<Option<Waker>>,
}

// SAFETY: `generation` is touched only by the thread of the worker whose
// heap holds the timer (module docs: arm, fire and disarm happen there);
// the rest is a lock and an atomic.
unsafe impl Sync for WakerTimer {}
// SAFETY: as above (nothing in it is tied to a thread but `generation`,
// which is used on one thread only).
unsafe impl Send for WakerTimer {}

impl WakerTimer {
    fn new(waker: &Waker) -> WakerTimer {
        WakerTimer {
            generation: Cell::new(0),
            fired: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            waker: Mutex::new(Some(waker.clone())),
        }
    }

    fn fire(&self) {
        self.set_and_wake(&self.fired);
    }

    /// Sets `flag` (`fired` or `orphaned`), then wakes the task to wake,
    /// if any (taken, so once), outside the lock.
    fn set_and_wake(&self, flag: &AtomicBool) {
        flag.store(true, Release);
        let w = self.lock().take();
        if let Some(w) = w {
            // On the worker's timers (or the helper thread): a panicking
            // waker goes no further.
            crate::wake_surviving(w);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `w` as the task to wake; true if the timer has fired already.
    fn set_waker(&self, w: &Waker) -> bool {
        task::keep_waker(&mut self.lock(), w);
        // After the waker is in place: a fire before this load is seen
        // here, one after it takes the new waker.
        self.fired.load(Acquire)
    }
}

/// Where a [`Sleep`]'s timer is armed.
struct Armed {
    timer: Arc<WakerTimer>,
    /// The deadline it was armed for.
    deadline: Instant,
    /// On a worker: its identity (the `Local`'s address) and the timer's
    /// generation there. None: on a helper thread (the fallback).
    on: Option<(usize, u32)>,
    /// The helper thread waiting for the deadline (the fallback), to
    /// unpark when the sleep is disarmed, so that it ends then.
    helper: Option<std::thread::Thread>,
}

/// A future that completes at a deadline, on coio's timers (see the
/// module docs of `coio::future` for where it may be polled).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// coio::run(|| {
///     let start = Instant::now();
///     let nap: coio::future::Sleep = coio::future::sleep(Duration::from_millis(5));
///     coio::future::block_on(async {
///         nap.await; // parks only this coroutine
///     });
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    armed: Option<Armed>,
}

impl Sleep {
    /// A sleep until `deadline`.
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            armed: None,
        }
    }

    /// A sleep of `dur` from now (an overflowing duration: practically
    /// forever).
    pub(crate) fn of(dur: Duration) -> Sleep {
        let now = Instant::now();
        Sleep::until(
            now.checked_add(dur)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
        )
    }

    /// When it completes.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let before = Instant::now();
    /// let s = coio::future::sleep(Duration::from_secs(1));
    /// assert!(s.deadline() >= before + Duration::from_secs(1));
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let long = coio::future::sleep(Duration::from_secs(3600));
    /// assert!(!long.is_elapsed());
    /// let short = coio::future::sleep(Duration::from_millis(1));
    /// std::thread::sleep(Duration::from_millis(2));
    /// assert!(short.is_elapsed()); // by the clock, polled or not
    /// ```
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline (the next poll re-arms the timer).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// coio::run(|| {
    ///     let mut s = coio::future::sleep(Duration::from_secs(3600));
    ///     s.reset(Instant::now() + Duration::from_millis(5));
    ///     coio::future::block_on(&mut s);
    ///     assert!(s.is_elapsed());
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        if deadline != self.deadline {
            self.disarm();
            self.deadline = deadline;
        }
    }

    /// Cancels the armed timer, if any: in its heap if this is its
    /// worker's thread, else it is left to fire into nothing.
    fn disarm(&mut self) {
        let Some(armed) = self.armed.take() else {
            return;
        };
        // Nobody to wake any more.
        drop(armed.timer.lock().take());
        armed.timer.abandoned.store(true, Release);
        if let Some(h) = &armed.helper {
            h.unpark();
        }
        if let Some((worker, generation)) = armed.on
            && !armed.timer.orphaned.load(Acquire)
            && let Some(l) = worker::local()
            && l as *const worker::Local as usize == worker
        {
            l.timers
                .borrow_mut()
                .disarm(&armed.timer.generation, generation);
        }
    }

    /// Arms a timer for the deadline, waking `waker`: on this thread's
    /// worker, else on a helper thread.
    fn arm(&mut self, waker: &Waker) {
        let timer = Arc::new(WakerTimer::new(waker));
        let mut helper = None;
        let on = match worker::local() {
            Some(l) => {
                let generation = l
                    .timers
                    .borrow_mut()
                    .arm(self.deadline, TimerRef::Waker(timer.clone()));
                Some((l as *const worker::Local as usize, generation))
            }
            None => {
                let (t, deadline) = (timer.clone(), self.deadline);
                let spawned = std::thread::Builder::new()
                    .name("coio-sleep".into())
                    // The waker is user code: it may leave frames
                    // live here (see `coroutine::run_owned`).
                    .spawn(move || {
                        crate::coroutine::run_owned(|| {
                            // Until the deadline, or until the sleep lets
                            // go of the timer (then nothing is to fire).
                            while !t.abandoned.load(Acquire) {
                                let left = deadline.saturating_duration_since(Instant::now());
                                if left.is_zero() {
                                    t.fire();
                                    return;
                                }
                                std::thread::park_timeout(left);
                            }
                        })
                    });
                match spawned {
                    Ok(h) => helper = Some(h.thread().clone()),
                    // No thread to wait with: poll again soon instead.
                    Err(_) => waker.wake_by_ref(),
                }
                None
            }
        };
        self.armed = Some(Armed {
            timer,
            deadline: self.deadline,
            on,
            helper,
        });
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A leaf of the cooperative budget, as a channel's receive (a
        // loop of sleeps that are due at once, or of zero ones, lets the
        // worker's other coroutines run; as `coio::sleep(ZERO)` yields).
        std::task::ready!(worker::coop_poll_proceed(cx));
        let this = self.get_mut();
        if let Some(armed) = &this.armed
            && armed.deadline == this.deadline
        {
            if armed.timer.set_waker(cx.waker()) {
                this.armed = None;
                worker::coop_spend_in_poll();
                return Poll::Ready(());
            }
            // (Seen after the waker is in place: an orphaning after this
            // load wakes that waker.)
            if !armed.timer.orphaned.load(Acquire) {
                return Poll::Pending;
            }
            // Its worker exited: armed again below, here.
        }
        if Instant::now() >= this.deadline {
            this.disarm();
            worker::coop_spend_in_poll();
            return Poll::Ready(());
        }
        this.disarm();
        this.arm(cx.waker());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.armed.is_some())
            .finish()
    }
}
