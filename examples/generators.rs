//! A tour of coio's foundation layer: stackful generators.
//!
//! Run: `cargo run --release --example generators`
//!
//! A generator runs a closure on its own stack. The closure can suspend
//! itself from any depth of ordinary function calls with `yield_`, which is
//! what lets blocking-style code (recursive walks, parsers that pull input)
//! be driven step by step. The scheduler of coio parks coroutines the same
//! way.

use std::time::Instant;

use coio::{Generator, GeneratorState, Yielder};

/// An ordinary recursive function that yields as it goes: no state
/// machine, no callback, no allocation per step.
fn walk(node: &Tree, y: &Yielder<(), u32>) {
    match node {
        Tree::Leaf(v) => {
            y.yield_(*v);
        }
        Tree::Node(l, r) => {
            walk(l, y);
            walk(r, y);
        }
    }
}

enum Tree {
    Leaf(u32),
    Node(Box<Tree>, Box<Tree>),
}

fn tree(depth: u32, next: &mut u32) -> Tree {
    if depth == 0 {
        *next += 1;
        Tree::Leaf(*next)
    } else {
        Tree::Node(
            Box::new(tree(depth - 1, next)),
            Box::new(tree(depth - 1, next)),
        )
    }
}

/// A line parser that *pulls* its input: each `yield_` hands back a result
/// and receives the next chunk, exactly like a blocking `read`.
fn parse_lines(y: &Yielder<String, Option<String>>, mut chunk: String) -> usize {
    let mut buf = String::new();
    let mut lines = 0;
    loop {
        if chunk.is_empty() {
            return lines; // end of input
        }
        buf.push_str(&chunk);
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            lines += 1;
            chunk = y.yield_(Some(line.trim_end().to_string()));
            buf.push_str(&chunk);
            chunk.clear();
        }
        chunk = y.yield_(None);
    }
}

fn main() {
    // 1. Iterate a tree by yielding from recursion.
    let mut n = 0;
    let t = tree(4, &mut n);
    let leaves: Vec<u32> = Generator::new(move |y, ()| walk(&t, y)).collect();
    println!(
        "tree walk yielded {} leaves: {:?}...",
        leaves.len(),
        &leaves[..6]
    );

    // 2. Push input into a parser that is written as if it read it.
    let mut parser = Generator::new(parse_lines);
    let mut out = Vec::new();
    for chunk in ["hel", "lo\nwor", "ld\n", "coio\n", ""] {
        let mut input = chunk.to_string();
        loop {
            match parser.resume(std::mem::take(&mut input)) {
                GeneratorState::Yielded(Some(line)) => out.push(line),
                GeneratorState::Yielded(None) => break,
                GeneratorState::Complete(count) => {
                    println!("parser saw {count} lines: {out:?}");
                    break;
                }
            }
        }
    }

    // 3. Panics cross back to the resumer.
    let mut bad = Generator::new(|_: &Yielder<(), ()>, ()| panic!("inside the generator"));
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bad.resume(())));
    std::panic::set_hook(quiet);
    let message = caught
        .unwrap_err()
        .downcast::<&str>()
        .map(|m| *m)
        .unwrap_or("?");
    println!("a panic inside was re-raised in the resumer: {message:?}");

    // 4. Scale: generators are cheap to make and to keep suspended.
    const N: usize = 100_000;
    let start = Instant::now();
    let mut gens: Vec<_> = (0..N)
        .map(|i| {
            let mut g =
                Generator::new(move |y: &Yielder<u64, u64>, _first: u64| i as u64 + y.yield_(0));
            g.resume(0);
            g
        })
        .collect();
    let made = start.elapsed();
    let sum: u64 = gens
        .iter_mut()
        .map(|g| match g.resume(1) {
            GeneratorState::Complete(v) => v,
            GeneratorState::Yielded(_) => unreachable!(),
        })
        .sum();
    println!(
        "{N} suspended generators made in {:.1} ms ({} MiB resident in all); resumed, they returned {sum} in sum",
        made.as_secs_f64() * 1e3,
        coio::resident_bytes() >> 20
    );

    // 5. The switch itself.
    let mut g = Generator::new(|y: &Yielder<u64, u64>, mut x| {
        loop {
            x = y.yield_(x + 1);
        }
    });
    let rounds = 10_000_000u64;
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..rounds {
        match g.resume(x) {
            GeneratorState::Yielded(v) => x = v,
        }
    }
    println!(
        "{rounds} resume/yield round trips: {:.2} ns each (x = {x})",
        start.elapsed().as_nanos() as f64 / rounds as f64
    );
}
