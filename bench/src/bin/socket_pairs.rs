//! The cost of making a socket in a coroutine: `UnixStream::pair` and the
//! drop of both ends, in a loop on a 1-worker runtime (what a server pays
//! per connection besides its I/O: a descriptor's `Source`, and since the
//! tenth sitting the weak handle on its maker's driver that lets async
//! code elsewhere register it).
//!
//! `socket_pairs [PAIRS]` (default 100,000): prints ns per pair made and
//! dropped. For instruction counts, run it under
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null`.

use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(100_000);
    let rt = coio::Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .expect("runtime");
    let ns = rt.block_on(move || {
        let t = Instant::now();
        for i in 0..n {
            let pair = coio::net::unix::UnixStream::pair().expect("socketpair");
            drop(pair);
            if i % 64 == 0 {
                coio::yield_now();
            }
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    println!("pair made and dropped: {ns:.1} ns");
}
