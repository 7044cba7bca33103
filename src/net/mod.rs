//! Networking: std's socket types, made coroutine-aware.
//!
//! Each type mirrors its std namesake (same constructors, methods, traits
//! and errors), so that porting is a search and replace of `std::net` by
//! `coio::net`. The differences:
//!
//! * a call that would block (connect, accept, read, write, send, recv)
//!   blocks only the calling coroutine: its worker runs other coroutines
//!   until the netpoller reports the socket ready (see `coio::io`); on a
//!   plain thread it blocks the thread, as std's;
//! * a timeout (`set_read_timeout`, `connect_timeout`, ...) ends the wait
//!   with `ErrorKind::TimedOut` (std on Linux says `WouldBlock`), and the
//!   socket stays usable;
//! * a cancelled coroutine (`JoinHandle::cancel`, runtime shutdown)
//!   unwinds out of a blocked call;
//! * name resolution (`"example.com:80"`) runs off the workers, on the
//!   blocking pool, which is why the address types must be `Send`;
//! * `TcpListener::bind` listens with the system's maximum backlog (Go's
//!   choice), not std's 128;
//! * the non-blocking mode and the timeouts belong to each handle, not to
//!   the kernel's socket: `try_clone` copies them once (a later
//!   `set_nonblocking` or `set_read_timeout` on one handle leaves the
//!   other as it was), and `from_std` adopts a std socket's timeouts but
//!   not its non-blocking mode (set it on the coio socket);
//! * the descriptor itself is always non-blocking, and stays so when it
//!   leaves coio (`into_std`, `into_raw_fd`, `OwnedFd::from`), since other
//!   handles may still share it: call `set_nonblocking(false)` on what you
//!   got before handing it to blocking code or to a child process (as its
//!   stdin or stdout, say), which would otherwise see `EAGAIN`.
//!
//! Unix sockets are in [`unix`], for `std::os::unix::net`.
//!
//! # Async I/O
//!
//! The stream sockets also serve async code, driven by the same per-worker
//! poller (no second reactor): `poll_read`/`poll_write` methods,
//! `accept_async` on the listeners, and, behind cargo features, the async
//! I/O traits of tokio (`tokio`), futures (`futures-io`) and hyper
//! (`hyper`). Async code on coio's sockets runs in a coroutine, typically
//! in [`coio::future::block_on`](crate::future::block_on) or spawned with
//! `coio::compat::hyper::Executor`.
//!
//! ```
//! use coio::net::{TcpListener, TcpStream};
//! use std::io::Write;
//!
//! coio::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     coio::spawn(move || TcpStream::connect(addr).unwrap().write_all(b"hi"));
//!     let got = coio::future::block_on(async {
//!         let (conn, _) = listener.accept_async().await.unwrap();
//!         let mut buf = [0; 2];
//!         let n = std::future::poll_fn(|cx| conn.poll_read(cx, &mut buf)).await.unwrap();
//!         buf[..n].to_vec()
//!     });
//!     assert_eq!(got, b"hi");
//! });
//! ```
//!
//! # Example
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
//!         let mut buf = [0; 5];
//!         conn.read_exact(&mut buf)?;
//!         conn.write_all(&buf)
//!     });
//!     let mut client = TcpStream::connect(addr)?;
//!     client.write_all(b"hello")?;
//!     let mut back = [0; 5];
//!     client.read_exact(&mut back)?;
//!     assert_eq!(&back, b"hello");
//!     server.join().unwrap()
//! })
//! .unwrap();
//! ```

/// The timeout methods every socket type with reads and writes has, the
/// same in each (std's signatures; the deadlines live in the type's
/// `io: Fd<_>`). Defined before the modules that use it. Their examples
/// start with the type's `setup` (doctest lines that bind `a`, a socket of
/// the type), and read from it with `read` (after the imports `read_use`:
/// a line break and `use` lines, or nothing).
macro_rules! timeout_methods {
    (setup = $setup:literal, read_use = $read_use:literal, read = $read:literal) => {
        /// Sets the read timeout: a read (receive, peek) that waits longer
        /// returns `ErrorKind::TimedOut` and leaves the socket usable;
        /// `None` waits forever.
        ///
        /// ```
        #[doc = concat!("use std::time::Duration;", $read_use)]
        ///
        #[doc = $setup]
        /// a.set_read_timeout(Some(Duration::from_millis(5)))?;
        /// // Nothing comes: the read gives up, and the socket stays usable.
        #[doc = concat!("let err = ", $read, ".unwrap_err();")]
        /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, as std's.
        pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.io.set_read_timeout(dur)
        }

        /// Sets the write timeout (see `set_read_timeout`).
        ///
        /// ```
        /// use std::time::Duration;
        ///
        #[doc = $setup]
        /// a.set_write_timeout(Some(Duration::from_secs(1)))?;
        /// assert_eq!(a.write_timeout()?, Some(Duration::from_secs(1)));
        /// // A zero duration is refused, as std's.
        /// assert!(a.set_write_timeout(Some(Duration::ZERO)).is_err());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        ///
        /// # Errors
        /// `InvalidInput` for a zero duration, as std's.
        pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.io.set_write_timeout(dur)
        }

        /// The read timeout.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        #[doc = $setup]
        /// assert_eq!(a.read_timeout()?, None); // reads wait for ever
        /// a.set_read_timeout(Some(Duration::from_millis(250)))?;
        /// assert_eq!(a.read_timeout()?, Some(Duration::from_millis(250)));
        /// # Ok::<(), std::io::Error>(())
        /// ```
        ///
        /// # Errors
        /// Never (kept for std's signature).
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.io.read_timeout())
        }

        /// The write timeout.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        #[doc = $setup]
        /// a.set_write_timeout(Some(Duration::from_millis(250)))?;
        /// assert_eq!(a.write_timeout()?, Some(Duration::from_millis(250)));
        /// a.set_write_timeout(None)?; // back to waiting for ever
        /// assert_eq!(a.write_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        ///
        /// # Errors
        /// Never (kept for std's signature).
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.io.write_timeout())
        }
    };
}

/// `Read` and `Write` for a stream socket type and for a shared reference
/// to it, the same for TCP and Unix streams: reads and writes go through
/// the type's `io: Fd<_>` with `Source::io_stream` (a short transfer marks
/// the socket drained), vectored writes through the type's own
/// `write_vectored_impl`, and `flush` has nothing to do.
macro_rules! stream_read_write {
    ($t:ty) => {
        impl $t {
            fn read_impl(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                #[cfg(target_os = "linux")]
                if let Some(r) = $crate::net::ring::recv(&self.io, buf, 0) {
                    return r;
                }
                // 0: a short read does not clear (see `short_read_drains`).
                let len = if self.short_read_drains() {
                    buf.len()
                } else {
                    0
                };
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.io);
                self.io.source().io_stream($crate::io::Dir::Read, len, || {
                    $crate::io::sys::recv(fd, buf)
                })
            }

            fn read_vectored_impl(
                &self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                // No room at all: `readv` returns 0 at once (unlike a `recv`
                // of 0 bytes, which waits for data), and so does std; here
                // a wait for readiness (or a `recvmsg` in the ring) would
                // wait for the peer.
                let bufs = $crate::io::sys::iov_max_mut(bufs);
                let len = bufs.iter().map(|b| b.len()).sum();
                if len == 0 {
                    return Ok(0);
                }
                #[cfg(target_os = "linux")]
                if let Some(r) = $crate::net::ring::recv_vectored(&self.io, bufs) {
                    return r;
                }
                let len = if self.short_read_drains() { len } else { 0 };
                self.io.source().io_stream($crate::io::Dir::Read, len, || {
                    std::io::Read::read_vectored(&mut self.io.get_ref(), bufs)
                })
            }

            fn write_impl(&self, buf: &[u8]) -> std::io::Result<usize> {
                // A send of 0 bytes never waits for room (std returns at
                // once): not gated on the write readiness, which a full
                // socket has cleared.
                if buf.is_empty() {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&self.io);
                    return $crate::io::sys::send(fd, buf);
                }
                #[cfg(target_os = "linux")]
                if let Some(r) = $crate::net::ring::send(&self.io, buf) {
                    return r;
                }
                let len = buf.len();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.io);
                self.io.source().io_stream($crate::io::Dir::Write, len, || {
                    $crate::io::sys::send(fd, buf)
                })
            }
        }

        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.read_impl(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.read_vectored_impl(bufs)
            }
        }

        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.read_impl(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.read_vectored_impl(bufs)
            }
        }

        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.write_impl(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.write_vectored_impl(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.write_impl(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.write_vectored_impl(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

#[cfg(target_os = "linux")]
/// Adopting a descriptor: `FromRawFd` and `From<OwnedFd>` for a socket
/// type `$t` whose std counterpart is `$std` (through `from_std`, which
/// makes the socket non-blocking). A descriptor handed over by systemd's
/// socket activation, or opened by another library, becomes a coio socket.
macro_rules! adopt_fd {
    ($t:ident, $std:ty) => {
        impl std::os::fd::FromRawFd for $t {
            /// Adopts `fd`, an open socket of the right kind (see
            /// [`from_std`](Self::from_std), which this calls).
            ///
            /// # Panics
            /// If the descriptor cannot be made non-blocking, which for an
            /// open descriptor does not happen (use `from_std` to get that
            /// failure as an error instead).
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $t {
                // SAFETY: the caller's promise (`FromRawFd`): `fd` is an
                // open socket of this kind, owned by nobody else.
                let s = unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                $t::from_std(s).unwrap_or_else(|e| {
                    panic!(
                        "coio: {}::from_raw_fd({fd}): cannot make the descriptor non-blocking: {e}",
                        stringify!($t)
                    )
                })
            }
        }

        impl From<std::os::fd::OwnedFd> for $t {
            /// Adopts `fd`, an open socket of the right kind (see
            /// [`from_std`](Self::from_std), which this calls).
            ///
            /// # Panics
            /// As `from_raw_fd`.
            fn from(fd: std::os::fd::OwnedFd) -> $t {
                let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
                $t::from_std(<$std>::from(fd)).unwrap_or_else(|e| {
                    panic!(
                        "coio: {}::from(OwnedFd {raw}): cannot make the descriptor non-blocking: {e}",
                        stringify!($t)
                    )
                })
            }
        }
    };
}

mod addr;
pub(crate) mod async_io;
#[cfg(target_os = "linux")]
mod ring;
mod tcp;
mod udp;
pub mod unix;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// std's address and option types, under the same names, so that
/// `use std::net::{..}` ports as a whole.
///
/// ```
/// use coio::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
///
/// let any: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
/// let listener = TcpListener::bind(any)?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// client.shutdown(Shutdown::Write)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
    ToSocketAddrs,
};

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::io::{Dir, Fd};

/// Resolves `addr`: in place when its type holds addresses already, else
/// on the blocking pool (a DNS lookup can take seconds, and would stall
/// every coroutine of the worker; the pool's round trip is ~8 µs, too much
/// for every `send_to` of a UDP server that answers the `SocketAddr` it
/// received from).
/// Adopts a std socket for coio (made non-blocking), with the read and
/// write timeouts it had (`SO_RCVTIMEO`, `SO_SNDTIMEO`, as std's
/// `read_timeout` reports them): coio keeps its own, per handle, and the
/// kernel's would no longer apply to a non-blocking socket.
fn adopt<T: AsRawFd>(
    socket: T,
    timeouts: (Option<std::time::Duration>, Option<std::time::Duration>),
) -> io::Result<Fd<T>> {
    let io = Fd::new(socket)?;
    io.set_read_timeout(timeouts.0)?;
    io.set_write_timeout(timeouts.1)?;
    Ok(io)
}

fn resolve<A: ToSocketAddrs + Send>(addr: A) -> io::Result<Vec<SocketAddr>> {
    if is_literal::<A>() {
        return Ok(addr.to_socket_addrs()?.collect());
    }
    crate::blocking(move || Ok(addr.to_socket_addrs()?.collect()))
}

/// Whether `A` is one of std's address types whose `to_socket_addrs` never
/// looks a name up (`SocketAddr`, `(IpAddr, u16)`, ..., references and
/// slices of them). Told by the type's name: a name this does not know
/// (another Rust version's spelling, a user's type) only costs the trip
/// through the pool.
fn is_literal<A: ?Sized>() -> bool {
    const LITERAL: [&str; 7] = [
        "core::net::socket_addr::SocketAddr",
        "core::net::socket_addr::SocketAddrV4",
        "core::net::socket_addr::SocketAddrV6",
        "(core::net::ip_addr::IpAddr, u16)",
        "(core::net::ip_addr::Ipv4Addr, u16)",
        "(core::net::ip_addr::Ipv6Addr, u16)",
        "[core::net::socket_addr::SocketAddr]",
    ];
    let name = std::any::type_name::<A>().trim_start_matches('&');
    LITERAL.contains(&name)
}

/// Finishes a non-blocking connect: waits (until `deadline`) for the
/// socket to turn writable, then reports how the connect went, as the
/// socket's pending error (`take_error`, `SO_ERROR`), or success once it
/// has a peer. While it has none (`NotConnected`) the connect is still in
/// progress, which counts as `WouldBlock`: the first try comes before any
/// event, since a new socket is assumed ready.
fn finish_connect<T: AsRawFd>(
    io: &Fd<T>,
    deadline: Option<Instant>,
    take_error: impl Fn(&T) -> io::Result<Option<io::Error>>,
    peer: impl Fn(&T) -> io::Result<()>,
) -> io::Result<()> {
    io.source().io_until(Dir::Write, deadline, || {
        if let Some(e) = take_error(io.get_ref())? {
            return Err(e);
        }
        match peer(io.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            other => other,
        }
    })
}

/// Runs `f` on each address of `addr` until one succeeds; the last error
/// otherwise (std's rule for `bind` and `connect`).
fn each_addr<A: ToSocketAddrs + Send, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::is_literal;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};

    #[test]
    fn literal_address_types_are_known() {
        assert!(is_literal::<SocketAddr>());
        assert!(is_literal::<&SocketAddr>());
        assert!(is_literal::<SocketAddrV6>());
        assert!(is_literal::<(IpAddr, u16)>());
        assert!(is_literal::<(Ipv4Addr, u16)>());
        assert!(is_literal::<&[SocketAddr]>());
        assert!(!is_literal::<&str>());
        assert!(!is_literal::<(&str, u16)>());
        assert!(!is_literal::<String>());
    }
}
