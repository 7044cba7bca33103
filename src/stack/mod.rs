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
//! The top [`DESCRIPTOR`] bytes of every stack describe its current owner
//! (name and id) for the overflow report; the context switch owns the words
//! below that (see `arch`).
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
//!   coroutine suspends, the top words of that page and the stack pointer are
//!   checked; a dirtied page or a stack pointer below the bottom is reported
//!   like a fault. The page also keeps an overflow of up to a page from
//!   reaching the neighbouring stack. A slab of canary stacks is a single
//!   mapping however many stacks it holds, which is what makes a million
//!   live coroutines possible with default kernel settings. Detection is at
//!   the next switch, not at the faulting instruction, and a frame that
//!   skips the page without writing it goes unnoticed: best effort.
//! * **Auto** (the default): guarded slabs while they use less than half
//!   of `vm.max_map_count`, canary slabs after that.
//!
//! # The pool
//!
//! Creating a coroutine on a warm pool makes no syscall and no allocation:
//! a freed stack goes to a per-thread cache (at most [`LOCAL_CACHE`] per
//! size and kind); past that to a shared cache (at most [`SHARED_CACHE`]);
//! past that it is released: its pages are dropped with
//! `madvise(MADV_DONTNEED)`, and a slab whose slots are all free is unmapped.
//! A burst therefore pins at most the two caches' worth of stacks.
//!
//! # Invariants
//!
//! * A slab lives until its last slot is released; a [`Stack`] keeps its slab
//!   alive (the pointer in it is valid for as long as the `Stack` exists).
//! * All slab bookkeeping happens under the one `SLABS` mutex, which is
//!   only taken on the slow paths (cache miss, cache overflow).
//! * The no-man's-land page of a canary stack reads as zero unless an
//!   overflow wrote to it: new pages are zero, `MADV_DONTNEED` makes them
//!   zero again, and correct code never writes below the bottom.
//! * Every thread that has taken a stack from this module has an alternate
//!   signal stack, so that the overflow handler can run after the faulting
//!   stack is exhausted.

pub(crate) mod overflow;

use std::cell::RefCell;
use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default usable size of a coroutine stack, in bytes.
///
/// Chosen from measurement (BENCHMARKS.md, "stack use"): a panic that prints
/// a symbolised backtrace, the deepest common operation, needs about 40 KiB;
/// 128 KiB leaves three times that, and still lets sixteen stacks share one
/// page-table page, which keeps the memory of an idle coroutine near one
/// page.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// Smallest usable stack size; smaller requests are rounded up to it.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Bytes at the top of every stack that describe its owner.
pub(crate) const DESCRIPTOR: usize = 32;

/// Stacks kept per thread, per size and kind, before they go to the shared cache.
pub(crate) const LOCAL_CACHE: usize = 64;

/// Stacks kept in the shared cache, per size and kind, before they are released.
pub(crate) const SHARED_CACHE: usize = 1024;

/// Target size of one slab mapping.
const SLAB_BYTES: usize = 8 << 20;

/// Upper bound on slots per slab (bounds the cost of mprotecting a guarded slab).
const MAX_SLOTS: usize = 64;

/// How a coroutine stack catches an overflow. See the module docs.
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

/// The system page size.
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let p = if p > 0 { p as usize } else { 4096 };
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// Rounds a requested stack size to what will be allocated.
pub(crate) fn usable_size(requested: usize) -> usize {
    let page = page_size();
    requested
        .max(MIN_STACK_SIZE)
        .div_ceil(page)
        .saturating_mul(page)
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
    /// Valgrind stack ids, one per slot (zeros when not under valgrind).
    valgrind_ids: Vec<usize>,
}

impl Slab {
    fn len(&self) -> usize {
        self.slot_size * self.slots
    }
    fn top(&self, slot: u32) -> usize {
        self.base + (slot as usize + 1) * self.slot_size
    }
}

/// The raw handle of a stack: its slot's top and its slab. `Copy`, owns
/// nothing by itself: caches hold these, [`Stack`] owns one.
#[derive(Clone, Copy)]
struct RawStack {
    /// The slot's top (page aligned).
    top: NonNull<u8>,
    /// The slab it was cut from; alive while the stack is out of the slab.
    slab: NonNull<Slab>,
}

// SAFETY: a RawStack is an address plus a pointer to its slab, whose mutable
// parts are only touched under the SLABS mutex; handing it to another thread
// (through the shared cache) is fine.
unsafe impl Send for RawStack {}

impl RawStack {
    fn slab(&self) -> &Slab {
        // SAFETY: the slab outlives every stack cut from it (module invariant);
        // its fields other than `free` never change after creation, and `free`
        // is only touched under the SLABS mutex, never through this reference.
        unsafe { self.slab.as_ref() }
    }
    fn key(&self) -> (usize, bool) {
        (self.slab().slot_size - page_size(), self.slab().guarded)
    }
}

/// A stack of one slot of one slab, owned by one coroutine. Dropping it
/// gives it back to the pool.
pub(crate) struct Stack(RawStack);

impl Stack {
    /// Usable bytes.
    pub(crate) fn size(&self) -> usize {
        self.0.key().0
    }

    /// Whether overflow is caught by a guard page (else by the canary).
    pub(crate) fn is_guarded(&self) -> bool {
        self.0.slab().guarded
    }

    /// Lowest usable address.
    pub(crate) fn bottom(&self) -> *mut u8 {
        self.0.top.as_ptr().wrapping_sub(self.size())
    }

    /// The top handed to the context switch: below the descriptor.
    pub(crate) fn switch_top(&self) -> *mut u8 {
        self.0.top.as_ptr().wrapping_sub(DESCRIPTOR)
    }

    /// Records the owner shown in an overflow report. `name` must stay
    /// valid (and unchanged) until the owner changes or the stack is dropped.
    pub(crate) fn set_owner(&self, name: Option<&str>, id: u64) {
        let (ptr, len) = name.map_or((0, 0), |n| (n.as_ptr() as usize, n.len()));
        let d = self.switch_top().cast::<usize>();
        // SAFETY: the descriptor is the top DESCRIPTOR bytes of our own
        // writable stack, word aligned, used by nothing else.
        unsafe {
            d.write(ptr);
            d.add(1).write(len);
            d.add(2).write(id as usize);
        }
    }

    /// For a canary stack its bottom (the words right below it must stay
    /// zero, see [`overflow::check_canary`]); 0 for a guarded stack.
    pub(crate) fn canary_bottom(&self) -> usize {
        if self.is_guarded() { 0 } else { self.bottom() as usize }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let raw = self.0;
        let key = raw.key();
        let overflow = LOCAL
            .try_with(|local| local.borrow_mut().put(key, raw))
            .unwrap_or(Some(raw));
        if let Some(raw) = overflow {
            release_shared(key, raw);
        }
    }
}

/// Per-thread cache: a few lists, one per (size, guarded) in use.
struct LocalCache {
    lists: Vec<((usize, bool), Vec<RawStack>)>,
}

impl LocalCache {
    fn list(&mut self, key: (usize, bool)) -> &mut Vec<RawStack> {
        let i = match self.lists.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.lists.push((key, Vec::with_capacity(LOCAL_CACHE)));
                self.lists.len() - 1
            }
        };
        &mut self.lists[i].1
    }

    /// Keeps `raw` if there is room, else hands it back.
    fn put(&mut self, key: (usize, bool), raw: RawStack) -> Option<RawStack> {
        let list = self.list(key);
        if list.len() < LOCAL_CACHE {
            list.push(raw);
            None
        } else {
            Some(raw)
        }
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        for (key, list) in self.lists.drain(..) {
            for raw in list {
                release_shared(key, raw);
            }
        }
    }
}

thread_local! {
    static LOCAL: RefCell<LocalCache> = const { RefCell::new(LocalCache { lists: Vec::new() }) };
}

/// The shared cache and the slabs of one (size, guarded) kind.
struct Class {
    key: (usize, bool),
    /// Shared cache of free stacks, at most SHARED_CACHE.
    cached: Vec<RawStack>,
    /// Slabs of this class (owned; freed when empty).
    slabs: Vec<NonNull<Slab>>,
}

/// Everything shared about stacks.
struct Slabs {
    classes: Vec<Class>,
    /// Mappings currently used by guarded slabs (2 per slot).
    guarded_maps: usize,
}

// SAFETY: the slab pointers are owned by this structure and only used under
// its mutex.
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
    fn class(&mut self, key: (usize, bool)) -> &mut Class {
        let i = match self.classes.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                self.classes.push(Class {
                    key,
                    cached: Vec::new(),
                    slabs: Vec::new(),
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }
}

/// Puts a stack nobody caches locally into the shared cache, or releases it.
fn release_shared(key: (usize, bool), raw: RawStack) {
    let mut slabs = lock_slabs();
    let class = slabs.class(key);
    if class.cached.len() < SHARED_CACHE {
        class.cached.push(raw);
        return;
    }
    let slab_ptr = raw.slab;
    // SAFETY: we hold the SLABS lock, the only place slabs are mutated; the
    // slab is alive (it still has this slot out).
    let slab = unsafe { &mut *slab_ptr.as_ptr() };
    let slot = ((raw.top.as_ptr() as usize - slab.base) / slab.slot_size - 1) as u32;
    slab.free.push(slot);
    if slab.free.len() == slab.slots {
        class.slabs.retain(|s| *s != slab_ptr);
        let guarded = slab.guarded;
        let maps = 2 * slab.slots;
        // SAFETY: every slot is back in the free list, so no stack points
        // into the slab any more; it was made by Box::into_raw in new_slab.
        unsafe { free_slab(Box::from_raw(slab_ptr.as_ptr())) };
        if guarded {
            slabs.guarded_maps -= maps;
        }
    } else {
        let page = page_size();
        let bottom = raw.top.as_ptr() as usize - slab.slot_size + page;
        // SAFETY: the slot's stack is ours alone (it is on the free list);
        // dropping its pages only makes them read as zero again.
        unsafe {
            libc::madvise(
                bottom as *mut libc::c_void,
                slab.slot_size - page,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Unmaps a slab whose slots are all free.
///
/// # Safety
/// No stack of the slab may be in use or cached.
unsafe fn free_slab(slab: Box<Slab>) {
    if slab.guarded {
        overflow::unregister_slab(slab.base);
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

/// Takes a stack of at least `requested` usable bytes: from this thread's
/// cache, the shared cache, or a slab (mapping a new one if needed).
pub(crate) fn allocate(requested: usize, policy: StackPolicy) -> io::Result<Stack> {
    let size = usable_size(requested);
    let kinds: &[bool] = match policy {
        StackPolicy::Auto => &[true, false],
        StackPolicy::Guarded => &[true],
        StackPolicy::Canary => &[false],
    };
    let hit = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            kinds.iter().find_map(|&g| local.list((size, g)).pop())
        })
        .ok()
        .flatten();
    if let Some(raw) = hit {
        return Ok(Stack(raw));
    }
    allocate_slow(size, policy, kinds)
}

#[cold]
fn allocate_slow(size: usize, policy: StackPolicy, kinds: &[bool]) -> io::Result<Stack> {
    // A thread that takes a stack on the slow path may be about to run its
    // first coroutine: make sure overflows on it can be reported.
    overflow::prepare_thread();
    let mut slabs = lock_slabs();
    for &g in kinds {
        let class = slabs.class((size, g));
        if let Some(raw) = class.cached.pop() {
            return Ok(Stack(raw));
        }
        for &slab_ptr in &class.slabs {
            // SAFETY: under the SLABS lock; the slab is alive (listed).
            let slab = unsafe { &mut *slab_ptr.as_ptr() };
            if let Some(slot) = slab.free.pop() {
                return Ok(Stack(RawStack {
                    // SAFETY: a slot top is inside (at the end of) the mapping: non-null.
                    top: unsafe { NonNull::new_unchecked(slab.top(slot) as *mut u8) },
                    slab: slab_ptr,
                }));
            }
        }
    }
    let page = page_size();
    let slot_size = size + page;
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
    // SAFETY: just created; under the lock.
    let slab = unsafe { &mut *slab_ptr.as_ptr() };
    let slot = slab.free.pop().expect("a new slab has free slots");
    let top = slab.top(slot);
    slabs.class((size, guarded)).slabs.push(slab_ptr);
    Ok(Stack(RawStack {
        // SAFETY: a slot top is inside (at the end of) the mapping: non-null.
        top: unsafe { NonNull::new_unchecked(top as *mut u8) },
        slab: slab_ptr,
    }))
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
    let page = page_size();
    let mut slab = Box::new(Slab {
        base,
        slot_size,
        slots,
        guarded,
        free: (0..slots as u32).rev().collect(),
        valgrind_ids: Vec::with_capacity(slots),
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
        overflow::register_slab(base, len, slot_size);
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
    pages * page_size()
}
