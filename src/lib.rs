//! # coio
//!
//! Go's programming model for Rust, on stable Rust: code written like plain
//! blocking code runs as cheap stackful coroutines.
//!
//! This release contains the foundation: the context switch, guarded and
//! pooled stacks with overflow reports, and [`Generator`], a stackful generator driven on the
//! current thread. The scheduler, synchronisation, channels and I/O build on
//! these layers; see ARCHITECTURE.md.
//!
//! ```
//! use coio::Generator;
//!
//! // A generator can yield from any depth of ordinary function calls.
//! fn walk(tree: &[u32], y: &coio::Yielder<(), u32>) {
//!     for &x in tree {
//!         y.yield_(x);
//!     }
//! }
//! let tree = vec![3, 1, 4];
//! let g = Generator::new(move |y, ()| walk(&tree, y));
//! assert_eq!(g.collect::<Vec<_>>(), [3, 1, 4]);
//! ```
//!
//! # Unsafe code
//!
//! Every `unsafe` block carries a `// SAFETY:` comment, and
//! `unsafe_op_in_unsafe_fn` is denied. The goal is that no safe API can
//! cause undefined behaviour; the thread-local rule that makes this true for
//! coroutines is explained in the docs of [`coroutine`]. Two narrow gaps
//! remain (overflows of canary stacks on kernels without userfaultfd write
//! protection, and generators unwound at thread exit after a thread-local
//! their frames use); ARCHITECTURE.md, "Known gaps", describes them exactly.

mod arch;
pub mod coroutine;
mod runtime;
mod stack;

pub use coroutine::generator::{
    ForcedUnwind, Generator, GeneratorBuilder, GeneratorState, Yielder,
};
pub use runtime::blocking::{current, is_coroutine, park, park_timeout, sleep, yield_now};
pub use runtime::local::LocalKey;
pub use runtime::scope::{Scope, ScopedJoinHandle, scope};
pub use runtime::task::{Cancelled, Coroutine, CoroutineId, JoinHandle};
pub use runtime::{Builder, Runtime, RuntimeBuilder, run, spawn};
pub use stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE, StackPolicy};

#[doc(hidden)]
pub use stack::resident_bytes;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
