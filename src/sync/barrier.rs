//! [`Barrier`]: `n` parties meet, then all go on; reusable.
//!
//! # Protocol
//!
//! Everything is under one lock: the number of arrivals in the current
//! generation, the generation's number, and the wait queue. An arrival
//! that is not the `n`-th pushes its entry and waits; the `n`-th is the
//! generation's leader: it resets the count, starts the next generation and
//! claims every entry with *done* (all of them belong to its generation: a
//! later arrival pushes only after the reset, under the same lock). So each
//! generation has exactly one leader, and a waiter returns only when its
//! own generation is complete.
//!
//! A waiting coroutine that is cancelled withdraws its arrival (under the
//! lock: if its generation is still the current one, the count goes back
//! down, so that the barrier waits for another party in its place) and
//! unwinds. If its generation completed first, the waiter is released
//! normally (and unwinds at its next blocking point): whether the leader's
//! claim won the race with the cancellation, or the cancellation had
//! already given up the entry (the leader's claim of it failed) but not
//! yet taken the lock, so that the leader counted this arrival and went
//! on. (Unwinding then would make a generation of `n - 1` parties.)

use std::fmt;
use std::ptr;

use crate::park::{self, Blocker, Lock as RawLock, LockGuard, WaitQueue, Woken};

/// A barrier for `n` coroutines or threads, after std's: each call of
/// [`wait`](Self::wait) blocks until `n` calls have been made in the
/// current generation, then all return and the next generation begins.
/// One of the `n` (the last to arrive) is told it is the leader. See the
/// [module docs](super) for waiting and cancellation.
///
/// ```
/// use std::sync::Arc;
/// use coio::sync::Barrier;
///
/// let b = Arc::new(Barrier::new(3));
/// let leaders: usize = coio::run(|| {
///     let hs: Vec<_> = (0..3)
///         .map(|_| {
///             let b = b.clone();
///             coio::spawn(move || b.wait().is_leader() as usize)
///         })
///         .collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum()
/// });
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    /// Arrivals, generation and waiters.
    inner: RawLock<Inner>,
    /// Parties per generation (at least 1).
    n: usize,
}

// A panic in a wait leaves nothing half-updated that a caller could see
// (no user data; the waiter's own entry is removed by its unwinding), as
// std's Barrier is unwind-safe.
impl std::panic::UnwindSafe for Barrier {}
impl std::panic::RefUnwindSafe for Barrier {}

/// The lock-protected part of a [`Barrier`].
struct Inner {
    /// Arrivals so far in the current generation (less than `n`).
    count: usize,
    /// The current generation's number (wrapping).
    generation: usize,
    /// The waiting arrivals of the current generation.
    queue: WaitQueue,
}

/// What [`Barrier::wait`] returns: whether this party was the leader.
///
/// ```
/// use coio::sync::{Barrier, BarrierWaitResult};
///
/// let b = Barrier::new(2);
/// let results: Vec<BarrierWaitResult> = coio::run(|| {
///     coio::scope(|s| {
///         let hs: Vec<_> = (0..2).map(|_| s.spawn(|| b.wait())).collect();
///         hs.into_iter().map(|h| h.join().unwrap()).collect()
///     })
/// });
/// assert_eq!(results.iter().filter(|r| r.is_leader()).count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// True for exactly one party of each generation (the last to arrive).
    ///
    /// ```
    /// use coio::sync::Barrier;
    ///
    /// let b = Barrier::new(2);
    /// let leaders = coio::run(|| {
    ///     coio::scope(|s| {
    ///         let other = s.spawn(|| b.wait().is_leader() as usize);
    ///         b.wait().is_leader() as usize + other.join().unwrap()
    ///     })
    /// });
    /// assert_eq!(leaders, 1);
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` parties (0 behaves as 1: every wait returns at
    /// once, as leader).
    ///
    /// ```
    /// use coio::sync::Barrier;
    ///
    /// let alone = Barrier::new(1);
    /// assert!(alone.wait().is_leader()); // returns at once
    /// ```
    #[cfg(not(loom))]
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            inner: RawLock::new(Inner {
                count: 0,
                generation: 0,
                queue: WaitQueue::new(),
            }),
            n: if n == 0 { 1 } else { n },
        }
    }

    /// A barrier for `n` parties (0 behaves as 1).
    #[cfg(loom)]
    pub fn new(n: usize) -> Barrier {
        Barrier {
            inner: RawLock::new(Inner {
                count: 0,
                generation: 0,
                queue: WaitQueue::new(),
            }),
            n: n.max(1),
        }
    }

    /// Arrives at the barrier and waits until all `n` parties of this
    /// generation have arrived.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use coio::sync::Barrier;
    ///
    /// let (b, arrived) = (Barrier::new(3), AtomicUsize::new(0));
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         for _ in 0..3 {
    ///             s.spawn(|| {
    ///                 arrived.fetch_add(1, SeqCst);
    ///                 b.wait();
    ///                 assert_eq!(arrived.load(SeqCst), 3); // all three arrived
    ///             });
    ///         }
    ///     })
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits; its arrival is withdrawn. Unless its
    /// generation completed first: it then returns (and unwinds at its
    /// next blocking point).
    pub fn wait(&self) -> BarrierWaitResult {
        let blocker = Blocker::new(crate::runtime::dump::Wait::Barrier);
        let generation;
        {
            let mut inner = self.lock();
            inner.count += 1;
            if inner.count == self.n {
                inner.count = 0;
                inner.generation = inner.generation.wrapping_add(1);
                while let Some(c) = inner.queue.claim(None, false) {
                    drop(c);
                }
                return BarrierWaitResult(true);
            }
            generation = inner.generation;
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after the leader's claim finished, or after we
            // removed the entry under this lock. No packet.
            unsafe { inner.queue.push(&blocker, 0, ptr::null_mut()) };
        }
        match blocker.wait(None, true) {
            Woken::Done(_) => BarrierWaitResult(false),
            Woken::Cancelled => {
                #[cfg(all(test, not(loom)))]
                tests::before_withdraw();
                let mut inner = self.lock();
                inner.queue.remove(&blocker);
                if inner.generation != generation {
                    // Completed, counting this arrival (see the module
                    // docs).
                    return BarrierWaitResult(false);
                }
                inner.count -= 1;
                drop(inner);
                park::unwind_cancelled()
            }
            r => unreachable!("coio: a barrier wait ended with {r:?}"),
        }
    }

    /// The lock of the state (the parking core's spin lock: nothing under
    /// it waits or runs user code).
    fn lock(&self) -> LockGuard<'_, Inner> {
        self.inner.lock()
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;

    use super::Barrier;

    /// Run by a cancelled waiter between giving up its entry and taking
    /// the lock (the race's window, a few instructions wide otherwise).
    static HOOK: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(None);

    pub(super) fn before_withdraw() {
        let hook = HOOK.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// The leader arrives in the window: it counts the cancelled waiter's
    /// arrival and goes on, so the waiter is released as a party of the
    /// generation, not unwound (it unwound, and the generation had had
    /// one party fewer than `n`; found by a review with a delay injected
    /// there).
    #[test]
    fn a_generation_completed_in_the_cancel_window_releases_the_waiter() {
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        let b = Arc::new(Barrier::new(2));
        let leader_b = b.clone();
        *HOOK.lock().unwrap() = Some(Box::new(move || {
            // A plain thread, waited for by blocking this worker (a
            // cancelled coroutine cannot wait otherwise).
            let leader = std::thread::spawn(move || leader_b.wait().is_leader());
            assert!(leader.join().unwrap(), "the second party leads");
        }));
        let waiter_b = b.clone();
        let r = rt.block_on(move || {
            let h = crate::spawn(move || waiter_b.wait().is_leader());
            while b.lock().queue.is_empty() {
                crate::yield_now();
            }
            h.cancel();
            h.join()
        });
        assert_eq!(r.ok(), Some(false), "the waiter was counted: not unwound");
    }
}
