//! Many waiters on one socket: what a readiness event costs when N
//! coroutines (or tasks) wait on the same descriptor. Two services, each a
//! common shape:
//!
//! * `udp`: N receivers share one UDP socket (a DNS-style server), each
//!   `recv_from` then `send_to` back; clients on plain threads ping-pong;
//! * `accept`: N acceptors share one listener, each accepting and dropping
//!   the connection; clients on plain threads connect and wait for the
//!   close.
//!
//! `shared_socket RUNTIME SERVICE [WAITERS] [REQUESTS] [CLIENTS]`, RUNTIME
//! `coio` or `tokio` (one worker each), defaults 1,000 waiters, 20,000
//! requests, 4 client threads; `GAP_US` pauses each client between its
//! requests (light load). Prints requests/s and the process's CPU time
//! per request (the clients are threads of the same process: their share
//! is the same whichever runtime serves). `bench/shared-pairs.sh` runs
//! the cases back to back.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(default)
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Runs `clients` plain threads that make `requests` requests in all
/// through `one`, and reports.
fn drive(requests: usize, clients: usize, one: impl Fn() + Send + Sync + 'static) {
    // Let the waiters reach their first wait.
    std::thread::sleep(Duration::from_millis(200));
    // A pause between a client's requests (`GAP_US`, default none): a
    // lightly loaded server, whose waiters are all parked at each event.
    let gap = Duration::from_micros(
        std::env::var("GAP_US")
            .ok()
            .map(|s| s.parse().expect("GAP_US: microseconds"))
            .unwrap_or(0),
    );
    let one = Arc::new(move || {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        one()
    });
    let left = Arc::new(AtomicUsize::new(requests));
    let cpu = cpu_seconds();
    let t = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (one, left) = (one.clone(), left.clone());
            std::thread::spawn(move || {
                while left
                    .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    one();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    println!(
        "{:.0} req/s, {:.2} µs CPU per request",
        requests as f64 / secs,
        cpu * 1e6 / requests as f64
    );
    // The waiters are still parked: leave them.
    std::process::exit(0);
}

/// A client's UDP ping-pong, resending after a loss.
fn udp_client(server: SocketAddr) -> impl Fn() + Send + Sync + 'static {
    thread_local! {
        static SOCK: std::net::UdpSocket = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            s
        };
    }
    move || {
        SOCK.with(|s| {
            let mut buf = [0u8; 64];
            loop {
                s.send_to(&[1u8; 64], server).expect("send");
                if s.recv(&mut buf).is_ok() {
                    return;
                }
            }
        })
    }
}

fn tcp_client(server: SocketAddr) -> impl Fn() + Send + Sync + 'static {
    move || {
        let mut s = std::net::TcpStream::connect(server).expect("connect");
        let mut buf = [0u8; 8];
        // The server drops its end: end of stream (or a reset).
        let _ = s.read(&mut buf);
    }
}

fn main() {
    let runtime = std::env::args().nth(1).unwrap_or_else(|| "coio".into());
    let service = std::env::args().nth(2).unwrap_or_else(|| "udp".into());
    let waiters = arg(3, 1_000);
    let requests = arg(4, 20_000);
    let clients = arg(5, 4);
    match (runtime.as_str(), service.as_str()) {
        ("coio", "udp") => {
            let rt = coio::Runtime::builder()
                .workers(1)
                .stall_warning(None)
                .build()
                .expect("runtime");
            let sock =
                Arc::new(rt.block_on(|| coio::net::UdpSocket::bind("127.0.0.1:0").expect("bind")));
            let addr = sock.local_addr().expect("addr");
            for _ in 0..waiters {
                let sock = sock.clone();
                rt.spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                });
            }
            drive(requests, clients, udp_client(addr));
        }
        ("coio", "accept") => {
            let rt = coio::Runtime::builder()
                .workers(1)
                .stall_warning(None)
                .build()
                .expect("runtime");
            let l = Arc::new(
                rt.block_on(|| coio::net::TcpListener::bind("127.0.0.1:0").expect("bind")),
            );
            let addr = l.local_addr().expect("addr");
            for _ in 0..waiters {
                let l = l.clone();
                rt.spawn(move || {
                    while let Ok((s, _)) = l.accept() {
                        drop(s);
                    }
                });
            }
            drive(requests, clients, tcp_client(addr));
        }
        ("tokio", service) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let addr = if service == "udp" {
                let sock = Arc::new(rt.block_on(async {
                    tokio::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .expect("bind")
                }));
                for _ in 0..waiters {
                    let sock = sock.clone();
                    rt.spawn(async move {
                        let mut buf = [0u8; 64];
                        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                            let _ = sock.send_to(&buf[..n], from).await;
                        }
                    });
                }
                sock.local_addr().expect("addr")
            } else {
                let l = Arc::new(rt.block_on(async {
                    tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind")
                }));
                for _ in 0..waiters {
                    let l = l.clone();
                    rt.spawn(async move {
                        while let Ok((s, _)) = l.accept().await {
                            drop(s);
                        }
                    });
                }
                l.local_addr().expect("addr")
            };
            if service == "udp" {
                drive(requests, clients, udp_client(addr));
            } else {
                drive(requests, clients, tcp_client(addr));
            }
        }
        _ => panic!("usage: shared_socket coio|tokio udp|accept [WAITERS] [REQUESTS] [CLIENTS]"),
    }
}
