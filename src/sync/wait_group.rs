//! [`WaitGroup`]: Go's `sync.WaitGroup`, a counter to wait for zero.
//!
//! # State
//!
//! One word: the counter times `ONE`, and `WAITERS` (the wait queue has
//! entries; set and cleared only under the queue lock).
//!
//! # Protocol
//!
//! A waiter that sees a positive count sets `WAITERS` under the queue lock
//! by a CAS that also checks that the count is still positive, and pushes
//! its entry. `done` decrements with one CAS, except when it would bring
//! the count to zero while `WAITERS` is set: then it takes the queue lock
//! first and, under it, zeroes the count, clears `WAITERS` and claims every
//! entry with *done*, in one critical section. So the entries released are
//! exactly those of waiters that saw this round's positive count (a waiter
//! of the next round, after an `add`, pushes after the lock is let go), and
//! no waiter is left behind: its CAS that set `WAITERS` precedes the
//! decrement to zero, which therefore takes the slow path.
//!
//! A waiter that times out or is cancelled removes its entry and clears
//! `WAITERS` if the queue is then empty.

use std::fmt;
use std::ptr;
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};

use super::{Failed, QueueLock, lock_queue};
use crate::park::{self, Blocker, WaitQueue, Woken};

/// `state`: the wait queue has entries.
const WAITERS: usize = 1;
/// `state`: a count of one.
const ONE: usize = 2;

/// Waits for a collection of tasks to finish, as Go's `sync.WaitGroup`:
/// [`add`](Self::add) the number of tasks, each calls
/// [`done`](Self::done) when it finishes, and [`wait`](Self::wait) blocks
/// until the counter is back to zero. It is not `Clone`: share it by
/// reference (a scope) or in an `Arc`. See the [module docs](super) for
/// waiting and cancellation.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use coio::sync::WaitGroup;
///
/// let wg = Arc::new(WaitGroup::new());
/// let n = Arc::new(AtomicUsize::new(0));
/// coio::run(|| {
///     for _ in 0..10 {
///         wg.add(1);
///         let (wg, n) = (wg.clone(), n.clone());
///         coio::spawn(move || {
///             n.fetch_add(1, Ordering::Relaxed);
///             wg.done();
///         });
///     }
///     wg.wait();
/// });
/// assert_eq!(n.load(Ordering::Relaxed), 10);
/// ```
pub struct WaitGroup {
    /// The counter times `ONE`, and `WAITERS`.
    state: AtomicUsize,
    /// The waiters.
    queue: QueueLock,
}

// A panic in a wait leaves nothing half-updated that a caller could see
// (no user data; the waiter's own entry is removed by its unwinding), as
// std's WaitGroup is unwind-safe.
impl std::panic::UnwindSafe for WaitGroup {}
impl std::panic::RefUnwindSafe for WaitGroup {}

impl WaitGroup {
    /// A wait group with a count of zero.
    ///
    /// ```
    /// use coio::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// wg.wait(); // a count of zero: returns at once
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> WaitGroup {
        WaitGroup {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// A wait group with a count of zero.
    #[cfg(loom)]
    pub fn new() -> WaitGroup {
        WaitGroup {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// Adds `n` to the counter.
    ///
    /// ```
    /// use coio::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         wg.add(3); // before the spawns, so that `wait` cannot miss them
    ///         for _ in 0..3 {
    ///             s.spawn(|| wg.done());
    ///         }
    ///         wg.wait();
    ///     })
    /// });
    /// ```
    ///
    /// # Panics
    /// If the counter would overflow (it holds `usize::MAX / 2`).
    pub fn add(&self, n: usize) {
        let Some(delta) = n.checked_mul(ONE) else {
            overflow()
        };
        let mut s = self.state.load(Relaxed);
        loop {
            let Some(new) = s.checked_add(delta) else {
                overflow()
            };
            match self.state.compare_exchange_weak(s, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// Subtracts one from the counter; at zero, every waiter returns.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::WaitGroup;
    ///
    /// let wg = Arc::new(WaitGroup::new());
    /// wg.add(2);
    /// for _ in 0..2 {
    ///     let wg = wg.clone();
    ///     std::thread::spawn(move || wg.done()); // plain threads count too
    /// }
    /// wg.wait();
    /// ```
    ///
    /// # Panics
    /// If the counter is already zero: `done` was called more times than
    /// `add` added.
    pub fn done(&self) {
        let mut s = self.state.load(Relaxed);
        loop {
            if s < ONE {
                below_zero();
            }
            if s == ONE | WAITERS {
                return self.done_slow();
            }
            // Release: the finished task's work happens-before the wait's
            // return (which reads the count with Acquire).
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Release, Relaxed)
            {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// The last `done` of a round with waiters: zero the count and release
    /// them, all under the queue lock (module docs).
    #[cold]
    fn done_slow(&self) {
        let mut q = lock_queue(&self.queue);
        let mut s = self.state.load(Relaxed);
        loop {
            if s < ONE {
                drop(q);
                below_zero();
            }
            let last = s == ONE | WAITERS;
            // `WAITERS` only changes under the queue lock, which we hold.
            let new = if last { 0 } else { s - ONE };
            // AcqRel: the waiters we release must see the work of every
            // earlier `done` (their Release CASes head release sequences
            // that this RMW reads from), through our claims.
            match self.state.compare_exchange(s, new, AcqRel, Relaxed) {
                Ok(_) if last => break,
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
        while let Some(c) = q.claim(None, false) {
            drop(c);
        }
    }

    /// Waits until the counter is zero (returns at once if it is).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use coio::sync::WaitGroup;
    ///
    /// let wg = Arc::new(WaitGroup::new());
    /// coio::run(|| {
    ///     wg.add(1);
    ///     let w = wg.clone();
    ///     coio::spawn(move || {
    ///         coio::sleep(Duration::from_millis(1));
    ///         w.done();
    ///     });
    ///     wg.wait(); // suspends this coroutine only
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    pub fn wait(&self) {
        super::no_deadline(self.wait_until(None));
    }

    /// As [`wait`](Self::wait), but for at most `dur`: true if the counter
    /// reached zero, false if the time ran out first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// wg.add(1);
    /// assert!(!wg.wait_timeout(Duration::from_millis(5))); // nobody calls done
    /// wg.done();
    /// assert!(wg.wait_timeout(Duration::from_millis(5)));
    /// ```
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, dur: Duration) -> bool {
        match self.wait_until(super::deadline(dur)) {
            Ok(()) => true,
            Err(Failed::TimedOut) => false,
            Err(Failed::Cancelled) => park::unwind_cancelled(),
        }
    }

    /// The wait, with an optional deadline.
    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), Failed> {
        if self.state.load(Acquire) < ONE {
            return Ok(());
        }
        let blocker = Blocker::new(crate::runtime::dump::Wait::WaitGroup);
        {
            let mut q = lock_queue(&self.queue);
            let mut s = self.state.load(Acquire);
            loop {
                if s < ONE {
                    return Ok(());
                }
                match self
                    .state
                    .compare_exchange(s, s | WAITERS, Acquire, Acquire)
                {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after the last `done`'s claim finished, or after we
            // removed the entry under this lock. No packet.
            unsafe { q.push(&blocker, 0, ptr::null_mut()) };
        }
        match blocker.wait(deadline, true) {
            Woken::Done(_) => Ok(()),
            Woken::Retry(_) => unreachable!("coio: WaitGroup waiters are claimed with done"),
            r @ (Woken::TimedOut | Woken::Cancelled) => {
                let mut q = lock_queue(&self.queue);
                q.remove(&blocker);
                if q.is_empty() {
                    self.state.fetch_and(!WAITERS, Relaxed);
                }
                drop(q);
                Err(if r == Woken::TimedOut {
                    Failed::TimedOut
                } else {
                    Failed::Cancelled
                })
            }
        }
    }
}

#[cold]
#[track_caller]
fn below_zero() -> ! {
    panic!(
        "coio::sync::WaitGroup::done: the counter is already zero \
         (done was called more times than add added)"
    )
}

#[cold]
fn overflow() -> ! {
    panic!("coio::sync::WaitGroup::add: the counter overflowed")
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &(self.state.load(Relaxed) / ONE))
            .finish_non_exhaustive()
    }
}
