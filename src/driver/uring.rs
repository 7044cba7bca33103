//! The io_uring half of a worker's driver: one ring per worker, for
//! completion-based I/O, and the worker's sleep.
//!
//! # What the ring does
//!
//! * **Operations.** The layer above pushes a submission with a pointer to
//!   its [`Completion`] record as the entry's `user_data`, and its caller
//!   (a parked coroutine) waits. Submissions only go into the shared
//!   submission queue; they reach the kernel, in one `io_uring_enter` for
//!   all of them, when the worker next polls or sleeps (or when the queue
//!   is full). The completion of each is handed to its record on the
//!   worker's thread as the worker reaps the completion queue.
//! * **The sleep.** The worker's epoll instance (see the parent module) is
//!   itself polled through the ring, by one multishot `POLL_ADD`: so a
//!   worker asleep in `io_uring_enter` wakes for a completion, for any
//!   epoll event (sockets still waited on by readiness) and for a wake from
//!   another thread (the eventfd, which sits in the epoll instance), with
//!   the nearest timer as the enter's timeout.
//!
//! The ring is set up with `SINGLE_ISSUER` and `DEFER_TASKRUN` (Linux 6.1):
//! only the worker's thread submits, and the kernel finishes operations
//! (copies a socket's data into the waiting buffer) only inside the
//! worker's `io_uring_enter`, in batches, instead of interrupting it. With
//! `TASKRUN_FLAG` the kernel also says when it holds finished work that
//! an enter has not run yet (newer kernels run at most 20 per enter), and
//! a poll enters again until it has all of it (see [`Ring::poll`]). It
//! is created disabled (`R_DISABLED`) by whichever thread builds the
//! runtime, so that a kernel without these features is found out while the
//! runtime is built, and enabled by its worker's thread, which becomes its
//! one issuer.
//!
//! # Invariants
//!
//! * A record passed to [`Ring::push`] stays where it is, and the memory
//!   its operation reads or writes stays lent to the kernel, until the
//!   ring has handed the record its completion. The ring keeps no other
//!   reference to it. Operations are cancelled (in the kernel) only by
//!   [`Ring::cancel`], whose completion is not handed to anyone: the
//!   cancelled operation still completes (with `ECANCELED`, or its result
//!   if it won the race) and its record still gets that completion.
//! * `in_flight` counts pushed operations whose completion has not been
//!   handed over. A ring is dropped only when it is zero; if not (a bug, or
//!   coroutines leaked with their stacks), the drop cancels every
//!   operation and waits for their completions, handing them to nobody, so
//!   that the kernel is done with their memory before the ring goes.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// `user_data` of completions handed to nobody (cancel requests).
const IGNORED: u64 = 0;
/// `user_data` of the multishot poll of the worker's epoll descriptor.
const EPOLL: u64 = 1;

/// Completion-queue entries per submission-queue entry: the completion
/// queue must hold the completions of every operation in flight that
/// finishes between two reaps, and operations stay in flight for long (a
/// receive waits for its peer), far more of them than one batch of
/// submissions. (With `NODROP` an overflow is not lost, only slower.)
const CQ_FACTOR: u32 = 16;

/// A submitted operation's record, which the ring hands the operation's
/// result to. The layer above embeds it (first field, `repr(C)`) in its
/// own record, whose address the function gets back.
#[repr(C)]
pub(crate) struct Completion {
    /// Called once, on the worker's thread, with the operation's result
    /// (a count, or a negated errno). Must not call into the driver.
    complete: unsafe fn(NonNull<Completion>, i32),
}

impl Completion {
    /// A record whose completion is handed to `complete`.
    pub(crate) const fn new(complete: unsafe fn(NonNull<Completion>, i32)) -> Completion {
        Completion { complete }
    }
}

/// Whether the process runs under valgrind. Its `io_uring_enter` (3.19
/// at least) keeps valgrind's lock while it blocks, so a ring that waited
/// inside it would stop every other thread of the process until it woke
/// (liburing issue 657): such a ring never waits in the kernel and sleeps
/// in epoll instead, woken by an eventfd the kernel signals as completions
/// come (see [`Ring::sleeps_in_epoll`]).
fn under_valgrind() -> bool {
    crate::arch::running_on_valgrind()
}

/// One worker's ring (see the module docs). Used only by the worker's
/// thread once enabled.
pub(crate) struct Ring {
    ring: IoUring,
    /// Under valgrind only: the eventfd registered with the ring, which
    /// the worker's epoll instance watches (see [`under_valgrind`]).
    eventfd: Option<std::os::fd::OwnedFd>,
    /// Pushed operations whose completion has not been handed over.
    in_flight: usize,
    /// Completions handed over so far (wrapping).
    handed: usize,
    /// The multishot poll of `epfd` is in the kernel (it ends on an error
    /// or an overflow, and is armed again).
    epoll_armed: bool,
    /// The worker's epoll instance.
    epfd: RawFd,
    /// The kernel's ring has `IORING_OP_FTRUNCATE` (Linux 6.9), as its
    /// probe says: without it a truncate goes straight to the pool rather
    /// than through a ring round trip that can only fail.
    truncates: bool,
}

impl Ring {
    /// A disabled ring of `entries` submission entries (a power of two),
    /// whose sleep also watches `epfd`. Fails where the kernel lacks
    /// io_uring or the features used here (`ENOSYS`, `EINVAL`), forbids it
    /// (`EPERM`: seccomp, `kernel.io_uring_disabled`) or cannot afford it
    /// (`ENOMEM`).
    pub(crate) fn new(entries: u32, epfd: RawFd) -> io::Result<Ring> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_r_disabled()
            .setup_cqsize(entries.saturating_mul(CQ_FACTOR))
            .build(entries)?;
        if !ring.params().is_feature_nodrop() || !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel's io_uring lacks NODROP or EXT_ARG (Linux 5.11+)",
            ));
        }
        let eventfd = if under_valgrind() {
            // SAFETY: plain eventfd(2); the result is checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the descriptor we just made; nobody else has it.
            let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            ring.submitter()
                .register_eventfd(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
            Some(fd)
        } else {
            None
        };
        // Registration is open to any thread while the ring is disabled
        // (its one issuer is fixed when it is enabled). A kernel whose
        // probe fails (older than 5.6, far below what this ring needs
        // anyway) is taken to lack the operation.
        let mut probe = io_uring::Probe::new();
        let truncates = ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::Ftruncate::CODE);
        Ok(Ring {
            ring,
            eventfd,
            in_flight: 0,
            handed: 0,
            epoll_armed: false,
            epfd,
            truncates,
        })
    }

    /// Enables the ring; the calling thread becomes its one issuer. Called
    /// once, by the worker's thread, before any other use.
    pub(crate) fn enable(&self) -> io::Result<()> {
        self.ring.submitter().register_enable_rings()
    }

    /// The eventfd the worker's epoll instance must watch, where the ring
    /// sleeps in epoll (under valgrind); None otherwise.
    pub(crate) fn sleeps_in_epoll(&self) -> Option<RawFd> {
        self.eventfd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// How many completions were handed over so far (wrapping): a change
    /// says a poll found something.
    pub(crate) fn handed_over(&self) -> usize {
        self.handed
    }

    /// Whether the kernel's ring can truncate a file (see `truncates`).
    pub(crate) fn truncates(&self) -> bool {
        self.truncates
    }

    /// Whether operations are in flight (the worker must keep polling).
    #[inline]
    pub(crate) fn has_work(&self) -> bool {
        self.in_flight != 0
    }

    /// Queues `sqe`, whose completion goes to `target`.
    ///
    /// # Safety
    /// `target` and every buffer `sqe` points to must stay valid, in place
    /// and lent to the kernel until `target`'s function has been called
    /// (module docs); `target`'s function must be sound to call with it.
    #[inline]
    pub(crate) unsafe fn push(&mut self, sqe: squeue::Entry, target: NonNull<Completion>) {
        self.push_entry(sqe.user_data(target.as_ptr() as u64));
        self.in_flight += 1;
    }

    /// Asks the kernel to cancel the operation of `target` (pushed and not
    /// yet completed). Its completion still comes, to `target`.
    pub(crate) fn cancel(&mut self, target: NonNull<Completion>) {
        let sqe = opcode::AsyncCancel::new(target.as_ptr() as u64)
            .build()
            .user_data(IGNORED);
        self.push_entry(sqe);
    }

    fn push_entry(&mut self, sqe: squeue::Entry) {
        loop {
            // SAFETY: every entry pushed here is either a cancel or poll
            // request (no memory lent), or comes from `push`, whose caller
            // guarantees what the entry points to.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel now.
            if let Err(e) = self.ring.submit()
                && !matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EINTR))
            {
                note!("coio: io_uring_enter (submit) failed: {e}");
            }
        }
    }

    /// Submits what is queued and waits up to `timeout` (none: until
    /// something happens; zero: just looks) for a completion or an epoll
    /// event; hands every completion to its record. Returns whether the
    /// epoll instance has events to fetch.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) -> bool {
        // A ring that sleeps in epoll does not watch epoll itself (its
        // eventfd is in there: each would keep waking the other).
        let timeout = if self.eventfd.is_some() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if !self.epoll_armed && self.eventfd.is_none() {
            let sqe = opcode::PollAdd::new(types::Fd(self.epfd), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(EPOLL);
            self.push_entry(sqe);
            self.epoll_armed = true;
        }
        let result = match timeout {
            Some(Duration::ZERO) => {
                let n = self.ring.submission().len() as u32;
                // SAFETY: a plain enter with no argument: submits what the
                // queue holds (its tail published by our pushes) and runs
                // the deferred completions (GETEVENTS) without waiting.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        n,
                        0,
                        io_uring::EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            }
            None => self.ring.submit_and_wait(1),
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        let mut failed = report_enter_error(result);
        let mut epoll = self.reap();
        // From Linux 6.13 an enter that does not wait runs only a batch of
        // a DEFER_TASKRUN ring's deferred completions (20: the kernel's
        // IO_LOCAL_TW_DEFAULT_MAX) and leaves the rest for the next enter.
        // A busy worker polls once per FAIRNESS_TICKS, and with hundreds of
        // receives in flight more than 20 complete in between: the rest
        // waited a whole round of the run queue more, which was the ring's
        // worse p99 (echo at 500 connections: 3.1-3.9 ms against epoll's
        // 2.3-2.6). So enter again while the kernel flags deferred work
        // (TASKRUN), a bounded number of times so that a flood cannot hold
        // the worker here, and not after an enter that failed for good.
        //
        // (With TASKRUN_FLAG the io-uring crate's `submit`, which
        // `push_entry` calls when the queue is full, also asks for these
        // completions while the flag is set; they wait in the completion
        // queue for the next reap, and NODROP keeps any overflow.)
        let mut passes = 0;
        while !failed && passes < MAX_EXTRA_PASSES && self.ring.submission().taskrun() {
            // SAFETY: as above: runs the deferred completions, no waiting.
            let result = unsafe {
                self.ring.submitter().enter::<libc::sigset_t>(
                    0,
                    0,
                    io_uring::EnterFlags::GETEVENTS.bits(),
                    None,
                )
            };
            failed = report_enter_error(result);
            epoll |= self.reap();
            passes += 1;
        }
        epoll
    }

    /// Hands every completion in the queue to its record. Returns whether
    /// the epoll poll fired.
    fn reap(&mut self) -> bool {
        let mut epoll = false;
        let mut cq = self.ring.completion();
        for cqe in &mut cq {
            match cqe.user_data() {
                IGNORED => {}
                EPOLL => {
                    epoll = true;
                    if !cqueue::more(cqe.flags()) {
                        self.epoll_armed = false;
                    }
                }
                p => {
                    self.in_flight -= 1;
                    self.handed = self.handed.wrapping_add(1);
                    let target = p as *mut Completion;
                    // SAFETY: `p` is the address of a record passed to
                    // `push` (the only other values are the two above),
                    // valid until now by `push`'s contract; its operation
                    // completed, and each completes once.
                    unsafe {
                        let target = NonNull::new_unchecked(target);
                        (target.as_ref().complete)(target, cqe.result());
                    }
                }
            }
        }
        epoll
    }
}

/// Extra enters a poll makes at most to run the kernel's deferred
/// completions (see [`Ring::poll`]), each of a batch of 20 or more.
const MAX_EXTRA_PASSES: u32 = 64;

/// Reports an `io_uring_enter` that failed other than by timing out, being
/// interrupted, or having completions to reap first; returns whether it
/// did.
fn report_enter_error(result: io::Result<usize>) -> bool {
    match result {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
            ) =>
        {
            note!("coio: io_uring_enter failed: {e}");
            true
        }
        _ => false,
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        // Not expected (every waiter waits for its completion): make sure
        // the kernel is done with the operations' memory before we go.
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(IGNORED);
        self.push_entry(sqe);
        while self.in_flight != 0 {
            if let Err(e) = self.ring.submit_and_wait(1)
                && e.raw_os_error() != Some(libc::EINTR)
            {
                // The kernel may still write the operations' memory: end
                // the process rather than free it.
                note!("coio: io_uring_enter failed while closing a ring: {e}; aborting");
                std::process::abort();
            }
            let mut cq = self.ring.completion();
            for cqe in &mut cq {
                if cqe.user_data() > EPOLL {
                    self.in_flight -= 1;
                }
            }
        }
    }
}
