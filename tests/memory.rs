//! Memory: many live generators, resident memory per idle generator, memory
//! given back after a burst, and clear errors when stacks run out. The
//! tests measure the process's resident memory, so they run one at a time.

use std::sync::Mutex;

use coio::{Generator, GeneratorState, StackPolicy, Yielder};

static SERIAL: Mutex<()> = Mutex::new(());

fn rss() -> usize {
    coio::resident_bytes()
}

fn idle_generator(i: usize) -> Generator<(), usize, ()> {
    let mut g = Generator::new(move |y: &Yielder<(), usize>, ()| {
        y.yield_(i);
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(i));
    g
}

#[test]
fn burst_of_100_000_generators_gives_its_memory_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let baseline = rss();
    let gens: Vec<_> = (0..100_000).map(idle_generator).collect();
    let peak = rss();
    drop(gens);
    let after = rss();
    eprintln!(
        "100,000 idle generators: baseline {} MiB, peak {} MiB, after drop {} MiB",
        baseline >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        peak - baseline > 300 << 20,
        "100,000 live generators should hold at least a page each"
    );
    // What stays is the two caches' worth of stacks (64 + 1024), a few
    // pages each at most, plus allocator noise.
    assert!(
        after < baseline + (32 << 20),
        "memory not given back: {} MiB above baseline",
        (after - baseline) >> 20
    );
}

#[test]
fn a_million_live_generators_with_default_settings() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1_000_000;
    let baseline = rss();
    let mut gens = Vec::with_capacity(N);
    let vec_bytes = N * std::mem::size_of::<Generator<(), usize, ()>>();
    for i in 0..N {
        gens.push(idle_generator(i));
    }
    let per = (rss() - baseline - vec_bytes) as f64 / N as f64;
    eprintln!("1,000,000 idle generators: {per:.0} resident bytes each");
    // One touched page of stack plus its share of page tables.
    assert!(per < 4.5 * 1024.0, "{per} bytes per idle generator");
    // Every one of them is still alive and resumable.
    for (i, g) in gens.iter_mut().enumerate().step_by(997) {
        assert_eq!(g.resume(()), GeneratorState::Complete(()), "generator {i}");
    }
    drop(gens);
}

#[test]
fn guarded_policy_runs_out_of_mappings_with_a_clear_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut gens = Vec::new();
    let err = loop {
        match Generator::builder()
            .stack_policy(StackPolicy::Guarded)
            .build(|y: &Yielder<(), ()>, ()| y.yield_(()))
        {
            Ok(g) => gens.push(g),
            Err(e) => break e,
        }
        assert!(
            gens.len() < 40_000,
            "vm.max_map_count should stop guarded stacks near 16,000"
        );
    };
    let msg = err.to_string();
    assert!(msg.contains("vm.max_map_count"), "{msg}");
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
    // The default policy goes on with canary stacks.
    let mut g = Generator::new(|y: &Yielder<(), u32>, ()| y.yield_(5));
    assert_eq!(g.resume(()), GeneratorState::Yielded(5));
    eprintln!(
        "guarded stacks before the mapping budget ran out: {}",
        gens.len()
    );
}

#[test]
fn impossible_stack_size_is_an_error_not_a_crash() {
    for size in [usize::MAX, usize::MAX - 4095, coio::MAX_STACK_SIZE + 1] {
        let err = Generator::builder()
            .stack_size(size)
            .build(|_: &Yielder<(), ()>, ()| ())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    // Accepted, but more than this machine can map: the mapping fails.
    let err = Generator::builder()
        .stack_size(coio::MAX_STACK_SIZE)
        .build(|_: &Yielder<(), ()>, ()| ())
        .map(|_| ());
    if let Err(err) = err {
        assert!(err.to_string().starts_with("coio: "), "{err}");
    }
    let big = [0u8; 64 * 1024];
    let err = Generator::builder()
        .stack_size(16 * 1024)
        .build(move |_: &Yielder<(), u8>, ()| std::hint::black_box(big)[0])
        .unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

/// Threads making and dropping bursts of live generators at once: stacks go
/// through every level of the pool (thread caches, the shared cache, slabs
/// released with madvise and unmapped when empty, slabs handed between
/// threads) under contention, and every generator still runs correctly.
#[test]
fn concurrent_bursts_through_the_shared_pool() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut total = 0u64;
                for round in 0..6u64 {
                    let n = 2_000 + 1_000 * ((t + round) % 3) as usize;
                    let policy = if (t + round) % 2 == 0 {
                        StackPolicy::Auto
                    } else {
                        StackPolicy::Canary
                    };
                    let mut gens: Vec<Generator<u64, u64, u64>> = (0..n)
                        .map(|i| {
                            Generator::builder()
                                .stack_policy(policy)
                                .build(move |y: &Yielder<u64, u64>, x: u64| {
                                    let x = y.yield_(x + i as u64);
                                    x * 2
                                })
                                .unwrap()
                        })
                        .collect();
                    for (i, g) in gens.iter_mut().enumerate() {
                        assert_eq!(g.resume(round), GeneratorState::Yielded(round + i as u64));
                    }
                    // Half finish, half are dropped suspended (forced unwind).
                    for (i, g) in gens.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
                        match g.resume(i as u64) {
                            GeneratorState::Complete(v) => total += v,
                            GeneratorState::Yielded(_) => panic!("generator {i} yielded twice"),
                        }
                    }
                    drop(gens);
                }
                total
            })
        })
        .collect();
    for (t, h) in threads.into_iter().enumerate() {
        let expected: u64 = (0..6u64)
            .map(|round| {
                let n = 2_000 + 1_000 * ((t as u64 + round) % 3);
                (0..n).filter(|i| i % 2 == 0).map(|i| i * 2).sum::<u64>()
            })
            .sum();
        assert_eq!(h.join().unwrap(), expected, "thread {t}");
    }
}
