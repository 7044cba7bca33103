//! TCP through the netpoller: coroutines and plain threads, timeouts,
//! cancellation, concurrent read and write of one socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use coio::net::{TcpListener, TcpStream};
use coio::{Runtime, chan};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// An echo server in the runtime; returns its address.
fn echo_server(rt: &Runtime) -> SocketAddr {
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            coio::spawn(move || {
                let mut buf = [0; 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn echo_between_coroutines() {
    for workers in [1, 2] {
        let rt = rt(workers);
        let addr = echo_server(&rt);
        let total = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..50)
            .map(|i| {
                let total = total.clone();
                rt.spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_nodelay(true).unwrap();
                    for round in 0..100u32 {
                        let msg = format!("client {i} round {round}");
                        s.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0; msg.len()];
                        s.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                        total.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(total.load(Relaxed), 5000);
    }
}

#[test]
fn plain_threads_use_the_same_types() {
    // A server in a runtime, a client on a plain thread, and a server on a
    // plain thread with a coroutine client.
    let rt = rt(1);
    let addr = echo_server(&rt);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"from a thread").unwrap();
    let mut back = [0; 13];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"from a thread");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    rt.block_on(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    });
    server.join().unwrap();
}

#[test]
fn read_timeout_leaves_the_stream_usable() {
    let rt = rt(1);
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = chan::bounded::<()>(0);
    rt.spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        go_rx.recv().unwrap();
        s.write_all(b"late").unwrap();
        let mut buf = [0; 1];
        let _ = s.read(&mut buf);
    });
    rt.block_on(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let start = Instant::now();
        let mut buf = [0; 4];
        let e = s.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        // Usable afterwards.
        go_tx.send(()).unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
        // Long timeouts read back as std's do: as given (to the second
        // past 292 years), and none past what the kernel keeps.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let year = Duration::from_secs(365 * 86_400);
        for t in [year * 1_000, year * 1_000_000, Duration::MAX] {
            s.set_read_timeout(Some(t)).unwrap();
            s.set_write_timeout(Some(t)).unwrap();
            std_s.set_read_timeout(Some(t)).unwrap();
            assert_eq!(s.read_timeout().unwrap(), std_s.read_timeout().unwrap());
            assert_eq!(s.write_timeout().unwrap(), s.read_timeout().unwrap());
        }
        assert_eq!(s.read_timeout().unwrap(), None);
    });
    // And on a plain thread.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    let (_s, _) = listener.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    let mut buf = [0; 1];
    assert_eq!(c.read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
}

#[test]
fn one_coroutine_reads_while_another_writes() {
    // The reader waits on the socket's read queue while the writer fills
    // the send buffer and waits on its write queue: both must progress.
    let rt = rt(1);
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    const N: usize = 8 << 20;
    // The peer echoes everything.
    rt.spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut buf = vec![0; 65536];
        loop {
            match (&s).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => (&s).write_all(&buf[..n]).unwrap(),
            }
        }
    });
    rt.block_on(move || {
        let s = Arc::new(TcpStream::connect(addr).unwrap());
        let w = s.clone();
        let writer = coio::spawn(move || {
            let chunk: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
            let mut sent = 0;
            while sent < N {
                (&*w).write_all(&chunk).unwrap();
                sent += chunk.len();
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = 0usize;
        let mut buf = vec![0; 65536];
        loop {
            let n = (&*s).read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((got + k) % 65536) as u8);
            }
            got += n;
        }
        writer.join().unwrap();
        assert_eq!(got, N);
    });
}

#[test]
fn cancel_wakes_a_coroutine_blocked_in_read() {
    let rt = rt(1);
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = rt.spawn(move || listener.accept().map(|(s, _)| s));
    let reader = rt.spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut buf = [0; 1];
        let _ = s.read(&mut buf);
        unreachable!("the read cannot complete: the peer never writes");
    });
    let _peer = acceptor.join().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    reader.cancel();
    let e = reader.join().unwrap_err();
    assert!(e.is::<coio::Cancelled>());
    // The blocked accept is cancelled as well when the runtime drops.
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    rt.spawn(move || listener.accept().map(|_| ()));
    drop(rt);
}

#[test]
fn connect_errors_and_timeouts() {
    let rt = rt(1);
    rt.block_on(|| {
        // Nobody listens on a port we just freed.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        // An address that does not answer (TEST-NET-1): times out.
        let far: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let start = Instant::now();
        match TcpStream::connect_timeout(&far, Duration::from_millis(100)) {
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                assert!(start.elapsed() >= Duration::from_millis(100));
            }
            // No route at all here: also an error, never a hang.
            Err(_) => {}
            Ok(_) => panic!("connected to TEST-NET-1"),
        }
        assert_eq!(
            TcpStream::connect_timeout(&addr, Duration::ZERO)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
        // Names resolve.
        let l = TcpListener::bind("localhost:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let s = TcpStream::connect(("localhost", port)).unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
    });
}

/// Sockets opened elsewhere (systemd's socket activation, another
/// library) are adopted through `FromRawFd` and `From<OwnedFd>`, and work
/// as coio's own: non-blocking, parking only the coroutine.
#[test]
fn sockets_adopt_descriptors() {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    rt(1).block_on(|| {
        // A listener handed over as an OwnedFd (as from LISTEN_FDS).
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from(OwnedFd::from(std_listener));
        let server = coio::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        // A stream handed over as a raw descriptor.
        let std_stream = std::net::TcpStream::connect(addr).unwrap();
        // SAFETY: a connected socket we own, given up by into_raw_fd.
        let mut stream = unsafe { TcpStream::from_raw_fd(std_stream.into_raw_fd()) };
        stream.write_all(b"hello").unwrap();
        let mut back = [0; 5];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        server.join().unwrap();

        // Unix stream pair and datagrams, and UDP.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = coio::net::unix::UnixStream::from(OwnedFd::from(a));
        // SAFETY: as above.
        let mut b = unsafe { coio::net::unix::UnixStream::from_raw_fd(b.into_raw_fd()) };
        // A read that waits parks the coroutine (the other runs).
        let reader = coio::spawn(move || {
            let mut buf = [0; 2];
            b.read_exact(&mut buf).unwrap();
            buf
        });
        coio::sleep(Duration::from_millis(5));
        a.write_all(b"ok").unwrap();
        assert_eq!(&reader.join().unwrap(), b"ok");
        let (d1, d2) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let d1 = coio::net::unix::UnixDatagram::from(OwnedFd::from(d1));
        let d2 = coio::net::unix::UnixDatagram::from(OwnedFd::from(d2));
        d1.send(b"dgram").unwrap();
        let mut buf = [0; 8];
        assert_eq!(d2.recv(&mut buf).unwrap(), 5);
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let u = coio::net::UdpSocket::from(OwnedFd::from(u));
        assert!(u.local_addr().is_ok());
        let l = std::os::unix::net::UnixListener::bind(
            std::env::temp_dir().join(format!("coio-adopt-{}.sock", std::process::id())),
        )
        .unwrap();
        let path = l.local_addr().unwrap().as_pathname().unwrap().to_owned();
        let l = coio::net::unix::UnixListener::from(OwnedFd::from(l));
        assert!(l.local_addr().is_ok());
        drop(l);
        let _ = std::fs::remove_file(path);
    });
}

/// A coroutine whose reads never wait (a fast sender, read a byte at a
/// time) yields every so often all the same (the cooperative budget), so
/// that the other coroutines and the timers of its worker go on: here a
/// sleeper on the same, only worker keeps waking every millisecond or so.
/// Without the budget it woke 0 to 2 times in 3 s.
#[test]
fn a_reader_that_never_waits_lets_its_worker_s_other_coroutines_run() {
    // On epoll: through the ring a read always waits for its completion.
    let rt = Runtime::builder()
        .workers(1)
        .driver(coio::IoDriver::Epoll)
        .build()
        .unwrap();
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    // A plain thread keeps the socket full.
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let chunk = [7u8; 65536];
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (ticks, coop_yields) = rt.block_on(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Let the sender fill the socket's buffers first.
        coio::sleep(Duration::from_millis(50));
        let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = ticking.clone();
        let sleeper = coio::spawn(move || {
            let mut n = 0u32;
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                coio::sleep(Duration::from_millis(1));
                n += 1;
            }
            n
        });
        coio::yield_now(); // the sleeper is asleep now
        let before = coio::metrics().workers[0].coop_yields;
        let start = Instant::now();
        let mut byte = [0u8; 1];
        while start.elapsed() < Duration::from_millis(500) {
            s.read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], 7);
        }
        ticking.store(false, std::sync::atomic::Ordering::Relaxed);
        let coop_yields = coio::metrics().workers[0].coop_yields - before;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(s);
        (sleeper.join().unwrap(), coop_yields)
    });
    writer.join().unwrap();
    // About 500 expected; a generous bound for a loaded machine.
    assert!(ticks >= 50, "the sleeper woke {ticks} times in 500 ms");
    assert!(coop_yields > 0);
}

/// Urgent data (TCP's `MSG_OOB`, as telnet and FTP send it): a read stops
/// at the urgent mark with the rest of the stream queued, and that short
/// read must not pass for a drained socket, or the next read waits for an
/// event that never comes. std reads the rest at once; so must coio.
#[test]
fn a_read_after_urgent_data_gets_the_rest_of_the_stream() {
    let rt = rt(1);
    rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, went) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.write_all(b"x").unwrap();
            went.recv().unwrap();
            s.write_all(b"abc").unwrap();
            // SAFETY: send(2) of one byte from a live buffer on an open
            // socket.
            let n = unsafe { libc::send(s.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
            assert_eq!(n, 1);
            s.write_all(b"defg").unwrap();
            s
        });
        let (mut s, _) = listener.accept().unwrap();
        // A wait for an event fails the test instead of hanging it.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        // This read registers the socket (it waits for the "x").
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        // Then all the rest arrives before the next read.
        go.send(()).unwrap();
        coio::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        while got.len() < 7 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        // The urgent byte is out of band: not in the stream.
        assert_eq!(got, b"abcdefg");
        drop(peer.join().unwrap());
    });
}

/// The budget's yield fires the worker's due timers first, and a waker a
/// timer runs may do I/O itself: past the budget (it must not yield from
/// inside the timers, which would stay borrowed for the next coroutine: a
/// panic, found by a review), and even I/O that waits (the waker is not
/// the coroutine: it waits as a plain thread would, blocking the worker,
/// instead of switching away). Here the waker's writes fill a Unix
/// socket's buffer, which a plain thread drains 100 ms later.
#[test]
fn i_o_in_a_waker_run_by_the_worker_s_timers_is_safe() {
    use coio::net::unix::UnixStream;
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    const N: usize = 2000;
    /// Writes N bytes, one at a time, when woken.
    struct Chatty(UnixStream);
    impl Wake for Chatty {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            for _ in 0..N {
                (&self.0).write_all(&[1]).unwrap();
            }
        }
    }
    /// A plain thread that reads N bytes of `x` after a pause.
    fn drain(mut s: UnixStream, x: u8) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut got = vec![0u8; N];
            s.read_exact(&mut got).unwrap();
            assert!(got.iter().all(|&b| b == x));
        })
    }
    let rt = Runtime::builder()
        .workers(1)
        .driver(coio::IoDriver::Epoll)
        .build()
        .unwrap();
    let readers = rt.block_on(|| {
        let (a, a_peer) = UnixStream::pair().unwrap();
        let (b, b_peer) = UnixStream::pair().unwrap();
        let readers = [drain(a_peer, 1), drain(b_peer, 2)];
        let waker = Waker::from(Arc::new(Chatty(a)));
        // Arms a timer on this worker with that waker (again if it was
        // due already at its first poll, as under valgrind, where first
        // runs of code are slow).
        let mut cx = Context::from_waker(&waker);
        let _sleep = loop {
            let mut sleep = Box::pin(coio::future::sleep(Duration::from_millis(5)));
            if std::future::Future::poll(sleep.as_mut(), &mut cx).is_pending() {
                break sleep;
            }
        };
        // The timer is due by the time the budget runs out (blocking the
        // worker's thread on purpose: no switch, so the timer waits).
        std::thread::sleep(Duration::from_millis(10));
        for _ in 0..N {
            (&b).write_all(&[2]).unwrap();
        }
        readers
    });
    for r in readers {
        r.join().unwrap();
    }
}

/// A std socket's read and write timeouts carry over into coio's
/// `from_std`, as they would stay with the socket in std: a port from std
/// that sets them first keeps them. (They were dropped: a read then waited
/// for ever.)
#[test]
fn from_std_keeps_the_timeouts() {
    use std::os::unix::net as unix;
    let (r, w) = (
        Some(Duration::from_millis(30)),
        Some(Duration::from_secs(7)),
    );
    rt(1).block_on(move || {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(r).unwrap();
        udp.set_write_timeout(w).unwrap();
        // (What std reports: the kernel rounds to its clock's ticks.)
        let had = (udp.read_timeout().unwrap(), udp.write_timeout().unwrap());
        assert!(had.0.is_some() && had.1.is_some());
        let udp = coio::net::UdpSocket::from_std(udp).unwrap();
        assert_eq!(
            (udp.read_timeout().unwrap(), udp.write_timeout().unwrap()),
            had
        );
        let start = Instant::now();
        let e = udp.recv(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(30));

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        tcp.set_read_timeout(r).unwrap();
        tcp.set_write_timeout(w).unwrap();
        let had = (tcp.read_timeout().unwrap(), tcp.write_timeout().unwrap());
        let mut tcp = coio::net::TcpStream::from_std(tcp).unwrap();
        assert_eq!(
            (tcp.read_timeout().unwrap(), tcp.write_timeout().unwrap()),
            had
        );
        let e = tcp.read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);

        let (a, _b) = unix::UnixStream::pair().unwrap();
        a.set_read_timeout(r).unwrap();
        a.set_write_timeout(w).unwrap();
        let had = (a.read_timeout().unwrap(), a.write_timeout().unwrap());
        let a = coio::net::unix::UnixStream::from_std(a).unwrap();
        assert_eq!((a.read_timeout().unwrap(), a.write_timeout().unwrap()), had);

        let (a, _b) = unix::UnixDatagram::pair().unwrap();
        a.set_read_timeout(r).unwrap();
        let had = a.read_timeout().unwrap();
        let a = coio::net::unix::UnixDatagram::from_std(a).unwrap();
        assert_eq!(
            (a.read_timeout().unwrap(), a.write_timeout().unwrap()),
            (had, None)
        );
        let e = a.recv(&mut [0; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        drop(l);
    });
}

/// A write of nothing returns `Ok(0)` at once, as std's does, even on a
/// socket whose send buffer is full (it used to wait for room, until its
/// timeout), plain and vectored.
#[test]
fn an_empty_write_to_a_full_socket_returns_at_once() {
    let (plain, vectored) = rt(1).block_on(|| {
        let (mut c, _s) = common::full_socket();
        let plain = c.write(&[]).map_err(|e| e.kind());
        let vectored = c
            .write_vectored(&[std::io::IoSlice::new(&[]), std::io::IoSlice::new(&[])])
            .map_err(|e| e.kind());
        (plain, vectored)
    });
    assert_eq!(plain, Ok(0));
    assert_eq!(vectored, Ok(0));
}

/// A port of `use std::net::{..}` and `use std::sync::{..}` compiles with
/// the paths changed alone, and a socket can be used inside
/// `catch_unwind` (std's sockets are unwind-safe).
#[test]
fn std_imports_port_by_path_and_sockets_are_unwind_safe() {
    use coio::net::{
        IpAddr, Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream,
        ToSocketAddrs, UdpSocket,
    };
    use coio::sync::atomic::{AtomicUsize, Ordering};
    use coio::sync::{Arc, Mutex};
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    unwind_safe::<TcpStream>();
    unwind_safe::<TcpListener>();
    unwind_safe::<UdpSocket>();
    unwind_safe::<coio::net::unix::UnixStream>();
    unwind_safe::<coio::net::unix::UnixListener>();
    unwind_safe::<coio::net::unix::UnixDatagram>();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
    let ip: IpAddr = Ipv4Addr::LOCALHOST.into();
    let at = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    assert_eq!(at.ip(), ip);
    coio::run(move || {
        let l = TcpListener::bind(at).unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr.to_socket_addrs().unwrap().next().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        // (coio's `Mutex` is not unwind-safe: it does not poison.)
        let r = std::panic::catch_unwind(|| {
            hits.fetch_add(1, Ordering::Relaxed);
            s.peer_addr().unwrap()
        });
        seen.lock().push(r.unwrap());
        assert_eq!(seen.lock()[0], peer);
        c.shutdown(Shutdown::Both).unwrap();
        assert_eq!(hits.load(Ordering::Relaxed), 1);
    });
}

/// A socket leaving coio stays non-blocking (documented: other handles
/// may share it); once set blocking, a child process can write a large
/// answer to it as its stdout (it failed with `EAGAIN` as it was).
#[test]
fn a_socket_set_blocking_serves_a_child_process() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    const LEN: usize = 4 << 20;
    coio::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let reader = coio::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            // Late, so that the child fills the socket's buffers first.
            coio::sleep(Duration::from_millis(100));
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            all.len()
        });
        let (s, _) = l.accept().unwrap();
        let s = s.into_std();
        // SAFETY: F_GETFL on an open descriptor.
        let flags = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(
            flags & libc::O_NONBLOCK,
            0,
            "documented: still non-blocking"
        );
        s.set_nonblocking(false).unwrap();
        let status = coio::blocking(move || {
            Command::new("head")
                .args(["-c", &LEN.to_string(), "/dev/zero"])
                .stdout(Stdio::from(OwnedFd::from(s)))
                .status()
        })
        .unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(reader.join().unwrap(), LEN);
    });
}
