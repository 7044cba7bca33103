//! Unix domain sockets: `UnixListener`, `UnixStream` and `UnixDatagram`,
//! the types of [`std::os::unix::net`] made coroutine-aware.
//!
//! Porting is a search and replace of `std::os::unix::net` by
//! `coio::net::unix` (std's `SocketAddr` is re-exported here for that).
//!
//! The same construction as TCP (`tcp.rs`): each type wraps the std (or,
//! for the listener, mio) socket in an [`Fd`] and forwards every stable
//! method std has; the ones that can block go through the descriptor's
//! `Source`. Accepted sockets are created non-blocking (`accept4` with
//! `SOCK_NONBLOCK`, through mio), and so are connecting ones.
//!
//! Stream reads and writes use `Source::io_stream` (a short transfer
//! means the socket's buffer was drained or filled); datagram ones use
//! `Source::io`, since a short datagram says nothing about the queue.
//!
//! # Connecting
//!
//! A Unix stream connect does not go through a handshake: on Linux it
//! succeeds at once or, when the listener's backlog is full, fails with
//! `EAGAIN` on a non-blocking socket (a blocking one sleeps in the kernel
//! until the listener accepts). Nothing can be polled for that (the
//! listener's queue draining wakes no descriptor of ours), so `connect`
//! then retries after a short sleep, doubling it up to 50 ms; the
//! coroutine sleeps, not its worker. An `EINPROGRESS` connect (other
//! systems) is waited for as TCP's: until the socket is writable, then
//! `SO_ERROR` says how it went.
//!
//! # Datagrams and a full receiver
//!
//! A Unix datagram socket has flow control: a send to a receiver whose
//! queue is full returns `EAGAIN`. For a connected socket (`connect`,
//! `pair`) the kernel makes the sender writable again when the receiver
//! drains, so `send` waits as expected. An unconnected socket's `send_to`
//! is only woken when its own sent datagrams are consumed: a full queue of
//! other senders' datagrams may keep it waiting (set a write timeout), and
//! on a plain thread `poll(2)` reports it writable at once, so the retry
//! loop spins until the queue drains.
//!
//! # Datagrams and shutdown
//!
//! Once reading a datagram socket is shut down, a blocking receive returns
//! 0 at once, but a non-blocking one still says `EAGAIN`, while the
//! netpoller (and `poll(2)`) report the socket readable for good (its
//! read side is closed): retrying would spin. So a datagram receive that
//! gets `WouldBlock` asks `poll(2)`, without waiting, whether the read
//! side is shut down (`POLLRDHUP`), and then returns 0 as std's does. The
//! extra system call is made only on the way to a wait. (Stream sockets
//! need none of this: their reads return 0 once shut down.)

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

pub use std::os::unix::net::SocketAddr;

use super::finish_connect;
use crate::io::{Dir, Fd, set_nonblocking};

/// Accepts a connection on `l`, non-blocking and close-on-exec, with the
/// peer's address as std gives it. (mio 1.2's accept reports a peer bound
/// to an abstract name as unnamed.)
fn accept(l: &mio::net::UnixListener) -> io::Result<(mio::net::UnixStream, SocketAddr)> {
    // SAFETY: all zeroes is a valid `sockaddr_un`.
    let mut raw: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: accept4 on the listener's open descriptor; the kernel writes
    // at most `len` bytes of the peer's address to `raw`.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            (&raw mut raw).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor accept4 just made, ours alone.
    let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let addr = match address_of(&raw, len) {
        Some(addr) => addr,
        // A path std cannot rebuild from its bytes (all 108 of `sun_path`,
        // no NUL): std's own `peer_addr` takes the raw parts.
        None => s.peer_addr()?,
    };
    Ok((mio::net::UnixStream::from_std(s), addr))
}

/// The address the kernel wrote as `raw` (`len` bytes), as std's
/// `SocketAddr`: a path, an abstract name, or unnamed; None if std's
/// constructors refuse it (a path that fills `sun_path`).
fn address_of(raw: &libc::sockaddr_un, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let n = (len as usize)
        .saturating_sub(offset)
        .min(raw.sun_path.len());
    // SAFETY: the first `n` of `sun_path`'s `c_char`s, read as bytes (the
    // same size and alignment).
    let path: &[u8] = unsafe { std::slice::from_raw_parts(raw.sun_path.as_ptr().cast(), n) };
    let addr = match path.first() {
        None => SocketAddr::from_pathname(""),
        Some(0) => SocketAddr::from_abstract_name(&path[1..]),
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(n);
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&path[..end]))
        }
    };
    addr.ok()
}

/// A new non-blocking, close-on-exec stream socket connected (or
/// connecting) to `addr`, whose `sockaddr_un` is built as std builds it.
/// (mio 1.2's drops the last byte of an abstract name that starts with a
/// NUL, which can reach another socket, and refuses the empty one.)
fn connect(addr: &SocketAddr) -> io::Result<std::os::unix::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: all zeroes is a valid `sockaddr_un`.
    let mut raw: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // A path, with room for its NUL; an abstract name after its leading
    // NUL; nothing for an unnamed address (the kernel refuses it, as
    // std's connect sees).
    let (lead, name, nul) = if let Some(p) = addr.as_pathname() {
        let b = p.as_os_str().as_bytes();
        (0, b, usize::from(!b.is_empty()))
    } else if let Some(n) = addr.as_abstract_name() {
        (1, n, 0)
    } else {
        (0, &[][..], 0)
    };
    if lead + name.len() + nul > raw.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "coio: Unix socket address longer than sun_path",
        ));
    }
    for (d, &b) in raw.sun_path[lead..].iter_mut().zip(name) {
        *d = b as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + lead + name.len() + nul;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor socket(2) just made, ours alone.
    let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // SAFETY: `raw` is a `sockaddr_un` whose first `len` bytes are the
    // address.
    let r = unsafe { libc::connect(fd, (&raw const raw).cast(), len as libc::socklen_t) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(s)
}

/// A Unix domain socket server, as [`std::os::unix::net::UnixListener`],
/// whose `accept` blocks only the calling coroutine.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use coio::net::unix::UnixListener;
///
/// coio::run(|| -> std::io::Result<()> {
///     let listener = UnixListener::bind("/tmp/echo.sock")?;
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
pub struct UnixListener {
    io: Fd<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file `path` and listens, as std's `bind`.
    ///
    /// ```
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-bind-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// let _client = UnixStream::connect(&path)?; // queued until accepted
    /// let (_conn, _) = listener.accept()?;
    /// std::fs::remove_file(&path)?; // the socket file stays until removed
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error (`AddrInUse` if the file exists).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Binds to `addr` (a path, or on Linux an abstract name) and listens.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixListener, UnixStream};
    ///
    /// // An abstract name (Linux): no socket file.
    /// let addr = SocketAddr::from_abstract_name(format!("coio-doc-bind-addr-{}", std::process::id()))?;
    /// let listener = UnixListener::bind_addr(&addr)?;
    /// let client = UnixStream::connect_addr(&addr)?;
    /// let (_conn, _) = listener.accept()?;
    /// assert_eq!(client.peer_addr()?.as_abstract_name(), addr.as_abstract_name());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind_addr(addr)?)
    }

    /// Takes a std listener (made non-blocking here).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-from-std-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    /// let listener = coio::net::unix::UnixListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        set_nonblocking(listener.as_raw_fd())?;
        Ok(UnixListener::from_nonblocking(listener))
    }

    fn from_nonblocking(listener: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener {
            io: Fd::new_nonblocking(mio::net::UnixListener::from_std(listener)),
        }
    }

    /// Gives back the std listener, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-into-std-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = coio::net::unix::UnixListener::bind(&path)?;
    /// let std_listener: std::os::unix::net::UnixListener = listener.into_std();
    /// assert_eq!(std_listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::os::unix::net::UnixListener {
        self.io.into_inner().into()
    }

    /// Accepts a connection, blocking the coroutine until one comes.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-accept-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     let p = path.clone();
    ///     let client = coio::spawn(move || UnixStream::connect(p)?.write_all(b"hi"));
    ///     let (mut conn, _) = listener.accept()?; // parks until a client connects
    ///     let mut got = String::new();
    ///     conn.read_to_string(&mut got)?;
    ///     assert_eq!(got, "hi");
    ///     client.join().unwrap()
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; under descriptor exhaustion `EMFILE`/`ENFILE` (the
    /// pending connection stays queued: back off, then accept again).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::accept(&self.io) {
            // The peer's address as std makes it (std offers no way to
            // build one from a raw `sockaddr_un`): one `getpeername`, off
            // the hot path of a Unix server.
            let s = UnixStream::from_nonblocking(r?.0.into());
            let addr = s.peer_addr()?;
            return Ok((s, addr));
        }
        let (s, addr) = self.io.accept_with(accept)?;
        // mio accepted it non-blocking (accept4 with SOCK_NONBLOCK).
        Ok((UnixStream::from_nonblocking(s.into()), addr))
    }

    /// Polls for a connection: the async form of [`accept`](Self::accept)
    /// (see `coio::net`'s "Async I/O": the first poll must come from a
    /// coroutine). Only the waker of the latest `Pending` poll is woken (see
    /// `TcpListener::poll_accept`); [`accept_async`](Self::accept_async)'s
    /// futures each wait.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-poll-accept-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     let _client = UnixStream::connect(&path)?;
    ///     let (conn, _) = coio::future::block_on(poll_fn(|cx| listener.poll_accept(cx)))?;
    ///     assert_eq!(conn.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `accept`.
    pub fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.io
            .poll_read_with(cx, accept)
            // mio accepted it non-blocking (accept4 with SOCK_NONBLOCK).
            .map_ok(|(s, addr)| (UnixStream::from_nonblocking(s.into()), addr))
    }

    /// A future of the next connection: the async form of
    /// [`accept`](Self::accept) (see [`poll_accept`](Self::poll_accept)).
    ///
    /// ```
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-accept-async-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     let _client = UnixStream::connect(&path)?;
    ///     let (conn, _) = coio::future::block_on(async { listener.accept_async().await })?;
    ///     assert!(conn.peer_addr()?.is_unnamed()); // the client did not bind
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn accept_async(
        &self,
    ) -> impl std::future::Future<Output = io::Result<(UnixStream, SocketAddr)>> + '_ {
        // Its own entry among the listener's waiters (as TcpListener's).
        let mut wait = crate::io::reactor::QueuedWait::default();
        std::future::poll_fn(move |cx| {
            self.io
                .poll_read_queued(cx, &mut wait, accept)
                .map_ok(|(s, addr)| (UnixStream::from_nonblocking(s.into()), addr))
        })
    }

    /// An endless iterator of accepted connections (as std's).
    ///
    /// ```
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-incoming-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     for _ in 0..2 {
    ///         let p = path.clone();
    ///         coio::spawn(move || UnixStream::connect(p));
    ///     }
    ///     // Endless: take what is needed.
    ///     let conns = listener.incoming().take(2).collect::<std::io::Result<Vec<_>>>()?;
    ///     assert_eq!(conns.len(), 2);
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-local-addr-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = coio::net::unix::UnixListener::bind(&path)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-take-error-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = coio::net::unix::UnixListener::bind(&path)?;
    /// assert!(listener.take_error()?.is_none());
    /// std::fs::remove_file(&path)?;
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
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-try-clone-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     // The clone accepts in another coroutine: the same socket.
    ///     let second = listener.try_clone()?;
    ///     let acceptor = coio::spawn(move || second.accept().map(drop));
    ///     let _client = UnixStream::connect(&path)?;
    ///     acceptor.join().unwrap()
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let io = self.io.duplicate(|l| {
            let fd = l.as_fd().try_clone_to_owned()?;
            Ok(mio::net::UnixListener::from_std(fd.into()))
        })?;
        Ok(UnixListener { io })
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as std's.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-nonblocking-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = coio::net::unix::UnixListener::bind(&path)?;
    /// listener.set_nonblocking(true)?;
    /// // Nobody connects: `accept` returns at once.
    /// let err = listener.accept().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// std::fs::remove_file(&path)?;
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

impl<'a> IntoIterator for &'a UnixListener {
    type Item = io::Result<UnixStream>;
    type IntoIter = Incoming<'a>;

    fn into_iter(self) -> Incoming<'a> {
        self.incoming()
    }
}

/// The iterator of [`UnixListener::incoming`].
///
/// ```
/// use coio::net::unix::{Incoming, UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("coio-doc-incoming-type-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// coio::run(|| -> std::io::Result<()> {
///     let _client = UnixStream::connect(&path)?;
///     let mut incoming: Incoming<'_> = listener.incoming();
///     let conn = incoming.next().unwrap()?; // never `None`
///     assert!(conn.peer_addr()?.is_unnamed());
///     Ok(())
/// })?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix domain stream connection, as
/// [`std::os::unix::net::UnixStream`], whose reads and writes block only
/// the calling coroutine.
///
/// `Read` and `Write` are implemented for `UnixStream` and `&UnixStream`,
/// so one coroutine can read while another writes. Timeouts end a wait
/// with `ErrorKind::TimedOut` and leave the stream usable.
///
/// ```
/// use std::io::{Read, Write};
/// use coio::net::unix::UnixStream;
///
/// coio::run(|| -> std::io::Result<()> {
///     let (a, mut b) = UnixStream::pair()?;
///     let echo = coio::spawn(move || -> std::io::Result<()> {
///         let mut buf = [0; 5];
///         (&a).read_exact(&mut buf)?; // through `&UnixStream`
///         (&a).write_all(&buf)
///     });
///     b.write_all(b"hello")?;
///     let mut back = [0; 5];
///     b.read_exact(&mut back)?;
///     assert_eq!(&back, b"hello");
///     echo.join().unwrap()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    io: Fd<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket file `path`, blocking the coroutine while
    /// the listener's backlog is full (see the module docs).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-connect-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut client = UnixStream::connect(&path)?;
    ///     let (mut server, _) = listener.accept()?;
    ///     client.write_all(b"hi")?;
    ///     let mut buf = [0; 2];
    ///     server.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"hi");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error (`NotFound` for no such file, `ConnectionRefused` for
    /// a file nobody listens on).
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Connects to `addr` (a path, or on Linux an abstract name).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixListener, UnixStream};
    ///
    /// // An abstract name (Linux): no socket file.
    /// let addr = SocketAddr::from_abstract_name(format!("coio-doc-connect-addr-{}", std::process::id()))?;
    /// let listener = UnixListener::bind_addr(&addr)?;
    /// let client = UnixStream::connect_addr(&addr)?;
    /// let (server, _) = listener.accept()?;
    /// assert_eq!(client.peer_addr()?.as_abstract_name(), server.local_addr()?.as_abstract_name());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let mut backoff = Duration::from_millis(1);
        let s = loop {
            match connect(addr) {
                Ok(s) => break UnixStream::from_nonblocking(s),
                // The backlog is full: nothing to poll for, so retry.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Failed without waiting (no such socket yet, refused):
                    // counts against the budget, so that a loop that retries
                    // until the server is up lets it run (a coroutine of the
                    // same worker) and can be cancelled.
                    crate::runtime::worker::coop_spend_cancellable();
                    return Err(e);
                }
            }
        };
        // Connected already on Linux; elsewhere maybe in progress.
        finish_connect(&s.io, None, |s| s.take_error(), |s| s.peer_addr().map(drop))?;
        Ok(s)
    }

    /// A connected pair of streams (`socketpair`).
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (mut a, mut b) = coio::net::unix::UnixStream::pair()?;
    /// a.write_all(b"ping")?;
    /// let mut buf = [0; 4];
    /// b.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        // Created non-blocking by mio (SOCK_NONBLOCK).
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream::from_nonblocking(a.into()),
            UnixStream::from_nonblocking(b.into()),
        ))
    }

    fn from_nonblocking(s: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream {
            io: Fd::new_nonblocking(s),
        }
    }

    /// Takes a std stream (made non-blocking here); its read and write
    /// timeouts carry over.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut a = coio::net::unix::UnixStream::from_std(a)?;
    /// b.write_all(b"hi")?;
    /// let mut buf = [0; 2];
    /// a.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set, or of `getsockopt`
    /// if the timeouts cannot be read.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let timeouts = (stream.read_timeout()?, stream.write_timeout()?);
        Ok(UnixStream {
            io: super::adopt(stream, timeouts)?,
        })
    }

    /// Gives back the std stream, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (a, mut b) = coio::net::unix::UnixStream::pair()?;
    /// let mut a: std::os::unix::net::UnixStream = a.into_std();
    /// b.write_all(b"hi")?;
    /// let mut buf = [0; 2];
    /// a.read_exact(&mut buf)?; // in non-blocking mode: data is there already
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::os::unix::net::UnixStream {
        self.io.into_inner()
    }

    /// The address of the peer.
    ///
    /// ```
    /// use coio::net::unix::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-peer-addr-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// let client = UnixStream::connect(&path)?;
    /// assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
    /// # drop(listener);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address (unnamed, unless bound).
    ///
    /// ```
    /// let (a, _b) = coio::net::unix::UnixStream::pair()?;
    /// assert!(a.local_addr()?.is_unnamed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Shuts down reading, writing or both; waiters of a shut-down
    /// direction see it at once (reads return 0, writes fail). With the
    /// epoll driver, a writer parked on a full stream through a
    /// [`try_clone`](UnixStream::try_clone) handle does not: epoll reports
    /// no change of a Unix stream's send side (the same for a shutdown of
    /// reading by the peer); it waits for its write timeout.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    ///
    /// let (a, mut b) = coio::net::unix::UnixStream::pair()?;
    /// a.shutdown(Shutdown::Write)?; // the end of the stream, for the peer
    /// let mut rest = Vec::new();
    /// assert_eq!(b.read_to_end(&mut rest)?, 0);
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
    /// use coio::net::unix::UnixStream;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let (a, mut b) = UnixStream::pair()?;
    ///     // A clone reads in another coroutine.
    ///     let mut reader = a.try_clone()?;
    ///     let r = coio::spawn(move || {
    ///         let mut buf = [0; 4];
    ///         reader.read_exact(&mut buf).map(|()| buf)
    ///     });
    ///     b.write_all(b"pong")?;
    ///     assert_eq!(&r.join().unwrap()?, b"pong");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: self
                .io
                .duplicate(std::os::unix::net::UnixStream::try_clone)?,
        })
    }

    timeout_methods!(
        setup = "let (a, _b) = coio::net::unix::UnixStream::pair()?;",
        read_use = "\nuse std::io::Read;",
        read = "(&a).read(&mut [0; 8])"
    );

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let (a, _b) = coio::net::unix::UnixStream::pair()?;
    /// assert!(a.take_error()?.is_none());
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
    ///
    /// let (mut a, _b) = coio::net::unix::UnixStream::pair()?;
    /// a.set_nonblocking(true)?;
    /// // Nothing to read: `read` returns at once.
    /// let err = a.read(&mut [0; 16]).unwrap_err();
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

    /// Whether a short read proves the receive queue drained: not on an
    /// AF_UNIX stream, whose reads stop after a message that carried
    /// descriptors (`SCM_RIGHTS`), and between messages of different
    /// writers when `SO_PASSCRED` is on, with more data queued and no new
    /// edge to come.
    #[inline]
    pub(crate) fn short_read_drains(&self) -> bool {
        false
    }

    fn write_vectored_impl(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let bufs = crate::io::sys::iov_max(bufs);
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        // Nothing to send never waits for room (as `write_impl`).
        if len == 0 {
            return (&mut self.io.get_ref()).write_vectored(bufs);
        }
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::send_vectored(&self.io, bufs) {
            return r;
        }
        self.io.source().io_stream(Dir::Write, len, || {
            (&mut self.io.get_ref()).write_vectored(bufs)
        })
    }
}

stream_read_write!(UnixStream);
super::async_io::stream_async!(
    UnixStream,
    setup = "let (a, b) = coio::net::unix::UnixStream::pair()?;"
);

/// A Unix domain datagram socket, as
/// [`std::os::unix::net::UnixDatagram`], whose sends and receives block
/// only the calling coroutine.
///
/// Every method takes `&self`, so coroutines can share a socket. Timeouts
/// end a wait with `ErrorKind::TimedOut` and leave the socket usable. See
/// the module docs for a send to a receiver whose queue is full.
///
/// ```
/// use coio::net::unix::UnixDatagram;
///
/// coio::run(|| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair()?;
///     let receiver = coio::spawn(move || {
///         let mut buf = [0; 16];
///         b.recv(&mut buf).map(|n| buf[..n].to_vec()) // parks until one comes
///     });
///     a.send(b"datagram")?;
///     assert_eq!(receiver.join().unwrap()?, b"datagram");
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    io: Fd<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to the socket file `path`.
    ///
    /// ```
    /// use coio::net::unix::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-dgram-bind-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path)?;
    /// UnixDatagram::unbound()?.send_to(b"hi", &path)?;
    /// let mut buf = [0; 8];
    /// assert_eq!(server.recv(&mut buf)?, 2);
    /// std::fs::remove_file(&path)?; // the socket file stays until removed
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error (`AddrInUse` if the file exists).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to `addr` (a path, or on Linux an abstract name).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixDatagram};
    ///
    /// // An abstract name (Linux): no socket file.
    /// let addr = SocketAddr::from_abstract_name(format!("coio-doc-dgram-bind-addr-{}", std::process::id()))?;
    /// let server = UnixDatagram::bind_addr(&addr)?;
    /// UnixDatagram::unbound()?.send_to_addr(b"hi", &addr)?;
    /// assert_eq!(server.recv(&mut [0; 8])?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind_addr(addr)?)
    }

    /// A socket bound to no address.
    ///
    /// ```
    /// let socket = coio::net::unix::UnixDatagram::unbound()?;
    /// assert!(socket.local_addr()?.is_unnamed()); // it can send; nobody can answer
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of sockets (`socketpair`).
    ///
    /// ```
    /// let (a, b) = coio::net::unix::UnixDatagram::pair()?;
    /// a.send(b"one")?;
    /// a.send(b"two")?;
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf)?, 3); // one datagram at a time
    /// assert_eq!(&buf[..3], b"one");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        // Created non-blocking by mio (SOCK_NONBLOCK).
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((
            UnixDatagram::from_nonblocking(a.into()),
            UnixDatagram::from_nonblocking(b.into()),
        ))
    }

    fn from_nonblocking(s: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            io: Fd::new_nonblocking(s),
        }
    }

    /// Takes a std socket (made non-blocking here); its read and write
    /// timeouts carry over.
    ///
    /// ```
    /// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let a = coio::net::unix::UnixDatagram::from_std(a)?;
    /// b.send(b"hi")?;
    /// assert_eq!(a.recv(&mut [0; 8])?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set, or of `getsockopt`
    /// if the timeouts cannot be read.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        let timeouts = (socket.read_timeout()?, socket.write_timeout()?);
        Ok(UnixDatagram {
            io: super::adopt(socket, timeouts)?,
        })
    }

    /// Gives back the std socket, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// let (a, b) = coio::net::unix::UnixDatagram::pair()?;
    /// let a: std::os::unix::net::UnixDatagram = a.into_std();
    /// b.send(b"hi")?;
    /// assert_eq!(a.recv(&mut [0; 8])?, 2); // non-blocking mode: it is there already
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::os::unix::net::UnixDatagram {
        self.io.into_inner()
    }

    /// Connects the socket to the socket file `path`: `send` and `recv`
    /// then use that peer. This records the peer and does not wait.
    ///
    /// ```
    /// use coio::net::unix::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-dgram-connect-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path)?;
    /// let client = UnixDatagram::unbound()?;
    /// client.connect(&path)?; // records the peer, does not wait
    /// client.send(b"hi")?;
    /// assert_eq!(server.recv(&mut [0; 8])?, 2);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error (`NotFound`, `ConnectionRefused`).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let r = self.io.get_ref().connect(path);
        // Never waits: counts against the budget (see `UnixStream::connect`).
        crate::runtime::worker::coop_spend_cancellable();
        r
    }

    /// Connects the socket to `addr` (see [`connect`](Self::connect)).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixDatagram};
    ///
    /// let addr = SocketAddr::from_abstract_name(format!("coio-doc-dgram-connect-addr-{}", std::process::id()))?;
    /// let server = UnixDatagram::bind_addr(&addr)?;
    /// let client = UnixDatagram::unbound()?;
    /// client.connect_addr(&addr)?;
    /// client.send(b"hi")?;
    /// assert_eq!(server.recv(&mut [0; 8])?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        let r = self.io.get_ref().connect_addr(addr);
        // As `connect`.
        crate::runtime::worker::coop_spend_cancellable();
        r
    }

    /// A second handle to the same socket (a duplicated descriptor). It
    /// starts with this handle's timeouts and non-blocking mode (std's
    /// clone shares them); a change made later applies to one handle only.
    ///
    /// ```
    /// use coio::net::unix::UnixDatagram;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let (a, b) = UnixDatagram::pair()?;
    ///     // One coroutine receives on a clone while this one sends.
    ///     let receiver = b.try_clone()?;
    ///     let r = coio::spawn(move || receiver.recv(&mut [0; 16]));
    ///     a.send(b"hello")?;
    ///     assert_eq!(r.join().unwrap()?, 5);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: self
                .io
                .duplicate(std::os::unix::net::UnixDatagram::try_clone)?,
        })
    }

    /// The address the socket is bound to.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-dgram-local-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let socket = coio::net::unix::UnixDatagram::bind(&path)?;
    /// assert_eq!(socket.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The address of the connected peer.
    ///
    /// ```
    /// use coio::net::unix::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-dgram-peer-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path)?;
    /// let client = UnixDatagram::unbound()?;
    /// assert!(client.peer_addr().is_err()); // not connected
    /// client.connect(&path)?;
    /// assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
    /// # drop(server);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `NotConnected` if not connected; the OS error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Receives one datagram, blocking the coroutine until one comes;
    /// returns its length and sender. A datagram longer than `buf` is cut
    /// to fit, as with std.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixDatagram};
    ///
    /// let name = |tag: &str| SocketAddr::from_abstract_name(format!("coio-doc-{tag}-{}", std::process::id()));
    /// let server = UnixDatagram::bind_addr(&name("recv-from-server")?)?;
    /// let client = UnixDatagram::bind_addr(&name("recv-from-client")?)?; // bound: can be answered
    /// client.send_to_addr(b"ping", &server.local_addr()?)?;
    /// let mut buf = [0; 16];
    /// let (n, from) = server.recv_from(&mut buf)?;
    /// assert_eq!(&buf[..n], b"ping");
    /// server.send_to_addr(b"pong", &from)?; // the answer
    /// assert_eq!(client.recv(&mut buf)?, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; `TimedOut` after the read timeout.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|s| match s.recv_from(buf) {
            Err(e) if self.read_shut_down(&e) => Ok((0, SocketAddr::from_pathname("")?)),
            r => r,
        })
    }

    /// Receives one datagram (see [`recv_from`](Self::recv_from)).
    ///
    /// ```
    /// let (a, b) = coio::net::unix::UnixDatagram::pair()?;
    /// a.send(b"a longer datagram")?;
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf)?, 8); // cut to fit; the rest is lost
    /// assert_eq!(&buf, b"a longer");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; `TimedOut` after the read timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|s| match s.recv(buf) {
            Err(e) if self.read_shut_down(&e) => Ok(0),
            r => r,
        })
    }

    /// Whether `e`, the error of a receive, hides the end of the socket's
    /// reading (see "Datagrams and shutdown" in the module docs).
    fn read_shut_down(&self, e: &io::Error) -> bool {
        if e.kind() != io::ErrorKind::WouldBlock || self.io.source().nonblocking() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: self.io.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid array of one pollfd for the call, which
        // does not wait.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        r > 0 && pfd.revents & libc::POLLRDHUP != 0
    }

    /// Sends `buf` as one datagram to the socket file `path`, blocking the
    /// coroutine while the receiver's queue is full (see the module docs).
    ///
    /// ```
    /// use coio::net::unix::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-dgram-send-to-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path)?;
    /// let client = UnixDatagram::unbound()?;
    /// assert_eq!(client.send_to(b"hello", &path)?, 5);
    /// assert_eq!(server.recv(&mut [0; 8])?, 5);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; `TimedOut` after the write timeout.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = SocketAddr::from_pathname(path)?;
        self.send_to_addr(buf, &addr)
    }

    /// Sends `buf` as one datagram to `addr` (see [`send_to`](Self::send_to)).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use coio::net::unix::{SocketAddr, UnixDatagram};
    ///
    /// let addr = SocketAddr::from_abstract_name(format!("coio-doc-send-to-addr-{}", std::process::id()))?;
    /// let server = UnixDatagram::bind_addr(&addr)?;
    /// assert_eq!(UnixDatagram::unbound()?.send_to_addr(b"hello", &addr)?, 5);
    /// assert_eq!(server.recv(&mut [0; 8])?, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `send_to`.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.io.write_with(|s| s.send_to_addr(buf, addr))
    }

    /// Sends `buf` as one datagram to the connected peer, blocking the
    /// coroutine while the peer's queue is full.
    ///
    /// ```
    /// let (a, b) = coio::net::unix::UnixDatagram::pair()?;
    /// assert_eq!(a.send(b"hello")?, 5);
    /// assert_eq!(b.recv(&mut [0; 8])?, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `NotConnected` if not connected; the OS error; `TimedOut` after the
    /// write timeout.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf))
    }

    timeout_methods!(
        setup = "let (a, _b) = coio::net::unix::UnixDatagram::pair()?;",
        read_use = "",
        read = "a.recv(&mut [0; 8])"
    );

    /// In non-blocking mode sends and receives return `WouldBlock`
    /// instead of waiting, as std's.
    ///
    /// ```
    /// let (a, _b) = coio::net::unix::UnixDatagram::pair()?;
    /// a.set_nonblocking(true)?;
    /// // Nothing queued: `recv` returns at once.
    /// let err = a.recv(&mut [0; 16]).unwrap_err();
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

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let (a, _b) = coio::net::unix::UnixDatagram::pair()?;
    /// assert!(a.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Shuts down reading, writing or both; waiters of a shut-down
    /// direction see it at once.
    ///
    /// ```
    /// use std::net::Shutdown;
    ///
    /// let (a, b) = coio::net::unix::UnixDatagram::pair()?;
    /// b.shutdown(Shutdown::Read)?;
    /// assert_eq!(b.recv(&mut [0; 8])?, 0); // returns at once, as std's
    /// a.shutdown(Shutdown::Write)?;
    /// assert!(a.send(b"late").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how, |s, how| s.shutdown(how))
    }
}

macro_rules! fd_traits {
    ($($t:ident),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.io.as_raw_fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.as_fd()
            }
        }

        /// The descriptor stays in non-blocking mode (see `into_std`).
        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                self.into_std().into_raw_fd()
            }
        }

        /// The descriptor stays in non-blocking mode (see `into_std`).
        impl From<$t> for OwnedFd {
            fn from(s: $t) -> OwnedFd {
                s.into_std().into()
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.io.get_ref(), f)
            }
        }
    )*};
}

fd_traits!(UnixListener, UnixStream, UnixDatagram);

adopt_fd!(UnixStream, std::os::unix::net::UnixStream);
adopt_fd!(UnixListener, std::os::unix::net::UnixListener);
adopt_fd!(UnixDatagram, std::os::unix::net::UnixDatagram);
