//! The resume + yield round trip of coio against corosensei's in one
//! process, built any way you like: the criterion benchmark (`switch`)
//! runs under the bench profile, and a program built with fat LTO and one
//! codegen unit inlines and lays out the two switches differently (issue
//! 13). Rounds interleave the two, `u64` values go each way, and each
//! prints its best of five rounds of ten million round trips.
//!
//! Run: `cargo bench -p coio-bench --bench switch_lto` (the bench
//! profile), and `cargo bench -p coio-bench --bench switch_lto --profile
//! release-lto` (fat LTO, `codegen-units = 1`; the workspace's profile).

use std::hint::black_box;
use std::time::Instant;

/// Round trips per round.
const N: u64 = 10_000_000;
/// Rounds of each.
const ROUNDS: usize = 5;

#[inline(never)]
fn coio_round(g: &mut coio::Generator<u64, u64, ()>) -> f64 {
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..N {
        match g.resume(black_box(i)) {
            coio::GeneratorState::Yielded(v) => acc = acc.wrapping_add(v),
            coio::GeneratorState::Complete(()) => unreachable!(),
        }
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / N as f64
}

#[inline(never)]
fn corosensei_round(c: &mut corosensei::Coroutine<u64, u64, ()>) -> f64 {
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..N {
        match c.resume(black_box(i)) {
            corosensei::CoroutineResult::Yield(v) => acc = acc.wrapping_add(v),
            corosensei::CoroutineResult::Return(()) => unreachable!(),
        }
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / N as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let mut g = coio::Generator::new(|y, mut x: u64| {
        loop {
            x = y.yield_(x.wrapping_mul(3));
        }
    });
    let mut c = corosensei::Coroutine::new(|y: &corosensei::Yielder<u64, u64>, mut x: u64| {
        loop {
            x = y.suspend(x.wrapping_mul(3));
        }
    });
    let (mut best_coio, mut best_coro) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        best_coio = best_coio.min(coio_round(&mut g));
        best_coro = best_coro.min(corosensei_round(&mut c));
    }
    println!(
        "round trip, best of {ROUNDS} x {N}: coio {best_coio:.3} ns, corosensei {best_coro:.3} ns, \
         coio / corosensei {:.3}",
        best_coio / best_coro
    );
}
