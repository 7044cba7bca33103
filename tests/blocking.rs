//! `coio::blocking`: results, borrowing, panics, the worker running other
//! coroutines meanwhile, many calls at once, cancellation and shutdown,
//! and the pool's bound and keep-alive (in child processes, whose
//! environment and threads are their own).

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use coio::{Cancelled, Runtime};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// Polls `cond` (sleeping the thread) for up to 10 s; whether it held.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    cond()
}

fn thread_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

#[test]
fn plain_thread_runs_f_in_place() {
    let me = thread::current().id();
    let mut v = vec![1, 2];
    let (id, co) = coio::blocking(|| {
        v.push(3);
        (thread::current().id(), coio::is_coroutine())
    });
    assert_eq!(id, me);
    assert!(!co);
    assert_eq!(v, [1, 2, 3]);
}

#[test]
fn coroutine_runs_f_on_a_pool_thread() {
    let (worker, name, co) = rt(2).block_on(|| {
        let worker = thread::current().id();
        let (name, co) = coio::blocking(|| (thread_name(), coio::is_coroutine()));
        (worker, name, co)
    });
    assert_ne!(worker, thread::current().id());
    assert_eq!(name.as_deref(), Some("coio-blocking"));
    assert!(!co, "f must run on a plain thread");
}

#[test]
fn f_borrows_from_the_caller() {
    let words = vec!["pear".to_string(), "fig".to_string(), "banana".to_string()];
    let rt = rt(2);
    let (longest, counted) = rt.block_on(|| {
        let mut counts = vec![0usize; words.len()];
        // A shared borrow in, a borrow of the caller's data out.
        let longest: &str = coio::blocking(|| words.iter().max_by_key(|w| w.len()).unwrap());
        // A mutable borrow of the coroutine's own stack.
        coio::blocking(|| {
            for (c, w) in counts.iter_mut().zip(&words) {
                *c = w.len();
            }
        });
        (longest, counts)
    });
    assert_eq!(longest, "banana");
    assert_eq!(counted, [4, 3, 6]);
}

#[test]
fn panic_in_f_reaches_the_caller() {
    let rt = rt(1);
    rt.block_on(|| {
        let n = std::hint::black_box(7);
        let err = catch_unwind(|| coio::blocking(|| -> u32 { panic!("boom {n}") })).unwrap_err();
        assert_eq!(
            err.downcast_ref::<String>().map(String::as_str),
            Some("boom 7")
        );
        // The coroutine and the pool go on.
        assert_eq!(coio::blocking(|| 5), 5);
    });
    // Through a coroutine that does not catch it: its join gets the payload.
    let h = rt.spawn(|| coio::blocking(|| std::panic::panic_any(41u8)));
    let err = h.join().unwrap_err();
    assert_eq!(err.downcast_ref::<u8>(), Some(&41));
}

#[test]
fn worker_runs_other_coroutines_meanwhile() {
    // One worker: if `blocking` held the worker thread, the other coroutine
    // could not run until `f` returned, and `f` waits for it to have run.
    let log = Arc::new(Mutex::new(Vec::new()));
    let push = |log: &Arc<Mutex<Vec<&'static str>>>, s| log.lock().unwrap().push(s);
    let got_signal = rt(1).block_on(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let other_log = log.clone();
        let other = coio::spawn(move || {
            push(&other_log, "other runs");
            for _ in 0..3 {
                coio::sleep(Duration::from_millis(1));
            }
            push(&other_log, "other done");
            tx.send(()).unwrap();
        });
        push(&log, "main blocks");
        let log2 = log.clone();
        let got = coio::blocking(move || {
            thread::sleep(Duration::from_millis(200));
            let got = rx.recv_timeout(Duration::from_secs(10)).is_ok();
            push(&log2, "f returns");
            got
        });
        push(&log, "main back");
        other.join().unwrap();
        got
    });
    assert!(got_signal, "the worker was held while f ran");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "main blocks",
            "other runs",
            "other done",
            "f returns",
            "main back"
        ]
    );
}

#[test]
fn many_concurrent_calls_complete() {
    const N: u64 = 1000;
    let threads = Mutex::new(std::collections::HashSet::new());
    let total: u64 = rt(4).block_on(|| {
        coio::scope(|s| {
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let threads = &threads;
                    s.spawn(move || {
                        coio::blocking(|| {
                            assert_eq!(thread_name().as_deref(), Some("coio-blocking"));
                            threads.lock().unwrap().insert(thread::current().id());
                            thread::sleep(Duration::from_millis(1));
                            i * 2
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        })
    });
    assert_eq!(total, N * (N - 1));
    // They overlapped: more than one pool thread served them.
    assert!(threads.lock().unwrap().len() > 1);
}

/// Short calls back to back from a few coroutines: each call's wake comes
/// a few microseconds after the coroutine asked, often while a late wake
/// of its previous call is still pending as a hint. Every wake must arrive
/// (a wake that was dropped as "already pending" left coroutines waiting
/// for good within a second here: `Header::wake` and its loom model
/// `loom_a_stale_wake_hint_hides_no_wake`). Bounded by a watchdog.
#[test]
fn back_to_back_calls_lose_no_wake() {
    const CALLERS: u64 = 8;
    const CALLS: u64 = 20_000;
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(AtomicUsize::new(0));
    let run = {
        let (done, progress) = (done.clone(), progress.clone());
        thread::spawn(move || {
            let sum: u64 = rt(1).block_on(|| {
                let hs: Vec<_> = (0..CALLERS)
                    .map(|c| {
                        let progress = progress.clone();
                        coio::spawn(move || {
                            let mut sum = 0;
                            for i in 0..CALLS {
                                sum += coio::blocking(|| c + i);
                                progress.fetch_add(1, Relaxed);
                            }
                            sum
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            done.store(1, Release);
            sum
        })
    };
    // A lost wake stops the calls for good; a slow machine (valgrind) only
    // slows them: fail once no call completed for 5 s.
    let (mut last, mut since) = (0, Instant::now());
    while done.load(Acquire) == 0 {
        let now = progress.load(Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "stuck after {now} of {} calls: a wake was lost",
            CALLERS * CALLS
        );
        thread::sleep(Duration::from_millis(10));
    }
    let want: u64 = (0..CALLERS)
        .map(|c| c * CALLS + CALLS * (CALLS - 1) / 2)
        .sum();
    assert_eq!(run.join().unwrap(), want);
}

#[test]
fn nested_blocking_runs_in_place() {
    let (outer, inner) = rt(1).block_on(|| {
        coio::blocking(|| {
            let outer = thread::current().id();
            (outer, coio::blocking(|| thread::current().id()))
        })
    });
    assert_eq!(outer, inner);
}

#[test]
fn cancel_takes_effect_after_f_returns() {
    let rt = rt(2);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let got = Arc::new(AtomicUsize::new(0));
    let after_next_point = Arc::new(AtomicBool::new(false));
    let h = {
        let (got, after) = (got.clone(), after_next_point.clone());
        rt.spawn(move || {
            let v = coio::blocking(move || {
                entered_tx.send(()).unwrap();
                gate_rx.recv().unwrap();
                7
            });
            got.store(v, SeqCst);
            coio::yield_now(); // the next blocking point
            after.store(true, SeqCst);
        })
    };
    entered_rx.recv().unwrap();
    h.cancel();
    // Cancelled while `f` runs: the coroutine still waits for it.
    thread::sleep(Duration::from_millis(20));
    assert!(!h.is_finished());
    gate_tx.send(()).unwrap();
    let err = h.join().unwrap_err();
    assert!(err.is::<Cancelled>());
    assert_eq!(got.load(SeqCst), 7, "blocking returned f's value");
    assert!(!after_next_point.load(SeqCst));
}

#[test]
fn cancelled_coroutine_does_not_start_f() {
    let rt = rt(1);
    let ran = Arc::new(AtomicBool::new(false));
    let (sleeping_tx, sleeping_rx) = mpsc::channel::<()>();
    let h = {
        let ran = ran.clone();
        rt.spawn(move || {
            // Cancelled in (or before) its sleep; it catches that, then
            // calls blocking.
            sleeping_tx.send(()).unwrap();
            let r = catch_unwind(|| coio::sleep(Duration::from_secs(60)));
            assert!(r.unwrap_err().is::<Cancelled>());
            coio::blocking(|| ran.store(true, SeqCst));
        })
    };
    sleeping_rx.recv().unwrap();
    h.cancel();
    assert!(h.join().unwrap_err().is::<Cancelled>());
    assert!(!ran.load(SeqCst));
}

#[test]
fn runtime_drop_waits_for_blocking_calls() {
    // Shutdown cancels the coroutine, which keeps waiting for `f` (it
    // borrows the coroutine's stack) and finishes after it.
    let rt = rt(1);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let (finished, seen) = (finished.clone(), seen.clone());
        rt.spawn(move || {
            let mut local = vec![1];
            coio::blocking(|| {
                entered_tx.send(()).unwrap();
                thread::sleep(Duration::from_millis(100));
                local.push(2);
                finished.store(true, SeqCst);
            });
            *seen.lock().unwrap() = local;
        });
    }
    entered_rx.recv().unwrap();
    drop(rt);
    assert!(
        finished.load(SeqCst),
        "the runtime shut down before f finished"
    );
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
}

#[test]
fn unwinding_coroutine_runs_f_in_place() {
    struct OnDrop(Arc<Mutex<Option<(thread::ThreadId, thread::ThreadId)>>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let here = thread::current().id();
            let ran = coio::blocking(|| thread::current().id());
            *self.0.lock().unwrap() = Some((here, ran));
        }
    }
    let out = Arc::new(Mutex::new(None));
    let o = out.clone();
    let rt = rt(1);
    let h = rt.spawn(move || {
        let _guard = OnDrop(o);
        panic!("unwinding");
    });
    assert!(h.join().is_err());
    let (here, ran) = out.lock().unwrap().expect("the destructor ran");
    assert_eq!(here, ran);
}

#[test]
fn pool_is_bounded() {
    const MAX: usize = 3;
    if common::child_role().as_deref() == Some("bounded") {
        let running = AtomicUsize::new(0);
        let most_running = AtomicUsize::new(0);
        let most_threads = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        rt(2).block_on(|| {
            coio::scope(|s| {
                for _ in 0..8 * MAX {
                    s.spawn(|| {
                        coio::blocking(|| {
                            let now = running.fetch_add(1, SeqCst) + 1;
                            most_running.fetch_max(now, SeqCst);
                            most_threads.fetch_max(common::pool_threads(), SeqCst);
                            thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, SeqCst);
                        });
                        done.fetch_add(1, SeqCst);
                    });
                }
            })
        });
        assert_eq!(done.load(SeqCst), 8 * MAX);
        // The bound was reached, not exceeded.
        assert_eq!(most_running.load(SeqCst), MAX);
        assert_eq!(most_threads.load(SeqCst), MAX);
        println!("child ok");
        return;
    }
    let out = common::run_in_child(
        "pool_is_bounded",
        "bounded",
        &[("COIO_BLOCKING_THREADS", &MAX.to_string())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn idle_pool_threads_exit() {
    const N: usize = 4;
    if common::child_role().as_deref() == Some("keep-alive") {
        let running = AtomicUsize::new(0);
        rt(2).block_on(|| {
            coio::scope(|s| {
                for _ in 0..N {
                    s.spawn(|| {
                        coio::blocking(|| {
                            running.fetch_add(1, SeqCst);
                            // All at once, so N threads.
                            assert!(eventually(|| running.load(SeqCst) == N));
                        })
                    });
                }
            })
        });
        let started = common::pool_threads();
        assert!(started >= 1, "no pool thread was started");
        // Keep-alive is 100 ms here: they all go.
        assert!(
            eventually(|| common::pool_threads() == 0),
            "idle threads stayed"
        );
        // And the pool starts threads again afterwards.
        assert_eq!(
            rt(1).block_on(|| coio::blocking(thread_name)).as_deref(),
            Some("coio-blocking")
        );
        println!("child ok: {started} threads started");
        return;
    }
    let out = common::run_in_child(
        "idle_pool_threads_exit",
        "keep-alive",
        &[("COIO_BLOCKING_KEEP_ALIVE_MS", "100")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("child ok: {N} threads")),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn invalid_thread_limit_falls_back_with_a_warning() {
    if common::child_role().as_deref() == Some("invalid") {
        assert_eq!(rt(1).block_on(|| coio::blocking(|| 3)), 3);
        println!("child ok");
        return;
    }
    for bad in ["0", "many", "-1", ""] {
        let out = common::run_in_child(
            "invalid_thread_limit_falls_back_with_a_warning",
            "invalid",
            &[("COIO_BLOCKING_THREADS", bad)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("child ok"),
            "{bad:?}: {stderr}"
        );
        assert!(
            stderr.contains("COIO_BLOCKING_THREADS") && stderr.contains("default of 512"),
            "{bad:?}: no warning: {stderr}"
        );
    }
}
