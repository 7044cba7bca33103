//! Socket addresses between std's types and the kernel's `sockaddr`s, for
//! the operations coio makes itself (through io_uring) rather than through
//! std: the same layout std and mio use (ports and IPv4 addresses in
//! network byte order; IPv6 flow info and scope id as given).

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `addr` as a `sockaddr` and its length.
pub(crate) fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid (family AF_UNSPEC).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for,
            // every sockaddr type.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address the kernel wrote to `storage` (`len` bytes of it).
///
/// # Errors
/// `InvalidInput` for a family other than IPv4 and IPv6, or a length too
/// short for the family.
pub(crate) fn from_raw(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> io::Result<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // the storage is aligned for it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "coio: the kernel returned an address that is not IPv4 or IPv6",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn round_trips() {
        for a in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "255.1.2.3:65535",
            "[::1]:443",
            "[fe80::1:2:3%7]:9",
        ] {
            let mut a: SocketAddr = a.parse().unwrap();
            if let SocketAddr::V6(v6) = &mut a {
                v6.set_flowinfo(0x12345);
            }
            let (s, len) = to_raw(&a);
            assert_eq!(from_raw(&s, len).unwrap(), a);
        }
    }

    #[test]
    fn matches_the_kernel() {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(sock) = std::net::UdpSocket::bind(local) else {
                continue; // no IPv6 here
            };
            let addr = sock.local_addr().unwrap();
            // SAFETY: an all-zero sockaddr_storage is valid.
            let mut out: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut out_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: getsockname writes at most `out_len` bytes to `out`.
            let r =
                unsafe { libc::getsockname(sock.as_raw_fd(), (&raw mut out).cast(), &mut out_len) };
            assert_eq!(r, 0);
            assert_eq!(from_raw(&out, out_len).unwrap(), addr);
            // The kernel reads our encoding as std's address.
            let (to, to_len) = to_raw(&addr);
            // SAFETY: sendto reads 4 bytes from the literal and `to_len`
            // bytes of `to`.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    b"ping".as_ptr().cast(),
                    4,
                    0,
                    (&raw const to).cast(),
                    to_len,
                )
            };
            assert_eq!(n, 4);
            let mut buf = [0; 8];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"ping"[..], addr));
        }
        // SAFETY: as above.
        let short: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert!(from_raw(&short, 0).is_err());
    }
}
