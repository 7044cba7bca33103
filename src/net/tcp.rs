//! TCP: `TcpListener` and `TcpStream`, std's types made coroutine-aware.
//!
//! Each wraps the std (or, for the listener, mio) socket in an [`Fd`] and
//! forwards every method std has; the ones that can block (connect,
//! accept, read, write, peek) go through the descriptor's `Source`.
//! Accepted and connected sockets are created non-blocking (`accept4` and
//! `socket` with `SOCK_NONBLOCK`, through mio), so that no extra system
//! call is made per connection.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{each_addr, finish_connect};
use crate::io::{Dir, Fd, set_nonblocking};

/// A TCP server socket, as [`std::net::TcpListener`], whose `accept` blocks
/// only the calling coroutine.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use coio::net::TcpListener;
///
/// coio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:7000")?;
///     for stream in listener.incoming() {
///         let mut stream = stream?;
///         coio::spawn(move || {
///             let mut buf = [0; 4096];
///             while let Ok(n @ 1..) = stream.read(&mut buf) {
///                 if stream.write_all(&buf[..n]).is_err() {
///                     break;
///                 }
///             }
///         });
///     }
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    io: Fd<mio::net::TcpListener>,
}

/// A connection mio accepted (non-blocking), as coio's.
fn accepted((s, addr): (mio::net::TcpStream, SocketAddr)) -> (TcpStream, SocketAddr) {
    let fd = s.into_raw_fd();
    // SAFETY: `fd` is the connected, non-blocking TCP socket mio accepted,
    // whose ownership we took with `into_raw_fd`.
    let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    (TcpStream::from_nonblocking(s), addr)
}

impl TcpListener {
    /// Binds to `addr` (the first of its addresses that works), as std's
    /// `bind`. Name resolution runs off the coroutine's worker.
    ///
    /// Unlike std's (a backlog of 128), the listen backlog is the system's
    /// maximum, `net.core.somaxconn` (4096 by default), as in Go: a burst
    /// of connects beyond the backlog loses SYNs, which clients retry only
    /// after a second or more.
    ///
    /// ```
    /// use coio::net::TcpListener;
    ///
    /// // Port 0: the system picks a free port.
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The resolution's or the last address's error.
    pub fn bind<A: ToSocketAddrs + Send>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let l = std::net::TcpListener::bind(a)?;
            // Listening again only changes the backlog; the kernel caps it
            // at somaxconn.
            // SAFETY: `listen` on the socket we just bound; no memory.
            if unsafe { libc::listen(l.as_raw_fd(), libc::c_int::MAX) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpListener::from_std(l)
        })
    }

    /// Takes a std listener (made non-blocking here).
    ///
    /// ```
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let listener = coio::net::TcpListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        set_nonblocking(listener.as_raw_fd())?;
        Ok(TcpListener {
            io: Fd::new_nonblocking(mio::net::TcpListener::from_std(listener)),
        })
    }

    /// Gives back the std listener, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let std_listener: std::net::TcpListener = listener.into_std();
    /// assert_eq!(std_listener.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::net::TcpListener {
        let fd = self.io.into_inner().into_raw_fd();
        // SAFETY: `fd` is a listening TCP socket we owned until now.
        unsafe { std::net::TcpListener::from_raw_fd(fd) }
    }

    /// Accepts a connection, blocking the coroutine until one comes.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let client = coio::spawn(move || TcpStream::connect(addr)?.write_all(b"hi"));
    ///     let (mut conn, peer) = listener.accept()?; // parks until a client connects
    ///     assert!(peer.ip().is_loopback());
    ///     let mut got = String::new();
    ///     conn.read_to_string(&mut got)?;
    ///     assert_eq!(got, "hi");
    ///     client.join().unwrap()
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; under descriptor exhaustion `EMFILE`/`ENFILE` (the
    /// pending connection stays queued: back off, then accept again).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::accept(&self.io) {
            let (fd, name, len) = r?;
            let s = std::net::TcpStream::from(fd);
            let addr = super::addr::from_raw(&name, len)?;
            return Ok((TcpStream::from_nonblocking(s), addr));
        }
        let (s, addr) = self.io.accept_with(|l| l.accept())?;
        let fd = s.into_raw_fd();
        // SAFETY: `fd` is the connected, non-blocking TCP socket mio
        // accepted, whose ownership we took with `into_raw_fd`.
        let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        Ok((TcpStream::from_nonblocking(s), addr))
    }

    /// Polls for a connection: the async form of [`accept`](Self::accept)
    /// (see `coio::net`'s "Async I/O": the first poll must come from a
    /// coroutine). Only the waker of the latest `Pending` poll is woken,
    /// whoever polled before (as tokio's `poll_accept`): tasks that await
    /// connections on one listener at once use
    /// [`accept_async`](Self::accept_async), whose futures each wait.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let client = coio::spawn(move || TcpStream::connect(addr));
    ///     let (conn, _) = coio::future::block_on(poll_fn(|cx| listener.poll_accept(cx)))?;
    ///     assert_eq!(conn.peer_addr()?, client.join().unwrap()?.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `accept`.
    pub fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.io.poll_read_with(cx, |l| l.accept()).map_ok(accepted)
    }

    /// A future of the next connection: the async form of
    /// [`accept`](Self::accept), for async code on any executor (see
    /// [`poll_accept`](Self::poll_accept)).
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let client = coio::spawn(move || TcpStream::connect(addr));
    ///     let (_conn, peer) = coio::future::block_on(async { listener.accept_async().await })?;
    ///     assert_eq!(peer, client.join().unwrap()?.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn accept_async(
        &self,
    ) -> impl std::future::Future<Output = io::Result<(TcpStream, SocketAddr)>> + '_ {
        // Its own entry among the listener's waiters: several tasks may
        // await accepts on one listener, each woken by a connection.
        let mut wait = crate::io::reactor::QueuedWait::default();
        std::future::poll_fn(move |cx| {
            self.io
                .poll_read_queued(cx, &mut wait, |l| l.accept())
                .map_ok(accepted)
        })
    }

    /// An endless iterator of accepted connections (as std's).
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     for _ in 0..2 {
    ///         coio::spawn(move || TcpStream::connect(addr));
    ///     }
    ///     // Endless: take what is needed.
    ///     let conns = listener.incoming().take(2).collect::<std::io::Result<Vec<_>>>()?;
    ///     assert_eq!(conns.len(), 2);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the port the system chose
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_ttl(100)?;
    /// assert_eq!(listener.ttl()?, 100);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// println!("IP_TTL: {}", listener.ttl()?); // the system's default, often 64
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// assert!(listener.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// A second handle to the same socket (a duplicated descriptor). It
    /// starts in this handle's non-blocking mode (std's clone shares it); a
    /// change made later applies to one handle only.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let second = listener.try_clone()?;
    ///     // The clone accepts in another coroutine: the same socket.
    ///     let acceptor = coio::spawn(move || second.accept().map(|(_, peer)| peer));
    ///     let conn = TcpStream::connect(listener.local_addr()?)?;
    ///     assert_eq!(acceptor.join().unwrap()?, conn.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let io = self.io.duplicate(|l| {
            let fd = l.as_fd().try_clone_to_owned()?;
            Ok(mio::net::TcpListener::from_std(fd.into()))
        })?;
        Ok(TcpListener { io })
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as std's.
    ///
    /// ```
    /// let listener = coio::net::TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// // Nobody connects: `accept` returns at once.
    /// let err = listener.accept().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// Never (kept for std's signature).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }
}

/// The iterator of [`TcpListener::incoming`].
///
/// ```
/// use coio::net::{Incoming, TcpListener, TcpStream};
///
/// coio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = coio::spawn(move || TcpStream::connect(addr));
///     let mut incoming: Incoming<'_> = listener.incoming();
///     let conn = incoming.next().unwrap()?; // never `None`
///     assert_eq!(conn.peer_addr()?, client.join().unwrap()?.local_addr()?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection, as [`std::net::TcpStream`], whose reads and writes
/// block only the calling coroutine.
///
/// `Read` and `Write` are implemented for `TcpStream` and `&TcpStream`, so
/// one coroutine can read while another writes (through a shared
/// reference, or a [`try_clone`](TcpStream::try_clone)d stream).
/// Timeouts end a wait with `ErrorKind::TimedOut` and leave the stream
/// usable.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use coio::net::{TcpListener, TcpStream};
///
/// coio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = coio::spawn(move || -> std::io::Result<()> {
///         let (conn, _) = listener.accept()?;
///         let mut line = String::new();
///         BufReader::new(&conn).read_line(&mut line)?; // through `&TcpStream`
///         (&conn).write_all(line.to_uppercase().as_bytes())
///     });
///     let mut conn = TcpStream::connect(addr)?;
///     conn.write_all(b"hello\n")?;
///     let mut reply = String::new();
///     BufReader::new(&conn).read_line(&mut reply)?;
///     assert_eq!(reply, "HELLO\n");
///     server.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    io: Fd<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each of its addresses in turn until one
    /// connects), blocking the coroutine meanwhile. Name resolution runs
    /// off the coroutine's worker.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let conn = TcpStream::connect(listener.local_addr()?)?; // parks until connected
    ///     assert_eq!(conn.peer_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The resolution's or the last address's error.
    pub fn connect<A: ToSocketAddrs + Send>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_until(&a, None))
    }

    /// Connects to `addr` within `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    /// assert_eq!(conn.peer_addr()?, addr);
    /// // A zero timeout is refused, as std's.
    /// let err = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `TimedOut` when the time is up; `InvalidInput` for a zero timeout
    /// (as std's); the OS error.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(crate::io::zero_timeout());
        }
        TcpStream::connect_until(addr, Instant::now().checked_add(timeout))
    }

    fn connect_until(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::connect_tcp(addr, deadline) {
            return Ok(TcpStream::from_nonblocking(r?.into()));
        }
        let s = match mio::net::TcpStream::connect(*addr) {
            Ok(s) => s,
            Err(e) => {
                // Failed without waiting (`EMFILE`, an unreachable network):
                // counts against the budget, so that a loop that retries
                // lets the others run and can be cancelled.
                crate::runtime::worker::coop_spend_cancellable();
                return Err(e);
            }
        };
        // SAFETY: the socket mio just created (non-blocking, connecting),
        // whose ownership we take.
        let s = unsafe { std::net::TcpStream::from_raw_fd(s.into_raw_fd()) };
        let s = TcpStream::from_nonblocking(s);
        finish_connect(
            &s.io,
            deadline,
            |s| s.take_error(),
            |s| s.peer_addr().map(drop),
        )?;
        Ok(s)
    }

    fn from_nonblocking(s: std::net::TcpStream) -> TcpStream {
        TcpStream {
            io: Fd::new_nonblocking(s),
        }
    }

    /// Takes a std stream (made non-blocking here); its read and write
    /// timeouts carry over.
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let stream = coio::net::TcpStream::from_std(std_stream)?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set, or of `getsockopt`
    /// if the timeouts cannot be read.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let timeouts = (stream.read_timeout()?, stream.write_timeout()?);
        Ok(TcpStream {
            io: super::adopt(stream, timeouts)?,
        })
    }

    /// Gives back the std stream, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// let std_stream: std::net::TcpStream = stream.into_std();
    /// assert_eq!(std_stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::net::TcpStream {
        self.io.into_inner()
    }

    /// The remote address.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// assert_eq!(client.peer_addr()?, server.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error (`NotConnected` if not connected).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// assert_eq!(client.local_addr()?, server.peer_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Shuts down reading, writing or both; waiters of a shut-down
    /// direction see it at once (reads return 0, writes fail).
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (mut server, _) = listener.accept()?;
    /// client.shutdown(Shutdown::Write)?; // the end of the stream, for the peer
    /// let mut rest = Vec::new();
    /// assert_eq!(server.read_to_end(&mut rest)?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how, |s, how| s.shutdown(how))
    }

    /// A second handle to the same connection (a duplicated descriptor),
    /// for example to read in one coroutine and write in another. It starts
    /// with this handle's timeouts and non-blocking mode (std's clone
    /// shares them); a change made later applies to one handle only.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (mut server, _) = listener.accept()?;
    ///     // A clone reads in another coroutine.
    ///     let mut reader = client.try_clone()?;
    ///     let r = coio::spawn(move || {
    ///         let mut buf = [0; 4];
    ///         reader.read_exact(&mut buf).map(|()| buf)
    ///     });
    ///     server.write_all(b"pong")?;
    ///     assert_eq!(&r.join().unwrap()?, b"pong");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: self.io.duplicate(std::net::TcpStream::try_clone)?,
        })
    }

    timeout_methods!(
        setup = "let listener = coio::net::TcpListener::bind(\"127.0.0.1:0\")?;\n\
                 let a = coio::net::TcpStream::connect(listener.local_addr()?)?;",
        read_use = "\nuse std::io::Read;",
        read = "(&a).read(&mut [0; 8])"
    );

    /// Reads without removing the data from the socket's queue.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = TcpStream::connect(listener.local_addr()?)?;
    /// let (mut server, _) = listener.accept()?;
    /// client.write_all(b"GET /")?;
    /// let mut buf = [0; 3];
    /// assert_eq!(server.peek(&mut buf)?, 3);
    /// assert_eq!(&buf, b"GET");
    /// server.read_exact(&mut buf)?; // the same bytes, still there
    /// assert_eq!(&buf, b"GET");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; `TimedOut` after the read timeout.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| s.peek(buf))
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_nodelay(true)?; // small writes go out at once
    /// assert!(stream.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// assert!(!stream.nodelay()?); // Nagle's algorithm is on by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_ttl(100)?;
    /// assert_eq!(stream.ttl()?, 100);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// println!("IP_TTL: {}", stream.ttl()?); // the system's default, often 64
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// assert!(stream.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// In non-blocking mode reads and writes return `WouldBlock` instead
    /// of waiting, as std's.
    ///
    /// ```
    /// use std::io::Read;
    /// use coio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_nonblocking(true)?;
    /// // Nothing to read: `read` returns at once.
    /// let err = stream.read(&mut [0; 16]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// Never (kept for std's signature).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Whether a read that returns fewer bytes than asked proves the
    /// receive queue drained: on TCP it does (data that arrives meanwhile
    /// comes with a new edge).
    #[inline]
    pub(crate) fn short_read_drains(&self) -> bool {
        true
    }

    /// Vectored writes send with `MSG_NOSIGNAL` (see [`send_vectored`]).
    fn write_vectored_impl(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let bufs = crate::io::sys::iov_max(bufs);
        let fd = self.io.as_raw_fd();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        // Nothing to send never waits for room (as `write_impl`).
        if len == 0 {
            return crate::io::sys::send_vectored(fd, bufs);
        }
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::send_vectored(&self.io, bufs) {
            return r;
        }
        self.io
            .source()
            .io_stream(Dir::Write, len, || crate::io::sys::send_vectored(fd, bufs))
    }
}

stream_read_write!(TcpStream);
super::async_io::stream_async!(
    TcpStream,
    setup = "let listener = coio::net::TcpListener::bind(\"127.0.0.1:0\")?;\n    \
             let a = coio::net::TcpStream::connect(listener.local_addr()?)?;\n    \
             let (b, _) = listener.accept()?;"
);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl IntoRawFd for TcpStream {
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl From<TcpStream> for OwnedFd {
    fn from(s: TcpStream) -> OwnedFd {
        s.into_std().into()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl IntoRawFd for TcpListener {
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl From<TcpListener> for OwnedFd {
    fn from(l: TcpListener) -> OwnedFd {
        l.into_std().into()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get_ref(), f)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get_ref(), f)
    }
}

adopt_fd!(TcpStream, std::net::TcpStream);
adopt_fd!(TcpListener, std::net::TcpListener);
