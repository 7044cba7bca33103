//! Bridges to the async ecosystem, each behind its cargo feature.
//!
//! * `compat::hyper` (feature `hyper`): an `Executor` that runs hyper's
//!   background tasks as coroutines and a `Timer` on coio's timers; with
//!   the `hyper` feature coio's stream sockets also implement
//!   `hyper::rt::Read` and `Write`, so hyper 1.x serves and connects over
//!   them directly (see `examples/hyper.rs`).
//! * `compat::tokio` (feature `tokio`): `compat::tokio::block_on` runs a
//!   future that needs tokio's reactor (reqwest, sqlx, tonic, ...) from a
//!   coroutine, on a tokio runtime coio starts when first needed. With the
//!   `tokio` feature coio's stream sockets also implement tokio's
//!   `AsyncRead`/`AsyncWrite`, driven by coio's own poller.
//! * With the feature `futures-io`, coio's stream sockets implement
//!   `futures_io::AsyncRead`/`AsyncWrite`.
//!
//! Futures that need no particular reactor (channels, coio's own sockets,
//! [`coio::future::sleep`](crate::future::sleep)) need none of this: run
//! them with [`coio::future::block_on`](crate::future::block_on).

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio")]
pub mod tokio;
