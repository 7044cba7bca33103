//! [`Mutex`]: a mutual exclusion lock after Go's `sync.Mutex`.
//!
//! # State
//!
//! One word, `state`, with four bits:
//!
//! * `LOCKED`: somebody holds the lock.
//! * `QUEUED`: the wait queue has entries. Changed only under the queue's
//!   lock, where it is kept equal to "the queue is not empty" whenever that
//!   lock is let go (an entry whose waiter gave up counts until the waiter
//!   removes it).
//! * `WOKEN`: a queued waiter has been woken to try again and has not yet
//!   come back to the state word (to take the lock, or to queue again). At
//!   most one such waiter exists: an unlock wakes one only if `WOKEN` is
//!   clear, and sets it in the same CAS that releases the lock.
//! * `HANDOFF`: starvation mode. Set only together with (or while) `LOCKED`,
//!   so `HANDOFF` implies `LOCKED`: the unlock of handoff mode does not clear
//!   `LOCKED`, it gives the lock to the oldest waiter.
//!
//! # Fast paths
//!
//! `lock` is one CAS from 0 to `LOCKED`, `unlock` one CAS from `LOCKED` to
//! 0. Anything else (a queue, a woken waiter, handoff mode) goes to the
//! slow paths, which take their values from the failed CAS.
//!
//! # Normal mode
//!
//! A locker that finds the lock free takes it, even when others are queued
//! (barging: the lock does not wait for a sleeper to wake up). One that
//! finds it held spins briefly, with backoff, as long as nobody is
//! queued (the holder is likely running on another worker and about to
//! unlock; parking and waking would cost far more; see `SPIN_ROUNDS` for
//! the numbers), then queues. (A coroutine of a one-worker runtime does
//! not spin: a holder on the same worker cannot run meanwhile.) To queue,
//! it pushes its entry under the queue lock and sets `QUEUED` by a CAS that
//! also checks `LOCKED` (the `QUEUED` re-check). If the lock was free by
//! then, it takes it instead of sleeping, so no unlock can slip between its
//! look at the lock and its entry in the queue: an unlock is a later RMW of
//! the same word and sees `QUEUED`.
//!
//! An unlock that sees `QUEUED` and not `WOKEN` sets `WOKEN` while it
//! releases, then claims the oldest entry with *retry* (see `park`). The
//! woken waiter spins for the lock again (it owns `WOKEN`, so unlocks do not
//! wake others meanwhile); if it loses to a barger it queues again at the
//! *front*, keeping its turn, and clears `WOKEN` in the CAS that sets
//! `QUEUED` (the barger now holds the lock, and its unlock wakes the next).
//!
//! # Handoff mode
//!
//! A waiter that has been waiting for more than 1 ms in all, and has to
//! queue again, sets `HANDOFF`. From then on, newcomers queue instead of
//! barging (the lock is never free), and an unlock claims the oldest
//! waiter with *done*: the lock stays `LOCKED` and now belongs to that
//! waiter. The mode ends when the queue empties (the unlock that claims the
//! last entry, or the last waiter that gives up, clears it), and, as in Go,
//! when the waiter given the lock had waited less than 1 ms itself: the
//! starvation is over.
//!
//! # Giving up
//!
//! A waiter that times out or is cancelled removes its entry under the
//! queue lock and clears `QUEUED` (and `HANDOFF`) if the queue is then
//! empty. It never owns `WOKEN` at that point: a claimed waiter cannot time
//! out (the claim wins), and a woken waiter gives `WOKEN` back in the CAS
//! that queues it again, or that gives up before queueing.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr;
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};

use super::{Failed, QueueLock, lock_queue};
use crate::park::{self, Blocker, Woken};
use crate::runtime::worker::coop_spend;

/// `state`: the lock is held.
const LOCKED: usize = 1;
/// `state`: a woken waiter is on its way back (at most one).
const WOKEN: usize = 2;
/// `state`: starvation mode; unlocks hand the lock to the oldest waiter.
const HANDOFF: usize = 4;
/// `state`: the wait queue has entries.
const QUEUED: usize = 8;

/// How long a waiter waits before it turns on handoff mode.
const STARVATION: Duration = Duration::from_millis(1);

/// Rounds of spinning before a locker queues; round `i` spins
/// `2^(MIN_BACKOFF + i)` times (`spin_loop`), up to `2^MAX_BACKOFF`: here
/// (a pause is about 37 ns on this project's machine) a look every 2.4 µs
/// then every 4.7 µs, 45 µs in all.
///
/// Why so long between looks: a holder that relocks in a loop on another
/// worker has the lock free for a few nanoseconds at a time, and each look
/// costs it a cache miss. Frequent looks make the lock bounce between the
/// workers at every other operation (measured, 8 coroutines on 2 workers
/// incrementing one counter: 12 ms for a million increments, starting at
/// one pause; 5.4 ms with these numbers, where each worker keeps the lock
/// for microseconds at a time; Go's `sync.Mutex` takes 5 to 16 ms). Why so
/// many rounds: a spinner that gives up queues, and then every locker
/// queues and every unlock must wake, which costs far more.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 10;
/// Under loom, one round (one more look at the state): enough to model
/// the spin path.
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 1;
/// The first round of spinning, as a power of two.
#[cfg(not(loom))]
const MIN_BACKOFF: u32 = 6;
/// The longest round of spinning, as a power of two.
#[cfg(not(loom))]
const MAX_BACKOFF: u32 = 7;

/// A mutual exclusion lock for coroutines and threads, after Go's
/// `sync.Mutex`; see the [module docs](super) for waiting, cancellation and
/// the absence of poisoning.
///
/// Locking and unlocking an uncontended mutex are one atomic operation
/// each. A contended locker spins briefly, then waits in a FIFO queue. The
/// lock is not strictly fair: a locker that finds it free takes it even
/// if others wait (which keeps it fast under contention), but a waiter
/// that has waited for over a millisecond switches it to handoff mode,
/// where each unlock hands the lock to the oldest waiter, so no waiter
/// starves.
///
/// ```
/// use coio::sync::Mutex;
///
/// let m = Mutex::new(vec![1]);
/// m.lock().push(2);
/// assert_eq!(*m.lock(), [1, 2]);
/// assert!(m.try_lock().is_some());
/// ```
pub struct Mutex<T: ?Sized> {
    /// `LOCKED`, `WOKEN`, `HANDOFF`, `QUEUED` (module docs).
    state: AtomicUsize,
    /// The waiters, oldest first; `QUEUED` mirrors whether it is empty.
    queue: QueueLock,
    /// The protected value, accessed only through a guard (or `&mut`).
    data: UnsafeCell<T>,
}

// SAFETY: the value is reached from `&Mutex` only through a guard, and at
// most one guard exists at a time (`LOCKED`), so sharing the mutex moves
// exclusive access to `T` between threads: `T: Send` is what that needs.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// The holder's access to the value of a [`Mutex`]; unlocks when dropped
/// (also when the holder unwinds from a panic or a cancellation).
///
/// It can be sent to another coroutine or thread and unlocked there.
///
/// ```
/// use coio::sync::Mutex;
///
/// let m = Mutex::new(vec![1, 2]);
/// {
///     let mut guard = m.lock();
///     guard.push(3); // the value, through `DerefMut`
///     assert!(m.is_locked());
/// } // unlocked here
/// assert!(!m.is_locked());
/// assert_eq!(m.lock().len(), 3);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    /// The locked mutex.
    pub(super) lock: &'a Mutex<T>,
    /// The guard is an exclusive borrow of the value: `Send` iff `T: Send`.
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: through a shared `&MutexGuard` only `&T` can be reached (`Deref`);
// `T: Sync` makes that shareable. (Without this impl the guard would need
// `T: Send` too, as `&Mutex<T>` does.)
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    ///
    /// ```
    /// use coio::sync::Mutex;
    ///
    /// static HITS: Mutex<u32> = Mutex::new(0);
    /// *HITS.lock() += 1;
    /// assert_eq!(*HITS.lock(), 1);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(crate::park::WaitQueue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked mutex holding `value` (loom's atomics are not const).
    #[cfg(loom)]
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(crate::park::WaitQueue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns its value.
    ///
    /// ```
    /// use coio::sync::Mutex;
    ///
    /// let m = Mutex::new(String::from("a"));
    /// m.lock().push('b');
    /// assert_eq!(m.into_inner(), "ab");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting until it is free (a coroutine suspends, a
    /// thread parks). Locking a mutex the caller already holds deadlocks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::Mutex;
    ///
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// coio::run(|| {
    ///     let hs: Vec<_> = (0..3)
    ///         .map(|i| {
    ///             let log = log.clone();
    ///             coio::spawn(move || log.lock().push(i))
    ///         })
    ///         .collect();
    ///     hs.into_iter().for_each(|h| h.join().unwrap());
    /// });
    /// assert_eq!(log.lock().len(), 3);
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits (the lock is then not taken).
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            super::no_deadline(self.lock_slow(None));
        }
        self.guard()
    }

    /// Locks the mutex if it is free now; never waits. (In normal mode it
    /// takes a free lock even while others wait, as `lock` does.)
    ///
    /// ```
    /// use coio::sync::Mutex;
    ///
    /// let m = Mutex::new(1);
    /// let held = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// assert_eq!(*m.try_lock().unwrap(), 1);
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut s = match self.state.compare_exchange(0, LOCKED, Acquire, Relaxed) {
            Ok(_) => return Some(self.guard()),
            Err(s) => s,
        };
        while s & LOCKED == 0 {
            match self
                .state
                .compare_exchange_weak(s, s | LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return Some(self.guard()),
                Err(now) => s = now,
            }
        }
        None
    }

    /// As [`lock`](Self::lock), but gives up after `dur` (None).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::Mutex;
    ///
    /// let m = Mutex::new(0);
    /// let held = m.lock();
    /// assert!(m.lock_timeout(Duration::from_millis(5)).is_none());
    /// drop(held);
    /// assert!(m.lock_timeout(Duration::from_millis(5)).is_some());
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    pub fn lock_timeout(&self, dur: Duration) -> Option<MutexGuard<'_, T>> {
        if self
            .state
            .compare_exchange(0, LOCKED, Acquire, Relaxed)
            .is_ok()
        {
            return Some(self.guard());
        }
        match self.lock_slow(super::deadline(dur)) {
            Ok(()) => Some(self.guard()),
            Err(Failed::TimedOut) => {
                // As a timed-out channel operation: a loop of zero
                // timeouts lets the worker's other coroutines (the
                // holder's) run.
                coop_spend();
                None
            }
            Err(Failed::Cancelled) => park::unwind_cancelled(),
        }
    }

    /// Whether somebody holds the lock (stale the moment it returns).
    ///
    /// ```
    /// use coio::sync::Mutex;
    ///
    /// let m = Mutex::new(());
    /// assert!(!m.is_locked());
    /// let guard = m.lock();
    /// assert!(m.is_locked());
    /// drop(guard);
    /// ```
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Relaxed) & LOCKED != 0
    }

    /// The value, through an exclusive borrow of the mutex (no locking).
    ///
    /// ```
    /// use coio::sync::Mutex;
    ///
    /// let mut m = Mutex::new(0);
    /// *m.get_mut() = 10; // `&mut` proves nobody holds the lock
    /// assert_eq!(*m.lock(), 10);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// A guard for the lock the caller has just taken.
    #[inline]
    pub(super) fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// Locks, for a caller that has taken the lock's guard apart (the
    /// condition variable): the lock is held when this returns `Ok`.
    #[inline]
    pub(super) fn lock_raw(&self, deadline: Option<Instant>) -> Result<(), Failed> {
        if self
            .state
            .compare_exchange(0, LOCKED, Acquire, Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        self.lock_slow(deadline)
    }

    /// The slow path of locking (module docs): spin, then queue and wait,
    /// until the lock is taken or handed over, or the wait gives up.
    #[cold]
    #[inline(never)]
    fn lock_slow(&self, deadline: Option<Instant>) -> Result<(), Failed> {
        // Woken with retry: this waiter owns `WOKEN` until its next CAS.
        let mut awoke = false;
        // When this waiter first queued.
        let mut since: Option<Instant> = None;
        // Rounds of spinning done (all of them if spinning cannot help).
        let mut spins = if may_spin() { 0 } else { SPIN_ROUNDS };
        loop {
            let s = self.state.load(Relaxed);
            if s & LOCKED == 0 {
                let new = (s | LOCKED) & if awoke { !WOKEN } else { !0 };
                if self
                    .state
                    .compare_exchange_weak(s, new, Acquire, Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            // Held. Spin while that may pay: nobody is queued (or we are
            // the woken waiter, whose turn it is), not in handoff mode.
            if spins < SPIN_ROUNDS && s & HANDOFF == 0 && (awoke || s & QUEUED == 0) {
                backoff(spins);
                spins += 1;
                continue;
            }
            let start = *since.get_or_insert_with(Instant::now);
            let blocker = Blocker::new(crate::runtime::dump::Wait::Mutex);
            {
                let mut q = lock_queue(&self.queue);
                let mut s = self.state.load(Relaxed);
                loop {
                    if s & LOCKED == 0 {
                        // Released meanwhile: take it rather than sleep.
                        let new = (s | LOCKED) & if awoke { !WOKEN } else { !0 };
                        match self.state.compare_exchange(s, new, Acquire, Relaxed) {
                            Ok(_) => return Ok(()),
                            Err(now) => s = now,
                        }
                        continue;
                    }
                    let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                    let mut new = s & if awoke { !WOKEN } else { !0 };
                    if !timed_out {
                        new |= QUEUED;
                        if awoke && starving(start) {
                            new |= HANDOFF;
                        }
                    }
                    // LOCKED is set in `s`: the holder's unlock, a later
                    // RMW of this word, will see `QUEUED` (or, if we give
                    // up, the `WOKEN` we give back).
                    match self.state.compare_exchange(s, new, AcqRel, Relaxed) {
                        Ok(_) if timed_out => return Err(Failed::TimedOut),
                        Ok(_) => break,
                        Err(now) => s = now,
                    }
                }
                // SAFETY: the blocker stays on this stack until the wait
                // below returns, which is after a claim finished (Done,
                // Retry) or after we removed the entry under this lock.
                // Mutex entries carry no packet.
                unsafe {
                    if awoke {
                        q.push_front(&blocker, 0, ptr::null_mut());
                    } else {
                        q.push(&blocker, 0, ptr::null_mut());
                    }
                }
            }
            match blocker.wait(deadline, true) {
                Woken::Done(_) => {
                    // Handed over in handoff mode: the lock is ours. If we
                    // did not wait long, nobody starves any more.
                    if !starving(start) {
                        self.state.fetch_and(!HANDOFF, Relaxed);
                    }
                    return Ok(());
                }
                Woken::Retry(_) => {
                    awoke = true;
                    spins = if may_spin() { 0 } else { SPIN_ROUNDS };
                }
                r @ (Woken::TimedOut | Woken::Cancelled) => {
                    let mut q = lock_queue(&self.queue);
                    q.remove(&blocker);
                    if q.is_empty() {
                        self.state.fetch_and(!(QUEUED | HANDOFF), Relaxed);
                    }
                    drop(q);
                    return Err(if r == Woken::TimedOut {
                        Failed::TimedOut
                    } else {
                        Failed::Cancelled
                    });
                }
            }
        }
    }

    /// Unlocks (the guard's drop, and the condition variable's wait).
    ///
    /// # Safety
    /// The caller holds the lock and gives it up (its guard is gone).
    #[inline]
    pub(super) unsafe fn unlock(&self) {
        if let Err(s) = self.state.compare_exchange(LOCKED, 0, Release, Relaxed) {
            self.unlock_slow(s);
        }
    }

    /// The slow path of unlocking, from state `s` (module docs).
    #[inline(never)]
    fn unlock_slow(&self, mut s: usize) {
        let wake = loop {
            if s & HANDOFF != 0 {
                return self.hand_off();
            }
            let wake = s & (QUEUED | WOKEN) == QUEUED;
            let new = (s & !LOCKED) | if wake { WOKEN } else { 0 };
            match self.state.compare_exchange_weak(s, new, Release, Relaxed) {
                Ok(_) => break wake,
                Err(now) => s = now,
            }
        };
        if wake {
            self.wake_one();
        }
    }

    /// Wakes the oldest waiter to try again, after an unlock that set
    /// `WOKEN` for it.
    fn wake_one(&self) {
        let mut q = lock_queue(&self.queue);
        let claimed = q.claim(None, true);
        let mut clear = 0;
        if claimed.is_none() {
            // Every entry was of a waiter that gave up (and `claim` dropped
            // them): nobody to wake, give `WOKEN` back. A waiter that
            // queues after this sees it clear.
            clear |= WOKEN;
        }
        if q.is_empty() {
            clear |= QUEUED | HANDOFF;
        }
        if clear != 0 {
            self.state.fetch_and(!clear, Relaxed);
        }
        drop(q);
        // Wakes the waiter (outside the queue lock: it cannot give up any
        // more, the claim won).
        drop(claimed);
    }

    /// Unlocks in handoff mode: the oldest waiter gets the lock, which stays
    /// `LOCKED`; with nobody left to take it, it is released and the mode
    /// ends.
    #[cold]
    fn hand_off(&self) {
        let mut q = lock_queue(&self.queue);
        match q.claim(None, false) {
            Some(claimed) => {
                if q.is_empty() {
                    self.state.fetch_and(!(QUEUED | HANDOFF), Relaxed);
                }
                drop(q);
                // The claim (AcqRel) and the `DONE` store (Release) publish
                // our writes to the new holder.
                drop(claimed);
            }
            None => {
                // `claim` dropped every (given-up) entry: the queue is empty.
                self.state.fetch_and(!(LOCKED | QUEUED | HANDOFF), Release);
            }
        }
    }
}

/// Whether spinning may see the lock released: not in a coroutine of a
/// runtime with a single worker, where a holder that is a coroutine of the
/// same runtime is suspended (we are running) and cannot release it until
/// we suspend.
#[inline]
fn may_spin() -> bool {
    match crate::runtime::worker::coroutine_local() {
        Some(l) => l.shared.remotes.len() > 1,
        None => true,
    }
}

/// Whether a waiter that first queued at `start` has waited long enough to
/// ask for handoff mode. Under loom (no clock in the model) every waiter
/// woken once does, so that the models reach the mode.
#[inline]
fn starving(start: Instant) -> bool {
    if cfg!(loom) {
        let _ = start;
        return true;
    }
    start.elapsed() > STARVATION
}

/// One round of spinning: `2^(MIN_BACKOFF + round)` pause instructions,
/// at most `2^MAX_BACKOFF`. Under loom, nothing: the spin's next load of the state
/// is the model's scheduling point (a yield would tell loom to run the
/// others first, hiding the interleavings where the spinner acts while
/// the holder still holds).
#[inline]
fn backoff(round: u32) {
    #[cfg(loom)]
    let _ = round;
    #[cfg(not(loom))]
    for _ in 0..1u32 << (MIN_BACKOFF + round).min(MAX_BACKOFF) {
        std::hint::spin_loop();
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its lock is held, and this is
        // its end.
        unsafe { self.lock.unlock() }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no `&mut` to the value exists
        // elsewhere while it lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and this borrows the guard
        // exclusively: this is the only access to the value.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}
