//! The runtime: coroutines scheduled M:N over worker threads.
//!
//! ```text
//!              spawn (from a coroutine)        spawn / block_on (outside)
//!                        │                                │
//!   worker 0  ┌──────────▼─────────┐   steal half   ┌─────▼────┐
//!   thread    │ fresh (FIFO deque) │◄───────────────│ injector │
//!             │ lifo slot, ready   │                └──────────┘
//!             │ inbox ◄── wakes from other threads
//!             │ timers (heap), registry of started coroutines
//!             └────────────────────┘   ... one per worker
//! ```
//!
//! # The model, and why
//!
//! Rust code caches thread-local addresses within a function, so a
//! coroutine suspended on one thread and resumed on another could touch
//! the first thread's thread-locals: undefined behaviour from safe code.
//! coio therefore never moves a *started* coroutine: the worker that first
//! runs a coroutine is its home for the rest of its life, and a wake sends
//! it there. What moves is work that has not started: a fresh coroutine is
//! only a header and a `Send` closure (its stack is taken from the pool
//! when it first runs), and idle workers steal those, half a victim's queue
//! at a time.
//!
//! The trade-off: long-running coroutines are not rebalanced after they
//! start, and a worker stuck in a blocking system call (or a long
//! computation) delays the coroutines homed on it. Mitigations: new work
//! spreads by stealing and placement; blocking calls belong on the
//! blocking pool (`pool`); and coroutines can be named, so that reports say
//! which one misbehaved.
//!
//! # Layout
//!
//! * `task`: the task header, its states, wakes, join handles;
//! * `worker`: the per-worker queues and scheduling loop (with
//!   `worker/placement` and `worker/search`); each worker owns a driver
//!   (`crate::driver`: epoll, its wake-ups and a timer heap) below the
//!   runtime;
//! * `idle`: the searching/parking protocol between workers;
//! * `pool`: the blocking pool;
//! * `monitor`: the stall monitor, and what workers publish for placement
//!   and metrics;
//! * `metrics`: `coio::metrics()` and the schedule trace (`COIO_SCHEDTRACE`);
//! * `blocking`: `sleep`, `park`, `yield_now`, and the wait loop every
//!   blocking call goes through;
//! * `scope`: scoped coroutines that borrow from their parent;
//! * `sleep`: async sleeps (`Sleep`) on the workers' timers;
//! * `local`: `coroutine_local!`.

pub(crate) mod blocking;
pub(crate) mod dump;
mod idle;
pub(crate) mod local;
pub(crate) mod metrics;
mod monitor;
mod panic_note;
pub(crate) mod pool;
pub(crate) mod scope;
pub(crate) mod signals;
pub(crate) mod sleep;
pub(crate) mod task;
pub(crate) mod worker;

use std::io;
use std::panic::{Location, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::thread;
use std::time::Duration;

use crossbeam_deque::{Injector, Worker as Deque};

use crate::driver::Driver;
use crate::stack::{self, DEFAULT_STACK_SIZE, StackPolicy};
pub use metrics::{Metrics, WorkerMetrics};
use task::{JoinHandle, Spec, Task, TaskCell, TaskRef};

/// An identity of the runtime whose shared state is `shared`, never 0: the
/// state's address (see `pool::serving`).
#[inline]
pub(crate) fn shared_id(shared: &Arc<Shared>) -> usize {
    Arc::as_ptr(shared) as usize
}

/// What the workers of one runtime share.
pub(crate) struct Shared {
    /// One per worker.
    pub(crate) remotes: Box<[worker::Remote]>,
    /// Fresh coroutines spawned from outside the runtime.
    pub(crate) injector: Injector<TaskRef>,
    pub(crate) idle: idle::Idle,
    /// Shutdown has begun.
    pub(crate) closed: AtomicBool,
    /// Default usable stack size of coroutines.
    pub(crate) stack_size: usize,
    pub(crate) policy: StackPolicy,
    /// The stall monitor's state.
    pub(crate) monitor: monitor::Monitor,
    /// Finished tasks passed between workers for reuse.
    pub(crate) spares: worker::Spares,
    /// A coroutine that could not get a stack was reported (once per
    /// runtime: see `worker::Local::no_stack`).
    pub(crate) no_stack_reported: AtomicBool,
    /// What the workers wait for I/O with.
    pub(crate) io_driver: IoDriver,
    /// Fresh coroutines queued from outside the workers (for metrics).
    pub(crate) injected: std::sync::atomic::AtomicU64,
    /// Queued coroutines that finished without starting (no stack, or left
    /// in the injector at shutdown), for metrics.
    pub(crate) abandoned: std::sync::atomic::AtomicU64,
    /// One per worker: its dump request (see `dump`).
    pub(crate) dumps: Box<[crossbeam_utils::CachePadded<dump::Slot>]>,
}

impl Shared {
    /// Queues a fresh task from outside the runtime's workers.
    fn inject(&self, task: TaskRef) {
        self.injected.fetch_add(1, Relaxed);
        self.injector.push(task);
        self.notify_work(true);
    }

    /// Fresh work was made stealable: wakes a parked worker if the idle
    /// protocol says so (`Idle::notify_work`; without `fenced`,
    /// `Idle::notify_local_work`, for work on the caller's own queue).
    #[inline]
    pub(crate) fn notify_work(&self, fenced: bool) {
        let sleeper = if fenced {
            self.idle.notify_work()
        } else {
            self.idle.notify_local_work()
        };
        if let Some(i) = sleeper {
            self.remotes[i].unpark();
        }
    }
}

/// A coio runtime: worker threads running coroutines.
///
/// Dropping it shuts it down: every coroutine still alive is cancelled (it
/// unwinds from its blocking point, running its destructors), coroutines
/// that never started are dropped, and the worker threads are joined. A
/// runtime cannot wait for itself: dropped inside one of its own
/// coroutines, or inside [`blocking`](crate::blocking) called by one (the
/// last `Arc<Runtime>` going there, say), it says so on stderr and is
/// leaked instead, its workers left running. Only the dropping thread is
/// checked: a drop on another thread that one of the runtime's coroutines
/// waits for (a thread joined inside `blocking`, say) waits for that
/// coroutine, which waits for it: a deadlock, as two threads joining each
/// other. Dropped in a coroutine of *another* runtime, it shuts down as
/// from a thread, and that coroutine's worker thread waits for it (nothing
/// else runs there meanwhile).
///
/// Coroutines spawned during the shutdown (by a destructor of a cancelled
/// one, say) never start: their handles' `join` returns at once an error
/// whose payload is [`Cancelled`](crate::Cancelled).
///
/// In a program built with `panic = "abort"`, where nothing unwinds, the
/// coroutines that started are left suspended instead of cancelled: their
/// stacks, and everything on them, are leaked (no destructor runs), with
/// the runtime's shared state (their wakes still land there); a join of
/// one of them from a thread never returns, and the drop does not wait for
/// their [`blocking`](crate::blocking) calls. Coroutines that never started
/// are dropped as usual.
///
/// A worker thread whose coroutines leave frames suspended for good (the
/// coroutines left suspended where panics abort; a [`Generator`] left
/// suspended in a thread-local, leaked with `mem::forget`, or dropped
/// where it cannot be unwound) does not exit: it parks for good, and the
/// drop does not wait for it. Those frames may borrow the thread's
/// thread-locals (inside `LocalKey::with`) and share the borrows with
/// other threads (a `std::thread::scope` they are suspended in), so the
/// thread-locals must never be destroyed. Such a thread keeps its worker's
/// memory and file descriptors (its poller) until the process ends.
/// Threads of the blocking pool, the helper thread of an async
/// [`sleep`](crate::future::sleep) polled off the workers, the signal
/// relay thread do the same; the threads of the tokio runtime that
/// `coio::compat::tokio` starts never expire.
///
/// [`Generator`]: crate::Generator
///
/// ```
/// let rt = coio::Runtime::builder().workers(2).build()?;
/// // From a plain thread: spawn, and join (which blocks the thread).
/// let h = rt.spawn(|| 1 + 2);
/// assert_eq!(h.join().unwrap(), 3);
/// // Or run a closure as a coroutine and wait for its result.
/// assert_eq!(rt.block_on(|| coio::spawn(|| 4).join().unwrap()), 4);
/// drop(rt); // cancels what is still running, joins the workers
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    /// The workers' threads, by index.
    threads: Vec<thread::JoinHandle<()>>,
    /// How each worker left its loop (see `worker::End`); in a mutex only
    /// to keep `Runtime` `Sync` (the drop alone reads it, through `&mut`).
    ends: std::sync::Mutex<std::sync::mpsc::Receiver<worker::End>>,
    monitor: Option<thread::JoinHandle<()>>,
    /// The schedule trace's thread (`RuntimeBuilder::schedtrace`).
    schedtrace: Option<thread::JoinHandle<()>>,
}

/// The kernel interface a runtime's workers do their I/O and sleep with
/// (see [`RuntimeBuilder::driver`]).
///
/// ```
/// use coio::{IoDriver, Runtime};
///
/// let rt = Runtime::builder().driver(IoDriver::Epoll).build()?;
/// assert_eq!(rt.io_driver(), IoDriver::Epoll);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoDriver {
    /// Readiness through one epoll instance per worker: a socket operation
    /// is tried, and on `WouldBlock` its coroutine waits for the socket's
    /// next event (Go's netpoller).
    Epoll,
    /// Completions through one io_uring per worker (Linux 6.1 or later):
    /// a coroutine's socket call (read, write, their vectored forms,
    /// accept, TCP connect, UDP's sends and receives) and file call
    /// (`coio::fs`: open, read, write, sync) is handed to the kernel with
    /// the caller's own buffer, which the kernel fills or reads when it
    /// can, and the submissions of many coroutines go in one system call;
    /// files need no thread pool. Plain threads, sockets in non-blocking
    /// mode, `UnixDatagram` and [`Fd`](crate::io::Fd) keep the readiness
    /// path, through the same epoll instance, which the worker watches
    /// through its ring.
    ///
    /// ```
    /// use coio::{IoDriver, Runtime};
    ///
    /// let rt = Runtime::builder().driver(IoDriver::Uring).build()?;
    /// // Uring where the kernel allows it, else Epoll (said on stderr).
    /// let driver = rt.io_driver();
    /// let n = rt.block_on(|| {
    ///     let path = std::env::temp_dir().join(format!("coio-doc-{}", std::process::id()));
    ///     coio::fs::write(&path, b"through the ring")?;
    ///     let n = coio::fs::read(&path)?.len();
    ///     coio::fs::remove_file(&path)?;
    ///     std::io::Result::Ok(n)
    /// })?;
    /// assert_eq!(n, 16);
    /// # let _ = driver;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    Uring,
}

impl IoDriver {
    /// The driver named by `COIO_DRIVER`, if set.
    fn from_env() -> io::Result<Option<IoDriver>> {
        env_setting("COIO_DRIVER", "epoll or uring", |v| match v {
            "epoll" => Some(IoDriver::Epoll),
            "uring" | "io_uring" => Some(IoDriver::Uring),
            _ => None,
        })
    }
}

/// The stall monitor's default threshold (`RuntimeBuilder::stall_warning`).
const STALL_WARNING: Duration = Duration::from_millis(100);

/// The stall warning threshold `COIO_STALL_WARNING` asks for: Some(None)
/// for `off` (or 0).
fn stall_warning_from_env() -> io::Result<Option<Option<Duration>>> {
    env_setting(
        "COIO_STALL_WARNING",
        "a number of milliseconds or off",
        |v| {
            if v.eq_ignore_ascii_case("off") {
                return Some(None);
            }
            // Zero however spelled ("00") is off, as on the builder.
            v.parse::<u64>()
                .ok()
                .map(|ms| (ms > 0).then(|| Duration::from_millis(ms)))
        },
    )
}

/// Submission entries of each worker's io_uring by default.
const URING_ENTRIES: u32 = 256;

/// Settings for a [`Runtime`]: `Runtime::builder().workers(2).build()`.
///
/// ```
/// use std::time::Duration;
///
/// let rt = coio::Runtime::builder()
///     .workers(2)
///     .stack_size(256 * 1024)
///     .thread_name("app-worker")
///     .stall_warning(Some(Duration::from_millis(500)))
///     .build()?;
/// assert_eq!(rt.workers(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    stack_size: usize,
    policy: StackPolicy,
    thread_name: String,
    /// None: from `COIO_STALL_WARNING`, else [`STALL_WARNING`]; Some(None):
    /// off.
    stall_warning: Option<Option<Duration>>,
    driver: Option<IoDriver>,
    uring_entries: u32,
    /// None: from `COIO_SCHEDTRACE`; Some(None): off.
    schedtrace: Option<Option<Duration>>,
    /// None: from `COIO_DUMP_SIGNAL`; Some(None): none.
    dump_signal: Option<Option<i32>>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            workers: None,
            stack_size: DEFAULT_STACK_SIZE,
            policy: StackPolicy::Auto,
            thread_name: "coio-worker".into(),
            stall_warning: None,
            driver: None,
            uring_entries: URING_ENTRIES,
            schedtrace: None,
            dump_signal: None,
        }
    }
}

impl RuntimeBuilder {
    /// Number of worker threads. Default: the `COIO_WORKERS` environment
    /// variable if set (Go's `GOMAXPROCS`), else
    /// `std::thread::available_parallelism()`.
    ///
    /// More workers than cores is a trade, not a speed-up: a started
    /// coroutine never leaves its worker, but the kernel moves worker
    /// *threads* between cores, so with 2× or 4× as many workers a random
    /// subset of busy coroutines spreads better over the cores (measured on
    /// 2 cores: 0.74 of the ideal with 2 workers, 0.76 with 4, 0.82 with 8)
    /// and tail latency can drop when the process shares its cores, at the
    /// price of throughput (an echo server: 3–22% fewer requests/s) and
    /// more context switches. BENCHMARKS.md ("Balance") has the numbers.
    ///
    /// Fewer workers than cores can serve more when the process shares its
    /// cores with other busy work and each worker would be idle part of
    /// the time: every worker sleeps and is woken for its own coroutines
    /// (a started coroutine never leaves its worker, where tokio's and
    /// Go's idle threads run whatever is ready), so the wake-ups add up
    /// with the workers. Measured on 2 cores shared with a load generator,
    /// echo at 50 connections: 1 worker served 1.4–1.6× the requests of
    /// 2, at a fifth of the p99 (BENCHMARKS.md, "Echo on 2 shared cores
    /// at 50 connections"). Channel traffic between coroutines of
    /// different workers suffers the same way: on 2 cores with two other
    /// busy processes, rounds of it took ~35 ms with 2 workers against
    /// ~4 ms with 1 (BENCHMARKS.md, "Two workers when the cores are
    /// busy"; workers already spin only briefly while they wait for
    /// cores).
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).build()?;
    /// assert_eq!(rt.workers(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Default stack size of the runtime's coroutines (usable bytes; see
    /// [`GeneratorBuilder::stack_size`](crate::GeneratorBuilder::stack_size)
    /// for the rounding). Default [`DEFAULT_STACK_SIZE`].
    ///
    /// ```
    /// // 1 MiB stacks: room for a 256 KiB local array.
    /// let rt = coio::Runtime::builder().stack_size(1 << 20).build()?;
    /// let n = rt.block_on(|| {
    ///     let table = [1u8; 256 * 1024];
    ///     std::hint::black_box(&table).iter().map(|&b| b as usize).sum::<usize>()
    /// });
    /// assert_eq!(n, 256 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How stack overflows are caught; see [`StackPolicy`].
    ///
    /// ```
    /// use coio::StackPolicy;
    ///
    /// // Canary stacks: one mapping for many stacks (millions of coroutines).
    /// let rt = coio::Runtime::builder().stack_policy(StackPolicy::Canary).build()?;
    /// assert_eq!(rt.block_on(|| coio::spawn(|| 7).join().unwrap()), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_policy(mut self, policy: StackPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Prefix of the worker threads' names (`<prefix>-<index>`). Default
    /// `coio-worker`. A NUL byte in it makes [`build`](Self::build) fail
    /// (`InvalidInput`).
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).thread_name("app").build()?;
    /// let name = rt.block_on(|| std::thread::current().name().map(String::from));
    /// assert_eq!(name.as_deref(), Some("app-0"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Print a warning to stderr when a worker has been running one
    /// coroutine for longer than this without it coming back to the
    /// scheduler (a long computation, or a blocking system call, holds up
    /// every coroutine homed on that worker). Default: the
    /// `COIO_STALL_WARNING` environment variable, in milliseconds (`off`:
    /// none), if set; else 100 ms, long enough that ordinary work never
    /// trips it and short enough to catch a stall a user would feel.
    /// `None` disables the monitor thread that watches for this, whatever
    /// the variable says.
    ///
    /// The warning names the coroutine (id, name, spawn site) and shows its
    /// stack, captured on the stuck worker's thread with a signal
    /// (`SIGURG`, as Go's preemption uses), once per stall. A system call
    /// the coroutine is blocked in sees the signal: most restart by
    /// themselves and std retries `thread::sleep`, but a call with a
    /// timeout of its own fails with `EINTR`, which std returns as an
    /// error (`ErrorKind::Interrupted`): a std socket read or write with a
    /// timeout set, `poll`, `select` or `nanosleep` called from C. That
    /// coroutine is blocking its worker (what the warning is about); until
    /// it is fixed, `None` here (or `COIO_STALL_WARNING=off`) keeps the
    /// signal away.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Batch work that computes for long on purpose: warn past a second only.
    /// let batch = coio::Runtime::builder()
    ///     .stall_warning(Some(Duration::from_secs(1)))
    ///     .build()?;
    /// // No monitor thread at all.
    /// let quiet = coio::Runtime::builder().stall_warning(None).build()?;
    /// # drop((batch, quiet));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stall_warning(mut self, after: Option<Duration>) -> Self {
        self.stall_warning = Some(after.filter(|d| !d.is_zero()));
        self
    }

    /// Print one line of the runtime's [`Metrics`] to stderr every
    /// `period` (Go's `schedtrace`): workers, how many are awake and
    /// searching, coroutines spawned and alive, and per worker its
    /// runnable, fresh and homed counts. Default: the `COIO_SCHEDTRACE`
    /// environment variable, in milliseconds, if set; else none. `None`
    /// turns it off whatever the variable says.
    ///
    /// ```text
    /// SCHED 1000ms: workers=2 awake=2 searching=0 spawned=10234 live=10001 runnable=[12 9] fresh=[0 0] homed=[5003 4997]
    /// ```
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = coio::Runtime::builder()
    ///     .schedtrace(Some(Duration::from_secs(1)))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn schedtrace(mut self, period: Option<Duration>) -> Self {
        self.schedtrace = Some(period.filter(|p| !p.is_zero()));
        self
    }

    /// Write a coroutine dump ([`Runtime::dump`]) to stderr whenever the
    /// process receives signal `sig` (`libc::SIGQUIT`, say: Go's choice,
    /// sent by Ctrl-\\ in a terminal), and go on running (where Go
    /// exits). Dumps of more than 1,000 coroutines are grouped
    /// ([`Runtime::dump_grouped`]). Default: the `COIO_DUMP_SIGNAL`
    /// environment variable (a name such as `QUIT`, `SIGQUIT`, `USR1`, or a
    /// number), if set; else none. `None` turns it off whatever the
    /// variable says.
    ///
    /// The signal's handler only writes a byte to a pipe: the dump is made
    /// by a thread of its own (one per process, started with the first
    /// runtime that asks), so a signal that arrives anywhere, even inside
    /// a stuck worker, is safe. While a runtime watches `sig`, the signal's
    /// previous handling is replaced; it is restored when the last such
    /// runtime is dropped.
    ///
    /// ```
    /// let rt = coio::Runtime::builder()
    ///     .dump_signal(Some(libc::SIGUSR2))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn dump_signal(mut self, sig: Option<i32>) -> Self {
        self.dump_signal = Some(sig);
        self
    }

    /// What the workers do their I/O and sleep with; see [`IoDriver`].
    /// Default: the `COIO_DRIVER` environment variable (`epoll` or
    /// `uring`) if set, else [`IoDriver::Epoll`]; a choice made here wins
    /// over the variable.
    ///
    /// Where io_uring cannot be used (a kernel older than 6.1, io_uring
    /// disabled by `kernel.io_uring_disabled` or forbidden by a seccomp
    /// filter, as in Docker's default profile, or not enough memory for
    /// the rings), the runtime says so in one line on stderr and uses epoll;
    /// [`Runtime::io_driver`] tells which one it got.
    ///
    /// ```
    /// use coio::{IoDriver, Runtime};
    ///
    /// let rt = Runtime::builder().driver(IoDriver::Epoll).build()?;
    /// assert_eq!(rt.io_driver(), IoDriver::Epoll);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn driver(mut self, driver: IoDriver) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Submission entries of each worker's io_uring (rounded up to a power
    /// of two by the kernel; at most 32,768). Default 256. Submissions
    /// beyond it in one batch cost an extra system call, not a failure.
    /// A size the kernel refuses makes the runtime fall back to epoll, as
    /// for any ring that cannot be made.
    ///
    /// ```
    /// use coio::{IoDriver, Runtime};
    ///
    /// let rt = Runtime::builder()
    ///     .driver(IoDriver::Uring)
    ///     .uring_entries(1024)
    ///     .build()?;
    /// # let _ = rt;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn uring_entries(mut self, entries: u32) -> Self {
        self.uring_entries = entries;
        self
    }

    /// Starts the worker threads.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(2).build()?;
    /// assert_eq!(rt.workers(), 2);
    /// let err = coio::Runtime::builder().workers(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for zero workers or more than 4096, a thread name
    /// with a NUL byte, an unparsable
    /// `COIO_WORKERS`, `COIO_DRIVER`, `COIO_STALL_WARNING` or
    /// `COIO_DUMP_SIGNAL`, a dump signal that cannot be caught, or an
    /// impossible stack size; the OS error if a thread cannot be started.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(n) => n,
            None => workers_from_env()?,
        };
        if workers == 0 || workers > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("coio: a runtime needs 1 to 4096 workers, not {workers}"),
            ));
        }
        if self.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "coio: RuntimeBuilder::thread_name must not contain a NUL byte",
            ));
        }
        let stack_size = stack::usable_size(self.stack_size)?;
        panic_note::install();
        let stall_warning = match self.stall_warning {
            Some(t) => t,
            None => stall_warning_from_env()?.unwrap_or(Some(STALL_WARNING)),
        };
        let deques: Vec<Deque<TaskRef>> = (0..workers).map(|_| Deque::new_fifo()).collect();
        let wanted = match self.driver {
            Some(d) => d,
            None => IoDriver::from_env()?.unwrap_or(IoDriver::Epoll),
        };
        let (io_driver, drivers) = match wanted {
            IoDriver::Uring => match uring_drivers(workers, self.uring_entries) {
                Ok(drivers) => (IoDriver::Uring, drivers),
                // Out of descriptors is no lack of io_uring: said as such
                // (epoll would run short of them next).
                Err((e, i)) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return Err(worker_error(e, i, workers, "its netpoller and io_uring"));
                }
                Err((e, _)) => {
                    note!("coio: io_uring is not available here ({e}); using epoll");
                    (IoDriver::Epoll, epoll_drivers(workers)?)
                }
            },
            IoDriver::Epoll => (IoDriver::Epoll, epoll_drivers(workers)?),
        };
        let shared = Arc::new(Shared {
            remotes: deques
                .iter()
                .zip(&drivers)
                .map(|(d, p)| worker::Remote::new(d.stealer(), p.handle().clone()))
                .collect(),
            injector: Injector::new(),
            idle: idle::Idle::new(workers),
            closed: AtomicBool::new(false),
            stack_size,
            policy: self.policy,
            monitor: monitor::Monitor::new(workers, stall_warning),
            spares: worker::Spares::default(),
            no_stack_reported: AtomicBool::new(false),
            io_driver,
            injected: std::sync::atomic::AtomicU64::new(0),
            abandoned: std::sync::atomic::AtomicU64::new(0),
            dumps: (0..workers)
                .map(|_| crossbeam_utils::CachePadded::new(dump::Slot::default()))
                .collect(),
        });
        let (ended, ends) = std::sync::mpsc::channel();
        let mut rt = Runtime {
            shared: shared.clone(),
            threads: Vec::with_capacity(workers),
            ends: std::sync::Mutex::new(ends),
            monitor: None,
            schedtrace: None,
        };
        for (index, (deque, driver)) in deques.into_iter().zip(drivers).enumerate() {
            let shared = shared.clone();
            let ended = ended.clone();
            let handle = thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || worker::worker_main(shared, index, deque, driver, ended))
                .map_err(|e| worker_error(e, index, workers, "its thread"))?;
            rt.threads.push(handle);
        }
        if stall_warning.is_some() {
            let shared = shared.clone();
            let prefix = self.thread_name.clone();
            let handle = thread::Builder::new()
                .name(format!("{}-monitor", self.thread_name))
                .spawn(move || monitor::run(&shared, &prefix))
                .map_err(|e| start_error(e, "the runtime's stall monitor thread"))?;
            rt.shared
                .monitor
                .thread
                .get_or_init(|| handle.thread().clone());
            rt.monitor = Some(handle);
        }
        let dump_signal = match self.dump_signal {
            Some(s) => s,
            None => dump::signal_from_env()?,
        };
        if let Some(sig) = dump_signal {
            dump::watch_signal(&rt.shared, sig)?;
        }
        let trace = match self.schedtrace {
            Some(p) => p,
            None => metrics::schedtrace_period(),
        };
        if let Some(period) = trace {
            let shared = shared.clone();
            rt.schedtrace = Some(
                thread::Builder::new()
                    .name(format!("{}-schedtrace", self.thread_name))
                    .spawn(move || metrics::schedtrace(&shared, period))
                    .map_err(|e| start_error(e, "the runtime's schedtrace thread"))?,
            );
        }
        Ok(rt)
    }
}

/// The error of a runtime whose worker `index` of `workers` could not get
/// `what`: the system's error, with the numbers that explain it (each
/// worker needs a thread and three file descriptors: its epoll instance, a
/// second handle on it, and the eventfd that wakes it, and its ring with
/// io_uring; it also keeps its
/// thread's schedstat open if it can, which is not needed: see
/// `worker::search::Contention`).
#[cold]
fn worker_error(e: io::Error, index: usize, workers: usize, what: &str) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => format!(
            "; each worker needs 3 file descriptors, 4 with io_uring ({} for {workers} \
             workers on epoll): raise the \
             limit (ulimit -n) or ask for fewer workers (COIO_WORKERS, RuntimeBuilder::workers)",
            3 * workers
        ),
        Some(libc::EAGAIN | libc::ENOMEM) => "; ask for fewer workers (COIO_WORKERS, \
             RuntimeBuilder::workers) or raise the process's thread and memory limits"
            .to_string(),
        _ => String::new(),
    };
    io::Error::new(
        e.kind(),
        format!("coio: cannot start worker {index} of {workers}: {what}: {e}{hint}"),
    )
}

/// `e`, said to be the error of starting `what` (a runtime's stall
/// monitor or schedtrace thread, the signal relay), so that the user
/// learns what could not be made.
#[cold]
pub(crate) fn start_error(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("coio: cannot start {what}: {e}"))
}

/// One epoll driver per worker.
fn epoll_drivers(workers: usize) -> io::Result<Vec<Driver>> {
    (0..workers)
        .map(|i| Driver::new().map_err(|e| worker_error(e, i, workers, "its netpoller")))
        .collect()
}

/// One io_uring driver per worker, or why not and for which worker.
#[cfg(target_os = "linux")]
fn uring_drivers(workers: usize, entries: u32) -> Result<Vec<Driver>, (io::Error, usize)> {
    (0..workers)
        .map(|i| Driver::with_ring(entries).map_err(|e| (e, i)))
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn uring_drivers(_: usize, _: u32) -> Result<Vec<Driver>, (io::Error, usize)> {
    Err((
        io::Error::new(io::ErrorKind::Unsupported, "io_uring is Linux's"),
        0,
    ))
}

/// Workers from `COIO_WORKERS`, else the available parallelism.
fn workers_from_env() -> io::Result<usize> {
    let n = env_setting("COIO_WORKERS", "a positive number of worker threads", |v| {
        v.parse::<usize>().ok().filter(|&n| n > 0)
    })?;
    Ok(n.unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get())))
}

/// The setting in the environment variable `name`, if set: `parse` of its
/// trimmed value, or an `InvalidInput` error saying it must be `expected`.
pub(crate) fn env_setting<T>(
    name: &str,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> io::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => parse(v.trim()).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("coio: {name} must be {expected}, not {v:?}"),
            )
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("coio: {name}: {e}"),
        )),
    }
}

impl Runtime {
    /// A runtime with the default settings (see [`RuntimeBuilder`]).
    ///
    /// ```
    /// let rt = coio::Runtime::new()?;
    /// assert_eq!(rt.block_on(|| 2 + 2), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Runtime> {
        RuntimeBuilder::default().build()
    }

    /// Settings for a new runtime.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).build()?;
    /// assert_eq!(rt.block_on(|| coio::metrics().workers.len()), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Number of worker threads.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(3).build()?;
    /// assert_eq!(rt.workers(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// What the workers do their I/O and sleep with: the driver asked for
    /// ([`RuntimeBuilder::driver`]), or epoll where io_uring was asked for
    /// but is not available.
    ///
    /// ```
    /// use coio::{IoDriver, Runtime};
    ///
    /// let rt = Runtime::builder().driver(IoDriver::Uring).build()?;
    /// match rt.io_driver() {
    ///     IoDriver::Uring => println!("sockets and files through io_uring"),
    ///     _ => println!("io_uring unavailable here: epoll"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn io_driver(&self) -> IoDriver {
        self.shared.io_driver
    }

    /// A snapshot of the runtime's counters and queues (see [`Metrics`]),
    /// from any thread.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(|| coio::sleep(std::time::Duration::from_millis(1)));
    /// let w = &rt.metrics().workers[0];
    /// assert!(w.timers_fired >= 1 && w.polls >= 2);
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Writes a dump of every coroutine of this runtime to `out`: what
    /// each waits for, for how long, on which worker, its stack and where
    /// it was spawned, in the layout of Go's goroutine dump (see
    /// [`coio::dump`](crate::dump) for the layout). Works from anywhere,
    /// while the workers are busy or stuck: nothing is stopped or resumed.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).build().unwrap();
    /// let parked = rt.spawn(coio::park);
    /// std::thread::sleep(std::time::Duration::from_millis(10));
    /// let mut out = Vec::new();
    /// rt.dump(&mut out).unwrap();
    /// assert!(String::from_utf8(out).unwrap().contains("[park, "));
    /// parked.coroutine().unpark();
    /// parked.join().unwrap();
    /// ```
    ///
    /// # Errors
    /// Those of writing to `out`.
    pub fn dump(&self, out: &mut dyn std::io::Write) -> io::Result<()> {
        dump::dump_shared(&self.shared, out, dump::Layout::Full)
    }

    /// As [`dump`](Self::dump), with coroutines in identical states and
    /// stacks shown once, with their count (pprof's `debug=1`): for dumps
    /// of very many coroutines.
    ///
    /// ```
    /// let rt = coio::Runtime::builder().workers(1).build().unwrap();
    /// let (tx, rx) = coio::chan::bounded::<()>(0);
    /// let waiting: Vec<_> = (0..100)
    ///     .map(|_| {
    ///         let rx = rx.clone();
    ///         rt.spawn(move || rx.recv())
    ///     })
    ///     .collect();
    /// // Once all of them wait (they start in batches), one entry.
    /// let mut dump = String::new();
    /// for _ in 0..500 {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     let mut out = Vec::new();
    ///     rt.dump_grouped(&mut out).unwrap();
    ///     dump = String::from_utf8(out).unwrap();
    ///     if dump.contains("100 coroutine(s) [chan receive, up to ") {
    ///         break;
    ///     }
    /// }
    /// assert!(dump.contains("100 coroutine(s) [chan receive, up to "), "{dump}");
    /// drop(tx);
    /// for h in waiting {
    ///     assert!(h.join().unwrap().is_err());
    /// }
    /// ```
    ///
    /// # Errors
    /// Those of writing to `out`.
    pub fn dump_grouped(&self, out: &mut dyn std::io::Write) -> io::Result<()> {
        dump::dump_shared(&self.shared, out, dump::Layout::Grouped)
    }

    /// For tests and measurements: how many started, unfinished
    /// coroutines each worker homes, as the workers last published it (the
    /// `homed` of [`metrics`](Self::metrics), kept for the benchmarks that
    /// read it).
    #[doc(hidden)]
    pub fn worker_homes(&self) -> Vec<usize> {
        self.shared
            .monitor
            .progress
            .iter()
            .map(|p| p.homed())
            .collect()
    }

    /// Runs `f` as a coroutine on this runtime and returns its result,
    /// blocking the calling thread until then. Coroutines it spawned keep
    /// running after it returns. `f` may borrow from the caller: it has
    /// finished (or was dropped, if the runtime was shut down) before this
    /// returns.
    ///
    /// ```
    /// let rt = coio::Runtime::new()?;
    /// let words = vec!["a", "bb", "ccc"];
    /// // The closure may borrow: it has finished when block_on returns.
    /// let total = rt.block_on(|| {
    ///     let lens: Vec<_> = words.iter().map(|w| w.len()).collect();
    ///     lens.iter().sum::<usize>()
    /// });
    /// assert_eq!(total, 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `f` panics, the panic is resumed here. Called from a coroutine
    /// (which would block its worker thread), it panics with a message:
    /// use [`Runtime::spawn`] (or [`spawn`](crate::spawn) for the
    /// coroutine's own runtime) and `join` there.
    /// Also if `f`'s captures do not fit on the coroutine's stack (their size
    /// plus 4 KiB exceeds it), with a message: box large captures or ask
    /// for a larger stack ([`Builder::stack_size`],
    /// [`RuntimeBuilder::stack_size`]). A closure is moved onto its
    /// coroutine's stack when it starts, and may be copied there more than
    /// once (debug builds do), so captures of more than a fraction of the
    /// stack are better boxed.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if blocking::is_coroutine() {
            panic!(
                "coio: Runtime::block_on called from a coroutine; it would block the worker \
                 thread. Use runtime.spawn(..).join() instead (coio::spawn(..).join() for the \
                 coroutine's own runtime)"
            );
        }
        // The closure travels boxed, but is moved onto the stack to run.
        assert_fits::<F>(self.shared.stack_size);
        let mut out: Option<T> = None;
        let slot = &mut out;
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || *slot = Some(f()));
        // SAFETY: the job borrows `f`'s captures and `out`; we do not return
        // (nor unwind: nothing below panics before the join is complete)
        // until the task has finished running or dropping it, so the borrows
        // outlive every use.
        let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
        let handle = self.spawn_boxed(job, None, 0, Location::caller());
        match handle.join() {
            Ok(()) => out.expect("coio: block_on's coroutine finished without a result"),
            Err(payload) => resume_unwind(payload),
        }
    }

    /// Spawns a coroutine on this runtime (from anywhere).
    ///
    /// ```
    /// let rt = coio::Runtime::new()?;
    /// let handles: Vec<_> = (0..4).map(|i| rt.spawn(move || i * 10)).collect();
    /// let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(results, [0, 10, 20, 30]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `f`'s captures do not fit on the coroutine's stack (their size
    /// plus 4 KiB exceeds it), with a message: box large captures or ask
    /// for a larger stack ([`Builder::stack_size`],
    /// [`RuntimeBuilder::stack_size`]). A closure is moved onto its
    /// coroutine's stack when it starts, and may be copied there more than
    /// once (debug builds do), so captures of more than a fraction of the
    /// stack are better boxed.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        assert_fits::<F>(self.shared.stack_size);
        let task = TaskCell::new(f, None, Location::caller());
        spawn_task(&self.shared, task.clone());
        JoinHandle::new(task)
    }

    fn spawn_boxed(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
        name: Option<Box<str>>,
        stack_size: usize,
        site: &'static Location<'static>,
    ) -> JoinHandle<()> {
        let spec = (name.is_some() || stack_size != 0).then(|| Spec::new(name, stack_size));
        let task = TaskCell::new(f, spec, site);
        spawn_task(&self.shared, task.clone());
        JoinHandle::new(task)
    }
}

/// Panics with [`closure_too_big`]'s message if a coroutine's closure of
/// type `F` cannot fit on a stack of `stack_size` bytes. Free for closures
/// that fit on the smallest stack (the check folds away at compile time).
#[inline(always)]
fn assert_fits<F>(stack_size: usize) {
    if let Err(e) = check_fits::<F>(stack_size) {
        panic!("{e}");
    }
}

/// [`closure_too_big`]'s error if a coroutine's closure of type `F` cannot
/// fit on a stack of `stack_size` bytes (folds away for closures that fit
/// on the smallest stack).
#[inline(always)]
fn check_fits<F>(stack_size: usize) -> io::Result<()> {
    if !fits_on_any_stack::<F>() && !crate::coroutine::fits_on_stack::<F>(stack_size) {
        return Err(closure_too_big::<F>(stack_size));
    }
    Ok(())
}

/// Whether a closure of type `F` fits on every stack coio makes.
#[inline(always)]
const fn fits_on_any_stack<F>() -> bool {
    std::mem::size_of::<F>() + std::mem::align_of::<F>() + 4096 <= stack::MIN_STACK_SIZE
}

/// Why a coroutine's closure of type `F` is refused (it is moved onto the
/// coroutine's stack when it starts, and would overflow it there), as
/// `Generator` refuses one.
#[cold]
fn closure_too_big<F>(stack_size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "coio: the coroutine's closure ({} bytes) does not fit on its stack of {stack_size} \
             bytes; box its large captures or ask for a larger stack (Builder::stack_size, \
             RuntimeBuilder::stack_size)",
            std::mem::size_of::<F>(),
        ),
    )
}

/// Queues a fresh task on `shared`'s runtime: on the current worker if the
/// caller is one of its coroutines, else through the injector. After
/// shutdown began, the task is abandoned (cancelled) at once.
fn spawn_task(shared: &Arc<Shared>, task: TaskRef) {
    if shared.closed.load(Acquire) {
        task.abandon(Box::new(task::Cancelled));
        return;
    }
    match worker::coroutine_local() {
        Some(l) if Arc::ptr_eq(&l.shared, shared) => l.spawn(task),
        _ => shared.inject(task),
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(l) = worker::local()
            && Arc::ptr_eq(&l.shared, &self.shared)
        {
            // Joining our own thread would never return.
            note!(
                "coio: a Runtime was dropped from inside one of its own coroutines; \
                 it is leaked instead of shut down"
            );
            return;
        }
        if pool::serving(shared_id(&self.shared)) {
            // The coroutine that waits for this job cannot finish before
            // the job returns, and shutdown waits for it: a deadlock.
            note!(
                "coio: a Runtime was dropped inside coio::blocking, called by one of its own \
                 coroutines; it is leaked instead of shut down (shutdown would wait for that \
                 coroutine, which waits for this function)"
            );
            return;
        }
        dump::unwatch_signal(&self.shared);
        self.shared.closed.store(true, SeqCst);
        for r in self.shared.remotes.iter() {
            r.unpark();
        }
        // Each started worker says how it ended: a worker left with live
        // frames stays parked for good and is not joined (see the end of
        // `worker::worker_main`); the others are.
        let mut threads: Vec<_> = self.threads.drain(..).map(Some).collect();
        let ends = self
            .ends
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for _ in 0..threads.len() {
            // An error: every worker's sender is gone (each sends first).
            let Ok(end) = ends.recv() else { break };
            match end {
                worker::End::Exits(i) => {
                    if let Some(t) = threads[i].take() {
                        let _ = t.join();
                    }
                }
                worker::End::Stays(i) => drop(threads[i].take()),
            }
        }
        if let Some(m) = self.monitor.take() {
            self.shared.monitor.stop.store(true, SeqCst);
            m.thread().unpark();
            let _ = m.join();
        }
        if let Some(t) = self.schedtrace.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Whatever was injected after the workers stopped looking.
        loop {
            match self.shared.injector.steal() {
                crossbeam_deque::Steal::Success(t) => {
                    self.shared.abandoned.fetch_add(1, Relaxed);
                    t.abandon(Box::new(task::Cancelled))
                }
                crossbeam_deque::Steal::Empty => break,
                crossbeam_deque::Steal::Retry => {}
            }
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

/// Starts a runtime with the default settings, runs `f` on it as the main
/// coroutine and returns its result; the runtime is shut down before this
/// returns (coroutines still running are cancelled).
///
/// ```
/// let answer = coio::run(|| {
///     let child = coio::spawn(|| 6 * 7);
///     child.join().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
///
/// # Panics
/// If the runtime cannot start (for example a bad `COIO_WORKERS`), with the
/// reason; if `f` panics, its panic is resumed here; if `f` does not fit on
/// a coroutine's stack (see [`Runtime::block_on`]). Called from a coroutine
/// (a runtime inside a runtime, whose wait would block the caller's worker
/// thread), it panics with a message before starting anything: spawn the
/// work with [`spawn`] and `join` it instead.
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    if blocking::is_coroutine() {
        panic!(
            "coio::run called from a coroutine: the caller is already in a coio runtime, and \
             waiting for a second one would block its worker thread. Use coio::spawn(..) and \
             join() for the work instead"
        );
    }
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("coio::run: cannot start the runtime: {e}"),
    };
    rt.block_on(f)
}

/// Spawns a coroutine on the current runtime and returns a handle to join
/// it (as `std::thread::spawn`). It starts on this worker or on another
/// one that steals it, and runs there for the rest of its life.
///
/// ```
/// coio::run(|| {
///     let handles: Vec<_> = (1..=3).map(|i| coio::spawn(move || i * 10)).collect();
///     let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
///     assert_eq!(total, 60);
/// });
/// ```
///
/// # Panics
/// When called outside a coroutine of a coio runtime (there is no runtime
/// to spawn on): start one with [`run`] or [`Runtime::block_on`], or use
/// [`Runtime::spawn`]. Also:
/// If `f`'s captures do not fit on the coroutine's stack (their size
/// plus 4 KiB exceeds it), with a message: box large captures or ask
/// for a larger stack ([`Builder::stack_size`],
/// [`RuntimeBuilder::stack_size`]). A closure is moved onto its
/// coroutine's stack when it starts, and may be copied there more than
/// once (debug builds do), so captures of more than a fraction of the
/// stack are better boxed.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(l) = worker::coroutine_local() else {
        blocking::not_in_coroutine("coio::spawn")
    };
    assert_fits::<F>(l.shared.stack_size);
    let task = l.new_task(f, None, Location::caller());
    if l.shared.closed.load(Relaxed) {
        task.abandon(Box::new(task::Cancelled));
    } else {
        l.spawn(task.clone());
    }
    JoinHandle::new(task)
}

/// Settings for a new coroutine (as `std::thread::Builder`):
/// `coio::Builder::new().name("worker").stack_size(1 << 20).spawn(f)`.
///
/// ```
/// coio::run(|| {
///     let h = coio::Builder::new()
///         .name("resolver")
///         .stack_size(256 * 1024)
///         .spawn(|| coio::current().name().map(String::from))
///         .unwrap();
///     assert_eq!(h.join().unwrap().as_deref(), Some("resolver"));
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Default settings: no name, the runtime's stack size.
    ///
    /// ```
    /// coio::run(|| -> std::io::Result<()> {
    ///     let h = coio::Builder::new().spawn(|| 1 + 1)?;
    ///     assert_eq!(h.join().unwrap(), 2);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The coroutine's name: [`Coroutine::name`](crate::Coroutine::name)
    /// returns it, and a stack overflow report shows it.
    ///
    /// ```
    /// coio::run(|| {
    ///     let h = coio::Builder::new().name("parser").spawn(|| ()).unwrap();
    ///     assert_eq!(h.coroutine().name(), Some("parser"));
    ///     h.join().unwrap();
    /// });
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Usable stack size in bytes (rounded up to pages and to at least
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)).
    ///
    /// ```
    /// coio::run(|| {
    ///     // A coroutine with large locals asks for a larger stack.
    ///     let h = coio::Builder::new()
    ///         .stack_size(1 << 20)
    ///         .spawn(|| {
    ///             let table = [0u64; 32 * 1024]; // 256 KiB
    ///             std::hint::black_box(&table).len()
    ///         })
    ///         .unwrap();
    ///     assert_eq!(h.join().unwrap(), 32 * 1024);
    /// });
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the coroutine on the current runtime.
    ///
    /// ```
    /// coio::run(|| {
    ///     let h = coio::Builder::new().name("job").spawn(|| 6 * 7).unwrap();
    ///     assert_eq!(h.join().unwrap(), 42);
    /// });
    /// // Outside a runtime there is nothing to spawn on: an error.
    /// assert!(coio::Builder::new().spawn(|| ()).is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for an impossible stack size, or for a closure whose
    /// captures do not fit on the coroutine's stack (see [`spawn`]);
    /// `Other` when called outside a coroutine of a coio runtime.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Some(l) = worker::coroutine_local() else {
            return Err(io::Error::other(
                "coio::Builder::spawn must be called from a coroutine of a coio runtime; \
                 start one with coio::run(|| ...) or Runtime::block_on",
            ));
        };
        let shared = l.shared.clone();
        self.spawn_on_shared(&shared, f, Location::caller())
    }

    /// Spawns the coroutine on `rt` (from anywhere).
    ///
    /// ```
    /// let rt = coio::Runtime::new()?;
    /// // From a plain thread, onto `rt`.
    /// let h = coio::Builder::new().name("background").spawn_on(&rt, || 6 * 7)?;
    /// assert_eq!(h.join().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`Builder::spawn`], but for the need of a coroutine.
    #[track_caller]
    pub fn spawn_on<F, T>(self, rt: &Runtime, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_on_shared(&rt.shared, f, Location::caller())
    }

    fn spawn_on_shared<F, T>(
        self,
        shared: &Arc<Shared>,
        f: F,
        site: &'static Location<'static>,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let stack_size = match self.stack_size {
            Some(s) => stack::usable_size(s)?,
            None => 0,
        };
        let room = if stack_size == 0 {
            shared.stack_size
        } else {
            stack_size
        };
        check_fits::<F>(room)?;
        let spec = (self.name.is_some() || stack_size != 0)
            .then(|| Spec::new(self.name.map(String::into_boxed_str), stack_size));
        let task = TaskCell::new(f, spec, site);
        spawn_task(shared, task.clone());
        Ok(JoinHandle::new(task))
    }
}
