//! Tasks: what the scheduler queues, runs, wakes and joins.
//!
//! A task is one heap allocation (an `Arc`) holding a [`Header`] and its
//! stage: the closure until it first runs, then its result until it is
//! joined. The scheduler handles it as a [`TaskRef`] (`Arc<dyn Task>`), a
//! join handle as an `Arc<dyn Output<T>>`: the same allocation seen through
//! two traits.
//!
//! A task that has not started is nothing but that header and its `Send`
//! closure: no stack, no context. It is the only kind of task that moves
//! between workers (work stealing). The worker that first runs it becomes
//! its *home*: it takes a stack from the pool, builds the coroutine, keeps
//! a strong reference in its registry until the coroutine finishes, and is
//! the only thread that ever resumes it.
//!
//! # The scheduling state (`Header::state`)
//!
//! ```text
//!            block() / park()                wake() / unpark() (any thread)
//!  RUNNABLE ─────────────────► WAITING ─────────────────────────► RUNNABLE (queued on home)
//!     │  ▲ a wake while RUNNABLE sets WAKE (an unpark sets TOKEN); the
//!     │  │ next block() (park()) consumes it and returns at once
//!     └──┴─ finish ──► FINISHED (wakes are no-ops)
//! ```
//!
//! `RUNNABLE` covers queued and running: a task is in at most one run queue
//! because only the wake that moves it out of `WAITING` (a CAS) queues it,
//! and a runnable task only re-queues itself (yield). `WAKE` makes every
//! wait safe against a wake that arrives between "checked the condition"
//! and "suspended": waits re-check their condition after every return of
//! `block`, so a wake is a hint ("look again"), never lost. `CANCEL` is
//! sticky (see `Header::set_cancel`).
//!
//! The park token of `park`/`unpark` lives in the same word: `TOKEN` is
//! the token; `PARKED` marks a WAITING task that waits in `park`, which an
//! unpark wakes and hands the token to in the same CAS. A task waiting for
//! anything else (a sleep, a join) is not woken by an unpark: the token
//! just waits for its next `park`. A park/unpark handoff is therefore one
//! atomic operation on each side.
//!
//! # Who owns a task
//!
//! A fresh task is owned by the queue that holds it (a `TaskRef`). When it
//! starts, that reference moves into its home worker's registry, which
//! keeps the task alive until its coroutine finishes. From then on the run
//! queues, the LIFO slot and the inboxes hold [`Started`] pointers that own
//! nothing: a queued started task is unfinished (it can only finish by
//! being dequeued and run), so the registry keeps it alive, and waking or
//! yielding costs no reference-count traffic.
//!
//! # Home-local fields
//!
//! [`HomeLocal`] is touched only by the task's home worker thread: by the
//! scheduler between runs and by the coroutine while it runs, never both at
//! once (one thread, one of them running at a time), and never through a
//! reference held across a switch. Before the first run nobody touches it;
//! the run queue that carries the task to its home publishes it.

#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32};
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::ptr::NonNull;
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::thread::{self, Thread};

use super::worker::{Local, Remote};
use crate::arch;
use crate::coroutine::RawCoroutine;
use crate::stack::Stack;

/// How the scheduler holds a task.
pub(crate) type TaskRef = Arc<dyn Task>;

/// Queued or running.
pub(crate) const RUNNABLE: u32 = 0;
/// Suspended in `block`, in no queue; the next wake queues it.
pub(crate) const WAITING: u32 = 1;
/// Its coroutine finished (or it was cancelled before it started).
pub(crate) const FINISHED: u32 = 2;
/// The bits above.
pub(crate) const STATE_MASK: u32 = 3;
/// A wake arrived while the task was runnable.
const WAKE: u32 = 4;
/// `cancel` was called (sticky).
const CANCEL: u32 = 8;
/// The park token is available.
const TOKEN: u32 = 16;
/// The task is WAITING in `park` (an unpark wakes it).
const PARKED: u32 = 32;

/// `Header::join`: the result is stored.
const COMPLETE: u8 = 1;
/// `Header::join`: a joiner stored its waiter in `join_waiter`.
const JOIN_WAITER: u8 = 2;
/// `Header::join`: the join handle was dropped; whoever comes second (the
/// completer or the handle's drop) drops the result, so that it is never
/// dropped by the scheduler (see `TaskCell::finish_with`).
const DETACHED: u8 = 4;

/// The panic payload of a cancelled coroutine: `join` returns
/// `Err(payload)` with `payload.is::<coio::Cancelled>()`.
///
/// A coroutine being cancelled unwinds with this payload from a blocking
/// point of coio (`sleep`, `park`, `join`, ...). Code that catches panics
/// inside a coroutine should let it go on (`resume_unwind` it): every later
/// blocking point raises it again anyway.
///
/// ```
/// use std::panic::{catch_unwind, resume_unwind};
/// use std::time::Duration;
///
/// coio::run(|| {
///     let h = coio::spawn(|| {
///         if let Err(payload) = catch_unwind(|| coio::sleep(Duration::from_secs(60))) {
///             // Let a cancellation go on unwinding.
///             if payload.is::<coio::Cancelled>() {
///                 resume_unwind(payload);
///             }
///         }
///     });
///     h.cancel();
///     assert!(h.join().unwrap_err().is::<coio::Cancelled>());
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("coroutine cancelled")
    }
}

/// Something that can be woken: a task, or a plain thread.
pub(crate) trait Wake: Send + Sync {
    fn wake_up(&self);
}

/// Who waits for something: a coroutine (woken through its scheduler) or a
/// plain thread (unparked). Two words: a task is its own waker, a thread
/// gets a small allocation (waits of plain threads are the rare case).
pub(crate) struct Waiter(Arc<dyn Wake>);

struct ThreadWaiter(Thread);

impl Wake for ThreadWaiter {
    fn wake_up(&self) {
        self.0.unpark();
    }
}

impl Waiter {
    /// A waiter that wakes `task`.
    #[inline]
    pub(crate) fn task(task: TaskRef) -> Waiter {
        Waiter(task)
    }

    /// A waiter that unparks `thread`.
    pub(crate) fn thread(thread: Thread) -> Waiter {
        Waiter(Arc::new(ThreadWaiter(thread)))
    }

    /// Wakes the waiter (a hint: the waiter re-checks its condition).
    #[inline]
    pub(crate) fn wake(self) {
        self.0.wake_up();
    }
}

/// Fields only the home worker thread touches (see the module docs).
/// `repr(C)`: the coroutine (its saved stack pointer) first, see [`Header`].
#[repr(C)]
pub(crate) struct HomeLocal {
    /// The coroutine, from the first run until it finishes.
    pub(crate) raw: UnsafeCell<Option<RawCoroutine>>,
    /// Index in the home worker's registry.
    pub(crate) slot: Cell<u32>,
    /// Generation of the task's timer: a timer entry is live only while its
    /// recorded generation equals this (see `driver::Timers`; wrapping).
    pub(crate) timer_gen: Cell<u32>,
    /// `coroutine_local!` values, by key index (see `local`); allocated on
    /// first use.
    pub(crate) locals: UnsafeCell<Option<Box<super::local::Values>>>,
}

/// What `Builder` asked for (most coroutines have none: see [`Origin`]).
pub(crate) struct Spec {
    /// Name given with `Builder::name`.
    pub(crate) name: Option<Box<str>>,
    /// Stack size asked for (usable bytes, already rounded); 0: the
    /// runtime's default.
    pub(crate) stack_size: usize,
    /// Where the coroutine was spawned (set by [`Origin::new`]).
    site: Option<&'static Location<'static>>,
}

impl Spec {
    /// A spec with a name and a stack size (0: the runtime's default).
    pub(crate) fn new(name: Option<Box<str>>, stack_size: usize) -> Box<Spec> {
        Box::new(Spec {
            name,
            stack_size,
            site: None,
        })
    }
}

/// Where a task comes from: its spawn site (the caller of `spawn`, for
/// dumps) and, if `Builder` asked for any, its [`Spec`]. One word, so that
/// the header of an ordinary task stays within malloc's fast bins (see the
/// test `header_is_small`): a `&'static Location` tagged with bit 0, or a
/// `Box<Spec>` (which holds the site) untagged. Both are 8-aligned.
pub(crate) struct Origin(usize);

impl Origin {
    #[inline]
    pub(crate) fn new(spec: Option<Box<Spec>>, site: &'static Location<'static>) -> Origin {
        match spec {
            Some(mut s) => {
                s.site = Some(site);
                Origin(Box::into_raw(s) as usize)
            }
            None => Origin(site as *const Location<'static> as usize | 1),
        }
    }

    #[inline]
    fn spec(&self) -> Option<&Spec> {
        // SAFETY: untagged, the word is a `Box<Spec>` we own (see `new`).
        (self.0 & 1 == 0).then(|| unsafe { &*(self.0 as *const Spec) })
    }

    /// The spawn site.
    pub(crate) fn site(&self) -> &'static Location<'static> {
        match self.spec() {
            Some(s) => s.site.unwrap_or(Location::caller()),
            // SAFETY: tagged, the word is a `&'static Location` (see `new`).
            None => unsafe { &*((self.0 & !1) as *const Location<'static>) },
        }
    }
}

impl Drop for Origin {
    #[inline]
    fn drop(&mut self) {
        if self.0 & 1 == 0 {
            // SAFETY: untagged: a `Box<Spec>` we own (see `new`), dropped once.
            drop(unsafe { Box::from_raw(self.0 as *mut Spec) });
        }
    }
}

/// What every task has, whatever its closure and result types.
///
/// `repr(C)`, hot fields first: a park and a wake touch `state`, `home` and
/// the coroutine's saved stack pointer (`local.raw`), which then share a
/// cache line in most placements (in Rust's own order they sat 70 bytes
/// apart, always on two lines; issue 13's cache simulation counts every
/// line a parked connection touches).
#[repr(C)]
pub(crate) struct Header {
    /// RUNNABLE / WAITING / FINISHED, plus WAKE and CANCEL bits.
    state: AtomicU32,
    /// COMPLETE and JOIN_WAITER bits.
    join: AtomicU8,
    /// The home worker's shared half (set at the first run, before the task
    /// can ever be WAITING; read by wakers after they moved it out of
    /// WAITING, which orders the read after the write).
    home: AtomicPtr<Remote>,
    /// See [`HomeLocal`].
    pub(crate) local: HomeLocal,
    /// Unique id (never 0).
    pub(crate) id: u64,
    /// Spawn site, and name and stack size if given.
    origin: Origin,
    /// The joiner, once JOIN_WAITER is set; read by the completer only.
    join_waiter: UnsafeCell<Option<Waiter>>,
}

// SAFETY: the atomics are Sync; `join_waiter` is written by the one joiner
// before it sets JOIN_WAITER (Release) and read by the completer after it
// saw that bit (AcqRel), or by drop with exclusive access; `local` is
// touched by the home thread only (module docs), and its contents (a
// `RawCoroutine`, coroutine-locals) never leave that thread, which is what
// makes handing the header itself to other threads sound.
unsafe impl Sync for Header {}
// SAFETY: as above; a header dropped on another thread has no coroutine
// left (finished) or leaks it (`RawCoroutine`'s drop touches no
// thread-local and frees nothing while frames are live).
unsafe impl Send for Header {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// A block of ids taken from NEXT_ID at once (spawns on several
    /// workers would otherwise fight over its cache line): (next, end).
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh coroutine id.
fn next_id() -> u64 {
    const BLOCK: u64 = 1024;
    IDS.try_with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            next
        } else {
            let start = NEXT_ID.fetch_add(BLOCK, Relaxed);
            ids.set((start + 1, start + BLOCK));
            start
        }
    })
    .unwrap_or_else(|_| NEXT_ID.fetch_add(1, Relaxed))
}

impl Header {
    #[inline]
    pub(crate) fn new(spec: Option<Box<Spec>>, site: &'static Location<'static>) -> Header {
        Header {
            state: AtomicU32::new(RUNNABLE),
            join: AtomicU8::new(0),
            join_waiter: UnsafeCell::new(None),
            home: AtomicPtr::new(ptr::null_mut()),
            id: next_id(),
            origin: Origin::new(spec, site),
            local: HomeLocal {
                raw: UnsafeCell::new(None),
                slot: Cell::new(u32::MAX),
                timer_gen: Cell::new(0),
                locals: UnsafeCell::new(None),
            },
        }
    }

    /// The name given with `Builder::name`.
    #[inline]
    pub(crate) fn name(&self) -> Option<&str> {
        self.origin.spec().and_then(|s| s.name.as_deref())
    }

    /// Where the task was spawned.
    #[inline]
    pub(crate) fn site(&self) -> &'static Location<'static> {
        self.origin.site()
    }

    /// The stack size asked for; 0: the runtime's default.
    #[inline]
    pub(crate) fn stack_size(&self) -> usize {
        self.origin.spec().map_or(0, |s| s.stack_size)
    }

    /// Records the home worker (first run, on that worker).
    pub(crate) fn set_home(&self, home: &Remote) {
        self.home
            .store(home as *const Remote as *mut Remote, Relaxed);
    }

    /// The state word (for dumps: RUNNABLE, WAITING or FINISHED under
    /// `STATE_MASK`).
    #[inline]
    pub(crate) fn state_bits(&self) -> u32 {
        self.state.load(Relaxed)
    }

    /// Whether cancellation was requested.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Relaxed) & CANCEL != 0
    }

    /// Marks the task finished (its home worker, after the coroutine's
    /// last switch; or whoever dropped an unstarted task). A plain store:
    /// a concurrent waker's CAS then fails and sees FINISHED, and the bits
    /// it might have set (WAKE, TOKEN) mean nothing any more.
    #[inline]
    pub(crate) fn set_finished(&self) {
        self.state.store(FINISHED, Release);
    }

    /// Prepares the running task to suspend in `block`: consumes a pending
    /// wake (returns false: do not suspend) or moves to WAITING (true).
    #[inline]
    pub(crate) fn prepare_block(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            debug_assert_eq!(s & STATE_MASK, RUNNABLE);
            let (new, suspend) = if s & WAKE != 0 {
                (s & !WAKE, false)
            } else {
                ((s & !STATE_MASK) | WAITING, true)
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return suspend,
                Err(now) => s = now,
            }
        }
    }

    /// Prepares the running task to suspend in `park`: takes the token or a
    /// pending wake (returns false: do not suspend; a wake makes the park
    /// return spuriously, which `park` allows) or moves to WAITING|PARKED.
    #[inline]
    pub(crate) fn prepare_park(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            debug_assert_eq!(s & STATE_MASK, RUNNABLE);
            let (new, suspend) = if s & (TOKEN | WAKE) != 0 {
                (s & !(TOKEN | WAKE), false)
            } else {
                ((s & !STATE_MASK) | WAITING | PARKED, true)
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return suspend,
                Err(now) => s = now,
            }
        }
    }

    /// Makes the park token available. Returns true if the task was
    /// parked: it is now RUNNABLE, holding the token, and the caller must
    /// queue it.
    ///
    /// Always a read-modify-write, even when the token is there already:
    /// see [`wake`](Self::wake) for why.
    #[inline]
    fn unpark(&self) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            let new = if s & STATE_MASK == WAITING && s & PARKED != 0 {
                // The wake hands the token over: park returns.
                (s & !(STATE_MASK | PARKED)) | RUNNABLE
            } else if s & STATE_MASK == FINISHED {
                return false;
            } else {
                s | TOKEN
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Acquire) {
                Ok(_) => return new & STATE_MASK != s & STATE_MASK,
                Err(now) => s = now,
            }
        }
    }

    /// Wakes the task: WAITING → RUNNABLE (true: the caller must queue it),
    /// else a WAKE hint for its next block.
    ///
    /// Always a read-modify-write of the state, even when a hint is
    /// pending already (from an earlier, late wake): the waker published
    /// its condition (a job's `done`, ...) before it calls this, and the
    /// waiter reads the condition after its `prepare_block`, also a
    /// read-modify-write. RMWs of one word are totally ordered, so either
    /// the waiter's consumes this one's hint and synchronizes with it (it
    /// then sees the condition), or it comes first and this one finds the
    /// task WAITING or without a hint. A plain load that saw an old hint
    /// and returned would be the store-buffer pattern: the waker's load
    /// and the waiter's check of the condition can both read old values
    /// (x86 lets the waker's store wait in its store buffer), the hint is
    /// consumed by a check that misses the condition, and the task waits
    /// for a wake that was dropped. (That lost `blocking` calls' wakes
    /// under load: a loom model below.)
    #[inline]
    pub(crate) fn wake(&self) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            let new = match s & STATE_MASK {
                WAITING => (s & !(STATE_MASK | PARKED)) | RUNNABLE,
                RUNNABLE => s | WAKE,
                _ => return false,
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Acquire) {
                Ok(_) => return s & STATE_MASK == WAITING,
                Err(now) => s = now,
            }
        }
    }

    /// The home worker's shared half. Only valid once the task started.
    #[inline]
    fn home(&self) -> *const Remote {
        self.home.load(Relaxed)
    }

    /// Whether the task's result is stored (it will not run again).
    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.join.load(Acquire) & COMPLETE != 0
    }

    /// Registers the joiner's waiter. Returns false if the result is already
    /// there (the waiter will not be woken: do not wait). Called at most
    /// once per task (by `JoinHandle::join`, which consumes the handle).
    pub(crate) fn set_join_waiter(&self, waiter: Waiter) -> bool {
        if self.is_complete() {
            return false;
        }
        // SAFETY: only the one joiner writes here, before JOIN_WAITER is set;
        // the completer reads it only after seeing that bit.
        unsafe { *self.join_waiter.get() = Some(waiter) };
        if self.join.fetch_or(JOIN_WAITER, AcqRel) & COMPLETE != 0 {
            // The completer came first and saw no JOIN_WAITER: it will never
            // read the cell, so take the waiter back (it holds the joiner).
            // SAFETY: as above; nobody else touches the cell now.
            drop(unsafe { (*self.join_waiter.get()).take() });
            return false;
        }
        true
    }

    /// Publishes the stored result and wakes the joiner, if any. Returns
    /// true if the join handle was dropped already: the caller must then
    /// drop the result.
    #[must_use]
    pub(crate) fn complete(&self) -> bool {
        let prev = self.join.fetch_or(COMPLETE, AcqRel);
        if prev & JOIN_WAITER != 0 {
            // SAFETY: the joiner wrote the waiter before it set JOIN_WAITER
            // (we saw it with Acquire) and never touches it again; we are
            // the only completer.
            if let Some(w) = unsafe { (*self.join_waiter.get()).take() } {
                w.wake();
            }
        }
        prev & DETACHED != 0
    }

    /// The join handle is dropped. Returns true if the result is already
    /// stored: the caller must then drop it.
    #[must_use]
    fn detach(&self) -> bool {
        self.join.fetch_or(DETACHED, AcqRel) & COMPLETE != 0
    }

    /// Requests cancellation: sets the sticky CANCEL bit. The caller then
    /// wakes the task so that a blocked coroutine sees it.
    pub(crate) fn set_cancel(&self) -> bool {
        self.state.fetch_or(CANCEL, AcqRel) & CANCEL == 0
    }
}

/// A queued task, as the scheduler sees it.
///
/// Its only implementor is [`TaskCell`], which is `repr(C)` with the
/// [`Header`] first: the header is found from a `dyn Task` (or `dyn
/// Output<T>`) pointer without a virtual call (see `header` below).
pub(crate) trait Task: Wake {
    /// Builds the coroutine of a fresh task on `stack`.
    ///
    /// # Safety
    /// Called once, on the task's home worker, which keeps a reference to
    /// the task until the coroutine finishes.
    unsafe fn make_coroutine(&self, stack: Stack) -> RawCoroutine;

    /// Finishes a task that never started: drops its closure and stores
    /// `payload` as its result (a panic: `Cancelled`, or why no stack could
    /// be had).
    fn abandon(&self, payload: Box<dyn Any + Send>);

    /// Like [`abandon`](Self::abandon), but leaks the closure instead of
    /// dropping it: for a caller in the scheduler loop, where no user code
    /// may run, that has nowhere else to drop it.
    fn abandon_leaking(&self, payload: Box<dyn Any + Send>);

    /// For the worker's recycler: a finished task nothing else refers to,
    /// as `Any` (to be overwritten by a new task of the same type); None if
    /// it is too big to keep.
    fn recycle(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>>;

    /// The closure's type name (`app::main::{{closure}}`): names the
    /// function that spawned the coroutine, in dumps.
    fn closure_name(&self) -> &'static str;
}

/// The typed side of a task, as a join handle sees it.
pub(crate) trait Output<T>: Task {
    /// Takes the result.
    ///
    /// # Safety
    /// The task must be complete (`Header::is_complete` seen true), and
    /// this must be called once.
    unsafe fn take_output(&self) -> thread::Result<T>;

    /// Drops the result for a join handle that is dropped after it was
    /// stored (see `Header::detach`).
    ///
    /// # Safety
    /// The result must be stored and `Header::detach` must have returned
    /// true (the completer left it to the handle).
    unsafe fn drop_output(&self);
}

/// Where a task's closure and then its result live: one at a time, so
/// they share the memory, and [`TaskCell::stage`] says which is there.
/// Each is written and taken in place: an enum of the two, assigned whole,
/// built a temporary the size of the closure on the stack at every write
/// and every take (with the entry's own copies of the closure, 32 KiB of
/// captures overflowed a 128 KiB stack in a release build; now 120 KiB
/// run: `bench/src/bin/big_capture.rs`).
union Slot<F, T> {
    f: ManuallyDrop<F>,
    out: ManuallyDrop<thread::Result<T>>,
}

/// `TaskCell::stage`: the closure is in the slot (not started).
const FRESH: u8 = 0;
/// The closure was taken (running, or abandoned): the slot is empty.
const RUNNING: u8 = 1;
/// The result is in the slot (complete, not taken yet).
const DONE: u8 = 2;
/// The result was taken: the slot is empty.
const TAKEN: u8 = 3;

impl dyn Task + '_ {
    /// The task's header.
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: every task is a `TaskCell`, `repr(C)` with the header as
        // its first field: the data pointer is the header's address.
        unsafe { &*(self as *const dyn Task).cast::<Header>() }
    }
}

impl<T> dyn Output<T> + '_ {
    /// The task's header.
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: as for `dyn Task`.
        unsafe { &*(self as *const dyn Output<T>).cast::<Header>() }
    }
}

/// A task with its closure type and result type.
#[repr(C)]
pub(crate) struct TaskCell<F, T> {
    header: Header,
    /// What `slot` holds: FRESH until the task starts (the starting worker
    /// takes the closure: only the worker that dequeued it can), DONE once
    /// complete (written by the coroutine before `complete`, read by the
    /// joiner after it), RUNNING and TAKEN in between and after.
    stage: Cell<u8>,
    /// The closure or the result, as `stage` says.
    slot: UnsafeCell<Slot<F, T>>,
}

// SAFETY: the stage and the slot are handed from spawner to runner to
// joiner with the synchronisation described on the fields; F and T are
// Send.
unsafe impl<F: Send, T: Send> Sync for TaskCell<F, T> {}

impl<F, T> Drop for TaskCell<F, T> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut();
        match self.stage.get() {
            // SAFETY: the stage says the slot holds the closure.
            FRESH => unsafe { ManuallyDrop::drop(&mut slot.f) },
            // SAFETY: the stage says the slot holds the result.
            DONE => unsafe { ManuallyDrop::drop(&mut slot.out) },
            _ => {}
        }
    }
}

impl<F, T> TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[inline]
    pub(crate) fn new(
        f: F,
        spec: Option<Box<Spec>>,
        site: &'static Location<'static>,
    ) -> Arc<Self> {
        // `<dyn Task>::header` relies on this.
        const { assert!(std::mem::offset_of!(TaskCell<F, T>, header) == 0) };
        Arc::new(TaskCell {
            header: Header::new(spec, site),
            stage: Cell::new(FRESH),
            slot: UnsafeCell::new(Slot {
                f: ManuallyDrop::new(f),
            }),
        })
    }

    /// A new task in `recycled`'s memory if that is a finished task of this
    /// very type that nothing refers to any more (see `worker::Recycler`),
    /// else in fresh memory.
    #[inline]
    pub(crate) fn new_from(
        recycled: Option<Arc<dyn Any + Send + Sync>>,
        f: F,
        spec: Option<Box<Spec>>,
        site: &'static Location<'static>,
    ) -> Arc<Self> {
        if let Some(old) = recycled
            && let Ok(mut old) = old.downcast::<TaskCell<F, T>>()
            && let Some(cell) = Arc::get_mut(&mut old)
        {
            *cell = TaskCell {
                header: Header::new(spec, site),
                stage: Cell::new(FRESH),
                slot: UnsafeCell::new(Slot {
                    f: ManuallyDrop::new(f),
                }),
            };
            return old;
        }
        Self::new(f, spec, site)
    }

    /// Takes the closure (the task is starting, or is abandoned).
    #[inline(always)]
    fn take_closure(&self) -> Option<F> {
        (self.stage.get() == FRESH).then(|| self.start_closure())
    }

    /// Takes the closure to run it (the task is starting), returned
    /// directly rather than in an `Option`, which costs a copy of it.
    #[inline(always)]
    fn start_closure(&self) -> F {
        if self.stage.replace(RUNNING) != FRESH {
            unreachable!("coio: a task started twice");
        }
        // SAFETY: only the worker that dequeued the fresh task gets here,
        // once (the stage was FRESH: the slot holds the closure, and now
        // nobody else will read it).
        unsafe { ManuallyDrop::take(&mut (*self.slot.get()).f) }
    }

    /// Stores the result and publishes it; drops it if nobody can claim it
    /// (the handle was dropped), here and now: on the coroutine, not later
    /// in the scheduler, where user code must not run (it could call coio,
    /// or panic, in the middle of the scheduler's bookkeeping).
    fn finish_with(&self, out: thread::Result<T>) {
        // SAFETY: the slot is ours until `complete` publishes it, and
        // empty (the closure was taken): nothing to drop.
        unsafe { (*self.slot.get()).out = ManuallyDrop::new(out) };
        self.stage.set(DONE);
        if self.header.complete() {
            // SAFETY: complete and detached: nobody else will take it.
            match unsafe { self.take_stage() } {
                // Nothing to run (the common `()`): no landing pad needed.
                Ok(v) if !std::mem::needs_drop::<T>() => std::mem::forget(v),
                out => drop_quietly(out),
            }
        }
    }

    /// Takes the stored result.
    ///
    /// # Safety
    /// The result must be stored (COMPLETE seen with Acquire) and this be
    /// its only taker.
    unsafe fn take_stage(&self) -> thread::Result<T> {
        if self.stage.replace(TAKEN) != DONE {
            unreachable!("coio: a task's result was taken twice");
        }
        // SAFETY: the stage was DONE: the slot holds the result, and
        // nobody else takes it (caller).
        unsafe { ManuallyDrop::take(&mut (*self.slot.get()).out) }
    }
}

impl<F, T> Task for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn make_coroutine(&self, stack: Stack) -> RawCoroutine {
        // SAFETY: `entry` takes the task pointer it is given (kept alive by
        // the home worker's registry: caller) and ends with `arch::finish`.
        // The caller checked that a pointer fits on any stack.
        unsafe { RawCoroutine::new(stack, entry::<F, T>, self as *const Self) }
    }

    fn closure_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }

    fn recycle(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        // Its result, if the coroutine produced one, is gone already: taken
        // by `join`, or dropped on detach (see `finish_with`); what is left
        // is dropped when the next task overwrites it (`new_from`, in the
        // spawner's context), never here in the scheduler.
        (size_of::<Self>() <= 256).then_some(self)
    }

    fn abandon(&self, payload: Box<dyn Any + Send>) {
        let f = self.take_closure();
        // A closure whose captures panic on drop: the panic is the result.
        let out = match catch_unwind(AssertUnwindSafe(move || drop(f))) {
            Ok(()) => Err(payload),
            Err(p) => Err(p),
        };
        self.finish_with(out);
        self.header.set_finished();
    }

    fn abandon_leaking(&self, payload: Box<dyn Any + Send>) {
        std::mem::forget(self.take_closure());
        self.finish_with(Err(payload));
        self.header.set_finished();
    }
}

impl<F, T> Wake for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[inline]
    fn wake_up(&self) {
        wake(self);
    }
}

impl<F, T> Output<T> for TaskCell<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn take_output(&self) -> thread::Result<T> {
        // SAFETY: complete (Acquire seen by the caller), taken once.
        unsafe { self.take_stage() }
    }

    unsafe fn drop_output(&self) {
        // SAFETY: caller (complete, and left to us).
        drop(unsafe { self.take_stage() });
    }
}

/// Root of every scheduled coroutine's stack.
unsafe extern "C" fn entry<F, T>(_arg: usize, obj: *mut u8, link: *mut usize, _order: usize) -> !
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: the initial object is the task pointer `make_coroutine` wrote;
    // the home worker's registry keeps the task alive until we finish.
    let task: &TaskCell<F, T> = unsafe { &*ptr::read(obj.cast::<*const TaskCell<F, T>>()) };
    let out = if task.header.is_cancelled() {
        // Cancelled before it started (or at shutdown): its closure is
        // dropped here, on its own coroutine like everything else it owns.
        let f = task.take_closure();
        drop_quietly(catch_unwind(AssertUnwindSafe(move || drop(f))));
        Err(Box::new(Cancelled) as Box<dyn Any + Send>)
    } else {
        // The closure is taken out of the task inside the frame that calls
        // it, so that its captures are copied onto this stack once, not
        // once more for every frame they would pass through on the way
        // (a closure with large captures needs that much room).
        catch_unwind(AssertUnwindSafe(|| task.start_closure()()))
    };
    // Coroutine-locals die with the coroutine, on it (their destructors
    // may use coio). A panic there is reported by the hook and ignored: it
    // must not unwind out of this frame.
    if super::local::has_locals(&task.header) {
        drop_quietly(catch_unwind(AssertUnwindSafe(|| {
            super::local::drop_locals(&task.header)
        })));
    }
    task.finish_with(out);
    // A detached coroutine's result was just dropped here, on the
    // coroutine: its destructor may have made coroutine-locals again (a
    // `future::block_on` keeps its waker there, which holds a count on this
    // task and would leak it). The registry still keeps the task alive.
    if super::local::has_locals(&task.header) {
        drop_quietly(catch_unwind(AssertUnwindSafe(|| {
            super::local::drop_locals(&task.header)
        })));
    }
    // SAFETY: we are the coroutine, running, with link slot `link`; nothing
    // on this stack is used after this.
    unsafe { arch::finish(0, 0, link) }
}

/// Drops `value`, swallowing a panic from its destructor (and from the
/// destructor of that panic's payload, and so on): used on a coroutine's
/// last frames, which must not unwind.
fn drop_quietly<V>(value: V) {
    let mut payload = match catch_unwind(AssertUnwindSafe(move || drop(value))) {
        Ok(()) => return,
        Err(p) => p,
    };
    loop {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(p) => payload = p,
        }
    }
}

/// Wakes a task: queues it on its home worker if it was waiting, else
/// leaves a WAKE hint for its next `block`. Any thread.
#[inline]
pub(crate) fn wake(task: &dyn Task) {
    if task.header().wake() {
        queue_woken(task);
    }
}

/// Unparks a task (see `Header::unpark`). Any thread.
#[inline]
pub(crate) fn unpark(task: &dyn Task) {
    if task.header().unpark() {
        queue_woken(task);
    }
}

/// This thread's worker, if it is the home of `task`, a started task: the
/// task cannot run before the caller's coroutine lets go of the thread,
/// and [`wake_at_home`] queues it locally.
#[inline]
pub(crate) fn home_here<'a>(task: &dyn Task) -> Option<&'a Local> {
    super::worker::local().filter(|l| std::ptr::eq(l.remote(), task.header().home()))
}

/// Wakes `task`, whose home is `l`, this thread's worker ([`home_here`]):
/// [`wake`] without looking the worker up again.
#[inline]
pub(crate) fn wake_at_home(l: &Local, task: &dyn Task) {
    if task.header().wake() {
        l.push_woken(Started::of(task));
    }
}

/// Queues a started task that the caller just moved out of WAITING.
#[inline]
fn queue_woken(task: &dyn Task) {
    // It can neither run nor finish before we queue it, so its home (set
    // before it could wait) and its registry entry are alive.
    let home = task.header().home();
    debug_assert!(!home.is_null());
    // SAFETY: see above: the runtime (which owns every `Remote`) cannot
    // finish shutting down while this task is unfinished.
    super::worker::schedule_started(unsafe { &*home }, Started::of(task));
}

/// A non-owning pointer to a started, unfinished task, as the run queues
/// hold it (see "Who owns a task" in the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Started(NonNull<dyn Task>);

// SAFETY: it points to a `Task`, which is Send + Sync; its validity rests
// on the registry (module docs), not on the thread that holds it.
unsafe impl Send for Started {}

impl Started {
    /// The pointer to `task`, which must live in an `Arc` (every task
    /// does: `TaskCell::new`), possibly seen through another trait (a join
    /// handle's `Output<T>`): the data pointer is the same. It stays valid
    /// while the task is in its home registry and unfinished.
    #[inline(always)]
    pub(crate) fn of(task: &dyn Task) -> Started {
        let p = NonNull::from(task);
        // SAFETY: only the trait object's lifetime bound changes (same
        // layout); every task type is 'static (`TaskCell` requires it).
        Started(unsafe {
            std::mem::transmute::<NonNull<dyn Task + '_>, NonNull<dyn Task + 'static>>(p)
        })
    }

    /// The task.
    ///
    /// # Safety
    /// The task must still be unfinished (queued, running or waiting), so
    /// that its registry entry keeps it alive for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn get<'a>(self) -> &'a dyn Task {
        // SAFETY: caller.
        unsafe { self.0.as_ref() }
    }

    /// An owning reference to the task.
    ///
    /// # Safety
    /// As for [`get`](Self::get).
    #[inline]
    pub(crate) unsafe fn to_ref(self) -> TaskRef {
        let p = self.0.as_ptr().cast_const();
        // SAFETY: `p` points into a live Arc allocation of the task's own
        // concrete type (caller; see `of`), and a `dyn Task` pointer to it
        // carries that type's layout in its vtable; we take one more strong
        // count for the new Arc.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Whether both point to the same task.
    #[inline]
    pub(crate) fn same(self, other: Started) -> bool {
        std::ptr::addr_eq(self.0.as_ptr(), other.0.as_ptr())
    }
}

/// A handle to a coroutine: its id, its name, and `unpark`. Cheap to clone;
/// `Send` and `Sync`.
///
/// ```
/// coio::run(|| {
///     let h = coio::spawn(coio::park);
///     let co: coio::Coroutine = h.coroutine();
///     // Send, Sync and Clone: any thread may wake the coroutine.
///     std::thread::spawn(move || co.unpark());
///     h.join().unwrap();
/// });
/// ```
#[derive(Clone)]
pub struct Coroutine(pub(crate) TaskRef);

/// A coroutine's unique id (as `std::thread::ThreadId`).
///
/// ```
/// coio::run(|| {
///     let me: coio::CoroutineId = coio::current().id();
///     let child = coio::spawn(|| coio::current().id()).join().unwrap();
///     assert_ne!(me, child);
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoroutineId(u64);

impl CoroutineId {
    /// The id as a number (unique for the life of the process, never 0).
    ///
    /// ```
    /// coio::run(|| {
    ///     let id = coio::current().id().as_u64();
    ///     assert_ne!(id, 0);
    ///     println!("coroutine {id}");
    /// });
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl Coroutine {
    /// The coroutine's id.
    ///
    /// ```
    /// coio::run(|| {
    ///     let a = coio::spawn(|| ());
    ///     let b = coio::spawn(|| ());
    ///     assert_ne!(a.coroutine().id(), b.coroutine().id());
    ///     assert_eq!(a.coroutine().id(), a.coroutine().id());
    /// });
    /// ```
    pub fn id(&self) -> CoroutineId {
        CoroutineId(self.0.header().id)
    }

    /// The coroutine's name, if it was given one with
    /// [`Builder::name`](crate::Builder::name).
    ///
    /// ```
    /// coio::run(|| {
    ///     let named = coio::Builder::new().name("io").spawn(|| ()).unwrap();
    ///     let anonymous = coio::spawn(|| ());
    ///     assert_eq!(named.coroutine().name(), Some("io"));
    ///     assert_eq!(anonymous.coroutine().name(), None);
    /// });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.0.header().name()
    }

    /// Makes the park token available: the coroutine's current or next
    /// [`park`](crate::park) returns (std's `Thread::unpark` semantics).
    /// Does nothing once the coroutine has finished.
    ///
    /// ```
    /// coio::run(|| {
    ///     let h = coio::spawn(coio::park);
    ///     h.coroutine().unpark(); // before or during its park: either way it returns
    ///     h.join().unwrap();
    /// });
    /// ```
    #[inline]
    pub fn unpark(&self) {
        unpark(&*self.0);
    }
}

impl std::fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coroutine")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

/// Owned permission to join a coroutine (as `std::thread::JoinHandle`).
/// Dropping it detaches the coroutine.
///
/// It is also a [`Future`](std::future::Future) of the same result as
/// [`join`](Self::join), so async code on any executor can await a
/// coroutine:
///
/// ```
/// # coio::run(|| {
/// let h = coio::spawn(|| 6 * 7);
/// // Any executor: here coio's own `block_on`, which parks the coroutine.
/// let v = coio::future::block_on(async move { h.await.unwrap() });
/// assert_eq!(v, 42);
/// # });
/// ```
pub struct JoinHandle<T> {
    pub(crate) task: Arc<dyn Output<T>>,
    /// The waker cell registered as the task's join waiter, once the
    /// handle was polled as a future and found the task unfinished.
    waker: Option<Arc<JoinWaker>>,
    /// Polled to completion: the result was taken.
    taken: bool,
}

/// Makes `slot` hold a waker that wakes `w`'s task: `w` cloned into it,
/// unless the one there wakes the same task already (a re-poll with the
/// same waker costs no clone). For every future of coio that keeps its
/// latest poll's waker.
#[inline]
pub(crate) fn keep_waker(slot: &mut Option<std::task::Waker>, w: &std::task::Waker) {
    match slot {
        Some(old) if old.will_wake(w) => {}
        other => *other = Some(w.clone()),
    }
}

/// The join waiter of a [`JoinHandle`] awaited as a future: registered
/// once (the join protocol takes one waiter per task), it holds the waker
/// of the latest poll and wakes it when the task completes.
struct JoinWaker(std::sync::Mutex<Option<std::task::Waker>>);

impl JoinWaker {
    /// Makes `w` the waker to wake (unless it would wake the same task as
    /// the one already there).
    fn set(&self, w: &std::task::Waker) {
        keep_waker(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()), w);
    }

    /// Forgets the waker (the handle is dropped or joins another way).
    fn clear(&self) -> Option<std::task::Waker> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Wake for JoinWaker {
    fn wake_up(&self) {
        // Woken outside the lock: a waker may run arbitrary code, and
        // panic (at a coroutine's end, on its worker: it goes no further).
        if let Some(w) = self.clear() {
            crate::wake_surviving(w);
        }
    }
}

impl<T> JoinHandle<T> {
    /// The handle of `task`.
    #[inline]
    pub(crate) fn new(task: Arc<dyn Output<T>>) -> JoinHandle<T> {
        JoinHandle {
            task,
            waker: None,
            taken: false,
        }
    }

    /// Waits for the coroutine to finish and returns its result: `Err` with
    /// the panic payload if it panicked, or with [`Cancelled`] if it was
    /// cancelled. Blocks the calling coroutine (or thread, outside a
    /// runtime).
    ///
    /// ```
    /// coio::run(|| {
    ///     let ok = coio::spawn(|| 6 * 7);
    ///     assert_eq!(ok.join().unwrap(), 42);
    ///     let failed = coio::spawn(|| -> u32 { panic!("boom") });
    ///     assert!(failed.join().is_err());
    /// });
    /// ```
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`] if the *calling* coroutine is cancelled
    /// while it waits. Panics if the calling coroutine is the one this
    /// handle joins: that wait could never end (std's `JoinHandle::join`
    /// panics likewise, with the system's `EDEADLK`).
    ///
    /// Also panics if the handle was awaited as a future until it returned
    /// the result already.
    pub fn join(self) -> thread::Result<T> {
        // First, whether the handle was polled before or not.
        if !self.task.header().is_complete() && joins_itself(self.task.header()) {
            // The handle is dropped (detached) by the unwinding.
            panic!(
                "coio: a coroutine called join on its own JoinHandle, which would wait \
                 forever (deadlock avoided, as std's EDEADLK)"
            );
        }
        if self.waker.is_some() || self.taken {
            // Polled as a future before: its waiter is registered (the
            // protocol takes one per task), so go on waiting as a future.
            return crate::future::block_on(self);
        }
        // Joined, not detached: no `Drop` (which would detach) for it.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: read out once; `this` is never used or dropped again.
        let task = unsafe { ptr::read(&this.task) };
        let h = task.header();
        if !h.is_complete() && h.set_join_waiter(super::blocking::current_waiter()) {
            // If the wait unwinds (the joiner is cancelled), the handle is
            // gone without a join: `Detach` makes that a detach.
            let guard = Detach(&*task);
            super::blocking::wait_until(|| h.is_complete(), None, true, super::dump::Wait::Join);
            std::mem::forget(guard);
        }
        // SAFETY: complete (seen with Acquire); the handle is consumed.
        unsafe { task.take_output() }
    }

    /// Whether the coroutine has finished (`join` will not block).
    ///
    /// ```
    /// coio::run(|| {
    ///     let (tx, rx) = coio::chan::bounded::<()>(0);
    ///     let h = coio::spawn(move || rx.recv());
    ///     assert!(!h.is_finished()); // it waits for a message, or for `tx` to go
    ///     drop(tx);
    ///     while !h.is_finished() {
    ///         coio::yield_now();
    ///     }
    ///     assert!(h.join().unwrap().is_err()); // did not block
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.header().is_complete()
    }

    /// Cancels the coroutine: it unwinds with a [`Cancelled`] payload from
    /// its current or next blocking point of coio (sleep, park, join, ...),
    /// running its destructors; one that has not started never runs.
    /// `join` then returns `Err(payload)`. Cancelling a finished coroutine
    /// does nothing. A coroutine that never reaches a blocking point runs
    /// to its end; socket and channel operations that complete without
    /// waiting count as one each time they spend the cooperative budget
    /// (every 128 in a row), so a loop of them (reads at end of stream,
    /// say) is cancelled too. Such an operation unwinds before it does
    /// anything, never after: no value is taken out of a channel, or
    /// sent, and no byte read or written, by a call that then unwinds.
    ///
    /// Cancelling unwinds: in a program built with `panic = "abort"`, a
    /// cancelled coroutine that has started aborts the process, with a
    /// message, at that point (one that has not started is dropped as
    /// usual).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// coio::run(|| {
    ///     let h = coio::spawn(|| coio::sleep(Duration::from_secs(3600)));
    ///     h.cancel();
    ///     let payload = h.join().unwrap_err();
    ///     assert!(payload.is::<coio::Cancelled>());
    /// });
    /// ```
    pub fn cancel(&self) {
        cancel(&*self.task);
    }

    /// A handle to the coroutine.
    ///
    /// ```
    /// coio::run(|| {
    ///     let h = coio::Builder::new().name("sleeper").spawn(coio::park).unwrap();
    ///     let co = h.coroutine();
    ///     assert_eq!(co.name(), Some("sleeper"));
    ///     co.unpark();
    ///     h.join().unwrap();
    /// });
    /// ```
    pub fn coroutine(&self) -> Coroutine {
        Coroutine(self.task.clone())
    }
}

impl<T> Drop for JoinHandle<T> {
    /// Detaches: the result is dropped, now if it is there, else by the
    /// coroutine when it finishes.
    #[inline]
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        if let Some(w) = &self.waker {
            // Nobody awaits any more: the completion wakes nothing.
            drop(w.clear());
        }
        detach(&*self.task);
    }
}

/// Awaiting a `JoinHandle` waits for the coroutine as
/// [`join`](JoinHandle::join) does, from async code on any executor (a
/// coroutine in [`coio::future::block_on`](crate::future::block_on), a
/// tokio task, ...): the coroutine's completion wakes the awaiting task.
///
/// The handle is not usable after it returned `Ready` (polling it again
/// panics); dropping it before then detaches the coroutine.
impl<T> std::future::Future for JoinHandle<T> {
    type Output = thread::Result<T>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<thread::Result<T>> {
        use std::task::Poll;
        let this = self.get_mut();
        assert!(
            !this.taken,
            "coio: a JoinHandle was polled after it returned its result"
        );
        let h = this.task.header();
        if !h.is_complete() {
            // At every poll: a handle polled first elsewhere may be moved
            // to the coroutine it joins.
            if joins_itself(h) {
                panic!(
                    "coio: a coroutine awaited its own JoinHandle, which would wait \
                     forever (deadlock avoided, as std's EDEADLK)"
                );
            }
            match &this.waker {
                Some(w) => w.set(cx.waker()),
                None => {
                    let w = Arc::new(JoinWaker(std::sync::Mutex::new(Some(cx.waker().clone()))));
                    if h.set_join_waiter(Waiter(w.clone())) {
                        this.waker = Some(w);
                    }
                }
            }
            // Checked after the waker is in place: a completion before this
            // load is seen here, one after it wakes the waker (its lock
            // orders the two).
            if !h.is_complete() {
                return Poll::Pending;
            }
        }
        this.taken = true;
        // SAFETY: complete (seen with Acquire); `taken` makes this the only
        // take, and keeps `drop` from detaching.
        Poll::Ready(unsafe { this.task.take_output() })
    }
}

/// Whether the running coroutine is the task whose header is `h`.
fn joins_itself(h: &Header) -> bool {
    super::worker::coroutine_local().is_some_and(|l| l.with_current(|t| ptr::eq(t.header(), h)))
}

/// Detaches a task from its (only) join handle.
#[inline]
fn detach<T>(task: &dyn Output<T>) {
    if task.header().detach() {
        // SAFETY: complete (seen by the AcqRel in `detach`), and the
        // completer left the result to us.
        unsafe { task.drop_output() };
    }
}

/// Detaches a task if dropped (a join that unwinds).
struct Detach<'a, T>(&'a dyn Output<T>);

impl<T> Drop for Detach<'_, T> {
    fn drop(&mut self) {
        detach(self.0);
    }
}

/// Requests cancellation of a task and wakes it.
pub(crate) fn cancel(task: &dyn Task) {
    if task.header().set_cancel() {
        wake(task);
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.task.header().id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task of a small closure must stay within glibc's fast bins (chunks
    /// of up to 128 bytes, that is requests of up to 120): above them every
    /// spawn and free takes malloc's slow path (measured: `_int_malloc`,
    /// `_int_free` and `unlink_chunk` became a fifth of spawn time).
    #[test]
    fn header_is_small() {
        assert!(size_of::<Header>() <= 80, "{}", size_of::<Header>());
        type Small = TaskCell<Box<dyn FnOnce() + Send>, ()>;
        // Arc adds two counters.
        assert!(size_of::<Small>() + 16 <= 120, "{}", size_of::<Small>());
    }
}

/// Model checks of the state word with loom (`RUSTFLAGS="--cfg loom" cargo
/// test --release --lib loom_`; `.ci/run` runs them): the coroutine's side
/// (`prepare_park`, `prepare_block`) against a waker's (`unpark`, `wake`)
/// on another thread, in every interleaving. "Queued" stands for the push
/// onto the home worker's queue that the waker makes when it is told to.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    /// The coroutine (the model's main thread) prepares to wait with
    /// `prepare` and, if told to suspend, parks until a waker on another
    /// thread (`waker`) queues it: a lost wakeup deadlocks the model. Then
    /// the bits of the state word in `mask` must be back to RUNNABLE (the
    /// wake was consumed once, and nothing is left over for the next wait).
    fn no_lost_wakeup(prepare: fn(&Header) -> bool, waker: fn(&Header) -> bool, mask: u32) {
        loom::model(move || {
            let h = Arc::new(Header::new(None, Location::caller()));
            let queued = Arc::new(AtomicBool::new(false));
            let main = thread::current();
            let (h2, q2) = (h.clone(), queued.clone());
            let t = thread::spawn(move || {
                if waker(&h2) {
                    q2.store(true, Release);
                    main.unpark();
                }
            });
            if prepare(&h) {
                while !queued.load(Acquire) {
                    thread::park();
                }
            }
            t.join().unwrap();
            assert_eq!(h.state.load(Relaxed) & mask, RUNNABLE);
        });
    }

    #[test]
    fn loom_unpark_is_never_lost_and_consumed_once() {
        no_lost_wakeup(
            Header::prepare_park,
            Header::unpark,
            TOKEN | PARKED | STATE_MASK,
        );
    }

    #[test]
    fn loom_wake_is_never_lost() {
        no_lost_wakeup(Header::prepare_block, Header::wake, WAKE | STATE_MASK);
    }

    /// A waiter's loop, as `wait_until`'s and `park`'s callers run it:
    /// check the condition, prepare, suspend until queued, check again;
    /// with a hint (`stale`) left over from an earlier wait, which the
    /// first prepare consumes without suspending. The waker publishes the
    /// condition, then wakes. A wake that decides from a stale view of the
    /// hint that it has nothing to do leaves the waiter suspended for good
    /// (a deadlock of the model).
    fn condition_wait(prepare: fn(&Header) -> bool, waker: fn(&Header) -> bool, stale: u32) {
        loom::model(move || {
            let h = Arc::new(Header::new(None, Location::caller()));
            h.state.fetch_or(stale, Relaxed);
            let done = Arc::new(AtomicBool::new(false));
            let queued = Arc::new(AtomicU32::new(0));
            let main = thread::current();
            let (h2, d2, q2) = (h.clone(), done.clone(), queued.clone());
            let t = thread::spawn(move || {
                d2.store(true, Release);
                if waker(&h2) {
                    q2.fetch_add(1, Release);
                    main.unpark();
                }
            });
            let mut resumed = 0;
            while !done.load(Acquire) {
                if prepare(&h) {
                    // Suspended: resumes once queued.
                    while queued.load(Acquire) == resumed {
                        thread::park();
                    }
                    resumed += 1;
                }
            }
            t.join().unwrap();
        });
    }

    #[test]
    fn loom_a_stale_wake_hint_hides_no_wake() {
        condition_wait(Header::prepare_block, Header::wake, WAKE);
    }

    #[test]
    fn loom_a_stale_token_hides_no_unpark() {
        condition_wait(Header::prepare_park, Header::unpark, TOKEN);
    }

    /// An unpark that arrives while the coroutine waits for something else
    /// (a sleep) does not wake it; the token waits for the next park.
    #[test]
    fn loom_unpark_during_another_wait_keeps_the_token() {
        loom::model(|| {
            let h = Arc::new(Header::new(None, Location::caller()));
            let h2 = h.clone();
            let t = thread::spawn(move || assert!(!h2.unpark()));
            let suspended = h.prepare_block();
            t.join().unwrap();
            if suspended {
                assert_eq!(h.state.load(Relaxed) & STATE_MASK, WAITING);
                // The sleep's timer wakes it.
                assert!(h.wake());
            }
            // The next park takes the token and does not suspend.
            assert!(!h.prepare_park());
        });
    }

    /// Two wakers (an unpark and a cancellation's wake) queue the task at
    /// most once.
    #[test]
    fn loom_two_wakers_queue_once() {
        loom::model(|| {
            let h = Arc::new(Header::new(None, Location::caller()));
            let queued = Arc::new(AtomicU32::new(0));
            let main = thread::current();
            let mut ts = Vec::new();
            for which in 0..2 {
                let (h2, q2, m2) = (h.clone(), queued.clone(), main.clone());
                ts.push(thread::spawn(move || {
                    let must_queue = if which == 0 {
                        h2.unpark()
                    } else {
                        h2.set_cancel();
                        h2.wake()
                    };
                    if must_queue {
                        q2.fetch_add(1, AcqRel);
                        m2.unpark();
                    }
                }));
            }
            if h.prepare_park() {
                while queued.load(Acquire) == 0 {
                    thread::park();
                }
            }
            for t in ts {
                t.join().unwrap();
            }
            assert!(queued.load(Acquire) <= 1);
            assert!(h.is_cancelled());
        });
    }
}
