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
