//! What many waiters on one socket cost (see "One wake per event, passed
//! on" in `src/io/reactor.rs`), counted rather than timed: a busy worker
//! with 100 parked receivers is woken once per event, not once per
//! datagram another worker receives meanwhile (a pass to every worker did
//! that), and waking waiters on two workers allocates nothing (a list of
//! claims did). From a review. One test: the process exits at its end,
//! with receivers still parked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use coio::Runtime;
use coio::net::UdpSocket;

/// Counts allocations.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn wakes_and_allocations_on_a_socket_shared_by_many() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("still running after 60 s");
        std::process::exit(3);
    });
    a_busy_worker_is_woken_once_per_event();
    let one = allocations_per_datagram(false);
    let two = allocations_per_datagram(true);
    eprintln!(
        "allocations per datagram: two receivers on one worker {one:.2}; on two workers {two:.2}"
    );
    assert!(two < one + 0.5, "an allocation per wake with two workers");
    std::process::exit(0);
}

/// Allocations per datagram received by two looping receivers on one
/// worker, or one on each of two (`two_homes`).
fn allocations_per_datagram(two_homes: bool) -> f64 {
    let a = Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let b = Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let sock = Arc::new(a.block_on(|| UdpSocket::bind("127.0.0.1:0").unwrap()));
    let addr = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let s = sock.clone();
    a.block_on(move || assert!(s.recv(&mut [0; 8]).is_err()));
    sock.set_read_timeout(None).unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    for i in 0..2 {
        let (s, g) = (sock.clone(), got.clone());
        let rt = if two_homes && i == 1 { &b } else { &a };
        rt.spawn(move || {
            loop {
                if s.recv(&mut [0; 8]).is_ok() {
                    g.fetch_add(1, SeqCst);
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(100));
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 2000;
    let a0 = ALLOCS.load(SeqCst);
    for i in 0..n {
        c.send_to(b"d", addr).unwrap();
        let t = Instant::now();
        while got.load(SeqCst) <= i {
            std::hint::spin_loop();
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "datagram {i} not received"
            );
        }
        // Let the other receiver re-park.
        std::thread::sleep(Duration::from_micros(200));
    }
    let per = (ALLOCS.load(SeqCst) - a0) as f64 / n as f64;
    std::mem::forget((a, b));
    per
}

fn a_busy_worker_is_woken_once_per_event() {
    let a = Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let b = Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let sock = Arc::new(b.block_on(|| UdpSocket::bind("127.0.0.1:0").unwrap()));
    let addr = sock.local_addr().unwrap();
    // Register with B's driver (its poller delivers the events).
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let s = sock.clone();
    b.block_on(move || assert!(s.recv(&mut [0; 8]).is_err()));
    sock.set_read_timeout(None).unwrap();

    const RA: usize = 100;
    const N: usize = 200;
    let got_a = Arc::new(AtomicUsize::new(0));
    for _ in 0..RA {
        let (s, g) = (sock.clone(), got_a.clone());
        a.spawn(move || {
            loop {
                if s.recv(&mut [0; 8]).is_err() {
                    return;
                }
                g.fetch_add(1, SeqCst);
            }
        });
    }
    let got_b = Arc::new(AtomicUsize::new(0));
    {
        let (s, g) = (sock.clone(), got_b.clone());
        b.spawn(move || {
            loop {
                if s.recv(&mut [0; 8]).is_err() {
                    return;
                }
                g.fetch_add(1, SeqCst);
            }
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    // A busy for 1.5 s.
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    a.spawn(move || {
        while !r.load(SeqCst) {
            std::hint::spin_loop();
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let a0 = a.metrics().workers[0].polls;
    let bev0 = b.metrics().workers[0].io_events;
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..N {
        c.send_to(b"x", addr).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let t = Instant::now();
    while got_a.load(SeqCst) + got_b.load(SeqCst) < N && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let bev = b.metrics().workers[0].io_events - bev0;
    release.store(true, SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let apolls = a.metrics().workers[0].polls - a0;
    eprintln!(
        "datagrams {N}: B got {}, A got {}; B's driver events {bev}; A's resumes after release {apolls} (A has {RA} parked receivers)",
        got_b.load(SeqCst),
        got_a.load(SeqCst)
    );
    assert_eq!(got_a.load(SeqCst) + got_b.load(SeqCst), N);
    assert!(
        apolls <= bev + 5,
        "A was woken {apolls} times for {bev} events: more than one wake per worker per event"
    );
}
