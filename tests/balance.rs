//! Placement (issue 12): where coroutines that block right after they
//! start end up. A started coroutine never changes worker, so a burst of
//! spawns that all start on the spawner's worker keeps that worker loaded
//! for their whole life. After a burst, every worker must home between
//! 0.75× and 1.25× its share, whatever the spawner does next.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use coio::Runtime;

/// What the spawner does once it has spawned the burst.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Keeps running for 20 ms (yielding now and then, as a busy
    /// coroutine that plays fair does), then collects.
    KeepsRunning,
    /// Blocks at once, collecting the coroutines' reports.
    Blocks,
    /// Sleeps 20 ms, then collects.
    Sleeps,
}

/// Spawns 100 × `workers` coroutines that report their thread and block;
/// returns how many started on each worker thread.
fn homes(workers: usize, then: Then) -> Vec<usize> {
    let rt = Runtime::builder()
        .workers(workers)
        .stall_warning(None)
        .build()
        .unwrap();
    let n = 100 * workers;
    let mut counts = rt.block_on(move || {
        let (report, reports) = coio::chan::unbounded();
        let (hold, wait) = coio::chan::bounded::<()>(0);
        for _ in 0..n {
            let (report, wait) = (report.clone(), wait.clone());
            coio::spawn(move || {
                report.send(std::thread::current().id()).unwrap();
                let _ = wait.recv();
            });
        }
        match then {
            Then::KeepsRunning => {
                let end = Instant::now() + Duration::from_millis(20);
                while Instant::now() < end {
                    for _ in 0..1000 {
                        std::hint::spin_loop();
                    }
                    coio::yield_now();
                }
            }
            Then::Blocks => {}
            Then::Sleeps => coio::sleep(Duration::from_millis(20)),
        }
        let mut per: HashMap<_, usize> = HashMap::new();
        for _ in 0..n {
            *per.entry(reports.recv().unwrap()).or_default() += 1;
        }
        drop(hold);
        per.into_values().collect::<Vec<_>>()
    });
    counts.resize(workers, 0);
    counts.sort_unstable();
    counts
}

fn check(workers: usize, then: Then) {
    let counts = homes(workers, then);
    let share = 100.0;
    let ok = counts
        .iter()
        .all(|&c| (0.75 * share..=1.25 * share).contains(&(c as f64)));
    assert!(
        ok,
        "{workers} workers, spawner {then:?}: homes {counts:?}, share {share}"
    );
}

#[test]
fn burst_spreads_over_2_workers() {
    for then in [Then::KeepsRunning, Then::Blocks, Then::Sleeps] {
        check(2, then);
    }
}

#[test]
fn burst_spreads_over_4_workers() {
    for then in [Then::KeepsRunning, Then::Blocks, Then::Sleeps] {
        check(4, then);
    }
}

#[test]
fn burst_spreads_over_16_workers() {
    for then in [Then::KeepsRunning, Then::Blocks, Then::Sleeps] {
        check(16, then);
    }
}

/// The echo example's accept loop, unchanged.
#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

/// A server whose connections arrive in a quiet burst: 1,000 clients
/// connect one after another to `examples/echo.rs`'s accept loop (each
/// sends a byte and waits for its echo, so its handler has started), and
/// stay connected. Their handlers must spread over the workers like any
/// other burst.
#[test]
fn accepted_connections_spread_over_workers() {
    use std::io::{Read, Write};
    const CONNS: usize = 1000;
    for workers in [2, 4] {
        let rt = Runtime::builder()
            .workers(workers)
            .stall_warning(None)
            .build()
            .unwrap();
        let listener = rt
            .block_on(|| coio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(move || echo::accept_loop(&listener));
        std::thread::sleep(Duration::from_millis(20));
        let clients: Vec<std::net::TcpStream> = (0..CONNS)
            .map(|_| {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(b"x").unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).unwrap();
                c
            })
            .collect();
        let mut homes = rt.worker_homes();
        // The accept loop is homed somewhere too.
        let total: usize = homes.iter().sum();
        assert_eq!(total, CONNS + 1, "{homes:?}");
        homes.sort_unstable();
        println!("{workers} workers: connections homed {homes:?}");
        let share = CONNS as f64 / workers as f64;
        assert!(
            homes
                .iter()
                .all(|&h| (0.75 * share..=1.25 * share).contains(&(h as f64))),
            "{workers} workers: connections homed {homes:?}, share {share}"
        );
        drop(clients);
        drop(rt);
    }
}

/// Busy time counts too: with the coroutines homed evenly over 2 workers
/// but those of one worker kept busy, a burst spawned on the busy worker
/// starts on the other one, which has time to run it. By counts alone it
/// would split evenly (16 of 32 each way).
#[test]
fn fresh_coroutines_start_where_there_is_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    const HOMED: usize = 32;
    const BURST: usize = 32;
    let rt = Runtime::builder()
        .workers(2)
        .stall_warning(None)
        .build()
        .unwrap();
    let (busy_worker, children) = rt.block_on(|| {
        let (report, reports) = coio::chan::unbounded();
        let (burst_report, burst_reports) = coio::chan::unbounded();
        let (hold, held) = coio::chan::bounded::<()>(0);
        let stop = Arc::new(AtomicBool::new(false));
        let mut gates = Vec::new();
        for i in 0..HOMED {
            let (gate, wait) = coio::chan::bounded::<()>(1);
            gates.push(gate);
            let (report, burst_report, held, stop) = (
                report.clone(),
                burst_report.clone(),
                held.clone(),
                stop.clone(),
            );
            coio::spawn(move || {
                report.send((i, std::thread::current().id())).unwrap();
                if wait.recv().is_err() {
                    return;
                }
                // Busy in 50 µs slices, yielding between them.
                let start = Instant::now();
                let mut spawned = false;
                while !stop.load(Relaxed) {
                    let slice = Instant::now() + Duration::from_micros(50);
                    while Instant::now() < slice {
                        std::hint::spin_loop();
                    }
                    if i == 0 && !spawned && start.elapsed() > Duration::from_millis(400) {
                        // The burst, from the busy worker.
                        spawned = true;
                        for _ in 0..BURST {
                            let (burst_report, held) = (burst_report.clone(), held.clone());
                            coio::spawn(move || {
                                burst_report.send(std::thread::current().id()).unwrap();
                                let _ = held.recv();
                            });
                        }
                    }
                    coio::yield_now();
                }
            });
        }
        let homes: HashMap<usize, std::thread::ThreadId> =
            (0..HOMED).map(|_| reports.recv().unwrap()).collect();
        let busy_worker = homes[&0];
        for (i, gate) in gates.iter().enumerate() {
            if homes[&i] == busy_worker {
                gate.send(()).unwrap();
            }
        }
        let children: Vec<_> = (0..BURST).map(|_| burst_reports.recv().unwrap()).collect();
        stop.store(true, Relaxed);
        drop(gates);
        drop(hold);
        (busy_worker, children)
    });
    let on_idle = children.iter().filter(|&&t| t != busy_worker).count();
    println!("burst from the busy worker: {on_idle} of {BURST} started on the idle one");
    assert!(
        on_idle >= BURST * 3 / 4,
        "only {on_idle} of {BURST} fresh coroutines started on the idle worker"
    );
}
