//! Regression tests for issue 11's findings: memory freed while a
//! generator still borrowed it, through safe code only, and the hangs on
//! shutdown and exhaustion paths. The memory cases also run under valgrind
//! memcheck in CI (`.ci/run`), which tells an invalid read for certain;
//! natively, each checks the contents it reads against what was written.
//!
//! The shape of the memory cases: a `Generator` is tied to its thread, not
//! to a coroutine, so a coroutine can leave one suspended (in a plain
//! `thread_local!`) inside a borrow, and another coroutine of the same
//! worker, or the worker thread's exit, resumes or unwinds it later.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use coio::{Generator, GeneratorState, Runtime};

mod common;

use common::quiet_rt as rt;

/// Runs `f` on a thread of its own and fails if it takes over 20 s (a
/// deadlock would otherwise hang the test run).
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("hung (or panicked) for 20 s")
}

const LEN: usize = 512;
/// What a value of [`Pattern`] sums to while it is alive.
const SUM: u64 = (LEN as u64 - 1) * LEN as u64 / 2;

/// A heap buffer with known contents whose destructor is counted: read
/// after it was freed, the sum comes out wrong natively (the allocator
/// writes its own pointers into freed blocks) and valgrind reports the read.
struct Pattern {
    v: Vec<u64>,
    drops: &'static AtomicUsize,
}

impl Pattern {
    fn new(drops: &'static AtomicUsize) -> Pattern {
        Pattern {
            v: (0..LEN as u64).collect(),
            drops,
        }
    }

    fn sum(&self) -> u64 {
        self.v.iter().sum()
    }
}

impl Drop for Pattern {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        // Make a read after the drop visible even if the allocator leaves
        // the block alone.
        self.v.iter_mut().for_each(|x| *x = u64::MAX);
    }
}

/// Reuses freed memory of the size of a [`Pattern`]'s buffer.
fn churn() {
    let junk: Vec<Vec<u64>> = (0..64).map(|_| vec![7; LEN]).collect();
    std::hint::black_box(&junk);
}

// --- 1. A coroutine-local borrowed by a generator that outlives its coroutine.

static LOCAL_DROPS: AtomicUsize = AtomicUsize::new(0);

coio::coroutine_local! {
    static VAL: Pattern = Pattern::new(&LOCAL_DROPS);
}

type Stashed = Generator<(), u64, ()>;

thread_local! {
    static STASH: RefCell<Option<Stashed>> = const { RefCell::new(None) };
}

/// Coroutine A resumes a generator that suspends inside `VAL.with`, stashes
/// it in a thread-local and finishes (its coroutine-locals are dropped);
/// coroutine B, on the same worker, resumes the generator, which reads the
/// value again. The value must still be alive then, and be dropped once,
/// when the borrow ends.
#[test]
fn coroutine_local_borrowed_across_a_yield_outlives_the_coroutine() {
    let rt = rt(1);
    let sums = rt.block_on(|| {
        let first = coio::spawn(|| {
            let mut g: Stashed = Generator::new(|y, ()| {
                VAL.with(|v| {
                    y.yield_(v.sum());
                    y.yield_(v.sum());
                })
            });
            let GeneratorState::Yielded(first) = g.resume(()) else {
                unreachable!()
            };
            STASH.with(|s| *s.borrow_mut() = Some(g));
            first
        })
        .join()
        .unwrap();
        // A has finished: without the fix, its value is freed here.
        churn();
        let (second, drops_before_end) = coio::spawn(|| {
            let second = STASH.with(|s| s.borrow_mut().as_mut().unwrap().resume(()));
            churn();
            (second, LOCAL_DROPS.load(SeqCst))
        })
        .join()
        .unwrap();
        // The generator's `with` returns: the last count on A's value goes.
        let end = STASH.with(|s| s.borrow_mut().take().unwrap().resume(()));
        assert_eq!(end, GeneratorState::Complete(()));
        (first, second, drops_before_end)
    });
    assert_eq!(sums.0, SUM);
    assert_eq!(sums.1, GeneratorState::Yielded(SUM), "read a freed value");
    assert_eq!(sums.2, 0, "the value was dropped while borrowed");
    drop(rt);
    assert_eq!(LOCAL_DROPS.load(SeqCst), 1);
}

static SHUTDOWN_DROPS: AtomicUsize = AtomicUsize::new(0);
static SHUTDOWN_SEEN: AtomicUsize = AtomicUsize::new(0);
static SHUTDOWN_BAD: AtomicUsize = AtomicUsize::new(0);

coio::coroutine_local! {
    static AT_SHUTDOWN: Pattern = Pattern::new(&SHUTDOWN_DROPS);
}

thread_local! {
    static PARKED: RefCell<Option<Generator<(), (), ()>>> = const { RefCell::new(None) };
}

/// Reads the value it borrows when dropped (by the generator's unwinding).
struct ReadOnDrop<'a>(&'a Pattern, &'static AtomicUsize, &'static AtomicUsize);

impl Drop for ReadOnDrop<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
        if self.0.sum() != SUM {
            self.2.fetch_add(1, SeqCst);
        }
    }
}

/// The one-coroutine form: the generator is left suspended inside the
/// borrow in the worker's thread-local; the coroutine finishes, and the
/// runtime shuts down. Whatever happens to the generator at the worker's
/// exit (it is leaked), nothing may read the freed value.
#[test]
fn generator_parked_in_a_worker_thread_local_at_shutdown() {
    let rt = rt(1);
    rt.block_on(|| {
        coio::spawn(|| {
            let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| {
                AT_SHUTDOWN.with(|v| {
                    let _guard = ReadOnDrop(v, &SHUTDOWN_SEEN, &SHUTDOWN_BAD);
                    y.yield_(());
                })
            });
            g.resume(());
            PARKED.with(|p| *p.borrow_mut() = Some(g));
        })
        .join()
        .unwrap();
        churn();
    });
    drop(rt);
    assert_eq!(SHUTDOWN_BAD.load(SeqCst), 0, "read a freed value");
    // Leaked with the generator (it borrows it), never dropped twice.
    assert!(SHUTDOWN_DROPS.load(SeqCst) <= 1);
}

// --- 2. The thread-exit gap on a worker thread.

static EXIT_SEEN: AtomicUsize = AtomicUsize::new(0);
static EXIT_BAD: AtomicUsize = AtomicUsize::new(0);
static EXIT_DROPS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Owns the suspended generator; first used before `BORROWED`, so it
    /// is destroyed after it.
    static OWNER: RefCell<Option<Generator<(), (), ()>>> = const { RefCell::new(None) };
    /// The std thread-local the generator's frames borrow.
    static BORROWED: Pattern = Pattern::new(&EXIT_DROPS);
}

/// A coroutine stashes in `OWNER` a generator suspended inside
/// `BORROWED.with`, and `BORROWED` is first used after `OWNER`: at the
/// worker thread's exit `BORROWED` would be destroyed first. The generator
/// must never be unwound after that: the worker, left with a suspended
/// generator, stays parked for good instead of exiting, so neither
/// thread-local is destroyed (and, were it to exit, it marks itself
/// exiting first, and the generator would be leaked).
#[test]
fn worker_exit_never_unwinds_a_generator_after_what_it_borrows() {
    let rt = rt(1);
    rt.block_on(|| {
        coio::spawn(|| {
            OWNER.with(|_| {});
            let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| {
                BORROWED.with(|v| {
                    let _guard = ReadOnDrop(v, &EXIT_SEEN, &EXIT_BAD);
                    y.yield_(());
                })
            });
            g.resume(());
            OWNER.with(|o| *o.borrow_mut() = Some(g));
        })
        .join()
        .unwrap();
    });
    drop(rt);
    assert_eq!(EXIT_DROPS.load(SeqCst), 0, "the worker's thread-local died");
    assert_eq!(EXIT_BAD.load(SeqCst), 0, "unwound after what it borrows");
    assert_eq!(EXIT_SEEN.load(SeqCst), 0, "unwound at the worker's exit");
}

static PLAIN_DROPS: AtomicUsize = AtomicUsize::new(0);
static PLAIN_SEEN: AtomicUsize = AtomicUsize::new(0);
static PLAIN_BAD: AtomicUsize = AtomicUsize::new(0);

coio::coroutine_local! {
    static ON_PLAIN: Pattern = Pattern::new(&PLAIN_DROPS);
}

thread_local! {
    static PLAIN_OWNER: RefCell<Option<Generator<(), (), ()>>> = const { RefCell::new(None) };
}

/// The same on a plain thread (no runtime, so no exit hook): the thread's
/// coroutine-local values are first used after the generator's owner and
/// destroyed before it, while the thread has run generators before (so
/// coio's own thread-local is destroyed last and the generator is
/// unwound). The borrowed value must still be alive for the unwinding.
#[test]
fn plain_thread_exit_keeps_a_borrowed_coroutine_local_alive() {
    thread::spawn(|| {
        // A first generator: coio's thread-local comes first.
        let mut first: Generator<(), (), u32> = Generator::new(|_, ()| 1);
        assert_eq!(first.resume(()), GeneratorState::Complete(1));
        PLAIN_OWNER.with(|_| {});
        let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| {
            ON_PLAIN.with(|v| {
                let _guard = ReadOnDrop(v, &PLAIN_SEEN, &PLAIN_BAD);
                y.yield_(());
            })
        });
        g.resume(());
        PLAIN_OWNER.with(|o| *o.borrow_mut() = Some(g));
    })
    .join()
    .unwrap();
    assert_eq!(PLAIN_BAD.load(SeqCst), 0, "read a freed value");
    assert_eq!(PLAIN_SEEN.load(SeqCst), 1, "the generator was unwound");
    assert_eq!(PLAIN_DROPS.load(SeqCst), 1);
}

// --- 2b. A suspended generator resumed by a thread-local's destructor.

thread_local! {
    /// Resumes the generator it owns when destroyed; first used before
    /// `EXIT_BORROWED`, so destroyed after it.
    static RESUMER: RefCell<Option<Resumer>> = const { RefCell::new(None) };
    static EXIT_BORROWED: String = "x".repeat(64);
}

/// Resumes its generator when dropped (to let it finish: ordinary code).
struct Resumer(Generator<(), (), usize>);

impl Drop for Resumer {
    fn drop(&mut self) {
        let _ = self.0.resume(());
    }
}

/// Stashes in `RESUMER` a generator suspended inside `EXIT_BORROWED.with`,
/// on a runtime's worker (`worker`) or a plain thread. At the thread's
/// exit `EXIT_BORROWED` is destroyed first, then `RESUMER`, whose resume
/// would read the freed string.
fn stash_a_resumer() {
    RESUMER.with(|_| {});
    let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| {
        EXIT_BORROWED.with(|b| {
            y.yield_(());
            println!("resumed after what it borrows");
            b.len()
        })
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(()));
    RESUMER.with(|r| *r.borrow_mut() = Some(Resumer(g)));
}

/// On a plain thread, the resume panics (and the panic in a
/// thread-local's destructor aborts the process) instead of running frames
/// after a thread-local they borrow was destroyed (once coio's own
/// thread-local, made with the first stack, is destroyed); it would read
/// the freed string. A worker left with the suspended generator never
/// exits: neither thread-local is destroyed, nothing is resumed, and the
/// process ends normally.
#[test]
fn a_suspended_generator_is_not_resumed_by_a_destructor_at_thread_exit() {
    match common::child_role().as_deref() {
        Some("worker") => {
            let rt = rt(1);
            rt.block_on(stash_a_resumer);
            drop(rt);
            return;
        }
        Some(_) => {
            thread::spawn(stash_a_resumer).join().unwrap();
            return;
        }
        None => {}
    }
    for role in ["worker", "plain"] {
        let out = common::run_in_child(
            "a_suspended_generator_is_not_resumed_by_a_destructor_at_thread_exit",
            role,
            &[],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stdout.contains("resumed after"), "{role}: {stdout}");
        if role == "worker" {
            common::assert_child_ok(&out);
            continue;
        }
        assert!(!out.status.success(), "{role}: {stdout}");
        assert!(
            stderr.contains("a suspended generator was resumed while its thread exits"),
            "{role}: {stderr}"
        );
    }
}

// --- 2c. A leaked frame's borrow of a thread-local, shared with a scoped
// thread: the thread that owns the thread-local must never exit.

static SCOPED_DROPS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Borrowed by a generator's frame and, through a `thread::scope` it is
    /// suspended in, by a scoped thread.
    static SCOPED: Pattern = Pattern::new(&SCOPED_DROPS);
    /// Where `stash` leaves the generator (destroyed before `SCOPED`, which
    /// is first used after it... by the generator: see `leave_a_scope`).
    static SCOPED_OWNER: RefCell<Option<Generator<(), (), ()>>> = const { RefCell::new(None) };
}

/// What the scoped thread tells: how often it read the value, how often
/// it found it freed, and the order to stop.
#[derive(Clone, Default)]
struct Reader {
    reads: Arc<AtomicUsize>,
    bad: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Waits until `cond` holds, for 10 s at most (a loaded machine is slow);
/// fails saying `what` otherwise.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        thread::sleep(Duration::from_millis(5));
    }
}

impl Reader {
    /// Checks that the reader reads on and never found the value destroyed
    /// (nor was it dropped), then stops it and says "held".
    fn held(&self, what: &str) {
        let before = self.reads.load(SeqCst);
        eventually(
            &format!("{what}: the reader stopped (did it panic, reading a destroyed value?)"),
            || self.reads.load(SeqCst) > before + 5,
        );
        assert_eq!(
            self.bad.load(SeqCst),
            0,
            "{what}: read a destroyed thread-local"
        );
        assert_eq!(
            SCOPED_DROPS.load(SeqCst),
            0,
            "{what}: the thread-local was destroyed"
        );
        self.stop.store(true, SeqCst);
        println!("held");
    }
}

/// Leaves on this thread a generator suspended inside `SCOPED.with` and a
/// `thread::scope` whose thread reads the value until told to stop (std
/// lets it: the reference lives until the scope ends). The frame is then
/// leaked: forgotten (`forget`), or left in a thread-local (`stash`), which
/// the thread's exit destroys before `SCOPED` and cannot unwind.
fn leave_a_scope(how: &str, reader: Reader) {
    let mut g = Generator::new(move |y: &coio::Yielder<(), ()>, ()| {
        SCOPED.with(|v| {
            thread::scope(|s| {
                s.spawn(|| {
                    while !reader.stop.load(SeqCst) {
                        if v.sum() != SUM {
                            reader.bad.fetch_add(1, SeqCst);
                        }
                        reader.reads.fetch_add(1, SeqCst);
                        thread::sleep(Duration::from_millis(1));
                    }
                });
                y.yield_(());
            })
        })
    });
    assert_eq!(g.resume(()), GeneratorState::Yielded(()));
    match how {
        "forget" => std::mem::forget(g),
        _ => SCOPED_OWNER.with(|o| *o.borrow_mut() = Some(g)),
    }
}

/// A frame leaked on a thread of coio's (a worker, with its runtime then
/// dropped; a blocking-pool thread past its keep-alive) while another
/// thread still reads a thread-local it borrows: the thread stays (parked
/// for good) instead of exiting, so the value is never destroyed; the
/// runtime's drop returns all the same. In child processes: without the
/// fix the reader reads freed memory (or faults).
#[test]
fn a_leaked_frame_keeps_the_thread_locals_it_borrows() {
    const NAME: &str = "a_leaked_frame_keeps_the_thread_locals_it_borrows";
    if let Some(role) = common::child_role() {
        let reader = Reader::default();
        let r = reader.clone();
        let rt = rt(1);
        if let Some(how) = role.strip_prefix("pool-") {
            let how = how.to_string();
            rt.block_on(move || coio::blocking(move || leave_a_scope(&how, r)));
        } else {
            let how = role.clone();
            rt.block_on(move || coio::spawn(move || leave_a_scope(&how, r)).join().unwrap());
        }
        // Returns: a worker that stays is not waited for.
        within_20s(move || drop(rt));
        // Past the pool's keep-alive (50 ms here) too.
        thread::sleep(Duration::from_millis(1000));
        reader.held(&role);
        return;
    }
    // (A pool thread's stashed generator was unwound at its exit before
    // the fix, while coio's own thread-local lived: the scope's end then
    // waited for the reader, soundly. Not a case that tells, so not here.)
    for role in ["forget", "stash", "pool-forget"] {
        let out = common::run_in_child(NAME, role, &[("COIO_BLOCKING_KEEP_ALIVE_MS", "50")]);
        common::assert_child_ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("held"),
            "{role}"
        );
    }
}

// --- 2d. A generator started by a thread-local's destructor while a
// thread of coio's exits, after its last count of live frames.

static LATE_DROPS: AtomicUsize = AtomicUsize::new(0);
static LATE_DROP_IT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Its destructor starts a generator that suspends inside `LATE.with` and a
/// scope whose thread reads on, then forgets or drops it.
struct LateStarter;

impl Drop for LateStarter {
    fn drop(&mut self) {
        let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| {
            LATE.with(|v| {
                thread::scope(|s| {
                    s.spawn(|| {
                        loop {
                            assert_eq!(v.sum(), SUM, "read a destroyed thread-local");
                            thread::sleep(Duration::from_millis(1));
                        }
                    });
                    y.yield_(());
                })
            })
        });
        let _ = g.resume(());
        if LATE_DROP_IT.load(SeqCst) {
            drop(g);
        } else {
            std::mem::forget(g);
        }
    }
}

thread_local! {
    static LATE_STARTER: LateStarter = const { LateStarter };
    /// First used by `LATE_STARTER`'s destructor: destroyed after it.
    static LATE: Pattern = Pattern::new(&LATE_DROPS);
}

/// A worker or pool thread counts its live frames once, then only its
/// thread-locals' destructors run: a generator that one of them starts
/// and that suspends would be left live (forgotten, or leaked by the drop
/// at thread exit) while the thread goes on to destroy what it borrows.
/// The process aborts with coio's message at that suspension instead (a
/// panic could be caught). In child processes.
#[test]
fn a_generator_suspended_by_a_destructor_at_a_coio_threads_exit_aborts() {
    const NAME: &str = "a_generator_suspended_by_a_destructor_at_a_coio_threads_exit_aborts";
    if let Some(role) = common::child_role() {
        LATE_DROP_IT.store(role == "worker-drop", SeqCst);
        let rt = rt(1);
        if role == "pool" {
            rt.block_on(|| coio::blocking(|| LATE_STARTER.with(|_| ())));
        } else {
            rt.block_on(|| coio::spawn(|| LATE_STARTER.with(|_| ())).join().unwrap());
        }
        within_20s(move || drop(rt));
        // The abort ends this process; the pool's thread exits past its
        // keep-alive (50 ms here), so wait long for it.
        thread::sleep(Duration::from_millis(if role == "pool" {
            20_000
        } else {
            500
        }));
        assert_eq!(
            LATE_DROPS.load(SeqCst),
            0,
            "the borrowed thread-local was destroyed"
        );
        println!("went on");
        return;
    }
    for role in ["worker", "worker-drop", "pool"] {
        let out = common::run_in_child(NAME, role, &[("COIO_BLOCKING_KEEP_ALIVE_MS", "50")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role}: {stdout}");
        assert!(!stdout.contains("went on"), "{role}: {stdout}");
        assert!(
            stderr.contains("a generator suspended in a thread-local's destructor"),
            "{role}: {stderr}"
        );
    }
}

// --- 2e. User code that coio's threads run outside coroutines: wakers.

/// A waker that runs `f` at its first wake (on whatever thread wakes it),
/// and tells which thread that was.
struct OnWake<F: Fn() + Send + Sync> {
    f: F,
    woken: std::sync::Mutex<Option<String>>,
}

impl<F: Fn() + Send + Sync + 'static> std::task::Wake for OnWake<F> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let mut woken = self.woken.lock().unwrap();
        if woken.is_none() {
            *woken = Some(thread::current().name().unwrap_or("?").to_string());
            drop(woken);
            (self.f)();
        }
    }
}

/// An async sleep polled off the workers waits on a helper thread of
/// coio's, which runs the waker: a waker that leaves a frame there
/// (suspended inside a thread-local's borrow that a scoped thread reads)
/// keeps the thread from exiting. In a child process: without the fix the
/// reader read the destroyed value.
#[test]
fn a_frame_left_by_a_waker_on_the_sleep_helper_keeps_its_thread_locals() {
    const NAME: &str = "a_frame_left_by_a_waker_on_the_sleep_helper_keeps_its_thread_locals";
    if common::child_role().is_some() {
        let reader = Reader::default();
        let r = reader.clone();
        let wake = Arc::new(OnWake {
            f: move || leave_a_scope("forget", r.clone()),
            woken: std::sync::Mutex::new(None),
        });
        let waker = std::task::Waker::from(wake.clone());
        let mut sleep = Box::pin(coio::future::sleep(Duration::from_millis(20)));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        eventually("not woken", || wake.woken.lock().unwrap().is_some());
        assert_eq!(wake.woken.lock().unwrap().as_deref(), Some("coio-sleep"));
        // Past the helper thread's end.
        thread::sleep(Duration::from_millis(200));
        reader.held("sleep helper");
        return;
    }
    let out = common::run_in_child(NAME, "child", &[]);
    common::assert_child_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("held"));
}

/// A socket polled by async code off the workers is registered with a
/// worker's driver; a runtime's drop closes the drivers, which wakes such
/// wakers (user code) on the worker thread. A waker that steps a
/// generator (suspending it, then dropping it: unwound) must not abort
/// the process; and a worker that stays (a forgotten generator) still
/// closes its driver, so that the waiter is woken and learns the runtime
/// is gone instead of waiting for ever.
#[test]
fn a_workers_end_wakes_async_waiters_before_counting_frames() {
    for stay in [false, true] {
        let rt = rt(1);
        let (a, _b) = rt.block_on(move || {
            if stay {
                let mut g = Generator::new(|y: &coio::Yielder<(), ()>, ()| y.yield_(()));
                g.resume(());
                std::mem::forget(g);
            }
            coio::net::unix::UnixStream::pair().unwrap()
        });
        let wake = Arc::new(OnWake {
            f: || {
                let mut g = Generator::new(|y: &coio::Yielder<(), u32>, ()| {
                    y.yield_(1);
                    y.yield_(2);
                });
                assert_eq!(g.resume(()), GeneratorState::Yielded(1));
                drop(g);
            },
            woken: std::sync::Mutex::new(None),
        });
        let waker = std::task::Waker::from(wake.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut buf = [0u8; 8];
        assert!(a.poll_read(&mut cx, &mut buf).is_pending());
        within_20s(move || drop(rt));
        let woken = wake.woken.lock().unwrap().clone();
        assert!(woken.is_some(), "stay {stay}: the waiter was never woken");
        let again = a.poll_read(&mut cx, &mut buf);
        assert!(
            matches!(again, std::task::Poll::Ready(Err(_))),
            "stay {stay}: {again:?}"
        );
    }
}

/// User wakers that panic where coio's threads run them: at a worker's
/// end (an async sleep's orphan wake, a socket waiter's wake at the
/// driver's close), on the async-sleep helper thread, and on the signal
/// relay. Each wake is caught: the other wakers are still woken, and a
/// frame that a panicking waker left (suspended in a thread-local's
/// borrow that a scoped thread reads) keeps its thread from exiting. In
/// child processes: without the fix the panic skipped the count (the
/// thread-local was destroyed under the reader), and the wakes after it.
#[test]
fn panicking_wakers_on_coio_threads_skip_neither_the_count_nor_the_other_wakes() {
    use std::task::{Context, Waker};
    const NAME: &str =
        "panicking_wakers_on_coio_threads_skip_neither_the_count_nor_the_other_wakes";
    let Some(role) = common::child_role() else {
        for role in ["worker-end", "sleep-helper", "signal-relay"] {
            let out = common::run_in_child(NAME, role, &[]);
            common::assert_child_ok(&out);
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("held"),
                "{role}"
            );
        }
        return;
    };
    let reader = Reader::default();
    let r = reader.clone();
    let leaves_and_panics = Arc::new(OnWake {
        f: move || {
            leave_a_scope("forget", r.clone());
            panic!("a user's waker panics after leaving a frame");
        },
        woken: std::sync::Mutex::new(None),
    });
    let quiet = || {
        Arc::new(OnWake {
            f: || {},
            woken: std::sync::Mutex::new(None),
        })
    };
    let panics = || {
        Waker::from(Arc::new(OnWake {
            f: || panic!("a user's waker panics"),
            woken: std::sync::Mutex::new(None),
        }))
    };
    // Waits a little, then checks: every waker woken, the frame's
    // thread-local alive and read (called while the sleeps and receivers
    // still live).
    let held = |others: &[&std::sync::Mutex<Option<String>>]| {
        eventually(&format!("{role}: not woken"), || {
            leaves_and_panics.woken.lock().unwrap().is_some()
        });
        for (i, o) in others.iter().enumerate() {
            eventually(&format!("{role}: waker {i} never woken"), || {
                o.lock().unwrap().is_some()
            });
        }
        // Past the thread's end (the helpers end after the wake).
        thread::sleep(Duration::from_millis(200));
        reader.held(&role);
    };
    match role.as_str() {
        "worker-end" => {
            let rt = rt(1);
            // On the worker: a panicking sleep (earliest: woken first), a
            // later sleep, and three socket readers (one leaves a frame and
            // panics, one panics, one is quiet), polled from this thread.
            let (sleep_ok, socket_ok) = (quiet(), quiet());
            let (_sleeps, pairs) = rt.block_on(|| {
                let mut first = Box::pin(coio::future::sleep(Duration::from_secs(3600)));
                let w = panics();
                assert!(
                    first
                        .as_mut()
                        .poll(&mut Context::from_waker(&w))
                        .is_pending()
                );
                let mut second = Box::pin(coio::future::sleep(Duration::from_secs(3700)));
                let w = Waker::from(sleep_ok.clone());
                assert!(
                    second
                        .as_mut()
                        .poll(&mut Context::from_waker(&w))
                        .is_pending()
                );
                let pairs: Vec<_> = (0..3)
                    .map(|_| coio::net::unix::UnixStream::pair().unwrap())
                    .collect();
                ((first, second), pairs)
            });
            let wakers = [
                Waker::from(leaves_and_panics.clone()),
                panics(),
                Waker::from(socket_ok.clone()),
            ];
            let mut buf = [0u8; 8];
            for ((a, _), w) in pairs.iter().zip(&wakers) {
                assert!(
                    a.poll_read(&mut Context::from_waker(w), &mut buf)
                        .is_pending()
                );
            }
            // And a writer waiting on the socket whose reader's waker
            // panics (the same socket's other direction).
            let writer_ok = quiet();
            let w = Waker::from(writer_ok.clone());
            let full = [0u8; 65536];
            while pairs[1]
                .0
                .poll_write(&mut Context::from_waker(&w), &full)
                .is_ready()
            {}
            within_20s(move || drop(rt));
            held(&[&sleep_ok.woken, &socket_ok.woken, &writer_ok.woken]);
        }
        "sleep-helper" => {
            // Polled off the workers: waits on coio's helper thread.
            let mut sleep = Box::pin(coio::future::sleep(Duration::from_millis(20)));
            let w = Waker::from(leaves_and_panics.clone());
            assert!(
                sleep
                    .as_mut()
                    .poll(&mut Context::from_waker(&w))
                    .is_pending()
            );
            held(&[]);
        }
        _ => {
            let rx = coio::signal::notify(&[libc::SIGUSR2]).unwrap();
            let w = Waker::from(leaves_and_panics.clone());
            let mut first = Box::pin(rx.recv_async());
            assert!(
                first
                    .as_mut()
                    .poll(&mut Context::from_waker(&w))
                    .is_pending()
            );
            // SAFETY: raising a signal coio relays.
            unsafe { libc::raise(libc::SIGUSR2) };
            eventually("signal-relay: not woken", || {
                leaves_and_panics.woken.lock().unwrap().is_some()
            });
            // The relay goes on: a later signal is delivered.
            let later = quiet();
            let w = Waker::from(later.clone());
            let _ = first.as_mut().poll(&mut Context::from_waker(&w));
            let mut second = Box::pin(rx.recv_async());
            assert!(
                second
                    .as_mut()
                    .poll(&mut Context::from_waker(&w))
                    .is_pending()
            );
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGUSR2) };
            held(&[&later.woken]);
        }
    }
}

// --- 3. The last `Arc<Runtime>` dropped inside `coio::blocking`.

/// The pool thread would run `Runtime::drop`, which waits for the
/// coroutine, which waits for the pool job: it must not hang, and must say
/// what happened (as the same drop inside a coroutine does).
#[test]
fn last_runtime_dropped_inside_blocking_does_not_hang() {
    if common::child_role().is_some() {
        let rt = Arc::new(rt(1));
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let mine = rt.clone();
        let h = rt.spawn(move || {
            go_rx.recv().unwrap();
            coio::blocking(move || drop(mine));
            "went on"
        });
        drop(rt);
        go_tx.send(()).unwrap();
        assert_eq!(h.join().unwrap(), "went on");
        return;
    }
    let out = within_20s(|| {
        common::run_in_child(
            "last_runtime_dropped_inside_blocking_does_not_hang",
            "child",
            &[],
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("inside coio::blocking"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("leaked instead of shut down"), "{stderr}");
}

// --- 4. Coroutines that cannot get a stack.

static PROBES_IN_LOOP: AtomicUsize = AtomicUsize::new(0);
static PROBES_DROPPED: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// Captured by each coroutine's closure: records where it is dropped. On a
/// worker thread outside any coroutine is the scheduler loop, where no user
/// code may run (a destructor that blocks would block the whole worker).
struct Probe;

impl Drop for Probe {
    fn drop(&mut self) {
        let name = thread::current().name().unwrap_or("").to_owned();
        if !coio::is_coroutine() && name.starts_with("coio-worker") {
            PROBES_IN_LOOP.fetch_add(1, SeqCst);
        }
        PROBES_DROPPED.fetch_add(1, SeqCst);
        // A destructor that blocks: harmless on a coroutine or a plain
        // thread.
        coio::sleep(Duration::from_micros(100));
    }
}

/// `StackPolicy::Guarded` with 40,000 coroutines blocked at once: the
/// process runs out of memory mappings (`vm.max_map_count`) and thousands
/// of coroutines cannot start. None of their closures may be dropped in
/// the scheduler loop; each join says why; stderr says it once.
#[test]
fn coroutines_without_a_stack_fail_at_join_and_never_run_user_code_in_the_loop() {
    const N: usize = 40_000;
    // 65530 mappings (Linux's default, and this project's machines') hold
    // about 16,000 guarded stacks.
    let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default();
    if maps.trim().parse::<usize>().is_ok_and(|m| m > 65530) {
        println!(
            "vm.max_map_count is {}: 40,000 guarded stacks fit; nothing to test",
            maps.trim()
        );
        return;
    }
    if common::child_role().is_some() {
        let rt = Runtime::builder()
            .workers(2)
            .stack_policy(coio::StackPolicy::Guarded)
            .stall_warning(None)
            .build()
            .unwrap();
        let (started, failed) = rt.block_on(|| {
            let (hold, wait) = coio::chan::bounded::<()>(0);
            let handles: Vec<_> = (0..N)
                .map(|_| {
                    let (wait, probe) = (wait.clone(), Probe);
                    coio::spawn(move || {
                        let _probe = probe;
                        STARTED.fetch_add(1, SeqCst);
                        // Blocks until `hold` is dropped: every started
                        // coroutine keeps its stack meanwhile.
                        let _ = wait.recv();
                    })
                })
                .collect();
            // Until every coroutine has started (and blocked) or failed.
            while STARTED.load(SeqCst) + handles.iter().filter(|h| h.is_finished()).count() < N {
                coio::sleep(Duration::from_millis(20));
            }
            drop(hold);
            let (mut started, mut failed) = (0, 0);
            for h in handles {
                match h.join() {
                    Ok(()) => started += 1,
                    Err(e) => {
                        let msg = e.downcast_ref::<String>().expect("a String reason");
                        assert!(msg.contains("no stack could be had"), "{msg}");
                        failed += 1;
                    }
                }
            }
            (started, failed)
        });
        drop(rt);
        println!(
            "started={started} failed={failed} in_loop={} dropped={}",
            PROBES_IN_LOOP.load(SeqCst),
            PROBES_DROPPED.load(SeqCst)
        );
        return;
    }
    let out = within_20s(|| {
        common::run_in_child(
            "coroutines_without_a_stack_fail_at_join_and_never_run_user_code_in_the_loop",
            "child",
            &[],
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("started="))
        .expect("the child's counts");
    let count = |key: &str| -> usize {
        let field = line.split(' ').find_map(|f| f.strip_prefix(key)).unwrap();
        field.parse().unwrap()
    };
    println!("{line}");
    assert!(count("failed=") > 0, "nothing failed to start: {line}");
    assert_eq!(count("started=") + count("failed="), N);
    assert_eq!(
        count("in_loop="),
        0,
        "closures dropped in the scheduler loop"
    );
    assert_eq!(count("dropped="), N, "{line}");
    let said = stderr
        .lines()
        .filter(|l| l.contains("could not start"))
        .count();
    assert_eq!(said, 1, "{stderr}");
}

// --- Minor: closures too big for their stack.

/// A closure with 32 KiB of captures cannot fit on a 16 KiB stack: every
/// way to spawn one refuses it up front with a message that says what to
/// do (as `Generator` does), instead of an overflow abort when it starts.
#[test]
fn closures_too_big_for_the_stack_are_refused_up_front() {
    let big = [1u8; 32 * 1024];
    let rt = Runtime::builder()
        .workers(1)
        .stack_size(coio::MIN_STACK_SIZE)
        .stall_warning(None)
        .build()
        .unwrap();
    let why = |p: Box<dyn std::any::Any + Send>| -> String {
        p.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.spawn(move || big.len())))
        .unwrap_err();
    assert!(why(e).contains("does not fit on its stack of 16384 bytes"));
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(move || big.len())
    }))
    .unwrap_err();
    assert!(why(e).contains("box its large captures or ask for a larger stack"));
    let e = coio::Builder::new()
        .spawn_on(&rt, move || big.len())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("32768 bytes"), "{e}");
    // A coroutine with room to build such closures on its stack (debug
    // builds copy them several times on the way).
    let roomy = coio::Builder::new().stack_size(4 << 20);
    let inside = roomy.spawn_on(&rt, move || {
        let e = std::panic::catch_unwind(|| coio::spawn(move || big.len())).unwrap_err();
        assert!(why(e).contains("does not fit"));
        let e = coio::Builder::new().spawn(move || big.len()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        coio::scope(|s| {
            let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.spawn(move || big.len());
            }))
            .unwrap_err();
            assert!(why(e).contains("does not fit"));
        });
        // With room for it, it runs.
        let h = coio::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || big.iter().map(|&b| b as usize).sum::<usize>())
            .unwrap();
        assert_eq!(h.join().unwrap(), 32 * 1024);
    });
    inside.unwrap().join().unwrap();
}

// --- Minor: a coroutine that joins itself.

/// std's thread join reports a join of the thread itself (`EDEADLK`);
/// coio's panics with a message rather than wait forever (until shutdown).
#[test]
fn joining_itself_panics_instead_of_waiting_forever() {
    let rt = rt(1);
    let (tx, rx) = coio::chan::bounded::<coio::JoinHandle<()>>(1);
    let (said_tx, said_rx) = coio::chan::bounded::<String>(1);
    let h = rt.spawn(move || {
        let me = rx.recv().unwrap();
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.join())).unwrap_err();
        let msg = e.downcast_ref::<&str>().map(|s| s.to_string());
        said_tx.send(msg.unwrap_or_default()).unwrap();
    });
    // The coroutine gets its own handle.
    tx.send(h).unwrap();
    let msg = said_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("still waiting");
    assert!(msg.contains("join on its own JoinHandle"), "{msg}");
}

/// The same for a handle polled once as a future before it reaches the
/// coroutine it joins (by a timeout wrapper, say): its join, and its next
/// poll, panic too (they waited on themselves for ever).
#[test]
fn joining_itself_panics_after_the_handle_was_polled() {
    use std::future::Future;
    use std::task::{Context, Waker};
    for await_it in [false, true] {
        let rt = rt(1);
        let (tx, rx) = coio::chan::bounded::<coio::JoinHandle<()>>(1);
        let (said_tx, said_rx) = coio::chan::bounded::<String>(1);
        let mut h = rt.spawn(move || {
            let mut me = rx.recv().unwrap();
            let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if await_it {
                    let mut cx = Context::from_waker(Waker::noop());
                    let _ = std::pin::Pin::new(&mut me).poll(&mut cx);
                } else {
                    let _ = me.join();
                }
            }))
            .unwrap_err();
            let msg = e.downcast_ref::<&str>().map(|s| s.to_string());
            said_tx.send(msg.unwrap_or_default()).unwrap();
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::Pin::new(&mut h).poll(&mut cx).is_pending());
        tx.send(h).unwrap();
        let msg = said_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("still waiting");
        assert!(msg.contains("its own JoinHandle"), "{msg}");
    }
}

// --- Minor: more workers than file descriptors.

/// `COIO_WORKERS=4096` under `ulimit -n 1024`: the error names the workers
/// and what they need, not only "Too many open files".
#[test]
fn too_few_descriptors_for_the_workers_says_so() {
    if common::child_role().is_some() {
        let limit = libc::rlimit {
            rlim_cur: 1024,
            rlim_max: 1024,
        };
        // SAFETY: a valid rlimit, for this child process alone.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let e = Runtime::new().unwrap_err();
        println!("error: {e}");
        return;
    }
    let out = common::run_in_child(
        "too_few_descriptors_for_the_workers_says_so",
        "child",
        &[("COIO_WORKERS", "4096")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = stdout
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .expect("no error");
    assert!(e.contains("of 4096"), "{e}");
    assert!(e.contains("Too many open files"), "{e}");
    assert!(
        e.contains("3 file descriptors") && e.contains("(12288 for 4096 workers"),
        "{e}"
    );
}

// --- Minor: blocking while unwinding, as the stall monitor explains it.

/// Waits on a channel when dropped (here: during a panic), for at most
/// 1.5 s.
struct WaitsOnDrop(coio::chan::Receiver<()>);

impl Drop for WaitsOnDrop {
    fn drop(&mut self) {
        let _ = self.0.recv_timeout(Duration::from_millis(1500));
    }
}

/// A one-worker runtime whose stall monitor warns after 200 ms, its worker
/// thread named `name-0`.
fn watched_rt(name: &str) -> Runtime {
    Runtime::builder()
        .workers(1)
        .thread_name(name)
        .stall_warning(Some(Duration::from_millis(200)))
        .build()
        .unwrap()
}

/// Runs test `test` in a child process (which must exit successfully) and
/// returns the stall monitor's warning that worker `name-0` is blocked
/// while a coroutine unwinds.
fn unwinding_warning(test: &'static str, name: &str) -> String {
    let out = within_20s(|| common::run_in_child(test, "child", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains(&format!("coio: worker {name}-0")) && l.contains("unwinds"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"))
        .to_string();
    assert!(
        warning.contains("while it unwinds from a panic"),
        "{warning}"
    );
    warning
}

/// The same wait in a destructor that runs when the runtime's drop cancels
/// the coroutine: the drop waits for it, and the stall monitor, which used
/// to stop as the shutdown began, says why (a "join the child in Drop"
/// guard hung the drop for good without a word).
#[test]
fn stall_warning_explains_a_shutdown_blocked_in_a_destructor() {
    if common::child_role().is_some() {
        let rt = watched_rt("shutdown-test");
        // Nobody sends: the sender stays here, alive through the drop.
        let (_tx, rx) = coio::chan::bounded::<()>(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        rt.spawn(move || {
            let _waits = WaitsOnDrop(rx);
            started_tx.send(()).unwrap();
            coio::sleep(Duration::from_secs(3600));
        });
        started_rx.recv().unwrap();
        // Ends once the destructor's wait times out (1.5 s).
        drop(rt);
        return;
    }
    unwinding_warning(
        "stall_warning_explains_a_shutdown_blocked_in_a_destructor",
        "shutdown-test",
    );
}

/// A `Drop` that blocks during a panic blocks the whole worker (a
/// coroutine that unwinds cannot switch); on one worker, what it waits for
/// cannot run. The stall monitor's warning says so.
#[test]
fn stall_warning_explains_blocking_while_unwinding() {
    if common::child_role().is_some() {
        let rt = watched_rt("unwind-test");
        let r = rt.block_on(|| {
            let (tx, rx) = coio::chan::bounded::<()>(1);
            // Would send, but is homed on the same (only) worker.
            let sender = coio::spawn(move || {
                coio::sleep(Duration::from_millis(50));
                let _ = tx.send(());
            });
            let panicker = coio::spawn(move || {
                let _waits = WaitsOnDrop(rx);
                panic!("boom");
            });
            let r = panicker.join();
            let _ = sender.join();
            r
        });
        assert!(r.is_err());
        return;
    }
    let warning = unwinding_warning(
        "stall_warning_explains_blocking_while_unwinding",
        "unwind-test",
    );
    assert!(warning.contains("runtime of one worker"), "{warning}");
}
