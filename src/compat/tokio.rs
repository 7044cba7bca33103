//! Futures tied to tokio's reactor (reqwest, sqlx, tonic, ...) called from
//! coroutines.
//!
//! Such a future registers its sockets and timers with "the current tokio
//! runtime" when it is first polled, and panics if there is none. [`block_on`]
//! polls it in the calling coroutine (parking only the coroutine, as
//! [`coio::future::block_on`](crate::future::block_on)) inside the context
//! of a tokio runtime that coio starts the first time it is needed: one
//! tokio worker thread, whose reactor and timers drive the future's I/O.
//!
//! # Cost, and when to prefer the native path
//!
//! Every wake of such a future is a hop between threads: tokio's reactor
//! thread sees the socket ready and wakes the coroutine on its worker,
//! which then polls the future; waking a sleeping worker costs a futex
//! wake (tens of microseconds on a small machine) where a coroutine on
//! coio's own sockets is woken by its own worker. That is fine for a
//! database query or an HTTP call to another service; for a hot path,
//! prefer crates over `std::io::Read`/`Write` on coio's sockets, or
//! async crates over coio's sockets (the `tokio`, `futures-io` and `hyper`
//! I/O traits), which run on coio's poller with no hop.
//!
//! Futures that do not need tokio's reactor (channels, `futures` combinators,
//! coio's own sockets) should use `coio::future::block_on` directly.
//!
//! # Two things to know
//!
//! * **Build the future inside.** Some clients start timers or sockets
//!   when the future is *created*, not first polled (reqwest's `send()`
//!   with a timeout makes a tokio sleep at once): created outside the
//!   tokio context, they panic with "there is no reactor running". Write
//!   `block_on(async { client.get(url).send().await })`, not
//!   `block_on(client.get(url).send())`.
//! * **Stack depth.** Async clients nest deep in their first poll: in a
//!   debug build reqwest's first `https` request takes 136–140 KiB of
//!   stack (a release build under 48 KiB), more than coio's default 128
//!   KiB, and overflows it (the process aborts with a report naming the
//!   coroutine). Give such coroutines larger stacks
//!   ([`Builder::stack_size`](crate::Builder::stack_size), or the
//!   runtime's `stack_size`), e.g. 256 KiB.

use std::cell::RefCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The tokio context [`block_on`]'s futures entered on this thread.
type Entry = Option<ManuallyDrop<::tokio::runtime::EnterGuard<'static>>>;

thread_local! {
    /// The polls (and drops) of [`block_on`]'s futures in progress on this
    /// thread, and the tokio context they entered together (see
    /// [`Entered`]). The guard is never dropped by the thread's exit (a
    /// generator suspended inside a poll and leaked leaves it entered):
    /// tokio's own thread-local may be gone by then.
    static ENTERED: RefCell<(usize, Entry)> = const { RefCell::new((0, None)) };
}

/// The tokio runtime coio starts for [`block_on`].
fn runtime() -> &'static ::tokio::runtime::Runtime {
    static RUNTIME: OnceLock<::tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("coio-tokio")
            // Its threads run user code (tasks, `spawn_blocking` closures),
            // which may leave generator frames borrowing their
            // thread-locals: they never expire (tokio's blocking threads
            // would after 10 s idle, and a thread kept for such frames
            // would hold up every later one, each joining the one before),
            // and are treated as coio's own should they stop all the same
            // (the hooks run on the thread itself; see
            // `coroutine::end_owned`).
            // (A century: finite, for condvars that add it to a clock.)
            .thread_keep_alive(std::time::Duration::from_secs(100 * 365 * 24 * 3600))
            .on_thread_start(crate::coroutine::mark_thread_owned)
            .on_thread_stop(crate::coroutine::end_owned)
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                panic!("coio: cannot start the tokio runtime for coio::compat::tokio: {e}")
            })
    })
}

/// A handle to the tokio runtime coio starts for [`block_on`] (started by
/// this call if need be): to spawn tokio tasks on it, or to enter its
/// context.
///
/// ```
/// coio::run(|| {
///     // A task on tokio's thread, awaited from the coroutine.
///     let t = coio::compat::tokio::handle().spawn(async { 40 + 2 });
///     assert_eq!(coio::future::block_on(t).unwrap(), 42);
/// });
/// ```
pub fn handle() -> &'static ::tokio::runtime::Handle {
    runtime().handle()
}

/// Runs `fut`, a future that needs a tokio runtime's reactor or timers,
/// to completion, parking only the calling coroutine (or thread, outside
/// one) while it is pending. See the [module docs](self) for the cost.
///
/// The future need not be `'static` or `Send`: it is polled on the
/// caller's stack, inside the tokio runtime's context (entered while it
/// is polled, and while it is dropped), so the sockets and timers it
/// creates belong to that runtime. It may block its coroutine inside a
/// poll (a blocking coio call); the thread's other coroutines see the
/// context meanwhile.
///
/// ```
/// coio::run(|| {
///     // e.g. a reqwest call, `block_on(async { client.get(url).send().await })`:
///     // its connection pool and sockets live on tokio's reactor, the
///     // coroutine waits for the response. The future is built inside the
///     // `async` block, in tokio's context (see the module docs).
///     let n = coio::compat::tokio::block_on(async {
///         tokio::time::sleep(std::time::Duration::from_millis(10)).await;
///         7
///     });
///     assert_eq!(n, 7);
/// });
/// ```
///
/// Not in a task on that runtime's own worker thread (spawned through
/// [`handle`]): it would park the thread that drives the future, and wait
/// for ever (as tokio's own `block_on` would; tokio refuses that one with
/// a panic). `.await` the future there instead; a `spawn_blocking`
/// closure may call it.
///
/// A tokio context the caller entered itself (`Handle::enter`) stays
/// current for such a future while another coroutine of the thread is
/// inside a poll of one (the polls in progress on a thread share one
/// entry), and for one nested in such a future under that guard: the
/// future then runs in the caller's context.
///
/// # Panics
/// If the tokio runtime cannot be started (no threads), and as `fut`'s
/// `poll` does.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    crate::future::block_on(InTokio {
        handle: handle(),
        fut: ManuallyDrop::new(fut),
    })
}

/// A future polled, and dropped, inside the tokio runtime's context.
struct InTokio<F> {
    /// The runtime's handle, got (the runtime started) before the future
    /// is wrapped: a start that fails panics, which `Drop` must not.
    handle: &'static ::tokio::runtime::Handle,
    /// Dropped by `InTokio`'s own `Drop`, inside the context: a future
    /// cancelled with its coroutine is dropped as it unwinds, and its
    /// destructors may need the context too (sqlx's pooled connection
    /// spawns a task to give itself back).
    fut: ManuallyDrop<F>,
}

/// The tokio context, entered while this lives. All the [`block_on`]
/// polls in progress on one thread share one entry: the first to begin
/// enters and the last to end leaves. A future may switch its coroutine
/// inside its poll (a blocking coio call, a nested `block_on`), and the
/// thread's other coroutines then begin and end polls of their own
/// meanwhile; one `EnterGuard` each would be dropped out of the order they
/// were made in, which tokio refuses with a panic (and then leaves the
/// thread in the context for good). Meanwhile, the other coroutines of
/// the thread see the context, as they would with a guard each.
struct Entered;

impl Entered {
    /// Reaches the thread-local anew at each call: the coroutine may have
    /// switched since the last (out of line, so that no address of it is
    /// kept across a switch).
    #[inline(never)]
    fn enter(handle: &'static ::tokio::runtime::Handle) -> Entered {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            if e.0 == 0 {
                e.1 = Some(ManuallyDrop::new(handle.enter()));
            }
            e.0 += 1;
        });
        Entered
    }
}

impl Drop for Entered {
    #[inline(never)]
    fn drop(&mut self) {
        let guard = ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            e.0 -= 1;
            if e.0 == 0 { e.1.take() } else { None }
        });
        // Dropped outside the borrow.
        drop(guard.map(ManuallyDrop::into_inner));
    }
}

impl<F: Future> Future for InTokio<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = Entered::enter(self.handle);
        // SAFETY: `fut` is structurally pinned: never moved out of `self`,
        // which is pinned, and dropped in place by `InTokio`'s `Drop`.
        let fut = unsafe { self.map_unchecked_mut(|s| &mut *s.fut) };
        fut.poll(cx)
    }
}

impl<F> Drop for InTokio<F> {
    fn drop(&mut self) {
        let _entered = Entered::enter(self.handle);
        // SAFETY: dropped once, here, in place (it was pinned), and never
        // used after.
        unsafe { ManuallyDrop::drop(&mut self.fut) };
    }
}
