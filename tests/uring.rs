//! The io_uring driver (`IoDriver::Uring`): stream reads through each
//! worker's ring, with real sockets on loopback. Timeouts and
//! cancellations mid-flight, with every byte accounted for; the fallback
//! to epoll where a ring cannot be made.
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

/// Whether this kernel lets a process set up an io_uring with the flags
/// coio uses (SINGLE_ISSUER | DEFER_TASKRUN | R_DISABLED), asked directly.
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
    const R_DISABLED: u32 = 1 << 6;
    const SINGLE_ISSUER: u32 = 1 << 12;
    const DEFER_TASKRUN: u32 = 1 << 13;
    let mut p = Params {
        flags: R_DISABLED | SINGLE_ISSUER | DEFER_TASKRUN,
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
/// some racing the data: every byte must arrive, once, in order.
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
