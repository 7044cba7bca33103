//! `Source`: what every coio I/O object keeps beside its descriptor, and the
//! loop that turns a non-blocking operation into a blocking one.
//!
//! The descriptor is always in non-blocking mode. An operation is simply
//! tried; on `WouldBlock` the caller waits for readiness and tries again:
//!
//! * in a coroutine, through the netpoller (`reactor`): the descriptor is
//!   registered with the caller's worker the first time it has to wait,
//!   and the coroutine is parked on the descriptor's read or write queue,
//!   so that its worker runs others meanwhile;
//! * on a plain thread, with `poll(2)` on the descriptor: the thread
//!   blocks, as with std's types (a write also polls an eventfd of the
//!   source's, which a shutdown of writing signals: see `shut_wake`).
//!
//! In a coroutine the readiness bits gate the operation: a direction known
//! not to be ready is waited for without a system call. A read or write of
//! a stream that moved fewer bytes than asked also clears the direction
//! (the socket's buffer was drained or filled), which saves the system call
//! that would only have returned `WouldBlock` (tokio does the same).
//!
//! Timeouts (`set_read_timeout`, ...) are deadlines on the wait, through
//! the worker's timers; a timed-out operation returns `TimedOut` and leaves
//! the descriptor usable. A cancelled coroutine unwinds from the wait.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use super::reactor::{Dir, IoState, QueuedWait};
use crate::runtime::dump::Wait;
use crate::runtime::worker;

/// The I/O state of one descriptor (see the module docs). Dropping it
/// removes the descriptor from its netpoller: its owner drops it before it
/// closes the descriptor (declare it first).
pub(crate) struct Source {
    /// The descriptor (owned by whoever owns this source).
    fd: RawFd,
    state: Arc<IoState>,
    /// Read and write timeouts: nanoseconds, or whole seconds tagged with
    /// [`IN_SECONDS`]; 0 is none (see `set_timeout`).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// Set by the user's `set_nonblocking(true)`: operations then return
    /// `WouldBlock` instead of waiting, as std's do.
    nonblocking: AtomicBool,
    /// The last receive through the ring filled its buffer: more is likely
    /// queued (see `net::ring::recv`).
    more_queued: AtomicBool,
    /// An eventfd that a plain thread waiting to write polls beside the
    /// descriptor, made by the first such wait (-1 until then), signalled
    /// by this handle's shutdown of writing: `poll(2)` reports nothing
    /// then on a Unix socket with a full send buffer (see `Fd::shutdown`),
    /// and the thread waited for ever where std's blocked send returns
    /// `BrokenPipe`. Closed with the source.
    shut_wake: AtomicI32,
    /// The driver of the worker whose coroutine made this source, if one
    /// did: async code polling it on another thread before any coroutine
    /// registered it registers it there (see [`register_async`]). Weak:
    /// it alone keeps nothing of the driver alive (a registration does,
    /// until the source is dropped).
    ///
    /// [`register_async`]: Self::register_async
    home: Option<std::sync::Weak<crate::driver::Handle>>,
}

impl Source {
    /// A source for `fd`, which must be in non-blocking mode and stay open
    /// until the source is dropped.
    pub(crate) fn new(fd: RawFd) -> Source {
        // Not registered yet (a socket that never waits never is); only
        // its worker's driver noted, for async code elsewhere.
        let home = worker::coroutine_local()
            .and_then(|l| Some(Arc::downgrade(l.driver.try_borrow().ok()?.handle())));
        Source {
            home,
            fd,
            state: Arc::new(IoState::new()),
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
            nonblocking: AtomicBool::new(false),
            more_queued: AtomicBool::new(false),
            shut_wake: AtomicI32::new(-1),
        }
    }

    /// See the field.
    #[inline]
    pub(crate) fn more_queued(&self) -> bool {
        self.more_queued.load(Relaxed)
    }

    #[inline]
    pub(crate) fn set_more_queued(&self, more: bool) {
        if self.more_queued.load(Relaxed) != more {
            self.more_queued.store(more, Relaxed);
        }
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for `dir`
    /// in between, with the timeout of that direction.
    #[inline]
    pub(crate) fn io<R>(&self, dir: Dir, op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.io_with(
            dir,
            dir.wait(),
            Deadline::Timeout(self.timeout(dir)),
            op,
            |_| false,
        )
    }

    /// [`io`](Self::io) that a dump shows as waiting for `wait` (an accept).
    #[inline]
    pub(crate) fn io_as<R>(
        &self,
        dir: Dir,
        wait: Wait,
        op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_with(dir, wait, Deadline::Timeout(self.timeout(dir)), op, |_| {
            false
        })
    }

    /// [`io`](Self::io) for a read or write of a stream of `len` bytes: a
    /// partial transfer clears the direction's readiness.
    #[inline]
    pub(crate) fn io_stream(
        &self,
        dir: Dir,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.io_with(
            dir,
            dir.wait(),
            Deadline::Timeout(self.timeout(dir)),
            op,
            |&n| n > 0 && n < len,
        )
    }

    /// Runs the operation `sqe()`, which goes in direction `dir`, through
    /// the worker's io_uring (`io::uring`) with that direction's timeout,
    /// where the caller is a coroutine whose worker has one and the source
    /// is in blocking mode; None elsewhere, having done nothing (the
    /// readiness path applies).
    ///
    /// # Safety
    /// As `io::uring::run`: what the entry points to stays valid, and
    /// unused otherwise, for the call.
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) unsafe fn ring_op(
        &self,
        dir: Dir,
        wait: Wait,
        sqe: impl FnOnce() -> super::uring::squeue::Entry,
    ) -> Option<io::Result<u32>> {
        if self.nonblocking() {
            return None;
        }
        let mut deadline = Deadline::Timeout(self.timeout(dir));
        // SAFETY: the caller's contract.
        unsafe { super::uring::run(sqe, || deadline.resolve(), wait) }
    }

    /// [`io`](Self::io) with an explicit deadline instead of the
    /// direction's timeout, and waiting even in non-blocking mode (connect).
    pub(crate) fn io_until<R>(
        &self,
        dir: Dir,
        deadline: Option<Instant>,
        op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_with(dir, Wait::Connect, Deadline::At(deadline), op, |_| false)
    }

    // Inlined into each socket call, with `park` below and the whole wait
    // (down to `Local::block_current_inlined` and the switch): a parked
    // coroutine's stack then holds one frame below the caller's, the
    // socket call's, instead of six, and those lines are what a resume
    // reads back cold when many connections take turns (issue 13;
    // `bench/echo-cachesim.sh` at 500 connections: 850 -> 610 bytes of
    // frames in three, 19.4 -> 16.8 simulated L2 misses and 1,225 -> 1,083
    // instructions per request; then 610 -> 224 bytes in one, 16.0 ->
    // 12.8 misses and 1,090 -> 1,020 instructions). Each socket call's
    // code grows by the wait's (about 2 KiB).
    #[inline(always)]
    fn io_with<R>(
        &self,
        dir: Dir,
        wait: Wait,
        mut deadline: Deadline,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let nonblocking = matches!(deadline, Deadline::Timeout(_)) && self.nonblocking();
        // The coroutine's worker, this thread's: the same after every
        // wait, since a coroutine never leaves its worker.
        let Some(l) = worker::coroutine_local().filter(|_| !nonblocking) else {
            return self.io_thread(dir, wait, deadline, nonblocking, op);
        };
        // Every call counts against the coroutine's budget, before the
        // operation (one that waits starts a new budget: the spend was
        // moot): a loop of calls that never wait lets the worker's others
        // run, and the budget's yield is a cancellation point where no byte
        // has been read or written by the call that unwinds.
        l.coop_spend_cancellable();
        loop {
            if let Some(r) = self.try_ready(dir, &mut op, &drained, Some(l.uid)) {
                return r;
            }
            // Woken, the loop retries and passes the wake on (`try_ready`).
            self.park(l, dir, deadline.resolve(), wait, Some(l.uid))?;
        }
    }

    /// The step both the blocking loop (`io_with`) and the async one
    /// (`poll_io`) take before they wait: `op`, tried while the readiness
    /// word says `dir` may be ready (again after `EINTR`). Its result, or
    /// None if the direction is not ready (a `WouldBlock` clears it, unless
    /// an event came meanwhile; a partial transfer, `drained`, clears the
    /// readiness bit). Any other result of a coroutine of worker `home`
    /// (the blocking loop's) passes the event's wake on to the next waiter
    /// of that worker, if the direction is still ready (see "One wake per
    /// event, passed on" in `reactor`); async waiters hold no wake to
    /// pass.
    #[inline(always)]
    fn try_ready<R>(
        &self,
        dir: Dir,
        op: &mut impl FnMut() -> io::Result<R>,
        drained: &impl Fn(&R) -> bool,
        home: Option<usize>,
    ) -> Option<io::Result<R>> {
        loop {
            let seen = self.state.seen();
            if !IoState::is_ready(seen, dir) {
                return None;
            }
            match op() {
                Ok(r) => {
                    if drained(&r) {
                        self.state.clear_drained(seen, dir);
                    }
                    if let Some(home) = home {
                        self.state.pass_on(dir, home);
                    }
                    return Some(Ok(r));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.state.clear(seen, dir);
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Some(home) = home {
                        self.state.pass_on(dir, home);
                    }
                    return Some(Err(e));
                }
            }
        }
    }

    /// The async form of [`io_stream`](Self::io_stream) /
    /// [`io`](Self::io) (with `drained` telling a partial transfer): one
    /// try of `op` while the direction may be ready; on `WouldBlock`,
    /// `Pending` with the task's waker kept for the next event of the
    /// direction. The descriptor is registered with the polling
    /// coroutine's worker the first time. Timeouts and the non-blocking
    /// mode do not apply (async code has its own timeouts).
    ///
    /// # Errors
    /// `op`'s errors; an error saying so if the descriptor was never
    /// registered and the caller is not a coroutine (there is no driver to
    /// register it with).
    pub(crate) fn poll_io<R>(
        &self,
        dir: Dir,
        cx: &mut std::task::Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> std::task::Poll<io::Result<R>> {
        use std::task::Poll;
        // In a coroutine (a future in `future::block_on`), the cooperative
        // budget as for the blocking calls: a future that polls an
        // always-ready socket yields now and then, through `block_on`
        // (never inside this poll: see `worker::coop_poll_proceed`).
        std::task::ready!(worker::coop_poll_proceed(cx));
        loop {
            if let Some(r) = self.try_ready(dir, &mut op, &drained, None) {
                worker::coop_spend_in_poll();
                return Poll::Ready(r);
            }
            if let Err(e) = self.register_async() {
                return Poll::Ready(Err(e));
            }
            if self.state.poll_ready(dir, cx.waker()).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Registers the descriptor, if it is not registered with a live
    /// driver, with the polling coroutine's worker; off the workers, with
    /// the worker whose coroutine made it (its events wake the poller's
    /// waker from there); an error saying so if neither exists (no driver
    /// to register it with).
    fn register_async(&self) -> io::Result<()> {
        if self.state.is_live() {
            return Ok(());
        }
        if let Some(l) = worker::coroutine_local() {
            return self.state.register(self.fd, l.driver.borrow().handle());
        }
        // A closed driver refuses the registration (under its table's lock:
        // see `driver::Handle::register`), whenever it closed.
        let Some(home) = self.home.as_ref().and_then(std::sync::Weak::upgrade) else {
            return Err(not_in_coroutine());
        };
        self.state.register(self.fd, &home).map_err(|e| {
            if home.is_closed() {
                not_in_coroutine()
            } else {
                e
            }
        })
    }

    /// [`poll_io`](Self::poll_io) for a future that several tasks may
    /// await at once on this descriptor: its wait is an entry of its own
    /// (`wait`), not the one waker slot of the direction. For operations
    /// that never drain partially (an accept).
    pub(crate) fn poll_io_queued<R>(
        &self,
        dir: Dir,
        cx: &mut std::task::Context<'_>,
        wait: &mut QueuedWait,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> std::task::Poll<io::Result<R>> {
        use std::task::Poll;
        std::task::ready!(worker::coop_poll_proceed(cx));
        loop {
            if let Some(r) = self.try_ready(dir, &mut op, &|_| false, None) {
                wait.clear();
                worker::coop_spend_in_poll();
                return Poll::Ready(r);
            }
            if let Err(e) = self.register_async() {
                return Poll::Ready(Err(e));
            }
            if self
                .state
                .poll_ready_queued(dir, wait, cx.waker())
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }

    /// Parks the running coroutine of worker `l` until the netpoller
    /// reports `dir` ready (registering the descriptor with `l` if it is
    /// not registered yet), `deadline` passes or the coroutine is
    /// cancelled. Inlined with its wait, see `io_with`. `passes_on` (the
    /// worker's `uid`): the caller retries once woken, and passes the wake
    /// on (see `IoState::wait`).
    #[inline(always)]
    fn park(
        &self,
        l: &worker::Local,
        dir: Dir,
        deadline: Option<Instant>,
        wait: Wait,
        passes_on: Option<usize>,
    ) -> io::Result<()> {
        self.state.register(self.fd, l.driver.borrow().handle())?;
        self.state.wait(dir, deadline, wait, passes_on)
    }

    /// The plain-thread path (and the non-blocking mode): `op`, then
    /// `poll(2)` on `WouldBlock`.
    #[cold]
    fn io_thread<R>(
        &self,
        dir: Dir,
        wait: Wait,
        mut deadline: Deadline,
        nonblocking: bool,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        if nonblocking {
            // In the non-blocking mode a coroutine's operation never
            // waits: it counts against the budget as on the other path
            // (before the operation, see `io_with`), so that std's loop
            // that retries on `WouldBlock` lets the worker's others run,
            // and can be cancelled. (No-op on a plain thread.)
            worker::coop_spend_cancellable();
        }
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !nonblocking => {
                    // Only for a write (a connect's wait for writability has
                    // no use for it), and made before the operation is
                    // tried again: a shutdown either came before that try
                    // (which then fails) or finds the eventfd and signals
                    // it. Without one (no descriptor left) the thread
                    // waits as before, for writability or its timeout.
                    if wait == Wait::SocketWrite
                        && self.shut_wake.load(SeqCst) < 0
                        && self.make_shut_wake()
                    {
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
            let extra = match dir {
                Dir::Write => self.shut_wake.load(SeqCst),
                Dir::Read => -1,
            };
            poll_fd(self.fd, dir, deadline.resolve(), extra)?;
        }
    }

    /// Makes `shut_wake` (see the field), unless another thread just did;
    /// false if no eventfd could be made (`EMFILE`).
    #[cold]
    fn make_shut_wake(&self) -> bool {
        // SAFETY: plain eventfd(2); the result is checked.
        let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if e < 0 {
            return false;
        }
        if self
            .shut_wake
            .compare_exchange(-1, e, SeqCst, SeqCst)
            .is_err()
        {
            // SAFETY: ours, made above, not published.
            unsafe { libc::close(e) };
        }
        true
    }

    /// Waits until `dir` is ready (for `Fd::readable`/`writable`, whose
    /// callers operate on the descriptor themselves, so that the readiness
    /// word cannot know whether their last try found it ready). In a
    /// coroutine: asks `poll(2)` first, without waiting; if not ready,
    /// clears the word (unless an event came meanwhile) and waits for the
    /// netpoller's next event. Trusting the word alone would return at once
    /// forever after the first event.
    pub(crate) fn ready(&self, dir: Dir) -> io::Result<()> {
        let deadline = Deadline::Timeout(self.timeout(dir)).resolve();
        match worker::coroutine_local() {
            Some(l) => {
                let seen = self.state.seen();
                if poll_now(self.fd, dir)? {
                    return Ok(());
                }
                self.state.clear(seen, dir);
                self.park(l, dir, deadline, dir.wait(), None)
            }
            None => poll_fd(self.fd, dir, deadline, -1),
        }
    }

    /// The socket's `how` side(s) were shut down by this handle: marks them
    /// closed and wakes their waiters (see `Fd::shutdown`).
    pub(crate) fn shut_down(&self, how: std::net::Shutdown) {
        use std::net::Shutdown;
        let bits = match how {
            Shutdown::Read => super::reactor::READ_CLOSED,
            Shutdown::Write => super::reactor::WRITE_CLOSED,
            Shutdown::Both => super::reactor::READ_CLOSED | super::reactor::WRITE_CLOSED,
        };
        self.state.mark(bits);
        if how != Shutdown::Read {
            // After the shutdown itself (see `io_thread`).
            let e = self.shut_wake.load(SeqCst);
            if e >= 0 {
                let one = 1u64;
                // SAFETY: an eventfd of ours, open until the source is
                // dropped; writes the 8 bytes of `one`. A failure (the
                // counter full) leaves it readable all the same.
                unsafe { libc::write(e, (&raw const one).cast(), 8) };
            }
        }
    }

    /// Removes the descriptor from its netpoller (before it is handed out;
    /// dropping the source does it too).
    pub(crate) fn deregister(&self) {
        self.state.deregister(self.fd);
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        let v = match dir {
            Dir::Read => self.read_timeout.load(Relaxed),
            Dir::Write => self.write_timeout.load(Relaxed),
        };
        match v {
            0 => None,
            v if v & IN_SECONDS != 0 => Some(Duration::from_secs(v & !IN_SECONDS)),
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Sets a timeout as std's `set_read_timeout` does: `Some(0)` is an
    /// error. Kept as given, in nanoseconds, or past 2^63 ns (292 years)
    /// in whole seconds; one past [`NO_TIMEOUT_SECS`] means none, as std
    /// then reads back `None` from the kernel.
    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        let v = match t {
            None => 0,
            Some(d) if d.is_zero() => return Err(zero_timeout()),
            Some(d) if d.as_secs() >= NO_TIMEOUT_SECS => 0,
            Some(d) => match u64::try_from(d.as_nanos()) {
                Ok(ns) if ns & IN_SECONDS == 0 => ns,
                _ => d.as_secs() | IN_SECONDS,
            },
        };
        match dir {
            Dir::Read => self.read_timeout.store(v, Relaxed),
            Dir::Write => self.write_timeout.store(v, Relaxed),
        }
        Ok(())
    }

    pub(crate) fn nonblocking(&self) -> bool {
        self.nonblocking.load(Relaxed)
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Relaxed);
    }

    /// A clone's settings: the timeouts and the non-blocking mode of the
    /// handle it was cloned from, as std's clone shares them (they are
    /// the open socket's there); each handle's change its own from then on.
    pub(crate) fn copy_settings(&self, from: &Source) {
        self.read_timeout
            .store(from.read_timeout.load(Relaxed), Relaxed);
        self.write_timeout
            .store(from.write_timeout.load(Relaxed), Relaxed);
        self.nonblocking.store(from.nonblocking(), Relaxed);
    }
}

/// A stored timeout's tag: the rest is whole seconds, not nanoseconds.
const IN_SECONDS: u64 = 1 << 63;

/// The longest timeout kept, in seconds: the kernel keeps a socket's
/// timeout in jiffies and treats one of `LONG_MAX / HZ` seconds or more as
/// none (std then reads back `None`); this is that limit for HZ = 1000, the
/// highest usual value (292 million years).
const NO_TIMEOUT_SECS: u64 = i64::MAX as u64 / 1000;

impl Drop for Source {
    fn drop(&mut self) {
        self.deregister();
        let e = *self.shut_wake.get_mut();
        if e >= 0 {
            // SAFETY: our eventfd (see the field); nobody polls it any more.
            unsafe { libc::close(e) };
        }
    }
}

/// When a wait gives up: a timeout, counted from the first wait (so that
/// an operation that never waits never reads the clock), or an instant.
#[derive(Clone, Copy)]
enum Deadline {
    Timeout(Option<Duration>),
    At(Option<Instant>),
}

impl Deadline {
    fn resolve(&mut self) -> Option<Instant> {
        if let Deadline::Timeout(t) = *self {
            // An overflowing deadline is none.
            *self = Deadline::At(t.and_then(|t| Instant::now().checked_add(t)));
        }
        match *self {
            Deadline::At(d) => d,
            Deadline::Timeout(_) => None,
        }
    }
}

/// The error of an async operation that would wait, polled outside a
/// coroutine, on a descriptor that was made outside coio's coroutines and
/// that no coroutine has registered yet, or whose runtime is gone.
#[cold]
fn not_in_coroutine() -> io::Error {
    io::Error::other(
        "coio: async I/O that must wait, polled outside a coroutine, on a coio socket \
         made outside one that no coroutine has waited on yet, or whose runtime has shut \
         down: no coio poller drives it; make it, or poll it first, in a coroutine of a \
         running runtime (e.g. in coio::future::block_on, or with \
         coio::compat::hyper::Executor)",
    )
}

/// std's error for a zero timeout (`set_read_timeout`, `connect_timeout`).
pub(crate) fn zero_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot set a 0 duration timeout",
    )
}

/// The `TimedOut` error of an I/O wait.
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "coio: the I/O operation timed out")
}

/// Blocks the thread until `fd` is ready for `dir` (or has an error or a
/// hang-up), or `extra` (an eventfd, if not -1) is signalled, or
/// `deadline` passes.
fn poll_fd(fd: RawFd, dir: Dir, deadline: Option<Instant>, extra: RawFd) -> io::Result<()> {
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                // Rounded up, so that the wait never ends early.
                let ms = left.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        match poll_once(fd, dir, ms, extra) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `fd` is ready for `dir` now (`poll(2)` without waiting).
fn poll_now(fd: RawFd, dir: Dir) -> io::Result<bool> {
    loop {
        match poll_once(fd, dir, 0, -1) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One `poll(2)` of `fd` for `dir`, for up to `ms` milliseconds (-1:
/// forever); true if ready (or hung up, or in error: the next operation
/// will not block), or if `extra` (-1: none) is readable.
fn poll_once(fd: RawFd, dir: Dir, ms: libc::c_int, extra: RawFd) -> io::Result<bool> {
    let events = match dir {
        Dir::Read => libc::POLLIN | libc::POLLRDHUP,
        Dir::Write => libc::POLLOUT,
    };
    // A negative descriptor is skipped by poll(2).
    let mut pfds = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: extra,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `pfds` is a valid array of two pollfds for the call.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0)
}
