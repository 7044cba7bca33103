//! [`LazyLock`]: a value made on first use, after std's, on a
//! [`OnceLock`] (whose protocol does the waiting: see `once_lock`).
//!
//! Why coio has its own: std's `LazyLock` blocks the *thread* of a caller
//! that finds another caller's initializer running. In a coroutine that
//! thread is a worker; if the initializer's coroutine is homed on it and
//! waits for anything (a socket, a sleep, a lock), it never runs again,
//! and the worker is stuck for good. Here a caller that finds the
//! initializer running suspends only itself.
//!
//! The initializer is taken out of its cell by the one caller that runs
//! it (the `OnceLock` elects one at a time, and orders each after the
//! previous one's end), so only that caller touches the cell. If it
//! unwinds (a panic, or its coroutine's cancellation), the function is
//! gone: the `LazyLock` is poisoned, and every later use panics, as
//! std's.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::OnceLock;

/// A value made by a function on first use, after std's `LazyLock`:
/// callers that come while the function runs wait for it (a coroutine
/// suspends, a thread parks), so the function may itself wait (read a
/// file, ask a server) without holding up their worker.
///
/// ```
/// use std::collections::HashMap;
/// use coio::sync::LazyLock;
///
/// static TABLE: LazyLock<HashMap<u32, &str>> = LazyLock::new(|| {
///     coio::sleep(std::time::Duration::from_millis(5)); // as a slow load
///     HashMap::from([(1, "one"), (2, "two")])
/// });
/// coio::run(|| {
///     let hs: Vec<_> = (0..4).map(|_| coio::spawn(|| TABLE[&2])).collect();
///     for h in hs {
///         assert_eq!(h.join().unwrap(), "two");
///     }
/// });
/// ```
///
/// A function that panics (or whose coroutine is cancelled) poisons it:
/// later uses panic, as std's.
pub struct LazyLock<T, F = fn() -> T> {
    /// The value, once made.
    cell: OnceLock<T>,
    /// The function, until the one initializer takes it (module docs).
    init: UnsafeCell<Option<F>>,
}

// SAFETY: sharing the `LazyLock` shares `&T` (T: Sync) and may make the
// value on another thread than the one that drops it (T: Send); the
// function is moved to, and run on, whichever thread initializes (F:
// Send), by one caller at a time (module docs), so `F: Sync` is not
// needed. As std's.
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

// As std's.
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe, F: std::panic::UnwindSafe>
    std::panic::RefUnwindSafe for LazyLock<T, F>
{
}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// A `LazyLock` that will make its value with `f`.
    ///
    /// ```
    /// use coio::sync::LazyLock;
    ///
    /// static GREETING: LazyLock<String> = LazyLock::new(|| "hello".to_uppercase());
    /// assert_eq!(*GREETING, "HELLO");
    /// ```
    #[cfg(not(loom))]
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            cell: OnceLock::new(),
            init: UnsafeCell::new(Some(f)),
        }
    }

    /// A `LazyLock` that will make its value with `f`.
    #[cfg(loom)]
    pub fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            cell: OnceLock::new(),
            init: UnsafeCell::new(Some(f)),
        }
    }

    /// The value, made first if it is not yet (or waited for, if another
    /// caller is making it). Also what `*` does.
    ///
    /// ```
    /// use coio::sync::LazyLock;
    ///
    /// let answer = LazyLock::new(|| 6 * 7);
    /// assert_eq!(*LazyLock::force(&answer), 42);
    /// ```
    ///
    /// # Panics
    /// If the `LazyLock` is poisoned (its function unwound); resumes a
    /// panic of the function. Unwinds with
    /// [`Cancelled`](crate::Cancelled) if the coroutine is cancelled
    /// while it waits.
    #[inline]
    pub fn force(this: &LazyLock<T, F>) -> &T {
        this.cell.get_or_init(|| {
            // SAFETY: we are the one running initializer of `cell`, which
            // orders us after any earlier one's end (module docs): nobody
            // else touches `init` meanwhile.
            match unsafe { (*this.init.get()).take() } {
                Some(f) => f(),
                None => panic!("LazyLock instance has previously been poisoned"),
            }
        })
    }
}

impl<T, F> LazyLock<T, F> {
    /// The value, if it is made (never waits, never makes it).
    ///
    /// ```
    /// use coio::sync::LazyLock;
    ///
    /// let l = LazyLock::new(|| 1);
    /// assert_eq!(LazyLock::get(&l), None);
    /// let _ = *l;
    /// assert_eq!(LazyLock::get(&l), Some(&1));
    /// ```
    #[inline]
    pub fn get(this: &LazyLock<T, F>) -> Option<&T> {
        this.cell.get()
    }

    /// The value, if it is made, through an exclusive borrow.
    ///
    /// ```
    /// use coio::sync::LazyLock;
    ///
    /// let mut l = LazyLock::new(|| 1);
    /// assert_eq!(LazyLock::get_mut(&mut l), None);
    /// let _ = *l;
    /// *LazyLock::get_mut(&mut l).unwrap() += 1;
    /// assert_eq!(*l, 2);
    /// ```
    #[inline]
    pub fn get_mut(this: &mut LazyLock<T, F>) -> Option<&mut T> {
        this.cell.get_mut()
    }
}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// The value, made first if it is not yet, through an exclusive
    /// borrow (no waiting: nobody else can be making it).
    ///
    /// ```
    /// use coio::sync::LazyLock;
    ///
    /// let mut l = LazyLock::new(|| vec![1]);
    /// LazyLock::force_mut(&mut l).push(2);
    /// assert_eq!(*l, [1, 2]);
    /// ```
    ///
    /// # Panics
    /// If the `LazyLock` is poisoned; resumes a panic of the function.
    pub fn force_mut(this: &mut LazyLock<T, F>) -> &mut T {
        if this.cell.get_mut().is_none() {
            let f = this
                .init
                .get_mut()
                .take()
                .unwrap_or_else(|| panic!("LazyLock instance has previously been poisoned"));
            let _ = this.cell.set(f());
        }
        this.cell.get_mut().expect("just made")
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T, F: FnOnce() -> T> DerefMut for LazyLock<T, F> {
    /// The value, made first if it is not yet (no waiting: the borrow is
    /// exclusive).
    ///
    /// # Panics
    /// If the `LazyLock` is poisoned; resumes a panic of the function.
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        LazyLock::force_mut(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    /// A `LazyLock` that makes `T::default()`.
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match self.cell.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
