//! The balance comparison (issue 12): how well a runtime keeps every core
//! busy when its coroutines started in a quiet moment and get busy later.
//! `balance_coio`, `balance_tokio` and the Go program in `bench/go/balance`
//! run the same scenario and print one line of JSON each:
//!
//! 1. 64 coroutines (tasks, goroutines) start and block at once, each on
//!    its own channel; the spawner sleeps 20 ms;
//! 2. then for [`ROUNDS`] rounds the spawner hands some of them
//!    [`WORK_MS`] ms of CPU work each, done in [`SLICE_US`] µs slices with
//!    a yield between, and waits until every one has reported back.
//!
//! Cases: `all` (all 64 busy every round), `random8` (8 of the 64, picked
//! at random each round, the same sequence in every runtime: [`Rng`]) and
//! `child` (all 64, each handing its work to a new child coroutine and
//! joining it). Efficiency = (CPU work handed out / cores used) / wall time
//! of the rounds, where cores used = the fewer of the workers and the
//! machine's cores: 1.0 when every core computes all the time (with more
//! workers than cores, as in the kernel-balancing runs, the cores are the
//! limit).

/// Coroutines that start, block and later get work.
pub const COROUTINES: usize = 64;
/// Rounds of work.
pub const ROUNDS: usize = 10;
/// CPU work per busy coroutine per round, in ms.
pub const WORK_MS: u64 = 2;
/// The slices the work is done in, with a yield between, in µs.
pub const SLICE_US: u64 = 50;
/// Busy coroutines per round in `random8`.
pub const RANDOM_BUSY: usize = 8;

/// The cases, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    All,
    Random8,
    Child,
}

impl Case {
    pub fn parse(s: &str) -> Case {
        match s {
            "all" => Case::All,
            "random8" => Case::Random8,
            "child" => Case::Child,
            _ => panic!("case: all | random8 | child"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Case::All => "all",
            Case::Random8 => "random8",
            Case::Child => "child",
        }
    }
}

/// The command line: `<case> <workers>`.
pub fn args() -> (Case, usize) {
    let a: Vec<String> = std::env::args().collect();
    let case = Case::parse(a.get(1).map(String::as_str).unwrap_or("all"));
    let workers = a.get(2).and_then(|w| w.parse().ok()).unwrap_or(2);
    (case, workers)
}

/// xorshift64*, seeded the same everywhere (the Go program has the same).
pub struct Rng(u64);

impl Default for Rng {
    fn default() -> Self {
        Rng(0x9e37_79b9_7f4a_7c15)
    }
}

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `k` distinct indices below `n`.
    pub fn pick(&mut self, k: usize, n: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + (self.next_u64() % (n - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// Which coroutines are busy in each round.
pub fn schedule(case: Case) -> Vec<Vec<usize>> {
    let mut rng = Rng::default();
    (0..ROUNDS)
        .map(|_| match case {
            Case::Random8 => rng.pick(RANDOM_BUSY, COROUTINES),
            _ => (0..COROUTINES).collect(),
        })
        .collect()
}

/// Spins for one slice of work (by the clock: the work is CPU time the
/// thread spends, whatever the machine's speed).
pub fn slice() {
    let end = std::time::Instant::now() + std::time::Duration::from_micros(SLICE_US);
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// Slices in one coroutine's work of a round.
pub const SLICES: u64 = WORK_MS * 1000 / SLICE_US;

/// Prints the result line.
pub fn report(
    runtime: &str,
    case: Case,
    workers: usize,
    busy_total: usize,
    secs: f64,
    extra: &str,
) {
    let work = busy_total as f64 * WORK_MS as f64 / 1000.0;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let efficiency = work / workers.min(cores) as f64 / secs;
    println!(
        "{{\"runtime\":\"{runtime}\",\"case\":\"{}\",\"workers\":{workers},\"efficiency\":{efficiency:.3},\"secs\":{secs:.4}{extra}}}",
        case.name()
    );
}
