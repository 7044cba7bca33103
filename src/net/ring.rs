//! The socket operations that go through the worker's io_uring when the
//! runtime has one (`IoDriver::Uring`): each returns None, having done
//! nothing, where the ring does not apply (a plain thread, an epoll
//! runtime, a socket in non-blocking mode), and the caller takes the
//! readiness path.
//!
//! Sends are tried at once first (a plain `send`/`sendmsg` on the
//! non-blocking socket), and go through the ring only to wait for room:
//! a send rarely waits, and one through the ring always costs the
//! coroutine a second suspension per request, whose cold stack at 5,000
//! connections cost more than the system call saves (echo: 0.65× the
//! requests/s of sending at once; at 50 connections the ring's batching
//! won 2–3%, less than that loss). Receives and accepts go through the
//! ring (accepts after one try at once, see [`accept`]; a receive after
//! one that filled its buffer too, see [`recv`]). A send, an accept or a
//! receive done at once did not wait, and counts against the coroutine's
//! cooperative budget as on the readiness path (spent before the attempt,
//! `worker::coop_spend_cancellable`, so that a cancelled coroutine unwinds
//! before it has done anything); receives through the ring always wait.
//!
//! Each lends the kernel the caller's own buffers and a `msghdr` or
//! `sockaddr` on the caller's stack; `io::uring::run` returns only once the
//! kernel is done with them, whatever happens meanwhile (a timeout, a
//! cancellation, shutdown). The flags and the results are std's: sends
//! with `MSG_NOSIGNAL`, accepted and connecting sockets non-blocking and
//! close-on-exec, as coio makes them on the readiness path.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::addr;
use crate::io::{Dir, Fd, uring};
use crate::runtime::dump::Wait;

/// `recv(fd, buf, flags)` (`flags`: 0 or `MSG_PEEK`). After a receive
/// that filled its buffer (more is likely queued: a bulk transfer), the
/// next is tried at once first, as on the readiness path, and goes
/// through the ring only if that finds nothing. Each receive through the
/// ring waits for the worker's next look at it, which a worker that has
/// other coroutines to run takes only every few dozen of them: a reader
/// behind a busy neighbour got one buffer per look (8 MiB in 8 KiB reads
/// took 60 times as long as on epoll).
#[inline]
pub(super) fn recv<T: AsRawFd>(
    io: &Fd<T>,
    buf: &mut [u8],
    flags: i32,
) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    let src = io.source();
    let len = buf.len();
    let filled = |r: &io::Result<usize>| matches!(r, Ok(n) if *n > 0 && *n == len);
    if flags == 0 && src.more_queued() && ring_applies(io) {
        crate::runtime::worker::coop_spend_cancellable();
        match crate::io::sys::recv(fd, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.set_more_queued(false),
            r => {
                src.set_more_queued(filled(&r));
                return Some(r);
            }
        }
    }
    // SAFETY: the entry writes only to `buf`, borrowed mutably for the call.
    let r = unsafe { src.ring_op(Dir::Read, Wait::SocketRead, || uring::recv(fd, buf, flags)) };
    let r = r.map(|r| r.map(|n| n as usize));
    if flags == 0
        && let Some(r) = &r
    {
        src.set_more_queued(filled(r));
    }
    r
}

/// `send(fd, buf, MSG_NOSIGNAL)`: at once, else through the ring.
#[inline]
pub(super) fn send<T: AsRawFd>(io: &Fd<T>, buf: &[u8]) -> Option<io::Result<usize>> {
    if !ring_applies(io) {
        return None;
    }
    let fd = io.as_raw_fd();
    crate::runtime::worker::coop_spend_cancellable();
    match crate::io::sys::send(fd, buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        r => return Some(r),
    }
    // SAFETY: the entry reads only `buf`, borrowed for the call.
    let r = unsafe {
        io.source()
            .ring_op(Dir::Write, Wait::SocketWrite, || uring::send(fd, buf, 0))
    };
    r.map(|r| r.map(|n| n as usize))
}

/// Whether `io`'s operations may go through the caller's ring: a
/// coroutine whose worker has one, and a socket in blocking mode.
#[inline]
fn ring_applies<T: AsRawFd>(io: &Fd<T>) -> bool {
    !io.source().nonblocking() && uring::available()
}

/// `sendmsg(fd, msg, MSG_NOSIGNAL)` on `io`'s descriptor `fd`: at once,
/// else through the ring (the caller checked that the ring applies).
///
/// # Safety
/// `msg` and everything it points to stay valid, and are not written, for
/// the call (`io::uring::run`'s contract).
unsafe fn sendmsg<T: AsRawFd>(
    io: &Fd<T>,
    fd: RawFd,
    msg: &libc::msghdr,
) -> Option<io::Result<usize>> {
    crate::runtime::worker::coop_spend_cancellable();
    if let Some(r) = sendmsg_now(fd, msg) {
        return Some(r);
    }
    // SAFETY: the caller's contract; sendmsg only reads what `msg` points
    // to.
    let r = unsafe {
        io.source()
            .ring_op(Dir::Write, Wait::SocketWrite, || uring::sendmsg(fd, msg, 0))
    };
    r.map(|r| r.map(|n| n as usize))
}

/// `sendmsg(fd, msg, MSG_NOSIGNAL)` at once: None if it would block.
fn sendmsg_now(fd: RawFd, msg: &libc::msghdr) -> Option<io::Result<usize>> {
    // SAFETY: `msg` and what it points to are valid for the call; the
    // socket is non-blocking, so this does not wait.
    let n = unsafe { libc::sendmsg(fd, msg, libc::MSG_NOSIGNAL) };
    if n >= 0 {
        return Some(Ok(n as usize));
    }
    let e = io::Error::last_os_error();
    (e.kind() != io::ErrorKind::WouldBlock).then_some(Err(e))
}

/// A vectored read (`recvmsg`).
pub(super) fn recv_vectored<T: AsRawFd>(
    io: &Fd<T>,
    bufs: &mut [IoSliceMut<'_>],
) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    // IoSliceMut is guaranteed ABI-compatible with iovec.
    let mut msg = uring::msghdr(bufs.as_ptr().cast(), bufs.len());
    // SAFETY: the entry writes only to `bufs` through `msg`, both borrowed
    // for the call.
    let r = unsafe {
        io.source().ring_op(Dir::Read, Wait::SocketRead, || {
            uring::recvmsg(fd, &mut msg, 0)
        })
    };
    r.map(|r| r.map(|n| n as usize))
}

/// A vectored write (`sendmsg` with `MSG_NOSIGNAL`): at once, else through
/// the ring.
pub(super) fn send_vectored<T: AsRawFd>(
    io: &Fd<T>,
    bufs: &[IoSlice<'_>],
) -> Option<io::Result<usize>> {
    if !ring_applies(io) {
        return None;
    }
    let fd = io.as_raw_fd();
    // IoSlice is guaranteed ABI-compatible with iovec.
    let msg = uring::msghdr(bufs.as_ptr().cast(), bufs.len());
    // SAFETY: `msg` points only to `bufs`, borrowed for the call.
    unsafe { sendmsg(io, fd, &msg) }
}

/// A datagram and its sender (`recvmsg` with a name; `flags`: 0 or
/// `MSG_PEEK`).
pub(super) fn recv_from<T: AsRawFd>(
    io: &Fd<T>,
    buf: &mut [u8],
    flags: u32,
) -> Option<io::Result<(usize, SocketAddr)>> {
    let fd = io.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut msg = uring::msghdr(&raw mut iov, 1);
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the entry writes to `buf`, `name` and `msg` (the name's
    // length), all borrowed for the call.
    let r = unsafe {
        io.source().ring_op(Dir::Read, Wait::SocketRead, || {
            uring::recvmsg(fd, &mut msg, flags)
        })
    };
    Some(r?.and_then(|n| Ok((n as usize, addr::from_raw(&name, msg.msg_namelen)?))))
}

/// One datagram to `to` (`sendmsg` with a name): at once, else through
/// the ring.
pub(super) fn send_to<T: AsRawFd>(
    io: &Fd<T>,
    buf: &[u8],
    to: &SocketAddr,
) -> Option<io::Result<usize>> {
    if !ring_applies(io) {
        return None;
    }
    let fd = io.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let (mut name, len) = addr::to_raw(to);
    let mut msg = uring::msghdr(&raw mut iov, 1);
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = len;
    // SAFETY: `msg` points only to `iov` (to `buf`) and `name`, all
    // borrowed for the call.
    unsafe { sendmsg(io, fd, &msg) }
}

/// Accepts a connection on the listening socket `io`: the new socket's
/// descriptor (non-blocking, close-on-exec) and the peer's address as the
/// kernel wrote it.
///
/// Tries `accept4` at once first, and goes through the ring only when no
/// connection is queued: connections come in bursts, and an accept loop
/// that took a ring round trip (a wait for the worker's next poll) per
/// connection drained a burst of 5,000 so slowly that the kernel dropped
/// SYNs beyond the backlog for seconds; the readiness path drains the
/// queue in one go, and so does this.
pub(super) fn accept<T: AsRawFd>(
    io: &Fd<T>,
) -> Option<io::Result<(OwnedFd, libc::sockaddr_storage, libc::socklen_t)>> {
    if !ring_applies(io) {
        return None;
    }
    let fd = io.as_raw_fd();
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    crate::runtime::worker::coop_spend_cancellable();
    // SAFETY: accept4 writes at most `len` bytes to `name`; the listener
    // is non-blocking (as all of coio's sockets are), so this does not
    // wait.
    let new = unsafe {
        libc::accept4(
            fd,
            (&raw mut name).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if new >= 0 {
        // SAFETY: the kernel made this descriptor for us just now.
        let new = unsafe { OwnedFd::from_raw_fd(new) };
        return Some(Ok((new, name, len)));
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
        // Done without waiting, as a success (a loop that ignores accept's
        // errors, `EMFILE`, lets the others run, as on the epoll path: the
        // budget was spent above).
        return Some(Err(e));
    }
    // SAFETY: the entry writes only to `name` and `len`, borrowed for the
    // call.
    let r = unsafe {
        io.source().ring_op(Dir::Read, Wait::Accept, || {
            uring::accept(fd, &mut name, &mut len)
        })
    };
    Some(r?.map(|new| {
        // SAFETY: the kernel made this descriptor for us just now; nobody
        // else has it.
        let new = unsafe { OwnedFd::from_raw_fd(new as RawFd) };
        (new, name, len)
    }))
}

/// A new TCP socket connected to `to` by `deadline` (non-blocking and
/// close-on-exec, as mio makes them), where the caller's worker has a
/// ring.
pub(super) fn connect_tcp(
    to: &SocketAddr,
    deadline: Option<Instant>,
) -> Option<io::Result<OwnedFd>> {
    if !uring::available() {
        return None;
    }
    let family = match to {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // Failed without waiting (see `TcpStream::connect_until`).
        crate::runtime::worker::coop_spend_cancellable();
        return Some(Err(e));
    }
    // SAFETY: the socket we just made; nobody else has it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (name, len) = addr::to_raw(to);
    // SAFETY: the entry reads only `name`, borrowed for the call.
    let r = unsafe {
        uring::run(
            || uring::connect(fd, &name, len),
            || deadline,
            Wait::Connect,
        )
    };
    // Not None: the ring was there a moment ago, and this coroutine has
    // not left its worker.
    Some(r?.map(|_| sock))
}
