//! sqlx on SQLite, called from coio's coroutines through
//! `coio::compat::tokio::block_on`: an in-memory database behind a pool of
//! one connection, written by concurrent coroutines, then read back.
//!
//! Why: sqlx is a heavy real async crate that needs a tokio runtime (its
//! pool's timeouts and background tasks) and talks to SQLite on a thread of
//! its own, waking the waiting future from that thread; the coroutine must
//! park (not its worker) while a query is pending, and be woken when the
//! answer comes. A lost wake hangs (caught by a 30 s limit), a blocked
//! worker shows as a counter that never moved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::Instant;

use coio::Runtime;
use coio::compat::tokio::block_on;
use coio_interop::within_30s;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

/// A fresh in-memory database behind a pool of one connection (a second
/// connection would open a second, empty, database). Call from a
/// coroutine.
fn memory_pool() -> SqlitePool {
    block_on(
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:"),
    )
    .expect("opening an in-memory SQLite database")
}

/// 10 coroutines on a 2-worker runtime insert 100 rows each through the
/// shared pool (borrowed by scoped coroutines), concurrently; then the
/// count, the sum and the rows per coroutine are checked.
#[test]
fn concurrent_inserts_then_count_and_sum() {
    const WRITERS: i64 = 10;
    const ROWS: i64 = 100;
    let (count, sum, per_writer) = within_30s(|| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let pool = memory_pool();
            block_on(
                sqlx::query(
                    "CREATE TABLE items (
                         id INTEGER PRIMARY KEY,
                         writer INTEGER NOT NULL,
                         value INTEGER NOT NULL
                     )",
                )
                .execute(&pool),
            )
            .unwrap();
            coio::scope(|s| {
                for w in 0..WRITERS {
                    let pool = &pool;
                    s.spawn(move || {
                        for i in 0..ROWS {
                            let done = block_on(
                                sqlx::query("INSERT INTO items (writer, value) VALUES (?, ?)")
                                    .bind(w)
                                    .bind(w * ROWS + i)
                                    .execute(pool),
                            )
                            .unwrap_or_else(|e| panic!("writer {w}, row {i}: {e}"));
                            assert_eq!(done.rows_affected(), 1, "writer {w}, row {i}");
                        }
                    });
                }
            });
            let count: i64 =
                block_on(sqlx::query_scalar("SELECT COUNT(*) FROM items").fetch_one(&pool))
                    .unwrap();
            let sum: i64 =
                block_on(sqlx::query_scalar("SELECT SUM(value) FROM items").fetch_one(&pool))
                    .unwrap();
            let per_writer: Vec<(i64, i64)> = block_on(
                sqlx::query_as(
                    "SELECT writer, COUNT(*) FROM items GROUP BY writer ORDER BY writer",
                )
                .fetch_all(&pool),
            )
            .unwrap();
            block_on(pool.close());
            (count, sum, per_writer)
        })
    });
    let n = WRITERS * ROWS;
    assert_eq!(count, n);
    // The values are 0..n, each once.
    assert_eq!(sum, n * (n - 1) / 2);
    let want: Vec<(i64, i64)> = (0..WRITERS).map(|w| (w, ROWS)).collect();
    assert_eq!(per_writer, want);
}

/// On a 1-worker runtime, a coroutine counts with `yield_now` in a loop
/// while another waits on a slow query (a recursive CTE that SQLite
/// computes on sqlx's connection thread): the counter must advance during
/// the wait, so the waiting coroutine parked and left its worker to the
/// other one, and must then be woken and resumed although the counter
/// keeps the worker busy.
#[test]
fn worker_runs_other_coroutines_while_a_query_is_pending() {
    let (total, during, waited) = within_30s(|| {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let pool = memory_pool();
            // Connected: the query below waits only for SQLite's work.
            block_on(sqlx::query("SELECT 1").execute(&pool)).unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let counting = {
                let (counter, stop) = (counter.clone(), stop.clone());
                coio::spawn(move || {
                    while !stop.load(Relaxed) {
                        counter.fetch_add(1, Relaxed);
                        coio::yield_now();
                    }
                })
            };
            // The only worker runs this coroutine until it parks: the
            // counter cannot have started yet.
            let before = counter.load(Relaxed);
            let start = Instant::now();
            let total: i64 = block_on(
                sqlx::query_scalar(
                    "WITH RECURSIVE n(x) AS (
                         SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000
                     )
                     SELECT SUM(x) FROM n",
                )
                .fetch_one(&pool),
            )
            .unwrap();
            let waited = start.elapsed();
            let during = counter.load(Relaxed) - before;
            stop.store(true, Relaxed);
            counting.join().unwrap();
            block_on(pool.close());
            (total, during, waited)
        })
    });
    assert_eq!(total, 1_000_000 * 1_000_001 / 2);
    assert!(
        during >= 100,
        "the counter advanced {during} times during the {waited:?} query: \
         the worker did not run the other coroutine while the query was pending"
    );
}
