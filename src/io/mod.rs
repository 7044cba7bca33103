//! Blocking-style I/O on non-blocking descriptors.
//!
//! Everything in [`coio::net`](crate::net) is built on three parts here:
//!
//! * `reactor`: each registered descriptor's readiness word and read and
//!   write waiter queues, the target its worker's driver (`crate::driver`:
//!   one epoll instance per worker, polled by the worker itself, no I/O
//!   thread) tells of its events;
//! * `source`: the loop that tries an operation on a non-blocking
//!   descriptor and, on `WouldBlock`, parks the coroutine until the
//!   netpoller reports readiness (or, on a plain thread, blocks it in
//!   `poll(2)`), with timeouts and cancellation;
//! * `sys`: the system calls of the hot path, without libc's
//!   cancellation wrappers.
//!
//! [`Fd`] offers the same to any non-blocking descriptor type: pipes,
//! ttys, eventfds, sockets from other crates.

pub(crate) mod reactor;
mod source;
pub(crate) mod sys;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

pub(crate) use reactor::Dir;
pub(crate) use source::{Source, zero_timeout};

/// Makes a descriptor non-blocking (`O_NONBLOCK`).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor the caller owns; no memory involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above, F_SETFL with the flags just read plus one.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A descriptor-backed I/O object made coroutine-aware: its operations
/// block the calling coroutine, not its worker thread.
///
/// `Fd::new` puts the descriptor in non-blocking mode. Then `read` and
/// `write` (when `T` implements them), and any operation passed to
/// [`read_with`](Fd::read_with) or [`write_with`](Fd::write_with), are
/// tried and, while they return `WouldBlock`, the coroutine waits for the
/// descriptor's readiness through its worker's netpoller. On a plain
/// thread (outside a runtime) they block the thread instead, in `poll(2)`.
/// Timeouts ([`set_read_timeout`](Fd::set_read_timeout), ...) end a wait
/// with `ErrorKind::TimedOut`, and a cancelled coroutine unwinds from it.
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
///
/// coio::run(|| -> std::io::Result<()> {
///     // Any non-blocking descriptor type: here one end of a socket pair.
///     let (a, b) = UnixStream::pair()?;
///     let mut a = coio::io::Fd::new(a)?;
///     let writer = coio::spawn(move || std::io::Write::write_all(&mut &b, b"hi"));
///     let mut buf = [0; 2];
///     a.read_exact(&mut buf)?; // parks this coroutine until data arrives
///     writer.join().unwrap()?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct Fd<T: AsRawFd> {
    // Declared first: dropped (and removed from the netpoller) before the
    // descriptor is closed.
    source: ManuallyDrop<Source>,
    inner: ManuallyDrop<T>,
}

impl<T: AsRawFd> Fd<T> {
    /// Wraps `inner`, putting its descriptor in non-blocking mode.
    ///
    /// `inner` must keep the descriptor it reports open, and the same, for
    /// as long as the `Fd` lives; one `Fd` (or coio socket) per descriptor.
    /// Breaking either rule is not undefined behaviour, but it can lose
    /// wakes: a descriptor closed behind the `Fd`'s back may leave its
    /// epoll registration to a duplicate, and a second `Fd` over a
    /// registered descriptor gets `AlreadyExists` when it first waits.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (reader, mut writer) = std::io::pipe()?;
    /// let mut reader = coio::io::Fd::new(reader)?; // non-blocking from now on
    /// writer.write_all(b"hi")?;
    /// let mut buf = [0; 2];
    /// reader.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set.
    pub fn new(inner: T) -> io::Result<Fd<T>> {
        set_nonblocking(inner.as_raw_fd())?;
        Ok(Fd::new_nonblocking(inner))
    }

    /// Wraps `inner`, whose descriptor is in non-blocking mode already.
    pub(crate) fn new_nonblocking(inner: T) -> Fd<T> {
        Fd {
            source: ManuallyDrop::new(Source::new(inner.as_raw_fd())),
            inner: ManuallyDrop::new(inner),
        }
    }

    /// A handle on a duplicate of the descriptor, made by `dup` (which
    /// shares the open file, so it is non-blocking too): the sockets'
    /// `try_clone`. It starts with this handle's timeouts and non-blocking
    /// mode, as std's clone shares them (see `Source::copy_settings`).
    pub(crate) fn duplicate(&self, dup: impl FnOnce(&T) -> io::Result<T>) -> io::Result<Fd<T>> {
        let c = Fd::new_nonblocking(dup(self.get_ref())?);
        c.source().copy_settings(self.source());
        Ok(c)
    }

    /// The wrapped object.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = coio::io::Fd::new(a)?;
    /// assert!(a.get_ref().peer_addr()?.is_unnamed()); // a method of the inner type
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped object, mutably. Operations on it directly return
    /// `WouldBlock` instead of waiting.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let (reader, _writer) = std::io::pipe()?;
    /// let mut reader = coio::io::Fd::new(reader)?;
    /// // Directly on the inner object: no waiting.
    /// let err = reader.get_mut().read(&mut [0; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the object; its descriptor stays in non-blocking mode.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let (reader, _writer) = std::io::pipe()?;
    /// let fd = coio::io::Fd::new(reader)?;
    /// let mut reader: std::io::PipeReader = fd.into_inner();
    /// // Still in non-blocking mode.
    /// assert_eq!(reader.read(&mut [0; 8]).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is
        // taken out exactly once, the source (which removes the
        // descriptor from the netpoller) first.
        unsafe {
            ManuallyDrop::drop(&mut this.source);
            ManuallyDrop::take(&mut this.inner)
        }
    }

    /// Runs `op` (an operation that reads from the descriptor) until it
    /// does not return `WouldBlock`, waiting for readability in between.
    ///
    /// ```
    /// use std::os::unix::net::UnixDatagram;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let (a, b) = UnixDatagram::pair()?;
    ///     let a = coio::io::Fd::new(a)?;
    ///     let sender = coio::spawn(move || b.send(b"hi"));
    ///     let mut buf = [0; 8];
    ///     // Tried, and retried each time the descriptor turns readable.
    ///     let n = a.read_with(|s| s.recv(&mut buf))?;
    ///     assert_eq!(&buf[..n], b"hi");
    ///     sender.join().unwrap()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `op`'s error; `TimedOut` after the read timeout.
    pub fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.source.io(Dir::Read, || op(&self.inner))
    }

    /// [`read_with`](Fd::read_with) for an accept: a dump shows the wait
    /// as one.
    pub(crate) fn accept_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.source
            .io_as(Dir::Read, crate::runtime::dump::Wait::Accept, || {
                op(&self.inner)
            })
    }

    /// As [`read_with`](Fd::read_with), with mutable access.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (reader, mut writer) = std::io::pipe()?;
    /// let mut reader = coio::io::Fd::new(reader)?;
    /// writer.write_all(b"abc")?;
    /// let mut buf = [0; 8];
    /// let n = reader.read_with_mut(|r| r.read(&mut buf))?; // `read` takes `&mut self`
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `read_with`.
    pub fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, inner) = (&self.source, &mut self.inner);
        source.io(Dir::Read, || op(inner))
    }

    /// Runs `op` (an operation that writes to the descriptor) until it
    /// does not return `WouldBlock`, waiting for writability in between.
    ///
    /// ```
    /// use std::os::unix::net::UnixDatagram;
    ///
    /// let (a, b) = UnixDatagram::pair()?;
    /// let a = coio::io::Fd::new(a)?;
    /// // Waits while the peer's queue is full.
    /// assert_eq!(a.write_with(|s| s.send(b"hi"))?, 2);
    /// assert_eq!(b.recv(&mut [0; 8])?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `op`'s error; `TimedOut` after the write timeout.
    pub fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.source.io(Dir::Write, || op(&self.inner))
    }

    /// As [`write_with`](Fd::write_with), with mutable access.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (mut reader, writer) = std::io::pipe()?;
    /// let mut writer = coio::io::Fd::new(writer)?;
    /// writer.write_with_mut(|w| w.write_all(b"abc"))?; // `write_all` takes `&mut self`
    /// drop(writer);
    /// let mut got = String::new();
    /// reader.read_to_string(&mut got)?;
    /// assert_eq!(got, "abc");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `write_with`.
    pub fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let (source, inner) = (&self.source, &mut self.inner);
        source.io(Dir::Write, || op(inner))
    }

    /// Waits until the descriptor may be readable (a hint: the next read
    /// may still return `WouldBlock`, which `read_with` handles).
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let (reader, mut writer) = std::io::pipe()?;
    ///     let reader = coio::io::Fd::new(reader)?;
    ///     coio::spawn(move || writer.write_all(b"x"));
    ///     reader.readable()?; // parks until the pipe may have data
    ///     let mut buf = [0; 1];
    ///     assert_eq!(reader.read_with(|mut r| r.read(&mut buf))?, 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `TimedOut` after the read timeout.
    pub fn readable(&self) -> io::Result<()> {
        self.source.ready(Dir::Read)
    }

    /// Waits until the descriptor may be writable (a hint).
    ///
    /// ```
    /// let (_reader, writer) = std::io::pipe()?;
    /// let writer = coio::io::Fd::new(writer)?;
    /// writer.writable()?; // an empty pipe has room: returns at once
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `TimedOut` after the write timeout.
    pub fn writable(&self) -> io::Result<()> {
        self.source.ready(Dir::Write)
    }

    /// Sets the read timeout; `None` waits forever.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    ///
    /// let (reader, _writer) = std::io::pipe()?;
    /// let reader = coio::io::Fd::new(reader)?;
    /// reader.set_read_timeout(Some(Duration::from_millis(5)))?;
    /// // Nothing is written: the read gives up.
    /// let err = (&reader).read(&mut [0; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration, as std's sockets.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.source.set_timeout(Dir::Read, dur)
    }

    /// Sets the write timeout; `None` waits forever.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    ///
    /// let (_reader, writer) = std::io::pipe()?;
    /// let writer = coio::io::Fd::new(writer)?;
    /// writer.set_write_timeout(Some(Duration::from_millis(5)))?;
    /// // Nobody reads: once the pipe is full, a write gives up.
    /// let err = loop {
    ///     if let Err(e) = (&writer).write(&[0; 4096]) {
    ///         break e;
    ///     }
    /// };
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a zero duration, as std's sockets.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.source.set_timeout(Dir::Write, dur)
    }

    /// The read timeout.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (reader, _writer) = std::io::pipe()?;
    /// let reader = coio::io::Fd::new(reader)?;
    /// assert_eq!(reader.read_timeout(), None); // reads wait for ever
    /// reader.set_read_timeout(Some(Duration::from_secs(1)))?;
    /// assert_eq!(reader.read_timeout(), Some(Duration::from_secs(1)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_timeout(&self) -> Option<Duration> {
        self.source.timeout(Dir::Read)
    }

    /// The write timeout.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_reader, writer) = std::io::pipe()?;
    /// let writer = coio::io::Fd::new(writer)?;
    /// assert_eq!(writer.write_timeout(), None); // writes wait for ever
    /// writer.set_write_timeout(Some(Duration::from_secs(1)))?;
    /// assert_eq!(writer.write_timeout(), Some(Duration::from_secs(1)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_timeout(&self) -> Option<Duration> {
        self.source.timeout(Dir::Write)
    }

    /// In non-blocking mode, operations return `WouldBlock` instead of
    /// waiting (the descriptor itself is non-blocking either way).
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let (reader, _writer) = std::io::pipe()?;
    /// let reader = coio::io::Fd::new(reader)?;
    /// reader.set_nonblocking(true);
    /// // Nothing to read: `read` returns at once.
    /// let err = (&reader).read(&mut [0; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.source.set_nonblocking(nonblocking);
    }

    /// The async form of [`read_with`](Fd::read_with): one try of `op`,
    /// or `Pending` until the descriptor may be readable (see
    /// `Source::poll_io`).
    pub(crate) fn poll_read_with<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> std::task::Poll<io::Result<R>> {
        self.source
            .poll_io(Dir::Read, cx, || op(&self.inner), |_| false)
    }

    /// [`poll_read_with`](Fd::poll_read_with) for a future that several
    /// tasks may await at once (see `Source::poll_io_queued`).
    pub(crate) fn poll_read_queued<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        wait: &mut reactor::QueuedWait,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> std::task::Poll<io::Result<R>> {
        self.source
            .poll_io_queued(Dir::Read, cx, wait, || op(&self.inner))
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// `shutdown(2)` of the socket, through `shut`; then this handle's
    /// waiters of the directions shut down are woken, to find out. The
    /// poller does not always report it: a Unix stream whose send side is
    /// shut, with its send buffer full, gets no `EPOLLOUT` and no
    /// `EPOLLHUP` (that needs both sides shut), and a writer parked on it
    /// waited for ever (a plain thread's `poll(2)` no less: it polls an
    /// eventfd of the handle's too, which this signals). (A clone's waiters, whose descriptor is another,
    /// and a peer's shutdown of its reading, are not seen that way: the
    /// writer waits for its timeout, as in any epoll runtime; the ring
    /// driver sees both.)
    pub(crate) fn shutdown(
        &self,
        how: std::net::Shutdown,
        shut: impl FnOnce(&T, std::net::Shutdown) -> io::Result<()>,
    ) -> io::Result<()> {
        shut(&self.inner, how)?;
        self.source.shut_down(how);
        Ok(())
    }
}

impl<T: AsRawFd> Drop for Fd<T> {
    fn drop(&mut self) {
        // SAFETY: dropped once each, here, the source first (see the field
        // order).
        unsafe {
            ManuallyDrop::drop(&mut self.source);
            ManuallyDrop::drop(&mut self.inner);
        }
    }
}

impl<T: AsRawFd + Read> Read for Fd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with_mut(|t| t.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with_mut(|t| t.read_vectored(bufs))
    }
}

impl<T: AsRawFd + Write> Write for Fd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with_mut(|t| t.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with_mut(|t| t.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with_mut(|t| t.flush())
    }
}

impl<T: AsRawFd> Read for &Fd<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut t| t.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with(|mut t| t.read_vectored(bufs))
    }
}

impl<T: AsRawFd> Write for &Fd<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut t| t.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with(|mut t| t.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut t| t.flush())
    }
}

impl<T: AsRawFd> AsRawFd for Fd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd> AsFd for Fd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for Fd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&*self.inner).finish()
    }
}
