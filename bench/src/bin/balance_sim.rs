//! What placement cannot fix, worked out: the expected efficiency of the
//! balance comparison's `random8` case (see `coio_bench::balance`) when
//! coroutines never move after they start, at more workers than this
//! machine has. `balance_sim` prints a Markdown table.
//!
//! Model: `32 × workers` coroutines, homed exactly evenly (the best any
//! placement can do: 32 per worker); each round an eighth of them, picked
//! at random, get the same amount of CPU work (the `random8` density: 8 of
//! 64 on 2 workers). A worker runs its own busy coroutines one after
//! another, so a round lasts as long as the busiest worker's share takes,
//! while the work could have been spread evenly. Efficiency = Σ (busy /
//! workers) / Σ (busy coroutines on the busiest worker) over 100,000
//! rounds per row (a fixed seed), as the benchmark measures it (work over
//! time, not the mean of each round's ratio); the last column gives the
//! share of rounds that alone reach 0.9. A runtime that moves running
//! coroutines between workers (Go, tokio) spreads them and stays near 1.

use coio_bench::balance::Rng;

fn main() {
    println!("| workers | coroutines | busy per round | expected efficiency | rounds at ≥ 0.9 |");
    println!("|---|---|---|---|---|");
    let mut rng = Rng::default();
    for workers in [2usize, 4, 8, 16, 64] {
        let n = 32 * workers;
        let busy = n / 8;
        let rounds = 100_000;
        let (mut ideal, mut taken, mut good) = (0.0, 0.0, 0usize);
        let mut per = vec![0usize; workers];
        for _ in 0..rounds {
            per.iter_mut().for_each(|c| *c = 0);
            for i in rng.pick(busy, n) {
                // Coroutine i is homed on worker i % workers.
                per[i % workers] += 1;
            }
            let max = *per.iter().max().unwrap();
            let eff = busy as f64 / workers as f64 / max as f64;
            ideal += busy as f64 / workers as f64;
            taken += max as f64;
            good += usize::from(eff >= 0.9);
        }
        println!(
            "| {workers} | {n} | {busy} | {:.2} | {:.0}% |",
            ideal / taken,
            100.0 * good as f64 / rounds as f64
        );
    }
}
