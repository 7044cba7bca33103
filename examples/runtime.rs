//! A tour of coio's runtime: Go's model with std's names.
//!
//! Run: `cargo run --release --example runtime`
//!
//! Blocking-style code (`sleep`, `join`, `park`) runs in coroutines that are
//! scheduled M:N over worker threads; a blocked coroutine costs its stack
//! and a small header, not a thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

fn main() {
    let rt = coio::Runtime::builder().build().expect("runtime");
    println!("runtime with {} workers", rt.workers());

    rt.block_on(|| {
        // 1. Fan out 100,000 coroutines that each sleep 10 ms: they all
        //    sleep at the same time, so this takes ~10 ms, not 1,000 s.
        let t = Instant::now();
        let done = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..100_000u64)
            .map(|i| {
                let done = done.clone();
                coio::spawn(move || {
                    coio::sleep(Duration::from_millis(10));
                    done.fetch_add(1, Relaxed);
                    i
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        println!(
            "100,000 sleeping coroutines joined in {:?} (sum of ids {sum}, {} done)",
            t.elapsed(),
            done.load(Relaxed)
        );

        // 2. Scoped coroutines borrow from the stack, as std::thread::scope.
        let words = ["stackful", "coroutines", "on", "stable", "rust"];
        let total: usize = coio::scope(|s| {
            let hs: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        println!("scoped coroutines counted {total} letters in borrowed words");

        // 3. park/unpark: a handoff between two coroutines.
        let rounds = 1_000_000u64;
        let turn = Arc::new(AtomicU64::new(0));
        let main = coio::current();
        let t2 = turn.clone();
        let other = coio::spawn(move || {
            for i in 0..rounds {
                while t2.load(Relaxed) != 2 * i + 1 {
                    coio::park();
                }
                t2.store(2 * i + 2, Relaxed);
                main.unpark();
            }
        });
        let oc = other.coroutine();
        let t = Instant::now();
        for i in 0..rounds {
            turn.store(2 * i + 1, Relaxed);
            oc.unpark();
            while turn.load(Relaxed) != 2 * i + 2 {
                coio::park();
            }
        }
        let per = t.elapsed() / rounds as u32;
        other.join().unwrap();
        println!("park/unpark ping-pong: {per:?} per round trip");

        // 4. Cancellation unwinds a blocked coroutine, destructors and all.
        let sleeper = coio::Builder::new()
            .name("sleepy")
            .spawn(|| coio::sleep(Duration::from_secs(3600)))
            .unwrap();
        coio::sleep(Duration::from_millis(1));
        sleeper.cancel();
        let err = sleeper.join().unwrap_err();
        println!(
            "cancelled the 'sleepy' coroutine: join returned Cancelled = {}",
            err.is::<coio::Cancelled>()
        );
    });
}
