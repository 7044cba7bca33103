//! Many coroutines taking turns on one worker, each touching a few cache
//! lines of its own stack between yields: the cost of a resume whose
//! stack lines have gone cold, and a probe of how stacks sit in the cache
//! (their colouring, `coio::stack`).
//!
//! `stack_turns [COROUTINES] [ROUNDS] [LINES]` (defaults 500, 4000, 10):
//! COROUTINES coroutines on a 1-worker runtime, each with a buffer of
//! LINES cache lines on its stack, each round writing one byte of every
//! line and reading one back, then `yield_now`. Prints ns per yield.

use std::hint::black_box;
use std::time::Instant;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let n = arg(1, 500);
    let rounds = arg(2, 4000);
    let lines = arg(3, 10);
    assert!((1..=64).contains(&lines), "LINES is 1 to 64");
    let rt = coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    let ns = rt.block_on(move || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n)
            .map(|i| {
                coio::spawn(move || {
                    let mut buf = [0u8; 64 * 64];
                    let mut s = 0u64;
                    for r in 0..rounds {
                        for l in 0..lines {
                            let at = l * 64 + (r & 63);
                            buf[at] = buf[at].wrapping_add(i as u8);
                        }
                        s = s.wrapping_add(black_box(&buf)[(r * 7) & 63] as u64);
                        coio::yield_now();
                    }
                    s
                })
            })
            .collect();
        let sum = hs
            .into_iter()
            .fold(0u64, |a, h| a.wrapping_add(h.join().expect("no panic")));
        black_box(sum);
        t.elapsed().as_nanos() as f64 / (n * rounds) as f64
    });
    println!("{ns:.2} ns per yield ({n} coroutines, {lines} lines each)");
}
