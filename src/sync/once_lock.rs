//! [`OnceLock`]: a cell written once, whose initializer others wait for.
//!
//! # State
//!
//! One word: `INCOMPLETE`, `RUNNING` (an initializer runs) or `COMPLETE`
//! (the value is written, and never changes again while shared), plus
//! `QUEUED` (the wait queue has entries; set under the queue lock).
//!
//! # Protocol
//!
//! The first caller to CAS `INCOMPLETE` to `RUNNING` runs the initializer.
//! Others that find `RUNNING` queue: under the queue lock, a CAS sets
//! `QUEUED` on a state that is still `RUNNING`, and they push their entry.
//!
//! * The initializer returns: the value is written, then the state is
//!   swapped to `COMPLETE` (Release). If the swap returns `QUEUED`, the
//!   queue lock is taken and every entry claimed with *done*. A waiter whose
//!   `QUEUED` CAS came before the swap is in the queue by then; one whose
//!   CAS came after fails it (the state is no longer `RUNNING`) and sees
//!   `COMPLETE`.
//! * The initializer panics (or its coroutine is cancelled): a guard's
//!   `Drop`, under the queue lock, claims the oldest waiter that may
//!   initialize with *retry* — it will take over the initialization — and
//!   every waiter that only waits ([`OnceLock::wait`], [`Once::wait`]) with
//!   *retry* too (each looks again: a `Once`'s sees the poison, a
//!   `OnceLock`'s queues again), and stores `INCOMPLETE`, with `QUEUED` if
//!   entries remain (under the queue lock with `RUNNING` set the state
//!   cannot change otherwise). The next initializer's `COMPLETE` swap then
//!   sees `QUEUED` and releases the rest. With no waiter, the state is
//!   simply `INCOMPLETE` again and the next caller initializes.
//! * A waiter that only waits queues whenever the state is not `COMPLETE`
//!   (`INCOMPLETE` too: it waits for an initializer yet to come), with
//!   operation number [`WAITS_ONLY`], so that an abandoned initialization
//!   is never handed to it. The next initializer's CAS from `INCOMPLETE`
//!   keeps `QUEUED`, and its `COMPLETE` swap releases it.
//!
//! A waiter that is cancelled removes its entry and clears `QUEUED` if the
//! queue is then empty; if the claim won instead, it goes on as claimed.
//!
//! [`Once::wait`]: super::Once::wait

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::ptr;

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};

use super::{QueueLock, lock_queue};
use crate::park::{self, Blocker, WaitQueue, Woken};

/// `state`: no value, nobody initializing.
const INCOMPLETE: usize = 0;
/// `state`: an initializer runs.
const RUNNING: usize = 1;
/// `state`: the value is there.
const COMPLETE: usize = 2;
/// `state`: the bits above.
const MASK: usize = 3;
/// `state`: the wait queue has entries.
const QUEUED: usize = 4;

/// The operation number of a waiter that only waits for the value (it
/// never initializes); others queue with 0.
const WAITS_ONLY: usize = 1;

/// A cell that is written at most once, after std's `OnceLock`; callers
/// that find its initializer running wait for it (a coroutine suspends, a
/// thread parks). See the [module docs](super) for cancellation.
///
/// If the initializer panics (or its coroutine is cancelled), the cell is
/// uninitialized again, nothing is poisoned, and one of the waiters runs
/// its own initializer in its place.
///
/// ```
/// use coio::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// assert_eq!(CONFIG.get_or_init(|| "ready".to_string()), "ready");
/// assert_eq!(CONFIG.set("late".into()), Err("late".to_string()));
/// ```
pub struct OnceLock<T> {
    /// `INCOMPLETE` / `RUNNING` / `COMPLETE`, and `QUEUED`.
    state: AtomicUsize,
    /// Callers waiting for the initializer.
    queue: QueueLock,
    /// The value, initialized exactly when the state is `COMPLETE`.
    value: UnsafeCell<MaybeUninit<T>>,
}

// As std's: a panicking initializer leaves the cell uninitialized (module
// docs), never a half-made value.
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe> std::panic::RefUnwindSafe
    for OnceLock<T>
{
}
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for OnceLock<T> {}

// SAFETY: the value is written by one initializer (the CAS to RUNNING
// elects it) before COMPLETE is published with Release, and only read
// through `&` afterwards: sharing the cell shares `&T` (T: Sync) and may
// have moved a `T` made on another thread in (T: Send).
unsafe impl<T: Send + Sync> Sync for OnceLock<T> {}

/// Drop guard of a running initializer: if it is dropped, the initializer
/// did not return (module docs).
struct Abandon<'a, T> {
    /// The cell being initialized.
    cell: &'a OnceLock<T>,
}

impl<T> OnceLock<T> {
    /// An empty cell.
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// static CELL: OnceLock<u32> = OnceLock::new();
    /// assert_eq!(CELL.get(), None);
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicUsize::new(INCOMPLETE),
            queue: QueueLock::new(WaitQueue::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// An empty cell.
    #[cfg(loom)]
    pub fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicUsize::new(INCOMPLETE),
            queue: QueueLock::new(WaitQueue::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if it is initialized (never waits).
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let cell = OnceLock::new();
    /// assert_eq!(cell.get(), None);
    /// cell.set(5).unwrap();
    /// assert_eq!(cell.get(), Some(&5));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Acquire) & MASK == COMPLETE {
            // SAFETY: COMPLETE (Acquire) means written, and it is never
            // written again while shared.
            Some(unsafe { self.value_ref() })
        } else {
            None
        }
    }

    /// The value, through an exclusive borrow, if it is initialized.
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let mut cell = OnceLock::new();
    /// cell.set(String::from("a")).unwrap();
    /// cell.get_mut().unwrap().push('b');
    /// assert_eq!(cell.get().map(String::as_str), Some("ab"));
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.is_complete_mut() {
            // SAFETY: COMPLETE means written; the borrow is exclusive.
            Some(unsafe { (*self.value.get()).assume_init_mut() })
        } else {
            None
        }
    }

    /// Stores `value` if the cell is empty; otherwise gives it back. If
    /// an initializer is running, waits for it first (and gives `value`
    /// back if it succeeds).
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let cell = OnceLock::new();
    /// assert_eq!(cell.set(1), Ok(()));
    /// assert_eq!(cell.set(2), Err(2)); // already set: given back
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the value is taken once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initialized by `f` if the cell is empty. If another
    /// caller's initializer is running, waits for it; if that one panics,
    /// one waiter runs its own `f` instead. `f` runs at most once per call,
    /// and at most one `f` runs at a time. Calling `get_or_init` on the
    /// same cell from `f` deadlocks.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use coio::sync::OnceLock;
    ///
    /// let (config, runs) = (OnceLock::new(), AtomicUsize::new(0));
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         for _ in 0..4 {
    ///             s.spawn(|| {
    ///                 let c = config.get_or_init(|| {
    ///                     runs.fetch_add(1, SeqCst);
    ///                     "loaded".to_string()
    ///                 });
    ///                 assert_eq!(c, "loaded");
    ///             });
    ///         }
    ///     })
    /// });
    /// assert_eq!(runs.load(SeqCst), 1);
    /// ```
    ///
    /// # Panics
    /// Resumes a panic of `f` (the cell stays empty). Unwinds with
    /// [`Cancelled`](crate::Cancelled) if the coroutine is cancelled while
    /// it waits.
    #[inline]
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        self.init_slow(f)
    }

    /// The value, once it is initialized: waits (without initializing it
    /// itself) until an initializer, running or to come, has written it,
    /// as std's `OnceLock::wait`.
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let config = OnceLock::new();
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         s.spawn(|| assert_eq!(*config.wait(), "loaded"));
    ///         s.spawn(|| {
    ///             coio::sleep(std::time::Duration::from_millis(5));
    ///             config.set("loaded").unwrap();
    ///         });
    ///     })
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    pub fn wait(&self) -> &T {
        loop {
            if let Some(v) = self.get() {
                return v;
            }
            self.wait_state(true, || false);
        }
    }

    /// Consumes the cell and returns its value, if any.
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let cell = OnceLock::new();
    /// cell.set(3).unwrap();
    /// assert_eq!(cell.into_inner(), Some(3));
    /// assert_eq!(OnceLock::<u8>::new().into_inner(), None);
    /// ```
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    ///
    /// ```
    /// use coio::sync::OnceLock;
    ///
    /// let mut cell = OnceLock::new();
    /// cell.set(3).unwrap();
    /// assert_eq!(cell.take(), Some(3));
    /// assert_eq!(cell.get(), None); // empty again: can be set anew
    /// ```
    pub fn take(&mut self) -> Option<T> {
        if !self.is_complete_mut() {
            return None;
        }
        self.state.store(INCOMPLETE, Relaxed);
        // SAFETY: it was COMPLETE, so written; the state now says empty,
        // so the value is read out once.
        Some(unsafe { (*self.value.get()).assume_init_read() })
    }

    /// Whether the value is there, through an exclusive borrow.
    fn is_complete_mut(&mut self) -> bool {
        // (A load rather than `get_mut`, which loom's atomics lack.)
        self.state.load(Relaxed) & MASK == COMPLETE
    }

    /// Whether an initializer runs now (a hint: it may end the next
    /// moment).
    pub(super) fn is_running(&self) -> bool {
        self.state.load(Acquire) & MASK == RUNNING
    }

    /// The value.
    ///
    /// # Safety
    /// The state is COMPLETE, seen with Acquire (or through `&mut`).
    unsafe fn value_ref(&self) -> &T {
        // SAFETY: written (caller) and immutable from then on.
        unsafe { (*self.value.get()).assume_init_ref() }
    }

    /// Initializes, or waits for the running initializer (module docs).
    #[cold]
    fn init_slow<F: FnOnce() -> T>(&self, f: F) -> &T {
        let mut f = Some(f);
        loop {
            let s = self.state.load(Acquire);
            match s & MASK {
                // SAFETY: COMPLETE, seen with Acquire.
                COMPLETE => return unsafe { self.value_ref() },
                INCOMPLETE => {
                    if self
                        .state
                        .compare_exchange(s, s | RUNNING, Acquire, Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    let guard = Abandon { cell: self };
                    let v = (f.take().expect("f runs at most once"))();
                    // SAFETY: we are the only initializer (RUNNING), and
                    // nobody reads the value before COMPLETE.
                    unsafe { (*self.value.get()).write(v) };
                    std::mem::forget(guard);
                    if self.state.swap(COMPLETE, Release) & QUEUED != 0 {
                        let mut q = lock_queue(&self.queue);
                        while let Some(c) = q.claim(None, false) {
                            drop(c);
                        }
                    }
                    // SAFETY: we just wrote it and published COMPLETE.
                    return unsafe { self.value_ref() };
                }
                _ => self.wait_state(false, || false),
            }
        }
    }

    /// Waits while an initializer runs (`waits_only`: until the value is
    /// there, whether one runs or not); returns when it finished, failed
    /// (a caller that may initialize then takes over), or was not running
    /// any more (`waits_only`: the value is there, or `give_up` says so
    /// while none runs, checked under the queue lock, where an abandoned
    /// initializer's wakes are made). The caller looks again.
    pub(super) fn wait_state(&self, waits_only: bool, give_up: impl Fn() -> bool) {
        let blocker = Blocker::new(crate::runtime::dump::Wait::Once);
        {
            let mut q = lock_queue(&self.queue);
            let mut s = self.state.load(Relaxed);
            loop {
                let done = match s & MASK {
                    COMPLETE => true,
                    RUNNING => false,
                    _ => !waits_only || give_up(),
                };
                if done {
                    return;
                }
                match self.state.compare_exchange(s, s | QUEUED, Relaxed, Relaxed) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            let oper = if waits_only { WAITS_ONLY } else { 0 };
            // SAFETY: the blocker stays on this stack until the wait below
            // returns: after a claim finished, or after we removed the
            // entry under this lock. No packet.
            unsafe { q.push(&blocker, oper, ptr::null_mut()) };
        }
        match blocker.wait(None, true) {
            // Done: complete; Retry: the initializer failed, try ourselves.
            Woken::Done(_) | Woken::Retry(_) => {}
            Woken::Cancelled => {
                let mut q = lock_queue(&self.queue);
                q.remove(&blocker);
                if q.is_empty() {
                    self.state.fetch_and(!QUEUED, Relaxed);
                }
                drop(q);
                park::unwind_cancelled();
            }
            Woken::TimedOut => unreachable!("coio: a OnceLock wait without deadline timed out"),
        }
    }
}

impl<T> Drop for Abandon<'_, T> {
    /// The initializer unwound: back to INCOMPLETE, the oldest waiter that
    /// may initialize takes over, and those that only wait look again
    /// (module docs).
    fn drop(&mut self) {
        let cell = self.cell;
        let mut q = lock_queue(&cell.queue);
        let successor = q.claim_matching(true, |oper| oper != WAITS_ONLY);
        let mut waiting = Vec::new();
        while let Some(c) = q.claim_matching(true, |oper| oper == WAITS_ONLY) {
            waiting.push(c);
        }
        let rest = if q.is_empty() { 0 } else { QUEUED };
        cell.state.store(INCOMPLETE | rest, Release);
        drop(q);
        drop(successor);
        drop(waiting);
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.is_complete_mut() {
            // SAFETY: COMPLETE means written; the cell goes away.
            unsafe { (*self.value.get()).assume_init_drop() }
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        let c = OnceLock::new();
        if let Some(v) = self.get() {
            let _ = c.set(v.clone());
        }
        c
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let c = OnceLock::new();
        let _ = c.set(value);
        c
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}
