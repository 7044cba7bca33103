//! Socket calls that return without waiting still let the worker's other
//! coroutines run and can be cancelled (they count against the cooperative
//! budget), whatever the driver: std's loops that retry on `WouldBlock` in
//! the non-blocking mode, a connect retried until the server is up, an
//! accept loop that ignores its errors. And a clone starts with the
//! original's settings, as std's shares them.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use coio::Runtime;
use coio::net::unix::{UnixListener, UnixStream};
use coio::net::{TcpListener, TcpStream};

mod common;
use common::within;

fn rt(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .stall_warning(None)
        .build()
        .unwrap()
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Reads `s` in the non-blocking mode until it gets something, retrying
/// at once on `WouldBlock` (std's pattern).
fn spin_read(s: &TcpStream) -> std::io::Result<usize> {
    s.set_nonblocking(true).unwrap();
    loop {
        match { s }.read(&mut [0; 8]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// The writer is a coroutine of the spinning reader's only worker.
#[test]
fn a_non_blocking_read_loop_lets_the_writer_run() {
    within(Duration::from_secs(20), || {
        rt(1).block_on(|| {
            let (mut c, s) = tcp_pair();
            let started = Arc::new(AtomicBool::new(false));
            let flag = started.clone();
            let reader = coio::spawn(move || {
                flag.store(true, SeqCst);
                spin_read(&s).unwrap()
            });
            while !started.load(SeqCst) {
                coio::yield_now();
            }
            c.write_all(b"hi").unwrap();
            assert_eq!(reader.join().unwrap(), 2);
        })
    });
}

/// Cancelled, and at a runtime's shutdown (which cancels it), the loop
/// unwinds (shutdown waited for ever).
#[test]
fn a_non_blocking_read_loop_can_be_cancelled() {
    within(Duration::from_secs(20), || {
        for shutdown in [false, true] {
            let rt = rt(2);
            let (c, s) = rt.block_on(tcp_pair);
            let spinner = rt.spawn(move || spin_read(&s).map(drop));
            std::thread::sleep(Duration::from_millis(50));
            if shutdown {
                drop(rt);
                assert!(spinner.join().unwrap_err().is::<coio::Cancelled>());
            } else {
                spinner.cancel();
                assert!(spinner.join().unwrap_err().is::<coio::Cancelled>());
            }
            drop(c);
        }
    });
}

/// std's example for `TcpListener::set_nonblocking`: `incoming()` polled,
/// other work done on `WouldBlock`; the client is a coroutine of the same
/// worker.
#[test]
fn a_non_blocking_accept_loop_lets_the_client_run() {
    within(Duration::from_secs(20), || {
        rt(1).block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            l.set_nonblocking(true).unwrap();
            let client = coio::spawn(move || TcpStream::connect(addr).map(drop));
            for s in l.incoming() {
                match s {
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            client.join().unwrap().unwrap();
        })
    });
}

/// A client retries `UnixStream::connect` until the server's socket
/// exists; the server is a coroutine of the same worker (a failed connect
/// returned at once, for ever).
#[test]
fn a_unix_connect_retried_until_the_server_is_up_lets_it_start() {
    within(Duration::from_secs(20), || {
        let path = std::env::temp_dir().join(format!("coio-retry-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        rt(1).block_on(move || {
            let p = path.clone();
            let started = Arc::new(AtomicBool::new(false));
            let flag = started.clone();
            let client = coio::spawn(move || {
                loop {
                    flag.store(true, SeqCst);
                    if let Ok(s) = UnixStream::connect(&p) {
                        return s;
                    }
                }
            });
            while !started.load(SeqCst) {
                coio::yield_now();
            }
            let l = UnixListener::bind(&path).unwrap();
            let _server = l.accept().unwrap();
            client.join().unwrap();
            let _ = std::fs::remove_file(&path);
        })
    });
}

/// std's `incoming()` example ignores errors; with no descriptor left
/// (`EMFILE`) the loop must let the coroutine that frees them run (on the
/// ring the error came back at once, for ever). In a child process: it
/// lowers the descriptor limit.
#[test]
fn an_accept_loop_that_ignores_its_errors_lets_the_others_run() {
    if common::child_role().is_none() {
        for driver in ["epoll", "uring"] {
            let out = common::run_in_child(
                "an_accept_loop_that_ignores_its_errors_lets_the_others_run",
                "emfile",
                &[("COIO_DRIVER", driver)],
            );
            assert!(
                out.status.success(),
                "{driver}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return;
    }
    within(Duration::from_secs(20), || {
        let rt = rt(1);
        let l = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let lim = libc::rlimit {
            rlim_cur: 256,
            rlim_max: 256,
        };
        // SAFETY: plain setrlimit with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let mut hog = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hog.push(f);
        }
        rt.block_on(move || {
            let freer = coio::spawn(move || drop(hog));
            for s in l.incoming() {
                if s.is_ok() {
                    break;
                }
            }
            freer.join().unwrap();
        });
    });
}

/// A clone starts with the original's non-blocking mode and timeouts, as
/// std's clone shares them (the clone blocked).
#[test]
fn a_clone_starts_with_the_original_s_settings() {
    within(Duration::from_secs(20), || {
        rt(1).block_on(|| {
            let (_c, s) = tcp_pair();
            s.set_nonblocking(true).unwrap();
            let s2 = s.try_clone().unwrap();
            let e = { &s2 }.read(&mut [0; 8]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            let s3 = s.try_clone().unwrap();
            assert_eq!(s3.read_timeout().unwrap(), Some(Duration::from_millis(30)));
            let t = Instant::now();
            let e = { &s3 }.read(&mut [0; 8]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            assert!(t.elapsed() >= Duration::from_millis(30));

            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let e = l.try_clone().unwrap().accept().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
            let (a, _b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let a2 = a.try_clone().unwrap();
            let e = { &a2 }.read(&mut [0; 8]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
        })
    });
}

/// Cancelled at the budget's yield of a loop of reads that never wait (a
/// peer that sent plenty), a reader unwinds before it reads, never after:
/// every byte is either returned to it or still in the socket. Likewise a
/// writer's bytes are written only by calls that return. In both modes
/// (blocking, and non-blocking with std's retry loop).
#[test]
fn a_socket_call_cancelled_at_its_budget_loses_no_bytes() {
    const TOTAL: usize = 200_000;
    for nonblocking in [false, true] {
        for workers in [1, 2] {
            let (returned, left) = within(Duration::from_secs(30), move || {
                rt(workers).block_on(move || {
                    let (mut c, s) = tcp_pair();
                    c.write_all(&vec![7u8; TOTAL]).unwrap();
                    let reader = s.try_clone().unwrap();
                    reader.set_nonblocking(nonblocking).unwrap();
                    let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                    let got2 = got.clone();
                    let h = coio::spawn(move || {
                        loop {
                            match { &reader }.read(&mut [0; 1]) {
                                Ok(n) => {
                                    got2.fetch_add(n, SeqCst);
                                }
                                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    });
                    // Past two budgets' worth, so that it is in its loop.
                    while got.load(SeqCst) < 300 {
                        coio::sleep(Duration::from_millis(1));
                    }
                    h.cancel();
                    assert!(h.join().unwrap_err().is::<coio::Cancelled>());
                    drop(c);
                    let mut rest = Vec::new();
                    { &s }.read_to_end(&mut rest).unwrap();
                    (got.load(SeqCst), rest.len())
                })
            });
            assert!(returned > 0, "the reader never ran");
            assert_eq!(
                returned + left,
                TOTAL,
                "{returned} read, {left} left (nonblocking {nonblocking}, {workers} workers)"
            );
        }
    }
}
