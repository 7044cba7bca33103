//! `coio::metrics()` / `Runtime::metrics()`: counts that add up exactly in
//! deterministic scenarios (spawns, starts, finishes, steals, timers,
//! resumes, I/O events, parks, busy time), and the schedule trace
//! (`COIO_SCHEDTRACE`, in a child process whose stderr is read).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use coio::net::{TcpListener, TcpStream};
use coio::{Metrics, Runtime};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// The runtime's metrics once no coroutine is alive (a coroutine's finish
/// is counted by its worker just after its join returns).
fn settled(rt: &Runtime) -> Metrics {
    let t = Instant::now();
    loop {
        let m = rt.metrics();
        if m.live == 0 && m.workers.iter().all(|w| w.homed == 0) {
            return m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never settled: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn spawns_starts_and_finishes_add_up() {
    for workers in [1, 2, 4] {
        let rt = rt(workers);
        rt.block_on(|| {
            let hs: Vec<_> = (0..1000)
                .map(|i| {
                    coio::spawn(move || {
                        coio::yield_now();
                        i
                    })
                })
                .collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, (0..1000).sum());
            let m = coio::metrics();
            assert_eq!(m.workers.len(), workers);
            // The 1000 children, by this coroutine's worker.
            assert_eq!(m.workers.iter().map(|w| w.spawned).sum::<u64>(), 1000);
        });
        // One more from outside.
        rt.spawn(|| ()).join().unwrap();
        let m = settled(&rt);
        // 1000 children, block_on's coroutine and the outside one.
        assert_eq!(m.spawned, 1002, "{m:?}");
        assert_eq!(m.finished, 1002, "{m:?}");
        assert_eq!(m.live, 0);
        let started: u64 = m.workers.iter().map(|w| w.started).sum();
        assert_eq!(started, 1002, "{m:?}");
        for w in &m.workers {
            // Every coroutine finishes on the worker it started on.
            assert_eq!(w.started, w.finished, "{m:?}");
            assert_eq!(w.fresh, 0);
            // Each ran at least once (a yield with nothing else runnable
            // on the worker returns without a switch).
            assert!(w.polls >= w.started, "{m:?}");
        }
        let stolen_in: u64 = m.workers.iter().map(|w| w.stolen_in).sum();
        let stolen_out: u64 = m.workers.iter().map(|w| w.stolen_out).sum();
        assert_eq!(stolen_in, stolen_out, "{m:?}");
        if workers == 1 {
            assert_eq!(stolen_in, 0);
        }
    }
}

#[test]
fn timers_resumes_parks_and_busy_time() {
    let rt = rt(1);
    let t = Instant::now();
    rt.block_on(|| {
        for _ in 0..5 {
            coio::sleep(Duration::from_millis(2));
        }
        // Yields with another coroutine runnable: each one a resume of
        // each (counted below).
        let other = coio::spawn(|| {
            for _ in 0..100 {
                coio::yield_now();
            }
        });
        for _ in 0..100 {
            coio::yield_now();
        }
        other.join().unwrap();
        // An async sleep uses the same timers.
        coio::future::block_on(coio::future::sleep(Duration::from_millis(2)));
    });
    let elapsed = t.elapsed();
    let m = settled(&rt);
    let w = &m.workers[0];
    assert_eq!(w.timers_fired, 6, "{m:?}");
    // 2 starts, 6 wakes from timers, and about 100 yields of each
    // coroutine to the other (the last few may find nothing else to run);
    // the async sleep's block_on may resume once more (a spurious return
    // of its park).
    assert!(w.polls >= 150 && w.polls <= 212, "{m:?}");
    // It slept in its driver during each sleep.
    assert!(w.parks >= 6, "{m:?}");
    assert!(
        w.busy > Duration::ZERO && w.busy <= elapsed + Duration::from_millis(50),
        "{m:?}"
    );
    // Idle now: it sleeps, and its busy time stands still.
    std::thread::sleep(Duration::from_millis(50));
    let a = rt.metrics().workers[0].clone();
    std::thread::sleep(Duration::from_millis(50));
    let b = rt.metrics().workers[0].clone();
    assert!(a.asleep && b.asleep, "{a:?}");
    assert_eq!(a.busy, b.busy);
}

#[test]
fn io_events_are_counted() {
    let rt = rt(1);
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = coio::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0; 4];
            for _ in 0..50 {
                s.read_exact(&mut b).unwrap();
                s.write_all(&b).unwrap();
            }
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let mut b = [0; 4];
        for i in 0..50u32 {
            c.write_all(&i.to_le_bytes()).unwrap();
            c.read_exact(&mut b).unwrap();
        }
        server.join().unwrap();
    });
    let m = settled(&rt);
    // Every round trip waits for data at least once on one side: an
    // event (epoll) or a completion (io_uring).
    assert!(m.workers[0].io_events >= 50, "{m:?}");
}

/// `COIO_SCHEDTRACE=<ms>` prints lines while the runtime lives; the child
/// is this test binary, re-run by `common::run_in_child`.
#[test]
fn schedtrace_prints_lines() {
    if common::child_role().is_some() {
        let rt = rt(2);
        rt.block_on(|| {
            let hs: Vec<_> = (0..10)
                .map(|_| coio::spawn(|| coio::sleep(Duration::from_millis(150))))
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        return;
    }
    let out = common::run_in_child(
        "schedtrace_prints_lines",
        "schedtrace",
        &[("COIO_SCHEDTRACE", "20")],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().filter(|l| l.starts_with("SCHED ")).collect();
    assert!(lines.len() >= 3, "{err}");
    assert!(lines.iter().all(|l| l.contains("workers=2 ")), "{err}");
    // While the ten sleep, they are alive and homed somewhere.
    assert!(lines.iter().any(|l| l.contains("live=11 ")), "{err}");
    // A bad value is said, and ignored.
    let out = common::run_in_child(
        "schedtrace_prints_lines",
        "schedtrace",
        &[("COIO_SCHEDTRACE", "often")],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COIO_SCHEDTRACE"), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("SCHED ")), "{err}");
}

/// The builder's choice, and the one-line display.
#[test]
fn display_is_one_schedtrace_line() {
    let rt = Runtime::builder()
        .workers(2)
        .schedtrace(None)
        .build()
        .unwrap();
    let line = rt.metrics().to_string();
    assert!(line.starts_with("workers=2 "), "{line}");
    assert!(line.contains("homed=[0 0]"), "{line}");
    assert!(!line.contains('\n'));
}

/// A worker's busy time never goes back, read while its workers fall
/// asleep and wake all the time (a read between the worker's two stores
/// counted the last stretch twice, and the next read was smaller).
#[test]
fn busy_time_never_goes_back() {
    let backs = rt(2).block_on(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sleepers: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                coio::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        coio::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        let mut last = [Duration::ZERO; 2];
        let mut backs = 0;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            for (i, w) in coio::metrics().workers.iter().enumerate() {
                if w.busy < last[i] {
                    backs += 1;
                }
                last[i] = w.busy;
            }
            coio::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in sleepers {
            s.join().unwrap();
        }
        backs
    });
    assert_eq!(backs, 0);
}

/// Nor does it run ahead of the wall clock: a worker that computes for
/// 3 ms stretches and naps between them, read all the time from a plain
/// thread. (A read between the worker's two stores at a fall asleep
/// counted the ending stretch twice, and the monotone answer then kept
/// that: 30 reads in 8 s grew by up to 15 ms more than the wall clock.)
#[test]
fn busy_time_never_grows_faster_than_the_wall_clock() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::time::Instant;
    let rt = rt(1);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let worker = rt.spawn(move || {
        while !s.load(SeqCst) {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(3) {
                std::hint::spin_loop();
            }
            coio::sleep(Duration::from_micros(200));
        }
    });
    let start = Instant::now();
    let mut previous: Option<(Instant, Duration)> = None;
    let mut ahead = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        let before = Instant::now();
        let busy = rt.metrics().workers[0].busy;
        let after = Instant::now();
        if let Some((then, was)) = previous {
            let grew = busy.saturating_sub(was);
            // The wall clock from before the previous read to after this
            // one, and 2 ms for a worker preempted between its clock read
            // and its store.
            if grew > after - then + Duration::from_millis(2) {
                ahead.push(grew - (after - then));
            }
        }
        previous = Some((before, busy));
    }
    stop.store(true, SeqCst);
    worker.join().unwrap();
    assert!(
        ahead.is_empty(),
        "busy time ran ahead of the wall clock: {ahead:?}"
    );
}
