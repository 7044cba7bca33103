//! Coroutine dumps: what every coroutine waits for, and where (Go's
//! goroutine dump), without stopping or resuming anything.
//!
//! # What a dump shows
//!
//! One entry per coroutine, in Go's layout: a header
//! `coroutine <id> ["<name>"] [<state or wait>, <how long>, worker <n>]:`,
//! its frames innermost first (function, then `file:line` indented), and
//! `created by <function> at <file:line>` (the spawn site, recorded with
//! `#[track_caller]`; the function is the one the coroutine's closure was
//! written in). Grouped dumps show each distinct stack once, with a count.
//!
//! Every blocking point of coio records, as its coroutine suspends, what
//! it waits for ([`Wait`]) and when, from the worker's coarse clock (one
//! store into the coroutine's stack descriptor: `Local::block_current`).
//!
//! # Who walks a stack
//!
//! A coroutine's stack and its saved context are home-local: only its
//! worker's thread may read them, since only that thread resumes it. So a
//! dump asks every worker for its own part, and the dumper only formats:
//!
//! 1. The dumper (one at a time per process) lists the loaded modules
//!    (`trace::Unwinder`), and for each worker fills its [`Slot`] with a
//!    [`Request`] (a buffer, the unwinder, a rule cache), sets it
//!    `REQUESTED` and wakes the worker. Its own worker, if the dumper is a
//!    coroutine, it walks itself, right away.
//! 2. A worker answers at the top of its loop (`Local::answer_dump`): it
//!    takes the request (`REQUESTED` → `BUSY`, a CAS), writes its
//!    coroutines into the buffer (walking each suspended stack from its
//!    saved context) and sets `DONE`. The dumper's own worker is answered
//!    by the dumper, its running coroutine walked from `caller_regs`.
//! 3. A worker that does not answer within [`SIGNAL_AFTER`] is running a
//!    coroutine that does not come back (the case a dump is for): the
//!    dumper sends its thread `SIGURG`, every [`SIGNAL_AFTER`] until it
//!    answers (a worker that hands the CPU directly from coroutine to
//!    coroutine never comes back to its loop: it always answers this
//!    way, without listing its fresh coroutines). The handler
//!    (`worker::snapshot::answer_signal`) answers only if a coroutine runs
//!    (`link`, ordered by compiler fences against the registry's changes)
//!    and the signal caught it on its own stack, or, from the third signal
//!    on, on a stack that is neither the thread's nor another coroutine's
//!    (a generator's); not in the middle of a switch. The registry cannot
//!    be changing then, since only the scheduler loop changes it. The
//!    running coroutine is walked from the signal's registers. Nothing in
//!    there allocates, locks or calls libc. The signals interrupt the
//!    system call a stuck coroutine is blocked in (the handler is
//!    `SA_RESTART`): most restart by themselves, std retries
//!    `thread::sleep`, but a call with a timeout of its own fails with
//!    `EINTR` (a socket read with `SO_RCVTIMEO`, std's
//!    `set_read_timeout`; `poll`, `select`, `epoll_wait`, `nanosleep`
//!    from C), and std returns that as an error (`ErrorKind::Interrupted`).
//! 4. After [`GIVE_UP`], a worker that never answered is reported as such
//!    and its request withdrawn (`REQUESTED` → `IDLE`, a CAS that loses to
//!    a worker that has begun: then its `DONE` is awaited).
//!
//! The dumper takes no lock that a worker ever takes (the dump lock is the
//! dumpers' own, let go before the text is written out), so a stuck worker
//! cannot stop a dump. How long a coroutine has waited comes from its
//! worker's coarse clock, read every `FAIRNESS_TICKS` turns and at each
//! wake-up: a wait that began right after a coroutine computed for long
//! without yielding shows that time too. Coroutines spawned from outside
//! the runtime and not yet taken by a worker (in the injector) are not
//! listed, only counted in a note.

/// What a suspended coroutine waits for, as a dump names it. Recorded by
/// every blocking point of coio when the coroutine suspends (one byte,
/// with a coarse timestamp, in a word at the top of its stack: see
/// `worker::Local::block_current`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Wait {
    /// Nothing recorded (a coroutine that never suspended).
    Unknown = 0,
    Park,
    Sleep,
    Join,
    Scope,
    Blocking,
    Future,
    ChanRecv,
    ChanSend,
    Select,
    Mutex,
    RwLockRead,
    RwLockWrite,
    Condvar,
    Semaphore,
    WaitGroup,
    Barrier,
    Once,
    SocketRead,
    SocketWrite,
    Accept,
    Connect,
    FileIo,
}

impl Wait {
    /// Every reason, by its byte.
    const ALL: [Wait; 23] = [
        Wait::Unknown,
        Wait::Park,
        Wait::Sleep,
        Wait::Join,
        Wait::Scope,
        Wait::Blocking,
        Wait::Future,
        Wait::ChanRecv,
        Wait::ChanSend,
        Wait::Select,
        Wait::Mutex,
        Wait::RwLockRead,
        Wait::RwLockWrite,
        Wait::Condvar,
        Wait::Semaphore,
        Wait::WaitGroup,
        Wait::Barrier,
        Wait::Once,
        Wait::SocketRead,
        Wait::SocketWrite,
        Wait::Accept,
        Wait::Connect,
        Wait::FileIo,
    ];

    /// The reason recorded as byte `b`.
    pub(crate) fn from_byte(b: u8) -> Wait {
        Self::ALL.get(b as usize).copied().unwrap_or(Wait::Unknown)
    }

    /// How a dump shows it (Go's words where Go has the same wait).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Wait::Unknown => "waiting",
            Wait::Park => "park",
            Wait::Sleep => "sleep",
            Wait::Join => "join",
            Wait::Scope => "scope",
            Wait::Blocking => "blocking pool",
            Wait::Future => "future",
            Wait::ChanRecv => "chan receive",
            Wait::ChanSend => "chan send",
            Wait::Select => "select",
            Wait::Mutex => "mutex lock",
            Wait::RwLockRead => "rwlock read",
            Wait::RwLockWrite => "rwlock write",
            Wait::Condvar => "condvar wait",
            Wait::Semaphore => "semaphore",
            Wait::WaitGroup => "wait group",
            Wait::Barrier => "barrier",
            Wait::Once => "once",
            Wait::SocketRead => "socket read",
            Wait::SocketWrite => "socket write",
            Wait::Accept => "socket accept",
            Wait::Connect => "socket connect",
            Wait::FileIo => "file I/O",
        }
    }
}

use std::cell::UnsafeCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::panic::Location;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Shared;
use super::task::Task;
use super::worker;
#[cfg(target_os = "linux")]
use crate::trace::{self, Sym, Symbolizer, Unwinder, caller_regs};

/// Milliseconds of `CLOCK_MONOTONIC_COARSE`: what a waiting coroutine's
/// "since" is counted in. The coarse clock (the kernel's last tick, 1 to 4
/// ms old) is read from the vDSO without a system call or a `rdtsc`, in a
/// few nanoseconds: cheap enough for the workers to read every
/// `FAIRNESS_TICKS` ticks (`Instant::now` there cost 3% of a yield).
pub(crate) fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec we pass; CLOCK_MONOTONIC_COARSE exists on
    // every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// How long a worker has to answer from its loop before it is signalled.
pub(crate) const SIGNAL_AFTER: Duration = Duration::from_millis(10);

/// How long a worker has to answer at all.
pub(crate) const GIVE_UP: Duration = Duration::from_secs(2);

const IDLE: u8 = 0;
const REQUESTED: u8 = 1;
const BUSY: u8 = 2;
const DONE: u8 = 3;

/// A coroutine's state in a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Runnable = 0,
    Waiting = 1,
    Running = 2,
    NotStarted = 3,
}

/// What a dumper asks of a worker: where to write, and how to walk.
pub(crate) struct Request {
    #[cfg(target_os = "linux")]
    pub(crate) unwinder: *const Unwinder,
    #[cfg(target_os = "linux")]
    pub(crate) cache: *mut trace::Cache,
    buf: *mut u64,
    cap: usize,
    /// Only the running coroutine is wanted (the stall warning's).
    pub(crate) running_only: bool,
    /// Words written, or that would have been (more than `cap`: the
    /// buffer was too small).
    len: usize,
}

/// One worker's dump request (see the module docs for the protocol).
pub(crate) struct Slot {
    state: AtomicU8,
    /// Signals sent for the current request.
    signals: std::sync::atomic::AtomicU32,
    /// The worker's thread (`pthread_t`), for the signal; 0 before it
    /// starts and after it ends.
    thread: AtomicU64,
    /// Dumpers between reading `thread` and signalling it: an ending
    /// worker waits for them to be done (see `set_thread`).
    signalling: std::sync::atomic::AtomicU32,
    /// The worker thread's stack, `[lo, hi)`, for the signal handler to
    /// tell its loop from a coroutine (set by `set_thread`).
    thread_stack: (AtomicU64, AtomicU64),
    req: UnsafeCell<Request>,
}

// SAFETY: `req` belongs to the dumper while the state is IDLE or DONE and
// to the one worker-side answerer that moved it from REQUESTED to BUSY,
// until it stores DONE (Release; the dumper reads with Acquire).
unsafe impl Sync for Slot {}
// SAFETY: as above; the pointers in `req` are only followed under that
// protocol.
unsafe impl Send for Slot {}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            state: AtomicU8::new(IDLE),
            signals: std::sync::atomic::AtomicU32::new(0),
            thread: AtomicU64::new(0),
            signalling: std::sync::atomic::AtomicU32::new(0),
            thread_stack: (AtomicU64::new(0), AtomicU64::new(0)),
            req: UnsafeCell::new(Request {
                #[cfg(target_os = "linux")]
                unwinder: std::ptr::null(),
                #[cfg(target_os = "linux")]
                cache: std::ptr::null_mut(),
                buf: std::ptr::null_mut(),
                cap: 0,
                running_only: false,
                len: 0,
            }),
        }
    }
}

impl Slot {
    /// Makes a request: the worker is to write into `buf`, walking with
    /// `unwinder` and `cache` (`running_only`: its running coroutine
    /// alone), and is woken or signalled by the caller.
    ///
    /// # Safety
    /// The slot must be IDLE or DONE, and the three must outlive the
    /// request (a [`Withdraw`] dropped before them ends it).
    #[cfg(target_os = "linux")]
    unsafe fn request(
        &self,
        unwinder: &Unwinder,
        cache: &mut trace::Cache,
        buf: &mut [u64],
        running_only: bool,
    ) {
        // SAFETY: IDLE or DONE (caller): the request is ours until the
        // store of REQUESTED publishes it.
        let req = unsafe { &mut *self.req.get() };
        req.unwinder = unwinder;
        req.cache = cache;
        req.buf = buf.as_mut_ptr();
        req.cap = buf.len();
        req.running_only = running_only;
        req.len = 0;
        self.signals.store(0, Relaxed);
        self.state.store(REQUESTED, Release);
    }

    /// Whether a request waits (the worker's cheap check).
    #[inline(always)]
    pub(crate) fn requested(&self) -> bool {
        self.state.load(Relaxed) == REQUESTED
    }

    /// Takes the waiting request, if any, for the caller to answer and
    /// then [`finish`](Self::finish).
    pub(crate) fn begin(&self) -> Option<*mut Request> {
        self.state
            .compare_exchange(REQUESTED, BUSY, Acquire, Relaxed)
            .ok()
            .map(|_| self.req.get())
    }

    /// The answer is written.
    pub(crate) fn finish(&self) {
        self.state.store(DONE, Release);
    }

    /// Whether `sp` is on the worker thread's own stack.
    pub(crate) fn on_thread_stack(&self, sp: usize) -> bool {
        let (lo, hi) = (
            self.thread_stack.0.load(Relaxed),
            self.thread_stack.1.load(Relaxed),
        );
        (lo..hi).contains(&(sp as u64))
    }

    /// Signals sent for the request waiting now.
    pub(crate) fn signals(&self) -> u32 {
        self.signals.load(Relaxed)
    }

    /// The worker's thread starts (true) or ends (false). Never blocks on
    /// a dump (a dumper may be waiting for this very worker): an ending
    /// worker only waits out the dumpers that are between reading its
    /// thread's id and signalling it (Dekker's handshake with
    /// [`signal`], all SeqCst: either the dumper reads 0, or the worker
    /// sees it counted), so that no signal goes to a thread that has
    /// ended, whose id may name another thread by then.
    pub(crate) fn set_thread(&self, running: bool) {
        if running {
            let (lo, hi) = super::local::thread_stack().unwrap_or((0, 0));
            self.thread_stack.0.store(lo as u64, Relaxed);
            self.thread_stack.1.store(hi as u64, Relaxed);
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() } as u64;
            self.thread.store(me, SeqCst);
        } else {
            self.thread.store(0, SeqCst);
            while self.signalling.load(SeqCst) != 0 {
                std::hint::spin_loop();
            }
        }
    }
}

/// Writes a worker's answer into a request's buffer, counting what does
/// not fit. Layout: `[records, unlisted, lost]`, then one record per
/// coroutine: `[id, kind | end << 4 | frames << 8 | name bytes << 32 |
/// worker << 48, wait word, site, closure name pointer, its length, the
/// name's bytes in words, the frames]`.
pub(crate) struct Writer<'a> {
    req: &'a mut Request,
    pos: usize,
    records: u64,
    unlisted: u64,
    lost: u64,
}

/// Longest name recorded (bytes).
const NAME_MAX: usize = 64;

impl<'a> Writer<'a> {
    pub(crate) fn new(req: &'a mut Request) -> Writer<'a> {
        Writer {
            req,
            pos: 3,
            records: 0,
            unlisted: 0,
            lost: 0,
        }
    }

    /// The request (for its unwinder and cache).
    pub(crate) fn request(&self) -> &Request {
        self.req
    }

    #[inline]
    fn put(&mut self, w: u64) {
        if self.pos < self.req.cap {
            // SAFETY: within the buffer the dumper gave (`cap` words).
            unsafe { self.req.buf.add(self.pos).write(w) };
        }
        self.pos += 1;
    }

    /// Records one coroutine.
    #[cfg(target_os = "linux")]
    pub(crate) fn coroutine(
        &mut self,
        t: &dyn Task,
        kind: Kind,
        wait: u64,
        worker: usize,
        frames: &[u64],
        end: trace::End,
    ) {
        let h = t.header();
        let name = h.name().unwrap_or("");
        // Cut at a character's boundary (a name is UTF-8, and read back
        // as such).
        let mut cut = name.len().min(NAME_MAX);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = &name.as_bytes()[..cut];
        let end = match end {
            trace::End::Complete => 0u64,
            trace::End::Truncated => 1,
            trace::End::Lost => 2,
        };
        self.records += 1;
        self.put(h.id);
        self.put(
            kind as u64
                | end << 4
                | (frames.len() as u64) << 8
                | (name.len() as u64) << 32
                | (worker as u64 & 0xffff) << 48,
        );
        self.put(wait);
        self.put(h.site() as *const Location<'static> as u64);
        let closure = t.closure_name();
        self.put(closure.as_ptr() as u64);
        self.put(closure.len() as u64);
        for chunk in name.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.put(u64::from_le_bytes(b));
        }
        for &f in frames {
            self.put(f);
        }
    }

    /// `n` fresh coroutines were not listed (a signal's answer).
    pub(crate) fn unlisted(&mut self, n: usize) {
        self.unlisted += n as u64;
    }

    /// The worker could not be read (its registry was busy).
    pub(crate) fn lost(&mut self) {
        self.lost = 1;
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if self.req.cap >= 3 {
            // SAFETY: the first three words of the buffer.
            unsafe {
                self.req.buf.write(self.records);
                self.req.buf.add(1).write(self.unlisted);
                self.req.buf.add(2).write(self.lost);
            }
        }
        self.req.len = self.pos;
    }
}

/// Stall monitors (one per runtime) waiting for [`DUMPING`] in
/// [`describe_running`]: coroutines about to dump let them go first
/// ([`lock_dumping`]).
static MONITOR_WAITING: AtomicUsize = AtomicUsize::new(0);

/// Counts its maker in a count of waiters ([`POLLERS_WAITING`],
/// [`MONITOR_WAITING`]) while it lives (a cancelled coroutine unwinds out
/// of its sleep).
struct Waiting(&'static AtomicUsize);

impl Waiting {
    fn new(count: &'static AtomicUsize) -> Waiting {
        count.fetch_add(1, SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// One dump at a time in the process (the signal handler's slot use and
/// the symbolizer's cache assume it). Taken through [`lock_dumping`].
static DUMPING: Mutex<()> = Mutex::new(());

/// Coroutines, and the stall monitor, waiting for [`DUMPING`] in polls
/// (see [`lock_dumping`], [`describe_running`]).
static POLLERS_WAITING: AtomicUsize = AtomicUsize::new(0);

/// Takes [`DUMPING`]. A coroutine that is not unwinding waits for it in
/// 1 ms sleeps, so that its worker goes on meanwhile (blocking there, it
/// held the worker for seconds when a thread dumped in a loop), and never
/// holds it across a switch, so a thread, or a coroutine that unwinds
/// (which cannot switch: it blocks its worker), can block on it safely.
/// (coio's own `Mutex` handed the lock to a suspended coroutine, which an
/// unwinding coroutine blocking the same worker then waited for for ever.)
/// A poller loses to a thread that dumps in a loop, though, every time:
/// while a coroutine waits, a thread first waits too, up to 50 ms, for it
/// to go first. An unwinding coroutine does not (the one it would wait
/// for may be suspended on the worker it blocks).
fn lock_dumping() -> std::sync::MutexGuard<'static, ()> {
    let poll = crate::is_coroutine() && !std::thread::panicking();
    // Who goes first, for up to 50 ms: pollers before a thread, and the
    // stall monitor before a polling coroutine (which would otherwise take
    // the lock back within microseconds, every time it dumps in a loop).
    // `crate::sleep` parks only a coroutine, and is the thread's sleep on
    // a thread.
    let first = if poll {
        Some(&MONITOR_WAITING)
    } else if !crate::is_coroutine() {
        Some(&POLLERS_WAITING)
    } else {
        None
    };
    if let Some(first) = first {
        for _ in 0..50 {
            if first.load(SeqCst) == 0 {
                break;
            }
            crate::sleep(Duration::from_millis(1));
        }
    }
    let mut waiting = None;
    loop {
        match DUMPING.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if poll => {
                if waiting.is_none() {
                    waiting = Some(Waiting::new(&POLLERS_WAITING));
                }
                crate::sleep(Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return DUMPING.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// Names kept across dumps.
#[cfg(target_os = "linux")]
static SYMBOLIZER: Mutex<Option<Symbolizer>> = Mutex::new(None);

/// A coroutine as the dumper reads it back.
struct Entry {
    id: u64,
    kind: Kind,
    /// Lost or truncated walk.
    end: u8,
    worker: usize,
    wait: super::dump::Wait,
    /// Milliseconds since the wait began (waiting coroutines).
    waited_ms: Option<u64>,
    site: &'static Location<'static>,
    closure: &'static str,
    name: String,
    frames: Vec<u64>,
}

/// Writes a dump of every coroutine of the current runtime to `out`: for
/// each, its id and name, what it waits for (`chan receive`, `mutex lock`,
/// `socket read`, ..., or `running`, `runnable`, `not started`) and for how
/// long, its worker, its stack, and where it was spawned, in the layout of
/// Go's goroutine dump:
///
/// ```text
/// coroutine 5 ["consumer"] [chan receive, 2.0 s, worker 1]:
/// app::consume
///         src/main.rs:20
/// app::main::{{closure}}::{{closure}}
///         src/main.rs:9
/// created by app::main::{{closure}} at src/main.rs:9:19
/// ```
///
/// Suspended coroutines are walked from their saved contexts, without
/// being resumed; a coroutine running on a worker that does not come back
/// to its scheduler is captured on that worker's thread, through a signal
/// (`SIGURG`, after 10 ms without an answer from its scheduler loop), so a
/// dump shows what a stuck worker is doing. A system call it is blocked in
/// sees the signal: most restart, but one with a timeout of its own fails
/// with `EINTR` (std: `ErrorKind::Interrupted`; a std socket read with a
/// read timeout, `poll` from C), which a coroutine that blocks its worker
/// there must be ready for. Coroutines spawned from outside the runtime
/// ([`Runtime::spawn`](crate::Runtime::spawn) from a plain thread) that no
/// worker has taken yet are not listed: a line under the header counts
/// them. `file:line`
/// needs line tables in the build (`debug = "line-tables-only"` in the
/// Cargo profile, or more); without them frames show function names only.
///
/// The dump is made on the calling coroutine's worker thread, which runs
/// nothing else meanwhile: the other coroutines of that worker wait for
/// it, a few milliseconds for a few thousand coroutines, but the first
/// dump of a process reads the program's symbols, which takes up to a
/// second in a debug build (and the dump may wait up to 2 s for a worker
/// that does not answer). Where that matters, dump from a plain thread
/// with [`Runtime::dump`](crate::Runtime::dump), as the dump signal does
/// ([`RuntimeBuilder::dump_signal`](crate::RuntimeBuilder::dump_signal)).
///
/// ```
/// coio::run(|| {
///     let (tx, rx) = coio::chan::bounded::<u32>(1);
///     let waiting = coio::Builder::new()
///         .name("receiver")
///         .spawn(move || rx.recv())
///         .unwrap();
///     coio::sleep(std::time::Duration::from_millis(10));
///     let mut out = Vec::new();
///     coio::dump(&mut out).unwrap();
///     let dump = String::from_utf8(out).unwrap();
///     assert!(dump.contains("\"receiver\" [chan receive"), "{dump}");
///     tx.send(1).unwrap();
///     waiting.join().unwrap().unwrap();
/// });
/// ```
///
/// # Errors
/// Those of writing to `out`, and an error saying so when called outside
/// a coroutine (use [`Runtime::dump`](crate::Runtime::dump) there).
#[inline(never)]
pub fn dump(out: &mut dyn Write) -> io::Result<()> {
    let mut regs = [0u64; 3];
    // SAFETY: three words to write. This frame lives until the dump is
    // over, so the registers describe it (and its callers) meanwhile.
    unsafe { caller_regs(&mut regs) };
    from_coroutine(out, Layout::Full, regs, "coio::dump")
}

/// As [`dump`], with coroutines in identical states and stacks shown once,
/// with their count (pprof's `debug=1`): for dumps of very many
/// coroutines.
///
/// ```
/// coio::run(|| {
///     let (tx, rx) = coio::chan::bounded::<()>(0);
///     let waiting: Vec<_> = (0..100)
///         .map(|_| {
///             let rx = rx.clone();
///             coio::spawn(move || rx.recv())
///         })
///         .collect();
///     coio::sleep(std::time::Duration::from_millis(10));
///     let mut out = Vec::new();
///     coio::dump_grouped(&mut out).unwrap();
///     let dump = String::from_utf8(out).unwrap();
///     assert!(dump.contains("100 coroutine(s) [chan receive, up to "), "{dump}");
///     drop(tx);
///     for h in waiting {
///         assert!(h.join().unwrap().is_err());
///     }
/// });
/// ```
///
/// # Errors
/// As for [`dump`].
#[inline(never)]
pub fn dump_grouped(out: &mut dyn Write) -> io::Result<()> {
    let mut regs = [0u64; 3];
    // SAFETY: as in `dump`.
    unsafe { caller_regs(&mut regs) };
    from_coroutine(out, Layout::Grouped, regs, "coio::dump_grouped")
}

/// Stack size the dump runs on when a coroutine asks for one: walking and
/// naming (DWARF parsing) need more than a coroutine's stack can spare,
/// above all in debug builds.
const DUMP_STACK: usize = 4 << 20;

/// A dump asked for by the running coroutine, whose frame's registers are
/// `regs`: made on a generator's large stack, on this thread (the worker's
/// own part must be walked here: see the module docs).
fn from_coroutine(
    out: &mut dyn Write,
    layout: Layout,
    regs: [u64; 3],
    what: &str,
) -> io::Result<()> {
    match worker::coroutine_local() {
        Some(l) => on_dump_stack(l.shared.clone(), out, layout, Some(regs)),
        None => Err(outside(what)),
    }
}

/// Runs the dump of `shared` on a generator's large stack (the caller is a
/// coroutine); `own`: the caller's registers, if it is one of `shared`'s.
fn on_dump_stack(
    shared: Arc<Shared>,
    out: &mut dyn Write,
    layout: Layout,
    own: Option<[u64; 3]>,
) -> io::Result<()> {
    // SAFETY: only the trait object's lifetime bound is erased (same
    // layout); the pointer is used while `out` is borrowed (below).
    let out_ptr: *mut (dyn Write + 'static) =
        unsafe { std::mem::transmute::<*mut (dyn Write + '_), _>(out as *mut dyn Write) };
    let mut g = crate::coroutine::generator::GeneratorBuilder::new()
        .name("coio-dump")
        .stack_size(DUMP_STACK)
        .build(move |_, ()| {
            // SAFETY: the generator runs to completion within this call
            // (one resume, no yield), while `out` is borrowed by our caller.
            let out = unsafe { &mut *out_ptr };
            dump_with(&shared, out, layout, own.map(|r| (r[0], r[1], r[2])))
        })?;
    match g.resume(()) {
        crate::GeneratorState::Complete(r) => r,
        crate::GeneratorState::Yielded(()) => unreachable!("coio: the dump's generator yielded"),
    }
}

fn outside(what: &str) -> io::Error {
    io::Error::other(format!(
        "{what} must be called from a coroutine of a coio runtime; elsewhere, use \
         Runtime::dump on the runtime"
    ))
}

impl Entry {
    /// `created by <function> at <file:line:col>`, or `created at ...`
    /// where the closure names no function.
    fn created(&self) -> String {
        match spawner(self.closure) {
            Some(f) => format!("created by {f} at {}", self.site),
            None => format!("created at {}", self.site),
        }
    }
}

/// How the dump is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Every coroutine with its stack.
    Full,
    /// Identical stacks (and states) once, with a count.
    Grouped,
    /// Full up to [`AUTO_GROUPED`] coroutines, else grouped (dumps on a
    /// signal).
    Auto,
}

/// Above this many coroutines, a dump on a signal is grouped.
const AUTO_GROUPED: usize = 1000;

/// Dumps `shared`'s coroutines to `out`.
#[inline(never)]
pub(crate) fn dump_shared(
    shared: &Arc<Shared>,
    out: &mut dyn Write,
    layout: Layout,
) -> io::Result<()> {
    if let Some(l) = worker::coroutine_local() {
        // `Runtime::dump` from a coroutine: on a stack large enough, and if
        // it is one of this runtime's, walking its own worker here.
        let mut regs = [0u64; 3];
        // SAFETY: as in `dump`.
        unsafe { caller_regs(&mut regs) };
        let own = Arc::ptr_eq(&l.shared, shared).then_some(regs);
        return on_dump_stack(shared.clone(), out, layout, own);
    }
    dump_with(shared, out, layout, None)
}

/// Dumps `shared`; `own`: the caller is a coroutine of it, whose frame
/// has these registers.
fn dump_with(
    shared: &Arc<Shared>,
    out: &mut dyn Write,
    layout: Layout,
    own: Option<(u64, u64, u64)>,
) -> io::Result<()> {
    let _one = lock_dumping();
    let started = Instant::now();
    let now_ms = coarse_ms();
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    collect(shared, &mut entries, &mut notes, now_ms, own);
    // The injector cannot be walked (crossbeam's deque): its coroutines
    // are counted, so that the dump says what it leaves out (they pile up
    // there while the workers are stuck, which is when one dumps).
    let queued = shared.injector.len();
    if queued != 0 {
        notes.push(format!(
            "{queued} coroutine(s) spawned from outside the runtime and not taken by a worker \
             yet, not listed"
        ));
    }
    once_each(&mut entries);
    let layout = match layout {
        Layout::Auto if entries.len() > AUTO_GROUPED => Layout::Grouped,
        Layout::Auto => Layout::Full,
        l => l,
    };
    let text = format(shared, &mut entries, &notes, layout, started);
    // Written after the dump lock is let go: `out` may block (a coio
    // socket suspends the coroutine; stderr's lock may be held by a thread
    // that waits for the dump lock), and nothing may wait on us meanwhile.
    drop(_one);
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Keeps one entry per coroutine. A coroutine not started yet may be
/// listed twice: stolen between two workers' answers (or started by its
/// thief, and listed again as such). A started listing wins (a coroutine
/// starts once, so it is the later news), else the first.
fn once_each(entries: &mut Vec<Entry>) {
    // (A started coroutine is listed once: only its home lists it.)
    let started: HashSet<u64> = entries
        .iter()
        .filter(|e| e.kind != Kind::NotStarted)
        .map(|e| e.id)
        .collect();
    let mut seen = HashSet::new();
    entries
        .retain(|e| e.kind != Kind::NotStarted || (!started.contains(&e.id) && seen.insert(e.id)));
}

#[cfg(not(target_os = "linux"))]
fn collect(
    _: &Arc<Shared>,
    _: &mut Vec<Entry>,
    notes: &mut Vec<String>,
    _: u64,
    _: Option<(u64, u64, u64)>,
) {
    notes.push("coroutine dumps need Linux".into());
}

/// Asks every worker for its part and reads the answers into `entries`.
#[cfg(target_os = "linux")]
fn collect(
    shared: &Arc<Shared>,
    entries: &mut Vec<Entry>,
    notes: &mut Vec<String>,
    now_ms: u64,
    own_regs: Option<(u64, u64, u64)>,
) {
    let unwinder = Unwinder::load();
    let n = shared.remotes.len();
    let own = own_regs.and_then(|_| {
        worker::coroutine_local()
            .filter(|l| Arc::ptr_eq(&l.shared, shared))
            .map(|l| l.index())
    });
    // Per worker: its buffer, its cache, and whether it answered.
    let mut bufs: Vec<Vec<u64>> = (0..n)
        .map(|i| {
            let homed = shared.monitor.progress[i].homed();
            vec![0u64; 1024 + homed.saturating_add(64) * 40]
        })
        .collect();
    let mut caches: Vec<Box<trace::Cache>> = (0..n).map(|_| trace::new_cache()).collect();
    // Declared after what the requests point to, so dropped before it,
    // even by a panic: no worker writes into freed buffers.
    let _withdraw = Withdraw(&shared.dumps);
    let mut answered = vec![false; n];
    for _attempt in 0..3 {
        for i in 0..n {
            if answered[i] {
                continue;
            }
            // SAFETY: IDLE or DONE (the last answer was read); the
            // unwinder, cache and buffer outlive `_withdraw`.
            unsafe { shared.dumps[i].request(&unwinder, &mut caches[i], &mut bufs[i], false) };
            if own == Some(i) {
                // The caller's own worker: answered right here, the caller
                // being its running coroutine.
                if let Some(l) = worker::coroutine_local() {
                    l.answer_dump(own_regs);
                }
            } else {
                shared.remotes[i].io.wake();
            }
        }
        for i in 0..n {
            if answered[i] {
                continue;
            }
            let slot = &shared.dumps[i];
            let answer = await_answer(slot);
            if answer == Answer::NoThread {
                answered[i] = true;
                continue;
            }
            if answer == Answer::None {
                notes.push(format!(
                    "worker {i} did not answer within {} s: its coroutines are not listed \
                     (a coroutine there may be running on a stack of its own, such as a \
                     generator's, or its thread may be in an uninterruptible wait)",
                    GIVE_UP.as_secs()
                ));
                answered[i] = true;
                continue;
            }
            // SAFETY: DONE (Acquire): the request is ours again.
            let req = unsafe { &mut *slot.req.get() };
            slot.state.store(IDLE, Relaxed);
            if req.len > req.cap {
                // Too small: again, with room to spare.
                bufs[i] = vec![0u64; req.len + req.len / 4 + 1024];
                continue;
            }
            answered[i] = true;
            read_answer(&bufs[i][..req.len], i, entries, notes, now_ms);
        }
        if answered.iter().all(|&a| a) {
            break;
        }
    }
    for (i, a) in answered.iter().enumerate() {
        if !a {
            notes.push(format!(
                "worker {i}: its coroutines kept outgrowing the dump's buffer"
            ));
        }
    }
    let mut sym = SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner());
    sym.get_or_insert_with(Symbolizer::default)
        .update(&unwinder.modules);
}

/// Withdraws every request still out when dropped (the end of a dump, or
/// a panic in it): a waiting one goes back to IDLE, one being answered is
/// waited out (its writer is bounded work). After it, no worker touches
/// the dumper's buffers.
#[cfg(target_os = "linux")]
struct Withdraw<'a>(&'a [crossbeam_utils::CachePadded<Slot>]);

#[cfg(target_os = "linux")]
impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        for slot in self.0 {
            loop {
                match slot.state.load(Acquire) {
                    REQUESTED => {
                        if slot
                            .state
                            .compare_exchange(REQUESTED, IDLE, Acquire, Relaxed)
                            .is_ok()
                        {
                            break;
                        }
                    }
                    BUSY => std::thread::yield_now(),
                    DONE => {
                        slot.state.store(IDLE, Relaxed);
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
}

/// How a worker's request ended.
#[cfg(target_os = "linux")]
#[derive(PartialEq, Eq)]
enum Answer {
    /// The answer is in the buffer.
    Done,
    /// The worker's thread is not running (not started yet, or ended): it
    /// has no coroutines.
    NoThread,
    /// No answer within [`GIVE_UP`].
    None,
}

/// Waits for a worker's answer: from its loop, else through signals. The
/// request is withdrawn unless the answer is `Done`.
#[cfg(target_os = "linux")]
fn await_answer(slot: &Slot) -> Answer {
    let start = Instant::now();
    let mut next_signal = start + SIGNAL_AFTER;
    loop {
        match slot.state.load(Acquire) {
            DONE => return Answer::Done,
            BUSY => {}
            _ => {
                if slot.thread.load(SeqCst) == 0
                    && slot
                        .state
                        .compare_exchange(REQUESTED, IDLE, Relaxed, Relaxed)
                        .is_ok()
                {
                    return Answer::NoThread;
                }
                let now = Instant::now();
                if now - start >= GIVE_UP
                    && slot
                        .state
                        .compare_exchange(REQUESTED, IDLE, Relaxed, Relaxed)
                        .is_ok()
                {
                    return Answer::None;
                }
                if now >= next_signal {
                    next_signal = now + SIGNAL_AFTER;
                    signal(slot);
                }
            }
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Sends the worker's thread the dump signal.
#[cfg(target_os = "linux")]
fn signal(slot: &Slot) {
    if !install_handler() {
        return;
    }
    slot.signalling.fetch_add(1, SeqCst);
    let thread = slot.thread.load(SeqCst);
    if thread != 0 {
        kill(slot, thread);
    }
    slot.signalling.fetch_sub(1, SeqCst);
}

/// Sends the dump signal to worker thread `thread` (see [`signal`]).
#[cfg(target_os = "linux")]
fn kill(slot: &Slot, thread: u64) {
    slot.signals.fetch_add(1, Relaxed);
    // SAFETY: the thread is alive: having read its id (not 0) after we
    // counted ourselves in `signalling`, an ending worker waits for us
    // (see `Slot::set_thread`).
    unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGURG) };
}

/// The handler that was installed before ours (SIGURG is also the
/// kernel's signal for TCP urgent data; a handler of the program's own
/// still gets what is not ours).
#[cfg(target_os = "linux")]
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the SIGURG handler once; false if that failed.
#[cfg(target_os = "linux")]
fn install_handler() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: a zeroed sigaction is a valid "no handler" value; we fill
        // in ours, with its signature (SA_SIGINFO), on the alternate stack
        // that every worker thread has (`stack::overflow::prepare_thread`).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigurg as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGURG, &sa, &mut old) != 0 {
                return false;
            }
            let _ = PREVIOUS.set(old);
            true
        }
    })
}

#[cfg(target_os = "linux")]
extern "C" fn on_sigurg(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes the interrupted context; the registers are
    // plain reads.
    let regs = unsafe {
        let g = &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
        (
            g[libc::REG_RIP as usize] as u64,
            g[libc::REG_RSP as usize] as u64,
            g[libc::REG_RBP as usize] as u64,
        )
    };
    // Ours come from pthread_kill in this process (SI_TKILL, our pid);
    // the kernel's (TCP urgent data) are the program's, passed on.
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO; the
    // sender's pid is what an SI_TKILL signal's siginfo holds.
    let ours = unsafe { (*info).si_code == libc::SI_TKILL && (*info).si_pid() == libc::getpid() };
    if ours {
        // SAFETY: a signal handler, with the interrupted registers.
        unsafe { worker::snapshot::answer_signal(regs) };
        return;
    }
    let Some(prev) = PREVIOUS.get() else { return };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    // SAFETY: calling the handler that was installed before ours, as the
    // kernel would have, with the kind of arguments it asked for.
    unsafe {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}

/// Reads one worker's answer.
#[cfg(target_os = "linux")]
fn read_answer(
    buf: &[u64],
    worker: usize,
    entries: &mut Vec<Entry>,
    notes: &mut Vec<String>,
    now_ms: u64,
) {
    if buf.len() < 3 {
        return;
    }
    let (records, unlisted, lost) = (buf[0], buf[1], buf[2]);
    if lost != 0 {
        notes.push(format!(
            "worker {worker} was busy changing its registry; run the dump again"
        ));
    }
    if unlisted != 0 {
        notes.push(format!(
            "worker {worker}: {unlisted} coroutine(s) not started yet, not listed (the worker \
             was answering from a signal)"
        ));
    }
    let mut p = 3;
    for _ in 0..records {
        let id = buf[p];
        let bits = buf[p + 1];
        let wait_word = buf[p + 2];
        // SAFETY: written by `Writer::coroutine` from a `&'static
        // Location` and a `&'static str`.
        let (site, closure) = unsafe {
            (
                &*(buf[p + 3] as *const Location<'static>),
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                    buf[p + 4] as *const u8,
                    buf[p + 5] as usize,
                )),
            )
        };
        let kind = match bits & 15 {
            0 => Kind::Runnable,
            1 => Kind::Waiting,
            2 => Kind::Running,
            _ => Kind::NotStarted,
        };
        let end = ((bits >> 4) & 15) as u8;
        let nframes = ((bits >> 8) & 0xff_ffff) as usize;
        let name_len = ((bits >> 32) & 0xffff) as usize;
        let name_words = name_len.div_ceil(8);
        p += 6;
        let mut name = Vec::with_capacity(name_len);
        for w in &buf[p..p + name_words] {
            name.extend_from_slice(&w.to_le_bytes());
        }
        name.truncate(name_len);
        p += name_words;
        let frames = buf[p..p + nframes].to_vec();
        p += nframes;
        let since = wait_word >> 8;
        entries.push(Entry {
            id,
            kind,
            end,
            worker: (bits >> 48) as usize,
            wait: Wait::from_byte(wait_word as u8),
            waited_ms: (kind == Kind::Waiting).then(|| now_ms.saturating_sub(since)),
            site,
            closure,
            name: String::from_utf8_lossy(&name).into_owned(),
            frames,
        });
    }
}

/// "how long", Go-style but finer.
fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..7_200_000 => format!("{} minutes", ms / 60_000),
        _ => format!("{} hours", ms / 3_600_000),
    }
}

/// The function a closure type was written in (`app::main::{{closure}}`
/// was written in `app::main`; `app::main::{{closure}}::{{closure}}` in
/// the closure `app::main::{{closure}}`). None for what is not a closure.
fn spawner(closure: &'static str) -> Option<&'static str> {
    closure.strip_suffix("::{{closure}}")
}

/// A coroutine's bracket: `[chan receive, 2.5 s, worker 1]`.
fn state(e: &Entry) -> String {
    match e.kind {
        Kind::Running => format!("running, worker {}", e.worker),
        Kind::Runnable => format!("runnable, worker {}", e.worker),
        Kind::NotStarted => format!("not started, worker {}", e.worker),
        Kind::Waiting => format!(
            "{}, {}, worker {}",
            e.wait.as_str(),
            duration(e.waited_ms.unwrap_or(0)),
            e.worker
        ),
    }
}

/// Whether frame `s` is coio's scheduling or dumping machinery (how the
/// coroutine got suspended or captured, not where): left out at the top
/// of a stack. Known by its path, or, for a function inlined in a build
/// with line tables only (DWARF then names it bare: `switch_out`), by its
/// source file.
#[cfg(target_os = "linux")]
fn is_switch_frame(s: &Sym) -> bool {
    const PATHS: [&str; 4] = [
        "coio::runtime::worker::",
        "coio::arch::",
        "coio::trace::",
        "coio::runtime::dump::",
    ];
    const FILES: [&str; 5] = [
        "/src/runtime/worker.rs",
        "/src/runtime/worker/snapshot.rs",
        "/src/arch/x86_64.rs",
        "/src/trace/mod.rs",
        "/src/runtime/dump.rs",
    ];
    let f = s.function.strip_prefix('<').unwrap_or(&s.function);
    PATHS.iter().any(|p| f.starts_with(p)) || in_files(s, &FILES)
}

/// Whether frame `s` is the standard library's (closures, `Option`, ...
/// inlined into coio's machinery, or calling the coroutine's closure).
#[cfg(target_os = "linux")]
fn is_std_frame(s: &Sym) -> bool {
    let f = s.function.strip_prefix('<').unwrap_or(&s.function);
    ["core::", "std::", "alloc::", "__rust_try"]
        .iter()
        .any(|p| f.starts_with(p))
        || in_files(
            s,
            &[
                "/library/core/src/",
                "/library/std/src/",
                "/library/alloc/src/",
            ],
        )
}

/// Whether frame `s` is the coroutine's start-up machinery at the bottom
/// of a stack (below the closure the user spawned): left out, with the
/// standard library's frames below the innermost of them (`catch_unwind`,
/// `call_once`).
#[cfg(target_os = "linux")]
fn is_entry_frame(s: &Sym) -> bool {
    let f = s.function.strip_prefix('<').unwrap_or(&s.function);
    f.starts_with("coio::runtime::task::")
        || f.starts_with("coio::runtime::Runtime::block_on::{{closure}}")
        || f.starts_with("coio::coroutine::generator::")
        || in_files(
            s,
            &[
                "/src/runtime/task.rs",
                "/src/runtime/mod.rs",
                "/src/coroutine/generator.rs",
            ],
        )
}

/// Whether frame `s` is in one of coio's own source `files` (paths from
/// its root, `/src/...`), or with `/library/`, in the standard library's.
/// coio's root is where this file is (`file!()`: a path from the crate's
/// root when coio is the package being built, absolute when it is a
/// dependency), so a user's file of the same name is not taken for one.
#[cfg(target_os = "linux")]
fn in_files(s: &Sym, files: &[&str]) -> bool {
    let Some((f, _)) = &s.file else { return false };
    let root = file!()
        .strip_suffix("src/runtime/dump.rs")
        .map_or("", |r| r.trim_end_matches('/'));
    files.iter().any(|e| {
        if e.starts_with("/library/") {
            return f.contains(e);
        }
        f.strip_suffix(e)
            .is_some_and(|head| head.ends_with(root) || root.is_empty())
    })
}

/// How a frame's function is shown: DWARF names inlined functions with
/// their generic arguments (`io_as<(mio::..., ...)>`), which say little in
/// a dump; they are left out.
#[cfg(target_os = "linux")]
fn shown(function: &str) -> &str {
    if function.starts_with('<') {
        return function;
    }
    match function.find('<') {
        Some(i) if function.ends_with('>') => &function[..i],
        _ => function,
    }
}

/// The frames of `addrs`, named, without the switch and entry frames.
#[cfg(target_os = "linux")]
fn named(sym: &mut Symbolizer, addrs: &[u64]) -> Vec<Sym> {
    let mut out: Vec<Sym> = Vec::new();
    for &a in addrs {
        out.extend(sym.name(a).iter().cloned());
    }
    // The machinery at the top, with the standard library's frames
    // inlined into it.
    let mut first = 0;
    for (i, s) in out.iter().enumerate() {
        if is_switch_frame(s) {
            first = i + 1;
        } else if !is_std_frame(s) {
            break;
        }
    }
    // From the bottom: entry frames, and the standard library's between
    // them; not the standard library's above the innermost entry frame
    // (what the user's code called, with the closure inlined into entry).
    let mut last = out.len();
    for (i, s) in out.iter().enumerate().rev() {
        if is_entry_frame(s) {
            last = i;
        } else if !is_std_frame(s) {
            break;
        }
    }
    let last = last.max(first);
    out.truncate(last);
    out.drain(..first);
    out
}

#[cfg(not(target_os = "linux"))]
fn named(_: &mut (), _: &[u64]) -> Vec<(String, Option<(String, u32)>)> {
    Vec::new()
}

/// Lays the dump out as text.
fn format(
    shared: &Shared,
    entries: &mut [Entry],
    notes: &[String],
    layout: Layout,
    started: Instant,
) -> String {
    entries.sort_by_key(|e| e.id);
    let mut out = String::new();
    let count = |k: Kind| entries.iter().filter(|e| e.kind == k).count();
    let _ = writeln!(
        out,
        "coio: dump of {} coroutine(s) on {} worker(s): {} running, {} runnable, {} waiting, {} \
         not started",
        entries.len(),
        shared.remotes.len(),
        count(Kind::Running),
        count(Kind::Runnable),
        count(Kind::Waiting),
        count(Kind::NotStarted),
    );
    for n in notes {
        let _ = writeln!(out, "coio: {n}");
    }
    #[cfg(target_os = "linux")]
    let mut guard = SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(target_os = "linux")]
    let sym = guard.get_or_insert_with(Symbolizer::default);
    #[cfg(not(target_os = "linux"))]
    let sym = &mut ();
    let mut write_stack = |out: &mut String, e: &Entry| {
        #[cfg(target_os = "linux")]
        for s in named(sym, &e.frames) {
            let _ = writeln!(out, "{}", shown(&s.function));
            match &s.file {
                Some((file, line)) => {
                    let _ = writeln!(out, "\t{file}:{line}");
                }
                None => {
                    let _ = writeln!(out, "\t?");
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = named(sym, &e.frames);
        match e.end {
            1 => out.push_str("...additional frames elided...\n"),
            2 if e.kind != Kind::NotStarted && e.frames.is_empty() => out.push_str(
                "...(not on its own stack: inside a generator it resumed, or caught in a \
                 switch; not walked)\n",
            ),
            2 if e.kind != Kind::NotStarted => {
                out.push_str("...(the walk stopped here: no unwind information further up)\n")
            }
            _ => {}
        }
        let _ = writeln!(out, "{}", e.created());
    };
    match layout {
        Layout::Full | Layout::Auto => {
            for e in entries.iter() {
                let name = if e.name.is_empty() {
                    String::new()
                } else {
                    format!(" \"{}\"", e.name)
                };
                let _ = writeln!(out, "\ncoroutine {}{} [{}]:", e.id, name, state(e));
                write_stack(&mut out, e);
            }
        }
        Layout::Grouped => {
            // Same state, wait, frames and spawn site: one group. First by
            // the frames' addresses (cheap: no symbols), then groups whose
            // stacks read the same are merged: two return addresses on one
            // line (a call made from two places the compiler kept apart)
            // would otherwise split a group in two that look identical.
            type Key<'a> = (Kind, u8, &'a [u64], *const Location<'static>);
            let mut by_frames: HashMap<Key<'_>, Vec<usize>> = HashMap::new();
            let mut order = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                // A runnable or running coroutine's wait byte is from its
                // last wait, which says nothing now.
                let wait = if e.kind == Kind::Waiting {
                    e.wait as u8
                } else {
                    0
                };
                let key = (e.kind, wait, &e.frames[..], e.site as *const _);
                let g = by_frames.entry(key).or_default();
                if g.is_empty() {
                    order.push(key);
                }
                g.push(i);
            }
            let mut by_text: HashMap<(Kind, u8, String), Vec<usize>> = HashMap::new();
            let mut texts = Vec::new();
            for key in order {
                let mut text = String::new();
                write_stack(&mut text, &entries[by_frames[&key][0]]);
                let merged = (key.0, key.1, text);
                let g = by_text.entry(merged.clone()).or_default();
                if g.is_empty() {
                    texts.push(merged);
                }
                g.extend_from_slice(&by_frames[&key]);
            }
            texts.sort_by_key(|k| std::cmp::Reverse(by_text[k].len()));
            for key in texts {
                let mut members = by_text.remove(&key).expect("a group of its own");
                // In the order of their ids, as the entries are.
                members.sort_unstable();
                let first = &entries[members[0]];
                let longest = members.iter().filter_map(|&i| entries[i].waited_ms).max();
                let what = match first.kind {
                    Kind::Waiting => format!(
                        "{}, up to {}",
                        first.wait.as_str(),
                        duration(longest.unwrap_or(0))
                    ),
                    Kind::Running => "running".into(),
                    Kind::Runnable => "runnable".into(),
                    Kind::NotStarted => "not started".into(),
                };
                let mut ids: Vec<String> = members
                    .iter()
                    .take(10)
                    .map(|&i| entries[i].id.to_string())
                    .collect();
                if members.len() > 10 {
                    ids.push("...".into());
                }
                let _ = writeln!(
                    out,
                    "\n{} coroutine(s) [{}]: {}",
                    members.len(),
                    what,
                    ids.join(" ")
                );
                out.push_str(&key.2);
            }
        }
    }
    let _ = writeln!(
        out,
        "\ncoio: dump took {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    out
}

/// The signal `COIO_DUMP_SIGNAL` names: `QUIT`, `SIGQUIT`, `USR1`, a
/// number, ...; Some(None) for `off`.
pub(crate) fn signal_from_env() -> io::Result<Option<i32>> {
    Ok(super::env_setting(
        "COIO_DUMP_SIGNAL",
        "one of QUIT, USR1, USR2, HUP, INT, TERM, WINCH, PWR, TTIN, TTOU (SIGQUIT and so on \
         too), a signal's number, or off",
        parse_signal,
    )?
    .flatten())
}

fn parse_signal(v: &str) -> Option<Option<i32>> {
    if v.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    if let Ok(n) = v.parse::<i32>() {
        return Some(Some(n));
    }
    let name = v.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let sig = match name {
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        _ => return None,
    };
    Some(Some(sig))
}

/// The relay listeners of the runtimes that dump on a signal: the
/// runtime's address and the listener's id.
static WATCHERS: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());

/// Makes `shared` dump on `sig` (see `RuntimeBuilder::dump_signal`): a
/// listener of the process's signal relay (`runtime::signals`), which
/// dumps on the relay's thread, to stderr.
pub(crate) fn watch_signal(shared: &Arc<Shared>, sig: i32) -> io::Result<()> {
    let weak = Arc::downgrade(shared);
    let id = super::signals::listen(
        sig,
        "trigger dumps (SIGQUIT or SIGUSR1 are the usual choices)",
        Arc::new(move |_| {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            if !shared.closed.load(Acquire) {
                // Into a buffer first: stderr's lock is not held while the
                // dump waits for the dump lock (see `dump_with`).
                let mut text = Vec::new();
                if dump_shared(&shared, &mut text, Layout::Auto).is_ok() {
                    let _ = io::stderr().write_all(&text);
                }
            }
            true
        }),
    )?;
    let mut w = WATCHERS.lock().unwrap_or_else(|e| e.into_inner());
    w.push((Arc::as_ptr(shared) as usize, id));
    Ok(())
}

/// `shared` is going away: it no longer dumps (a signal nobody watches
/// any more gets its previous handling back).
pub(crate) fn unwatch_signal(shared: &Arc<Shared>) {
    let me = Arc::as_ptr(shared) as usize;
    let ids: Vec<u64> = {
        let mut w = WATCHERS.lock().unwrap_or_else(|e| e.into_inner());
        let ids = w
            .iter()
            .filter(|(s, _)| *s == me)
            .map(|(_, id)| *id)
            .collect();
        w.retain(|(s, _)| *s != me);
        ids
    };
    for id in ids {
        super::signals::unlisten(id);
    }
}

/// The longest the stall warning waits for a dump in progress to end
/// before it goes without the coroutine's stack.
const STALL_WAITS_FOR_DUMP: Duration = Duration::from_secs(1);

/// For the stall warning: the coroutine running on worker `index` that
/// does not come back, described (id, name, spawn site) with its stack,
/// captured on the worker's thread through the dump signal. None if no
/// answer came (the worker moved on, or cannot be signalled, or a dump
/// held the capture for [`STALL_WAITS_FOR_DUMP`]), with whether it
/// waited for a dump.
#[cfg(target_os = "linux")]
pub(crate) fn describe_running(shared: &Shared, index: usize, id: u64) -> (Option<String>, bool) {
    // A dump in progress (one at a time) is waited for, up to a limit, in
    // polls counted in `POLLERS_WAITING` and `MONITOR_WAITING` (so that a
    // thread, or a coroutine, that dumps in a loop lets this go first).
    let mut waited = None;
    let start = Instant::now();
    let _one = loop {
        match DUMPING.try_lock() {
            Ok(g) => break g,
            Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if start.elapsed() >= STALL_WAITS_FOR_DUMP {
                    return (None, true);
                }
                waited.get_or_insert_with(|| {
                    (
                        Waiting::new(&POLLERS_WAITING),
                        Waiting::new(&MONITOR_WAITING),
                    )
                });
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let waited = waited.take().is_some();
    (describe_locked(shared, index, id), waited)
}

/// [`describe_running`] with [`DUMPING`] held.
#[cfg(target_os = "linux")]
fn describe_locked(shared: &Shared, index: usize, id: u64) -> Option<String> {
    let unwinder = Unwinder::load();
    let mut cache = trace::new_cache();
    let mut buf = vec![0u64; 1024];
    let _withdraw = Withdraw(std::slice::from_ref(&shared.dumps[index]));
    let slot = &shared.dumps[index];
    // SAFETY: IDLE (dumps are one at a time, under the lock we hold); the
    // unwinder, cache and buffer outlive `_withdraw`.
    unsafe { slot.request(&unwinder, &mut cache, &mut buf, true) };
    if await_answer(slot) != Answer::Done {
        return None;
    }
    // SAFETY: DONE (Acquire): the request is ours again.
    let len = unsafe { (*slot.req.get()).len };
    slot.state.store(IDLE, Relaxed);
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let now_ms = coarse_ms();
    read_answer(
        &buf[..len.min(buf.len())],
        index,
        &mut entries,
        &mut notes,
        now_ms,
    );
    let e = entries
        .into_iter()
        .find(|e| e.kind == Kind::Running && e.id == id)?;
    let mut sym = SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner());
    let sym = sym.get_or_insert_with(Symbolizer::default);
    sym.update(&unwinder.modules);
    let mut out = String::new();
    if !e.name.is_empty() {
        let _ = write!(out, "It is \"{}\". ", e.name);
    }
    let _ = writeln!(out, "It was {} and is now at:", e.created());
    for s in named(sym, &e.frames) {
        let _ = writeln!(out, "    {}", shown(&s.function));
        if let Some((file, line)) = &s.file {
            let _ = writeln!(out, "        {file}:{line}");
        }
    }
    Some(out)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn describe_running(_: &Shared, _: usize, _: u64) -> (Option<String>, bool) {
    (None, false)
}
