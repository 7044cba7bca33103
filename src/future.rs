//! Futures in coroutines: [`block_on`] runs a future to completion,
//! parking only the calling coroutine while the future is pending.
//!
//! Most of Rust's networking ecosystem is async. A coroutine that needs one
//! async client calls `coio::future::block_on(fut)`: the future is polled
//! on the coroutine's own stack, and while it is pending the coroutine is
//! parked ([`park`](crate::park)) and its worker runs other coroutines. The
//! future's waker unparks the coroutine, from any thread (another
//! coroutine, a plain thread, another runtime's thread).
//!
//! # Design
//!
//! * **The waker** is the coroutine's [`Coroutine`](crate::Coroutine)
//!   handle and a `notified` flag behind one `Arc`, made by the
//!   coroutine's first call and kept for its next: a wake sets the flag
//!   and is the coroutine's `unpark`, one atomic read-modify-write of its
//!   state word, plus, only when the coroutine is parked, one push into
//!   its home worker's inbox (which wakes that worker if it sleeps). No
//!   allocation per wake; clones share the `Arc`. The flag, looked at
//!   before each park, keeps a wake that another wait of the coroutine
//!   took (a nested `block_on` shares its park token).
//! * **Spurious wakes are harmless**: the park token makes a wake that
//!   comes before the park count, and a park that returns for another
//!   reason (an unrelated `unpark`) parks again, the flag unset.
//! * **Cancellation** ([`JoinHandle::cancel`](crate::JoinHandle::cancel),
//!   runtime shutdown) unwinds the coroutine out of its park, and the
//!   future, pinned on the coroutine's stack, is dropped there, on the
//!   coroutine's own thread.
//! * **A waker that outlives its coroutine** keeps the coroutine's header
//!   alive (not its stack) until the waker is dropped, and waking it then
//!   does nothing: a finished coroutine's `unpark` is a no-op, and its
//!   memory is not recycled while referenced.
//! * Outside a coroutine, `block_on` parks the calling thread the same
//!   way, with a waker that unparks it.
//!
//! * **Timers**: [`sleep`] and [`sleep_until`] give a [`Sleep`] future on
//!   the worker's own timer heap.
//!
//! # The hazard this replaces
//!
//! `futures::executor::block_on`, `tokio::runtime::Runtime::block_on` and
//! any other wait that blocks the *thread* block the coroutine's whole
//! worker: every coroutine homed there waits too, and if the future is
//! completed by one of them, the worker never gets to run it (a hang with
//! one worker, and with several once enough coroutines block at once).
//! Use this `block_on` in coroutines instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Release};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::runtime::blocking::{FutureWaker, take_flag};
pub use crate::runtime::sleep::Sleep;

/// A future that completes after `dur`, on coio's timers: the async form
/// of [`coio::sleep`](crate::sleep), for async code in coroutines.
///
/// Polled in a coroutine (as in [`block_on`]), it arms a timer on the
/// coroutine's worker, like `coio::sleep` does; no timer thread. Polled on
/// a thread that is not a coio worker (another executor's), it falls back
/// to a helper thread per sleep (which ends when the sleep completes or is
/// dropped): use that executor's own timers there.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// coio::run(|| {
///     let t = Instant::now();
///     coio::future::block_on(coio::future::sleep(Duration::from_millis(20)));
///     assert!(t.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn sleep(dur: std::time::Duration) -> Sleep {
    Sleep::of(dur)
}

/// A future that completes at `deadline` (see [`sleep`]).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// coio::run(|| {
///     let at = Instant::now() + Duration::from_millis(10);
///     coio::future::block_on(coio::future::sleep_until(at));
///     assert!(Instant::now() >= at);
/// });
/// ```
pub fn sleep_until(deadline: std::time::Instant) -> Sleep {
    Sleep::until(deadline)
}

/// A waker that unparks a plain thread.
struct ThreadWaker {
    thread: Thread,
    /// Set by a wake, taken before the thread parks: the thread's park
    /// token is shared by all its parks, a nested `block_on`'s too (see
    /// `blocking::FutureWaker`).
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Release);
        self.thread.unpark();
    }
}

/// Runs `fut` to completion and returns its output. In a coroutine only
/// the coroutine waits while the future is pending (its worker runs other
/// coroutines); outside one, the calling thread waits. A future woken
/// while it was polled (one that wakes itself, as `yield_now().await`
/// does) is polled again after the worker's other runnable coroutines, as
/// an executor queues a self-woken task behind the others. See the
/// [module docs](self) for the waker and for cancellation.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::task::{Context, Poll, Waker};
///
/// /// A one-shot value, filled in by someone else.
/// #[derive(Default)]
/// struct Slot(Mutex<(Option<u32>, Option<Waker>)>);
/// struct Get(Arc<Slot>);
///
/// impl Future for Get {
///     type Output = u32;
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
///         let mut s = self.0 .0.lock().unwrap();
///         match s.0.take() {
///             Some(v) => Poll::Ready(v),
///             None => {
///                 s.1 = Some(cx.waker().clone());
///                 Poll::Pending
///             }
///         }
///     }
/// }
///
/// let v = coio::Runtime::builder().workers(1).build().unwrap().block_on(|| {
///     let slot = Arc::new(Slot::default());
///     let filler = slot.clone();
///     // On the same (only) worker: it runs while the caller's future is
///     // pending.
///     coio::spawn(move || {
///         let mut s = filler.0.lock().unwrap();
///         s.0 = Some(42);
///         if let Some(w) = s.1.take() {
///             w.wake();
///         }
///     });
///     coio::future::block_on(Get(slot))
/// });
/// assert_eq!(v, 42);
/// ```
///
/// # Panics
/// If `fut`'s `poll` panics, the panic goes on in the caller. Also if a
/// [`Generator`](crate::Generator) that runs this `block_on` in a
/// coroutine, suspended inside `poll`, is resumed outside any coroutine.
/// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
/// cancelled while the future is pending (the future is dropped on the
/// way).
pub fn block_on<F: Future>(mut fut: F) -> F::Output {
    // Pinned where the argument lies (`pin!` would move it to a new place
    // first: a copy of the whole future, a `memcpy` per call for a large
    // one).
    // SAFETY: `fut` is shadowed here and never moved again; it is dropped
    // in place when this function returns or unwinds.
    let mut fut = unsafe { Pin::new_unchecked(&mut fut) };
    // In a coroutine: a waker that unparks it, the one its last block_on
    // kept if any. (Taken out of that cache: a nested block_on, run by
    // this one's future, makes its own.)
    let make = || FutureWaker::waker(crate::current());
    if let Some((mut owner, mut waker)) = crate::runtime::local::take_waker(make) {
        // A wake of the cached waker's last use, after its last poll: not
        // this call's.
        FutureWaker::of(&waker).take_notified();
        let out = loop {
            // A leaf future that spent the coroutine's budget asks for a
            // yield (see `worker::coop_poll_proceed`): made here, where no
            // poll is in progress; also after a `Ready` (a leaf may have
            // asked inside a future that went on without it, the other arm
            // of a select ready: the ask would stay, and every later leaf
            // would go on without one).
            if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                if crate::runtime::worker::coop_yield_wanted() {
                    crate::runtime::worker::coop_yield();
                }
                break v;
            }
            if crate::runtime::worker::coop_yield_wanted() {
                // Polled again, without parking; a cancelled coroutine
                // unwinds here (nothing was taken by the pending poll).
                crate::runtime::worker::coop_yield_cancellable();
                continue;
            }
            // Parks until this call's waker is woken (its flag, taken
            // here): a park may return for another reason, and another wait
            // of the coroutine may take the wake's park token (a nested
            // `block_on`, run by this one's future). Unless this runs in a
            // generator that `poll` suspended and another coroutine of this
            // worker resumed: the coroutine that would park, and that the
            // future must wake, is then that one, and the future is polled
            // again with its waker.
            let state = FutureWaker::of(&waker);
            if state.take_notified() {
                // Woken while it polled: polled again without parking, but
                // after the worker's other runnable coroutines, as an
                // executor queues a task that woke itself behind the others
                // (a future that waits by waking itself, `yield_now().await`
                // in a loop, waits for them). A cancelled coroutine unwinds
                // here as at a park (such a future never parks).
                crate::runtime::blocking::yield_now();
                continue;
            }
            loop {
                match crate::runtime::blocking::park_future(owner) {
                    Ok(()) => {
                        if state.take_notified() {
                            break;
                        }
                    }
                    Err(Some(id)) => {
                        (owner, waker) = (id, make());
                        break;
                    }
                    Err(None) => panic!(
                        "coio: a generator running future::block_on in a coroutine was \
                         resumed outside any coroutine; resume it in a coroutine"
                    ),
                }
            }
        };
        // For the coroutine's next block_on (skipped if this one unwinds).
        crate::runtime::local::keep_waker(owner, waker);
        return out;
    }
    let notify = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(notify.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // As in a coroutine.
        while !take_flag(&notify.notified) {
            thread::park();
        }
    }
}
