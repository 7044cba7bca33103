//! Coroutines driven by hand: [`Generator`](generator::Generator), a
//! stackful generator.
//!
//! A generator is a closure on a stack of its own that can suspend itself
//! from any depth of ordinary function calls with
//! [`Yielder::yield_`](generator::Yielder::yield_), handing a value to
//! whoever resumed it; [`resume`](generator::Generator::resume) sends a
//! value in and runs it until it yields or returns. It runs on the thread
//! that resumes it: no runtime is needed, and inside one it is an ordinary
//! value of the coroutine that drives it. [`generator`] has the types
//! (`Generator`, `GeneratorBuilder` for the stack size, overflow policy and
//! name, `GeneratorState`, `Yielder`, `ForcedUnwind`), which the crate
//! root re-exports.
//!
//! ```
//! use coio::{Generator, Yielder};
//!
//! // Yields every node of a tree, depth first, from a recursive function.
//! enum Tree {
//!     Leaf(u32),
//!     Node(Vec<Tree>),
//! }
//! fn walk(t: &Tree, y: &Yielder<(), u32>) {
//!     match t {
//!         Tree::Leaf(v) => {
//!             y.yield_(*v);
//!         }
//!         Tree::Node(children) => children.iter().for_each(|c| walk(c, y)),
//!     }
//! }
//! let tree = Tree::Node(vec![Tree::Leaf(1), Tree::Node(vec![Tree::Leaf(2), Tree::Leaf(3)])]);
//! let leaves = Generator::new(move |y, ()| walk(&tree, y));
//! assert_eq!(leaves.collect::<Vec<_>>(), [1, 2, 3]);
//! ```
//!
//! The runtime's coroutines ([`spawn`](crate::spawn)) run on the same
//! machinery (the context switch, and guarded, pooled stacks); they are
//! scheduled by the runtime instead of resumed by hand.
//!
//! # The thread-local rule
//!
//! Compiled code may compute the address of a thread-local once and keep it
//! across calls; if a coroutine suspended on one thread were resumed on
//! another, such code would touch the first thread's thread-locals. Two
//! rules keep coio sound:
//!
//! * a started coroutine is only ever resumed on the thread that started it:
//!   `Generator` is neither `Send` nor `Sync` (the compiler cannot see what
//!   lives on a coroutine stack, so it can never prove that moving one is
//!   safe), and the runtime's scheduler moves only coroutines that have
//!   not started (work stealing takes fresh coroutines, a closure and no
//!   stack; a started one stays on the worker that first ran it);
//! * no function of coio reads a thread-local, switches context, and then
//!   uses what it read.
//!
//! Thread exit is the one moment the first rule is not enough: a body
//! suspended inside `LocalKey::with` holds a reference to a thread-local,
//! and thread-locals are destroyed one by one when the thread exits. A
//! thread that coio owns (a runtime's worker, a blocking-pool thread, the
//! helper thread of an async sleep polled off the workers, the signal
//! relay, a thread of the tokio runtime that `compat::tokio` starts)
//! therefore never exits while frames of a generator it started may be
//! live (a count per thread: bodies begun and not ended): it parks for
//! good instead, and its thread-locals are never destroyed (and a
//! generator that a thread-local's destructor starts there after that
//! count must not suspend: the process aborts if it does). That also
//! covers frames that were leaked (`mem::forget`, or dropped where they
//! cannot be unwound) while the reference they hold is shared with other
//! threads (a `thread::scope` they are suspended in). On other threads, a
//! dropped generator is leaked, not unwound, once the thread is known to
//! exit: once coio's own thread-local has been destroyed. That closes the
//! common case (the generator is owned by a thread-local created before
//! the thread's first generator), not every order of destruction, nor a
//! leaked frame's shared borrow (see ARCHITECTURE.md, "Known gaps").
//! `coroutine_local!` values are safe in any order: a borrowed one lives
//! until its borrow ends.
//!
//! Likewise std's panic count is per thread, so a coroutine must not
//! suspend while it is unwinding, and a panic that starts on a coroutine
//! ends there. A runtime coroutine that blocks while it unwinds (a
//! destructor that sleeps, say) does not switch away: it blocks its worker
//! thread instead. A generator that yields while it unwinds is a bug that
//! debug builds catch, aborting with a message (see
//! [`Yielder::yield_`](generator::Yielder::yield_)).

pub mod generator;

use std::cell::Cell;
use std::mem::ManuallyDrop;

use crate::arch;
use crate::stack::Stack;

/// Where a raw coroutine is in its life (derived, not stored: see
/// [`RawCoroutine::state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Never resumed: the stack holds the initial object only.
    Fresh,
    /// Suspended in `arch::suspend`: live frames on the stack.
    Suspended,
    /// Returned for good: nothing live on the stack.
    Finished,
}

/// An untyped coroutine: the core shared by the public
/// [`Generator`](generator::Generator) and the scheduler's coroutines. It
/// owns a pooled `Stack`, the stack pointer of the suspended context and
/// the state machine
///
/// ```text
///   Fresh ──resume──► Running ──suspend──► Suspended ──resume──► Running ...
///                         └────finish────► Finished
/// ```
///
/// A fresh coroutine's stack holds only its initial object (written there by
/// `arch::init_stack`: no heap allocation). The raw coroutine does not know
/// the types on its stack, so its typed owner must finish it before dropping
/// it: a fresh one is resumed with an order to drop its object and finish, a
/// suspended one with an order to unwind (see the generator). A raw
/// coroutine dropped unfinished leaks its stack rather than reuse memory
/// that may still be referenced.
///
/// While it runs, it is mutably borrowed by [`resume`](Self::resume), so a
/// running state never needs to be recorded.
pub(crate) struct RawCoroutine {
    /// Context of a fresh or suspended coroutine; null once finished.
    sp: *mut u8,
    /// The stack; returned to the pool when this is dropped (leaked if
    /// frames are still live on it).
    stack: ManuallyDrop<Stack>,
}

impl RawCoroutine {
    /// Makes a fresh coroutine on `stack` that will run
    /// `entry(arg, &mut obj, link, order)` when first resumed.
    ///
    /// # Safety
    /// `entry` must treat its second argument as a `*mut T` it takes
    /// ownership of, and end with `arch::finish` on the link it was given.
    /// The caller must have checked [`fits_on_stack`] (before taking the
    /// stack, so that no panic path holds it: that keeps the stack handle
    /// in registers on the hot path).
    #[inline]
    pub(crate) unsafe fn new<T>(stack: Stack, entry: arch::EntryFn, obj: T) -> Self {
        debug_assert!(fits_on_stack::<T>(stack.size()));
        // SAFETY: the switch top is 16-aligned (page top minus 48) and the
        // stack below it is ours and large enough (caller's check).
        let sp = unsafe { arch::init_stack(stack.switch_top(), entry, obj) };
        RawCoroutine {
            sp,
            stack: ManuallyDrop::new(stack),
        }
    }

    /// The stack (for its size, canary and owner descriptor).
    pub(crate) fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The coroutine's link slot (the typed layer keeps its own data next to
    /// it, in the switch's scratch space).
    #[inline(always)]
    pub(crate) fn link(&self) -> *mut usize {
        arch::link_slot(self.stack.switch_top())
    }

    /// Asks the CPU to bring the cache lines from the saved context up to
    /// the top of the coroutine's frames, `max_lines` at most, into cache:
    /// what a resume touches first (the saved registers, then the frames
    /// the coroutine returns through). A shallow coroutine (a yield loop)
    /// costs a prefetch or two, a deep one (parked on a socket) the
    /// maximum. A hint: no effect on behaviour.
    #[inline(always)]
    pub(crate) fn prefetch_frames(&self, max_lines: usize) {
        let depth = (self.link() as usize).saturating_sub(self.sp as usize);
        let lines = (depth / 64 + 1).min(max_lines);
        #[cfg(target_arch = "x86_64")]
        for i in 0..lines {
            // SAFETY: a prefetch never faults and has no visible effect,
            // whatever the address.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(self.sp.wrapping_add(64 * i) as *const i8);
            }
        }
    }

    /// Whether the coroutine has finished (it cannot be resumed).
    #[inline(always)]
    pub(crate) fn is_finished(&self) -> bool {
        self.sp.is_null()
    }

    /// Current state.
    #[inline]
    pub(crate) fn state(&self) -> State {
        if self.sp.is_null() {
            State::Finished
        // SAFETY: a non-null `sp` is a fresh or suspended context.
        } else if unsafe { arch::is_fresh(self.sp) } {
            State::Fresh
        } else {
            State::Suspended
        }
    }

    /// Switches into the coroutine with `arg` and `order` (the typed layer's
    /// own meaning: "continue" or "unwind"); returns the word it passes
    /// back when it suspends or finishes, and [`SUSPENDED`] or the status
    /// it finished with (0 or 1, see `arch::finish`).
    ///
    /// # Safety
    /// The coroutine must not have finished, and this thread must be the one
    /// that first resumed it (if any). `arg` must be what the coroutine's
    /// code expects at this point.
    #[inline(always)]
    pub(crate) unsafe fn resume(&mut self, arg: usize, order: usize) -> (usize, usize) {
        debug_assert!(!self.sp.is_null());
        let link = self.link();
        // SAFETY: `sp` is a live fresh or suspended context on our stack
        // (caller's guarantee), whose link slot is `link`.
        let (ret, sp) = unsafe { arch::resume(arg, order, self.sp, link) };
        if (sp as usize) > 1 {
            self.sp = sp;
            (ret, SUSPENDED)
        } else {
            self.sp = std::ptr::null_mut();
            (ret, sp as usize)
        }
    }
}

impl RawCoroutine {
    /// The saved context (for `arch::resume`/`arch::transfer` done by the
    /// scheduler itself, which resumes one coroutine and may get control
    /// back from another).
    #[inline(always)]
    pub(crate) fn context(&self) -> *mut u8 {
        self.sp
    }

    /// Where a switch writes the context when this coroutine suspends
    /// through `arch::transfer`.
    #[inline(always)]
    pub(crate) fn context_slot(&mut self) -> *mut *mut u8 {
        &mut self.sp
    }

    /// Records what `arch::resume` returned for this coroutine: its new
    /// context, or the status it finished with. Returns [`SUSPENDED`] or
    /// that status, as [`resume`](Self::resume) does.
    #[inline(always)]
    pub(crate) fn returned(&mut self, sp_or_status: *mut u8) -> usize {
        if (sp_or_status as usize) > 1 {
            self.sp = sp_or_status;
            SUSPENDED
        } else {
            self.sp = std::ptr::null_mut();
            sp_or_status as usize
        }
    }
}

thread_local! {
    /// Generators whose body began on this thread and has not ended
    /// (const, no destructor: readable while the thread's other
    /// thread-locals are destroyed).
    static LIVE_FRAMES: Cell<usize> = const { Cell::new(0) };
    /// Set on the threads coio owns (see the module docs), which never
    /// exit under live frames (const, no destructor).
    static OWNED: Cell<bool> = const { Cell::new(false) };
}

/// This thread is one of coio's own (see the module docs): it never exits
/// while frames of its generators may be live ([`stay_for_ever`]), and
/// once it has begun to exit no generator may suspend on it (see
/// `Generator::resume`).
pub(crate) fn mark_thread_owned() {
    OWNED.with(|o| o.set(true));
}

/// Whether this thread is one of coio's own ([`mark_thread_owned`]).
pub(crate) fn thread_owned() -> bool {
    OWNED.with(Cell::get)
}

/// The end of a thread of coio's own ([`mark_thread_owned`]), run on it
/// once it runs no more user code but its thread-locals' destructors:
/// parks for good if frames are live, else marks the thread exiting (no
/// generator may suspend on it from now on).
pub(crate) fn end_owned() {
    if frames_live() {
        stay_for_ever();
    }
    crate::stack::mark_thread_exiting();
}

/// The body of a helper thread of coio's (the blocking pool's, an async
/// sleep's) that runs user code (jobs, wakers): `f`, then, if frames are
/// live, parks for good ([`stay_for_ever`]); else marks the thread
/// exiting, so that only its thread-locals' destructors run after the
/// count and none of them may suspend a generator.
/// A panic out of `f` (a user's waker that panicked) is caught first
/// (`crate::surviving`), so that the count is made whatever happens.
pub(crate) fn run_owned(f: impl FnOnce()) {
    mark_thread_owned();
    crate::surviving(f);
    end_owned();
}

/// A generator's body begins on this thread (see [`frames_live`]); called
/// by the body's root before it first switches away.
#[inline(always)]
pub(crate) fn frame_begins() {
    LIVE_FRAMES.with(|n| n.set(n.get() + 1));
}

/// A generator's body that began on this thread ended; called by its
/// resumer, on the same thread, when the switch back says so.
#[inline(always)]
pub(crate) fn frame_ends() {
    LIVE_FRAMES.with(|n| n.set(n.get() - 1));
}

/// Whether frames of a generator started on this thread may still be
/// live: a generator suspended, or leaked suspended (`mem::forget`, or
/// dropped where it cannot be unwound). Such frames may hold borrows of
/// this thread's thread-locals that outlive any unwinding, shared with
/// other threads (a `thread::scope` inside a `with`): a thread of coio's
/// own with live frames never exits (see [`stay_for_ever`]).
pub(crate) fn frames_live() -> bool {
    LIVE_FRAMES.with(|n| n.get() != 0)
}

/// Parks this thread for good, instead of exiting: its thread-locals,
/// which leaked frames may still borrow, are then never destroyed. For the
/// threads coio owns (see the module docs), at their end, when frames are
/// still live ([`frames_live`]).
#[cold]
pub(crate) fn stay_for_ever() -> ! {
    loop {
        std::thread::park();
    }
}

/// What [`RawCoroutine::resume`] returns as status when the coroutine
/// suspended (finish statuses are 0 and 1).
pub(crate) const SUSPENDED: usize = 2;

/// Whether an initial object of type `T` leaves room for the coroutine's
/// frames on a stack of `size` usable bytes (at least 4 KiB to spare).
#[inline(always)]
pub(crate) fn fits_on_stack<T>(size: usize) -> bool {
    std::mem::size_of::<T>() + std::mem::align_of::<T>() + 4096 <= size
}

impl Drop for RawCoroutine {
    #[inline]
    fn drop(&mut self) {
        // Unfinished (the typed owner could not finish it): the frames or the
        // initial object may still be referenced from elsewhere (wait-queue
        // nodes live on coroutine stacks), so the stack is leaked rather
        // than reused. Sound, if wasteful.
        if self.sp.is_null() {
            // SAFETY: the field is not used after this; nothing lives on the
            // stack any more.
            unsafe { ManuallyDrop::drop(&mut self.stack) }
        }
    }
}
