//! [`Condvar`]: a condition variable for coio's [`Mutex`].
//!
//! # Protocol
//!
//! A waiter pushes its entry under the queue lock (and sets `queued`)
//! *before* it unlocks the mutex, then waits. A notifier that changed the
//! condition under the mutex did so after the waiter unlocked it, so its
//! look at `queued` (after the change) sees the flag, takes the queue lock
//! and finds the entry: no wakeup is lost. `notify_one` claims the oldest
//! entry with *done* (the waiter is notified), `notify_all` every entry.
//! `queued` mirrors "the queue is not empty" whenever the queue lock is let
//! go, so that notifying with nobody waiting costs one load.
//!
//! A waiter that times out or is cancelled removes its entry (the claim
//! and the give-up are decided by one CAS on its blocker, so it is either
//! notified or not, never half). A timed-out waiter locks the mutex again
//! and returns; a cancelled one unwinds without the mutex. A notified
//! waiter that is cancelled while it locks the mutex again passes its
//! notification on (`notify_one`) before it unwinds, so that a
//! `notify_one` is not swallowed by a waiter that never returns.

use std::fmt;
use std::ptr;
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, Ordering::*};

use super::{Failed, Mutex, MutexGuard, QueueLock, lock_queue};
use crate::park::{self, Blocker, WaitQueue, Woken};
use crate::runtime::worker::coop_spend;

/// A condition variable: coroutines and threads wait on it, holding a
/// [`Mutex`] that it releases during the wait and takes back before the
/// wait returns; see the [module docs](super) for waiting and
/// cancellation.
///
/// There are no spurious wakeups (a wait returns when notified or timed
/// out), but, as with any condition variable, the condition may have
/// changed again by the time the mutex is locked: wait in a loop, or with
/// [`wait_while`](Self::wait_while).
///
/// ```
/// use std::sync::Arc;
/// use coio::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let p = pair.clone();
/// coio::run(move || {
///     let h = coio::spawn(move || {
///         *p.0.lock() = true;
///         p.1.notify_one();
///     });
///     let (m, cv) = &*pair;
///     let ready = cv.wait_while(m.lock(), |ready| !*ready);
///     assert!(*ready);
///     drop(ready);
///     h.join().unwrap();
/// });
/// ```
pub struct Condvar {
    /// Whether the queue has entries (changed under the queue lock).
    queued: AtomicBool,
    /// The waiters, oldest first.
    queue: QueueLock,
}

// A panic in a wait leaves nothing half-updated that a caller could see
// (no user data; the waiter's own entry is removed by its unwinding), as
// std's Condvar is unwind-safe.
impl std::panic::UnwindSafe for Condvar {}
impl std::panic::RefUnwindSafe for Condvar {}

/// Whether a timed wait of a [`Condvar`] returned because its time ran
/// out.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use coio::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// coio::run(|| {
///     let p = pair.clone();
///     coio::spawn(move || {
///         *p.0.lock() = true;
///         p.1.notify_one();
///     });
///     let (m, cv) = &*pair;
///     let (ready, res) = cv.wait_timeout_while(m.lock(), Duration::from_secs(10), |r| !*r);
///     assert!(*ready && !res.timed_out());
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait timed out (it was not notified, or the condition
    /// of `wait_timeout_while` still held at the deadline).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(()), Condvar::new());
    /// // Nobody notifies: the wait times out.
    /// let (_guard, res) = cv.wait_timeout(m.lock(), Duration::from_millis(5));
    /// assert!(res.timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with nobody waiting.
    ///
    /// ```
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// static READY: Mutex<bool> = Mutex::new(false);
    /// static CHANGED: Condvar = Condvar::new();
    /// coio::run(|| {
    ///     let h = coio::spawn(|| drop(CHANGED.wait_while(READY.lock(), |r| !*r)));
    ///     *READY.lock() = true;
    ///     CHANGED.notify_all();
    ///     h.join().unwrap();
    /// });
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Condvar {
        Condvar {
            queued: AtomicBool::new(false),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// A condition variable with nobody waiting.
    #[cfg(loom)]
    pub fn new() -> Condvar {
        Condvar {
            queued: AtomicBool::new(false),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// Unlocks the guard's mutex, waits until notified, and locks the mutex
    /// again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let queue = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    /// coio::run(|| {
    ///     let q = queue.clone();
    ///     let producer = coio::spawn(move || {
    ///         q.0.lock().push(42);
    ///         q.1.notify_one();
    ///     });
    ///     let (m, cv) = &*queue;
    ///     let mut items = m.lock();
    ///     while items.is_empty() {
    ///         items = cv.wait(items);
    ///     }
    ///     assert_eq!(items.pop(), Some(42));
    ///     drop(items);
    ///     producer.join().unwrap();
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits; the mutex is not locked then.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// Waits (as [`wait`](Self::wait)) as long as `condition` holds for
    /// the value, which it checks first, with the mutex locked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let state = Arc::new((Mutex::new(0u32), Condvar::new()));
    /// coio::run(|| {
    ///     let s = state.clone();
    ///     let h = coio::spawn(move || {
    ///         for _ in 0..3 {
    ///             *s.0.lock() += 1;
    ///             s.1.notify_all();
    ///         }
    ///     });
    ///     let (m, cv) = &*state;
    ///     assert_eq!(*cv.wait_while(m.lock(), |n| *n < 3), 3);
    ///     h.join().unwrap();
    /// });
    /// ```
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// As [`wait`](Self::wait), but for at most `dur`; the result says
    /// whether the time ran out (the mutex is locked again either way).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(0), Condvar::new());
    /// // Nobody notifies: the wait times out, with the mutex locked again.
    /// let (guard, res) = cv.wait_timeout(m.lock(), Duration::from_millis(5));
    /// assert!(res.timed_out());
    /// assert!(m.is_locked());
    /// drop(guard);
    /// ```
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let (guard, timed_out) = self.wait_until(guard, super::deadline(dur));
        (guard, WaitTimeoutResult(timed_out))
    }

    /// As [`wait_while`](Self::wait_while), but for at most `dur` in all;
    /// times out if `condition` still holds then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let (m, cv) = (Mutex::new(0), Condvar::new());
    /// // Nobody changes the value: still 0 at the deadline.
    /// let (n, res) = cv.wait_timeout_while(m.lock(), Duration::from_millis(5), |n| *n == 0);
    /// assert!(res.timed_out());
    /// assert_eq!(*n, 0);
    /// ```
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult)
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = super::deadline(dur);
        loop {
            if !condition(&mut *guard) {
                return (guard, WaitTimeoutResult(false));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // As `Mutex::lock_timeout` (the guard is coio's: it may be
                // held across the yield).
                coop_spend();
                return (guard, WaitTimeoutResult(true));
            }
            guard = self.wait_until(guard, deadline).0;
        }
    }

    /// Wakes the oldest waiter, if any.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let slot = Arc::new((Mutex::new(None), Condvar::new()));
    /// coio::run(|| {
    ///     let s = slot.clone();
    ///     let waiter = coio::spawn(move || {
    ///         let value = *s.1.wait_while(s.0.lock(), |v| v.is_none());
    ///         value.unwrap()
    ///     });
    ///     *slot.0.lock() = Some(7);
    ///     slot.1.notify_one();
    ///     assert_eq!(waiter.join().unwrap(), 7);
    /// });
    /// ```
    #[inline]
    pub fn notify_one(&self) {
        if self.queued.load(SeqCst) {
            self.notify(false);
        }
    }

    /// Wakes every waiter.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::{Condvar, Mutex};
    ///
    /// let gate = Arc::new((Mutex::new(false), Condvar::new()));
    /// coio::run(|| {
    ///     let waiters: Vec<_> = (0..3)
    ///         .map(|_| {
    ///             let g = gate.clone();
    ///             coio::spawn(move || drop(g.1.wait_while(g.0.lock(), |open| !*open)))
    ///         })
    ///         .collect();
    ///     *gate.0.lock() = true;
    ///     gate.1.notify_all();
    ///     waiters.into_iter().for_each(|w| w.join().unwrap());
    /// });
    /// ```
    #[inline]
    pub fn notify_all(&self) {
        if self.queued.load(SeqCst) {
            self.notify(true);
        }
    }

    /// Claims the oldest entry (or all) with *done*, and wakes them (one
    /// after letting go of the queue lock; all while holding it).
    #[cold]
    fn notify(&self, all: bool) {
        let mut q = lock_queue(&self.queue);
        let mut claimed = q.claim(None, false);
        if all {
            while claimed.is_some() {
                drop(claimed);
                claimed = q.claim(None, false);
            }
        }
        if q.is_empty() {
            self.queued.store(false, Relaxed);
        }
        drop(q);
        drop(claimed);
    }

    /// The wait: returns the guard and whether it timed out.
    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex: &'a Mutex<T> = guard.lock;
        let blocker = Blocker::new(crate::runtime::dump::Wait::Condvar);
        {
            let mut q = lock_queue(&self.queue);
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after a claim finished (Done), or after we removed
            // the entry under this lock. No packet.
            unsafe { q.push(&blocker, 0, ptr::null_mut()) };
            // SeqCst, as the notifiers' load: the store is ordered before
            // our unlock of the mutex below.
            self.queued.store(true, SeqCst);
        }
        // Registered: now the mutex can go.
        drop(guard);
        let r = blocker.wait(deadline, true);
        let notified = matches!(r, Woken::Done(_));
        if !notified {
            let mut q = lock_queue(&self.queue);
            q.remove(&blocker);
            if q.is_empty() {
                self.queued.store(false, Relaxed);
            }
        }
        if r == Woken::Cancelled {
            park::unwind_cancelled();
        }
        match mutex.lock_raw(None) {
            Ok(()) => {}
            Err(Failed::Cancelled) => {
                if notified {
                    self.notify_one();
                }
                park::unwind_cancelled();
            }
            Err(Failed::TimedOut) => unreachable!("coio: a lock without deadline timed out"),
        }
        (mutex.guard(), !notified)
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
