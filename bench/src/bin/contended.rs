//! Channel traffic between coroutines of several workers on a machine
//! whose cores are busy with something else: `contended [WORKERS] [HOGS]`
//! (defaults 2 and 0) runs [`ROUNDS`] rounds, each in a fresh runtime, of
//! 8 producers sending 2,000 values each round-robin over 4 channels
//! (capacities 0 to 3) drained by 4 consumers, while `HOGS` child
//! processes spin. It prints the milliseconds per round (median, min,
//! max) and the runtime's CPU time per round (this process's; the hogs'
//! is theirs).
//!
//! From a user-program review (eighth sitting): with 1 worker a round took
//! ~2 ms, with 2 workers 3–50 ms and with 4 up to 140 ms on the 2-core
//! machine under load, most of the CPU in the workers' search for work
//! (a started coroutine runs only on its home worker, so each handoff
//! between workers waits for that worker's thread to get a core, while the
//! searching one spins). Kept to measure changes to the idle protocol.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use coio::chan;

/// Rounds per run.
const ROUNDS: usize = 20;

fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to our rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn round(workers: usize) {
    let rt = coio::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime");
    let n = rt.block_on(|| {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..4).map(chan::bounded::<u64>).unzip();
        let producers: Vec<_> = (0..8usize)
            .map(|p| {
                let txs = txs.clone();
                coio::spawn(move || {
                    for i in 0..2000usize {
                        txs[(p + i) % 4].send(i as u64).expect("a consumer left");
                    }
                })
            })
            .collect();
        drop(txs);
        let consumers: Vec<_> = rxs
            .into_iter()
            .map(|rx| coio::spawn(move || rx.iter().count()))
            .collect();
        for p in producers {
            p.join().expect("producer panicked");
        }
        consumers
            .into_iter()
            .map(|c| c.join().expect("consumer panicked"))
            .sum::<usize>()
    });
    assert_eq!(n, 16_000);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("hog") {
        loop {
            std::hint::spin_loop();
        }
    }
    let workers = first.map_or(2, |a| a.parse().expect("WORKERS"));
    let hogs = args.next().map_or(0, |a| a.parse().expect("HOGS"));
    let exe = std::env::current_exe().expect("this program");
    let mut hog_procs: Vec<Child> = (0..hogs)
        .map(|_| Command::new(&exe).arg("hog").spawn().expect("a hog"))
        .collect();
    round(workers); // warm-up
    let cpu = cpu_time();
    let mut ms: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            round(workers);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let cpu = (cpu_time() - cpu).as_secs_f64() * 1e3 / ROUNDS as f64;
    for h in &mut hog_procs {
        let _ = h.kill();
        let _ = h.wait();
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "workers {workers} hogs {hogs}: ms per round median {:.2} min {:.2} max {:.2}; CPU ms per round {cpu:.2}",
        ms[ROUNDS / 2],
        ms[0],
        ms[ROUNDS - 1]
    );
}
