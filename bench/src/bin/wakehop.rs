//! The wake hop of async interop: `wakehop [WORKERS...]` (or
//! `WAKEHOP_WORKERS=1,2`; default: 1 and 2 workers) prints, per variant and
//! worker count, the nanoseconds one ping-pong round trip between two
//! coroutines (tasks) takes. `bench/wakehop.sh` builds and runs it.
//!
//! What it measures: the cost of handing a value to a waiting coroutine
//! through an async channel, the coroutine waiting in
//! `coio::future::block_on`, so the hop is one `Waker::wake` that unparks
//! it (a `Coroutine::unpark`, see `src/future.rs`); beside it coio's own
//! channel, which unparks directly, and tokio, which wakes a task, for
//! the same ping-pong. Every round trip is two hops, each one futures-channel
//! send and one wake of the other side:
//!
//! - `coio block_on oneshot`: every message through a fresh
//!   `futures::channel::oneshot`. The oneshots are handed over along the
//!   chain itself, so no other channel is involved: A's message to B is a
//!   [`Ping`] carrying the value, the sender of B's reply, and the receiver
//!   of A's next message (A keeps its sender). Per round trip A makes two
//!   oneshots; B waits with `block_on(receiver)`, answers on the reply
//!   sender and moves on to the next receiver; A waits with
//!   `block_on(reply receiver)`.
//! - `coio block_on mpsc`: two long-lived `futures::channel::mpsc::unbounded`
//!   channels, one per direction, each hop one `unbounded_send` and one
//!   `block_on(rx.next())`.
//! - `coio block_on tokio oneshot`, `coio block_on tokio mpsc`: as the
//!   two above, with tokio's channels (which need no tokio runtime): the
//!   same channels as the tokio rows, only the executor differs.
//! - `coio send/recv_async`: coio's own rendezvous channels through their
//!   futures (`send_async`, `recv_async`), each in a `block_on`.
//! - `coio chan rendezvous`: two `coio::chan::bounded(0)` channels,
//!   `send`/`recv` (as `ch_coio pingpong`).
//! - `tokio oneshot`, `tokio mpsc`: the same two designs with
//!   `tokio::sync::oneshot` and `tokio::sync::mpsc::unbounded_channel`,
//!   awaited, on tokio's multi-thread runtime with W worker threads; with
//!   W = 1 also on its current-thread runtime (`(current_thread)`).
//! - `tokio futures oneshot`, `tokio futures mpsc`: the two `futures`
//!   channel designs awaited on tokio (W = 1 also on its current-thread
//!   runtime, `(c_t)`): the same channels as the `coio block_on` rows, only
//!   the executor differs, so they say what the channel itself costs.
//! - `coio block_on self-wake`, `tokio yield_now` (and its current-thread
//!   form): not a round trip but one yield of async code, alone on its
//!   runtime: a future that wakes itself and returns `Pending` (what
//!   `yield_now().await` does), polled again by `block_on` after the
//!   worker's other coroutines, against `tokio::task::yield_now().await`.
//!
//! In each variant A, the measuring code, runs as a coroutine (task) of the
//! runtime under test (coio: the `block_on` coroutine; tokio: a spawned
//! task) and spawns B, so they share the W workers, as in `ch_coio`. The
//! clock runs from just before the spawn to just after the join; each run
//! is [`ROUNDS`] round trips, and every value comes back checked. One
//! runtime per variant and worker count; in it one warm-up run and then
//! [`REPS`] measured runs, of which the line gives the median, min and max.
//!
//! A watchdog ends the process with status 1, naming the variant, if one
//! variant (all its runs) takes longer than [`HANG_LIMIT`]: a lost wake
//! shows as that, not as a hang.
//!
//! To add a variant: a body (`fn() -> f64` for coio, an `async fn() -> f64`
//! for tokio) and one entry in [`VARIANTS`].

use std::future::Future;
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::time::{Duration, Instant};

use coio::future::block_on;
use coio_bench::rt::{REPS, joined, median_after_warmup, ns_per};
use futures::StreamExt;

/// Round trips per run.
const ROUNDS: usize = 200_000;
/// Longest one variant may take, all its runs together, before the watchdog
/// calls it hung.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// One variant: a name and how to run it.
struct Variant {
    /// The name in the table.
    name: &'static str,
    /// The samples (warm-up first) with this many workers, or `None` if the
    /// variant has no form with that many (current-thread tokio: only 1).
    run: fn(usize) -> Option<Vec<f64>>,
}

/// Every variant, in the table's order.
const VARIANTS: &[Variant] = &[
    Variant {
        name: "coio block_on oneshot",
        run: |w| Some(on_coio(w, coio_oneshot)),
    },
    Variant {
        name: "coio block_on mpsc",
        run: |w| Some(on_coio(w, coio_mpsc)),
    },
    Variant {
        name: "coio block_on tokio oneshot",
        run: |w| Some(on_coio(w, coio_tokio_oneshot)),
    },
    Variant {
        name: "coio block_on tokio mpsc",
        run: |w| Some(on_coio(w, coio_tokio_mpsc)),
    },
    Variant {
        name: "coio send/recv_async",
        run: |w| Some(on_coio(w, coio_chan_async)),
    },
    Variant {
        name: "coio chan rendezvous",
        run: |w| Some(on_coio(w, coio_chan)),
    },
    Variant {
        name: "coio block_on self-wake",
        run: |w| Some(on_coio(w, coio_self_wake)),
    },
    Variant {
        name: "tokio yield_now",
        run: |w| Some(on_tokio(tokio_multi(w), tokio_yield_now)),
    },
    Variant {
        name: "tokio yield_now (current_thread)",
        run: |w| (w == 1).then(|| on_tokio(tokio_current(), tokio_yield_now)),
    },
    Variant {
        name: "tokio oneshot",
        run: |w| Some(on_tokio(tokio_multi(w), tokio_oneshot)),
    },
    Variant {
        name: "tokio oneshot (current_thread)",
        run: |w| (w == 1).then(|| on_tokio(tokio_current(), tokio_oneshot)),
    },
    Variant {
        name: "tokio mpsc",
        run: |w| Some(on_tokio(tokio_multi(w), tokio_mpsc)),
    },
    Variant {
        name: "tokio futures oneshot",
        run: |w| Some(on_tokio(tokio_multi(w), tokio_futures_oneshot)),
    },
    Variant {
        name: "tokio futures oneshot (c_t)",
        run: |w| (w == 1).then(|| on_tokio(tokio_current(), tokio_futures_oneshot)),
    },
    Variant {
        name: "tokio futures mpsc",
        run: |w| Some(on_tokio(tokio_multi(w), tokio_futures_mpsc)),
    },
    Variant {
        name: "tokio mpsc (current_thread)",
        run: |w| (w == 1).then(|| on_tokio(tokio_current(), tokio_mpsc)),
    },
];

/// A's message to B in the futures oneshot chain: the value, where to
/// answer, and where A's next message will come.
struct Ping {
    v: u64,
    reply: futures::channel::oneshot::Sender<u64>,
    next: futures::channel::oneshot::Receiver<Ping>,
}

/// The same for the tokio oneshot chain.
struct TokioPing {
    v: u64,
    reply: tokio::sync::oneshot::Sender<u64>,
    next: tokio::sync::oneshot::Receiver<TokioPing>,
}

/// Runs `body` once to warm up and then [`REPS`] times as the `block_on`
/// coroutine of a fresh coio runtime with `workers` workers.
fn on_coio(workers: usize, body: fn() -> f64) -> Vec<f64> {
    coio::Runtime::builder()
        .workers(workers)
        .build()
        .expect("coio runtime")
        .block_on(move || (0..=REPS).map(|_| body()).collect())
}

/// The oneshot chain on coio (see the module docs): `$channel` makes a
/// oneshot, `$ping` is the message type carrying the value, the reply's
/// sender and the next message's receiver.
macro_rules! coio_oneshot_chain {
    ($name:ident, $channel:path, $ping:ident) => {
        fn $name() -> f64 {
            let (mut to_b, first) = $channel();
            let start = Instant::now();
            let b = coio::spawn(move || {
                let mut from_a = first;
                for _ in 0..ROUNDS {
                    let ping: $ping = block_on(from_a).expect("A is gone");
                    from_a = ping.next;
                    ping.reply.send(ping.v).expect("A is gone");
                }
            });
            for i in 0..ROUNDS as u64 {
                let (reply, from_b) = $channel();
                let (next_to_b, next) = $channel();
                if to_b.send($ping { v: i, reply, next }).is_err() {
                    panic!("B is gone");
                }
                to_b = next_to_b;
                assert_eq!(block_on(from_b).expect("B is gone"), i);
            }
            joined(b.join());
            ns_per(start, ROUNDS)
        }
    };
}

coio_oneshot_chain!(coio_oneshot, futures::channel::oneshot::channel, Ping);

/// The two-channel ping-pong on coio (see the module docs): `$channel`
/// makes an unbounded channel of `u64`, `$send` is its sender's method and
/// `$recv` the receiver's future.
macro_rules! coio_mpsc_pingpong {
    ($name:ident, $channel:path, $send:ident, $recv:ident) => {
        fn $name() -> f64 {
            let (ping_tx, mut ping_rx) = $channel();
            let (pong_tx, mut pong_rx) = $channel();
            let start = Instant::now();
            let b = coio::spawn(move || {
                for _ in 0..ROUNDS {
                    let v: u64 = block_on(ping_rx.$recv()).expect("A is gone");
                    pong_tx.$send(v).expect("A is gone");
                }
            });
            for i in 0..ROUNDS as u64 {
                ping_tx.$send(i).expect("B is gone");
                assert_eq!(block_on(pong_rx.$recv()).expect("B is gone"), i);
            }
            joined(b.join());
            ns_per(start, ROUNDS)
        }
    };
}

coio_mpsc_pingpong!(
    coio_mpsc,
    futures::channel::mpsc::unbounded,
    unbounded_send,
    next
);

// As `coio_oneshot`, with tokio's oneshots awaited in coio's `block_on`
// (the same channel as `tokio oneshot`: the difference is the executor).
coio_oneshot_chain!(coio_tokio_oneshot, tokio::sync::oneshot::channel, TokioPing);

// As `coio_mpsc`, with tokio's unbounded channels awaited in coio's
// `block_on` (a tokio channel needs no tokio runtime).
coio_mpsc_pingpong!(
    coio_tokio_mpsc,
    tokio::sync::mpsc::unbounded_channel,
    send,
    recv
);

/// coio's own rendezvous channels through their futures: every send and
/// receive is `block_on(send_async(..))` / `block_on(recv_async())`.
fn coio_chan_async() -> f64 {
    use coio::chan;
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let start = Instant::now();
    let b = coio::spawn(move || {
        for _ in 0..ROUNDS {
            let v = block_on(ping_rx.recv_async()).expect("A is gone");
            block_on(pong_tx.send_async(v)).expect("A is gone");
        }
    });
    for i in 0..ROUNDS as u64 {
        block_on(ping_tx.send_async(i)).expect("B is gone");
        assert_eq!(block_on(pong_rx.recv_async()).expect("B is gone"), i);
    }
    joined(b.join());
    ns_per(start, ROUNDS)
}

fn coio_chan() -> f64 {
    use coio::chan;
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let start = Instant::now();
    let b = coio::spawn(move || {
        for _ in 0..ROUNDS {
            let v = ping_rx.recv().expect("A is gone");
            pong_tx.send(v).expect("A is gone");
        }
    });
    for i in 0..ROUNDS as u64 {
        ping_tx.send(i).expect("B is gone");
        assert_eq!(pong_rx.recv().expect("B is gone"), i);
    }
    joined(b.join());
    ns_per(start, ROUNDS)
}

/// [`ROUNDS`] yields of a future that wakes itself (see the module docs).
fn coio_self_wake() -> f64 {
    let start = Instant::now();
    let mut left = ROUNDS;
    block_on(std::future::poll_fn(|cx| {
        if left == 0 {
            return std::task::Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }));
    ns_per(start, ROUNDS)
}

/// [`ROUNDS`] `yield_now().await`s of one task.
async fn tokio_yield_now() -> f64 {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        tokio::task::yield_now().await;
    }
    ns_per(start, ROUNDS)
}

/// tokio's multi-thread runtime with `workers` worker threads.
fn tokio_multi(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("tokio runtime")
}

/// tokio's current-thread runtime.
fn tokio_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// Runs `body` once to warm up and then [`REPS`] times in one task spawned
/// on `rt`.
fn on_tokio<F>(rt: tokio::runtime::Runtime, body: fn() -> F) -> Vec<f64>
where
    F: Future<Output = f64> + Send + 'static,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(REPS + 1);
            for _ in 0..=REPS {
                samples.push(body().await);
            }
            samples
        })
        .await
        .expect("measuring task panicked")
    })
}

/// The oneshot chain on tokio, as `coio_oneshot_chain`.
macro_rules! tokio_oneshot_chain {
    ($name:ident, $channel:path, $ping:ident) => {
        async fn $name() -> f64 {
            let (mut to_b, first) = $channel();
            let start = Instant::now();
            let b = tokio::spawn(async move {
                let mut from_a = first;
                for _ in 0..ROUNDS {
                    let ping: $ping = from_a.await.expect("A is gone");
                    from_a = ping.next;
                    ping.reply.send(ping.v).expect("A is gone");
                }
            });
            for i in 0..ROUNDS as u64 {
                let (reply, from_b) = $channel();
                let (next_to_b, next) = $channel();
                if to_b.send($ping { v: i, reply, next }).is_err() {
                    panic!("B is gone");
                }
                to_b = next_to_b;
                assert_eq!(from_b.await.expect("B is gone"), i);
            }
            b.await.expect("B panicked");
            ns_per(start, ROUNDS)
        }
    };
}

tokio_oneshot_chain!(tokio_oneshot, tokio::sync::oneshot::channel, TokioPing);

/// The two-channel ping-pong on tokio, as `coio_mpsc_pingpong`.
macro_rules! tokio_mpsc_pingpong {
    ($name:ident, $channel:path, $send:ident, $recv:ident) => {
        async fn $name() -> f64 {
            let (ping_tx, mut ping_rx) = $channel();
            let (pong_tx, mut pong_rx) = $channel();
            let start = Instant::now();
            let b = tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let v: u64 = ping_rx.$recv().await.expect("A is gone");
                    pong_tx.$send(v).expect("A is gone");
                }
            });
            for i in 0..ROUNDS as u64 {
                ping_tx.$send(i).expect("B is gone");
                assert_eq!(pong_rx.$recv().await.expect("B is gone"), i);
            }
            b.await.expect("B panicked");
            ns_per(start, ROUNDS)
        }
    };
}

tokio_mpsc_pingpong!(tokio_mpsc, tokio::sync::mpsc::unbounded_channel, send, recv);

// As `tokio_oneshot`, with `futures::channel::oneshot` (the channel of
// `coio block_on oneshot`: the difference is the executor).
tokio_oneshot_chain!(
    tokio_futures_oneshot,
    futures::channel::oneshot::channel,
    Ping
);

// As `tokio_mpsc`, with `futures::channel::mpsc::unbounded`.
tokio_mpsc_pingpong!(
    tokio_futures_mpsc,
    futures::channel::mpsc::unbounded,
    unbounded_send,
    next
);

/// The worker counts to run: the arguments, else `WAKEHOP_WORKERS` (split
/// at commas or spaces), else 1 and 2. Exits with status 2 on anything but
/// positive numbers.
fn worker_counts() -> Vec<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<String> = if !args.is_empty() {
        args
    } else if let Ok(env) = std::env::var("WAKEHOP_WORKERS") {
        env.split([',', ' '])
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    } else {
        return vec![1, 2];
    };
    let counts: Option<Vec<usize>> = words
        .iter()
        .map(|w| w.parse().ok().filter(|&n: &usize| n > 0))
        .collect();
    match counts {
        Some(c) if !c.is_empty() => c,
        _ => {
            eprintln!("usage: wakehop [WORKERS...]   (or WAKEHOP_WORKERS=1,2)");
            std::process::exit(2)
        }
    }
}

/// Starts the watchdog: it is told each variant as it starts, and ends the
/// process if one takes longer than [`HANG_LIMIT`], or than
/// `WAKEHOP_HANG_LIMIT` seconds if set (under callgrind, which runs the
/// program about 50 times slower, to count instructions).
fn watchdog() -> std_mpsc::Sender<String> {
    let limit = std::env::var("WAKEHOP_HANG_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(HANG_LIMIT, Duration::from_secs);
    let (tx, rx) = std_mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut current = String::from("(none)");
        loop {
            match rx.recv_timeout(limit) {
                Ok(next) => current = next,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "wakehop: {current} did not finish within {limit:?} \
                         ({} runs of {ROUNDS} round trips): hung",
                        REPS + 1
                    );
                    std::process::exit(1);
                }
            }
        }
    });
    tx
}

fn main() {
    let counts = worker_counts();
    let dog = watchdog();
    println!(
        "# ns per round trip, {ROUNDS} round trips per run, median/min/max of {REPS} runs after 1 warm-up"
    );
    println!(
        "{:<32} {:>2} {:>9} {:>9} {:>9}",
        "variant", "W", "median", "min", "max"
    );
    // `WAKEHOP_ONLY=<text>`: only the variants whose name contains it (to
    // profile one).
    let only = std::env::var("WAKEHOP_ONLY").unwrap_or_default();
    for &w in &counts {
        for v in VARIANTS.iter().filter(|v| v.name.contains(only.as_str())) {
            dog.send(format!("{} W={w}", v.name)).expect("watchdog");
            let Some(samples) = (v.run)(w) else { continue };
            let (median, samples) = median_after_warmup(samples);
            let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
            let max = samples.iter().copied().fold(0.0, f64::max);
            println!("{:<32} {w:>2} {median:>9.1} {min:>9.1} {max:>9.1}", v.name);
        }
    }
}
