//! What the runtime comparison binaries (`rt_coio`, `rt_tokio`, `rt_may`,
//! and the Go program in `bench/go/rt`) share: the command line, the sizes
//! of every case, the median, the resident-memory reading and the one line
//! of JSON each run prints.
//!
//! Every binary is called as `rt_<runtime> <case> <workers>` and prints one
//! line such as
//! `{"runtime":"tokio","case":"pingpong","workers":2,"ns_per_op":123.4,"samples":[...]}`.
//! The idle cases add `"bytes_per_coroutine"`. `bench/run.sh runtime` runs
//! them all, each in its own process, and prints the table.
//!
//! In every runtime the measuring code itself runs as a coroutine (task,
//! goroutine) of the runtime under test, as `main` does in Go: the spawner
//! shares the workers with what it spawns.
//!
//! The spawn cases wait the same way everywhere, as a wait group: each
//! spawned coroutine (detached, its join handle dropped) adds one to a
//! shared atomic counter, and the one that brings it to the target wakes the
//! measuring coroutine, once (tokio: a `Notify`; may and coio: `park` and
//! `unpark`; Go: a one-slot channel). Joining every handle instead would
//! also measure one wake-up of the spawner per coroutine, which `go`
//! statements do not have.

use std::time::Instant;

/// Coroutines spawned by `spawn_all` and `spawn_waves`.
pub const SPAWN_N: usize = 1_000_000;
/// Coroutines spawned and then joined at a time in `spawn_waves`.
pub const WAVE: usize = 1_000;
/// Coroutines yielding at once in `yield`.
pub const YIELDERS: usize = 100;
/// Yields each of them makes in `yield`.
pub const YIELDS_EACH: usize = 10_000;
/// Round trips in `pingpong`.
pub const ROUNDS: usize = 100_000;
/// Measured repetitions (after one warm-up run) of every case but idle.
pub const REPS: usize = 5;
/// How long the idle cases wait, once every coroutine has started, before
/// reading the resident set (so that the workers have parked them all).
pub const IDLE_SETTLE_MS: u64 = 200;

/// The case a binary is asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Spawn [`SPAWN_N`] trivial coroutines at once, then wait for all.
    SpawnAll,
    /// The same in waves of [`WAVE`].
    SpawnWaves,
    /// [`YIELDERS`] coroutines each yielding [`YIELDS_EACH`] times.
    Yield,
    /// Two coroutines passing a token back and forth [`ROUNDS`] times.
    PingPong,
    /// This many coroutines blocked for good (`idle100k`, `idle1m`, or any
    /// `idle<N>` with an optional `k` or `m` suffix).
    Idle(usize),
}

impl Case {
    /// Parses a case name.
    pub fn parse(s: &str) -> Option<Case> {
        Some(match s {
            "spawn_all" => Case::SpawnAll,
            "spawn_waves" => Case::SpawnWaves,
            "yield" => Case::Yield,
            "pingpong" => Case::PingPong,
            _ => {
                let n = s.strip_prefix("idle")?;
                let (digits, mul) = if let Some(d) = n.strip_suffix('k') {
                    (d, 1_000)
                } else if let Some(d) = n.strip_suffix('m') {
                    (d, 1_000_000)
                } else {
                    (n, 1)
                };
                Case::Idle(digits.parse::<usize>().ok()?.checked_mul(mul)?)
            }
        })
    }
}

/// The parsed command line: `<case> <workers> [variant]`.
pub struct Args {
    /// The case name as given (it goes into the JSON line unchanged).
    pub name: String,
    /// The case.
    pub case: Case,
    /// Worker threads of the runtime.
    pub workers: usize,
    /// An optional third word naming a variant of the runtime (`rt_may`
    /// takes `small` for its smallest workable stack).
    pub variant: Option<String>,
}

/// Reads the command line, or prints the usage and exits with status 2.
pub fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: {} <spawn_all|spawn_waves|yield|pingpong|idle100k|idle1m> <workers> [variant]",
            argv.first().map(String::as_str).unwrap_or("rt")
        );
        std::process::exit(2)
    };
    if argv.len() < 3 || argv.len() > 4 {
        usage();
    }
    let Some(case) = Case::parse(&argv[1]) else {
        usage()
    };
    let workers = match argv[2].parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => usage(),
    };
    Args {
        name: argv[1].clone(),
        case,
        workers,
        variant: argv.get(3).cloned(),
    }
}

/// Nanoseconds per op of a run that took from `start` until now for `ops`
/// ops.
pub fn ns_per(start: Instant, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// The median of the samples after the first (the warm-up), and those
/// samples.
pub fn median_after_warmup(mut samples: Vec<f64>) -> (f64, Vec<f64>) {
    if samples.len() > 1 {
        samples.remove(0);
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, samples)
}

/// Resident bytes of this process (`VmRSS` in /proc/self/status).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        * 1024
}

/// Prints the result line of a timed case.
pub fn report(runtime: &str, args: &Args, ns_per_op: f64, samples: &[f64]) {
    let samples: Vec<String> = samples.iter().map(|s| format!("{s:.1}")).collect();
    println!(
        "{{\"runtime\":\"{runtime}\",\"case\":\"{}\",\"workers\":{},\"ns_per_op\":{ns_per_op:.1},\"samples\":[{}]}}",
        args.name,
        args.workers,
        samples.join(",")
    );
}

/// Prints the result line of an idle case: `ns_per_op` is the time to
/// create one blocked coroutine (from the first spawn until the last one has
/// started), `bytes_per_coroutine` the growth of the resident set over the
/// baseline taken just before spawning, divided by the count.
pub fn report_idle(runtime: &str, args: &Args, ns_per_op: f64, bytes_per_coroutine: f64) {
    println!(
        "{{\"runtime\":\"{runtime}\",\"case\":\"{}\",\"workers\":{},\"ns_per_op\":{ns_per_op:.1},\"bytes_per_coroutine\":{bytes_per_coroutine:.1}}}",
        args.name, args.workers
    );
}

/// The value of a joined coroutine, or, if it panicked, its panic message
/// on stderr (as the last line, which `bench/run.sh` shows for a failed run)
/// and exit status 1.
pub fn joined<T>(result: std::thread::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            eprintln!("coroutine panicked: {msg}");
            std::process::exit(1);
        }
    }
}

/// Idle cases: resident bytes per coroutine since `baseline`.
pub fn bytes_per(baseline: usize, n: usize) -> f64 {
    rss_bytes().saturating_sub(baseline) as f64 / n as f64
}
