//! Operations through the worker's io_uring: the coroutine lends its own
//! buffers to the kernel and parks until the completion.
//!
//! On a runtime whose workers have rings (`IoDriver::Uring`), the socket
//! and file calls of a coroutine (`net::ring`, `fs::ring`: reads, writes,
//! vectored ones, `recvmsg`/`sendmsg`, accept, connect, open, fsync) build
//! an entry that points to the caller's own `&mut [u8]` (or `msghdr`,
//! `sockaddr`, path) and call [`run`]: it pushes the entry into its
//! worker's ring and parks. The kernel does the work inside the worker's
//! next `io_uring_enter` (in a batch with every other coroutine's), the
//! worker hands the result to the operation's record, and that wakes the
//! coroutine. A socket that goes through the ring is never registered with
//! epoll, and never makes a system call of its own.
//!
//! # Why this is sound with borrowed buffers
//!
//! Completion-based runtimes for futures make their users hand over owned
//! buffers, because a future can be dropped while the kernel still writes
//! into what it lent. A coroutine cannot be dropped while it is parked: its
//! stack, with the buffers' borrows and the operation's record on it, stays
//! where it is until it resumes, and it resumes from [`run`] only once the
//! completion has arrived:
//!
//! * a **timeout** or a **cancellation** of the coroutine does not end the
//!   wait: it asks the kernel to cancel the operation (`ASYNC_CANCEL`) and
//!   goes on waiting, uncancellably, for the operation's own completion
//!   (`ECANCELED`, or its result if it won the race: then the call returns
//!   that result, not the timeout or the unwind, and nothing is lost; a
//!   cancelled coroutine unwinds at its next wait);
//! * nothing in the wait can **panic** (a panic there would be a bug in
//!   coio, and aborts the process rather than unwind out of a frame the
//!   kernel may still write to);
//! * at **shutdown** every coroutine is cancelled and unwinds only after
//!   its completion came; a worker polls its ring until its last coroutine
//!   has finished, and a ring dropped with operations in flight cancels and
//!   reaps them first (`driver::uring`).
//!
//! The completion is handed over on the worker's own thread (each worker
//! has its ring; a coroutine never leaves its worker), so the record needs
//! no atomics: the worker writes the result while the coroutine is
//! suspended, and the coroutine reads it after it was woken.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Instant;

pub(crate) use io_uring::{opcode, squeue, types};

use crate::driver::uring::Completion;
use crate::park;
use crate::runtime::dump::Wait;
use crate::runtime::task::{self, Started};
use crate::runtime::worker;

/// One operation in flight, on the parked coroutine's stack.
#[repr(C)]
struct Op {
    /// First field: the ring hands back its address.
    completion: Completion,
    /// The result (a count or a negated errno), once completed.
    result: Cell<Option<i32>>,
    /// The coroutine that waits (suspended in this wait, so unfinished).
    task: Started,
}

/// The ring's hand-over: records the result and wakes the coroutine.
///
/// # Safety
/// `c` is the `completion` of a live `Op` whose coroutine waits for it, and
/// this runs on that coroutine's worker thread.
unsafe fn complete(c: NonNull<Completion>, res: i32) {
    // SAFETY: caller (`completion` is the first field of a `repr(C)` Op).
    let op = unsafe { c.cast::<Op>().as_ref() };
    op.result.set(Some(res));
    // SAFETY: the coroutine is suspended in its wait for this, hence
    // unfinished and registered.
    let t = unsafe { op.task.get() };
    match task::home_here(t) {
        Some(home) => task::wake_at_home(home, t),
        None => task::wake(t),
    }
}

/// Why a wait asked the kernel to cancel its operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GaveUp {
    TimedOut,
    Cancelled,
}

/// Runs the operation `sqe()` through the ring of the calling
/// coroutine's worker and waits for its completion until `deadline()`
/// (read once the operation is in the kernel). Returns its result (a
/// count or a descriptor); None, having done nothing, if the caller is not
/// a coroutine or its worker has no ring.
///
/// # Safety
/// Every piece of memory the entry points to (buffers, addresses, paths)
/// must stay valid, and not be used otherwise, for as long as this call
/// runs: borrowing it for the call is enough, since the call returns only
/// after the kernel is done with it.
#[inline]
pub(crate) unsafe fn run(
    sqe: impl FnOnce() -> squeue::Entry,
    deadline: impl FnOnce() -> Option<Instant>,
    wait: Wait,
) -> Option<io::Result<u32>> {
    let l = worker::coroutine_local()?;
    if !l.driver.borrow().has_ring() {
        return None;
    }
    // SAFETY: the caller's contract.
    unsafe { run_on_ring(l, sqe, deadline, wait) }
}

/// [`run`] on the calling coroutine's worker `l`, which has a ring. Out of
/// line: its record and state would otherwise widen the frame of every
/// socket call that inlines [`run`], on the readiness path too, where that
/// frame is part of every parked coroutine's stack (issue 13: the stack
/// lines a resume touches are most of what a server with many connections
/// misses in its caches).
///
/// # Safety
/// As [`run`].
#[inline(never)]
unsafe fn run_on_ring(
    l: &worker::Local,
    sqe: impl FnOnce() -> squeue::Entry,
    deadline: impl FnOnce() -> Option<Instant>,
    wait: Wait,
) -> Option<io::Result<u32>> {
    // A cancelled coroutine unwinds before it submits anything: in a loop
    // of operations that complete at once (reads at end of stream), each
    // result came first and stood, and the cancellation was never seen.
    if park::is_cancelled() {
        park::unwind_cancelled();
    }
    let op = Op {
        completion: Completion::new(complete),
        result: Cell::new(None),
        task: l.current_started(),
    };
    let target = NonNull::from(&op.completion);
    {
        let mut driver = l.driver.borrow_mut();
        let ring = driver.ring()?;
        // SAFETY: `op` and what the entry points to (the caller's contract)
        // stay in place until the completion is handed to `op`: we return
        // only after `op.result` is set, nothing below unwinds (`armed`, at
        // once), and the coroutine's stack cannot go away while it is
        // suspended here (see the module docs). `complete` is sound for an
        // `Op`'s completion, and runs on this worker.
        unsafe { ring.push(sqe(), target) };
    }
    let armed = park::AbortOnUnwind("while an io_uring operation was in flight");
    let deadline = deadline();
    let mut gave_up = None;
    let res = loop {
        if let Some(res) = op.result.get() {
            break res;
        }
        if gave_up.is_none() {
            if park::is_cancelled() {
                gave_up = Some(GaveUp::Cancelled);
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                gave_up = Some(GaveUp::TimedOut);
            }
            if gave_up.is_some() {
                if let Some(ring) = l.driver.borrow_mut().ring() {
                    ring.cancel(target);
                }
                continue;
            }
        }
        // After giving up, wait without a deadline: only the completion
        // ends the wait. The suspension inlined, as on the readiness path
        // (one frame fewer on a parked coroutine's stack: at 500
        // connections, 15.2 -> 13.2 simulated L2 misses per request).
        l.block_current_inlined(if gave_up.is_some() { None } else { deadline }, false, wait);
    };
    std::mem::forget(armed);
    Some(match (res, gave_up) {
        // The operation was done first: its result stands, whatever the
        // wait gave up for (a cancelled coroutine unwinds at its next
        // wait).
        (n, _) if n >= 0 => Ok(n as u32),
        (_, Some(GaveUp::Cancelled)) => park::unwind_cancelled(),
        (e, Some(GaveUp::TimedOut)) if e == -libc::ECANCELED => Err(super::source::timed_out()),
        (e, _) => Err(io::Error::from_raw_os_error(-e)),
    })
}

/// Whether the calling coroutine's worker has a ring (false on a plain
/// thread): for operations that must prepare something (a socket) before
/// they know whether [`run`] will take them.
#[inline]
pub(crate) fn available() -> bool {
    worker::coroutine_local().is_some_and(|l| l.driver.borrow().has_ring())
}

/// Whether the calling coroutine's worker has a ring that can truncate a
/// file (`IORING_OP_FTRUNCATE`, Linux 6.9).
pub(crate) fn truncates() -> bool {
    worker::coroutine_local()
        .is_some_and(|l| l.driver.borrow_mut().ring().is_some_and(|r| r.truncates()))
}

/// The length of a buffer as an operation's `u32` (a longer buffer is
/// used in part, as a short read or write).
#[inline]
pub(crate) fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// An all-zero `msghdr` with `iov` as its data, at most `sys::IOV_MAX`
/// slices (`recvmsg`/`sendmsg` read or fill the name and data through it
/// while the operation runs).
pub(crate) fn msghdr(iov: *const libc::iovec, iovlen: usize) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no data, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov as *mut libc::iovec;
    msg.msg_iovlen = iovlen.min(super::sys::IOV_MAX) as _;
    msg
}

// The entries of the operations coio runs through the ring. Each points to
// memory its caller lends for the operation (see `run`'s contract).

/// `recv(fd, buf, flags)`.
#[inline]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> squeue::Entry {
    opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), len32(buf.len()))
        .flags(flags)
        .build()
}

/// `send(fd, buf, flags | MSG_NOSIGNAL)` (a reset connection is an
/// `EPIPE` error, not a `SIGPIPE`, as with std).
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8], flags: i32) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), buf.as_ptr(), len32(buf.len()))
        .flags(flags | libc::MSG_NOSIGNAL)
        .build()
}

/// `recvmsg(fd, msg, flags)`.
#[inline]
pub(crate) fn recvmsg(fd: RawFd, msg: &mut libc::msghdr, flags: u32) -> squeue::Entry {
    opcode::RecvMsg::new(types::Fd(fd), msg)
        .flags(flags)
        .build()
}

/// `sendmsg(fd, msg, flags | MSG_NOSIGNAL)`.
#[inline]
pub(crate) fn sendmsg(fd: RawFd, msg: &libc::msghdr, flags: u32) -> squeue::Entry {
    opcode::SendMsg::new(types::Fd(fd), msg)
        .flags(flags | libc::MSG_NOSIGNAL as u32)
        .build()
}

/// `accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new
/// descriptor, made as coio's accepted sockets are.
#[inline]
pub(crate) fn accept(
    fd: RawFd,
    addr: &mut libc::sockaddr_storage,
    len: &mut libc::socklen_t,
) -> squeue::Entry {
    *len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    opcode::Accept::new(
        types::Fd(fd),
        (addr as *mut libc::sockaddr_storage).cast(),
        len,
    )
    .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    .build()
}

/// `connect(fd, addr, len)`.
#[inline]
pub(crate) fn connect(
    fd: RawFd,
    addr: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> squeue::Entry {
    opcode::Connect::new(
        types::Fd(fd),
        (addr as *const libc::sockaddr_storage).cast(),
        len,
    )
    .build()
}

/// `read(fd, buf)` at the file's position (offset -1: the position is used
/// and advanced, as by `read(2)`), for files.
#[inline]
pub(crate) fn read(fd: RawFd, buf: *mut u8, len: usize) -> squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf, len32(len))
        .offset(u64::MAX)
        .build()
}

/// `write(fd, buf)` at the file's position (as [`read`]).
#[inline]
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> squeue::Entry {
    opcode::Write::new(types::Fd(fd), buf.as_ptr(), len32(buf.len()))
        .offset(u64::MAX)
        .build()
}

/// `pread(fd, buf, offset)`.
#[inline]
pub(crate) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64) -> squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), len32(buf.len()))
        .offset(offset)
        .build()
}

/// `pwrite(fd, buf, offset)`.
#[inline]
pub(crate) fn write_at(fd: RawFd, buf: &[u8], offset: u64) -> squeue::Entry {
    opcode::Write::new(types::Fd(fd), buf.as_ptr(), len32(buf.len()))
        .offset(offset)
        .build()
}

/// `readv(fd, iov)` at the file's position.
#[inline]
pub(crate) fn readv(fd: RawFd, iov: *const libc::iovec, n: usize) -> squeue::Entry {
    opcode::Readv::new(types::Fd(fd), iov, n.min(super::sys::IOV_MAX) as u32)
        .offset(u64::MAX)
        .build()
}

/// `writev(fd, iov)` at the file's position.
#[inline]
pub(crate) fn writev(fd: RawFd, iov: *const libc::iovec, n: usize) -> squeue::Entry {
    opcode::Writev::new(types::Fd(fd), iov, n.min(super::sys::IOV_MAX) as u32)
        .offset(u64::MAX)
        .build()
}

/// `openat(AT_FDCWD, path, flags, mode)`.
#[inline]
pub(crate) fn open(path: &std::ffi::CStr, flags: i32, mode: u32) -> squeue::Entry {
    opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(flags)
        .mode(mode as libc::mode_t)
        .build()
}

/// `statx` of the open file `fd` (`AT_EMPTY_PATH`), asking for `mask`,
/// into `buf`.
#[inline]
pub(crate) fn statx_fd(fd: RawFd, mask: u32, buf: *mut libc::statx) -> squeue::Entry {
    opcode::Statx::new(types::Fd(fd), c"".as_ptr(), buf.cast())
        .flags(libc::AT_EMPTY_PATH)
        .mask(mask)
        .build()
}

/// `ftruncate(fd, len)` (Linux 6.9: older kernels complete it with
/// `EINVAL`).
#[inline]
pub(crate) fn ftruncate(fd: RawFd, len: u64) -> squeue::Entry {
    opcode::Ftruncate::new(types::Fd(fd), len).build()
}

/// `fsync(fd)`, or `fdatasync(fd)` if `data_only`.
#[inline]
pub(crate) fn fsync(fd: RawFd, data_only: bool) -> squeue::Entry {
    let flags = if data_only {
        types::FsyncFlags::DATASYNC
    } else {
        types::FsyncFlags::empty()
    };
    opcode::Fsync::new(types::Fd(fd)).flags(flags).build()
}
