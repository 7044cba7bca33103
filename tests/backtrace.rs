//! Backtraces taken inside coroutines continue into whoever resumed them,
//! through the trampoline's call frame information.

use std::backtrace::Backtrace;

use coio::{Generator, GeneratorState, Yielder};

#[inline(never)]
fn inner_function_that_captures(y: &Yielder<(), String>) {
    let bt = Backtrace::force_capture();
    y.yield_(bt.to_string());
}

#[inline(never)]
fn outer_function_that_resumes_inner() -> String {
    let mut inner = Generator::new(|y, ()| inner_function_that_captures(y));
    match inner.resume(()) {
        GeneratorState::Yielded(s) => s,
        GeneratorState::Complete(()) => panic!("inner finished without yielding"),
    }
}

/// The code on the thread's own stack that drives the outer generator.
#[inline(never)]
fn test_function_that_resumes_outer() -> String {
    let mut outer = Generator::new(|y: &Yielder<(), String>, ()| {
        let text = outer_function_that_resumes_inner();
        y.yield_(text);
    });
    match outer.resume(()) {
        GeneratorState::Yielded(s) => s,
        GeneratorState::Complete(()) => panic!("outer finished without yielding"),
    }
}

#[test]
fn backtrace_crosses_nested_generators_into_the_resumer() {
    let text = test_function_that_resumes_outer();
    let find = |name: &str| {
        text.find(name)
            .unwrap_or_else(|| panic!("`{name}` missing from backtrace:\n{text}"))
    };
    let inner = find("inner_function_that_captures");
    let middle = find("outer_function_that_resumes_inner");
    let test = find("test_function_that_resumes_outer");
    // ...and goes on to the thread's start, not into garbage.
    let start = find("thread_start");
    assert!(test < start, "frames out of order:\n{text}");
    assert!(
        inner < middle && middle < test,
        "frames out of order:\n{text}"
    );
}

#[inline(never)]
fn scheduled_function_that_captures() -> String {
    Backtrace::force_capture().to_string()
}

/// A coroutine of the runtime that was switched into directly by another
/// (`arch::transfer`, when the other yields) still unwinds into the
/// scheduler loop and the worker thread's start: the link it got is the
/// loop's.
#[test]
fn backtrace_after_a_direct_switch_reaches_the_worker_loop() {
    let rt = coio::Runtime::builder().workers(1).build().unwrap();
    let text = rt.block_on(|| {
        // Two coroutines take turns with yield_now: each resumes the other
        // directly, not through the loop.
        // `other` outlives `me`'s last yield, so `me` captures right after
        // `other` switched into it.
        let other = coio::spawn(|| {
            for _ in 0..10 {
                coio::yield_now();
            }
        });
        let me = coio::spawn(|| {
            for _ in 0..2 {
                coio::yield_now();
            }
            scheduled_function_that_captures()
        });
        let text = me.join().unwrap();
        other.join().unwrap();
        text
    });
    let find = |name: &str| {
        text.find(name)
            .unwrap_or_else(|| panic!("`{name}` missing from backtrace:\n{text}"))
    };
    let capture = find("scheduled_function_that_captures");
    let run_task = find("run_task");
    let start = find("thread_start");
    assert!(
        capture < run_task && run_task < start,
        "frames out of order:\n{text}"
    );
}
