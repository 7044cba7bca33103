//! Nothing to use but a test helper: this crate exists for its tests, which drive heavy, real
//! async crates (reqwest over rustls, sqlx over SQLite) from coio's
//! coroutines through `coio::compat::tokio::block_on`. They live in their
//! own workspace (not a member of coio's), so that these large dependency
//! trees (TLS, a bundled SQLite) stay out of coio's dev-dependencies and
//! out of `cargo test --workspace`; run them with `cargo test
//! --manifest-path interop/Cargo.toml`.

use std::panic::resume_unwind;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// Runs `f` on a thread; fails if it does not finish within 30 s (a lost
/// wake or a hang), instead of hanging the test run. A panic of `f` goes
/// on here. (The tests' shared helper.)
pub fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || tx.send(f()).unwrap());
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("did not finish within 30 s"),
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent its result or panicked"),
        },
    }
}
