//! [`Once`]: a one-time initialization, after std's, on a [`OnceLock<()>`]
//! (whose protocol is the waiting: see `once_lock`), plus std's poison.
//!
//! # Poison
//!
//! As std's `Once`: a closure that panics poisons the `Once`; later
//! [`call_once`](Once::call_once)s (and those waiting meanwhile, to whom
//! the abandoned initialization passes) panic, and
//! [`call_once_force`](Once::call_once_force) runs its closure with
//! [`OnceState::is_poisoned`] true and completes it. A *cancellation* of
//! the running closure's coroutine does not poison (it is not a failure
//! of the closure, and servers cancel coroutines as a matter of course):
//! the next caller runs its own closure, as a `OnceLock`'s does.

use std::fmt;

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, Ordering::*};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, Ordering::*};

use super::OnceLock;

/// A one-time initialization, after std's `Once`: the first
/// [`call_once`](Self::call_once) runs its closure, callers that come
/// meanwhile wait for it (a coroutine suspends, a thread parks), later
/// ones return at once.
///
/// ```
/// use coio::sync::Once;
///
/// static INIT: Once = Once::new();
/// coio::run(|| {
///     let hs: Vec<_> = (0..4)
///         .map(|_| coio::spawn(|| INIT.call_once(|| coio::sleep(std::time::Duration::from_millis(5)))))
///         .collect();
///     hs.into_iter().for_each(|h| h.join().unwrap());
/// });
/// assert!(INIT.is_completed());
/// ```
///
/// A closure that panics poisons it, as std's (see the module docs for a
/// cancelled one).
pub struct Once {
    /// Set (to `()`) when a closure returned.
    done: OnceLock<()>,
    /// A closure panicked (and none returned since).
    poisoned: AtomicBool,
}

/// What [`Once::call_once_force`] tells its closure.
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// Whether an earlier closure of the `Once` panicked.
    ///
    /// ```
    /// let once = coio::sync::Once::new();
    /// once.call_once_force(|state| assert!(!state.is_poisoned()));
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// Poisons the `Once` if dropped, that is, if the closure unwound other
/// than by a cancellation of its coroutine (a coroutine cancelled and
/// then panicking is taken for cancelled).
struct Poison<'a>(&'a AtomicBool);

impl Drop for Poison<'_> {
    fn drop(&mut self) {
        if !crate::park::cancel_requested() {
            self.0.store(true, Release);
        }
    }
}

impl Once {
    /// A `Once` whose closure has not run.
    ///
    /// ```
    /// static INIT: coio::sync::Once = coio::sync::Once::new();
    /// assert!(!INIT.is_completed());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Once {
        Once {
            done: OnceLock::new(),
            poisoned: AtomicBool::new(false),
        }
    }

    /// A `Once` whose closure has not run.
    #[cfg(loom)]
    pub fn new() -> Once {
        Once {
            done: OnceLock::new(),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Runs `f` if no closure has completed this `Once` yet; waits if one
    /// runs (and, if that one panics, one waiter's closure runs instead,
    /// as with std: that waiter's `call_once` panics, the `Once` being
    /// poisoned).
    ///
    /// ```
    /// use coio::sync::Once;
    ///
    /// let (once, mut runs) = (Once::new(), 0);
    /// once.call_once(|| runs += 1);
    /// once.call_once(|| runs += 1); // completed: not run again
    /// assert_eq!(runs, 1);
    /// ```
    ///
    /// # Panics
    /// If the `Once` is poisoned (an earlier closure panicked), as std's;
    /// resumes a panic of `f`. Unwinds with
    /// [`Cancelled`](crate::Cancelled) if the coroutine is cancelled while
    /// it waits.
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        self.done.get_or_init(|| {
            if self.poisoned.load(Acquire) {
                panic!("Once instance has previously been poisoned");
            }
            let poison = Poison(&self.poisoned);
            f();
            std::mem::forget(poison);
        });
    }

    /// As [`call_once`](Self::call_once), but runs `f` on a poisoned
    /// `Once` too, telling it so; if `f` returns, the `Once` is complete.
    ///
    /// ```
    /// use coio::sync::Once;
    ///
    /// let once = Once::new();
    /// let _ = std::panic::catch_unwind(|| once.call_once(|| panic!("boom")));
    /// once.call_once_force(|state| assert!(state.is_poisoned()));
    /// assert!(once.is_completed());
    /// ```
    ///
    /// # Panics
    /// Resumes a panic of `f`. Unwinds with
    /// [`Cancelled`](crate::Cancelled) if the coroutine is cancelled while
    /// it waits.
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        self.done.get_or_init(|| {
            let state = OnceState {
                poisoned: self.poisoned.load(Acquire),
            };
            let poison = Poison(&self.poisoned);
            f(&state);
            std::mem::forget(poison);
        });
    }

    /// Whether a closure has completed this `Once` (never waits).
    ///
    /// ```
    /// let once = coio::sync::Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| {});
    /// assert!(once.is_completed());
    /// ```
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.done.get().is_some()
    }

    /// Waits until a closure has completed this `Once` (without running
    /// one), as std's `Once::wait`.
    ///
    /// ```
    /// use coio::sync::Once;
    ///
    /// let once = Once::new();
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         s.spawn(|| once.wait()); // parks until the closure below ran
    ///         s.spawn(|| once.call_once(|| coio::sleep(std::time::Duration::from_millis(5))));
    ///     })
    /// });
    /// assert!(once.is_completed());
    /// ```
    ///
    /// # Panics
    /// If the `Once` is poisoned and no closure runs (a
    /// [`call_once_force`](Self::call_once_force) running on it is waited
    /// for), now or once the closure it waited for panicked, as std's (use
    /// [`wait_force`](Self::wait_force) to wait past the poison). Unwinds
    /// with [`Cancelled`](crate::Cancelled) if the coroutine is cancelled
    /// while it waits.
    pub fn wait(&self) {
        let poisoned = || self.poisoned.load(Acquire);
        loop {
            if self.is_completed() {
                return;
            }
            if poisoned() && !self.done.is_running() {
                panic!("Once instance has previously been poisoned");
            }
            // Woken when a closure completes it, or when one unwinds (to
            // look at the poison again). The poison is checked again under
            // the queue lock, if no closure runs: a closure that unwound
            // between the look above and the queueing has set it (before
            // its wakes, made under that lock), and would wake nobody.
            self.done.wait_state(true, poisoned);
        }
    }

    /// Waits until a closure has completed this `Once`, poisoned or not.
    ///
    /// ```
    /// use coio::sync::Once;
    ///
    /// let once = Once::new();
    /// let _ = std::panic::catch_unwind(|| once.call_once(|| panic!("boom")));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| once.wait_force()); // waits past the poison
    ///     once.call_once_force(|_| {});
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    pub fn wait_force(&self) {
        self.done.wait();
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}
