//! Nothing to use: this crate exists for its tests, which drive heavy, real
//! async crates (reqwest over rustls, sqlx over SQLite) from coio's
//! coroutines through `coio::compat::tokio::block_on`. They live in their
//! own workspace member so that these large dependency trees (TLS, a
//! bundled SQLite) stay out of coio's own dev-dependencies and out of its
//! default `cargo test`; run them with `cargo test -p coio-interop`.
