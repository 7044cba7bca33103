//! Unix domain sockets through the netpoller: streams and datagrams, from
//! coroutines and plain threads, waits woken by later writes, timeouts,
//! the non-blocking mode, cancellation, connect errors and a full backlog.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coio::net::unix::{UnixDatagram, UnixListener, UnixStream};
use coio::{Runtime, chan};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// A unique socket path in the temp directory, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Relaxed);
        let p = std::env::temp_dir().join(format!("coio-{}-{name}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An echo server on `listener`, in the runtime.
fn echo_server(rt: &Runtime, listener: UnixListener) {
    rt.spawn(move || {
        for s in &listener {
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
}

#[test]
fn many_connections_echo() {
    for workers in [1, 2] {
        let rt = rt(workers);
        let path = Arc::new(TempPath::new("echo"));
        let listener = UnixListener::bind(&*path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        echo_server(&rt, listener);
        let total = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..100)
            .map(|i| {
                let total = total.clone();
                let path = path.clone();
                rt.spawn(move || {
                    let mut s = UnixStream::connect(&*path).unwrap();
                    assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(path.0.as_path()));
                    assert!(s.local_addr().unwrap().is_unnamed());
                    for round in 0..20u32 {
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
        assert_eq!(total.load(Relaxed), 2000);
    }
}

#[test]
fn plain_threads_use_the_same_types() {
    // A server in a runtime, a client on a plain thread.
    let rt = rt(1);
    let path = TempPath::new("threads");
    echo_server(&rt, UnixListener::bind(&path).unwrap());
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"from a thread").unwrap();
    let mut back = [0; 13];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"from a thread");

    // A server on a plain thread, a coroutine client.
    let path = TempPath::new("threads2");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, addr) = listener.accept().unwrap();
        assert!(addr.is_unnamed());
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    rt.block_on(|| {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    });
    server.join().unwrap();

    // Datagrams between threads.
    let (a, b) = UnixDatagram::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0; 4];
        let n = b.recv(&mut buf).unwrap();
        b.send(&buf[..n]).unwrap();
    });
    a.send(b"ping").unwrap();
    let mut buf = [0; 4];
    assert_eq!(a.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"ping");
    t.join().unwrap();
}

#[test]
fn read_parks_until_a_later_write() {
    // One worker: the writer can run only if the reader's wait parked the
    // coroutine rather than the thread.
    for workers in [1, 2] {
        let log = rt(workers).block_on(|| {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let (da, db) = UnixDatagram::pair().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (ready_tx, ready_rx) = chan::bounded(1);
            let reader = {
                let log = log.clone();
                coio::spawn(move || {
                    log.lock().unwrap().push("read");
                    ready_tx.send(()).unwrap();
                    let mut buf = [0; 8];
                    a.read_exact(&mut buf[..4]).unwrap();
                    assert_eq!(&buf[..4], b"wake");
                    log.lock().unwrap().push("stream read");
                    ready_tx.send(()).unwrap();
                    let n = da.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], b"dgram");
                    log.lock().unwrap().push("datagram received");
                })
            };
            ready_rx.recv().unwrap();
            coio::yield_now();
            log.lock().unwrap().push("write");
            b.write_all(b"wake").unwrap();
            ready_rx.recv().unwrap();
            coio::yield_now();
            log.lock().unwrap().push("send");
            db.send(b"dgram").unwrap();
            reader.join().unwrap();
            Arc::try_unwrap(log).unwrap().into_inner().unwrap()
        });
        assert_eq!(
            log,
            ["read", "write", "stream read", "send", "datagram received"]
        );
    }
}

#[test]
fn read_timeout_leaves_the_socket_usable() {
    let check = || {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let start = Instant::now();
        let mut buf = [0; 4];
        assert_eq!(a.read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        b.write_all(b"late").unwrap();
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());
        a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));

        let (da, db) = UnixDatagram::pair().unwrap();
        da.set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        assert_eq!(da.read_timeout().unwrap(), Some(Duration::from_millis(30)));
        assert_eq!(da.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(
            da.recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::TimedOut
        );
        db.send(b"late").unwrap();
        assert_eq!(da.recv(&mut buf).unwrap(), 4);
        da.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(da.write_timeout().unwrap(), Some(Duration::from_secs(1)));
        assert!(da.set_write_timeout(Some(Duration::ZERO)).is_err());
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn nonblocking_mode_returns_would_block() {
    let check = || {
        let path = TempPath::new("nonblocking");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut buf = [0; 2];
        assert_eq!(a.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        b.write_all(b"ok").unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), 2);
        a.set_nonblocking(false).unwrap();
        b.write_all(b"ok").unwrap();
        a.read_exact(&mut buf).unwrap();

        let (da, db) = UnixDatagram::pair().unwrap();
        da.set_nonblocking(true).unwrap();
        assert_eq!(da.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        db.send(b"ok").unwrap();
        assert_eq!(da.recv(&mut buf).unwrap(), 2);
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn connect_errors() {
    let check = || {
        let path = TempPath::new("missing");
        let e = UnixStream::connect(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        // A socket file nobody listens on any more.
        let l = UnixListener::bind(&path).unwrap();
        drop(l);
        let e = UnixStream::connect(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        // Bound already.
        let _l = std::fs::remove_file(&path.0);
        let _l = UnixListener::bind(&path).unwrap();
        assert_eq!(
            UnixListener::bind(&path).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
        // A datagram socket cannot send to a missing path either.
        let d = UnixDatagram::unbound().unwrap();
        let missing = TempPath::new("missing-dgram");
        assert_eq!(
            d.send_to(b"x", &missing).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(d.connect(&missing).unwrap_err().kind(), ErrorKind::NotFound);
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn connect_waits_while_the_backlog_is_full() {
    // A listener whose backlog holds one connection: further connects get
    // EAGAIN from the kernel and must retry until the server accepts.
    let rt = rt(1);
    let path = Arc::new(TempPath::new("backlog"));
    let listener = UnixListener::bind(&*path).unwrap();
    // SAFETY: listen(2) again on our listening socket only changes its
    // backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let clients: Vec<_> = (0..5)
        .map(|i| {
            let path = path.clone();
            rt.spawn(move || {
                let mut s = UnixStream::connect(&*path).unwrap();
                s.write_all(&[i]).unwrap();
            })
        })
        .collect();
    rt.block_on(|| {
        let mut seen = Vec::new();
        for _ in 0..5 {
            // Accept slowly, so that connects queue up.
            coio::sleep(Duration::from_millis(5));
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0; 1];
            s.read_exact(&mut b).unwrap();
            seen.push(b[0]);
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    });
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn datagrams_by_path_and_pair() {
    rt(2).block_on(|| {
        let pa = TempPath::new("dgram-a");
        let pb = TempPath::new("dgram-b");
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.0.as_path()));
        let server = coio::spawn(move || {
            let mut buf = [0; 16];
            for _ in 0..100 {
                let (n, from) = b.recv_from(&mut buf).unwrap();
                let to = from.as_pathname().unwrap().to_owned();
                b.send_to(&buf[..n], to).unwrap();
            }
        });
        let mut buf = [0; 16];
        for i in 0..100u32 {
            a.send_to(&i.to_le_bytes(), &pb).unwrap();
            let (n, from) = a.recv_from(&mut buf).unwrap();
            assert_eq!(from.as_pathname(), Some(pb.0.as_path()));
            assert_eq!(&buf[..n], i.to_le_bytes());
        }
        server.join().unwrap();

        // Connected: send and recv; an unbound sender is unnamed.
        let c = UnixDatagram::unbound().unwrap();
        c.connect(&pa).unwrap();
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(pa.0.as_path()));
        c.send(b"hi").unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert!(from.is_unnamed());
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);

        // A pair, with a short buffer: the next datagram is still there.
        let (x, y) = UnixDatagram::pair().unwrap();
        let y2 = y.try_clone().unwrap();
        x.send(b"first").unwrap();
        x.send(b"second").unwrap();
        let mut short = [0; 2];
        assert_eq!(y.recv(&mut short).unwrap(), 2);
        assert_eq!(y2.recv(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"second");
        assert!(y.take_error().unwrap().is_none());
        // Reading shut down: receives return 0 at once (as std's blocking
        // ones), from this handle and its clone, rather than spin on a
        // socket that is readable but has nothing to read.
        y.shutdown(Shutdown::Read).unwrap();
        assert_eq!(y.recv(&mut buf).unwrap(), 0);
        let (n, from) = y2.recv_from(&mut buf).unwrap();
        assert_eq!(n, 0);
        assert!(from.is_unnamed());
        // In non-blocking mode, std says WouldBlock.
        y.set_nonblocking(true).unwrap();
        assert_eq!(y.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        // And a coroutine blocked in recv when another shuts the socket
        // down is woken with 0.
        let (p, _q) = UnixDatagram::pair().unwrap();
        let p = Arc::new(p);
        let waiter = coio::spawn({
            let p = p.clone();
            move || p.recv(&mut [0; 4]).unwrap()
        });
        coio::yield_now();
        p.shutdown(Shutdown::Read).unwrap();
        assert_eq!(waiter.join().unwrap(), 0);
    });
}

#[test]
fn shutdown_wakes_a_blocked_reader() {
    rt(1).block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let (ready_tx, ready_rx) = chan::bounded(1);
        let reader = coio::spawn(move || {
            ready_tx.send(()).unwrap();
            let mut buf = [0; 4];
            (&a).read(&mut buf).unwrap()
        });
        ready_rx.recv().unwrap();
        coio::yield_now();
        b.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap(), 0);
        // Writing to a shut-down direction fails at once.
        assert!((&b).write(b"x").is_err());
    });
}

#[test]
fn cancel_wakes_a_coroutine_blocked_in_recv() {
    let rt = rt(1);
    let (ready_tx, ready_rx) = chan::bounded(2);
    let (d, _d_peer) = UnixDatagram::pair().unwrap();
    let (mut s, _s_peer) = UnixStream::pair().unwrap();
    let dgram = {
        let ready_tx = ready_tx.clone();
        rt.spawn(move || {
            ready_tx.send(()).unwrap();
            let _ = d.recv(&mut [0; 1]);
            unreachable!("the recv cannot complete: nobody sends");
        })
    };
    let stream = rt.spawn(move || {
        ready_tx.send(()).unwrap();
        let _ = s.read(&mut [0; 1]);
        unreachable!("the read cannot complete: nobody writes");
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    dgram.cancel();
    stream.cancel();
    assert!(dgram.join().unwrap_err().is::<coio::Cancelled>());
    assert!(stream.join().unwrap_err().is::<coio::Cancelled>());
    // A blocked accept is cancelled when the runtime drops.
    let path = TempPath::new("cancel-accept");
    let listener = UnixListener::bind(&path).unwrap();
    rt.spawn(move || listener.accept().map(|_| ()));
    drop(rt);
}

#[test]
fn clones_conversions_and_abstract_names() {
    rt(1).block_on(|| {
        let path = TempPath::new("clone");
        let listener = UnixListener::bind(&path).unwrap();
        let clone = listener.try_clone().unwrap();
        assert!(listener.take_error().unwrap().is_none());
        assert!(format!("{listener:?}").contains("UnixListener"));
        let c = coio::spawn({
            let p = path.0.clone();
            move || UnixStream::connect(p).unwrap()
        });
        let (s, _) = clone.accept().unwrap();
        let c = c.join().unwrap();
        let s2 = s.try_clone().unwrap();
        (&c).write_all(b"dup").unwrap();
        let mut buf = [0; 3];
        (&s2).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"dup");
        assert!(s.take_error().unwrap().is_none());
        assert!(format!("{s:?}").contains("UnixStream"));

        // Through std and back.
        let fd = s.as_raw_fd();
        let std = s.into_std();
        assert_eq!(std.as_raw_fd(), fd);
        let s = UnixStream::from_std(std).unwrap();
        let owned: OwnedFd = s.into();
        let s = UnixStream::from_std(owned.into()).unwrap();
        (&c).write_all(b"std").unwrap();
        (&s).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"std");
        let listener = UnixListener::from_std(listener.into_std()).unwrap();
        let d = UnixDatagram::from_std(UnixDatagram::unbound().unwrap().into_std()).unwrap();
        assert!(format!("{d:?}").contains("UnixDatagram"));
        for fd in [listener.into_raw_fd(), d.into_raw_fd(), s.into_raw_fd()] {
            // SAFETY: each was just released by `into_raw_fd`.
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }

        // Linux's abstract names, through the `_addr` methods.
        #[cfg(target_os = "linux")]
        {
            use coio::net::unix::SocketAddr;
            use std::os::linux::net::SocketAddrExt;
            let name = format!("coio-test-{}", std::process::id());
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let l = UnixListener::bind_addr(&addr).unwrap();
            let c = coio::spawn(move || UnixStream::connect_addr(&addr).unwrap());
            let (s, _) = l.accept().unwrap();
            let c = c.join().unwrap();
            (&c).write_all(b"abs").unwrap();
            (&s).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"abs");

            let dname = format!("coio-test-dgram-{}", std::process::id());
            let daddr = SocketAddr::from_abstract_name(dname.as_bytes()).unwrap();
            let rx = UnixDatagram::bind_addr(&daddr).unwrap();
            let tx = UnixDatagram::unbound().unwrap();
            tx.send_to_addr(b"abs", &daddr).unwrap();
            assert_eq!(rx.recv(&mut buf).unwrap(), 3);
            tx.connect_addr(&daddr).unwrap();
            tx.send(b"con").unwrap();
            assert_eq!(rx.recv(&mut buf).unwrap(), 3);
            assert_eq!(&buf, b"con");
        }
    });
}

/// A Unix stream read stops after a message that carried descriptors, with
/// more data queued: a short read there does not mean the socket is
/// drained. The peer sends "a" with a descriptor, then "b", to a reader
/// already waiting (so the data comes as one edge); the second read gets
/// "b" (it used to wait for an edge that never came).
#[test]
fn a_read_after_a_message_with_descriptors_gets_the_rest() {
    let got = rt(1).block_on(|| {
        let (mut rx, tx) = UnixStream::pair().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        // Registered, the read bit cleared by a wait that times out.
        assert_eq!(
            rx.read(&mut [0; 64]).unwrap_err().kind(),
            ErrorKind::TimedOut
        );
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::send_with_fd(tx.as_raw_fd(), b"a", tx.as_raw_fd());
        (&tx).write_all(b"b").unwrap();
        let mut buf = [0; 64];
        let n = rx.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a");
        let n = rx.read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    assert_eq!(got, b"b");
}

/// A writer parked on a full Unix stream is woken by a shutdown of the
/// stream's writing through the same handle, and fails as std's does
/// (`BrokenPipe`). epoll reports nothing for it (no `EPOLLOUT`, no
/// `EPOLLHUP` until both sides are shut): the writer waited for ever.
#[test]
fn a_shutdown_of_writing_wakes_a_parked_writer() {
    let kind = common::within(Duration::from_secs(30), || {
        rt(2).block_on(|| {
            let (a, _b) = UnixStream::pair().unwrap();
            let a = std::sync::Arc::new(a);
            let w = a.clone();
            let writer = coio::spawn(move || {
                let buf = vec![0u8; 1 << 20];
                loop {
                    if let Err(e) = (&*w).write(&buf) {
                        return e.kind();
                    }
                }
            });
            coio::sleep(Duration::from_millis(100));
            a.shutdown(std::net::Shutdown::Write).unwrap();
            writer.join().unwrap()
        })
    });
    assert_eq!(kind, std::io::ErrorKind::BrokenPipe);
}

/// A plain thread blocked writing to a Unix stream or datagram socket
/// whose send buffer is full is woken by a shutdown of writing through
/// the same handle, with `BrokenPipe` as std's (`poll(2)` reports nothing
/// then: it waited for its timeout, or for ever).
#[test]
fn a_shutdown_wakes_a_plain_thread_blocked_writing() {
    common::within(Duration::from_secs(20), || {
        let (a, _b) = UnixStream::pair().unwrap();
        let (d, _e) = UnixDatagram::pair().unwrap();
        let a = Arc::new(a);
        let d = Arc::new(d);
        a.set_nonblocking(true).unwrap();
        while (&*a).write(&[0; 4096]).is_ok() {}
        a.set_nonblocking(false).unwrap();
        d.set_nonblocking(true).unwrap();
        while d.send(&[0; 1024]).is_ok() {}
        d.set_nonblocking(false).unwrap();
        // Bounds the test if the wake is lost.
        a.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        d.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let w = {
            let a = a.clone();
            std::thread::spawn(move || (&*a).write(&[0; 4096]).map_err(|e| e.kind()))
        };
        let s = {
            let d = d.clone();
            std::thread::spawn(move || d.send(&[0; 1024]).map_err(|e| e.kind()))
        };
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        a.shutdown(Shutdown::Write).unwrap();
        d.shutdown(Shutdown::Write).unwrap();
        assert_eq!(w.join().unwrap(), Err(ErrorKind::BrokenPipe));
        assert_eq!(s.join().unwrap(), Err(ErrorKind::BrokenPipe));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

/// A client socket bound to the abstract name `name`, connected to the
/// listener at `path` (std cannot bind a stream socket before connecting).
fn bound_client(name: &[u8], path: &Path) -> std::os::unix::net::UnixStream {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    /// `bytes` at `sun_path[lead..]`.
    fn raw(lead: usize, bytes: &[u8]) -> libc::sockaddr_un {
        // SAFETY: all zeroes is a valid sockaddr_un.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &b) in a.sun_path[lead..].iter_mut().zip(bytes) {
            *d = b as libc::c_char;
        }
        a
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned
    // by the returned stream.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fresh, ours alone.
    let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let a = raw(1, name);
    // SAFETY: `a` is a sockaddr_un holding the abstract name (family,
    // leading NUL, name: no trailing NUL).
    let bound = unsafe { libc::bind(fd, (&raw const a).cast(), (2 + 1 + name.len()) as u32) };
    assert_eq!(bound, 0);
    let path = path.as_os_str().as_bytes();
    let b = raw(0, path);
    // SAFETY: `b` is a sockaddr_un holding the path and its NUL.
    let connected =
        unsafe { libc::connect(fd, (&raw const b).cast(), (2 + path.len() + 1) as u32) };
    assert_eq!(connected, 0);
    s
}

/// `accept` reports a client bound to an abstract name by that name, as
/// std's does, from a plain thread and in coroutines on both drivers,
/// blocking and async (mio's accept said "unnamed").
#[test]
fn accept_names_a_peer_bound_to_an_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    let path = TempPath::new("abstract-peer");
    let l = UnixListener::bind(&path).unwrap();
    let tag = std::process::id();
    let name = format!("coio-peer-{tag}-thread");
    let _c = bound_client(name.as_bytes(), path.as_ref());
    let (_, addr) = l.accept().unwrap();
    assert_eq!(
        addr.as_abstract_name(),
        Some(name.as_bytes()),
        "plain thread"
    );
    for driver in [coio::IoDriver::Epoll, coio::IoDriver::Uring] {
        let rt = Runtime::builder()
            .workers(1)
            .driver(driver)
            .build()
            .unwrap();
        let name = format!("coio-peer-{tag}-{driver:?}");
        let _c = bound_client(name.as_bytes(), path.as_ref());
        let addr = rt.block_on(|| l.accept().unwrap().1);
        assert_eq!(addr.as_abstract_name(), Some(name.as_bytes()), "{driver:?}");
        let name = format!("coio-peer-{tag}-{driver:?}-async");
        let _c = bound_client(name.as_bytes(), path.as_ref());
        let addr = rt.block_on(|| coio::future::block_on(l.accept_async()).unwrap().1);
        assert_eq!(
            addr.as_abstract_name(),
            Some(name.as_bytes()),
            "{driver:?} async"
        );
        // And an unnamed client stays unnamed.
        let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let addr = rt.block_on(|| l.accept().unwrap().1);
        assert!(addr.is_unnamed(), "{driver:?}: {addr:?}");
    }
}

/// `connect_addr` to an abstract name that starts with a NUL byte reaches
/// that name, not the one a byte shorter (mio dropped the last byte), and
/// the empty abstract name connects, as with std.
#[test]
fn connect_addr_reaches_abstract_names_with_a_leading_nul() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    let tag = std::process::id();
    let wanted = SocketAddr::from_abstract_name(format!("\0coio-srv{tag}x")).unwrap();
    let shorter = SocketAddr::from_abstract_name(format!("\0coio-srv{tag}")).unwrap();
    let lw = UnixListener::bind_addr(&wanted).unwrap();
    let _ls = UnixListener::bind_addr(&shorter).unwrap();
    let rt = rt(1);
    let c = rt.block_on(|| UnixStream::connect_addr(&wanted).unwrap());
    // (Checked before the accept, which would wait for ever otherwise.)
    assert_eq!(
        c.peer_addr().unwrap().as_abstract_name(),
        wanted.as_abstract_name()
    );
    rt.block_on(|| lw.accept().unwrap());
    let empty = SocketAddr::from_abstract_name(b"").unwrap();
    // The empty name is one per network namespace: skip if taken.
    if let Ok(le) = UnixListener::bind_addr(&empty) {
        rt.block_on(|| {
            let c = UnixStream::connect_addr(&empty).unwrap();
            let _ = le.accept().unwrap();
            assert_eq!(c.peer_addr().unwrap().as_abstract_name(), Some(&b""[..]));
        });
    }
}

/// A peer bound to a path that fills all 108 bytes of `sun_path` (no NUL;
/// the kernel allows it, std's `SocketAddr::from_pathname` does not):
/// `accept` names it, as std's accept and `peer_addr` do.
#[test]
fn accept_names_a_peer_whose_path_fills_sun_path() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("coio-fill-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let listen = dir.join("l");
    let _ = std::fs::remove_file(&listen);
    let long = dir.join("x".repeat(108 - dir.as_os_str().len() - 1));
    let _ = std::fs::remove_file(&long);
    assert_eq!(long.as_os_str().len(), 108);
    let l = UnixListener::bind(&listen).unwrap();
    // SAFETY: socket(2) with constant arguments; owned at once.
    let c = unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)) };
    let at = |p: &[u8]| {
        // SAFETY: all zeroes is a valid sockaddr_un.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &b) in a.sun_path.iter_mut().zip(p) {
            *d = b as libc::c_char;
        }
        a
    };
    let a = at(long.as_os_str().as_bytes());
    // SAFETY: a sockaddr_un of 2 + 108 bytes (the whole path, no NUL).
    let bound = unsafe { libc::bind(c.as_raw_fd(), (&raw const a).cast(), 110) };
    assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
    let la = at(listen.as_os_str().as_bytes());
    let len = 2 + listen.as_os_str().len() + 1;
    // SAFETY: a sockaddr_un holding the listener's path and its NUL.
    let connected = unsafe { libc::connect(c.as_raw_fd(), (&raw const la).cast(), len as u32) };
    assert_eq!(connected, 0);
    let (s, addr) = rt(1).block_on(|| l.accept().unwrap());
    assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(long.as_path()));
    assert_eq!(addr.as_pathname(), Some(long.as_path()));
    drop((s, c));
    std::fs::remove_dir_all(&dir).unwrap();
}
