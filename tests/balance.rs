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
