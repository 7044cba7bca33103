//! Context switch and coroutine creation: coio against corosensei and the
//! `generator` crate (the switch under the `may` runtime), in one run.
//!
//! * `roundtrip/*`: one resume plus one yield back, on a warm coroutine,
//!   passing a `usize` each way; `roundtrip_string/*` moves a `String`.
//! * `create/*`: create + first resume (runs to completion) + drop. coio
//!   takes its stack from its warm pool; corosensei reuses one stack (its
//!   fastest mode); the generator crate maps a fresh stack each time (it has
//!   no pool), shown for orientation.
//!
//! Run: `cargo bench -p coio-bench --bench switch`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn roundtrip(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip");

    let mut g = coio::Generator::new(|y, mut x: usize| {
        loop {
            x = y.yield_(x);
        }
    });
    group.bench_function("coio", |b| {
        b.iter(|| g.resume(black_box(1)));
    });
    drop(g);

    let mut co =
        corosensei::Coroutine::new(|y: &corosensei::Yielder<usize, usize>, mut x: usize| {
            loop {
                x = y.suspend(x);
            }
        });
    group.bench_function("corosensei", |b| {
        b.iter(|| co.resume(black_box(1)));
    });
    drop(co);

    let mut gn = generator::Gn::<usize>::new_scoped(|mut s| {
        let mut x = 0usize;
        loop {
            x = s.yield_(x).unwrap_or(0);
        }
    });
    group.bench_function("generator", |b| {
        b.iter(|| gn.send(black_box(1)));
    });
    drop(gn);
    group.finish();
}

/// The same round trip moving an owned `String` each way: values that are
/// not primitives cross the switch by address (both libraries).
fn roundtrip_string(c: &mut Criterion) {
    let mut group = c.benchmark_group("roundtrip_string");

    let mut g = coio::Generator::new(|y: &coio::Yielder<String, String>, mut s: String| {
        loop {
            s = y.yield_(s);
        }
    });
    let mut s = String::from("coio");
    group.bench_function("coio", |b| {
        b.iter(|| match g.resume(std::mem::take(&mut s)) {
            coio::GeneratorState::Yielded(back) => s = back,
        });
    });
    drop(g);

    let mut co =
        corosensei::Coroutine::new(|y: &corosensei::Yielder<String, String>, mut s: String| {
            loop {
                s = y.suspend(s);
            }
        });
    let mut s = String::from("coio");
    group.bench_function("corosensei", |b| {
        b.iter(|| match co.resume(std::mem::take(&mut s)) {
            corosensei::CoroutineResult::Yield(back) => s = back,
            corosensei::CoroutineResult::Return(never) => never,
        });
    });
    drop(co);
    group.finish();
}

fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("create");
    group.bench_function("coio", |b| {
        b.iter(|| {
            let mut g = coio::Generator::new(|_y: &coio::Yielder<usize, usize>, x: usize| x + 1);
            black_box(g.resume(black_box(1)));
        });
    });

    let mut stack = corosensei::stack::DefaultStack::new(coio::DEFAULT_STACK_SIZE).unwrap();
    group.bench_function("corosensei (reused stack)", |b| {
        b.iter(|| {
            let co = corosensei::ScopedCoroutine::with_stack(
                &mut stack,
                |_y: &corosensei::Yielder<usize, usize>, x: usize| x + 1,
            );
            co.scope(|mut co| black_box(co.resume(black_box(1))));
        });
    });

    group.bench_function("generator (fresh stack)", |b| {
        b.iter(|| {
            let mut g =
                generator::Gn::<usize>::new_scoped_opt(coio::DEFAULT_STACK_SIZE, |mut s| {
                    let x = s.get_yield().unwrap_or(0);
                    x + 1
                });
            black_box(g.send(black_box(1)));
        });
    });
    group.finish();
}

criterion_group!(benches, roundtrip, roundtrip_string, create);
criterion_main!(benches);
