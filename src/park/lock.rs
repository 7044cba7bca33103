//! The short lock under which wait queues (and what they guard) live.
//!
//! Everything done under it is bookkeeping of a few instructions: no
//! waiting, no allocation but a queue's growth, no user code (values are
//! moved in and out of packets after it is released; their destructors run
//! after it). So it is a spin lock: taking it is one CAS, releasing it one
//! plain store (a `std::sync::Mutex` release is a second atomic
//! read-modify-write, to learn whether to wake a sleeper; on the channel
//! ping-pong that is 4 more locked instructions per round trip; see
//! BENCHMARKS.md). Under contention it spins with a growing pause, then
//! yields the thread, so that a holder that was preempted gets to run.
//!
//! Under loom it is loom's mutex, so that the models explore the
//! interleavings the lock allows and no more.

#[cfg(not(loom))]
mod imp {
    use std::cell::UnsafeCell;
    use std::ops::{Deref, DerefMut};
    use std::sync::atomic::{AtomicBool, Ordering::*};

    /// A spin lock around a `T`.
    pub(crate) struct Lock<T> {
        /// Whether a guard exists.
        locked: AtomicBool,
        /// The guarded value.
        value: UnsafeCell<T>,
    }

    // SAFETY: the value is reached only through a guard, and one guard
    // exists at a time (the `locked` CAS, Acquire, pairs with the guard's
    // Release store), so a `T` moves between threads but is never shared.
    unsafe impl<T: Send> Sync for Lock<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Send for Lock<T> {}

    impl<T> Lock<T> {
        /// An unlocked lock around `value`.
        pub(crate) const fn new(value: T) -> Lock<T> {
            Lock {
                locked: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// Takes the lock.
        #[inline]
        pub(crate) fn lock(&self) -> LockGuard<'_, T> {
            if self
                .locked
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_err()
            {
                self.lock_contended();
            }
            LockGuard { lock: self }
        }

        #[cold]
        fn lock_contended(&self) {
            let mut spins = 0u32;
            loop {
                if !self.locked.load(Relaxed)
                    && self
                        .locked
                        .compare_exchange_weak(false, true, Acquire, Relaxed)
                        .is_ok()
                {
                    return;
                }
                if spins < 10 {
                    for _ in 0..1u32 << spins {
                        std::hint::spin_loop();
                    }
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Access to a [`Lock`]'s value; dropping it releases the lock.
    pub(crate) struct LockGuard<'a, T> {
        lock: &'a Lock<T>,
    }

    impl<T> Deref for LockGuard<'_, T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            // SAFETY: this guard holds the lock (see `Sync` above).
            unsafe { &*self.lock.value.get() }
        }
    }

    impl<T> DerefMut for LockGuard<'_, T> {
        #[inline]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: this guard holds the lock, and `&mut self` is unique.
            unsafe { &mut *self.lock.value.get() }
        }
    }

    impl<T> Drop for LockGuard<'_, T> {
        #[inline]
        fn drop(&mut self) {
            self.lock.locked.store(false, Release);
        }
    }
}

#[cfg(loom)]
mod imp {
    /// loom's mutex, without poisoning.
    pub(crate) struct Lock<T>(loom::sync::Mutex<T>);

    /// Its guard.
    pub(crate) type LockGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Lock<T> {
        /// An unlocked lock around `value`.
        pub(crate) fn new(value: T) -> Lock<T> {
            Lock(loom::sync::Mutex::new(value))
        }

        /// Takes the lock.
        pub(crate) fn lock(&self) -> LockGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub(crate) use imp::{Lock, LockGuard};
