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
//!   blocking pool, which is why the address types must be `Send`.

mod tcp;
mod udp;
pub mod unix;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr`; in a coroutine, on the blocking pool (a DNS lookup can
/// take seconds, and would stall every coroutine of the worker).
fn resolve<A: ToSocketAddrs + Send>(addr: A) -> io::Result<Vec<SocketAddr>> {
    crate::blocking(move || Ok(addr.to_socket_addrs()?.collect()))
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
