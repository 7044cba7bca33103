//! The system calls of the hot I/O path, made without libc's cancellation
//! wrappers.
//!
//! glibc's `recv`, `send`, `read` and `write` are POSIX cancellation
//! points: in a process with more than one thread (every coio program:
//! workers, the stall monitor) each call switches the thread's
//! cancellation type to asynchronous and back around the system call,
//! two atomic read-modify-writes on the thread's descriptor. That was 1.4%
//! of the echo server's CPU at 500 connections, more than coio's whole
//! readiness bookkeeping for the request. coio never cancels threads (and
//! thread cancellation is unsound in Rust anyway: it unwinds or exits
//! through Rust frames), so these go through `syscall(2)` instead, which is
//! not a cancellation point. Same system calls, same flags, same results as
//! std's stream reads and writes.

use std::io;
use std::os::fd::RawFd;

/// `recv(fd, buf, 0)`: what std's `TcpStream`/`UnixStream` `read` does.
#[inline]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length, borrowed mutably
    // for the call.
    unsafe { recv_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `recv(fd, buf, 0)` into memory that may be uninitialized (async reads
/// into tokio's and hyper's read buffers); returns how many bytes it
/// initialized.
#[cfg_attr(not(any(feature = "tokio", feature = "hyper")), allow(dead_code))]
pub(crate) fn recv_uninit(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: as in `recv`: recvfrom only writes (never reads) the memory,
    // so uninitialized bytes are fine.
    unsafe { recv_raw(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// `recv(fd, ptr, len, 0)`.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes for the call.
#[inline]
unsafe fn recv_raw(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: recvfrom writes at most `len` bytes at `ptr` (the caller's
    // contract); no source address is asked for.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            ptr,
            len,
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    result(n)
}

/// `send(fd, buf, MSG_NOSIGNAL)`: what std's `TcpStream::write` does (a
/// reset connection is an `EPIPE` error, not a `SIGPIPE`).
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: sendto reads at most `buf.len()` bytes from `buf`, borrowed
    // for the call; no destination address.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    result(n)
}

/// The most slices one vectored call passes to the kernel (Linux's
/// `IOV_MAX`; more is `EMSGSIZE`). As std does, a vectored read or write
/// takes the first this many and transfers at most what they hold.
pub(crate) const IOV_MAX: usize = 1024;

/// The slices of `bufs` that one vectored call transfers ([`IOV_MAX`]).
/// Callers take them first, so that the length that tells a partial
/// transfer (a drained socket, a full buffer) is theirs.
#[inline]
pub(crate) fn iov_max<T>(bufs: &[T]) -> &[T] {
    &bufs[..bufs.len().min(IOV_MAX)]
}

/// The same for mutable slices.
#[inline]
pub(crate) fn iov_max_mut<T>(bufs: &mut [T]) -> &mut [T] {
    let n = bufs.len().min(IOV_MAX);
    &mut bufs[..n]
}

/// `sendmsg(fd, bufs, MSG_NOSIGNAL)`: a vectored `send` (a reset
/// connection is an `EPIPE` error, not a `SIGPIPE`) of the first
/// [`IOV_MAX`] slices.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let bufs = iov_max(bufs);
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix; sendmsg only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points to `bufs`, valid for the call (no cancellation
    // point: see the module docs).
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd,
            &msg as *const libc::msghdr,
            libc::MSG_NOSIGNAL,
        )
    };
    result(n)
}

#[inline]
fn result(n: libc::c_long) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
