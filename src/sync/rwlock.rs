//! [`RwLock`]: a reader-writer lock that hands over in FIFO order.
//!
//! # State
//!
//! One word: `WRITER` (a writer holds the lock), `QUEUED` (the wait queue
//! has entries; changed only under the queue lock, where it mirrors "the
//! queue is not empty") and the number of readers holding the lock, in
//! units of `READER`.
//!
//! # Protocol
//!
//! While nobody is queued, the lock is taken by one CAS: a reader adds
//! `READER` if there is no `WRITER`, a writer goes from 0 to `WRITER`.
//! Otherwise the locker queues: under the queue lock it sets `QUEUED` by a
//! CAS that also checks that the lock is still unavailable to it (or takes
//! the lock, if `QUEUED` was clear and the lock has become available), and
//! pushes its entry (operation `READ` or `WRITE`).
//!
//! Once `QUEUED` is set, the fast paths fail for everyone: newcomers queue
//! behind the waiters, and the lock is only *handed over*, by
//! [`dispatch`](RwLock::dispatch) under the queue lock: when the lock is
//! free, the oldest waiter gets it if it is a writer; when no writer holds
//! it, the run of consecutive readers at the front get it together. Each
//! is claimed with *done* after the state counts it as a holder. So a
//! writer waits only for the holders and the waiters before it, and
//! readers arriving after a waiting writer do not overtake it: no writer
//! starves, and no reader either.
//!
//! Who dispatches: a writer's unlock that finds `QUEUED` (its CAS from
//! `WRITER` to 0 fails), a writer's downgrade that finds it (which counts
//! itself a reader and drops `WRITER` under the queue lock first, so the
//! readers at the front join it), the last reader's unlock (its decrement returns
//! exactly one `READER` plus `QUEUED`), and a waiter that gives up (its
//! departure may unblock the entries behind it, e.g. readers behind a
//! writer that timed out). Under the queue lock with `QUEUED` set, the
//! state only changes by those unlocks (readers decrement, a writer's
//! unlock waits for the queue lock), so dispatch's view is stable but for
//! readers leaving, which is why the last of them dispatches.

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
use crate::park::{self, Blocker, WaitQueue, Woken};
use crate::runtime::worker::coop_spend;

/// `state`: a writer holds the lock.
const WRITER: usize = 1;
/// `state`: the wait queue has entries.
const QUEUED: usize = 2;
/// `state`: one reader holding the lock.
const READER: usize = 4;

/// Entry operation: a reader.
const READ: usize = 0;
/// Entry operation: a writer.
const WRITE: usize = 1;

/// A reader-writer lock for coroutines and threads: any number of readers
/// or one writer; see the [module docs](super) for waiting, cancellation
/// and the absence of poisoning.
///
/// Uncontended, `read` and `write` are one CAS each. Once anybody waits,
/// the lock is handed over in arrival order (a writer alone, or a run of
/// consecutive readers together), so neither writers nor readers starve.
/// Taking a read lock while holding one can therefore deadlock if a writer
/// queued in between, as with std's.
///
/// ```
/// use coio::sync::RwLock;
///
/// let l = RwLock::new(5);
/// {
///     let (a, b) = (l.read(), l.read());
///     assert_eq!(*a + *b, 10);
///     assert!(l.try_write().is_none());
/// }
/// *l.write() += 1;
/// assert_eq!(l.into_inner(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    /// `WRITER`, `QUEUED` and the reader count (module docs).
    state: AtomicUsize,
    /// The waiters, oldest first, with operation `READ` or `WRITE`.
    queue: QueueLock,
    /// The protected value.
    data: UnsafeCell<T>,
}

// SAFETY: `&RwLock` gives `&T` to several readers at once (T: Sync) and
// `&mut T` to one writer, possibly on another thread than the one that
// made the value (T: Send); the state word makes the two exclusive.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to the value of an [`RwLock`]; unlocks when dropped.
///
/// ```
/// use coio::sync::RwLock;
///
/// let l = RwLock::new(String::from("shared"));
/// let a = l.read();
/// let b = l.read(); // readers share the lock
/// assert_eq!(a.len() + b.len(), 12);
/// assert!(l.try_write().is_none());
/// drop((a, b));
/// assert!(l.try_write().is_some());
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    /// The read-locked lock.
    lock: &'a RwLock<T>,
    /// A shared borrow of the value.
    _marker: PhantomData<&'a T>,
}

/// Exclusive access to the value of an [`RwLock`]; unlocks when dropped.
///
/// ```
/// use coio::sync::RwLock;
///
/// let l = RwLock::new(vec![1]);
/// {
///     let mut w = l.write();
///     w.push(2);
///     assert!(l.try_read().is_none()); // exclusive
/// }
/// assert_eq!(*l.read(), [1, 2]);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    /// The write-locked lock.
    lock: &'a RwLock<T>,
    /// An exclusive borrow of the value.
    _marker: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// A new, unlocked lock holding `value`.
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// static ROUTES: RwLock<Vec<&str>> = RwLock::new(Vec::new());
    /// ROUTES.write().push("/health");
    /// assert_eq!(ROUTES.read().len(), 1);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(WaitQueue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            state: AtomicUsize::new(0),
            queue: QueueLock::new(WaitQueue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns its value.
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(vec![1]);
    /// l.write().push(2);
    /// assert_eq!(l.into_inner(), [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds the lock or anybody
    /// is queued.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coio::sync::RwLock;
    ///
    /// let config = Arc::new(RwLock::new(String::from("v1")));
    /// coio::run(|| {
    ///     let readers: Vec<_> = (0..3)
    ///         .map(|_| {
    ///             let c = config.clone();
    ///             coio::spawn(move || c.read().clone())
    ///         })
    ///         .collect();
    ///     readers.into_iter().for_each(|r| assert_eq!(r.join().unwrap(), "v1"));
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits. Panics if the number of readers would
    /// overflow.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        if !self.try_read_fast() {
            super::no_deadline(self.lock_slow(READ, None));
        }
        self.read_guard()
    }

    /// Locks for reading if that is possible now without waiting (no
    /// writer holds the lock, and nobody is queued).
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert_eq!(*l.try_read().unwrap(), 1);
    /// ```
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.try_read_fast().then(|| self.read_guard())
    }

    /// As [`read`](Self::read), but gives up after `dur` (None).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(1);
    /// let w = l.write();
    /// assert!(l.read_timeout(Duration::from_millis(5)).is_none());
    /// drop(w);
    /// assert_eq!(*l.read_timeout(Duration::from_millis(5)).unwrap(), 1);
    /// ```
    ///
    /// # Panics
    /// As [`read`](Self::read).
    pub fn read_timeout(&self, dur: Duration) -> Option<RwLockReadGuard<'_, T>> {
        if self.try_read_fast() {
            return Some(self.read_guard());
        }
        let r = self.lock_slow(READ, super::deadline(dur));
        finish(r).then(|| self.read_guard())
    }

    /// Locks for writing, waiting while anybody holds the lock or is
    /// queued.
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(vec![1]);
    /// l.write().push(2);
    /// assert_eq!(*l.read(), [1, 2]);
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        if !self.try_write_fast() {
            super::no_deadline(self.lock_slow(WRITE, None));
        }
        self.write_guard()
    }

    /// Locks for writing if nobody holds the lock or is queued.
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(0);
    /// let r = l.read();
    /// assert!(l.try_write().is_none()); // a reader holds it
    /// drop(r);
    /// *l.try_write().unwrap() += 1;
    /// assert_eq!(*l.read(), 1);
    /// ```
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.try_write_fast().then(|| self.write_guard())
    }

    /// As [`write`](Self::write), but gives up after `dur` (None).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::sync::RwLock;
    ///
    /// let l = RwLock::new(0);
    /// let r = l.read();
    /// assert!(l.write_timeout(Duration::from_millis(5)).is_none());
    /// drop(r);
    /// *l.write_timeout(Duration::from_millis(5)).unwrap() = 7;
    /// assert_eq!(*l.read(), 7);
    /// ```
    ///
    /// # Panics
    /// As [`write`](Self::write).
    pub fn write_timeout(&self, dur: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        if self.try_write_fast() {
            return Some(self.write_guard());
        }
        let r = self.lock_slow(WRITE, super::deadline(dur));
        finish(r).then(|| self.write_guard())
    }

    /// The value, through an exclusive borrow of the lock (no locking).
    ///
    /// ```
    /// use coio::sync::RwLock;
    ///
    /// let mut l = RwLock::new(0);
    /// *l.get_mut() = 10; // `&mut` proves nobody holds the lock
    /// assert_eq!(*l.read(), 10);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The read fast path: one CAS adding a reader, if no writer holds
    /// the lock and nobody is queued.
    #[inline]
    fn try_read_fast(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while s & (WRITER | QUEUED) == 0 {
            match self
                .state
                .compare_exchange_weak(s, add_reader(s), Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// The write fast path: one CAS from 0 (free, nobody queued).
    #[inline]
    fn try_write_fast(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Acquire, Relaxed)
            .is_ok()
    }

    /// A guard for a read lock the caller has taken.
    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// A guard for the write lock the caller has taken.
    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    /// Queues for `oper` (`READ` or `WRITE`) and waits to be handed the
    /// lock (module docs).
    #[cold]
    #[inline(never)]
    fn lock_slow(&self, oper: usize, deadline: Option<Instant>) -> Result<(), Failed> {
        let blocker = Blocker::new(if oper == READ {
            crate::runtime::dump::Wait::RwLockRead
        } else {
            crate::runtime::dump::Wait::RwLockWrite
        });
        {
            let mut q = lock_queue(&self.queue);
            let mut s = self.state.load(Relaxed);
            loop {
                if s & QUEUED == 0 {
                    // Nobody queued: the fast path's rule applies.
                    let took = if oper == READ {
                        (s & WRITER == 0).then(|| add_reader(s))
                    } else {
                        (s == 0).then_some(WRITER)
                    };
                    if let Some(new) = took {
                        match self.state.compare_exchange(s, new, Acquire, Relaxed) {
                            Ok(_) => return Ok(()),
                            Err(now) => s = now,
                        }
                        continue;
                    }
                }
                // Unavailable (or others are queued): a holder's unlock, a
                // later RMW of this word, will see `QUEUED` and dispatch.
                match self.state.compare_exchange(s, s | QUEUED, AcqRel, Relaxed) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after a claim finished, or after we removed the
            // entry under this lock. No packet.
            unsafe { q.push(&blocker, oper, ptr::null_mut()) };
        }
        match blocker.wait(deadline, true) {
            // Handed over: `dispatch` counted us in the state already.
            Woken::Done(_) => Ok(()),
            Woken::Retry(_) => unreachable!("coio: RwLock waiters are claimed with done"),
            r @ (Woken::TimedOut | Woken::Cancelled) => {
                let mut q = lock_queue(&self.queue);
                q.remove(&blocker);
                // Our leaving may let the entries behind us in.
                self.dispatch(&mut q);
                drop(q);
                Err(if r == Woken::TimedOut {
                    Failed::TimedOut
                } else {
                    Failed::Cancelled
                })
            }
        }
    }

    /// Hands the lock to the waiters at the front that can have it now, and
    /// clears `QUEUED` if the queue is empty. Called under the queue lock
    /// (module docs: who calls it, and why its view of the state holds).
    fn dispatch(&self, q: &mut WaitQueue) {
        let s = self.state.load(Acquire);
        if s & QUEUED == 0 {
            return;
        }
        if s & WRITER == 0 && s < READER {
            // Free: a writer at the front takes it alone.
            if let Some(c) = q.claim_front_if(false, |o| o == WRITE) {
                // Counted before it is woken (the claim's drop).
                self.state.fetch_or(WRITER, Relaxed);
                drop(c);
            }
        }
        if self.state.load(Relaxed) & WRITER == 0 {
            // No writer: the readers at the front join the holders.
            while let Some(c) = q.claim_front_if(false, |o| o == READ) {
                self.state.fetch_add(READER, Relaxed);
                drop(c);
            }
        }
        if q.front().is_none() {
            self.state.fetch_and(!QUEUED, Relaxed);
        }
    }

    /// Unlocks a read lock.
    ///
    /// # Safety
    /// The caller holds a read lock and gives it up.
    #[inline]
    unsafe fn read_unlock(&self) {
        let s = self.state.fetch_sub(READER, Release);
        if s == READER | QUEUED {
            // The last reader, with waiters: the front one is a writer (or
            // gave up meanwhile).
            self.unlock_slow();
        }
    }

    /// Unlocks the write lock.
    ///
    /// # Safety
    /// The caller holds the write lock and gives it up.
    #[inline]
    unsafe fn write_unlock(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Release, Relaxed)
            .is_err()
        {
            // `QUEUED` is set, and stays set until we dispatch (only the
            // queue lock's holder clears it).
            let mut q = lock_queue(&self.queue);
            self.state.fetch_and(!WRITER, Release);
            self.dispatch(&mut q);
        }
    }

    /// Dispatches after the last reader left.
    #[cold]
    #[inline(never)]
    fn unlock_slow(&self) {
        let mut q = lock_queue(&self.queue);
        self.dispatch(&mut q);
    }
}

/// The state with one more reader.
///
/// # Panics
/// If the count would overflow.
#[inline]
fn add_reader(s: usize) -> usize {
    match s.checked_add(READER) {
        Some(n) => n,
        None => too_many_readers(),
    }
}

#[cold]
fn too_many_readers() -> ! {
    panic!("coio::sync::RwLock: too many readers")
}

/// The end of a timed slow path: whether the lock was taken; unwinds on
/// cancellation.
fn finish(r: Result<(), Failed>) -> bool {
    match r {
        Ok(()) => true,
        Err(Failed::TimedOut) => {
            // As `Mutex::lock_timeout`.
            coop_spend();
            false
        }
        Err(Failed::Cancelled) => park::unwind_cancelled(),
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns the write lock into a read lock, with no writer let in
    /// between, as std's `RwLockWriteGuard::downgrade`. The readers at the
    /// front of the queue join it at once; a writer at the front waits
    /// for the read lock to end, as it waits for any reader's (and the
    /// readers behind it wait for it: arrival order).
    ///
    /// ```
    /// use coio::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let l = RwLock::new(1);
    /// let mut w = l.write();
    /// *w += 1;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert_eq!(*r, 2);
    /// assert!(l.try_read().is_some()); // readers share it now
    /// assert!(l.try_write().is_none());
    /// ```
    pub fn downgrade(guard: Self) -> RwLockReadGuard<'a, T> {
        let lock = guard.lock;
        // The write lock becomes the read lock: no unlock.
        std::mem::forget(guard);
        if lock
            .state
            .compare_exchange(WRITER, READER, Release, Relaxed)
            .is_err()
        {
            // `QUEUED` is set (and stays so until we dispatch): no fast
            // path gets in while the two steps below are made, and the
            // waiters are handed the lock only under the queue lock.
            let mut q = lock_queue(&lock.queue);
            lock.state.fetch_add(READER, Relaxed);
            lock.state.fetch_and(!WRITER, Release);
            lock.dispatch(&mut q);
        }
        RwLockReadGuard {
            lock,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard's read lock ends here.
        unsafe { self.lock.read_unlock() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard's write lock ends here.
        unsafe { self.lock.write_unlock() }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: no writer, so no `&mut` exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: this guard is the only access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held and the guard borrowed exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}
