//! Coroutine stacks: mapped in slabs, guarded or canaried, pooled.
//!
//! # Geometry
//!
//! Stacks are cut from *slabs*: one anonymous `mmap` (with `MAP_NORESERVE`,
//! so only touched pages cost memory) holding a row of equal *slots*. Each
//! slot is one page of no-man's-land followed by the stack proper; the stack
//! grows down from the slot's top towards that page:
//!
//! ```text
//!   slot i:  [ guard / buffer page | stack .......... descriptor ] slot i+1: [ guard ...
//!            ^ slot base            ^ bottom                      ^ top
//! ```
//!
//! [`DESCRIPTOR`] bytes at the top of every stack describe it: its slab, its
//! kind (size, guarded or not), and its current owner (name and id) for the
//! overflow report. They sit below a *colour* gap of 0 to 7 cache lines
//! that depends on the slot's address ([`colour`]), so that the hot top
//! lines of different stacks fall in different cache sets. The context switch owns the words below that (see
//! `arch`). Because a stack describes itself, its handle ([`Stack`]) is one
//! word, the slot's top: caches hold single words, and the descriptor's
//! cache line is the one the coroutine's first frame touches anyway.
//!
//! # Two ways to catch an overflow ([`StackPolicy`])
//!
//! * **Guarded**: the no-man's-land page is `PROT_NONE`. An overflow faults
//!   there, and the SIGSEGV/SIGBUS handler of [`overflow`] reports the
//!   coroutine by name and aborts. Exact, free at run time, but every guard
//!   page splits the mapping in two, and Linux allows only
//!   `vm.max_map_count` (65530 by default) mappings per process: about
//!   32,000 guarded stacks at most.
//! * **Canary**: the page stays readable and writable but is never touched
//!   by correct code, so it stays zero (and costs no memory). Each time the
//!   coroutine suspends or finishes, the top words of that page and the
//!   stack pointer are checked; a dirtied page or a stack pointer below the bottom is reported
//!   like a fault. The page also keeps an overflow of up to a page from
//!   reaching the neighbouring stack. A slab of canary stacks is a single
//!   mapping however many stacks it holds, which is what makes a million
//!   live coroutines possible with default kernel settings. Where the kernel
//!   allows it (Linux 6.4+, see [`uffd`]), the no-man's-land pages of canary
//!   slabs are also write-protected through a userfaultfd, page by page in
//!   the page tables (no mapping split): an overflow then faults at the
//!   offending write, as with a guard page. Without that, detection is at
//!   the next switch, and a frame larger than a page that skips the checked
//!   words goes unnoticed: best effort.
//! * **Auto** (the default): guarded slabs while they use less than half
//!   of `vm.max_map_count`, canary slabs after that.
//!
//! # The pool
//!
//! Creating a coroutine on a warm pool makes no syscall and no allocation:
//! a freed stack goes to a per-thread cache (at most [`LOCAL_CACHE`], of the
//! kind the thread freed last); past that to a shared cache (at most
//! [`SHARED_CACHE`] per kind);
//! past that it is released: its pages are dropped with
//! `madvise(MADV_DONTNEED)`, and a slab whose slots are all free is unmapped.
//! A burst therefore pins at most the two caches' worth of stacks.
//!
//! # Invariants
//!
//! * A slab lives until its last slot is released; a stack out of its slab
//!   (owned, or cached) keeps it alive, so the slab pointer in a stack's
//!   descriptor is valid for as long as the stack is out. The slab and kind
//!   words of the descriptor are written when the slot leaves the slab and
//!   never change until it returns.
//! * All slab bookkeeping happens under the one `SLABS` mutex, which is
//!   only taken on the slow paths (cache miss, cache overflow).
//! * The no-man's-land page of a canary stack reads as zero unless an
//!   overflow wrote to it: new pages are zero, and correct code never writes
//!   below the bottom. (Releasing a slot drops the pages of its stack only,
//!   never its no-man's-land, whose write protection, if any, stays.)
//! * The per-thread cache is only touched by its thread, through
//!   `with_local`, whose callers never re-enter it; at thread exit it is
//!   closed (it takes nothing more) and emptied into the shared cache.
//! * Every thread that has taken a stack from this module has an alternate
//!   signal stack, so that the overflow handler can run after the faulting
//!   stack is exhausted.

pub(crate) mod overflow;
mod uffd;

use std::cell::{Cell, UnsafeCell};
use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default usable size of a coroutine stack, in bytes.
///
/// Chosen from measurement (BENCHMARKS.md, "Stack use"): of the common
/// operations measured, the deepest (a panic through the default hook, in a
/// debug build) writes 22 KiB of stack; 128 KiB leaves more than five times
/// that for the application's own frames, and still lets fifteen stacks share
/// one page-table page, which keeps an idle coroutine near one page of
/// memory. Code with large values on the stack (big arrays, deep recursion)
/// should ask for more with the builders' `stack_size`.
///
/// ```
/// let g = coio::Generator::new(|y, ()| y.yield_(1));
/// assert_eq!(g.stack_size(), coio::DEFAULT_STACK_SIZE);
/// // Twice the default, for coroutines with large locals.
/// let rt = coio::Runtime::builder()
///     .stack_size(2 * coio::DEFAULT_STACK_SIZE)
///     .build()?;
/// # drop(rt);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// Smallest usable stack size; smaller requests are rounded up to it.
///
/// ```
/// let g = coio::GeneratorBuilder::new()
///     .stack_size(1)
///     .build(|y, ()| y.yield_(1))?;
/// assert_eq!(g.stack_size(), coio::MIN_STACK_SIZE);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Bytes at the top of every stack that describe it. Word offsets below the
/// top, see [`Desc`].
pub(crate) const DESCRIPTOR: usize = 48;

/// The words of the descriptor, by their index below the slot top (the
/// word at `top - 8 * i` for variant value `i`).
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum Desc {
    /// The owning slab (`*const Slab`).
    Slab = 1,
    /// The kind ([`Key`]).
    Key = 2,
    /// Owner id (0 if none).
    Id = 3,
    /// Owner name: length in bytes, and address (0 if none).
    NameLen = 4,
    NamePtr = 5,
    /// What the owner waits for, and since when (see `runtime::dump`);
    /// the word right at the switch top, written by the owner itself.
    Wait = 6,
}

/// Stacks kept per thread, of the kind used last, before they go to the
/// shared cache.
pub(crate) const LOCAL_CACHE: usize = 64;

/// Stacks kept in the shared cache, per kind, before they are released.
pub(crate) const SHARED_CACHE: usize = 1024;

/// Target size of one slab mapping.
const SLAB_BYTES: usize = 8 << 20;

/// Upper bound on slots per slab (bounds the cost of mprotecting a guarded slab).
const MAX_SLOTS: usize = 64;

/// How a coroutine stack catches an overflow. See the module docs.
///
/// ```
/// use coio::StackPolicy;
///
/// // Guard pages always: exact overflow reports, at most ~32,000 stacks.
/// let rt = coio::Runtime::builder()
///     .stack_policy(StackPolicy::Guarded)
///     .build()?;
/// assert_eq!(rt.block_on(|| coio::spawn(|| 1).join().unwrap()), 1);
/// assert_eq!(StackPolicy::default(), StackPolicy::Auto);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StackPolicy {
    /// Guard pages while the process has mapping headroom, canaries after.
    #[default]
    Auto,
    /// Always a `PROT_NONE` guard page; creating a coroutine fails once the
    /// guard pages would use more than half of `vm.max_map_count`.
    Guarded,
    /// Always canary checks at every switch: one mapping for many stacks.
    Canary,
}

/// The page size: 4 KiB is the base page size of every x86_64 Linux system
/// (checked against `sysconf` in debug builds when a slab is mapped).
pub(crate) const PAGE: usize = 4096;

/// Largest stack size accepted: 1 TiB (a hundredth of the address space).
///
/// ```
/// let err = coio::Runtime::builder()
///     .stack_size(coio::MAX_STACK_SIZE + 1)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
pub const MAX_STACK_SIZE: usize = 1 << 40;

/// Rounds a requested stack size to what will be allocated, or explains why
/// it cannot be.
#[inline]
pub(crate) fn usable_size(requested: usize) -> io::Result<usize> {
    if requested > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "coio: a stack of {requested} bytes was asked for; the largest is {MAX_STACK_SIZE} (1 TiB)"
            ),
        ));
    }
    Ok(requested.max(MIN_STACK_SIZE).div_ceil(PAGE) * PAGE)
}

/// One mapping holding `slots` stacks. Owned by `SLABS`; freed when empty.
struct Slab {
    /// Start of the mapping (slot 0's no-man's-land page).
    base: usize,
    /// One slot: a page of no-man's-land plus the stack.
    slot_size: usize,
    /// Number of slots.
    slots: usize,
    /// Whether the no-man's-land pages are `PROT_NONE`.
    guarded: bool,
    /// Slots never handed out or released back; LIFO.
    free: Vec<u32>,
    /// Position in its class's `partial` list while it has free slots.
    partial_at: Option<usize>,
    /// Valgrind stack ids, one per slot (zeros when not under valgrind).
    valgrind_ids: Vec<usize>,
    /// Entry in the overflow registry, if writes to the slots' first pages
    /// fault (guard pages, or userfaultfd write protection).
    registry: Option<usize>,
}

impl Slab {
    fn len(&self) -> usize {
        self.slot_size * self.slots
    }
    fn top(&self, slot: u32) -> usize {
        self.base + (slot as usize + 1) * self.slot_size
    }
}

/// What tells stacks apart in the caches: the usable size (a multiple of
/// the page size) with bit 0 set for a guarded stack. One plain word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key(usize);

impl Key {
    #[inline]
    fn new(size: usize, guarded: bool) -> Key {
        Key(size | guarded as usize)
    }
    #[inline]
    fn size(self) -> usize {
        self.0 & !1
    }
    #[inline]
    fn guarded(self) -> bool {
        self.0 & 1 != 0
    }
}

/// The raw handle of a stack out of its slab: its slot's top. `Copy`, owns
/// nothing by itself: caches hold these, [`Stack`] owns one.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RawStack(NonNull<u8>);

// SAFETY: a RawStack is an address; the memory it names is only used by
// whoever holds the handle, and the slab it points to is only mutated under
// the SLABS mutex. Handing it to another thread (the shared cache) is fine.
unsafe impl Send for RawStack {}

impl RawStack {
    /// The descriptor word `w`.
    #[inline(always)]
    fn desc(self, w: Desc) -> *mut usize {
        desc_word(self.0.as_ptr() as usize, w) as *mut usize
    }
    #[inline(always)]
    fn read(self, w: Desc) -> usize {
        // SAFETY: the descriptor is the top of a stack that is out of its
        // slab (that is what a RawStack is), hence mapped, and was written
        // when it left the slab.
        unsafe { self.desc(w).read() }
    }
    #[inline(always)]
    fn key(self) -> Key {
        Key(self.read(Desc::Key))
    }
    #[inline(always)]
    fn slab(self) -> NonNull<Slab> {
        // SAFETY: written non-null when the slot left its slab.
        unsafe { NonNull::new_unchecked(self.read(Desc::Slab) as *mut Slab) }
    }
}

/// A stack of one slot of one slab, owned by one coroutine. Dropping it
/// gives it back to the pool.
pub(crate) struct Stack(RawStack);

impl Stack {
    /// Usable bytes.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.0.key().size()
    }

    /// The top handed to the context switch: below the descriptor (see
    /// [`colour`]).
    #[inline]
    pub(crate) fn switch_top(&self) -> *mut u8 {
        let top = self.0.0.as_ptr();
        top.wrapping_sub(colour(top as usize) + DESCRIPTOR)
    }

    /// The top of the stack (the end of its descriptor), page-aligned.
    #[inline]
    pub(crate) fn top(&self) -> usize {
        self.0.0.as_ptr() as usize
    }

    /// Records the owner shown in an overflow report. `name` must stay
    /// valid (and unchanged) until the owner changes or the stack is dropped.
    /// A stack comes out of [`allocate`] with zero owner words (a report
    /// then names the stack by address): whoever sets them must clear them
    /// (`set_owner(None, 0)`) before dropping the stack.
    #[inline]
    pub(crate) fn set_owner(&self, name: Option<&str>, id: u64) {
        let (ptr, len) = name.map_or((0, 0), |n| (n.as_ptr() as usize, n.len()));
        // SAFETY: the descriptor words of our own stack; nothing else uses them.
        unsafe {
            self.0.desc(Desc::NamePtr).write(ptr);
            self.0.desc(Desc::NameLen).write(len);
            self.0.desc(Desc::Id).write(id as usize);
        }
    }

    /// The wait word (see [`Desc::Wait`]).
    #[inline]
    pub(crate) fn wait_word(&self) -> *mut u64 {
        self.0.desc(Desc::Wait).cast()
    }

    /// Whether a name is recorded (see [`set_owner`](Self::set_owner)).
    #[inline]
    pub(crate) fn has_owner_name(&self) -> bool {
        // SAFETY: the descriptor words of our own stack.
        unsafe { self.0.desc(Desc::NamePtr).read() != 0 }
    }

    /// The name recorded with [`set_owner`](Self::set_owner), if any.
    ///
    /// # Safety
    /// The recorded name (if any) must still be valid for `'a`.
    #[inline]
    pub(crate) unsafe fn owner_name<'a>(&self) -> Option<&'a str> {
        // SAFETY: the descriptor words of our own stack.
        let (ptr, len) = unsafe {
            (
                self.0.desc(Desc::NamePtr).read(),
                self.0.desc(Desc::NameLen).read(),
            )
        };
        // SAFETY: set_owner stored the address and length of a `str` that
        // the caller guarantees is still valid.
        (ptr != 0).then(|| unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr as *const u8, len))
        })
    }
}

/// The *colour* of the stack whose top is `top`: 0 to 7 cache lines by
/// which its descriptor, and everything the context switch puts below it,
/// is moved down from the top of the page. Slots are whole pages apart, so
/// without colouring the descriptor and the hot top frames of every
/// coroutine would sit at the same offsets in their pages and compete for
/// the same few sets of the (8-way) L1 cache: measured in a yield loop on
/// one worker, 27.6 ns per yield with up to 8 coroutines, 32.6 ns with 16.
/// At most 448 bytes, so that an idle coroutine's frames still fit in its
/// stack's top page even in a debug build (2.1 KiB for a trivial body;
/// with 16 colours, a fifth of a million idle generators spilled into a
/// second page there).
#[inline(always)]
pub(crate) fn colour(top: usize) -> usize {
    ((top >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) * 64
}

/// The address of descriptor word `w` of the stack whose top is `top`.
#[inline(always)]
fn desc_word(top: usize, w: Desc) -> usize {
    top - colour(top) - 8 * w as usize
}

/// Checks the running coroutine's stack for an overflow, if it is a canary
/// stack (see [`overflow::check_canary`]); nothing to do for a guarded one.
/// `switch_top` is the stack's [`Stack::switch_top`], `sp` the current stack
/// pointer. Reading the kind from the stack's own descriptor (a line the
/// coroutine keeps warm) spares coroutines a copy of it.
#[inline(always)]
pub(crate) fn check_overflow(switch_top: usize, sp: usize) {
    // The switch top lies in the stack's top page, below the page's end
    // (colour and descriptor, see `colour`).
    let raw_top = (switch_top | (PAGE - 1)) + 1;
    // SAFETY: the descriptor of a live stack (the caller runs on it or owns
    // it): mapped, and its kind word was written when it left its slab.
    let key = Key(unsafe { (desc_word(raw_top, Desc::Key) as *const usize).read() });
    if !key.guarded() {
        overflow::check_canary(raw_top - key.size(), raw_top, sp);
    }
}

/// Whether `sp` lies on the stack whose switch top is `switch_top` (a live
/// stack: the running coroutine's). Loads only, from the stack's own
/// descriptor (see [`check_overflow`]).
#[inline(always)]
pub(crate) fn holds(switch_top: usize, sp: usize) -> bool {
    let raw_top = (switch_top | (PAGE - 1)) + 1;
    // SAFETY: as in `check_overflow`: the descriptor of a live stack.
    let key = Key(unsafe { (desc_word(raw_top, Desc::Key) as *const usize).read() });
    raw_top.wrapping_sub(sp) <= key.size()
}

impl Drop for Stack {
    #[inline]
    fn drop(&mut self) {
        let raw = self.0;
        let overflow = with_local(|local| local.put(raw)).unwrap_or(Some(raw));
        if let Some(raw) = overflow {
            release_shared(raw);
        }
    }
}

/// Per-thread state: the cache of free stacks of one kind (the kind this
/// thread freed last), inline so that taking or returning a stack is a few
/// loads and stores from the thread pointer. Stacks of any other kind go to
/// the shared cache.
struct Local {
    /// Kind of the cached stacks; `Key(0)` until the thread first caches a
    /// stack, [`CLOSED`] once the thread is exiting (matches no stack, so
    /// nothing more is cached).
    key: Key,
    /// The most recently freed stack, taken first: a create after a drop
    /// reads one slot instead of a length and then an element (two
    /// dependent trips through memory).
    last: Option<RawStack>,
    /// Number of other cached stacks: `stacks[..len]` are initialised.
    len: usize,
    stacks: [MaybeUninit<RawStack>; LOCAL_CACHE - 1],
}

/// The cache key of a closed thread cache: no stack has it (its size is
/// above MAX_STACK_SIZE).
const CLOSED: Key = Key(usize::MAX);

impl Local {
    /// Keeps `raw` if there is room, else hands it back.
    #[inline]
    fn put(&mut self, raw: RawStack) -> Option<RawStack> {
        let key = raw.key();
        if key != self.key {
            if self.len != 0 || self.last.is_some() || self.key == CLOSED {
                return Some(raw);
            }
            if self.key == Key(0) {
                register_flush();
            }
            self.key = key;
        }
        let raw = self.last.replace(raw)?;
        if self.len == LOCAL_CACHE - 1 {
            return Some(raw);
        }
        self.stacks[self.len].write(raw);
        self.len += 1;
        None
    }

    /// How many stacks of kind `key` `put` would keep now.
    fn room_for(&self, key: Key) -> usize {
        if self.key == CLOSED {
            0
        } else if key == self.key {
            (LOCAL_CACHE - 1 - self.len) + self.last.is_none() as usize
        } else if self.len == 0 && self.last.is_none() {
            LOCAL_CACHE
        } else {
            0
        }
    }

    /// A cached stack of `size` usable bytes allowed by `policy`, if any.
    #[inline]
    fn take(&mut self, size: usize, policy: StackPolicy) -> Option<RawStack> {
        let ok = match policy {
            StackPolicy::Auto => self.key.size() == size,
            StackPolicy::Guarded => self.key == Key::new(size, true),
            StackPolicy::Canary => self.key == Key::new(size, false),
        };
        if !ok {
            return None;
        }
        if let Some(raw) = self.last.take() {
            return Some(raw);
        }
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: `stacks[..len]` are initialised; this one is now moved out.
        Some(unsafe { self.stacks[self.len].assume_init_read() })
    }

    /// Stops caching and hands out everything cached (for the caller to
    /// release once it no longer holds `self`).
    fn close(&mut self) -> impl Iterator<Item = RawStack> + use<> {
        self.key = CLOSED;
        let len = std::mem::take(&mut self.len);
        let stacks = self.stacks;
        // SAFETY: `stacks[..len]` were initialised; `len` is now 0, so they
        // are moved out exactly once (into the copy iterated here).
        let rest = (0..len).map(move |i| unsafe { stacks[i].assume_init_read() });
        self.last.take().into_iter().chain(rest)
    }
}

thread_local! {
    /// No destructor, so that access needs no liveness check; the flush at
    /// thread exit is `FLUSH`'s job.
    static LOCAL: UnsafeCell<Local> = const {
        UnsafeCell::new(Local {
            key: Key(0),
            last: None,
            len: 0,
            stacks: [MaybeUninit::uninit(); LOCAL_CACHE - 1],
        })
    };
    /// Its destructor returns the cached stacks when the thread exits.
    static FLUSH: Flush = const { Flush };
    /// Set by a thread that knows it is about to exit, before any of its
    /// thread-locals is destroyed (a runtime's worker, at the end of its
    /// main function): see `thread_exiting`. No destructor, so it can be
    /// read while the others are destroyed.
    static EXITING: Cell<bool> = const { Cell::new(false) };
}

/// See `FLUSH`.
struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        // The thread exits: from now on a suspended generator is neither
        // resumed nor unwound (`thread_exit_begun`).
        let _ = EXITING.try_with(|e| e.set(true));
        // Take everything out first, release after: `release_shared` may
        // allocate, and nothing may hold `&mut Local` meanwhile.
        if let Ok(stacks) = with_local(|local| local.close()) {
            stacks.for_each(release_shared);
        }
    }
}

/// Whether this thread has begun to exit: it said so
/// ([`mark_thread_exiting`]), or its stack cache is gone. A suspended
/// coroutine is not resumed any more then, not even to unwind it:
/// thread-locals it was using may already be destroyed.
pub(crate) fn thread_exiting() -> bool {
    EXITING.try_with(Cell::get).unwrap_or(true) || FLUSH.try_with(|_| ()).is_err()
}

/// [`thread_exiting`]'s first half, for the generators' hot path: the
/// thread said so, or its stack cache is being destroyed (which sets the
/// same flag). One load: `EXITING` is const and has no destructor.
#[inline(always)]
pub(crate) fn thread_exit_begun() -> bool {
    EXITING.with(Cell::get)
}

/// Marks this thread as exiting, from now on (see [`thread_exiting`]).
/// Called by a thread that runs no more user code but the destructors of
/// its thread-locals: a generator one of them owns is then leaked rather
/// than unwound after a thread-local its frames use was destroyed.
pub(crate) fn mark_thread_exiting() {
    let _ = EXITING.try_with(|e| e.set(true));
}

#[cold]
fn register_flush() {
    let _ = FLUSH.try_with(|_| ());
}

/// Runs `f` on this thread's [`Local`]. `f` must not call back into
/// anything that uses `LOCAL`: `Local`'s methods do not (`close` calls
/// `release_shared`, which does not touch `LOCAL`).
#[inline(always)]
fn with_local<T>(f: impl FnOnce(&mut Local) -> T) -> Result<T, std::thread::AccessError> {
    // SAFETY: the only references to the cell's contents are made here, for
    // the duration of `f`, which does not re-enter (see above); the cell is
    // thread-local, so no other thread sees it.
    LOCAL.try_with(|cell| f(unsafe { &mut *cell.get() }))
}

/// The shared cache and the slabs of one kind.
struct Class {
    key: Key,
    /// Shared cache of free stacks, at most SHARED_CACHE.
    cached: Vec<RawStack>,
    /// Slabs of this class with free slots (each knows its index here). A
    /// full slab is owned by the stacks cut from it; an empty one is freed.
    partial: Vec<NonNull<Slab>>,
}

impl Class {
    /// A free stack of this class from the shared cache or a slab with free
    /// slots, if any. Called under the SLABS lock.
    fn take(&mut self) -> Option<RawStack> {
        if let Some(raw) = self.cached.pop() {
            return Some(raw);
        }
        let &slab_ptr = self.partial.last()?;
        // SAFETY: under the SLABS lock; listed slabs are alive.
        let slab = unsafe { &mut *slab_ptr.as_ptr() };
        let slot = slab.free.pop().expect("a partial slab has a free slot");
        if slab.free.is_empty() {
            self.partial.pop();
            slab.partial_at = None;
        }
        Some(take_slot(slab_ptr, slab, slot, self.key))
    }

    /// Adds a slab that just got a free slot to `partial`.
    fn add_partial(&mut self, slab_ptr: NonNull<Slab>, slab: &mut Slab) {
        slab.partial_at = Some(self.partial.len());
        self.partial.push(slab_ptr);
    }

    /// Takes a slab out of `partial`.
    fn remove_partial(&mut self, slab: &mut Slab) {
        let i = slab.partial_at.take().expect("slab is in the partial list");
        self.partial.swap_remove(i);
        if let Some(&moved) = self.partial.get(i) {
            // SAFETY: under the SLABS lock; listed slabs are alive, and
            // `moved` is not `slab` (that one was just removed).
            unsafe { (*moved.as_ptr()).partial_at = Some(i) };
        }
    }
}

/// Everything shared about stacks.
struct Slabs {
    classes: Vec<Class>,
    /// Mappings currently used by guarded slabs (2 per slot).
    guarded_maps: usize,
}

// SAFETY: the slab pointers are owned by this structure (or by the stacks
// cut from them) and only used under its mutex.
unsafe impl Send for Slabs {}

static SLABS: Mutex<Slabs> = Mutex::new(Slabs {
    classes: Vec::new(),
    guarded_maps: 0,
});

fn lock_slabs() -> std::sync::MutexGuard<'static, Slabs> {
    // The data stays consistent even if a holder panicked (no code under the
    // lock panics halfway through an update), so poisoning is ignored.
    SLABS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slabs {
    fn class(&mut self, key: Key) -> &mut Class {
        let i = match self.classes.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    key,
                    cached: Vec::new(),
                    partial: Vec::new(),
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }
}

/// Puts a stack nobody caches locally into the shared cache, or releases it.
fn release_shared(raw: RawStack) {
    let key = raw.key();
    let slab_ptr = raw.slab();
    let mut slabs = lock_slabs();
    let class = slabs.class(key);
    if class.cached.len() < SHARED_CACHE {
        class.cached.push(raw);
        return;
    }
    // SAFETY: we hold the SLABS lock, the only place slabs are mutated; the
    // slab is alive (it still has this slot out).
    let slab = unsafe { &mut *slab_ptr.as_ptr() };
    let top = raw.0.as_ptr() as usize;
    let slot = ((top - slab.base) / slab.slot_size - 1) as u32;
    slab.free.push(slot);
    if slab.partial_at.is_none() {
        class.add_partial(slab_ptr, slab);
    }
    if slab.free.len() == slab.slots {
        class.remove_partial(slab);
        let guarded = slab.guarded;
        let maps = 2 * slab.slots;
        // SAFETY: every slot is back in the free list, so no stack points
        // into the slab any more; it was made by Box::leak in allocate_slow.
        unsafe { free_slab(*Box::from_raw(slab_ptr.as_ptr())) };
        if guarded {
            slabs.guarded_maps -= maps;
        }
    } else {
        let bottom = top - slab.slot_size + PAGE;
        // SAFETY: the slot's stack is ours alone (it is on the free list);
        // dropping its pages only makes them read as zero again.
        unsafe {
            libc::madvise(
                bottom as *mut libc::c_void,
                slab.slot_size - PAGE,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Unmaps a slab whose slots are all free.
///
/// # Safety
/// No stack of the slab may be in use or cached.
unsafe fn free_slab(slab: Slab) {
    if let Some(entry) = slab.registry {
        overflow::unregister_slab(entry);
    }
    for &id in &slab.valgrind_ids {
        if id != 0 {
            crate::arch::valgrind_request(0, VG_STACK_DEREGISTER, [id, 0, 0, 0, 0]);
        }
    }
    // SAFETY: the caller guarantees nothing uses the mapping any more.
    unsafe {
        libc::munmap(slab.base as *mut libc::c_void, slab.len());
    }
}

/// Valgrind's client request numbers for stack (de)registration.
const VG_STACK_REGISTER: usize = 0x1501;
const VG_STACK_DEREGISTER: usize = 0x1502;

/// Half of `vm.max_map_count`: what guarded slabs may use under `Auto`.
fn guarded_map_budget() -> usize {
    static BUDGET: AtomicUsize = AtomicUsize::new(0);
    match BUDGET.load(Ordering::Relaxed) {
        0 => {
            let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(65530);
            let b = (max / 2).max(1);
            BUDGET.store(b, Ordering::Relaxed);
            b
        }
        b => b,
    }
}

/// Takes a stack of `size` usable bytes (a value from [`usable_size`]):
/// from this thread's cache, the shared cache, or a slab (mapping a new one
/// if needed). Its owner words are zero (see [`Stack::set_owner`]).
#[inline(always)]
pub(crate) fn allocate(size: usize, policy: StackPolicy) -> io::Result<Stack> {
    debug_assert!(size.is_multiple_of(PAGE) && (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size));
    match with_local(|local| local.take(size, policy)) {
        Ok(Some(raw)) => Ok(Stack(raw)),
        _ => allocate_slow(size, policy),
    }
}

#[cold]
fn allocate_slow(size: usize, policy: StackPolicy) -> io::Result<Stack> {
    let guarded_key = Key::new(size, true);
    let canary_key = Key::new(size, false);
    let keys: &[Key] = match policy {
        StackPolicy::Auto => &[guarded_key, canary_key],
        StackPolicy::Guarded => &[guarded_key],
        StackPolicy::Canary => &[canary_key],
    };
    // A thread that takes a stack on the slow path may be about to run its
    // first coroutine: make sure overflows on it can be reported, and that
    // its cache is flushed (and its exit noticed, see `thread_exiting`).
    overflow::prepare_thread();
    register_flush();
    let mut slabs = lock_slabs();
    let mut found = None;
    for &key in keys {
        if let Some(raw) = slabs.class(key).take() {
            found = Some(raw);
            break;
        }
    }
    let raw = match found {
        Some(raw) => raw,
        None => new_slab_stack(&mut slabs, size, policy)?,
    };
    // A miss in the thread's cache is usually the start of a burst: take a
    // batch for it now rather than one lock round trip per coroutine.
    let key = raw.key();
    let room = with_local(|local| local.room_for(key)).unwrap_or(0);
    let class = slabs.class(key);
    for _ in 0..room {
        let Some(extra) = class.take() else { break };
        if let Ok(Some(extra)) = with_local(|local| local.put(extra)) {
            class.cached.push(extra);
            break;
        }
    }
    Ok(Stack(raw))
}

/// Maps a new slab for `size`-byte stacks (guarded or not, as `policy` and
/// the mapping budget say) and takes its first slot. Called under the lock.
fn new_slab_stack(slabs: &mut Slabs, size: usize, policy: StackPolicy) -> io::Result<RawStack> {
    let slot_size = size + PAGE;
    let slots = (SLAB_BYTES / slot_size).clamp(1, MAX_SLOTS);
    let guarded = match policy {
        StackPolicy::Canary => false,
        StackPolicy::Auto => {
            slabs.guarded_maps + 2 * slots <= guarded_map_budget() && overflow::registry_has_room()
        }
        StackPolicy::Guarded => {
            if slabs.guarded_maps + 2 * slots > guarded_map_budget()
                || !overflow::registry_has_room()
            {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "coio: no mapping headroom left for another guarded stack \
                         ({} mappings in use by guard pages, vm.max_map_count allows {} per process); \
                         use StackPolicy::Auto or StackPolicy::Canary, or raise vm.max_map_count",
                        slabs.guarded_maps,
                        2 * guarded_map_budget()
                    ),
                ));
            }
            true
        }
    };
    let slab = new_slab(slot_size, slots, guarded)?;
    if guarded {
        slabs.guarded_maps += 2 * slots;
    }
    let slab_ptr = NonNull::from(Box::leak(slab));
    let class = slabs.class(Key::new(size, guarded));
    // SAFETY: just created, alive until its last slot comes back; under the lock.
    let slab = unsafe { &mut *slab_ptr.as_ptr() };
    class.add_partial(slab_ptr, slab);
    Ok(class.take().expect("a new slab has free slots"))
}

/// Hands out slot `slot` (just popped from `slab.free`): writes the slab
/// and kind words of its descriptor.
fn take_slot(slab_ptr: NonNull<Slab>, slab: &Slab, slot: u32, key: Key) -> RawStack {
    // SAFETY: a slot top is inside (at the end of) the mapping: non-null.
    let raw = RawStack(unsafe { NonNull::new_unchecked(slab.top(slot) as *mut u8) });
    // SAFETY: the slot is ours now; its descriptor is mapped and writable.
    unsafe {
        raw.desc(Desc::Slab).write(slab_ptr.as_ptr() as usize);
        raw.desc(Desc::Key).write(key.0);
    }
    raw
}

/// Maps a new slab of `slots` slots of `slot_size` bytes.
fn new_slab(slot_size: usize, slots: usize, guarded: bool) -> io::Result<Box<Slab>> {
    let len = slot_size * slots;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("coio: could not map {len} bytes for coroutine stacks: {err}"),
        ));
    }
    let base = base as usize;
    let page = PAGE;
    debug_assert_eq!(
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) },
        PAGE as libc::c_long
    );
    let mut slab = Box::new(Slab {
        base,
        slot_size,
        slots,
        guarded,
        free: (0..slots as u32).rev().collect(),
        partial_at: None,
        valgrind_ids: Vec::with_capacity(slots),
        registry: None,
    });
    if guarded {
        for i in 0..slots {
            // SAFETY: the page is the start of slot i, inside our new mapping.
            let r = unsafe {
                libc::mprotect(
                    (base + i * slot_size) as *mut libc::c_void,
                    page,
                    libc::PROT_NONE,
                )
            };
            if r != 0 {
                let err = io::Error::last_os_error();
                // SAFETY: nothing uses the new mapping yet.
                unsafe { libc::munmap(base as *mut libc::c_void, len) };
                return Err(io::Error::new(
                    err.kind(),
                    format!(
                        "coio: could not protect the guard page of a coroutine stack: {err} (see vm.max_map_count)"
                    ),
                ));
            }
        }
        slab.registry = overflow::register_slab(base, len, slot_size);
    } else if overflow::registry_has_room() && uffd::protect(base, slot_size, slots) {
        // A canary slab whose no-man's-land pages fault on writes after all;
        // without a registry entry the faults would not be reported, so the
        // protection only stays with one.
        slab.registry = overflow::register_slab(base, len, slot_size);
        if slab.registry.is_none() {
            uffd::unprotect(base, len);
        }
    }
    for i in 0..slots {
        let bottom = base + i * slot_size + page;
        let id = crate::arch::valgrind_request(
            0,
            VG_STACK_REGISTER,
            [bottom, bottom + slot_size - page, 0, 0, 0],
        );
        slab.valgrind_ids.push(id);
    }
    Ok(slab)
}

/// Resident memory of this process in bytes (from `/proc/self/statm`), for
/// tests and benchmarks.
#[doc(hidden)]
pub fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * PAGE
}
