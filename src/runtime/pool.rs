//! The blocking pool: where [`blocking`] runs functions that would block a
//! worker thread (file I/O, DNS, long computations), while the coroutine
//! that called it is parked and its worker runs other coroutines.
//!
//! # The pool
//!
//! One process-wide [`Pool`], created on first use: a FIFO queue of jobs
//! and a count of threads, under one `Mutex`, and a `Condvar` on which idle
//! threads wait. Threads (named `coio-blocking`) are spawned on demand, up
//! to a maximum (512, or `COIO_BLOCKING_THREADS`); jobs beyond it wait in
//! the queue, in order. A thread that finds no job for the keep-alive time
//! (10 s) exits. The rules, all under the lock:
//!
//! * A submit pushes the job, wakes one idle thread if there is any, and
//!   spawns a thread if there are fewer idle threads than queued jobs and
//!   fewer threads than the maximum. (Notifying more often than needed is
//!   harmless: a woken thread that finds nothing waits again.)
//! * A thread runs queued jobs until the queue is empty; only then does it
//!   count itself idle and wait. It exits only if the queue is empty after
//!   its keep-alive ran out, so a thread that is counted keeps serving the
//!   queue: no job is stranded while `threads > 0`.
//! * If spawning a thread fails and no thread is running, the submitter
//!   runs the queued jobs (its own included) itself, in place, rather than
//!   leave them waiting for a thread that may never come.
//!
//! `COIO_BLOCKING_KEEP_ALIVE_MS` (not public: for tests) shortens the
//! keep-alive.
//!
//! # A job, and why it may borrow
//!
//! [`blocking`] does not allocate its job: a [`Job`] (the closure, a slot
//! for its result, the waiter to wake and a `done` flag) lives on the
//! caller's stack, and the queue holds a [`JobRef`], a type-erased pointer
//! to it with the function that runs it. The closure may borrow from the
//! caller, as with `std::thread::scope`; soundness rests on one rule:
//!
//! > The caller's frame, which holds the job and everything the closure
//! > borrows, is not left, by return or by unwinding, before `done` is set,
//! > and the pool touches the job only before it sets `done`.
//!
//! The first half is kept by [`AwaitJob`], a guard whose `Drop` waits for
//! `done` with a wait that cannot be cancelled and cannot unwind: a
//! coroutine of the runtime is never unwound from a suspension (shutdown
//! cancels, which only wakes it: see `runtime::blocking::wait_until`), and
//! a panic in the wait, which would happen inside a `Drop`, would abort.
//! The second half: the runner takes the closure, runs it under
//! `catch_unwind` (its panic is a result like any other), stores the
//! result, takes the waiter *out of* the job, and only then stores `done`
//! (Release); it wakes the waiter with the reference it now owns (a task
//! reference keeps the coroutine's header alive; a stale wake is a hint
//! and is harmless).
//!
//! # Detached jobs
//!
//! The runtime itself sometimes has work that must not run where it arises
//! and that nobody waits for: [`spawn_detached`] queues a boxed closure as
//! a job that owns itself. Unlike a caller of `blocking`, it never runs the
//! queue in place when no thread can be started (its caller is the
//! scheduler loop); it gets its closure back instead.
//!
//! # Waking
//!
//! The caller registers its waiter before the job is queued and waits with
//! `runtime::blocking::wait_until` on `done` (Acquire), so the wake is a
//! hint: a wake that comes before the caller suspends leaves a pending wake
//! that makes the suspension return at once, and a spurious resumption
//! only re-checks `done`.

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use std::{env, thread};

use super::blocking::{check_cancel, current_waiter, wait_until};
use super::dump::Wait;
use super::task::Waiter;
use super::worker;

/// The maximum number of pool threads unless `COIO_BLOCKING_THREADS` says
/// otherwise.
const DEFAULT_MAX_THREADS: usize = 512;
/// How long a pool thread waits for work before it exits.
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The name of every pool thread.
const THREAD_NAME: &str = "coio-blocking";

/// Runs `f`, a function that blocks (file I/O, DNS lookups, CPU-heavy
/// calls), on coio's blocking thread pool and returns its result. Only the
/// calling coroutine waits: its worker runs other coroutines meanwhile.
///
/// ```
/// let data = vec![1u64, 2, 3];
/// let sum = coio::run(|| coio::blocking(|| data.iter().sum::<u64>()));
/// assert_eq!(sum, 6);
/// ```
///
/// `f` may borrow from the caller (as with `std::thread::scope`): `blocking`
/// does not return before `f` has finished. Called outside a coroutine (see
/// [`is_coroutine`](crate::is_coroutine)), on a coroutine that is
/// unwinding, or from inside another `blocking` function, it runs `f` in
/// place, on the calling thread.
///
/// The pool is shared by the whole process: threads are started when
/// needed, up to 512 (the environment variable `COIO_BLOCKING_THREADS`, a
/// positive integer read once, sets another maximum; an invalid value is
/// reported on stderr and the default used); further calls wait in a FIFO
/// queue. A thread with no work for 10 seconds exits. Should the system
/// refuse to start a thread while none of the pool's is running, the
/// waiting functions are run by the caller that found out, in place.
///
/// # Cancellation
///
/// `blocking` checks for cancellation before it starts `f`, like the other
/// blocking calls of coio; but once `f` runs, the wait for it cannot be
/// cancelled (`f` may borrow from the caller, which therefore cannot unwind
/// before `f` is done, and a running function cannot be interrupted). A
/// [`cancel`](crate::JoinHandle::cancel) meanwhile takes effect at the
/// coroutine's next blocking point after `blocking` returned, as a
/// goroutine in a system call in Go. For the same reason, shutting down a
/// runtime (dropping it) waits for the `blocking` calls of its coroutines:
/// unlike Go's `main`, `coio::run` does not return while a coroutine waits
/// in `blocking(|| stdin().read_line(..))` for a line that does not come.
/// A program that must end then ends with [`std::process::exit`].
///
/// # Panics
/// If `f` panics, its panic is resumed in the caller with the same payload.
/// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine was
/// cancelled before `f` started (then `f` is dropped unrun).
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    // A coroutine that unwinds cannot suspend (it would block its whole
    // worker anyway): running `f` in place costs the same and is simpler.
    match worker::coroutine_local() {
        Some(l) if !thread::panicking() => check_cancel(l),
        _ => return f(),
    }
    run_on(Pool::global(), f)
}

thread_local! {
    /// On a pool thread running a job: the runtime whose coroutine waits
    /// for it (`Shared`'s address; 0 for a plain thread's job).
    static SERVING: Cell<usize> = const { Cell::new(0) };
}

/// Records that this thread now serves runtime `id` (see [`SERVING`]);
/// returns what it served before. Not inlined: `f` may switch (a job run
/// in place on a coroutine), and no function of coio reads a thread-local
/// on both sides of a switch.
#[inline(never)]
fn serve(id: usize) -> usize {
    SERVING.try_with(|s| s.replace(id)).unwrap_or(0)
}

/// Whether this thread runs a `blocking` job for a coroutine of the runtime
/// `id` (`worker::Local::shared_id`). Such a job must not wait for that
/// runtime's coroutines: its caller is one of them, and cannot go on
/// before the job returns.
pub(crate) fn serving(id: usize) -> bool {
    id != 0 && SERVING.try_with(Cell::get) == Ok(id)
}

/// Runs `f` on `pool` and waits for it (see [`blocking`]); from a
/// coroutine, a plain thread, or in place if the pool cannot start a thread.
fn run_on<F, T>(pool: &'static Pool, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let job = Job {
        f: UnsafeCell::new(Some(f)),
        runtime: worker::coroutine_local().map_or(0, |l| l.shared_id()),
        out: UnsafeCell::new(None),
        waiter: UnsafeCell::new(Some(current_waiter())),
        done: AtomicBool::new(false),
    };
    {
        // Armed before the job is queued: from here on, no path out of
        // this block (a return or an unwind) passes before `done`.
        // `submit` queues the job before anything in it could unwind.
        let _await = AwaitJob(&job.done);
        // SAFETY: `job` stays where it is, alive, until `done` is set:
        // `_await` (dropped at the end of this block, or by an unwind out
        // of it) waits for `done`, and `job` is declared before it, so it
        // is dropped after it. `job` is touched by no one but the runner
        // until then (we only read `done`).
        pool.submit(unsafe { JobRef::new(&job) });
    }
    match job.out.into_inner() {
        Some(Ok(v)) => v,
        Some(Err(payload)) => resume_unwind(payload),
        None => unreachable!("coio: a blocking job was done without a result"),
    }
}

/// Runs `f` on a pool thread without waiting for it: for the runtime's own
/// work that must not run where it arises (the closure of a coroutine that
/// could not start, whose destructor is user code, dropped outside the
/// scheduler loop). Gives `f` back if no pool thread runs and none can be
/// started. A panic of `f` is reported by the panic hook and dropped.
pub(crate) fn spawn_detached(f: Box<dyn FnOnce() + Send>) -> Result<(), Box<dyn FnOnce() + Send>> {
    spawn_detached_on(Pool::global(), f)
}

/// [`spawn_detached`] on `pool`.
fn spawn_detached_on(
    pool: &'static Pool,
    f: Box<dyn FnOnce() + Send>,
) -> Result<(), Box<dyn FnOnce() + Send>> {
    /// Runs the job `job` points to: a `Box<Box<dyn FnOnce() + Send>>`.
    unsafe fn run_detached(job: NonNull<()>) {
        // SAFETY: `job` came from `Box::leak` below and runs once
        // (running consumes the `JobRef`).
        let f = unsafe { Box::from_raw(job.cast::<Box<dyn FnOnce() + Send>>().as_ptr()) };
        crate::surviving(*f);
    }
    let job = JobRef {
        job: NonNull::from(Box::leak(Box::new(f))).cast(),
        run: run_detached,
    };
    pool.submit_detached(job).map_err(|job| {
        // SAFETY: given back unrun: the box is still ours.
        *unsafe { Box::from_raw(job.job.cast::<Box<dyn FnOnce() + Send>>().as_ptr()) }
    })
}

/// A call of [`blocking`] in flight, on its caller's stack (module docs).
struct Job<F, T> {
    /// The function; the runner takes it.
    f: UnsafeCell<Option<F>>,
    /// The caller's runtime (see [`serving`]).
    runtime: usize,
    /// Its result, written by the runner before `done`.
    out: UnsafeCell<Option<thread::Result<T>>>,
    /// Whom to wake; the runner takes it before `done`.
    waiter: UnsafeCell<Option<Waiter>>,
    /// Set (Release) by the runner after its last access to the job.
    done: AtomicBool,
}

/// Waits, when dropped, until the job whose flag it holds is done: the
/// caller's frame cannot be left, by return or by unwinding, before that.
struct AwaitJob<'a>(&'a AtomicBool);

impl Drop for AwaitJob<'_> {
    fn drop(&mut self) {
        // Not cancellable, and it does not unwind (a panic here, inside a
        // `Drop`, would abort if we were unwinding already): see the
        // module docs.
        wait_until(|| self.0.load(Acquire), None, false, Wait::Blocking);
    }
}

/// A queued job: a type-erased pointer to a [`Job`] on its caller's stack
/// and the function that runs it. Not `Clone`: running consumes it, so a
/// job runs once.
struct JobRef {
    job: NonNull<()>,
    run: unsafe fn(NonNull<()>),
}

// SAFETY: the job's closure and result are `Send` (the bounds of
// `JobRef::new`), its waiter is `Send`, and its caller does not touch it
// (other than the atomic `done`) until the runner, on whatever thread,
// sets `done`. A detached job (`spawn_detached`) is a boxed `Send` closure
// that only the runner touches.
unsafe impl Send for JobRef {}

impl JobRef {
    /// # Safety
    /// `job` must stay in place and alive, and not be accessed except
    /// through its `done` flag, until `done` is set; the returned `JobRef`
    /// must be run (once, since it is consumed).
    unsafe fn new<F, T>(job: &Job<F, T>) -> JobRef
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        JobRef {
            job: NonNull::from(job).cast(),
            run: run_job::<F, T>,
        }
    }

    /// Runs the job and wakes its caller.
    fn run(self) {
        // SAFETY: `JobRef::new`'s contract: the job is alive and ours
        // until we set `done`, and `self` is consumed, so this runs once;
        // `run` was made for the job's own types.
        unsafe { (self.run)(self.job) }
    }
}

/// Runs the [`Job<F, T>`] at `job`: the closure, then the result, the
/// waiter, `done`, and the wake, in that order (module docs).
///
/// # Safety
/// `job` points to a live `Job<F, T>` that nothing else accesses (but for
/// `done`) until `done` is set; called once per job.
unsafe fn run_job<F, T>(job: NonNull<()>)
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let job = job.cast::<Job<F, T>>().as_ptr();
    // SAFETY: the contract: the job is alive and these cells are ours.
    let (f, runtime) = unsafe { ((*(*job).f.get()).take(), (*job).runtime) };
    let outer = serve(runtime);
    let out = catch_unwind(AssertUnwindSafe(move || match f {
        Some(f) => f(),
        None => unreachable!("coio: a blocking job ran twice"),
    }));
    serve(outer);
    // SAFETY: as above; `out` was empty (each job runs once).
    let waiter = unsafe {
        *(*job).out.get() = Some(out);
        (*(*job).waiter.get()).take()
    };
    // SAFETY: as above. After this store the caller may return and the
    // job be gone: nothing below touches it.
    unsafe { (*job).done.store(true, Release) };
    if let Some(w) = waiter {
        w.wake();
    }
}

/// The pool (module docs).
struct Pool {
    state: Mutex<State>,
    /// Idle threads wait here for jobs.
    work: Condvar,
    /// At most this many threads at once.
    max_threads: usize,
    /// An idle thread exits after this long without a job.
    keep_alive: Duration,
    /// Tests: behave as if the system refused every new thread.
    #[cfg(test)]
    fail_spawn: bool,
}

/// What the pool's lock guards.
struct State {
    /// Jobs waiting for a thread, oldest first.
    queue: VecDeque<JobRef>,
    /// Threads started and not exited (or about to be started).
    threads: usize,
    /// Threads waiting for a job (or just woken, not yet looking).
    idle: usize,
}

impl Pool {
    /// The process's pool, created on first use from the environment.
    fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let keep_alive = env::var("COIO_BLOCKING_KEEP_ALIVE_MS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map_or(DEFAULT_KEEP_ALIVE, Duration::from_millis);
            Pool::new(max_threads_from_env(), keep_alive)
        })
    }

    fn new(max_threads: usize, keep_alive: Duration) -> Pool {
        Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
            }),
            work: Condvar::new(),
            max_threads,
            keep_alive,
            #[cfg(test)]
            fail_spawn: false,
        }
    }

    /// The lock. Nothing panics while holding it, but a poisoned lock would
    /// not make the state wrong anyway: every update is a single step.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` and makes sure a thread will run it (module docs).
    /// Queueing comes first: nothing before it can unwind.
    fn submit(&'static self, job: JobRef) {
        let Some(mut st) = self.push(job) else {
            return;
        };
        // Threads that are running will get to the queue; if there are
        // none, nobody will: run it here.
        while st.threads == 0 {
            let Some(job) = st.queue.pop_front() else {
                break;
            };
            drop(st);
            job.run();
            st = self.lock();
        }
    }

    /// Queues `job` for a pool thread; does not wait for it, and never runs
    /// it on the caller's thread. Gives it back if no thread of the pool
    /// runs and none can be started.
    fn submit_detached(&'static self, job: JobRef) -> Result<(), JobRef> {
        let id = job.job;
        let Some(mut st) = self.push(job) else {
            return Ok(());
        };
        match st.queue.iter().position(|j| j.job == id) {
            Some(i) if st.threads == 0 => Err(st.queue.remove(i).expect("just found")),
            _ => Ok(()),
        }
    }

    /// Queues `job`, wakes an idle thread or starts one as needed. None: a
    /// thread of the pool will run the queue. Some, with the lock: starting
    /// a thread failed, and `threads` may be 0.
    fn push(&'static self, job: JobRef) -> Option<MutexGuard<'static, State>> {
        let mut st = self.lock();
        st.queue.push_back(job);
        let notify = st.idle > 0;
        let spawn = st.idle < st.queue.len() && st.threads < self.max_threads;
        if spawn {
            st.threads += 1;
        }
        drop(st);
        // Outside the lock, so that the woken thread does not block on it.
        if notify {
            self.work.notify_one();
        }
        if !spawn || self.spawn_thread().is_ok() {
            return None;
        }
        let mut st = self.lock();
        st.threads -= 1;
        Some(st)
    }

    fn spawn_thread(&'static self) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_spawn {
            return Err(std::io::Error::other("test: spawn refused"));
        }
        thread::Builder::new()
            .name(THREAD_NAME.into())
            // A job may leave a generator suspended here (forgotten, or in
            // a thread-local): its frames may borrow this thread's
            // thread-locals, so then the thread never exits.
            .spawn(move || crate::coroutine::run_owned(|| self.thread_main()))
            .map(drop)
    }

    /// A pool thread: runs jobs until none came for the keep-alive time.
    fn thread_main(&self) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job.run();
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let deadline = Instant::now() + self.keep_alive;
            loop {
                let now = Instant::now();
                if !st.queue.is_empty() || now >= deadline {
                    break;
                }
                st = self
                    .work
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.idle -= 1;
            if st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// The maximum from `COIO_BLOCKING_THREADS`, or the default (with a warning
/// on stderr if the variable is set but not a positive integer).
fn max_threads_from_env() -> usize {
    const VAR: &str = "COIO_BLOCKING_THREADS";
    let value = match env::var(VAR) {
        Err(env::VarError::NotPresent) => return DEFAULT_MAX_THREADS,
        Ok(v) => v,
        Err(env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
    };
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            note!(
                "coio: {VAR}={value:?} is not a positive integer; \
                 using the default of {DEFAULT_MAX_THREADS}"
            );
            DEFAULT_MAX_THREADS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, mpsc};

    fn pool(max_threads: usize, keep_alive: Duration) -> &'static Pool {
        Box::leak(Box::new(Pool::new(max_threads, keep_alive)))
    }

    /// Polls `cond` for up to 10 s.
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

    #[test]
    fn runs_on_a_pool_thread_from_a_plain_thread() {
        let p = pool(2, DEFAULT_KEEP_ALIVE);
        let mut v = vec![1];
        let name = run_on(p, || {
            v.push(2);
            thread::current().name().map(str::to_owned)
        });
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_eq!(v, [1, 2]);
    }

    #[test]
    fn queue_is_fifo_beyond_the_maximum() {
        let p = pool(1, DEFAULT_KEEP_ALIVE);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let order = Mutex::new(Vec::new());
        thread::scope(|s| {
            // The only thread is busy until the gate opens.
            s.spawn(|| run_on(p, move || gate_rx.recv().unwrap()));
            assert!(eventually(|| {
                let st = p.lock();
                st.threads == 1 && st.queue.is_empty() && st.idle == 0
            }));
            for i in 0..5 {
                let order = &order;
                s.spawn(move || run_on(p, move || order.lock().unwrap().push(i)));
                assert!(eventually(|| p.lock().queue.len() == i + 1));
            }
            assert_eq!(p.lock().threads, 1, "the maximum was exceeded");
            gate_tx.send(()).unwrap();
        });
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn idle_threads_exit_after_keep_alive() {
        let p = pool(4, Duration::from_millis(50));
        let running = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    run_on(p, || {
                        running.fetch_add(1, SeqCst);
                        // All four at once: four threads.
                        assert!(eventually(|| running.load(SeqCst) == 4));
                        assert_eq!(p.lock().threads, 4);
                    })
                });
            }
        });
        assert!(eventually(|| p.lock().threads == 0));
        // And the pool starts threads again.
        assert_eq!(
            run_on(p, || thread::current().name().map(str::to_owned)).as_deref(),
            Some(THREAD_NAME)
        );
    }

    #[test]
    fn runs_in_place_when_no_thread_can_start() {
        let p: &'static Pool = Box::leak(Box::new(Pool {
            fail_spawn: true,
            ..Pool::new(4, DEFAULT_KEEP_ALIVE)
        }));
        let me = thread::current().id();
        assert_eq!(run_on(p, || thread::current().id()), me);
        assert_eq!(p.lock().threads, 0);
        assert!(p.lock().queue.is_empty());
    }

    #[test]
    fn detached_jobs_run_on_a_pool_thread_or_come_back() {
        let p = pool(2, DEFAULT_KEEP_ALIVE);
        let (tx, rx) = mpsc::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
        });
        assert!(spawn_detached_on(p, job).is_ok());
        let name = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));

        // No thread can start and none runs: never run in place (the
        // caller may be the scheduler loop), given back instead.
        let p: &'static Pool = Box::leak(Box::new(Pool {
            fail_spawn: true,
            ..Pool::new(4, DEFAULT_KEEP_ALIVE)
        }));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let back = spawn_detached_on(
            p,
            Box::new(move || {
                r.fetch_add(1, SeqCst);
            }),
        )
        .expect_err("given back");
        assert_eq!(ran.load(SeqCst), 0);
        assert!(p.lock().queue.is_empty());
        back();
        assert_eq!(ran.load(SeqCst), 1);
    }

    #[test]
    fn panics_reach_the_caller() {
        let p = pool(1, DEFAULT_KEEP_ALIVE);
        let err = catch_unwind(|| run_on(p, || panic!("boom"))).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
        // The thread survived it.
        assert_eq!(run_on(p, || 5), 5);
        assert_eq!(p.lock().threads, 1);
    }
}
