//! UDP through the netpoller: coroutines and plain threads, a receive
//! woken by a later send, timeouts, the non-blocking mode, cancellation,
//! socket options.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coio::net::UdpSocket;
use coio::{Runtime, chan};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// `rounds` round trips: `a` sends a counter to `b`, which answers it plus
/// one (through `send_to`/`recv_from` on one side, a connected
/// `send`/`recv` on the other).
fn ping_pong(
    a: UdpSocket,
    b: UdpSocket,
    rounds: u32,
    spawn: impl FnOnce(Box<dyn FnOnce() + Send>),
) {
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    spawn(Box::new(move || {
        b.connect(a_addr).unwrap();
        assert_eq!(b.peer_addr().unwrap(), a_addr);
        let mut buf = [0; 4];
        for _ in 0..rounds {
            let n = b.recv(&mut buf).unwrap();
            assert_eq!(n, 4);
            let v = u32::from_le_bytes(buf) + 1;
            assert_eq!(b.send(&v.to_le_bytes()).unwrap(), 4);
        }
    }));
    let mut buf = [0; 16];
    for i in 0..rounds {
        assert_eq!(a.send_to(&i.to_le_bytes(), b_addr).unwrap(), 4);
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (4, b_addr));
        assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i + 1);
    }
}

#[test]
fn ping_pong_between_coroutines() {
    for workers in [1, 2] {
        let rt = rt(workers);
        // Several pairs at once, so that waits overlap.
        let pairs: Vec<_> = (0..10)
            .map(|_| {
                rt.spawn(|| {
                    let (tx, rx) = chan::bounded(1);
                    ping_pong(bind(), bind(), 200, |f| {
                        let h = coio::spawn(f);
                        tx.send(h).unwrap();
                    });
                    rx.recv().unwrap().join().unwrap();
                })
            })
            .collect();
        for p in pairs {
            p.join().unwrap();
        }
    }
}

#[test]
fn plain_threads_use_the_same_types() {
    let (tx, rx) = std::sync::mpsc::channel();
    ping_pong(bind(), bind(), 100, |f| {
        tx.send(std::thread::spawn(f)).unwrap();
    });
    rx.recv().unwrap().join().unwrap();

    // A coroutine against a plain thread.
    let rt = rt(1);
    let a = bind();
    let b = bind();
    let b_addr = b.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0; 8];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        b.send_to(&buf[..n], from).unwrap();
    });
    rt.block_on(move || {
        a.send_to(b"thread", b_addr).unwrap();
        let mut buf = [0; 8];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"thread"[..], b_addr));
    });
    server.join().unwrap();
}

#[test]
fn recv_parks_until_a_later_send() {
    // One worker: the sender can run only if the receiver's wait parked
    // the coroutine rather than the thread.
    for workers in [1, 2] {
        let rt = rt(workers);
        let log = rt.block_on(|| {
            let a = bind();
            let b = bind();
            let a_addr = a.local_addr().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (ready_tx, ready_rx) = chan::bounded(1);
            let receiver = {
                let log = log.clone();
                coio::spawn(move || {
                    log.lock().unwrap().push("recv");
                    ready_tx.send(()).unwrap();
                    let mut buf = [0; 8];
                    let (n, _) = a.recv_from(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"wake");
                    log.lock().unwrap().push("received");
                })
            };
            ready_rx.recv().unwrap();
            // Let the receiver reach its wait (it does not matter if it
            // has not: the datagram is then queued for it).
            coio::yield_now();
            log.lock().unwrap().push("send");
            b.send_to(b"wake", a_addr).unwrap();
            receiver.join().unwrap();
            Arc::try_unwrap(log).unwrap().into_inner().unwrap()
        });
        assert_eq!(log, ["recv", "send", "received"]);
    }
}

#[test]
fn read_timeout_leaves_the_socket_usable() {
    let check = || {
        let a = bind();
        let b = bind();
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let start = Instant::now();
        let mut buf = [0; 4];
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            a.recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            a.peek_from(&mut buf).unwrap_err().kind(),
            ErrorKind::TimedOut
        );
        // Usable afterwards.
        b.send_to(b"late", a.local_addr().unwrap()).unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"late"[..], b.local_addr().unwrap()));
        // Zero is refused; None clears it.
        assert_eq!(
            a.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        a.set_read_timeout(None).unwrap();
        assert_eq!(a.read_timeout().unwrap(), None);
        a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn nonblocking_mode_returns_would_block() {
    let check = || {
        let a = bind();
        let b = bind();
        a.set_nonblocking(true).unwrap();
        let mut buf = [0; 4];
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        assert_eq!(a.peek(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        b.send_to(b"ok", a.local_addr().unwrap()).unwrap();
        // The datagram may take a moment to be queued even on loopback
        // (it is there once send_to returns on Linux; loop to be safe).
        let n = loop {
            match a.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => coio::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"ok");
        // Blocking again.
        a.set_nonblocking(false).unwrap();
        b.send_to(b"ok", a.local_addr().unwrap()).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 2);
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn cancel_wakes_a_coroutine_blocked_in_recv() {
    let rt = rt(1);
    let (ready_tx, ready_rx) = chan::bounded(1);
    let reader = rt.spawn(move || {
        let s = bind();
        ready_tx.send(()).unwrap();
        let mut buf = [0; 1];
        let _ = s.recv(&mut buf);
        unreachable!("the recv cannot complete: nobody sends");
    });
    ready_rx.recv().unwrap();
    reader.cancel();
    let e = reader.join().unwrap_err();
    assert!(e.is::<coio::Cancelled>());
    // A blocked recv_from is cancelled as well when the runtime drops.
    rt.spawn(|| bind().recv_from(&mut [0; 1]).map(|_| ()));
    drop(rt);
}

#[test]
fn peek_and_clone() {
    rt(2).block_on(|| {
        let a = bind();
        let b = bind();
        let b2 = b.try_clone().unwrap();
        a.send_to(b"one", b.local_addr().unwrap()).unwrap();
        a.send_to(b"two", b.local_addr().unwrap()).unwrap();
        let mut buf = [0; 8];
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"one"[..], a.local_addr().unwrap()));
        // The clone reads the same queue; a short buffer cuts the datagram.
        let mut short = [0; 2];
        assert_eq!(b2.recv(&mut short).unwrap(), 2);
        assert_eq!(&short, b"on");
        // The next datagram was queued already: a short read did not make
        // the socket look drained.
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(b.peek(&mut buf).unwrap(), 3);
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
        assert_eq!(b.take_error().unwrap().map(|e| e.kind()), None);
    });
}

#[test]
fn connect_send_recv_and_errors() {
    rt(1).block_on(|| {
        let a = bind();
        // Not connected.
        assert!(a.send(b"x").is_err());
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        // No address at all.
        let none: &[SocketAddr] = &[];
        assert_eq!(
            a.send_to(b"x", none).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(a.connect(none).unwrap_err().kind(), ErrorKind::InvalidInput);
        // Names resolve (both to the first address of localhost).
        let a2 = UdpSocket::bind("localhost:0").unwrap();
        let b = UdpSocket::bind("localhost:0").unwrap();
        let port = b.local_addr().unwrap().port();
        a2.connect(("localhost", port)).unwrap();
        assert_eq!(a2.peer_addr().unwrap().port(), port);
        a2.send(b"hi").unwrap();
        let mut buf = [0; 2];
        assert_eq!(b.recv_from(&mut buf).unwrap().0, 2);
        // A refused datagram is reported to the connected sender: by its
        // next operation, which must not hang.
        let gone = bind();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let c = bind();
        c.connect(gone_addr).unwrap();
        c.send(b"anyone?").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let e = c.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn options_round_trip() {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_broadcast(true).unwrap();
    assert!(s.broadcast().unwrap());
    s.set_broadcast(false).unwrap();
    assert!(!s.broadcast().unwrap());
    s.set_multicast_loop_v4(false).unwrap();
    assert!(!s.multicast_loop_v4().unwrap());
    s.set_multicast_loop_v4(true).unwrap();
    assert!(s.multicast_loop_v4().unwrap());
    s.set_multicast_ttl_v4(7).unwrap();
    assert_eq!(s.multicast_ttl_v4().unwrap(), 7);
    s.set_ttl(42).unwrap();
    assert_eq!(s.ttl().unwrap(), 42);
    // Joining may be refused in a sandbox (no multicast route): an error,
    // never a panic.
    let group = Ipv4Addr::new(224, 0, 0, 123);
    if s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_ok() {
        s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    }
    // IPv6 may be missing altogether.
    if let Ok(s6) = UdpSocket::bind("[::1]:0") {
        s6.set_multicast_loop_v6(false).unwrap();
        assert!(!s6.multicast_loop_v6().unwrap());
        s6.set_multicast_loop_v6(true).unwrap();
        assert!(s6.multicast_loop_v6().unwrap());
        let group6: Ipv6Addr = "ff02::123".parse().unwrap();
        if s6.join_multicast_v6(&group6, 0).is_ok() {
            s6.leave_multicast_v6(&group6, 0).unwrap();
        }
    }
}

#[test]
fn std_conversions() {
    let s = bind();
    let addr = s.local_addr().unwrap();
    assert!(format!("{s:?}").contains("UdpSocket"));
    let fd = s.as_raw_fd();
    let std = s.into_std();
    assert_eq!(std.as_raw_fd(), fd);
    assert_eq!(std.local_addr().unwrap(), addr);
    let s = UdpSocket::from_std(std).unwrap();
    let owned: OwnedFd = s.into();
    let s = UdpSocket::from_std(owned.into()).unwrap();
    let raw = s.into_raw_fd();
    assert_eq!(raw, fd);
    // SAFETY: `raw` was just released by `into_raw_fd`.
    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
}
