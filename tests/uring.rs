//! The io_uring driver (`IoDriver::Uring`): socket operations through
//! each worker's ring, with real sockets on loopback. Timeouts and
//! cancellations mid-flight, with every byte accounted for; the fallback
//! to epoll where a ring cannot be made.
//!
//! CI also runs these under valgrind's memcheck (`.ci/run`), where the
//! ring sleeps in epoll (valgrind's `io_uring_enter` would hold its lock
//! while it waits).
//!
//! Where the kernel has no usable io_uring (checked here independently of
//! coio, by a raw `io_uring_setup`), the runtime must fall back to epoll,
//! and the tests check that instead of the ring.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use coio::net::unix::UnixStream;
use coio::net::{TcpListener, TcpStream};
use coio::{IoDriver, Runtime};

mod common;

/// Whether this kernel lets a process set up an io_uring with the flags
/// coio uses (SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG | R_DISABLED),
/// asked directly.
fn kernel_has_uring() -> bool {
    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: [u64; 5],
        cq_off: [u64; 5],
    }
    const TASKRUN_FLAG: u32 = 1 << 9;
    const R_DISABLED: u32 = 1 << 6;
    const SINGLE_ISSUER: u32 = 1 << 12;
    const DEFER_TASKRUN: u32 = 1 << 13;
    let mut p = Params {
        flags: R_DISABLED | SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG,
        ..Params::default()
    };
    // SAFETY: io_uring_setup writes into `p`, a correctly sized params
    // struct (120 bytes) that we own; the returned descriptor is closed.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, &mut p as *mut Params) };
    if fd < 0 {
        return false;
    }
    // SAFETY: closing the descriptor just made.
    unsafe { libc::close(fd as i32) };
    true
}

fn rt(workers: usize) -> Runtime {
    let rt = Runtime::builder()
        .workers(workers)
        .driver(IoDriver::Uring)
        .build()
        .unwrap();
    let expected = if kernel_has_uring() {
        IoDriver::Uring
    } else {
        eprintln!("note: this kernel has no usable io_uring; checking the epoll fallback");
        IoDriver::Epoll
    };
    assert_eq!(rt.io_driver(), expected);
    rt
}

/// A byte of the test stream at `i` (not periodic over short spans).
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// A small xorshift generator, seeded per use.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Writes `len` test bytes (from `offset`) to `w` and checks that `r`
/// reads the same back.
fn check_echo(mut w: &TcpStream, mut r: &TcpStream, len: usize, offset: usize) {
    let msg: Vec<u8> = (0..len).map(|i| byte(i + offset)).collect();
    w.write_all(&msg).unwrap();
    let mut back = vec![0u8; len];
    r.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// A runtime with one worker and `driver` (for tests that run on both).
fn one_worker(driver: IoDriver) -> Runtime {
    Runtime::builder()
        .workers(1)
        .driver(driver)
        .build()
        .unwrap()
}

/// A connected pair of TCP streams on loopback (client, server), made in
/// the calling coroutine.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn listener(rt: &Runtime) -> (TcpListener, SocketAddr) {
    let l = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[test]
fn echo_through_the_ring() {
    let rt = rt(2);
    let (l, addr) = listener(&rt);
    rt.spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            s.set_nodelay(true).unwrap();
            coio::spawn(move || {
                let mut buf = [0u8; 1000];
                loop {
                    match s.read(&mut buf).unwrap() {
                        0 => return,
                        n => s.write_all(&buf[..n]).unwrap(),
                    }
                }
            });
        }
    });
    let clients: Vec<_> = (0..16)
        .map(|c| {
            rt.spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut rng = Rng(c + 1);
                for round in 0..200 {
                    check_echo(&s, &s, 1 + rng.below(3000) as usize, round);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn unix_streams_read_through_the_ring() {
    let rt = rt(1);
    rt.block_on(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let writer = coio::spawn(move || {
            for i in 0..1000usize {
                a.write_all(&i.to_le_bytes()).unwrap();
            }
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), 8000);
        for (i, chunk) in got.chunks(8).enumerate() {
            assert_eq!(chunk, i.to_le_bytes());
        }
    });
}

/// A busy worker's poll hands over every completion that has arrived, not
/// just the kernel's first batch: from Linux 6.13 an enter runs at most 20
/// of a ring's deferred completions, and the rest would wait for a later
/// poll, a whole round of the run queue later (the ring's worse p99 with
/// hundreds of connections).
#[test]
fn a_busy_poll_hands_over_every_arrived_completion() {
    const N: usize = 200;
    let rt = rt(1);
    if rt.io_driver() != IoDriver::Uring {
        return;
    }
    rt.block_on(|| {
        let received = Arc::new(AtomicUsize::new(0));
        let writers: Vec<UnixStream> = (0..N)
            .map(|_| {
                let (a, mut b) = UnixStream::pair().unwrap();
                let received = received.clone();
                coio::spawn(move || {
                    let mut buf = [0u8; 1];
                    assert_eq!(b.read(&mut buf).unwrap(), 1);
                    received.fetch_add(1, SeqCst);
                });
                a
            })
            .collect();
        // Every reader starts and parks, and its receive reaches the
        // kernel at one of the polls these turns make.
        for _ in 0..2000 {
            coio::yield_now();
        }
        assert_eq!(received.load(SeqCst), 0);
        // All the data arrives while the worker does not poll: written by
        // a plain thread that this coroutine waits for, blocking its
        // worker on purpose (writes in a coroutine, tried at once, would
        // yield after the cooperative budget's 128, and poll).
        std::thread::scope(|s| {
            s.spawn(|| {
                for mut w in &writers {
                    w.write_all(&[1]).unwrap();
                }
            });
        });
        let before = coio::metrics().workers[0].io_events;
        let first_poll = loop {
            coio::yield_now();
            let now = coio::metrics().workers[0].io_events;
            if now != before {
                break now - before;
            }
        };
        assert_eq!(
            first_poll, N as u64,
            "the first poll after the data arrived handed over {first_poll} of {N} completions"
        );
        while received.load(SeqCst) < N {
            coio::yield_now();
        }
    });
}

#[test]
fn a_timed_out_read_loses_nothing_and_leaves_the_socket_usable() {
    let rt = rt(1);
    let (l, addr) = listener(&rt);
    rt.block_on(move || {
        let peer = coio::spawn(move || l.accept().unwrap().0);
        let mut s = TcpStream::connect(addr).unwrap();
        let mut peer = peer.join().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let e = s.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(30));
        peer.write_all(b"after").unwrap();
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
    });
}

/// Readers with timeouts far shorter than the writers' pauses, so that
/// reads time out mid-flight again and again (cancelled in the kernel),
/// some racing the data: every byte must arrive, once, in order. Besides
/// their short random pauses the writers stop for 20 ms every 25 kB: a
/// reader that fell behind (a debug build checks every byte, on a loaded
/// machine) catches up then and times out too, so that the count of
/// timeouts does not depend on the machine's speed (it fell to 11 of the
/// 20 asked for with short pauses alone).
#[test]
fn timeouts_mid_flight_account_for_every_byte() {
    const PAIRS: usize = 8;
    const BYTES: usize = 200_000;
    let rt = rt(2);
    let (l, addr) = listener(&rt);
    let timeouts = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..PAIRS)
        .map(|p| {
            let timeouts = timeouts.clone();
            rt.spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_micros(300)))
                    .unwrap();
                let mut rng = Rng(p as u64 + 7);
                let mut got = 0usize;
                let mut buf = vec![0u8; 4096];
                while got < BYTES {
                    let len = 1 + rng.below(4096) as usize;
                    match s.read(&mut buf[..len]) {
                        Ok(0) => panic!("early end of stream at {got}"),
                        Ok(n) => {
                            for (i, b) in buf[..n].iter().enumerate() {
                                assert_eq!(*b, byte(got + i), "byte {} of pair {p}", got + i);
                            }
                            got += n;
                        }
                        Err(e) if e.kind() == ErrorKind::TimedOut => {
                            timeouts.fetch_add(1, Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    // Writers: plain threads with std sockets, in bursts with pauses.
    let writers: Vec<_> = (0..PAIRS)
        .map(|p| {
            let (s, _) = rt.block_on(|| l.accept()).unwrap();
            let fd = std::os::fd::OwnedFd::from(s);
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::from(fd);
                s.set_nonblocking(false).unwrap();
                let mut rng = Rng(p as u64 + 1000);
                let mut sent = 0;
                while sent < BYTES {
                    let len = (1 + rng.below(3000) as usize).min(BYTES - sent);
                    let chunk: Vec<u8> = (sent..sent + len).map(byte).collect();
                    s.write_all(&chunk).unwrap();
                    if (sent + len) / 25_000 > sent / 25_000 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    sent += len;
                    if rng.below(4) == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(1500)));
                    }
                }
                s
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    for w in writers {
        drop(w.join().unwrap());
    }
    // The test means nothing unless reads did time out mid-flight.
    assert!(
        timeouts.load(Relaxed) > 20,
        "only {} timeouts",
        timeouts.load(Relaxed)
    );
}

/// Coroutines cancelled while their reads are in the kernel unwind once
/// the cancellation completed; the data sent afterwards is still in the
/// sockets (no cancelled read consumed it), and new coroutines, which
/// reuse the cancelled ones' stacks, read it intact.
#[test]
fn cancelled_reads_unwind_and_consume_nothing() {
    const N: usize = 64;
    let rt = rt(2);
    let (l, addr) = listener(&rt);
    for round in 0..5 {
        let (tx, rx) = std::sync::mpsc::channel();
        let readers: Vec<_> = (0..N)
            .map(|_| {
                let tx = tx.clone();
                rt.spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    tx.send(s.try_clone().unwrap()).unwrap();
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf);
                    unreachable!("nothing is sent before the cancellation");
                })
            })
            .collect();
        let peers: Vec<_> = (0..N)
            .map(|_| rt.block_on(|| l.accept()).unwrap().0)
            .collect();
        let streams: Vec<TcpStream> = (0..N).map(|_| rx.recv().unwrap()).collect();
        std::thread::sleep(Duration::from_millis(20));
        for r in &readers {
            r.cancel();
        }
        for r in readers {
            assert!(r.join().unwrap_err().is::<coio::Cancelled>());
        }
        // Pair each stream with its peer by the peer's address.
        let checks: Vec<_> = streams
            .into_iter()
            .map(|s| {
                let local = s.local_addr().unwrap();
                let peer = peers
                    .iter()
                    .find(|p| p.peer_addr().unwrap() == local)
                    .unwrap()
                    .try_clone()
                    .unwrap();
                rt.spawn(move || check_echo(&peer, &s, 100, round))
            })
            .collect();
        for c in checks {
            c.join().unwrap();
        }
    }
}

/// A ring that cannot be made (here: more entries than the kernel allows,
/// so io_uring_setup fails with EINVAL) leaves the runtime on epoll,
/// working.
#[test]
fn falls_back_to_epoll_when_the_ring_cannot_be_made() {
    let rt = Runtime::builder()
        .workers(1)
        .driver(IoDriver::Uring)
        .uring_entries(1 << 20)
        .build()
        .unwrap();
    assert_eq!(rt.io_driver(), IoDriver::Epoll);
    let (l, addr) = listener(&rt);
    rt.block_on(move || {
        let peer = coio::spawn(move || {
            let mut s = l.accept().unwrap().0;
            s.write_all(b"epoll").unwrap();
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"epoll");
        peer.join().unwrap();
    });
}

/// Shutdown with coroutines parked in ring reads: they are cancelled and
/// the runtime's drop returns.
#[test]
fn shutdown_with_reads_in_flight() {
    let rt = rt(2);
    let (l, addr) = listener(&rt);
    let mut peers = Vec::new();
    for _ in 0..32 {
        rt.spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 8];
            let _ = s.read(&mut buf);
        });
        peers.push(rt.block_on(|| l.accept()).unwrap().0);
    }
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    drop(peers);
}

/// The descriptors registered with any epoll instance of this process, as
/// the kernel lists them (`/proc/self/fdinfo`, `tfd:` lines): the
/// readiness path registers a socket the first time it waits; the ring's
/// operations never do.
fn epoll_registered() -> std::collections::HashSet<i32> {
    let mut fds = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if link.to_string_lossy() != "anon_inode:[eventpoll]" {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info) else {
            continue;
        };
        for line in info.lines() {
            if let Some(rest) = line.strip_prefix("tfd:") {
                fds.insert(rest.split_whitespace().next().unwrap().parse().unwrap());
            }
        }
    }
    fds
}

/// Every socket operation of the ring (accept, connect, reads and writes,
/// vectored ones, UDP's sends and receives with and without addresses,
/// peeks) gives std's results; and none of these sockets was ever
/// registered with epoll, which shows that the operations went through
/// the ring. The same on an epoll runtime registers them (so the check can
/// fail).
#[test]
fn every_socket_operation_goes_through_the_ring() {
    use std::io::{IoSlice, IoSliceMut};
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = one_worker(driver);
        let ring = rt.io_driver() == IoDriver::Uring;
        let fds = rt.block_on(|| {
            use std::os::fd::AsRawFd;
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // The accept waits in the kernel before the connect comes.
            let server = coio::spawn(move || {
                let (s, peer) = l.accept().unwrap();
                assert_eq!(s.peer_addr().unwrap(), peer);
                let mut a = [0u8; 3];
                let mut b = [0u8; 4];
                let n = (&s)
                    .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
                    .unwrap();
                assert_eq!((n, &a, &b), (7, b"abc", b"defg"));
                (&s).write_all(b"back").unwrap();
                (peer, s, l)
            });
            coio::sleep(Duration::from_millis(10));
            let c = TcpStream::connect(addr).unwrap();
            let n = (&c)
                .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
                .unwrap();
            assert_eq!(n, 7);
            let mut back = [0u8; 4];
            (&c).read_exact(&mut back).unwrap();
            assert_eq!(&back, b"back");
            let (peer, s, l) = server.join().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());

            let u1 = coio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let u2 = coio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a1, a2) = (u1.local_addr().unwrap(), u2.local_addr().unwrap());
            let receiver = coio::spawn(move || {
                let mut buf = [0u8; 16];
                // Waits in the kernel until the datagram comes.
                let (n, from) = u2.peek_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b"to u2"[..], a1));
                let mut small = [0u8; 2];
                assert_eq!(u2.peek(&mut small).unwrap(), 2);
                assert_eq!(&small, b"to");
                let (n, from) = u2.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b"to u2"[..], a1));
                assert_eq!(u2.send_to(b"to u1", a1).unwrap(), 5);
                u2
            });
            coio::sleep(Duration::from_millis(10));
            assert_eq!(u1.send_to(b"to u2", a2).unwrap(), 5);
            let u2 = receiver.join().unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = u1.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"to u1"[..], a2));
            u1.connect(a2).unwrap();
            u2.connect(a1).unwrap();
            assert_eq!(u1.send(b"connected").unwrap(), 9);
            let n = u2.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"connected");
            let fds: Vec<i32> = vec![
                l.as_raw_fd(),
                s.as_raw_fd(),
                c.as_raw_fd(),
                u1.as_raw_fd(),
                u2.as_raw_fd(),
            ];
            let registered = epoll_registered();
            let on_epoll: Vec<i32> = fds.into_iter().filter(|f| registered.contains(f)).collect();
            drop((l, s, c, u1, u2));
            on_epoll
        });
        if ring {
            assert_eq!(
                fds,
                Vec::<i32>::new(),
                "sockets registered with epoll on a ring"
            );
        } else {
            // The sockets that waited on the readiness path (the
            // listener's accept, the receiving UDP socket's peek, ...).
            assert!(!fds.is_empty(), "no socket registered with epoll");
        }
    }
}

/// A listener whose accept queue is full (backlog 0, one connection
/// queued, never accepted): the kernel drops further SYNs, so a connect to
/// it cannot finish.
fn full_listener() -> (std::os::fd::OwnedFd, SocketAddr, Vec<std::net::TcpStream>) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on a socket we own; sizes are the types'.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd.as_raw_fd(), (&raw const sin).cast(), len), 0);
        assert_eq!(libc::listen(fd.as_raw_fd(), 0), 0);
        let mut len = len;
        assert_eq!(
            libc::getsockname(fd.as_raw_fd(), (&raw mut sin).cast(), &mut len),
            0
        );
        (
            fd,
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, u16::from_be(sin.sin_port))),
        )
    };
    let mut queued = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => queued.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut => return (fd, addr, queued),
            Err(e) => panic!("connect to the full listener: {e}"),
        }
    }
    panic!("the listener's accept queue never filled");
}

/// Connects through the ring: a refused connection is `ConnectionRefused`;
/// a connect that cannot finish times out with `TimedOut` after its
/// timeout, and the runtime goes on.
#[test]
fn connect_errors_and_timeouts() {
    let rt = rt(1);
    let (_listener, full, _queued) = full_listener();
    rt.block_on(move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        for _ in 0..5 {
            let t = Instant::now();
            let e = TcpStream::connect_timeout(&full, Duration::from_millis(50)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            assert!(t.elapsed() >= Duration::from_millis(50));
            assert!(t.elapsed() < Duration::from_secs(2));
        }
        // And a normal connect still works.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(l.accept().unwrap().1, c.local_addr().unwrap());
    });
}

/// A UDP receive that times out in the kernel leaves the socket usable:
/// the next datagram arrives whole.
#[test]
fn a_timed_out_datagram_receive_loses_nothing() {
    let rt = rt(1);
    rt.block_on(|| {
        let a = coio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = coio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 32];
        for round in 0..20u8 {
            let t = Instant::now();
            let e = b.recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert!(t.elapsed() >= Duration::from_millis(20));
            a.send_to(&[round; 20], b.local_addr().unwrap()).unwrap();
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[round; 20][..], a.local_addr().unwrap())
            );
        }
    });
}

/// An accept cancelled while it waits in the kernel takes no connection:
/// the next accept gets the one that comes afterwards.
#[test]
fn a_cancelled_accept_takes_no_connection() {
    let rt = rt(1);
    let (l, addr) = listener(&rt);
    let l = Arc::new(l);
    for _ in 0..20 {
        let waiting = {
            let l = l.clone();
            rt.spawn(move || {
                let _ = l.accept();
                unreachable!("nothing connects before the cancellation");
            })
        };
        std::thread::sleep(Duration::from_millis(5));
        waiting.cancel();
        assert!(waiting.join().unwrap_err().is::<coio::Cancelled>());
        let l = l.clone();
        rt.block_on(move || {
            let server = coio::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"hi").unwrap();
            });
            let mut c = TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 2];
            c.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            server.join().unwrap();
        });
    }
}

/// A write that must wait for room (the peer reads nothing for a while)
/// waits in the ring: it times out there with `TimedOut` (cancelled in the
/// kernel), sends nothing twice and loses nothing, and the socket is never
/// registered with epoll.
#[test]
fn writes_that_wait_time_out_in_the_ring_and_lose_nothing() {
    const LEN: usize = 8 << 20;
    let rt = rt(1);
    let ring = rt.io_driver() == IoDriver::Uring;
    let (l, addr) = listener(&rt);
    let (timeouts, registered) = rt.block_on(move || {
        use std::os::fd::AsRawFd;
        let reader = coio::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            coio::sleep(Duration::from_millis(300));
            let mut got = 0;
            let mut buf = vec![0u8; 1 << 16];
            while got < LEN {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the stream ended after {got} bytes");
                for (k, &b) in buf[..n].iter().enumerate() {
                    assert_eq!(b, byte(got + k), "byte {}", got + k);
                }
                got += n;
            }
        });
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let data: Vec<u8> = (0..LEN).map(byte).collect();
        let (mut sent, mut timeouts) = (0, 0);
        while sent < LEN {
            match s.write(&data[sent..(sent + (1 << 16)).min(LEN)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::TimedOut => timeouts += 1,
                Err(e) => panic!("write failed: {e}"),
            }
        }
        let registered = epoll_registered().contains(&s.as_raw_fd());
        reader.join().unwrap();
        (timeouts, registered)
    });
    assert!(timeouts > 0, "no write waited long enough to time out");
    if ring {
        assert!(!registered, "the writer waited through epoll");
    }
}

/// `read_vectored` with no room (no slices, or only empty ones) returns 0
/// at once, as std's does (`readv` of 0 bytes), on both drivers: before
/// the fix the ring waited in a `recvmsg` and epoll for readiness, so it
/// waited for the peer. Also after a read timed out (the socket then
/// counts as not readable).
#[test]
fn an_empty_read_vectored_returns_at_once() {
    use std::io::IoSliceMut;
    fn empty_reads(mut s: impl Read) {
        let t = Instant::now();
        assert_eq!(s.read_vectored(&mut []).unwrap(), 0);
        let mut none = [0u8; 0];
        let mut also_none = [0u8; 0];
        let mut two = [IoSliceMut::new(&mut none), IoSliceMut::new(&mut also_none)];
        assert_eq!(s.read_vectored(&mut two).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = one_worker(driver);
        rt.block_on(|| {
            let (c, s) = tcp_pair();
            // A wait for the peer fails the test instead of hanging it.
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            empty_reads(&s);
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            let mut buf = [0u8; 8];
            let e = (&s).read(&mut buf).unwrap_err();
            assert!(matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            ));
            empty_reads(&s);
            // The stream still works.
            (&c).write_all(b"hi").unwrap();
            (&s).read_exact(&mut buf[..2]).unwrap();
            assert_eq!(&buf[..2], b"hi");

            let (u1, u2) = UnixStream::pair().unwrap();
            u1.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            empty_reads(&u1);
            (&u2).write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            (&u1).read_exact(&mut one).unwrap();
            assert_eq!(&one, b"x");
        });
    }
}

/// Vectored reads and writes of more slices than the kernel takes at once
/// (`IOV_MAX`, 1024) transfer the first 1024, as std's do, on both
/// drivers and on TCP and Unix streams; and the short transfer does not
/// pass for a drained socket or a full buffer: the next read gets the
/// rest at once, the next write goes out at once. (Before: `EMSGSIZE`
/// from the writes, and on epoll the next read or write waited for the
/// peer.)
#[test]
fn vectored_io_past_iov_max_transfers_the_first_1024_slices() {
    use std::io::{IoSlice, IoSliceMut};
    const SLICES: usize = 2000;
    fn check(mut w: impl Write, mut r: impl Read) {
        let data: Vec<u8> = (0..SLICES).map(byte).collect();
        let out: Vec<IoSlice<'_>> = data.chunks(1).map(IoSlice::new).collect();
        assert_eq!(w.write_vectored(&out).unwrap(), 1024);
        let t = Instant::now();
        w.write_all(&data[1024..]).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let mut back = vec![0u8; SLICES];
        let mut ins: Vec<IoSliceMut<'_>> = back.chunks_mut(1).map(IoSliceMut::new).collect();
        // All 2000 bytes have been sent: the read fills its 1024 slices.
        let mut got = 0;
        while got < 1024 {
            got += r.read_vectored(&mut ins[got..]).unwrap();
        }
        assert_eq!(got, 1024);
        drop(ins);
        let t = Instant::now();
        r.read_exact(&mut back[1024..]).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(back, data);
    }
    // std's own answer, for the record of what is mirrored.
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let bytes = [0u8; SLICES];
    let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
    assert_eq!((&a).write_vectored(&slices).unwrap(), 1024);
    drop((a, b));
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = one_worker(driver);
        rt.block_on(|| {
            let (c, s) = tcp_pair();
            // A wait for the peer fails the test instead of hanging it.
            for t in [&c, &s] {
                t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                t.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            }
            check(&c, &s);
            let (u1, u2) = UnixStream::pair().unwrap();
            for u in [&u1, &u2] {
                u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                u.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            }
            check(&u1, &u2);
        });
    }
}

/// After a receive through the ring that filled its buffer, the next ones
/// are made at once while data is queued, without a trip through the ring
/// each (no completion counted in the worker's I/O events): a reader on a
/// worker busy with other coroutines waited for the worker's next look at
/// the ring for every buffer, and a bulk read ran 60 times slower than on
/// epoll.
#[test]
fn receives_after_a_full_one_are_made_at_once() {
    if !kernel_has_uring() {
        return;
    }
    let completions = rt(1).block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (queued_tx, queued_rx) = coio::chan::bounded::<()>(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&[7u8; 64 * 1024]).unwrap();
            queued_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        let (mut c, _) = l.accept().unwrap();
        queued_rx.recv().unwrap();
        // All 64 KiB are queued (loopback): the first read goes through
        // the ring and fills its buffer.
        let mut buf = vec![0u8; 8 * 1024];
        c.read_exact(&mut buf).unwrap();
        let before = coio::metrics().workers[0].io_events;
        for _ in 0..7 {
            c.read_exact(&mut buf).unwrap();
        }
        let after = coio::metrics().workers[0].io_events;
        done_tx.send(()).unwrap();
        coio::blocking(move || peer.join().unwrap());
        after - before
    });
    assert_eq!(completions, 0);
}

/// A runtime asked for io_uring that runs out of file descriptors fails
/// with the descriptor error and what to do, as an epoll one does: it does
/// not say "io_uring is not available" and fall back (here epoll would have
/// fitted, so the fallback hid the limit; from a review).
#[test]
fn out_of_descriptors_is_an_error_not_a_fallback() {
    if !kernel_has_uring() {
        eprintln!("note: this kernel has no usable io_uring; nothing to check");
        return;
    }
    if common::child_role().as_deref() != Some("emfile") {
        let out = common::run_in_child(
            "out_of_descriptors_is_an_error_not_a_fallback",
            "emfile",
            &[],
        );
        common::assert_child_ok(&out);
        return;
    }
    // Every descriptor taken, then 6 given back: enough for two epoll
    // workers (3 each), not for two io_uring ones (4 each).
    let mut dups = common::take_all_fds();
    dups.truncate(dups.len() - 6);
    let built = Runtime::builder()
        .workers(2)
        .driver(IoDriver::Uring)
        .stall_warning(None)
        .build();
    drop(dups);
    let Err(e) = built else {
        panic!("a runtime built without the descriptors its rings need");
    };
    assert_eq!(
        e.raw_os_error(),
        None,
        "a bare error, without coio's words: {e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("io_uring") && text.contains("ulimit -n"),
        "{text}"
    );
}
