//! `coroutine_local!`: storage that belongs to the running coroutine.
//!
//! A thread-local is shared by every coroutine of a worker thread; a
//! coroutine-local is per coroutine, as a thread-local is per thread. Each
//! key gets a process-wide index the first time it is used; each coroutine
//! has a vector of values by index (in its task header, home-local),
//! filled lazily by the key's initialiser. Outside coroutines (a plain
//! thread) the same keys give per-thread values.
//!
//! # Borrows that outlive the coroutine
//!
//! `with` hands `f` a reference to the value, and `f` can outlive the
//! coroutine: a [`Generator`](crate::Generator) resumed by the coroutine
//! may call `with` and suspend inside `f`, and a generator is tied to its
//! thread, not to a coroutine, so another coroutine of the same worker (or
//! the thread's exit) may resume or unwind it after the first one has
//! finished and dropped its values. So each value lives in an `Rc`, and a
//! `with` that may outlive its owner holds a count on the value for as
//! long as `f` runs: the owner's end drops the vector's count, and a value
//! still borrowed is dropped when its last such `with` returns or unwinds,
//! wherever that happens (on the same thread: a generator never changes
//! thread).
//!
//! Only a `with` that runs on another stack than its owner's can outlive
//! it: one on the coroutine's own stack has returned before the coroutine
//! finishes, one on a thread's own stack before the thread's locals are
//! destroyed. So `with` compares the stack pointer with the owner's stack
//! (the coroutine's, from its stack's descriptor; the thread's, looked up
//! once and kept) and takes the count only when it runs elsewhere, on a
//! generator's stack: the common case costs a few loads and compares, and
//! no store (a count taken and dropped by every `with` cost about 1 ns in
//! a loop of them, the latency of the store it forwards). In the common
//! case nothing is borrowed when the coroutine ends, and its values are
//! dropped on the coroutine itself, after its closure returned (their
//! destructors may use coio).
//!
//! Values need not be `Send`: a started coroutine never changes thread, and
//! its values are created and dropped on it (or by a generator of its
//! thread, as above).

use std::any::{Any, TypeId};
use std::cell::{Cell, UnsafeCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::Waker;

use super::task::Header;
use super::worker;

/// A key for coroutine-local storage; declare with
/// [`coroutine_local!`](crate::coroutine_local).
///
/// ```
/// use std::cell::RefCell;
///
/// coio::coroutine_local! {
///     static TRACE: RefCell<Vec<&'static str>> = RefCell::new(Vec::new());
/// }
/// coio::run(|| {
///     TRACE.with(|t| t.borrow_mut().push("main"));
///     let child = coio::spawn(|| TRACE.with(|t| t.borrow().len()));
///     assert_eq!(child.join().unwrap(), 0); // the child has its own
///     assert_eq!(TRACE.with(|t| t.borrow().len()), 1);
/// });
/// ```
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    /// 0 until the key is first used; then its index + 1.
    index: AtomicUsize,
}

/// One coroutine's (or thread's) values, by key index, and a coroutine's
/// cached waker.
#[derive(Default)]
pub(crate) struct Values {
    keys: Vec<Option<Value>>,
    /// The coroutine's waker for `future::block_on`, made by its first one
    /// and kept for the next (a `block_on` per message is common, and a
    /// fresh waker's allocation and counts were a fifth of a wake hop).
    /// Here rather than behind a key: reaching it through `LocalKey::with`
    /// twice per `block_on` was 15% of the instructions of a hop through a
    /// tokio oneshot. Unused on plain threads. Dropped with the values at
    /// the coroutine's end, which breaks the cycle task -> waker -> task.
    /// Kept only by the coroutine it wakes (see `keep_waker`). Made by
    /// `blocking::FutureWaker::waker`.
    waker: Option<Waker>,
}

impl Values {
    const fn new() -> Values {
        Values {
            keys: Vec::new(),
            waker: None,
        }
    }
}

/// One value: its `Rc` (see the module docs), and, so that `with` reaches
/// it without a virtual call or the `Rc`'s layout arithmetic, the address
/// of the value in it and its type.
pub(crate) struct Value {
    at: *const (),
    type_id: TypeId,
    rc: Rc<dyn Any>,
}

impl Value {
    fn new<T: 'static>(value: T) -> Value {
        let rc = Rc::new(value);
        Value {
            at: Rc::as_ptr(&rc).cast(),
            type_id: TypeId::of::<T>(),
            rc,
        }
    }
}

static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// A plain thread's values, and the bounds of its own stack.
struct ThreadValues {
    values: UnsafeCell<Values>,
    /// The thread's stack, `[low, high)`, looked up on first use; (0, 0)
    /// until then; (0, 1) if it cannot be (then every `with` counts).
    stack: Cell<(usize, usize)>,
}

impl ThreadValues {
    /// Whether `sp` lies on this thread's own stack.
    #[inline]
    fn on_own_stack(&self, sp: usize) -> bool {
        let (mut low, mut high) = self.stack.get();
        if high == 0 {
            (low, high) = thread_stack().unwrap_or((0, 1));
            self.stack.set((low, high));
        }
        (low..high).contains(&sp)
    }
}

/// The calling thread's stack, `[low, high)` (also the dump's: a worker's
/// own stack, `dump::Slot::set_thread`).
#[cold]
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: plain data; all zeroes is a valid starting value.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is ours to initialise; destroyed below on success.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
        return None;
    }
    let (mut addr, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: `attr` was initialised by `pthread_getattr_np`.
    let ok = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) } == 0;
    // SAFETY: as above, destroyed once.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    let high = addr as usize + size;
    // The main thread's stack is reported as far down as its limit (or the
    // next mapping) reaches; the kernel keeps the first 128 MiB below its
    // top clear of other mappings, so at most that much is taken.
    let low = (addr as usize).max(high.saturating_sub(128 << 20));
    ok.then_some((low, high))
}

thread_local! {
    /// Values for plain threads (outside coroutines).
    static THREAD_VALUES: ThreadValues = const {
        ThreadValues {
            values: UnsafeCell::new(Values::new()),
            stack: Cell::new((0, 0)),
        }
    };
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> Self {
        LocalKey {
            init,
            index: AtomicUsize::new(0),
        }
    }

    fn index(&self) -> usize {
        match self.index.load(Relaxed) {
            0 => {
                let fresh = NEXT_INDEX.fetch_add(1, Relaxed) + 1;
                match self.index.compare_exchange(0, fresh, Relaxed, Relaxed) {
                    Ok(_) => fresh - 1,
                    Err(won) => won - 1,
                }
            }
            i => i - 1,
        }
    }

    /// Runs `f` with a reference to the current coroutine's value
    /// (initialised on first use in this coroutine). On a plain thread, the
    /// thread's value. The value lives at least until `f` returns, even if
    /// `f` suspends inside a [`Generator`](crate::Generator) that is
    /// resumed after the coroutine (or thread) has finished.
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// coio::coroutine_local! {
    ///     static DEPTH: Cell<u32> = Cell::new(0);
    /// }
    /// coio::run(|| {
    ///     DEPTH.with(|d| d.set(d.get() + 1));
    ///     assert_eq!(DEPTH.with(Cell::get), 1);
    /// });
    /// // On a plain thread, the thread's own value.
    /// assert_eq!(DEPTH.with(Cell::get), 0);
    /// ```
    ///
    /// When a coroutine finishes, its values are dropped one key after
    /// another. A destructor that uses another key gets that key's value if
    /// its turn has not come, as with `thread_local!`; if it has (or for its
    /// own key), a fresh value, dropped in turn (after a few such rounds,
    /// what is left is leaked).
    ///
    /// # Panics
    /// On a plain thread whose thread-locals are being destroyed.
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        let index = self.index();
        let (values, own_stack) = values_here();
        // SAFETY: `values` is the running coroutine's vector (home-local,
        // used by it alone) or this thread's; no reference into the vector
        // is kept across the calls below, and `v` is used before anything
        // else touches the vector.
        let (p, _count) = unsafe {
            let v = &*get_or_init(values, index, self.init);
            if v.type_id != TypeId::of::<T>() {
                index_mismatch();
            }
            (v.at.cast::<T>(), (!own_stack).then(|| v.rc.clone()))
        };
        // SAFETY: the box `p` points into is not dropped before `f` has
        // returned or unwound: on the owner's own stack, `f` ends before
        // the owner does; elsewhere (a generator's stack), `_count` holds a
        // count on it until then (the module docs).
        f(unsafe { &*p })
    }
}

/// The running coroutine's values (created if absent), or this thread's
/// outside coroutines; and whether the caller runs on the owner's own
/// stack (not a generator's).
#[inline(always)]
fn values_here() -> (*mut Values, bool) {
    match worker::coroutine_local() {
        Some(l) => {
            let values = l.with_current(|t| {
                // SAFETY: home-local, used by the running coroutine alone;
                // the box is allocated once and stays until it finishes.
                let slot = unsafe { &mut *t.header().local.locals.get() };
                &mut **slot.get_or_insert_with(Default::default) as *mut Values
            });
            (values, l.on_coroutine_stack())
        }
        None => THREAD_VALUES
            .try_with(|t| (t.values.get(), t.on_own_stack(crate::arch::stack_pointer())))
            .expect("coio: coroutine_local! used while the thread's locals are destroyed"),
    }
}

/// The value at `index`, created with `init` if absent: a pointer into the
/// vector, valid until it is next changed.
///
/// # Safety
/// `values` must be the caller's own vector, with no reference into it
/// alive.
#[inline(always)]
unsafe fn get_or_init<T: 'static>(
    values: *mut Values,
    index: usize,
    init: fn() -> T,
) -> *const Value {
    // SAFETY: caller; the borrow ends before `init` runs.
    if let Some(Some(v)) = unsafe { (&*values).keys.get(index) } {
        return v;
    }
    insert(index, init)
}

/// The first use of key `index` by the running coroutine (or thread):
/// creates its value.
#[cold]
#[inline(never)]
fn insert<T: 'static>(index: usize, init: fn() -> T) -> *const Value {
    let fresh = Value::new(init());
    // Looked up again: `init` may have used the values meanwhile (another
    // key, or a `future::block_on` keeping its waker), through references
    // of its own, which a pointer taken before it must not outlive.
    let values = values_here().0;
    // SAFETY: the running coroutine's values or this thread's, used by it
    // alone; nothing holds a reference into them now.
    let v = unsafe { &mut (*values).keys };
    if v.len() <= index {
        v.resize_with(index + 1, || None);
    }
    // An initialiser that used its own key already put a value there: keep
    // that one (references to it may exist) and drop ours.
    v[index].get_or_insert(fresh)
}

#[cold]
#[inline(never)]
fn index_mismatch() -> ! {
    panic!("coio: coroutine-local key index mismatch")
}

/// In a coroutine: its id, and its cached `block_on` waker (see
/// [`Values::waker`]), taken out of the cache, or else `make()`. None on a
/// plain thread.
#[inline]
pub(crate) fn take_waker(make: impl FnOnce() -> Waker) -> Option<(u64, Waker)> {
    let l = worker::coroutine_local()?;
    let (id, cached) = l.with_current(|t| {
        let h = t.header();
        // SAFETY: home-local, used by the running coroutine alone; no
        // reference into the values is alive (a `with` in progress holds
        // a pointer to its value, which lives outside the `Values`, and
        // `insert` looks the values up again after its initialiser).
        let slot = unsafe { &mut *h.local.locals.get() };
        (h.id, slot.as_mut().and_then(|v| v.waker.take()))
    });
    Some((id, cached.unwrap_or_else(make)))
}

/// Keeps `waker`, which wakes coroutine `owner`, as the running
/// coroutine's `block_on` waker (see [`Values::waker`]) if it is `owner`;
/// else (a plain thread, or a generator that another coroutine resumed)
/// drops it.
#[inline]
pub(crate) fn keep_waker(owner: u64, waker: Waker) {
    let Some(l) = worker::coroutine_local() else {
        return;
    };
    let old = l.with_current(|t| {
        let h = t.header();
        if h.id != owner {
            return Some(waker);
        }
        // SAFETY: as in `take_waker`.
        let slot = unsafe { &mut *h.local.locals.get() };
        slot.get_or_insert_with(Default::default)
            .waker
            .replace(waker)
    });
    // Dropped outside the borrow.
    drop(old);
}

/// Whether the finishing coroutine has coroutine-locals to drop.
#[inline]
pub(crate) fn has_locals(h: &Header) -> bool {
    // SAFETY: home-local, read by the coroutine itself.
    unsafe { (*h.local.locals.get()).is_some() }
}

/// Drops the coroutine-locals of the finishing coroutine (called on it):
/// its counts on them, that is; a value that a suspended generator still
/// borrows lives until that borrow ends (module docs).
///
/// A destructor that panics is reported by the panic hook and the next
/// value is dropped all the same. A destructor may create values again
/// (by using a key): a few rounds, then whatever is left is leaked, never
/// dropped later elsewhere (the values need not be `Send`, and the task's
/// memory may be dropped or reused on another thread).
#[inline]
pub(crate) fn drop_locals(h: &Header) {
    for _ in 0..4 {
        // Dropped one by one, in place: a destructor that uses a key whose
        // turn has not come gets its live value, as with std's
        // thread-locals; one whose value was dropped gets a fresh one,
        // dropped in the next round. No reference into the vector is kept
        // across a destructor (which may grow it).
        let mut dropped = false;
        // SAFETY: home-local; the coroutine calls this after its closure
        // returned, so no reference into the vector exists (a `with` still
        // running in a suspended generator holds its own count, not a
        // reference into the vector).
        let waker = unsafe { &mut *h.local.locals.get() }
            .as_mut()
            .and_then(|v| v.waker.take());
        if waker.is_some() {
            dropped = true;
            drop_surviving(waker);
        }
        let mut i = 0;
        loop {
            // SAFETY: as above.
            let value = match unsafe { &mut *h.local.locals.get() } {
                Some(values) if i < values.keys.len() => values.keys[i].take(),
                _ => break,
            };
            i += 1;
            if value.is_some() {
                dropped = true;
                drop_surviving(value);
            }
        }
        if !dropped {
            break;
        }
    }
    // SAFETY: as above.
    if let Some(mut values) = unsafe { &mut *h.local.locals.get() }.take() {
        // What destructors of the last round created is leaked (never
        // dropped later, elsewhere); the vector itself is freed.
        std::mem::forget(values.waker.take());
        for v in values.keys.drain(..) {
            std::mem::forget(v);
        }
    }
}

/// Drops `v`, surviving a panicking destructor (see `crate::surviving`).
fn drop_surviving<T>(v: T) {
    crate::surviving(move || drop(v));
}

/// Declares coroutine-local storage: a [`LocalKey`] whose
/// [`with`](LocalKey::with) gives each coroutine (and, outside coroutines,
/// each thread) its own value. The replacement for `thread_local!` inside
/// coroutines.
///
/// ```
/// use std::cell::Cell;
/// coio::coroutine_local! {
///     static COUNTER: Cell<u32> = Cell::new(0);
/// }
/// coio::run(|| {
///     let a = coio::spawn(|| { COUNTER.with(|c| c.set(c.get() + 1)); COUNTER.with(Cell::get) });
///     let b = coio::spawn(|| COUNTER.with(Cell::get));
///     assert_eq!(a.join().unwrap(), 1);
///     assert_eq!(b.join().unwrap(), 0);
/// });
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __coio_init() -> $t {
                $init
            }
            __coio_init
        });
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::coroutine_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
