//! Many coroutines waiting on one socket: an event wakes one of them,
//! which passes the wake on after its operation (see "One wake per event,
//! passed on" in `src/io/reactor.rs`). A burst that the kernel reports as
//! fewer events than datagrams (or connections) must still reach every
//! parked waiter; waiters that only wait for readiness (`Fd::readable`)
//! must still wake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use coio::net::{TcpListener, UdpSocket};
use coio::{Runtime, chan};

const WAITERS: usize = 64;

/// Waits for `n` results on `rx`, failing with `what` if one takes more
/// than 10 s (a waiter left parked with its datagram or connection
/// queued).
fn collect<T>(rx: &chan::Receiver<T>, n: usize, what: &str) -> Vec<T> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{what}: {i} of {n} arrived, then none for 10 s ({e})"))
        })
        .collect()
}

/// Lets every coroutine spawned so far reach its first wait.
fn settle() {
    for _ in 0..4 {
        coio::yield_now();
    }
    coio::sleep(Duration::from_millis(50));
}

fn udp_burst(workers: usize) {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    rt.block_on(|| {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let (tx, rx) = chan::channel();
        for _ in 0..WAITERS {
            let (sock, tx) = (sock.clone(), tx.clone());
            coio::spawn(move || {
                let mut buf = [0u8; 8];
                let (n, _) = sock.recv_from(&mut buf).unwrap();
                tx.send(buf[..n].to_vec()).unwrap();
            });
        }
        settle();
        // From a plain thread, all at once: the worker may see the burst
        // as one event.
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..WAITERS as u8 {
                s.send_to(&[i], addr).unwrap();
            }
        });
        let mut got: Vec<u8> = collect(&rx, WAITERS, "datagrams")
            .into_iter()
            .map(|d| d[0])
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..WAITERS as u8).collect::<Vec<_>>());
    });
}

#[test]
fn a_burst_of_datagrams_reaches_every_parked_receiver_of_a_shared_socket() {
    udp_burst(1);
    udp_burst(2);
}

fn accept_burst(workers: usize) {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    rt.block_on(|| {
        let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr: SocketAddr = l.local_addr().unwrap();
        let (tx, rx) = chan::channel();
        for _ in 0..WAITERS {
            let (l, tx) = (l.clone(), tx.clone());
            coio::spawn(move || {
                let (s, _) = l.accept().unwrap();
                tx.send(s.peer_addr().unwrap()).unwrap();
            });
        }
        settle();
        let conns = std::thread::spawn(move || {
            (0..WAITERS)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        let mut got = collect(&rx, WAITERS, "connections");
        let mut want: Vec<_> = conns.iter().map(|c| c.local_addr().unwrap()).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

#[test]
fn a_burst_of_connections_reaches_every_parked_acceptor_of_a_shared_listener() {
    accept_burst(1);
    accept_burst(2);
}

/// Receivers through `Fd::read_with` (which pass the wake on) queued in
/// turn with waiters of `Fd::readable` (which cannot promise to read):
/// every receiver gets a datagram, and every readiness waiter returns.
#[test]
fn readiness_waiters_queued_between_receivers_all_wake() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = std_sock.local_addr().unwrap();
        let fd = Arc::new(coio::io::Fd::new(std_sock).unwrap());
        let (tx, rx) = chan::channel();
        let receivers = 8;
        for i in 0..2 * receivers {
            let (fd, tx) = (fd.clone(), tx.clone());
            coio::spawn(move || {
                if i % 2 == 0 {
                    let mut buf = [0u8; 8];
                    let n = fd.read_with(|s| s.recv(&mut buf)).unwrap();
                    tx.send(("datagram", n)).unwrap();
                } else {
                    fd.readable().unwrap();
                    tx.send(("readable", 0)).unwrap();
                }
            });
        }
        settle();
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..receivers {
                s.send_to(&[7; 3], addr).unwrap();
            }
        });
        let got = collect(&rx, 2 * receivers, "receivers and readiness waiters");
        let datagrams = got.iter().filter(|(k, _)| *k == "datagram").count();
        assert_eq!(datagrams, receivers);
        assert!(got.iter().all(|&(k, n)| k == "readable" || n == 3));
    });
}

/// Receivers in a loop (each answered datagram sends it back to waiting):
/// one datagram at a time, then a burst, all arrive. A receiver passed a
/// wake that finds nothing waits again, and the next event still finds
/// someone to wake.
#[test]
fn looping_receivers_serve_single_datagrams_and_bursts() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let (tx, rx) = chan::channel();
        for _ in 0..4 {
            let (sock, tx) = (sock.clone(), tx.clone());
            coio::spawn(move || {
                let mut buf = [0u8; 8];
                loop {
                    let n = sock.recv(&mut buf).unwrap();
                    tx.send(buf[..n].to_vec()).unwrap();
                }
            });
        }
        settle();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for round in 0..50u8 {
            sender.send_to(&[round], addr).unwrap();
            assert_eq!(collect(&rx, 1, "round")[0], [round]);
        }
        // A burst after the rounds: all arrive.
        for round in 0..20u8 {
            sender.send_to(&[round], addr).unwrap();
        }
        assert_eq!(collect(&rx, 20, "burst").len(), 20);
    });
}

/// Receivers on two workers: R1 (worker A) parks first, then R2 (worker
/// B); a coroutine on A sends a datagram and keeps A busy. The event must
/// wake R2 too (one waiter per worker), not only the oldest, R1, which
/// cannot run until A is free (a started coroutine never changes worker).
/// From a review: with one wake in all the datagram waited 3 s.
#[test]
fn a_datagram_does_not_wait_for_a_busy_worker_while_a_receiver_idles_on_another() {
    let rt = Runtime::builder()
        .workers(2)
        .stall_warning(None)
        .build()
        .unwrap();
    rt.block_on(|| {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        // Candidates report their worker thread, then wait for a role.
        let (ids_tx, ids_rx) = chan::unbounded::<(usize, ThreadId)>();
        let mut cmds = Vec::new();
        for i in 0..16 {
            let (cmd_tx, cmd_rx) = chan::unbounded::<&'static str>();
            cmds.push(cmd_tx);
            let (ids_tx, sock, got) = (ids_tx.clone(), sock.clone(), got.clone());
            coio::spawn(move || {
                ids_tx.send((i, std::thread::current().id())).unwrap();
                while let Ok(cmd) = cmd_rx.recv() {
                    match cmd {
                        "recv-timeout" => {
                            let e = sock.recv(&mut [0; 8]).unwrap_err();
                            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
                        }
                        "recv" => {
                            sock.recv(&mut [0; 8]).unwrap();
                            got.store(true, SeqCst);
                        }
                        "busy" => {
                            // Sends, then spins on this worker (no yield)
                            // waiting up to 3 s for any receiver to get it.
                            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                            s.send_to(b"x", addr).unwrap();
                            let t = Instant::now();
                            while !got.load(SeqCst) && t.elapsed() < Duration::from_secs(3) {
                                std::hint::spin_loop();
                            }
                            assert!(
                                got.load(SeqCst),
                                "no receiver got the datagram in 3 s although one was \
                                 parked on an idle worker"
                            );
                            return;
                        }
                        _ => return,
                    }
                }
            });
        }
        let ids: Vec<_> = (0..16)
            .map(|_| ids_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        let a = ids[0].1;
        let on_a: Vec<usize> = ids.iter().filter(|x| x.1 == a).map(|x| x.0).collect();
        let on_b: Vec<usize> = ids.iter().filter(|x| x.1 != a).map(|x| x.0).collect();
        assert!(on_a.len() >= 2 && !on_b.is_empty(), "placement: {ids:?}");
        let (r1, p, r2) = (on_a[0], on_a[1], on_b[0]);
        // Register the socket with worker B (R2's first wait times out).
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        cmds[r2].send("recv-timeout").unwrap();
        coio::sleep(Duration::from_millis(100));
        sock.set_read_timeout(None).unwrap();
        // R1 (worker A) parks first, then R2 (worker B).
        cmds[r1].send("recv").unwrap();
        coio::sleep(Duration::from_millis(50));
        cmds[r2].send("recv").unwrap();
        coio::sleep(Duration::from_millis(50));
        // P keeps worker A busy right after the datagram is sent.
        cmds[p].send("busy").unwrap();
        let t = Instant::now();
        while !got.load(SeqCst) && t.elapsed() < Duration::from_secs(10) {
            coio::sleep(Duration::from_millis(5));
        }
        assert!(got.load(SeqCst), "nothing received in 10 s");
        // Let P finish its check (it panics the coroutine, reported below).
        coio::sleep(Duration::from_millis(100));
        for c in &cmds {
            let _ = c.send("exit");
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the datagram was received only after {:?}: it waited for the busy worker",
            t.elapsed()
        );
    });
}
