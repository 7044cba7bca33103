//! The balance comparison, tokio's side: `balance_tokio <case> <workers>`
//! (see `coio_bench::balance`), on the multi-thread runtime with that many
//! worker threads.

use std::time::{Duration, Instant};

use coio_bench::balance::{self, COROUTINES, Case, SLICES};

async fn work() {
    for _ in 0..SLICES {
        balance::slice();
        tokio::task::yield_now().await;
    }
}

fn main() {
    let (case, workers) = balance::args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap();
    let (secs, busy) = rt.block_on(async move {
        // The measuring code runs as a task, as in the other runtimes.
        tokio::spawn(async move {
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let mut orders = Vec::new();
            for _ in 0..COROUTINES {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
                orders.push(tx);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    while rx.recv().await.is_some() {
                        if case == Case::Child {
                            tokio::spawn(work()).await.unwrap();
                        } else {
                            work().await;
                        }
                        done.send(()).unwrap();
                    }
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut busy = 0;
            let start = Instant::now();
            for round in balance::schedule(case) {
                for &i in &round {
                    orders[i].send(()).await.unwrap();
                }
                for _ in &round {
                    done_rx.recv().await.unwrap();
                }
                busy += round.len();
            }
            (start.elapsed().as_secs_f64(), busy)
        })
        .await
        .unwrap()
    });
    balance::report("tokio", case, workers, busy, secs, "");
}
