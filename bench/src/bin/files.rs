//! The file comparison: coio's files through io_uring (`IoDriver::Uring`),
//! through its blocking pool (`IoDriver::Epoll`), and tokio's `fs` (its
//! blocking pool), in one process, rounds alternating between them.
//!
//! `files [ROUNDS] [SECS]` (defaults 5 and 2) prints, per case and
//! runtime, the median over the rounds with the spread (min–max), and the
//! process's CPU time per operation (every thread's: workers, pool
//! threads, the kernel's io_uring workers).
//!
//! Cases, on warm files (the page cache) except the last:
//! - `small_files`: 64 coroutines (tasks), each reading its own 4 KiB file
//!   whole with `fs::read` (open, read, close) in a loop; ops/s.
//! - `reads_4k`: 64 coroutines (tasks), each with its own open 1 MiB file,
//!   `read`ing 4 KiB at a time in a loop (rewinding at the end); ops/s.
//! - `large_read`: one coroutine (task) reading a 256 MiB file from start
//!   to end with a 1 MiB buffer; MB/s.
//! - `cold_reads`: 64 coroutines (tasks), each reading its own 1 MiB file
//!   whole with `fs::read` after dropping the file's pages from the page
//!   cache (`posix_fadvise(DONTNEED)`, on the spot, the same for all), so
//!   that every read goes to the disk; ops/s (one op: 1 MiB from disk).
//!
//! One worker thread for each runtime (tokio's multi-thread flavour with
//! one worker); their pools as configured by default.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const TASKS: usize = 64;
const SMALL: usize = 4096;
const MEDIUM: usize = 1 << 20;
const LARGE: usize = 256 << 20;
const LARGE_BUF: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Runtime {
    CoioUring,
    CoioPool,
    Tokio,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::CoioUring => "coio io_uring",
            Runtime::CoioPool => "coio pool",
            Runtime::Tokio => "tokio fs",
        }
    }
}

#[derive(Clone, Copy)]
enum Case {
    SmallFiles,
    Reads4k,
    LargeRead,
    ColdReads,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::SmallFiles => "small_files (ops/s)",
            Case::Reads4k => "reads_4k (ops/s)",
            Case::LargeRead => "large_read (MB/s)",
            Case::ColdReads => "cold_reads (ops/s)",
        }
    }
}

/// Process CPU time (all threads).
fn cpu() -> Duration {
    // SAFETY: rusage is plain data; a valid out-pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Files {
    small: Vec<PathBuf>,
    medium: Vec<PathBuf>,
    large: PathBuf,
}

fn setup(dir: &Path) -> Files {
    std::fs::create_dir_all(dir).unwrap();
    let make = |name: String, len: usize| {
        let p = dir.join(name);
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&p, data).unwrap();
        p
    };
    let files = Files {
        small: (0..TASKS)
            .map(|i| make(format!("small{i}"), SMALL))
            .collect(),
        medium: (0..TASKS)
            .map(|i| make(format!("medium{i}"), MEDIUM))
            .collect(),
        large: make("large".into(), LARGE),
    };
    // Written back, so that `evict` can drop their pages.
    for p in &files.medium {
        std::fs::File::open(p).unwrap().sync_all().unwrap();
    }
    // Warm the page cache.
    std::fs::read(&files.large).unwrap();
    files
}

/// Drops the pages of the file at `path` from the page cache (they are
/// clean: `setup` synced them), so that its next read goes to the disk.
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: plain fadvise on a descriptor we hold.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise");
}

/// Runs `case` on `rt` for `secs` (the large read: once); returns the rate
/// and the CPU time per operation in µs.
fn measure(rt: Runtime, case: Case, files: &Files, secs: f64) -> (f64, f64) {
    let ops = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let dur = Duration::from_secs_f64(secs);
    let cpu0 = cpu();
    let t0 = Instant::now();
    match rt {
        Runtime::CoioUring | Runtime::CoioPool => {
            let driver = if rt == Runtime::CoioUring {
                coio::IoDriver::Uring
            } else {
                coio::IoDriver::Epoll
            };
            let r = coio::Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            if rt == Runtime::CoioUring && r.io_driver() != coio::IoDriver::Uring {
                eprintln!("files: io_uring fell back to epoll here");
                std::process::exit(1);
            }
            r.block_on(|| coio_case(case, files, &ops, &stop, dur));
        }
        Runtime::Tokio => {
            let r = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_time()
                .build()
                .unwrap();
            r.block_on(tokio_case(case, files, ops.clone(), stop.clone(), dur));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu() - cpu0).as_secs_f64();
    let n = ops.load(Relaxed) as f64;
    match case {
        Case::LargeRead => (
            LARGE as f64 / wall / 1e6,
            cpu * 1e6 / (LARGE / LARGE_BUF) as f64,
        ),
        _ => (n / wall, cpu * 1e6 / n),
    }
}

fn coio_case(
    case: Case,
    files: &Files,
    ops: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    dur: Duration,
) {
    if let Case::LargeRead = case {
        let mut f = coio::fs::File::open(&files.large).unwrap();
        let mut buf = vec![0u8; LARGE_BUF];
        let mut total = 0;
        loop {
            match f.read(&mut buf).unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert_eq!(total, LARGE);
        return;
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (ops, stop) = (ops.clone(), stop.clone());
            let (small, medium) = (files.small[i].clone(), files.medium[i].clone());
            coio::spawn(move || match case {
                Case::SmallFiles => {
                    while !stop.load(Relaxed) {
                        assert_eq!(coio::fs::read(&small).unwrap().len(), SMALL);
                        ops.fetch_add(1, Relaxed);
                    }
                }
                Case::ColdReads => {
                    while !stop.load(Relaxed) {
                        evict(&medium);
                        assert_eq!(coio::fs::read(&medium).unwrap().len(), MEDIUM);
                        ops.fetch_add(1, Relaxed);
                    }
                }
                _ => {
                    let mut f = coio::fs::File::open(&medium).unwrap();
                    let mut buf = [0u8; 4096];
                    while !stop.load(Relaxed) {
                        if f.read(&mut buf).unwrap() == 0 {
                            f.seek(SeekFrom::Start(0)).unwrap();
                        }
                        ops.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    coio::sleep(dur);
    stop.store(true, Relaxed);
    for t in tasks {
        t.join().unwrap();
    }
}

async fn tokio_case(
    case: Case,
    files: &Files,
    ops: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    dur: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    if let Case::LargeRead = case {
        let mut f = tokio::fs::File::open(&files.large).await.unwrap();
        f.set_max_buf_size(LARGE_BUF);
        let mut buf = vec![0u8; LARGE_BUF];
        let mut total = 0;
        loop {
            match f.read(&mut buf).await.unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert_eq!(total, LARGE);
        return;
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (ops, stop) = (ops.clone(), stop.clone());
            let (small, medium) = (files.small[i].clone(), files.medium[i].clone());
            tokio::spawn(async move {
                match case {
                    Case::SmallFiles => {
                        while !stop.load(Relaxed) {
                            assert_eq!(tokio::fs::read(&small).await.unwrap().len(), SMALL);
                            ops.fetch_add(1, Relaxed);
                        }
                    }
                    Case::ColdReads => {
                        while !stop.load(Relaxed) {
                            evict(&medium);
                            assert_eq!(tokio::fs::read(&medium).await.unwrap().len(), MEDIUM);
                            ops.fetch_add(1, Relaxed);
                        }
                    }
                    _ => {
                        let mut f = tokio::fs::File::open(&medium).await.unwrap();
                        let mut buf = [0u8; 4096];
                        while !stop.load(Relaxed) {
                            if f.read(&mut buf).await.unwrap() == 0 {
                                f.seek(SeekFrom::Start(0)).await.unwrap();
                            }
                            ops.fetch_add(1, Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(dur).await;
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let secs: f64 = args.next().map_or(2.0, |a| a.parse().expect("SECS"));
    let dir = std::env::temp_dir().join(format!("coio-files-bench-{}", std::process::id()));
    let files = setup(&dir);
    let runtimes = [Runtime::CoioUring, Runtime::CoioPool, Runtime::Tokio];
    let cases = [
        Case::SmallFiles,
        Case::Reads4k,
        Case::LargeRead,
        Case::ColdReads,
    ];
    // results[case][runtime] = [(rate, cpu)]
    let mut results = vec![vec![Vec::new(); runtimes.len()]; cases.len()];
    for round in 0..rounds {
        for (c, &case) in cases.iter().enumerate() {
            // Alternate the order between rounds.
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            for r in order {
                if let Ok(only) = std::env::var("FILES_ONLY")
                    && !runtimes[r].name().contains(only.as_str())
                {
                    continue;
                }
                if std::env::var_os("FILES_TRACE").is_some() {
                    eprintln!("round {round}: {} on {}", case.name(), runtimes[r].name());
                }
                results[c][r].push(measure(runtimes[r], case, &files, secs));
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!(
        "{:<22} {:<14} {:>12} {:>21} {:>12}",
        "case", "runtime", "median", "spread", "cpu us/op"
    );
    for (c, &case) in cases.iter().enumerate() {
        for (r, &rt) in runtimes.iter().enumerate() {
            if results[c][r].is_empty() {
                continue;
            }
            let mut rates: Vec<f64> = results[c][r].iter().map(|x| x.0).collect();
            let mut cpus: Vec<f64> = results[c][r].iter().map(|x| x.1).collect();
            rates.sort_by(f64::total_cmp);
            cpus.sort_by(f64::total_cmp);
            println!(
                "{:<22} {:<14} {:>12.0} {:>10.0}–{:<10.0} {:>12.2}",
                case.name(),
                rt.name(),
                rates[rates.len() / 2],
                rates[0],
                rates[rates.len() - 1],
                cpus[cpus.len() / 2]
            );
        }
    }
}
