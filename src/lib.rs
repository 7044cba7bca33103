//! # coio
//!
//! Go's programming model for Rust, on stable Rust: code written like plain
//! blocking code runs as cheap stackful coroutines, scheduled M:N over a few
//! worker threads with work stealing.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = coio::run(|| {
//!     // 10,000 coroutines that each sleep: they sleep at the same time.
//!     let handles: Vec<_> = (0..10_000u64)
//!         .map(|i| coio::spawn(move || { coio::sleep(Duration::from_millis(1)); i }))
//!         .collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 49_995_000);
//! ```
//!
//! The names follow std: [`spawn`] / [`JoinHandle::join`], [`sleep`],
//! [`yield_now`], [`park`] / [`Coroutine::unpark`], [`current`], [`scope`],
//! [`Builder`]; [`coroutine_local!`] replaces `thread_local!` inside
//! coroutines. Every blocking call also works on a plain thread outside a
//! runtime, by blocking the thread. [`JoinHandle::cancel`] unwinds a
//! coroutine from its current or next blocking point.
//!
//! # How coroutines move between threads
//!
//! They do not, once started. Compiled code may keep a thread-local's
//! address across calls, so a coroutine suspended on one thread and resumed
//! on another could touch the first thread's thread-locals: undefined
//! behaviour from safe code (this is why `may`'s `spawn` is `unsafe`). In
//! coio the worker that first runs a coroutine is its home for life, and
//! work stealing moves only coroutines that have not started yet (a header
//! and a `Send` closure, no stack). The trade-off: started coroutines are
//! not rebalanced, and a coroutine that computes for long or blocks its
//! thread in a system call holds up the other coroutines of its worker. So
//! where a coroutine *starts* is chosen with care: a worker that homes more
//! than its share of the runtime's coroutines deals new ones to the workers
//! below theirs (a burst of connections accepted in a quiet moment spreads
//! over every worker), and new work spreads by stealing. What placement
//! cannot even out is a few long-lived coroutines getting busy at the same
//! time on one worker: give heavy work to a fresh child coroutine and wait
//! for it, and an idle worker can take it (ARCHITECTURE.md, "What
//! placement cannot fix", has the numbers). Its own worker may start it
//! first, though (the parent waiting at once leaves it the next thing to
//! run there), and a child that then computes without yielding holds up
//! the coroutines homed on that worker, the parent's timeouts included: a
//! `recv_timeout` on its result fires only once the child yields. Long
//! computations call [`yield_now`] now and then, or run on
//! [`blocking`]:
//!
//! ```
//! coio::run(|| {
//!     let (jobs, incoming) = coio::chan::bounded::<u64>(0);
//!     // A long-lived coroutine (one per connection, say) that now and
//!     // then gets heavy work: each piece goes to a fresh child.
//!     let server = coio::spawn(move || {
//!         let mut total = 0;
//!         for n in incoming {
//!             total += coio::spawn(move || (0..n).sum::<u64>()).join().unwrap();
//!         }
//!         total
//!     });
//!     for n in [1_000, 2_000] {
//!         jobs.send(n).unwrap();
//!     }
//!     drop(jobs);
//!     assert_eq!(server.join().unwrap(), 499_500 + 1_999_000);
//! });
//! ```
//!
//! Blocking calls belong on the blocking pool ([`blocking`], [`fs`]);
//! coroutines can be named ([`Builder::name`]); a monitor warns on stderr,
//! with the coroutine's stack, when a worker has not come back to the
//! scheduler for 100 ms ([`RuntimeBuilder::stall_warning`]); and
//! [`dump`] (or a signal, [`RuntimeBuilder::dump_signal`]) shows what every
//! coroutine waits for and where, as Go's goroutine dump does.
//!
//! # Blocking inside coroutines
//!
//! A worker runs one coroutine at a time, and coroutines are not
//! preempted: a coroutine that blocks its *thread* (rather than waiting
//! through coio) stops every other coroutine of its worker until it
//! returns, and deadlocks if what it waits for needs one of them. The
//! stall monitor's warning points here. What blocks a worker, and what to
//! use instead:
//!
//! | Blocks the worker | Use instead |
//! |---|---|
//! | `std::thread::sleep` | [`sleep`] |
//! | a `std::sync::Mutex` or `RwLock` guard held across a wait (a sleep, a receive, socket I/O): with 2 workers, a second coroutine locking it blocks its thread, and the holder may be homed behind it | [`sync::Mutex`], [`sync::RwLock`] (a std guard taken and dropped with no wait in between is fine) |
//! | `std::sync::mpsc`, crossbeam-channel, std's `Condvar`, `Barrier`, a thread's `join` | [`chan`], [`sync`], [`JoinHandle::join`] |
//! | std's `LazyLock`, `OnceLock` or `Once` (or `once_cell`, `lazy_static`) whose initializer waits (reads a file, asks a server): a second coroutine using it meanwhile blocks its worker, where the initializer's coroutine may be homed | [`sync::LazyLock`], [`sync::OnceLock`], [`sync::Once`] (std's are fine when the initializer never waits) |
//! | `futures::executor::block_on`, a tokio runtime's `block_on` | [`future::block_on`], `compat::tokio::block_on` (feature `tokio`) |
//! | std's sockets, and libraries that open their own (ureq's default transport, blocking database clients) | [`net`] (adopt a socket with `from_std` or `From<OwnedFd>`), the library's transport hook over `coio::net::TcpStream` where it has one, or [`blocking`] |
//! | blocking system calls: files, DNS lookups (`ToSocketAddrs` with a host name), C libraries that block | [`fs`], [`blocking`] (an elastic thread pool; only the coroutine waits) |
//! | a long computation without a wait | a [`yield_now`] every millisecond or so, or [`blocking`] for the heavy part (a fresh coroutine may start on the same worker) |
//!
//! I/O and channels that never have to wait (a peer that keeps a socket
//! full, read a byte at a time; a producer on another worker that keeps a
//! channel full) are taken care of: the 128th operation in a row that did
//! not wait, on a socket or another descriptor of coio's (also one in the
//! non-blocking mode that returned `WouldBlock`, and a connect or accept
//! that failed at once), or a channel's
//! `send`, `recv` or select (not its `try_` forms, nor a select with a
//! bare `default =>`), blocking or async (in [`future::block_on`]), yields
//! the coroutine (a cooperative budget, as tokio's; a timed wait of
//! [`sync`]'s or a channel's that times out without waiting counts too,
//! and a zero [`sleep`] yields, so that polling loops with zero timeouts
//! let the coroutines they wait for run;
//! [`WorkerMetrics::coop_yields`] counts these). A yield is a
//! wait like any other: a std `Mutex` guard held across one blocks a
//! coroutine of the same worker that asks for it, and the worker with it;
//! a thread-local `RefCell` borrowed across one is found borrowed by the
//! next coroutine that runs on the worker and borrows it.
//!
//! Large stack frames are the other hazard: a coroutine's stack is
//! [`DEFAULT_STACK_SIZE`] (128 KiB) unless asked otherwise, so a 256 KiB
//! array on the stack overflows it (the guard page stops it, and the
//! process aborts with a message naming the coroutine). Put big buffers
//! on the heap (`vec![0; n]`, `Box`), or give the coroutine a bigger
//! stack with [`Builder::stack_size`] (one coroutine) or
//! [`RuntimeBuilder::stack_size`] (all of them). Unoptimized (debug)
//! builds need several times the stack of optimized ones: flate2's gzip
//! encoder, for one, needs over 256 KiB unoptimized and less than 128 KiB
//! optimized. For debug builds, raise the size (say
//! `stack_size(if cfg!(debug_assertions) { 1 << 20 } else { coio::DEFAULT_STACK_SIZE })`)
//! or build the dependencies optimized (`[profile.dev.package."*"]
//! opt-level = 1` in Cargo.toml):
//!
//! ```
//! coio::run(|| {
//!     let h = coio::Builder::new()
//!         .stack_size(1 << 20)
//!         .spawn(|| {
//!             let big = [1u8; 256 * 1024]; // on the stack: needs the 1 MiB
//!             big.iter().map(|&b| u64::from(b)).sum::<u64>()
//!         })
//!         .unwrap();
//!     assert_eq!(h.join().unwrap(), 256 * 1024);
//! });
//! ```
//!
//! # I/O
//!
//! [`net`] has std's socket types with std's names and semantics; [`io::Fd`]
//! wraps any other non-blocking descriptor. An operation that would block
//! parks the coroutine until its worker's netpoller (epoll, one per worker,
//! polled by the worker itself) reports the descriptor ready; on a plain
//! thread it blocks the thread. Timeouts and cancellation work on every
//! wait. Anything written against `std::io::Read` and `Write` runs on them
//! unchanged:
//!
//! ```
//! use std::io::{Read, Write};
//! use coio::net::{TcpListener, TcpStream};
//!
//! coio::run(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = coio::spawn(move || -> std::io::Result<()> {
//!         let (mut conn, _) = listener.accept()?;
//!         let mut buf = [0; 4];
//!         conn.read_exact(&mut buf)?;
//!         conn.write_all(&buf)
//!     });
//!     let mut conn = TcpStream::connect(addr)?;
//!     conn.write_all(b"ping")?;
//!     let mut back = [0; 4];
//!     conn.read_exact(&mut back)?;
//!     assert_eq!(&back, b"ping");
//!     server.join().unwrap()
//! })
//! .unwrap();
//! ```
//!
//! # Futures
//!
//! An async client in a coroutine: [`future::block_on`] runs a future to
//! completion, parking only the coroutine while it is pending; the
//! future's waker unparks it from any thread. Do not use a thread-blocking
//! `block_on` (`futures::executor::block_on`, a tokio runtime's) in a
//! coroutine: it blocks the whole worker, and hangs if the future needs a
//! coroutine of that worker to complete.
//!
//! The other way round, async code awaits coroutines and shares channels
//! with them: a [`JoinHandle`] is a future, and channels have
//! [`send_async`](chan::Sender::send_async) and
//! [`recv_async`](chan::Receiver::recv_async). coio's sockets serve async
//! code too (`poll_read`, `accept_async`, and the I/O traits of tokio,
//! futures and hyper behind cargo features), on the same poller; hyper 1.x
//! runs on coio with `compat::hyper`'s executor and timer, and futures
//! tied to tokio's reactor (reqwest, sqlx) run from coroutines with
//! `compat::tokio::block_on`. See [`compat`].
//!
//! Under the runtime sits the foundation: the context switch, guarded and
//! pooled stacks with overflow reports, and [`Generator`], a stackful
//! generator driven on the current thread:
//!
//! ```
//! use coio::Generator;
//!
//! // A generator can yield from any depth of ordinary function calls.
//! fn walk(tree: &[u32], y: &coio::Yielder<(), u32>) {
//!     for &x in tree {
//!         y.yield_(x);
//!     }
//! }
//! let tree = vec![3, 1, 4];
//! let g = Generator::new(move |y, ()| walk(&tree, y));
//! assert_eq!(g.collect::<Vec<_>>(), [3, 1, 4]);
//! ```
//!
//! # Unsafe code
//!
//! Every `unsafe` block carries a `// SAFETY:` comment, and
//! `unsafe_op_in_unsafe_fn` is denied. The goal is that no safe API can
//! cause undefined behaviour; the thread-local rule that makes this true for
//! coroutines is explained in the docs of [`coroutine`]. Narrow gaps
//! remain (overflows of canary stacks on kernels without userfaultfd write
//! protection, and, on plain threads that are not coio's own, generators
//! unwound, or leaked frames read by scoped threads, at thread exit after a
//! std thread-local their frames use); ARCHITECTURE.md, "Known gaps",
//! describes them exactly.

/// `eprintln!` that ignores a failed write, as std's panic hook does.
/// coio prints from panic hooks, destructors and the scheduler loop, where
/// `eprintln!`'s own panic (stderr closed, or a pipe whose reader is gone:
/// `prog 2>&1 | head -1`) would abort the process or unwind where no
/// unwind is expected.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Runs `f`, user code that coio calls where a panic must not unwind (a
/// waker, a destructor, a detached job): its result, or None if it
/// panicked. The panic hook has reported the panic; its payload is leaked,
/// since dropping it could panic too.
pub(crate) fn surviving<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            std::mem::forget(payload);
            None
        }
    }
}

/// Wakes a user's waker (an async task's, kept by a future of coio's)
/// from coio's own code (a worker's poller or timers, a channel's or a
/// lock's hand-over, a coroutine's end), which must go on whatever the
/// waker does: a panic is reported by the hook and goes no further.
pub(crate) fn wake_surviving(w: std::task::Waker) {
    surviving(|| w.wake());
}

mod arch;
pub mod chan;
pub mod compat;
pub mod coroutine;
mod driver;
pub mod fs;
pub mod future;
pub mod io;
pub mod net;
mod park;
mod runtime;
pub mod signal;
mod stack;
pub mod sync;
#[cfg(target_os = "linux")]
mod trace;

pub use coroutine::generator::{
    ForcedUnwind, Generator, GeneratorBuilder, GeneratorState, Yielder,
};
pub use runtime::blocking::{current, is_coroutine, metrics, park, park_timeout, sleep, yield_now};
pub use runtime::dump::{dump, dump_grouped};
pub use runtime::local::LocalKey;
pub use runtime::pool::blocking;
pub use runtime::scope::{Scope, ScopedJoinHandle, scope};
pub use runtime::task::{Cancelled, Coroutine, CoroutineId, JoinHandle};
pub use runtime::{Builder, IoDriver, Metrics, Runtime, RuntimeBuilder, WorkerMetrics, run, spawn};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE, StackPolicy};

#[doc(hidden)]
pub use stack::resident_bytes;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
