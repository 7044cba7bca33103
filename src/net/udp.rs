//! UDP: `UdpSocket`, std's type made coroutine-aware.
//!
//! The std socket lives in an [`Fd`]; every method std has is forwarded,
//! and the ones that can block (send, recv and their `_to`/`_from` and
//! peek variants) go through the descriptor's `Source`. Connecting a UDP
//! socket only records the peer, so `connect` is std's call as is (with
//! its resolution off the worker, like every address here).
//!
//! Reads use `Source::io`, not the stream variant `io_stream`: a datagram
//! shorter than the buffer says nothing about what else is queued (the
//! next one may be there already), so only `WouldBlock` clears the
//! readiness. A datagram is sent whole or not at all, so the same holds
//! for writes.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use super::{each_addr, resolve};
use crate::io::Fd;

/// A UDP socket, as [`std::net::UdpSocket`], whose sends and receives
/// block only the calling coroutine.
///
/// Every method takes `&self`, so coroutines can share a socket (in an
/// `Arc`, or through [`try_clone`](UdpSocket::try_clone)): one can wait in
/// `recv_from` while another sends. Timeouts end a wait with
/// `ErrorKind::TimedOut` and leave the socket usable.
///
/// ```no_run
/// use coio::net::UdpSocket;
///
/// coio::run(|| -> std::io::Result<()> {
///     let socket = UdpSocket::bind("127.0.0.1:34254")?;
///     let mut buf = [0; 1500];
///     loop {
///         // Parks this coroutine until a datagram comes.
///         let (n, from) = socket.recv_from(&mut buf)?;
///         socket.send_to(&buf[..n], from)?;
///     }
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    io: Fd<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (the first of its addresses that works), as std's
    /// `bind`. Name resolution runs off the coroutine's worker.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// // Port 0: the system picks a free port.
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_ne!(socket.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The resolution's or the last address's error.
    pub fn bind<A: ToSocketAddrs + Send>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::from_std(std::net::UdpSocket::bind(a)?))
    }

    /// Takes a std socket (made non-blocking here); its read and write
    /// timeouts carry over.
    ///
    /// ```
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = std_socket.local_addr()?;
    /// let socket = coio::net::UdpSocket::from_std(std_socket)?;
    /// assert_eq!(socket.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The error of `fcntl` if the mode cannot be set, or of `getsockopt`
    /// if the timeouts cannot be read.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let timeouts = (socket.read_timeout()?, socket.write_timeout()?);
        Ok(UdpSocket {
            io: super::adopt(socket, timeouts)?,
        })
    }

    /// Gives back the std socket, still in non-blocking mode (see
    /// `coio::net`'s differences from std): call `set_nonblocking(false)` on
    /// it before handing it to blocking code or a child process.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = socket.local_addr()?;
    /// let std_socket: std::net::UdpSocket = socket.into_std();
    /// assert_eq!(std_socket.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::net::UdpSocket {
        self.io.into_inner()
    }

    /// Receives one datagram, blocking the coroutine until one comes;
    /// returns its length and sender. A datagram longer than `buf` is cut
    /// to fit (the rest is lost), as with std.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let server = UdpSocket::bind("127.0.0.1:0")?;
    ///     let client = UdpSocket::bind("127.0.0.1:0")?;
    ///     client.send_to(b"ping", server.local_addr()?)?;
    ///     let mut buf = [0; 1500];
    ///     let (n, from) = server.recv_from(&mut buf)?; // parks until a datagram comes
    ///     assert_eq!((&buf[..n], from), (&b"ping"[..], client.local_addr()?));
    ///     server.send_to(b"pong", from)?; // answer the sender
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error; `TimedOut` after the read timeout.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::recv_from(&self.io, buf, 0) {
            return r;
        }
        self.io.read_with(|s| s.recv_from(buf))
    }

    /// As [`recv_from`](Self::recv_from), leaving the datagram queued.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let server = UdpSocket::bind("127.0.0.1:0")?;
    /// let client = UdpSocket::bind("127.0.0.1:0")?;
    /// client.send_to(b"ping", server.local_addr()?)?;
    /// let mut buf = [0; 16];
    /// let (n, from) = server.peek_from(&mut buf)?;
    /// assert_eq!((n, from), (4, client.local_addr()?));
    /// // Still queued: `recv_from` gets the same datagram.
    /// assert_eq!(server.recv_from(&mut buf)?, (4, from));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `recv_from`.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::recv_from(&self.io, buf, libc::MSG_PEEK as u32) {
            return r;
        }
        self.io.read_with(|s| s.peek_from(buf))
    }

    /// Sends `buf` as one datagram to `addr` (its first address, as std's;
    /// resolved off the coroutine's worker), blocking the coroutine while
    /// the send buffer is full.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let server = UdpSocket::bind("127.0.0.1:0")?;
    /// let client = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(client.send_to(b"hello", server.local_addr()?)?, 5);
    /// let mut buf = [0; 16];
    /// let (n, _) = server.recv_from(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` if `addr` resolves to no address; the OS error;
    /// `TimedOut` after the write timeout.
    pub fn send_to<A: ToSocketAddrs + Send>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(addr) = resolve(addr)?.into_iter().next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::send_to(&self.io, buf, &addr) {
            return r;
        }
        self.io.write_with(|s| s.send_to(buf, addr))
    }

    /// The address of the peer the socket is connected to.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// assert_eq!(a.peer_addr().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `NotConnected` if not connected; the OS error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The address the socket is bound to.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = socket.local_addr()?;
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

    /// A second handle to the same socket (a duplicated descriptor). It
    /// starts with this handle's timeouts and non-blocking mode (std's
    /// clone shares them); a change made later applies to one handle only.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let socket = UdpSocket::bind("127.0.0.1:0")?;
    ///     let receiver = socket.try_clone()?;
    ///     // One coroutine receives on the clone while this one sends.
    ///     let r = coio::spawn(move || receiver.recv_from(&mut [0; 16]).map(|(n, _)| n));
    ///     socket.send_to(b"to myself", socket.local_addr()?)?;
    ///     assert_eq!(r.join().unwrap()?, 9);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error of `dup`.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: self.io.duplicate(std::net::UdpSocket::try_clone)?,
        })
    }

    timeout_methods!(
        setup = "let a = coio::net::UdpSocket::bind(\"127.0.0.1:0\")?;",
        read_use = "",
        read = "a.recv_from(&mut [0; 8])"
    );

    /// Sets `SO_BROADCAST`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// socket.set_broadcast(true)?; // may send to 255.255.255.255 now
    /// assert!(socket.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(broadcast)
    }

    /// `SO_BROADCAST`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// assert!(!socket.broadcast()?); // off by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// socket.set_multicast_loop_v4(false)?; // no copies of our own multicasts
    /// assert!(!socket.multicast_loop_v4()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_multicast_loop_v4(&self, multicast_loop_v4: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(multicast_loop_v4)
    }

    /// `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// assert!(socket.multicast_loop_v4()?); // on by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// socket.set_multicast_ttl_v4(8)?; // cross up to 8 routers
    /// assert_eq!(socket.multicast_ttl_v4()?, 8);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_multicast_ttl_v4(&self, multicast_ttl_v4: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(multicast_ttl_v4)
    }

    /// `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// assert_eq!(socket.multicast_ttl_v4()?, 1); // the local network only, by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// ```
    /// // IPv6 may be missing altogether on some machines.
    /// if let Ok(socket) = coio::net::UdpSocket::bind("[::1]:0") {
    ///     socket.set_multicast_loop_v6(false)?;
    ///     assert!(!socket.multicast_loop_v6()?);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn set_multicast_loop_v6(&self, multicast_loop_v6: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(multicast_loop_v6)
    }

    /// `IPV6_MULTICAST_LOOP`.
    ///
    /// ```
    /// // IPv6 may be missing altogether on some machines.
    /// if let Ok(socket) = coio::net::UdpSocket::bind("[::1]:0") {
    ///     assert!(socket.multicast_loop_v6()?); // on by default
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_ttl(100)?;
    /// assert_eq!(socket.ttl()?, 100);
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
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// println!("IP_TTL: {}", socket.ttl()?); // the system's default, often 64
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with
    /// address `interface` (`IP_ADD_MEMBERSHIP`).
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    ///
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// let group = Ipv4Addr::new(239, 255, 0, 1);
    /// // A machine without a multicast route may refuse the join.
    /// match socket.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
    ///     Ok(()) => socket.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?,
    ///     Err(e) => eprintln!("no multicast here: {e}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with
    /// index `interface` (0: the system's choice).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    ///
    /// // IPv6 may be missing altogether on some machines.
    /// if let Ok(socket) = coio::net::UdpSocket::bind("[::1]:0") {
    ///     let group: Ipv6Addr = "ff02::123".parse().unwrap();
    ///     match socket.join_multicast_v6(&group, 0) {
    ///         Ok(()) => socket.leave_multicast_v6(&group, 0)?,
    ///         Err(e) => eprintln!("no IPv6 multicast here: {e}"),
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves a group joined with
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    ///
    /// let socket = coio::net::UdpSocket::bind("0.0.0.0:0")?;
    /// let group = Ipv4Addr::new(239, 255, 0, 2);
    /// if socket.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_ok() {
    ///     // ... receive the group's datagrams, then:
    ///     socket.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves a group joined with
    /// [`join_multicast_v6`](Self::join_multicast_v6).
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    ///
    /// if let Ok(socket) = coio::net::UdpSocket::bind("[::1]:0") {
    ///     let group: Ipv6Addr = "ff02::124".parse().unwrap();
    ///     if socket.join_multicast_v6(&group, 0).is_ok() {
    ///         // ... receive the group's datagrams, then:
    ///         socket.leave_multicast_v6(&group, 0)?;
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(multiaddr, interface)
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Connects the socket to `addr` (each of its addresses in turn until
    /// one works, as std's): `send` and `recv` then use that peer, and
    /// datagrams from others are dropped. This records the peer without
    /// any exchange, so it does not wait; name resolution runs off the
    /// coroutine's worker.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// a.connect(b.local_addr()?)?; // no exchange: it only records the peer
    /// b.connect(a.local_addr()?)?;
    /// a.send(b"hi")?;
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf)?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The resolution's or the last address's error.
    pub fn connect<A: ToSocketAddrs + Send>(&self, addr: A) -> io::Result<()> {
        let r = each_addr(addr, |a| self.io.get_ref().connect(a));
        // Never waits: counts against the budget (see `TcpStream::connect`).
        crate::runtime::worker::coop_spend_cancellable();
        r
    }

    /// Sends `buf` as one datagram to the connected peer, blocking the
    /// coroutine while the send buffer is full.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.send(b"datagram")?, 8);
    /// let mut buf = [0; 16];
    /// let (n, from) = b.recv_from(&mut buf)?;
    /// assert_eq!((&buf[..n], from), (&b"datagram"[..], a.local_addr()?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `NotConnected` if not connected (`DestinationAddrRequired` on some
    /// systems); the OS error, such as `ConnectionRefused` after an
    /// earlier datagram was refused; `TimedOut` after the write timeout.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::send(&self.io, buf) {
            return r;
        }
        self.io.write_with(|s| s.send(buf))
    }

    /// Receives one datagram from the connected peer, blocking the
    /// coroutine until one comes (see [`recv_from`](Self::recv_from)).
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// coio::run(|| -> std::io::Result<()> {
    ///     let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    ///     b.connect(a.local_addr()?)?;
    ///     let b_addr = b.local_addr()?;
    ///     let receiver = coio::spawn(move || {
    ///         let mut buf = [0; 16];
    ///         b.recv(&mut buf).map(|n| buf[..n].to_vec()) // parks until one comes
    ///     });
    ///     a.send_to(b"hello", b_addr)?;
    ///     assert_eq!(receiver.join().unwrap()?, b"hello");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error, such as `ConnectionRefused` after an earlier datagram
    /// was refused; `TimedOut` after the read timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::recv(&self.io, buf, 0) {
            return r;
        }
        self.io.read_with(|s| s.recv(buf))
    }

    /// As [`recv`](Self::recv), leaving the datagram queued.
    ///
    /// ```
    /// use coio::net::UdpSocket;
    ///
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// a.connect(b.local_addr()?)?;
    /// b.connect(a.local_addr()?)?;
    /// a.send(b"ping")?;
    /// let mut buf = [0; 16];
    /// assert_eq!(b.peek(&mut buf)?, 4);
    /// assert_eq!(b.recv(&mut buf)?, 4); // the same datagram, still queued
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As `recv`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(r) = super::ring::recv(&self.io, buf, libc::MSG_PEEK) {
            return r;
        }
        self.io.read_with(|s| s.peek(buf))
    }

    /// In non-blocking mode sends and receives return `WouldBlock`
    /// instead of waiting, as std's.
    ///
    /// ```
    /// let socket = coio::net::UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_nonblocking(true)?;
    /// // Nothing queued: `recv_from` returns at once.
    /// let err = socket.recv_from(&mut [0; 16]).unwrap_err();
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

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl IntoRawFd for UdpSocket {
    fn into_raw_fd(self) -> RawFd {
        self.into_std().into_raw_fd()
    }
}

/// The descriptor stays in non-blocking mode (see `into_std`).
impl From<UdpSocket> for OwnedFd {
    fn from(s: UdpSocket) -> OwnedFd {
        s.into_std().into()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get_ref(), f)
    }
}

adopt_fd!(UdpSocket, std::net::UdpSocket);
