//! The blocking calls of the runtime, for coroutines and plain threads.
//!
//! Everything that waits goes through [`wait_until`]: the caller registers
//! a [`Waiter`] wherever the event will come from, then waits until its
//! condition holds. In a coroutine the wait suspends it (`block_current`),
//! checking for cancellation each time round; on a plain thread it parks
//! the thread. Wakes are hints, so spurious returns are harmless: the
//! condition is checked again.

use std::panic::resume_unwind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use super::dump::Wait;
use super::task::{Cancelled, Coroutine, Waiter};
use super::worker;

/// The waiter for the caller: its coroutine, or its thread.
pub(crate) fn current_waiter() -> Waiter {
    match worker::coroutine_local() {
        Some(l) => Waiter::task(l.current_task()),
        None => Waiter::thread(std::thread::current()),
    }
}

/// Whether the running coroutine of `l` was cancelled and is not unwinding
/// already: a cancellation point must then unwind with [`Cancelled`].
#[inline]
pub(crate) fn cancel_pending(l: &worker::Local) -> bool {
    l.with_current(|t| t.header().is_cancelled()) && !std::thread::panicking()
}

/// Unwinds with [`Cancelled`] (a cancellation point, once the caller has
/// cleaned up).
#[cold]
pub(crate) fn unwind_cancelled() -> ! {
    if cfg!(panic = "abort") {
        // `resume_unwind` would abort silently.
        note!(
            "coio: a cancelled coroutine must unwind, and this program is built with \
             panic = \"abort\": aborting. JoinHandle::cancel and Scope::cancel need \
             panic = \"unwind\" (a runtime's shutdown leaves its coroutines suspended \
             instead when panics abort)."
        );
        std::process::abort();
    }
    resume_unwind(Box::new(Cancelled))
}

/// Unwinds with [`Cancelled`] if the running coroutine was cancelled (and
/// is not unwinding already).
#[inline]
pub(crate) fn check_cancel(l: &worker::Local) {
    if cancel_pending(l) {
        unwind_cancelled();
    }
}

/// Waits until `done()` holds or `deadline` passes; returns whether
/// `done()` held. The caller has registered a waiter that will be woken
/// when `done()` may have become true. With `cancellable`, a cancelled
/// coroutine unwinds from here (before waiting, and after each wake).
pub(crate) fn wait_until(
    mut done: impl FnMut() -> bool,
    deadline: Option<Instant>,
    cancellable: bool,
    wait: Wait,
) -> bool {
    if done() {
        return true;
    }
    if worker::coroutine_local().is_some() {
        loop {
            let l = worker::coroutine_local().expect("coio: coroutine lost its worker");
            if cancellable {
                check_cancel(l);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return done();
            }
            l.block_current(deadline, false, wait);
            if done() {
                return true;
            }
        }
    }
    loop {
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return done();
                }
                std::thread::park_timeout(d - now);
            }
        }
        if done() {
            return true;
        }
    }
}

/// Whether the caller is a coroutine of a coio runtime.
///
/// ```
/// assert!(!coio::is_coroutine());
/// coio::run(|| assert!(coio::is_coroutine()));
/// ```
pub fn is_coroutine() -> bool {
    worker::coroutine_local().is_some()
}

/// A handle to the running coroutine.
///
/// ```
/// coio::run(|| {
///     let h = coio::Builder::new()
///         .name("greeter")
///         .spawn(|| format!("hello from {}", coio::current().name().unwrap_or("?")))
///         .unwrap();
///     assert_eq!(h.join().unwrap(), "hello from greeter");
/// });
/// ```
///
/// # Panics
/// Outside a coroutine (see [`is_coroutine`]).
pub fn current() -> Coroutine {
    match worker::coroutine_local() {
        Some(l) => Coroutine(l.current_task()),
        None => not_in_coroutine("coio::current"),
    }
}

/// A snapshot of the current runtime's counters and queues: per worker,
/// and totals (see [`Metrics`](crate::Metrics)).
///
/// ```
/// coio::run(|| {
///     coio::spawn(|| ()).join().unwrap();
///     let m = coio::metrics();
///     // This coroutine and the one it spawned.
///     assert_eq!(m.spawned, 2);
///     assert!(m.live >= 1);
/// });
/// ```
///
/// # Panics
/// Outside a coroutine of a coio runtime, with a message (use
/// [`Runtime::metrics`](crate::Runtime::metrics) there).
pub fn metrics() -> crate::Metrics {
    match worker::coroutine_local() {
        Some(l) => l.shared.metrics(),
        None => not_in_coroutine("coio::metrics"),
    }
}

#[cold]
#[track_caller]
pub(crate) fn not_in_coroutine(what: &str) -> ! {
    panic!(
        "{what} must be called from a coroutine of a coio runtime; \
         start one with coio::run(|| ...) or Runtime::block_on"
    )
}

/// Lets the other runnable coroutines of this worker run (Go's
/// `runtime.Gosched`); the caller goes to the back of the queue. On a plain
/// thread, `std::thread::yield_now`. A cancellation point.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// coio::run(|| {
///     let done = Arc::new(AtomicBool::new(false));
///     let flag = done.clone();
///     let child = coio::spawn(move || flag.store(true, Ordering::Release));
///     // A polling loop that lets the child (maybe on this worker) run.
///     while !done.load(Ordering::Acquire) {
///         coio::yield_now();
///     }
///     child.join().unwrap();
/// });
/// ```
pub fn yield_now() {
    match worker::coroutine_local() {
        Some(l) => {
            check_cancel(l);
            if !std::thread::panicking() {
                l.yield_current();
            }
        }
        None => std::thread::yield_now(),
    }
}

/// Blocks the current coroutine (or thread) for at least `dur`.
///
/// In a coroutine, only the coroutine waits: its worker runs others. The
/// timer is accurate to about a millisecond. A zero sleep is a
/// [`yield_now`]: a loop `while !ready() { sleep(Duration::ZERO) }` lets
/// the coroutine that makes `ready` true run, as `std::thread::sleep`
/// lets another thread.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// coio::run(|| {
///     let start = Instant::now();
///     coio::sleep(Duration::from_millis(5));
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
///
/// # Panics
/// Unwinds with [`Cancelled`] if the coroutine is cancelled while it
/// sleeps. A coroutine that sleeps while it is unwinding from a panic
/// blocks its whole worker thread for that time (a panicking coroutine
/// cannot be switched away from).
pub fn sleep(dur: Duration) {
    let Some(l) = worker::coroutine_local() else {
        return std::thread::sleep(dur);
    };
    let deadline = Instant::now().checked_add(dur);
    if deadline.is_some_and(|d| Instant::now() >= d) {
        // A zero (or already elapsed) sleep still lets the worker's other
        // coroutines run, as `thread::sleep(0)` lets other threads run: a
        // polling loop `while !ready { sleep(ZERO) }` must not hold the
        // worker for ever.
        check_cancel(l);
        return yield_now();
    }
    wait_until(|| false, deadline, true, Wait::Sleep);
}

/// Blocks until [`Coroutine::unpark`] makes the park token available, then
/// consumes it; returns at once if it is already available. May also
/// return spuriously (as `std::thread::park`). On a plain thread this is
/// `std::thread::park`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// coio::run(|| {
///     let ready = Arc::new(AtomicBool::new(false));
///     let flag = ready.clone();
///     let waiter = coio::spawn(move || {
///         // `park` may return spuriously: wait for the condition in a loop.
///         while !flag.load(Ordering::Acquire) {
///             coio::park();
///         }
///     });
///     ready.store(true, Ordering::Release);
///     waiter.coroutine().unpark();
///     waiter.join().unwrap();
/// });
/// ```
///
/// # Panics
/// Unwinds with [`Cancelled`] if the coroutine is cancelled.
pub fn park() {
    park_impl(None)
}

/// As [`park`], but returns after `dur` at the latest.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
///
/// coio::run(|| {
///     let ready = Arc::new(AtomicBool::new(false));
///     let (flag, me) = (ready.clone(), coio::current());
///     coio::spawn(move || {
///         flag.store(true, Ordering::Release);
///         me.unpark();
///     });
///     // Checks the flag when unparked, and at least every 10 ms.
///     while !ready.load(Ordering::Acquire) {
///         coio::park_timeout(Duration::from_millis(10));
///     }
/// });
/// ```
pub fn park_timeout(dur: Duration) {
    park_impl(Instant::now().checked_add(dur).or(Some(far_future())))
}

/// A deadline that never comes (for overflowing durations).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

fn park_impl(deadline: Option<Instant>) {
    park_as(deadline, Wait::Park);
}

/// The state behind the waker of a `future::block_on` in a coroutine: a
/// wake sets `notified` and unparks the coroutine.
pub(crate) struct FutureWaker {
    coroutine: Coroutine,
    /// Set by a wake, taken by the `block_on` before it parks. The
    /// coroutine's park token is shared by all its waits, and another one
    /// may take a wake meant for this `block_on`: a nested `block_on`,
    /// run by this one's future, parks on the same token, and when this
    /// one's future is woken meanwhile, that park takes the wake; this
    /// `block_on` would then park with nothing left to wake it.
    notified: AtomicBool,
}

/// The `Waker` functions of a [`FutureWaker`], whose data pointer is an
/// `Arc<FutureWaker>`'s (`Arc::into_raw`), each `Waker` owning one count.
/// Hand-made rather than `Waker::from(Arc)` so that the state can be
/// reached from the `Waker` alone ([`FutureWaker::of`]): the coroutine
/// keeps one `Waker` for all its `block_on`s (see
/// `local::Values::waker`), and a pair of it and an `Arc` cost a wake hop
/// 3% more instructions.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

/// # Safety (the four)
/// `p` is the data pointer of a `Waker` made by [`FutureWaker::waker`] (or
/// cloned from one), which owns one count of the `Arc`.
unsafe fn clone_raw(p: *const ()) -> RawWaker {
    // SAFETY: `p` is a live `Arc<FutureWaker>` (the caller's `Waker`
    // holds a count); the new `RawWaker` owns the one added.
    unsafe { Arc::increment_strong_count(p.cast::<FutureWaker>()) };
    RawWaker::new(p, &VTABLE)
}

unsafe fn wake_raw(p: *const ()) {
    // SAFETY: the `Waker` being consumed gives its count to this `Arc`.
    let w = unsafe { Arc::from_raw(p.cast::<FutureWaker>()) };
    w.wake();
}

unsafe fn wake_by_ref_raw(p: *const ()) {
    // SAFETY: live while the caller's `Waker` is.
    unsafe { &*p.cast::<FutureWaker>() }.wake();
}

unsafe fn drop_raw(p: *const ()) {
    // SAFETY: the `Waker` being dropped gives its count back.
    drop(unsafe { Arc::from_raw(p.cast::<FutureWaker>()) });
}

impl FutureWaker {
    /// A waker of the running coroutine `coroutine`.
    pub(crate) fn waker(coroutine: Coroutine) -> Waker {
        let p = Arc::into_raw(Arc::new(FutureWaker {
            coroutine,
            notified: AtomicBool::new(false),
        }));
        // SAFETY: `VTABLE`'s functions take `p` for what it is, an
        // `Arc<FutureWaker>` whose one count this `Waker` owns.
        unsafe { Waker::from_raw(RawWaker::new(p.cast(), &VTABLE)) }
    }

    /// The state of `waker`, which [`waker`](FutureWaker::waker) made.
    ///
    /// # Panics
    /// If another `Waker` is given (a bug in coio).
    #[inline]
    pub(crate) fn of(waker: &Waker) -> &FutureWaker {
        assert!(
            std::ptr::eq(waker.vtable(), &VTABLE),
            "coio: a block_on waker that coio did not make"
        );
        // SAFETY: made by `waker` (its vtable): the data pointer is a live
        // `Arc<FutureWaker>`, kept alive by `waker`, which the result
        // borrows.
        unsafe { &*waker.data().cast::<FutureWaker>() }
    }

    fn wake(&self) {
        self.notified.store(true, Release);
        self.coroutine.unpark();
    }

    /// Whether a wake came since the last call (see [`take_flag`]).
    #[inline]
    pub(crate) fn take_notified(&self) -> bool {
        take_flag(&self.notified)
    }
}

/// Takes a wake flag: whether a wake set it since the last take. A
/// relaxed look first (usually none came): a wake whose flag this misses
/// unparks the waiter after it sets the flag, so the park that follows
/// returns at once, and the next take sees it.
#[inline]
pub(crate) fn take_flag(flag: &AtomicBool) -> bool {
    flag.load(Relaxed) && flag.swap(false, Acquire)
}

/// The park of `future::block_on`: parks the running coroutine (a dump
/// shows it waiting for a future) if it is `owner`, the coroutine whose
/// waker the future was given. Else, without parking, the running
/// coroutine's id: a generator that `poll` suspended was resumed by
/// another coroutine, whose waker the future must get first (None: not in
/// a coroutine any more). One look-up for both.
pub(crate) fn park_future(owner: u64) -> Result<(), Option<u64>> {
    let Some(l) = worker::coroutine_local() else {
        return Err(None);
    };
    let id = l.with_current(|t| t.header().id);
    if id != owner {
        return Err(Some(id));
    }
    check_cancel(l);
    l.block_current(None, true, Wait::Future);
    // Woken: by unpark, by a cancellation, or spuriously.
    if let Some(l) = worker::coroutine_local() {
        check_cancel(l);
    }
    Ok(())
}

/// [`park`] or [`park_timeout`] that a dump shows as waiting for `wait`.
pub(crate) fn park_as(deadline: Option<Instant>, wait: Wait) {
    let Some(l) = worker::coroutine_local() else {
        match deadline {
            None => std::thread::park(),
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
        }
        return;
    };
    check_cancel(l);
    l.block_current(deadline, true, wait);
    // Woken: by unpark (which handed over the token), by the timer, by a
    // cancellation, or spuriously.
    if let Some(l) = worker::coroutine_local() {
        check_cancel(l);
    }
}
