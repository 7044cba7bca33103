//! The balance comparison, coio's side: `balance_coio <case> <workers>`
//! (see `coio_bench::balance`). Also reports how many of the 64
//! coroutines started on each worker thread (`homes`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use coio_bench::balance::{self, COROUTINES, Case, SLICES};

fn work() {
    for _ in 0..SLICES {
        balance::slice();
        coio::yield_now();
    }
}

fn main() {
    let (case, workers) = balance::args();
    let rt = coio::Runtime::builder()
        .workers(workers)
        .stall_warning(None)
        .build()
        .unwrap();
    let (secs, busy, homes) = rt.block_on(move || {
        let (done_tx, done_rx) = coio::chan::unbounded::<()>();
        let (home_tx, home_rx) = coio::chan::unbounded();
        let mut orders = Vec::new();
        for _ in 0..COROUTINES {
            let (tx, rx) = coio::chan::bounded::<()>(1);
            orders.push(tx);
            let (done, home) = (done_tx.clone(), home_tx.clone());
            coio::spawn(move || {
                home.send(std::thread::current().id()).unwrap();
                while rx.recv().is_ok() {
                    if case == Case::Child {
                        coio::spawn(work).join().unwrap();
                    } else {
                        work();
                    }
                    done.send(()).unwrap();
                }
            });
        }
        coio::sleep(Duration::from_millis(20));
        let mut homes: HashMap<_, usize> = HashMap::new();
        for _ in 0..COROUTINES {
            *homes.entry(home_rx.recv().unwrap()).or_default() += 1;
        }
        let mut busy = 0;
        let start = Instant::now();
        for round in balance::schedule(case) {
            for &i in &round {
                orders[i].send(()).unwrap();
            }
            for _ in &round {
                done_rx.recv().unwrap();
            }
            busy += round.len();
        }
        let secs = start.elapsed().as_secs_f64();
        let mut homes: Vec<usize> = homes.into_values().collect();
        homes.sort_unstable();
        (secs, busy, homes)
    });
    balance::report(
        "coio",
        case,
        workers,
        busy,
        secs,
        &format!(",\"homes\":{homes:?}"),
    );
}
