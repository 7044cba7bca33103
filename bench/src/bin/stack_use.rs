//! How much stack common operations need inside a coroutine: the evidence
//! behind `coio::DEFAULT_STACK_SIZE`. Each operation runs in a generator on
//! a fresh 1 MiB stack of a size nothing else uses (so its memory starts out
//! zero), and the deepest written byte is reported.
//!
//! Run: `cargo run --release -p coio-bench --bin stack_use`

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::hint::black_box;
use std::panic;

fn measure(name: &str, i: usize, op: fn()) {
    // A distinct size per operation: a fresh slab, untouched memory.
    let size = (1 << 20) + i * 4096;
    let mut g = coio::Generator::builder()
        .stack_size(size)
        .stack_policy(coio::StackPolicy::Canary)
        .build(move |_y: &coio::Yielder<(), ()>, ()| op())
        .expect("generator");
    g.resume(());
    println!("| {name} | {:.1} |", g.stack_high_water() as f64 / 1024.0);
}

fn main() {
    println!("| operation inside a coroutine | stack used (KiB) |");
    println!("|---|---|");
    let ops: &[(&str, fn())] = &[
        ("nothing (closure call only)", || {}),
        ("format! of integers and floats", || {
            black_box(format!(
                "{} {:.3} {:?}",
                black_box(12345u64),
                black_box(1234.5678f64),
                black_box([1.5f32; 4])
            ));
        }),
        ("println! to stdout", || {
            println!("<!-- hello from a coroutine -->")
        }),
        ("HashMap with 1,000 String keys", || {
            let m: HashMap<String, usize> = (0..1000).map(|i| (i.to_string(), i)).collect();
            black_box(m.len());
        }),
        ("std::fs::read_to_string", || {
            black_box(std::fs::read_to_string("/proc/self/status").unwrap().len());
        }),
        ("DNS lookup of localhost (getaddrinfo)", || {
            use std::net::ToSocketAddrs;
            black_box(
                ("localhost", 80)
                    .to_socket_addrs()
                    .map(|a| a.count())
                    .unwrap_or(0),
            );
        }),
        ("panic caught, default hook prints the message", || {
            let _ = black_box(panic::catch_unwind(|| panic!("<!-- measured panic -->")));
        }),
        ("Backtrace::force_capture + to_string (symbolised)", || {
            black_box(Backtrace::force_capture().to_string().len());
        }),
        (
            "panic caught, hook prints a symbolised backtrace (RUST_BACKTRACE=1)",
            || {
                // SAFETY: the measurement is single-threaded; nothing else reads
                // the environment concurrently.
                unsafe { std::env::set_var("RUST_BACKTRACE", "1") };
                let _ = black_box(panic::catch_unwind(|| {
                    panic!("<!-- measured panic with backtrace -->")
                }));
                // SAFETY: as above.
                unsafe { std::env::remove_var("RUST_BACKTRACE") };
            },
        ),
    ];
    for (i, (name, op)) in ops.iter().enumerate() {
        measure(name, i + 1, *op);
    }
}
