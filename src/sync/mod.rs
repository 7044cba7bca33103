//! Locks and other synchronization primitives for coroutines and plain
//! threads alike: [`Mutex`], [`RwLock`], [`Condvar`], [`Semaphore`],
//! [`Barrier`], [`WaitGroup`], [`OnceLock`], [`Once`] and [`LazyLock`],
//! with std's names. (std's `Once`, `OnceLock` and `LazyLock` block the
//! whole worker thread of a caller that finds another's initializer
//! running, for as long as it runs: if that initializer waits for
//! anything on the same worker, the worker is stuck for good. These
//! suspend only the caller.)
//!
//! ```
//! use std::sync::Arc;
//! use coio::sync::Mutex;
//!
//! let counter = Arc::new(Mutex::new(0u32));
//! coio::run(|| {
//!     let hs: Vec<_> = (0..100)
//!         .map(|_| {
//!             let c = counter.clone();
//!             coio::spawn(move || *c.lock() += 1)
//!         })
//!         .collect();
//!     hs.into_iter().for_each(|h| h.join().unwrap());
//! });
//! // A plain thread uses the same lock.
//! assert_eq!(*counter.lock(), 100);
//! ```
//!
//! # Waiting
//!
//! Every primitive waits through the parking core (`park`): a coroutine
//! that must wait suspends itself only (its worker runs other coroutines),
//! a plain thread parks. One primitive can be shared by both at once. Each
//! keeps its waiters in a FIFO queue under a small internal lock (the
//! parking core's spin lock, as channels use, held only for a few
//! instructions, never while anybody waits), and tells the fast paths whether anybody is queued
//! through a bit of its state word, so that an operation that finds
//! nobody waiting touches only that word.
//!
//! # Cancellation and timeouts
//!
//! A coroutine that is cancelled ([`JoinHandle::cancel`]) while it waits
//! unwinds with [`Cancelled`] from the wait, after taking its entry out of
//! the queue, holding nothing: a lock it was waiting for is not taken, a
//! condition variable gives back no guard (the mutex stays unlocked). A
//! wait of a coroutine that is already unwinding (from a guard's `Drop`, for
//! instance) is not interrupted, and blocks its whole worker thread (see
//! [`sleep`]). The `_timeout` variants take a [`Duration`] as std's do;
//! one too large to add to the clock waits forever.
//!
//! # No poisoning
//!
//! The guards of [`Mutex`] and [`RwLock`] release the lock in their `Drop`,
//! which also runs when the holder panics or is cancelled: the lock is then
//! simply free again, and the next holder sees the data as the panicking
//! one left it. There is no poisoning, so `lock()` returns the guard
//! itself. Code that must not expose half-done updates restores its
//! invariants in its own `Drop` guards, as it would for any panic.
//! ([`Once`] and [`LazyLock`] are poisoned by a panicking initializer as
//! std's are, since it did not finish; [`OnceLock`] is not, as std's.)
//!
//! For the same reason `Mutex` and `RwLock` are not
//! [`RefUnwindSafe`](std::panic::RefUnwindSafe) (std's are, because they
//! poison): a `catch_unwind` closure that uses one needs
//! [`AssertUnwindSafe`](std::panic::AssertUnwindSafe), which says that the
//! data is checked after a panic. The types that hold no data of the user's
//! ([`Condvar`], [`Barrier`], [`Semaphore`], [`WaitGroup`], [`Once`]) and
//! [`OnceLock`] and [`LazyLock`] are unwind-safe, as std's.
//!
//! [`JoinHandle::cancel`]: crate::JoinHandle::cancel
//! [`Cancelled`]: crate::Cancelled
//! [`sleep`]: crate::sleep
//! [`Duration`]: std::time::Duration

use std::time::{Duration, Instant};

mod barrier;
mod condvar;
mod lazy_lock;
mod mutex;
mod once;
mod once_lock;
mod rwlock;
mod semaphore;
mod wait_group;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use lazy_lock::LazyLock;
pub use mutex::{Mutex, MutexGuard};
pub use once::{Once, OnceState};
pub use once_lock::OnceLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;

/// std's reference counting and atomics, which never wait, under the same
/// names, so that `use std::sync::{Arc, Mutex}` ports as a whole.
///
/// ```
/// use coio::sync::atomic::{AtomicU32, Ordering};
/// use coio::sync::{Arc, Mutex};
///
/// let hits = Arc::new((Mutex::new(0), AtomicU32::new(0)));
/// *hits.0.lock() += 1;
/// hits.1.fetch_add(1, Ordering::Relaxed);
/// assert_eq!((*hits.0.lock(), hits.1.load(Ordering::Relaxed)), (1, 1));
/// ```
pub use std::sync::{Arc, Weak, atomic};

use crate::park::{Lock, LockGuard, WaitQueue};

/// The internal lock of a primitive's wait queue: the parking core's spin
/// lock, as for channels (the sections under it are a few queue and atomic
/// operations).
type QueueLock = Lock<WaitQueue>;

/// Takes a queue lock.
#[inline]
fn lock_queue(q: &QueueLock) -> LockGuard<'_, WaitQueue> {
    q.lock()
}

/// The deadline `dur` from now; None (no deadline) if that is beyond what
/// `Instant` can hold.
#[inline]
fn deadline(dur: Duration) -> Option<Instant> {
    Instant::now().checked_add(dur)
}

/// Why a wait of the slow paths ended without the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// The deadline passed.
    TimedOut,
    /// The coroutine was cancelled; its entries are removed, and the
    /// caller unwinds with `park::unwind_cancelled` once it has cleaned up.
    Cancelled,
}

/// Unwinds on `Cancelled`; for waits without a deadline, where the wait
/// cannot time out.
#[inline]
fn no_deadline(r: Result<(), Failed>) {
    match r {
        Ok(()) => {}
        Err(Failed::Cancelled) => crate::park::unwind_cancelled(),
        Err(Failed::TimedOut) => unreachable!("coio: a wait without deadline timed out"),
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
