//! Stress: 2 workers, 100,000 coroutines doing random yields, parks,
//! unparks, spawns and sleeps; every coroutine accounted for (count and
//! checksum), and none ever observed on a second OS thread after it started.
//!
//! CI also runs this file in release mode with fat LTO, where inlining
//! across the whole program is most aggressive about caching thread-local
//! addresses.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coio::{Coroutine, Runtime};

thread_local! {
    static THREAD_MARK: Cell<usize> = const { Cell::new(0) };
}

/// An id of the current OS thread, read through a thread-local (what must
/// not go stale across switches).
fn thread_mark() -> usize {
    THREAD_MARK.with(|m| {
        if m.get() == 0 {
            m.set(m as *const Cell<usize> as usize);
        }
        m.get()
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct World {
    done: AtomicUsize,
    sum: AtomicU64,
    moved: AtomicUsize,
    /// Handles of some live coroutines, for random unparks.
    board: Vec<Mutex<Option<Coroutine>>>,
}

fn check_thread(w: &World, mark: usize) {
    if thread_mark() != mark {
        w.moved.fetch_add(1, SeqCst);
    }
}

/// One step of a coroutine's life.
enum Op {
    Yield,
    ParkTimeout(u64),
    Sleep(u64),
    Unpark(usize),
    Spawn(u64),
}

/// The steps of coroutine `id` at `depth`: random, but a pure function of
/// both, so that the expected count and checksum can be computed.
fn plan(id: u64, depth: u32, board: usize) -> Vec<Op> {
    let mut rng = Rng(id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..6)
        .map(|_| match rng.next() % 6 {
            0 | 1 => Op::Yield,
            2 => Op::ParkTimeout(rng.next() % 2000),
            3 => Op::Sleep(rng.next() % 2000),
            4 => Op::Unpark(rng.next() as usize % board),
            _ if depth < 2 => Op::Spawn(id * 7 + 1_000_000 * (depth as u64 + 1)),
            _ => Op::Yield,
        })
        .collect()
}

/// (count, sum of ids) of coroutine `id` and its descendants.
fn expected(id: u64, depth: u32, board: usize) -> (u64, u64) {
    let mut acc = (1, id);
    for op in plan(id, depth, board) {
        if let Op::Spawn(child) = op {
            let (c, s) = expected(child, depth + 1, board);
            acc = (acc.0 + c, acc.1.wrapping_add(s));
        }
    }
    acc
}

fn body(w: Arc<World>, id: u64, depth: u32) {
    let mark = thread_mark();
    let slot = (id as usize) % w.board.len();
    *w.board[slot].lock().unwrap() = Some(coio::current());
    for op in plan(id, depth, w.board.len()) {
        match op {
            Op::Yield => coio::yield_now(),
            Op::ParkTimeout(us) => coio::park_timeout(Duration::from_micros(us)),
            Op::Sleep(us) => coio::sleep(Duration::from_micros(us)),
            Op::Unpark(i) => {
                let other = w.board[i].lock().unwrap().clone();
                if let Some(c) = other {
                    c.unpark();
                }
            }
            Op::Spawn(child) => {
                let w2 = w.clone();
                let h = coio::spawn(move || {
                    body(w2, child, depth + 1);
                    child
                });
                assert_eq!(h.join().unwrap(), child);
            }
        }
        check_thread(&w, mark);
    }
    // Thread-local borrowed across a switch: the address stays this
    // thread's.
    THREAD_MARK.with(|m| {
        let before = m as *const Cell<usize>;
        coio::yield_now();
        assert_eq!(before as usize, thread_mark());
    });
    *w.board[slot].lock().unwrap() = None;
    w.sum.fetch_add(id, SeqCst);
    w.done.fetch_add(1, SeqCst);
}

#[test]
fn stress_100k_coroutines() {
    const N: u64 = 100_000;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let w = Arc::new(World {
        done: AtomicUsize::new(0),
        sum: AtomicU64::new(0),
        moved: AtomicUsize::new(0),
        board: (0..4096).map(|_| Mutex::new(None)).collect(),
    });
    let w2 = w.clone();
    rt.block_on(move || {
        let hs: Vec<_> = (1..=N)
            .map(|id| {
                let w = w2.clone();
                coio::spawn(move || body(w, id, 0))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let (count, sum) = (1..=N)
        .map(|id| expected(id, 0, w.board.len()))
        .fold((0, 0u64), |a, b| (a.0 + b.0, a.1.wrapping_add(b.1)));
    assert_eq!(w.done.load(SeqCst) as u64, count);
    assert_eq!(w.sum.load(SeqCst), sum);
    assert!(count > N, "the plan spawned no children");
    assert_eq!(
        w.moved.load(SeqCst),
        0,
        "a started coroutine changed thread"
    );
}

#[test]
fn exact_accounting_with_children() {
    // Deterministic checksum: every coroutine (top-level and child) adds
    // its id exactly once.
    let rt = Runtime::builder().workers(2).build().unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let (t2, c2) = (total.clone(), count.clone());
    rt.block_on(move || {
        let hs: Vec<_> = (0..20_000u64)
            .map(|i| {
                let (t, c) = (t2.clone(), c2.clone());
                coio::spawn(move || {
                    if i % 3 == 0 {
                        coio::yield_now();
                    }
                    let child = {
                        let (t, c) = (t.clone(), c.clone());
                        coio::spawn(move || {
                            coio::sleep(Duration::from_micros(i % 500));
                            t.fetch_add(i + 1_000_000, SeqCst);
                            c.fetch_add(1, SeqCst);
                        })
                    };
                    t.fetch_add(i, SeqCst);
                    c.fetch_add(1, SeqCst);
                    child.join().unwrap();
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let n = 20_000u64;
    assert_eq!(count.load(SeqCst), 2 * n);
    assert_eq!(total.load(SeqCst), 2 * (n * (n - 1) / 2) + n * 1_000_000);
}
