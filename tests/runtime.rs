//! The runtime's public API: spawn/join, yield, park, sleep, current,
//! cancellation, scopes, coroutine-locals, block_on, shutdown.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use coio::{Cancelled, Runtime};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn run_returns_value() {
    assert_eq!(coio::run(|| 6 * 7), 42);
}

#[test]
fn block_on_borrows() {
    let rt = rt(2);
    let mut v = vec![1, 2, 3];
    let sum: i32 = rt.block_on(|| {
        v.push(4);
        v.iter().sum()
    });
    assert_eq!(sum, 10);
    assert_eq!(v.len(), 4);
}

#[test]
fn block_on_resumes_panic() {
    let rt = rt(1);
    let r = catch_unwind(AssertUnwindSafe(|| rt.block_on(|| panic!("boom"))));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"boom"));
    // The runtime carries on.
    assert_eq!(rt.block_on(|| 1), 1);
}

#[test]
fn spawn_join_many() {
    for workers in [1, 2] {
        let rt = rt(workers);
        let total = rt.block_on(|| {
            let hs: Vec<_> = (0..10_000u64).map(|i| coio::spawn(move || i * 2)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(total, 10_000 * 9_999);
    }
}

#[test]
fn join_from_plain_thread() {
    let rt = rt(2);
    let h = rt.spawn(|| {
        coio::sleep(Duration::from_millis(20));
        "done"
    });
    let t = std::thread::spawn(move || h.join().unwrap());
    assert_eq!(t.join().unwrap(), "done");
}

#[test]
fn join_returns_panic_payload_and_runtime_carries_on() {
    let rt = rt(2);
    rt.block_on(|| {
        let h = coio::spawn(|| -> u32 { panic!("child failed") });
        let p = h.join().unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"child failed"));
        assert_eq!(coio::spawn(|| 5).join().unwrap(), 5);
    });
}

#[test]
fn is_finished_and_coroutine_handle() {
    let rt = rt(1);
    rt.block_on(|| {
        let h = coio::Builder::new()
            .name("named-one")
            .spawn(|| {
                let me = coio::current();
                (me.name().map(str::to_owned), me.id())
            })
            .unwrap();
        let c = h.coroutine();
        assert_eq!(c.name(), Some("named-one"));
        let (name, id) = h.join().unwrap();
        assert_eq!(name.as_deref(), Some("named-one"));
        assert_eq!(id, c.id());
        let h = coio::spawn(|| ());
        while !h.is_finished() {
            coio::yield_now();
        }
        h.join().unwrap();
    });
}

#[test]
fn is_coroutine() {
    assert!(!coio::is_coroutine());
    assert!(coio::run(coio::is_coroutine));
}

/// A nested `coio::run` names the function the user called, not the
/// `Runtime::block_on` under it.
#[test]
fn nested_run_panics_with_its_own_name() {
    let msg = coio::run(|| {
        let p = coio::spawn(|| coio::run(|| 1)).join().unwrap_err();
        match p.downcast::<&str>() {
            Ok(s) => s.to_string(),
            Err(p) => *p.downcast::<String>().unwrap(),
        }
    });
    assert!(
        msg.starts_with("coio::run called from a coroutine"),
        "{msg}"
    );
    assert!(msg.contains("coio::spawn"), "{msg}");
}

#[test]
fn spawn_outside_runtime_panics_with_message() {
    let p = catch_unwind(|| coio::spawn(|| ())).unwrap_err();
    let msg = p.downcast_ref::<String>().unwrap();
    assert!(msg.contains("coio::run"), "{msg}");
    let e = coio::Builder::new().spawn(|| ()).unwrap_err();
    assert!(e.to_string().contains("coio::run"));
}

#[test]
fn bad_worker_counts_are_errors() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = Runtime::builder()
        .stack_size(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

/// A thread name std cannot give a thread is the builder's error, not a
/// panic inside `build` (std's `thread::Builder::spawn` panics on it).
#[test]
fn a_thread_name_with_a_nul_byte_is_an_error() {
    let e = Runtime::builder()
        .workers(1)
        .thread_name("app\0x")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("thread_name"), "{e}");
}

#[test]
fn coio_workers_env() {
    // Run in a child process: the environment is process-wide.
    if let Some(v) = common::child_role() {
        let r = Runtime::new();
        match v.as_str() {
            "3" => assert_eq!(r.unwrap().workers(), 3),
            _ => {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
                assert!(e.to_string().contains("COIO_WORKERS"), "{e}");
            }
        }
        return;
    }
    for (value, child) in [("3", "3"), ("zero", "bad"), ("0", "bad")] {
        let out = common::run_in_child("coio_workers_env", child, &[("COIO_WORKERS", value)]);
        assert!(out.status.success(), "COIO_WORKERS={value}");
    }
}

#[test]
fn yield_interleaves() {
    let rt = rt(1);
    let log = rt.block_on(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..2)
            .map(|id| {
                let log = log.clone();
                coio::spawn(move || {
                    for i in 0..3 {
                        log.lock().unwrap().push((id, i));
                        coio::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    });
    // Both made progress before either finished.
    let first_done = log.iter().position(|&(_, i)| i == 2).unwrap();
    assert!(log[..first_done].iter().any(|&(id, _)| id == 0));
    assert!(log[..first_done].iter().any(|&(id, _)| id == 1));
}

#[test]
fn sleep_duration() {
    let rt = rt(2);
    rt.block_on(|| {
        for ms in [1u64, 10, 30] {
            let t = Instant::now();
            coio::sleep(Duration::from_millis(ms));
            let e = t.elapsed();
            assert!(e >= Duration::from_millis(ms), "{e:?}");
            // Generous: other tests load the machine.
            assert!(e < Duration::from_millis(ms + 200), "{e:?}");
        }
    });
    // Plain thread.
    let t = Instant::now();
    coio::sleep(Duration::from_millis(5));
    assert!(t.elapsed() >= Duration::from_millis(5));
}

#[test]
fn many_sleepers_wake_in_order_of_deadline() {
    let rt = rt(2);
    rt.block_on(|| {
        let start = Instant::now();
        let hs: Vec<_> = (0..1000u64)
            .map(|i| {
                coio::spawn(move || {
                    let d = Duration::from_millis(i % 50);
                    coio::sleep(d);
                    start.elapsed() >= d
                })
            })
            .collect();
        assert!(hs.into_iter().all(|h| h.join().unwrap()));
    });
}

#[test]
fn unpark_before_park_is_not_lost() {
    let rt = rt(2);
    rt.block_on(|| {
        let me = coio::current();
        me.unpark();
        coio::park(); // returns at once: the token was there
        // An unpark from another coroutine while we sleep is kept for the
        // park after the sleep.
        let h = coio::spawn(move || me.unpark());
        coio::sleep(Duration::from_millis(20));
        h.join().unwrap();
        let t = Instant::now();
        coio::park();
        assert!(t.elapsed() < Duration::from_millis(500));
    });
}

#[test]
fn park_unpark_pingpong_across_workers() {
    let rt = rt(2);
    rt.block_on(|| {
        const N: usize = 20_000;
        let turn = Arc::new(AtomicUsize::new(0));
        let main = coio::current();
        let t2 = turn.clone();
        let other = coio::spawn(move || {
            for i in 0..N {
                while t2.load(Acquire) != 2 * i + 1 {
                    coio::park();
                }
                t2.store(2 * i + 2, Release);
                main.unpark();
            }
        });
        let oc = other.coroutine();
        for i in 0..N {
            turn.store(2 * i + 1, Release);
            oc.unpark();
            while turn.load(Acquire) != 2 * i + 2 {
                coio::park();
            }
        }
        other.join().unwrap();
    });
}

#[test]
fn park_timeout_times_out() {
    let rt = rt(1);
    rt.block_on(|| {
        let t = Instant::now();
        coio::park_timeout(Duration::from_millis(20));
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(19), "{e:?}");
        // Unparked early: returns early.
        let me = coio::current();
        coio::spawn(move || {
            coio::sleep(Duration::from_millis(5));
            me.unpark();
        });
        let t = Instant::now();
        coio::park_timeout(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn unpark_from_plain_thread() {
    let rt = rt(2);
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    let h = rt.spawn(move || {
        tx.send(coio::current()).unwrap();
        while !f2.load(Acquire) {
            coio::park();
        }
        7
    });
    let c = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    flag.store(true, Release);
    c.unpark();
    assert_eq!(h.join().unwrap(), 7);
}

/// Drops count destructors that ran during a cancellation.
struct Noisy(Arc<AtomicUsize>);
impl Drop for Noisy {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn cancel_each_kind_of_wait() {
    let rt = rt(2);
    rt.block_on(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        // Counts the coroutines that reached their wait.
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let d = drops.clone();
        let sleeper = coio::spawn(move || {
            let _n = Noisy(d);
            s.fetch_add(1, SeqCst);
            coio::sleep(Duration::from_secs(3600));
        });
        let (d, s) = (drops.clone(), started.clone());
        let parker = coio::spawn(move || {
            let _n = Noisy(d);
            s.fetch_add(1, SeqCst);
            loop {
                coio::park();
            }
        });
        let (d, s) = (drops.clone(), started.clone());
        let timed = coio::spawn(move || {
            let _n = Noisy(d);
            s.fetch_add(1, SeqCst);
            loop {
                coio::park_timeout(Duration::from_secs(3600));
            }
        });
        let forever = coio::spawn(|| {
            loop {
                coio::park();
            }
        });
        let fc = forever.coroutine();
        let (d, s) = (drops.clone(), started.clone());
        let joiner = coio::spawn(move || {
            let _n = Noisy(d);
            s.fetch_add(1, SeqCst);
            let _ = forever.join();
        });
        let (d, s) = (drops.clone(), started.clone());
        let yielder = coio::spawn(move || {
            let _n = Noisy(d);
            s.fetch_add(1, SeqCst);
            loop {
                coio::yield_now();
            }
        });
        while started.load(SeqCst) < 5 {
            coio::sleep(Duration::from_millis(1));
        }
        coio::sleep(Duration::from_millis(5));
        for h in [&sleeper, &parker, &timed, &joiner, &yielder] {
            h.cancel();
        }
        for h in [sleeper, parker, timed, joiner, yielder] {
            let p = h.join().unwrap_err();
            assert!(p.is::<Cancelled>());
        }
        assert_eq!(drops.load(SeqCst), 5);
        // The joined-on coroutine was not cancelled; cancel it through a
        // second handle-less path: unpark does not cancel, so it still runs.
        fc.unpark();
    });
}

#[test]
fn cancel_before_start_never_runs() {
    let rt = rt(1);
    rt.block_on(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        let h = coio::spawn(move || r2.store(true, SeqCst));
        h.cancel();
        assert!(h.join().unwrap_err().is::<Cancelled>());
        assert!(!ran.load(SeqCst));
    });
}

#[test]
fn cancel_from_plain_thread_and_finished() {
    let rt = rt(2);
    let h = rt.spawn(|| coio::sleep(Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(10));
    h.cancel();
    assert!(h.join().unwrap_err().is::<Cancelled>());
    let h = rt.spawn(|| 3);
    while !h.is_finished() {
        std::thread::yield_now();
    }
    h.cancel();
    assert_eq!(h.join().unwrap(), 3);
}

#[test]
fn shutdown_unwinds_everything() {
    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let handles = {
        let rt = rt(2);
        let (d, s) = (drops.clone(), started.clone());
        rt.block_on(move || {
            let mut hs = Vec::new();
            for i in 0..1000 {
                let (d, s) = (d.clone(), s.clone());
                hs.push(coio::spawn(move || {
                    let _n = Noisy(d);
                    s.fetch_add(1, SeqCst);
                    match i % 3 {
                        0 => coio::sleep(Duration::from_secs(3600)),
                        1 => loop {
                            coio::park()
                        },
                        _ => loop {
                            coio::yield_now()
                        },
                    }
                }));
            }
            // Every one of them started (and is blocked or yielding), however
            // slow the machine (valgrind in CI).
            while s.load(SeqCst) < 1000 {
                coio::sleep(Duration::from_millis(1));
            }
            hs
        })
        // The runtime drops here.
    };
    assert_eq!(started.load(SeqCst), 1000);
    assert_eq!(drops.load(SeqCst), 1000);
    for h in handles {
        assert!(h.join().unwrap_err().is::<Cancelled>());
    }
}

#[test]
fn shutdown_drops_unstarted() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let rt = rt(1);
        let d = drops.clone();
        rt.block_on(move || {
            for _ in 0..100 {
                let n = Noisy(d.clone());
                coio::spawn(move || {
                    let _n = n;
                    coio::park();
                });
            }
        });
    }
    assert_eq!(drops.load(SeqCst), 100);
}

#[test]
fn scope_borrows_and_joins_all() {
    let rt = rt(2);
    let mut data = vec![1u64, 2, 3, 4];
    let counter = AtomicUsize::new(0);
    rt.block_on(|| {
        coio::scope(|s| {
            for x in data.iter_mut() {
                let counter = &counter;
                s.spawn(move || {
                    coio::sleep(Duration::from_millis(*x));
                    *x *= 10;
                    counter.fetch_add(1, SeqCst);
                });
            }
        });
    });
    assert_eq!(data, [10, 20, 30, 40]);
    assert_eq!(counter.load(SeqCst), 4);
}

#[test]
fn scope_survives_forgotten_handles() {
    let rt = rt(2);
    let flag = AtomicBool::new(false);
    rt.block_on(|| {
        coio::scope(|s| {
            let h = s.spawn(|| {
                coio::sleep(Duration::from_millis(30));
                flag.store(true, SeqCst);
            });
            std::mem::forget(h);
        });
        // The scope waited although the handle was forgotten.
        assert!(flag.load(SeqCst));
    });
}

#[test]
fn scope_reports_unjoined_panic() {
    let rt = rt(1);
    rt.block_on(|| {
        let r = catch_unwind(AssertUnwindSafe(|| {
            coio::scope(|s| {
                s.spawn(|| panic!("scoped child"));
            })
        }));
        assert!(r.is_err());
        // Joined panics are the caller's to handle.
        coio::scope(|s| {
            let h = s.spawn(|| panic!("joined child"));
            assert!(h.join().is_err());
        });
    });
}

#[test]
fn cancelled_scope_owner_cancels_children_and_waits() {
    let rt = rt(2);
    let data = vec![1, 2, 3];
    let drops = Arc::new(AtomicUsize::new(0));
    let d2 = drops.clone();
    let started = AtomicUsize::new(0);
    rt.block_on(|| {
        let owner = coio::scope(|outer| {
            let h = outer.spawn(|| {
                coio::scope(|s| {
                    for _ in 0..3 {
                        let d = d2.clone();
                        let (data, started) = (&data, &started);
                        s.spawn(move || {
                            let _n = Noisy(d);
                            started.fetch_add(1, SeqCst);
                            loop {
                                coio::park_timeout(Duration::from_secs(3600));
                                assert_eq!(data.len(), 3);
                            }
                        });
                    }
                });
            });
            while started.load(SeqCst) < 3 {
                coio::sleep(Duration::from_millis(1));
            }
            h.cancel();
            h.join()
        });
        assert!(owner.unwrap_err().is::<Cancelled>());
    });
    assert_eq!(drops.load(SeqCst), 3);
}

coio::coroutine_local! {
    static LOCAL_ID: Cell<u64> = Cell::new(0);
    static DROPPED: DropMark = DropMark(Cell::new(false));
}

struct DropMark(Cell<bool>);
static LOCAL_DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for DropMark {
    fn drop(&mut self) {
        LOCAL_DROPS.fetch_add(1, SeqCst);
    }
}

#[test]
fn coroutine_locals_are_per_coroutine() {
    let rt = rt(2);
    rt.block_on(|| {
        let hs: Vec<_> = (1..=100u64)
            .map(|i| {
                coio::spawn(move || {
                    LOCAL_ID.with(|c| c.set(i));
                    DROPPED.with(|d| d.0.set(true));
                    coio::sleep(Duration::from_millis(i % 7));
                    coio::yield_now();
                    LOCAL_ID.with(Cell::get)
                })
            })
            .collect();
        for (i, h) in (1..=100u64).zip(hs) {
            assert_eq!(h.join().unwrap(), i);
        }
        assert_eq!(LOCAL_ID.with(Cell::get), 0);
    });
    assert_eq!(LOCAL_DROPS.load(SeqCst), 100);
    // Plain threads get their own value too.
    LOCAL_ID.with(|c| c.set(5));
    assert_eq!(
        std::thread::spawn(|| LOCAL_ID.with(Cell::get))
            .join()
            .unwrap(),
        0
    );
}

#[test]
fn builder_stack_size_and_errors() {
    let rt = rt(1);
    rt.block_on(|| {
        let h = coio::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                // Uses more than the default 128 KiB.
                let buf = [7u8; 512 * 1024];
                std::hint::black_box(&buf)[1000]
            })
            .unwrap();
        assert_eq!(h.join().unwrap(), 7);
        let e = coio::Builder::new()
            .stack_size(usize::MAX)
            .spawn(|| ())
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn block_on_from_coroutine_panics() {
    let rt = Arc::new(rt(1));
    let rt2 = rt.clone();
    let r = rt.block_on(move || catch_unwind(AssertUnwindSafe(|| rt2.block_on(|| ()))).is_err());
    assert!(r);
}

#[test]
fn idle_runtime_burns_no_cpu() {
    // A child process so that other tests' threads do not count.
    if common::child_role().is_some() {
        let rt = rt(2);
        rt.block_on(|| {
            for _ in 0..100 {
                coio::spawn(coio::park);
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let before = common::cpu_time();
        std::thread::sleep(Duration::from_secs(1));
        let used = common::cpu_time() - before;
        println!("idle cpu: {used:?}");
        assert!(
            used < Duration::from_millis(5),
            "idle runtime used {used:?} of CPU in 1 s"
        );
        std::process::exit(0);
    }
    let out = common::run_in_child("idle_runtime_burns_no_cpu", "idle", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn stall_warning_names_the_worker_and_coroutine() {
    if common::child_role().is_some() {
        let rt = Runtime::builder()
            .workers(1)
            .thread_name("stall-test")
            .stall_warning(Some(Duration::from_millis(100)))
            .build()
            .unwrap();
        let id = rt.block_on(|| {
            // Blocks the worker thread: what the monitor is there to see.
            std::thread::sleep(Duration::from_millis(400));
            coio::current().id().as_u64()
        });
        println!("id={id}");
        return;
    }
    let out = common::run_in_child("stall_warning_names_the_worker_and_coroutine", "stall", &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("id="))
        .expect("child printed no id");
    let warnings: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("without coming back"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("stall-test-0"), "{stderr}");
    assert!(
        warnings[0].contains(&format!("coroutine {id} ")),
        "{stderr}"
    );
    // Its spawn site and its stack, captured on the stuck worker, with
    // what to do.
    assert!(
        warnings[0].contains("It was created at tests/runtime.rs:"),
        "{stderr}"
    );
    // The system call it is stuck in, whatever the build inlined above.
    assert!(stderr.contains("nanosleep"), "{stderr}");
    // The coroutine's closure, or, where the build inlined it into coio's
    // entry (any optimised build, with or without debug assertions), the
    // call that runs it, or (fat LTO with line tables only, whose inlined
    // frames have short names: `{closure#0}`) its line here, a second
    // `runtime.rs` line after the spawn site's.
    assert!(
        stderr.contains("runtime::stall_warning_names_the_worker_and_coroutine::{{closure}}")
            || stderr.contains("FnOnce::call_once")
            || stderr.matches("tests/runtime.rs:").count() >= 2,
        "{stderr}"
    );
    assert!(stderr.contains("coio::blocking"), "{stderr}");
}

/// Time in the panic hook (std's prints a backtrace with
/// `RUST_BACKTRACE=1`, whose first symbolisation can take longer than the
/// threshold) is not warned about as a stall: the warning showed the hook's
/// own stack and told the user to add yield points.
#[test]
fn no_stall_warning_for_time_in_the_panic_hook() {
    if common::child_role().is_some() {
        std::panic::set_hook(Box::new(|info| {
            std::thread::sleep(Duration::from_millis(300));
            eprintln!("hook: {info}");
        }));
        let rt = Runtime::builder()
            .workers(1)
            .stall_warning(Some(Duration::from_millis(50)))
            .build()
            .unwrap();
        let r = rt.block_on(|| coio::spawn(|| panic!("in a coroutine")).join());
        assert!(r.is_err());
        return;
    }
    let out = common::run_in_child("no_stall_warning_for_time_in_the_panic_hook", "hook", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("hook: "), "{stderr}");
    assert!(!stderr.contains("without coming back"), "{stderr}");
}

/// A destructor that spins as a panic unwinds, after a slow panic hook,
/// in the same resume: the hook's time is not warned about, the spin is
/// (the monitor gave up on the resume once it had seen the hook).
#[test]
fn a_stall_after_a_slow_panic_hook_is_warned_about() {
    if common::child_role().is_some() {
        struct SpinOnDrop;
        impl Drop for SpinOnDrop {
            fn drop(&mut self) {
                let t = std::time::Instant::now();
                while t.elapsed() < Duration::from_millis(1500) {
                    std::hint::spin_loop();
                }
            }
        }
        std::panic::set_hook(Box::new(|_| std::thread::sleep(Duration::from_millis(300))));
        let rt = Runtime::builder()
            .workers(1)
            .stall_warning(Some(Duration::from_millis(100)))
            .build()
            .unwrap();
        // The symbols loaded first, by a dump from this thread of a
        // sleeping coroutine (no stall):
        // a capture's first symbolisation takes most of a second in a
        // debug build, seconds on a loaded machine, and a capture begun
        // in the hook could end after the spin (then nothing is warned).
        let sleeper = rt.spawn(|| coio::sleep(Duration::from_millis(300)));
        std::thread::sleep(Duration::from_millis(50));
        rt.dump(&mut std::io::sink()).unwrap();
        sleeper.join().unwrap();
        let r = rt.block_on(|| {
            coio::spawn(|| {
                let _s = SpinOnDrop;
                panic!("in a coroutine")
            })
            .join()
        });
        assert!(r.is_err());
        return;
    }
    let out = common::run_in_child(
        "a_stall_after_a_slow_panic_hook_is_warned_about",
        "hook",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One warning, for the spin (the destructor's name may be inlined
    // away: not looked for).
    let warnings = stderr.matches("without coming back").count();
    assert_eq!(warnings, 1, "{stderr}");
}

/// A coroutine that yields often, alone on its worker (each yield picks it
/// again), comes back to the scheduler: no stall warning (it got one: the
/// monitor saw no new resume).
#[test]
fn a_coroutine_that_yields_alone_is_not_a_stall() {
    if common::child_role().is_some() {
        let rt = Runtime::builder()
            .workers(1)
            .stall_warning(Some(Duration::from_millis(50)))
            .build()
            .unwrap();
        rt.block_on(|| {
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_millis(400) {
                coio::yield_now();
            }
        });
        return;
    }
    let out = common::run_in_child("a_coroutine_that_yields_alone_is_not_a_stall", "alone", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("without coming back"), "{stderr}");
}

#[test]
fn detached_results_are_dropped_when_their_coroutines_finish() {
    // Finished tasks are recycled for new spawns: what a detached coroutine
    // returned must not live on in there.
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (d, r) = (drops.clone(), ran.clone());
    rt.block_on(move || {
        for _ in 0..100 {
            let (d, r) = (d.clone(), r.clone());
            drop(coio::spawn(move || {
                r.fetch_add(1, SeqCst);
                Noisy(d)
            }));
        }
        while r.load(SeqCst) < 100 {
            coio::yield_now();
        }
        // Let the last ones finish (they return after counting).
        for _ in 0..10 {
            coio::yield_now();
        }
        assert_eq!(d.load(SeqCst), 100);
        // And recycled tasks run new closures correctly.
        let hs: Vec<_> = (0..300u64).map(|i| coio::spawn(move || i * 3)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 3 * 299 * 300 / 2);
    });
    assert_eq!(ran.load(SeqCst), 100);
    assert_eq!(drops.load(SeqCst), 100);
}

/// A coroutine spawned from outside the runtime starts even while every
/// worker is busy with coroutines that hand messages to each other
/// directly (never idle, never back to the loop to recount its share).
/// It once waited in the injector forever: workers past a cap computed
/// before the load arrived took nothing from there.
#[test]
fn injected_coroutine_starts_while_every_worker_is_busy() {
    common::within(Duration::from_secs(60), || {
        let rt = common::quiet_rt(2);
        let done = Arc::new(AtomicBool::new(false));
        let pairs = common::ping_pong_pairs(&rt, 8, &done, &Arc::new(AtomicUsize::new(0)));
        for i in 0..20 {
            assert_eq!(rt.spawn(move || i).join().unwrap(), i);
        }
        done.store(true, Relaxed);
        for p in pairs {
            p.join().unwrap();
        }
    });
}

/// A panic in a coroutine names the coroutine (id, name, spawn site)
/// before std's message, which names only the worker thread.
#[test]
fn panics_name_their_coroutine() {
    if common::child_role().is_some() {
        common::quiet_rt(1).block_on(|| {
            let h = coio::Builder::new()
                .name("conn-handler")
                .spawn(|| panic!("boom in a handler"))
                .unwrap();
            assert!(h.join().is_err());
        });
        return;
    }
    let out = common::run_in_child("panics_name_their_coroutine", "child", &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let note = err
        .lines()
        .position(|l| l.starts_with("coio: panic in coroutine ") && l.contains("\"conn-handler\""))
        .unwrap_or_else(|| panic!("no note naming the coroutine in:\n{err}"));
    let line = err.lines().nth(note).unwrap();
    assert!(line.contains("created at tests/runtime.rs:"), "{line}");
    // std's own message follows.
    let next = err.lines().skip(note + 1).find(|l| !l.is_empty()).unwrap();
    assert!(next.contains("panicked at"), "{err}");
    assert!(err.contains("boom in a handler"));
}

/// A scope's parent cancelled while it waits cancels its children; a
/// child spawned after that (by a child that was in `blocking`, which a
/// cancel does not interrupt) is cancelled too (it was left running, and
/// the cancelled parent waited for it for ever).
#[test]
fn a_cancelled_scope_cancels_children_spawned_after_the_cancel() {
    common::within(Duration::from_secs(20), || {
        let rt = rt(2);
        let (tx, rx) = std::sync::mpsc::channel();
        let parent = rt.spawn(move || {
            coio::scope(|s| {
                s.spawn(move || {
                    loop {
                        coio::blocking(|| std::thread::sleep(Duration::from_millis(100)));
                        s.spawn(|| coio::sleep(Duration::from_secs(3600)));
                        let _ = tx.send(());
                    }
                });
            })
        });
        rx.recv().unwrap();
        // The child is in `blocking` again.
        std::thread::sleep(Duration::from_millis(20));
        parent.cancel();
        assert!(parent.join().unwrap_err().is::<Cancelled>());
    });
}

/// `Runtime::block_on` from a coroutine panics with advice that keeps the
/// work on that runtime (`coio::spawn` alone would move it to the
/// coroutine's own).
#[test]
fn block_on_from_a_coroutine_advises_the_runtime_s_spawn() {
    let a = rt(1);
    let b = Arc::new(rt(1));
    let msg = a.block_on(move || {
        let p = catch_unwind(AssertUnwindSafe(|| b.block_on(|| ()))).unwrap_err();
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap()
    });
    assert!(msg.contains("runtime.spawn(..).join()"), "{msg}");
}
