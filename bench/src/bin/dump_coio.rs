//! How long a coroutine dump takes: N coroutines parked on channels at
//! `DISTINCT` different depths of a recursive call chain (so that stacks
//! differ), on 2 workers, dumped from a plain thread with
//! `Runtime::dump` (every coroutine's stack walked and named) and with
//! `Runtime::dump_grouped`. Prints the best and median of 5 runs of each.
//!
//! Usage: dump_coio [N] (default 100000).

use std::hint::black_box;
use std::time::{Duration, Instant};

const DISTINCT: usize = 20;

#[inline(never)]
fn descend(depth: usize, rx: &coio::chan::Receiver<()>) -> usize {
    if depth == 0 {
        let _ = rx.recv();
        return 0;
    }
    black_box(descend(depth - 1, rx)) + 1
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N"))
        .unwrap_or(100_000);
    let rt = coio::Runtime::builder()
        .workers(2)
        .stall_warning(None)
        .build()
        .unwrap();
    let (tx, rx) = coio::chan::bounded::<()>(0);
    let t = Instant::now();
    let handles = rt.block_on(|| {
        (0..n)
            .map(|i| {
                let rx = rx.clone();
                coio::spawn(move || descend(i % DISTINCT, &rx))
            })
            .collect::<Vec<_>>()
    });
    // Wait until every coroutine is parked.
    loop {
        let m = rt.metrics();
        if m.workers.iter().map(|w| w.homed).sum::<usize>() == n
            && m.workers.iter().all(|w| w.runnable == 0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "{n} coroutines parked in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    for grouped in [false, true] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let mut out = Vec::with_capacity(64 << 20);
            let t = Instant::now();
            if grouped {
                rt.dump_grouped(&mut out).unwrap();
            } else {
                rt.dump(&mut out).unwrap();
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = out.len();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.starts_with(&format!("coio: dump of {} coroutine(s)", n)),
                "{}",
                &text[..200.min(text.len())]
            );
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{}: best {:.0} ms, median {:.0} ms, worst {:.0} ms ({} bytes)",
            if grouped { "dump_grouped" } else { "dump" },
            times[0],
            times[2],
            times[4],
            bytes
        );
    }
    drop(tx);
    for h in handles {
        h.join().unwrap();
    }
}
