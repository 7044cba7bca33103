//! The socket operations that go through the worker's io_uring when the
//! runtime has one (`IoDriver::Uring`): each returns None, having done
//! nothing, where the ring does not apply (a plain thread, an epoll
//! runtime, a socket in non-blocking mode), and the caller takes the
//! readiness path.
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

/// `recv(fd, buf, flags)` (`flags`: 0 or `MSG_PEEK`).
#[inline]
pub(super) fn recv<T: AsRawFd>(
    io: &Fd<T>,
    buf: &mut [u8],
    flags: i32,
) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    // SAFETY: the entry writes only to `buf`, borrowed mutably for the call.
    let r = unsafe {
        io.source()
            .ring_op(Dir::Read, || uring::recv(fd, buf, flags))
    };
    r.map(|r| r.map(|n| n as usize))
}

/// `send(fd, buf, MSG_NOSIGNAL)`.
#[inline]
pub(super) fn send<T: AsRawFd>(io: &Fd<T>, buf: &[u8]) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    // SAFETY: the entry reads only `buf`, borrowed for the call.
    let r = unsafe { io.source().ring_op(Dir::Write, || uring::send(fd, buf, 0)) };
    r.map(|r| r.map(|n| n as usize))
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
        io.source()
            .ring_op(Dir::Read, || uring::recvmsg(fd, &mut msg, 0))
    };
    r.map(|r| r.map(|n| n as usize))
}

/// A vectored write (`sendmsg` with `MSG_NOSIGNAL`).
pub(super) fn send_vectored<T: AsRawFd>(
    io: &Fd<T>,
    bufs: &[IoSlice<'_>],
) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    // IoSlice is guaranteed ABI-compatible with iovec.
    let msg = uring::msghdr(bufs.as_ptr().cast(), bufs.len());
    // SAFETY: the entry reads only `bufs` through `msg`, both borrowed for
    // the call.
    let r = unsafe {
        io.source()
            .ring_op(Dir::Write, || uring::sendmsg(fd, &msg, 0))
    };
    r.map(|r| r.map(|n| n as usize))
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
        io.source()
            .ring_op(Dir::Read, || uring::recvmsg(fd, &mut msg, flags))
    };
    Some(r?.and_then(|n| Ok((n as usize, addr::from_raw(&name, msg.msg_namelen)?))))
}

/// One datagram to `to` (`sendmsg` with a name).
pub(super) fn send_to<T: AsRawFd>(
    io: &Fd<T>,
    buf: &[u8],
    to: &SocketAddr,
) -> Option<io::Result<usize>> {
    let fd = io.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let (mut name, len) = addr::to_raw(to);
    let mut msg = uring::msghdr(&raw mut iov, 1);
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = len;
    // SAFETY: the entry reads `buf`, `name` and `msg`, all borrowed for the
    // call (sendmsg writes nothing).
    let r = unsafe {
        io.source()
            .ring_op(Dir::Write, || uring::sendmsg(fd, &msg, 0))
    };
    r.map(|r| r.map(|n| n as usize))
}

/// Accepts a connection on the listening socket `io`: the new socket's
/// descriptor (non-blocking, close-on-exec) and the peer's address as the
/// kernel wrote it.
pub(super) fn accept<T: AsRawFd>(
    io: &Fd<T>,
) -> Option<io::Result<(OwnedFd, libc::sockaddr_storage, libc::socklen_t)>> {
    let fd = io.as_raw_fd();
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len: libc::socklen_t = 0;
    // SAFETY: the entry writes only to `name` and `len`, borrowed for the
    // call.
    let r = unsafe {
        io.source()
            .ring_op(Dir::Read, || uring::accept(fd, &mut name, &mut len))
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
        return Some(Err(io::Error::last_os_error()));
    }
    // SAFETY: the socket we just made; nobody else has it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (name, len) = addr::to_raw(to);
    // SAFETY: the entry reads only `name`, borrowed for the call.
    let r = unsafe { uring::run(|| uring::connect(fd, &name, len), || deadline) };
    // Not None: the ring was there a moment ago, and this coroutine has
    // not left its worker.
    Some(r?.map(|_| sock))
}
