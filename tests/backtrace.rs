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
