//! [`Semaphore`]: counted permits, handed over in FIFO order.
//!
//! # State
//!
//! One word: the number of available permits times `PERMIT`, and `QUEUED`
//! (the wait queue has entries; changed only under the queue lock, where
//! it mirrors "the queue is not empty").
//!
//! # Protocol
//!
//! Invariant: while `QUEUED` is set, no permit is available. An acquire
//! takes a permit with one CAS if `QUEUED` is clear and a permit is there;
//! otherwise it queues: under the queue lock, a CAS sets `QUEUED` on a
//! state that has no permit (or takes the permit that has come back
//! meanwhile, if nobody is queued), and it pushes its entry.
//!
//! A release adds its permit with one CAS while `QUEUED` is clear. With
//! `QUEUED` set it takes the queue lock and claims the oldest waiter with
//! *done*: the permit passes to it without ever being available to
//! newcomers, so waiters are served in order. If every entry was of a
//! waiter that gave up (the queue is then empty), the permit is added and
//! `QUEUED` cleared in one CAS. Under the queue lock with `QUEUED` set the
//! state does not change (every other change needs `QUEUED` clear or the
//! queue lock), which is what makes the invariant hold.
//!
//! A waiter that times out or is cancelled removes its entry and clears
//! `QUEUED` if the queue is then empty. A waiter claimed in the meantime
//! owns the permit (the claim won the CAS on its blocker).

use std::fmt;
use std::ptr;
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};

use super::{Failed, QueueLock, lock_queue};
use crate::park::{self, Blocker, WaitQueue, Woken};
use crate::runtime::worker::coop_spend;

/// `state`: the wait queue has entries.
const QUEUED: usize = 1;
/// `state`: one available permit.
const PERMIT: usize = 2;

/// A counting semaphore for coroutines and threads; see the [module
/// docs](super) for waiting and cancellation.
///
/// Waiters are served in arrival order: a released permit goes to the
/// oldest waiter, never to a newcomer.
///
/// ```
/// use coio::sync::Semaphore;
///
/// let s = Semaphore::new(2);
/// let a = s.acquire();
/// let b = s.try_acquire().unwrap();
/// assert!(s.try_acquire().is_none());
/// drop(a);
/// assert_eq!(s.available_permits(), 1);
/// b.forget(); // gone for good
/// assert_eq!(s.available_permits(), 1);
/// ```
pub struct Semaphore {
    /// Available permits times `PERMIT`, and `QUEUED`.
    state: AtomicUsize,
    /// The waiters, oldest first.
    queue: QueueLock,
}

// A panic in a wait leaves nothing half-updated that a caller could see
// (no user data; the waiter's own entry is removed by its unwinding), as
// std's Semaphore is unwind-safe.
impl std::panic::UnwindSafe for Semaphore {}
impl std::panic::RefUnwindSafe for Semaphore {}

/// A permit of a [`Semaphore`]; given back when dropped.
///
/// ```
/// use coio::sync::Semaphore;
///
/// let s = Semaphore::new(1);
/// {
///     let _permit = s.acquire();
///     assert_eq!(s.available_permits(), 0);
/// } // given back here
/// assert_eq!(s.available_permits(), 1);
/// ```
#[must_use = "if unused the permit is given back at once"]
pub struct SemaphorePermit<'a> {
    /// Where the permit goes back.
    sem: &'a Semaphore,
}

impl Semaphore {
    /// The largest number of permits a semaphore can hold.
    ///
    /// ```
    /// use coio::sync::Semaphore;
    ///
    /// let s = Semaphore::new(Semaphore::MAX_PERMITS);
    /// assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS);
    /// ```
    pub const MAX_PERMITS: usize = usize::MAX / PERMIT;

    /// A semaphore with `permits` available permits.
    ///
    /// ```
    /// use coio::sync::Semaphore;
    ///
    /// // At most 2 connections open at a time.
    /// static CONNECTIONS: Semaphore = Semaphore::new(2);
    /// let a = CONNECTIONS.acquire();
    /// let b = CONNECTIONS.acquire();
    /// assert!(CONNECTIONS.try_acquire().is_none());
    /// drop((a, b));
    /// ```
    ///
    /// # Panics
    /// If `permits` exceeds [`MAX_PERMITS`](Self::MAX_PERMITS).
    #[cfg(not(loom))]
    pub const fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= Self::MAX_PERMITS,
            "coio::sync::Semaphore: too many permits"
        );
        Semaphore {
            state: AtomicUsize::new(permits * PERMIT),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// A semaphore with `permits` available permits.
    #[cfg(loom)]
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= Self::MAX_PERMITS,
            "coio::sync::Semaphore: too many permits"
        );
        Semaphore {
            state: AtomicUsize::new(permits * PERMIT),
            queue: QueueLock::new(WaitQueue::new()),
        }
    }

    /// Takes a permit, waiting for one if none is available or others
    /// wait already.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::time::Duration;
    /// use coio::sync::Semaphore;
    ///
    /// let (limit, running) = (Semaphore::new(2), AtomicUsize::new(0));
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         for _ in 0..6 {
    ///             s.spawn(|| {
    ///                 let _permit = limit.acquire(); // at most 2 hold one
    ///                 assert!(running.fetch_add(1, SeqCst) < 2);
    ///                 coio::sleep(Duration::from_millis(1));
    ///                 running.fetch_sub(1, SeqCst);
    ///             });
    ///         }
    ///     })
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    #[inline]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        if !self.try_acquire_fast() {
            super::no_deadline(self.acquire_slow(None));
        }
        SemaphorePermit { sem: self }
    }

    /// Takes a permit if one is available and nobody waits.
    ///
    /// ```
    /// use coio::sync::Semaphore;
    ///
    /// let s = Semaphore::new(1);
    /// let p = s.try_acquire().unwrap();
    /// assert!(s.try_acquire().is_none());
    /// drop(p);
    /// assert!(s.try_acquire().is_some());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_fast()
            .then(|| SemaphorePermit { sem: self })
    }

    /// As [`acquire`](Self::acquire), but gives up after `dur` (None).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::Semaphore;
    ///
    /// let s = Semaphore::new(1);
    /// let held = s.acquire();
    /// assert!(s.acquire_timeout(Duration::from_millis(5)).is_none());
    /// drop(held);
    /// assert!(s.acquire_timeout(Duration::from_millis(5)).is_some());
    /// ```
    ///
    /// # Panics
    /// As [`acquire`](Self::acquire).
    pub fn acquire_timeout(&self, dur: Duration) -> Option<SemaphorePermit<'_>> {
        if self.try_acquire_fast() {
            return Some(SemaphorePermit { sem: self });
        }
        match self.acquire_slow(super::deadline(dur)) {
            Ok(()) => Some(SemaphorePermit { sem: self }),
            Err(Failed::TimedOut) => {
                // As `Mutex::lock_timeout`.
                coop_spend();
                None
            }
            Err(Failed::Cancelled) => park::unwind_cancelled(),
        }
    }

    /// The number of available permits (stale the moment it returns).
    ///
    /// ```
    /// use coio::sync::Semaphore;
    ///
    /// let s = Semaphore::new(3);
    /// let p = s.acquire();
    /// assert_eq!(s.available_permits(), 2);
    /// drop(p);
    /// assert_eq!(s.available_permits(), 3);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.load(Relaxed) / PERMIT
    }

    /// Adds `n` permits: each goes to the oldest waiter, if any, or
    /// becomes available.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::Semaphore;
    ///
    /// let s = Arc::new(Semaphore::new(0));
    /// coio::run(|| {
    ///     let s2 = s.clone();
    ///     let waiter = coio::spawn(move || s2.acquire().forget());
    ///     s.add_permits(1); // goes to the waiter
    ///     waiter.join().unwrap();
    /// });
    /// assert_eq!(s.available_permits(), 0);
    /// ```
    ///
    /// # Panics
    /// If the number of permits would exceed
    /// [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn add_permits(&self, mut n: usize) {
        while n > 0 {
            let s = self.state.load(Relaxed);
            if s & QUEUED != 0 {
                // One at a time to the waiters, oldest first.
                self.release_slow();
                n -= 1;
                continue;
            }
            let new = match n.checked_mul(PERMIT).and_then(|a| s.checked_add(a)) {
                Some(new) => new,
                None => too_many_permits(),
            };
            if self
                .state
                .compare_exchange(s, new, Release, Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The fast path of taking a permit: one CAS, if one is available
    /// (which implies that nobody is queued).
    #[inline]
    fn try_acquire_fast(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while s >= PERMIT {
            match self
                .state
                .compare_exchange_weak(s, s - PERMIT, Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Queues and waits for a permit (module docs).
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, deadline: Option<Instant>) -> Result<(), Failed> {
        let blocker = Blocker::new(crate::runtime::dump::Wait::Semaphore);
        {
            let mut q = lock_queue(&self.queue);
            let mut s = self.state.load(Relaxed);
            loop {
                // A permit is only available while nobody is queued.
                if s >= PERMIT {
                    match self.state.compare_exchange(s, s - PERMIT, Acquire, Relaxed) {
                        Ok(_) => return Ok(()),
                        Err(now) => s = now,
                    }
                    continue;
                }
                // No permit: a release, a later RMW of this word, sees
                // `QUEUED` and hands its permit to the queue.
                match self.state.compare_exchange(s, s | QUEUED, AcqRel, Relaxed) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after a claim finished, or after we removed the
            // entry under this lock. No packet.
            unsafe { q.push(&blocker, 0, ptr::null_mut()) };
        }
        match blocker.wait(deadline, true) {
            // A release handed us its permit.
            Woken::Done(_) => Ok(()),
            Woken::Retry(_) => unreachable!("coio: Semaphore waiters are claimed with done"),
            r @ (Woken::TimedOut | Woken::Cancelled) => {
                let mut q = lock_queue(&self.queue);
                q.remove(&blocker);
                if q.is_empty() {
                    // No permit is available while `QUEUED` is set, so
                    // there is none to hand to anyone here.
                    self.state.fetch_and(!QUEUED, Relaxed);
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

    /// Gives one permit back: to the oldest waiter, or to the count.
    #[inline]
    fn release(&self) {
        let mut s = self.state.load(Relaxed);
        while s & QUEUED == 0 {
            let new = match s.checked_add(PERMIT) {
                Some(n) => n,
                None => too_many_permits(),
            };
            match self.state.compare_exchange_weak(s, new, Release, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
        self.release_slow();
    }

    /// Hands a permit to the oldest waiter (`QUEUED` is set).
    #[cold]
    #[inline(never)]
    fn release_slow(&self) {
        let mut q = lock_queue(&self.queue);
        if self.state.load(Relaxed) & QUEUED == 0 {
            // The queue emptied before we got its lock (all gave up).
            drop(q);
            return self.release();
        }
        match q.claim(None, false) {
            Some(c) => {
                if q.is_empty() {
                    self.state.fetch_and(!QUEUED, Relaxed);
                }
                drop(q);
                // The claim and `DONE` publish our writes to the new owner.
                drop(c);
            }
            None => {
                // Everyone gave up (and `claim` dropped them): the permit
                // becomes available, in one RMW with the end of `QUEUED`.
                // The state held no permit (invariant), so this cannot
                // overflow.
                self.state.fetch_add(PERMIT - QUEUED, Release);
            }
        }
    }
}

#[cold]
fn too_many_permits() -> ! {
    panic!("coio::sync::Semaphore: too many permits")
}

impl SemaphorePermit<'_> {
    /// Drops the permit without giving it back: the semaphore has one
    /// permit less for good.
    ///
    /// ```
    /// use coio::sync::Semaphore;
    ///
    /// let s = Semaphore::new(2);
    /// s.acquire().forget(); // one permit less, for good
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
