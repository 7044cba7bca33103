//! `coroutine_local!`: the cost of one `LocalKey::with` on a value that
//! exists already, in a coroutine and on a plain thread, beside std's
//! `thread_local!` for orientation.
//!
//! * `local/coroutine`: `with` inside a coroutine of a 1-worker runtime
//!   (the loop runs in the coroutine; criterion's `iter_custom` times it);
//! * `local/plain_thread`: the same key on the benchmark's own thread;
//! * `local/std_thread_local`: `std::thread_local!`'s `with`.
//!
//! Run: `cargo bench -p coio-bench --bench local`

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

coio::coroutine_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

thread_local! {
    static STD_COUNTER: Cell<u64> = const { Cell::new(0) };
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("local");
    let rt = coio::Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    group.bench_function("coroutine", |b| {
        b.iter_custom(|iters| {
            rt.block_on(|| {
                COUNTER.with(|c| c.set(0));
                let start = Instant::now();
                for _ in 0..iters {
                    COUNTER.with(|c| c.set(black_box(c.get() + 1)));
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("plain_thread", |b| {
        b.iter(|| COUNTER.with(|c| c.set(black_box(c.get() + 1))));
    });
    group.bench_function("std_thread_local", |b| {
        b.iter(|| STD_COUNTER.with(|c| c.set(black_box(c.get() + 1))));
    });
    group.finish();
}

criterion_group!(benches, local);
criterion_main!(benches);
