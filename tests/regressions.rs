//! Regression tests for the findings of a soundness review of the runtime:
//! user code (destructors of results, closures, captures, coroutine-locals)
//! must run on coroutines, never inside the scheduler's bookkeeping, and a
//! scope must not return while a child's captures are still alive.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Mutex, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

mod common;

use common::quiet_rt as rt;

/// Runs `f` on a thread of its own and fails if it takes over 10 s (a
/// deadlock would otherwise hang the test run).
fn within_10s(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("hung (or panicked) for 10 s");
}

static SCOPE_RETURNED: AtomicBool = AtomicBool::new(false);
static READ_AFTER_RETURN: AtomicUsize = AtomicUsize::new(0);

struct ReadsOnDrop<'a>(&'a Vec<u64>);
impl Drop for ReadsOnDrop<'_> {
    fn drop(&mut self) {
        thread::sleep(Duration::from_millis(100));
        if SCOPE_RETURNED.load(SeqCst) {
            READ_AFTER_RETURN.fetch_add(1, SeqCst);
        }
        assert_eq!(self.0.len(), 1000);
    }
}

/// A scoped child cancelled before it starts has its closure dropped
/// unrun, on another worker: `scope` must wait for that drop.
#[test]
fn scope_waits_for_the_captures_of_a_child_dropped_unrun() {
    within_10s(|| {
        let rt = rt(2);
        rt.block_on(|| {
            let data: Vec<u64> = (0..1000).collect();
            coio::scope(|s| {
                let d = ReadsOnDrop(&data);
                let h = s.spawn(move || {
                    let _d = &d;
                });
                h.cancel();
                // Keep this worker busy so that the other one takes the child.
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(30) {}
            });
            SCOPE_RETURNED.store(true, SeqCst);
            drop(data);
        });
    });
    assert_eq!(READ_AFTER_RETURN.load(SeqCst), 0);
}

struct SleepOnDrop;
impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        assert!(coio::is_coroutine());
        coio::sleep(Duration::from_millis(1));
    }
}

/// The last reference to a finished, detached task may be a dead timer
/// entry, dropped while another coroutine switches: no user code may run
/// there.
#[test]
fn a_detached_result_is_dropped_on_its_coroutine_not_by_a_timer() {
    within_10s(|| {
        let rt = rt(1);
        rt.block_on(|| {
            let d = coio::spawn(|| {
                coio::park_timeout(Duration::from_millis(30));
                SleepOnDrop
            });
            let dc = d.coroutine();
            drop(d);
            coio::yield_now();
            dc.unpark();
            drop(dc);
            let pad = [0u8; 512];
            drop(coio::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(60) {
                    coio::yield_now();
                }
                pad[0]
            }));
            coio::sleep(Duration::from_millis(150));
        });
    });
}

struct SpawnOnDrop(&'static AtomicUsize);
impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let n = self.0;
        drop(coio::spawn(move || n.fetch_add(1, SeqCst)));
    }
}

/// A detached coroutine's result whose destructor uses coio.
#[test]
fn a_detached_result_may_use_coio_in_its_destructor() {
    static SPAWNED: AtomicUsize = AtomicUsize::new(0);
    within_10s(|| {
        let rt = rt(1);
        let v = rt.block_on(|| {
            drop(coio::spawn(|| SpawnOnDrop(&SPAWNED)));
            // And one whose handle is dropped after it finished.
            let h = coio::spawn(|| SpawnOnDrop(&SPAWNED));
            coio::sleep(Duration::from_millis(20));
            drop(h);
            coio::sleep(Duration::from_millis(20));
            42
        });
        assert_eq!(v, 42);
    });
    assert_eq!(SPAWNED.load(SeqCst), 2);
}

struct JoinInDrop;
impl Drop for JoinInDrop {
    fn drop(&mut self) {
        let hs: Vec<_> = (0..100).map(|i| coio::spawn(move || i)).collect();
        let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 4950);
    }
}

/// A coroutine that blocks while unwinding blocks its worker thread; the
/// coroutines it spawned must still run elsewhere.
#[test]
fn joining_while_unwinding_does_not_strand_fresh_coroutines() {
    within_10s(|| {
        let rt = rt(2);
        let h = rt.spawn(|| {
            let _g = JoinInDrop;
            panic!("unwind");
        });
        assert!(h.join().is_err());
    });
}

/// A scoped child that is cancelled is not "a scoped coroutine that
/// panicked".
#[test]
fn a_cancelled_scoped_child_does_not_make_scope_panic() {
    let rt = rt(1);
    rt.block_on(|| {
        coio::scope(|s| {
            let h = s.spawn(|| coio::sleep(Duration::from_secs(10)));
            coio::sleep(Duration::from_millis(10));
            h.cancel();
            drop(h);
        });
        coio::scope(|s| {
            let h = s.spawn(|| coio::sleep(Duration::from_secs(10)));
            h.cancel();
            assert!(h.join().unwrap_err().is::<coio::Cancelled>());
        });
    });
}

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED_ON: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

struct Sticky(#[allow(dead_code)] std::marker::PhantomData<*const ()>);
impl Drop for Sticky {
    fn drop(&mut self) {
        DROPPED_ON.lock().unwrap().push(thread::current().id());
        // Re-creates itself, again and again.
        if coio::is_coroutine() && CREATED.load(SeqCst) < 10 {
            STICKY.with(|_| ());
        }
    }
}
coio::coroutine_local! {
    static STICKY: Sticky = {
        CREATED.fetch_add(1, SeqCst);
        Sticky(std::marker::PhantomData)
    };
}

/// Coroutine-locals that keep coming back are leaked, never dropped later
/// on another thread (they need not be `Send`).
#[test]
fn leftover_coroutine_locals_never_leave_their_thread() {
    let rt = rt(1);
    let h = rt.spawn(|| {
        STICKY.with(|_| ());
        thread::current().id()
    });
    let handle = h.coroutine();
    let worker = h.join().unwrap();
    thread::sleep(Duration::from_millis(50));
    drop(handle);
    drop(rt);
    let drops = DROPPED_ON.lock().unwrap().clone();
    assert!(!drops.is_empty());
    assert!(
        drops.iter().all(|&t| t == worker),
        "{drops:?} vs {worker:?}"
    );
}

struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a coroutine-local's destructor panics");
    }
}
coio::coroutine_local! {
    static PANICKY: PanicsOnDrop = PanicsOnDrop;
}

/// A coroutine-local whose destructor panics does not abort the process.
#[test]
fn a_panicking_coroutine_local_destructor_is_survived() {
    let rt = rt(1);
    let r = rt.block_on(|| coio::spawn(|| PANICKY.with(|_| 7)).join());
    assert_eq!(r.unwrap(), 7);
}

struct SendsCountOnDrop(std::sync::mpsc::Sender<u32>);
impl Drop for SendsCountOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(COUNT.with(std::cell::Cell::get));
    }
}
coio::coroutine_local! {
    static READS_ON_DROP: std::cell::RefCell<Option<SendsCountOnDrop>> =
        const { std::cell::RefCell::new(None) };
    static COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A coroutine-local's destructor that reads another local whose turn has
/// not come sees its live value, as std's thread-locals do (it used to get
/// a fresh one: the values were taken out all at once before any was
/// dropped). Values are dropped in the order of their keys' first use in
/// the process, so `READS_ON_DROP`, used first, goes first.
#[test]
fn a_local_s_destructor_sees_the_live_value_of_another() {
    let rt = rt(1);
    let (tx, rx) = std::sync::mpsc::channel();
    rt.block_on(|| {
        coio::spawn(move || {
            READS_ON_DROP.with(|r| *r.borrow_mut() = Some(SendsCountOnDrop(tx)));
            COUNT.with(|c| c.set(42));
        })
        .join()
        .unwrap()
    });
    assert_eq!(rx.recv().unwrap(), 42);
}

/// During shutdown a worker waiting for another one sleeps (it used to
/// spin). In a child process, so that other tests' threads do not count.
#[test]
fn shutdown_does_not_spin() {
    use common::cpu_time as cpu;
    if common::child_role().is_some() {
        let rt = rt(2);
        let _h = rt.spawn(|| {
            coio::scope(|s| {
                // Long non-yielding work on the other worker.
                s.spawn(|| thread::sleep(Duration::from_millis(600)));
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(30) {}
                coio::sleep(Duration::from_secs(10));
            })
        });
        thread::sleep(Duration::from_millis(60));
        let (c0, t0) = (cpu(), Instant::now());
        drop(rt);
        let (c1, t1) = (cpu(), Instant::now());
        println!("shutdown: {:?} wall, {:?} CPU", t1 - t0, c1 - c0);
        assert!(c1 - c0 < (t1 - t0) / 2, "a worker spun during shutdown");
        std::process::exit(0);
    }
    let out = common::run_in_child("shutdown_does_not_spin", "shutdown", &[]);
    common::assert_child_ok(&out);
}

/// A coroutine's panic with stderr a pipe whose reader is gone (`prog
/// 2>&1 | head -1` once `head` left) is still caught by `join`: coio's
/// note in front of the panic hook ignores the failed write, as std's hook
/// does (its `eprintln!` panicked inside the hook, which aborted). In a
/// child process, whose stderr this changes.
#[test]
fn a_coroutine_panic_with_stderr_a_broken_pipe_is_caught() {
    if common::child_role().is_some() {
        let mut fds = [0; 2];
        // SAFETY: plain calls on descriptors this process owns; fd 2
        // becomes a pipe with no reader.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            assert_eq!(libc::dup2(fds[1], 2), 2);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let caught = coio::run(|| {
            coio::spawn(|| -> u32 { panic!("a coroutine's panic") })
                .join()
                .is_err()
        });
        println!("caught: {caught}");
        std::process::exit(if caught { 0 } else { 1 });
    }
    let out = common::run_in_child(
        "a_coroutine_panic_with_stderr_a_broken_pipe_is_caught",
        "epipe",
        &[],
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("caught: true"),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Loops of operations that never wait are cancelled when their budget
/// runs out: reads at end of stream, receives from a channel a thread
/// keeps full, sends into one it keeps empty, and selects. A runtime's
/// drop, which cancels them all, ends (it waited for them for ever: the
/// budget's yield let others run but was no cancellation point), and so
/// does `cancel` then `join` of one of them.
#[test]
fn loops_that_never_wait_are_cancelled() {
    use std::io::Read;
    common::within(Duration::from_secs(30), || {
        let rt = rt(1);
        let spinning = std::sync::Arc::new(AtomicUsize::new(0));
        // Reads at end of stream.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = spinning.clone();
        rt.spawn(move || {
            let mut c = coio::net::TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; 64];
            s.fetch_add(1, SeqCst);
            loop {
                // The peer closed: Ok(0), at once, every time.
                let _ = c.read(&mut buf);
            }
        });
        let (peer, _) = listener.accept().unwrap();
        drop(peer);
        // Receives from a channel that is always full.
        let (tx, rx) = coio::chan::bounded::<u8>(16);
        let feeder = thread::spawn(move || while tx.send(1).is_ok() {});
        let s = spinning.clone();
        let receiver = rt.spawn(move || {
            s.fetch_add(1, SeqCst);
            loop {
                let _ = rx.recv();
            }
        });
        // Selects on it, with sends into an unbounded one.
        let (tx2, rx2) = coio::chan::unbounded::<u8>();
        let s = spinning.clone();
        rt.spawn(move || {
            s.fetch_add(1, SeqCst);
            loop {
                let _ = tx2.send(1);
                coio::select! {
                    recv(rx2) -> _ => {}
                }
            }
        });
        while spinning.load(SeqCst) < 3 {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(50));
        receiver.cancel();
        let e = receiver.join().unwrap_err();
        assert!(e.is::<coio::Cancelled>());
        drop(rt);
        feeder.join().unwrap();
    });
}

/// A dynamic select cancelled as its budget runs out unwinds before it
/// reserves its operation: the send's slot of a `bounded(1)` is not
/// leaked. (The budget's yield after the reservation unwound with the
/// reservation held, and nothing released it: the channel stayed full for
/// good.)
#[test]
fn a_select_cancelled_at_its_budget_leaves_no_reservation() {
    use coio::chan::{self, Select};
    common::within(Duration::from_secs(30), || {
        let rt = rt(1);
        let (tx, rx) = chan::bounded::<u32>(1);
        let h = {
            let tx = tx.clone();
            rt.spawn(move || {
                // Not a cancellation point: the cancel waits for the loop.
                coio::blocking(|| thread::sleep(Duration::from_millis(100)));
                let (side, _keep) = chan::unbounded::<u32>();
                // 127 operations that do not wait, then the select: the
                // 128th spend of the budget.
                for _ in 0..127 {
                    side.send(0).unwrap();
                }
                let mut sel = Select::new();
                sel.send(&tx);
                let op = sel.select();
                op.send(&tx, 1).unwrap();
            })
        };
        thread::sleep(Duration::from_millis(20));
        h.cancel();
        assert!(h.join().unwrap_err().is::<coio::Cancelled>());
        assert!(rx.try_recv().is_err());
        assert_eq!(tx.try_send(5), Ok(()));
        assert_eq!(rx.try_recv(), Ok(5));
    });
}
