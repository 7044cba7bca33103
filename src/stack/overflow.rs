//! Reporting stack overflows: the SIGSEGV/SIGBUS handler for guarded
//! stacks, the canary check for the others, and the alternate signal stacks
//! the handler runs on.
//!
//! # Protocol
//!
//! * Every guarded slab is entered in [`REGISTRY`] (start, end, slot size)
//!   while it is mapped. The handler looks the faulting address up there:
//!   if it lies in the first page of a slot, that slot's stack overflowed.
//!   The registry is a fixed array of atomics so that the handler can read
//!   it without locks; it is written only under the stacks' mutex, an entry
//!   being published by storing its start last and withdrawn by clearing the
//!   start first.
//! * The handler reads the owner from the stack's descriptor (see the parent
//!   module), writes the report with `write(2)` alone (no allocation, no
//!   locks, no formatting machinery) and aborts. Any other fault goes to the
//!   handler that was installed before ours (normally std's, which reports
//!   overflows of thread stacks), or back to the default action.
//! * A handler cannot run on the stack that just overflowed, so every thread
//!   that takes a coroutine stack gets an alternate signal stack first
//!   ([`prepare_thread`]); threads started by std usually have one already
//!   and keep it.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Desc, PAGE};

/// Capacity of the registry: slabs with hardware-guarded slots mapped at
/// once (guarded slabs, and canary slabs write-protected by userfaultfd; a
/// million default-sized stacks take about 16,000).
const REGISTRY_LEN: usize = 32768;

/// One registered slab. `start == 0` marks a free entry.
struct Entry {
    start: AtomicUsize,
    end: AtomicUsize,
    slot_size: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Entry = Entry {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    slot_size: AtomicUsize::new(0),
};

/// Slabs whose first page of every slot faults on a write, for the signal
/// handler.
static REGISTRY: [Entry; REGISTRY_LEN] = [EMPTY; REGISTRY_LEN];

/// Which registry entries are free: the ones at or above `high`, and those
/// in `free`. Only touched under this mutex (never by the signal handler).
struct Allocation {
    high: usize,
    free: Vec<usize>,
}

static ALLOCATION: std::sync::Mutex<Allocation> = std::sync::Mutex::new(Allocation {
    high: 0,
    free: Vec::new(),
});

fn allocation() -> std::sync::MutexGuard<'static, Allocation> {
    ALLOCATION.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the registry can take another slab.
pub(super) fn registry_has_room() -> bool {
    let a = allocation();
    a.high < REGISTRY_LEN || !a.free.is_empty()
}

/// Enters a slab (its mapping and slot size) so that a fault in the first
/// page of one of its slots is reported as that slot's overflow. Returns the
/// entry to give back to [`unregister_slab`], or `None` if the registry is
/// full (then the slab must not rely on faults being reported).
pub(super) fn register_slab(start: usize, len: usize, slot_size: usize) -> Option<usize> {
    install_handler();
    let mut a = allocation();
    let i = match a.free.pop() {
        Some(i) => i,
        None if a.high < REGISTRY_LEN => {
            a.high += 1;
            a.high - 1
        }
        None => return None,
    };
    let e = &REGISTRY[i];
    e.end.store(start + len, Ordering::Relaxed);
    e.slot_size.store(slot_size, Ordering::Relaxed);
    e.start.store(start, Ordering::Release);
    Some(i)
}

/// Withdraws a slab before it is unmapped.
pub(super) fn unregister_slab(entry: usize) {
    REGISTRY[entry].start.store(0, Ordering::Release);
    allocation().free.push(entry);
}

/// If `addr` is in the guard page of a registered slot, that slot's top and
/// usable size.
fn lookup_guard(addr: usize) -> Option<(usize, usize)> {
    for e in REGISTRY.iter() {
        // Seqlock-style read: an entry may be withdrawn and reused while we
        // read it (start is cleared first and set last), so read start, then
        // the rest, then start again, and skip the entry if it changed.
        let start = e.start.load(Ordering::Acquire);
        if start == 0 || addr < start {
            continue;
        }
        let end = e.end.load(Ordering::Relaxed);
        let slot_size = e.slot_size.load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        if e.start.load(Ordering::Relaxed) != start || addr >= end || slot_size == 0 {
            continue;
        }
        let offset = addr - start;
        if offset % slot_size < PAGE {
            let top = start + (offset / slot_size + 1) * slot_size;
            return Some((top, slot_size - PAGE));
        }
    }
    None
}

/// The actions that were installed for SIGSEGV and SIGBUS before ours.
struct Previous(std::cell::UnsafeCell<[libc::sigaction; 2]>);
// SAFETY: written once inside `install_handler`'s Once before the handler
// that reads it is installed; read-only afterwards.
unsafe impl Sync for Previous {}
// SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags).
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }));

/// Installs the fault handler once per process.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
            // SAFETY: first the current action is read into PREVIOUS (only
            // this Once writes it, and our handler, the only reader, is not
            // installed yet); then ours is installed. A zeroed sigaction is
            // valid; we fill in the handler, flags and an empty mask.
            unsafe {
                let previous = &mut (*PREVIOUS.0.get())[i];
                libc::sigaction(sig, std::ptr::null(), previous);
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    });
}

/// The SIGSEGV/SIGBUS handler. Async-signal-safe: atomics, plain reads of
/// our own memory, write(2), sigaction(2), raise(3) and abort(3).
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((top, size)) = lookup_guard(addr) {
        report(top, size);
    }
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: PREVIOUS is read-only once our handler is installed.
    let previous = unsafe { &(*PREVIOUS.0.get())[i] };
    let target = previous.sa_sigaction;
    if target == libc::SIG_DFL || target == libc::SIG_IGN {
        // Not ours: put the old disposition back. A fault (si_code > 0)
        // happens again when the instruction is retried on return; a signal
        // sent by a process (kill, raise) is raised again, and delivered
        // with that disposition once this handler returns.
        // SAFETY: restoring a previously valid action; raise(3) is
        // async-signal-safe; `info` is valid (see above).
        unsafe {
            libc::sigaction(sig, previous, std::ptr::null_mut());
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for exactly this call shape.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(target) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(target) };
        f(sig);
    }
}

/// Writes `coio: coroutine '<name, #id or generator@address>' overflowed its stack of N bytes`
/// on its own line to stderr and aborts. Async-signal-safe.
fn report(top: usize, size: usize) -> ! {
    let word = |w: Desc| (top - super::colour(top) - 8 * w as usize) as *const usize;
    // SAFETY: the descriptor is the top of a mapped stack of ours; the
    // owner wrote it when it took the stack.
    let (name_ptr, name_len, id) = unsafe {
        (
            word(Desc::NamePtr).read_volatile(),
            word(Desc::NameLen).read_volatile(),
            word(Desc::Id).read_volatile(),
        )
    };
    write_stderr(b"\ncoio: coroutine '");
    if name_ptr != 0 && name_len != 0 {
        // SAFETY: the owner keeps its name alive while it owns the stack.
        write_stderr(unsafe { std::slice::from_raw_parts(name_ptr as *const u8, name_len) });
    } else if id != 0 {
        write_stderr(b"#");
        write_number(id, 10);
    } else {
        // No owner recorded (a generator): name the stack by its top.
        write_stderr(b"generator@0x");
        write_number(top, 16);
    }
    write_stderr(b"' overflowed its stack of ");
    write_number(size, 10);
    write_stderr(b" bytes\n");
    // SAFETY: abort(3) is async-signal-safe and has no preconditions.
    unsafe { libc::abort() }
}

fn write_number(mut n: usize, base: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n % base];
        n /= base;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing our own buffer to fd 2.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Checks a canary stack spanning `bottom..top` (slot top) when its
/// coroutine suspends or finishes, with `sp` the current stack pointer: the
/// four words below `bottom` must still be zero, and if `sp` is on this
/// stack's slot it must be above `bottom`. (Outside the slot entirely, `sp`
/// says nothing about this stack: only the words are checked then.)
/// Reports and aborts otherwise.
#[inline]
pub(crate) fn check_canary(bottom: usize, top: usize, sp: usize) {
    let words = (bottom - 32) as *const [u64; 4];
    // SAFETY: the 32 bytes below the bottom are the top of the slot's
    // no-man's-land page: mapped, readable, ours.
    let w = unsafe { words.read_volatile() };
    let in_slot = sp < top && sp >= bottom - PAGE;
    if (w[0] | w[1] | w[2] | w[3]) != 0 || (in_slot && sp < bottom) {
        report(top, top - bottom);
    }
}

/// An alternate signal stack this module mapped for the current thread.
struct AltStack {
    /// Mapping start (a guard page, then the stack), or 0 if the thread
    /// already had one of its own.
    base: usize,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        if self.base == 0 {
            return;
        }
        // SAFETY: we mapped this alternate stack for this thread. If it is
        // still the thread's alternate stack, it is disabled before it is
        // unmapped, so that a late signal cannot land on freed memory; if
        // someone replaced it, theirs is left alone and ours is unused.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(std::ptr::null(), &mut current);
            if current.ss_sp as usize == self.base + PAGE {
                let mut disable: libc::stack_t = std::mem::zeroed();
                disable.ss_flags = libc::SS_DISABLE;
                libc::sigaltstack(&disable, std::ptr::null_mut());
            }
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}

thread_local! {
    static PREPARED: Cell<bool> = const { Cell::new(false) };
    static ALT_STACK: Cell<Option<AltStack>> = const { Cell::new(None) };
}

/// Makes sure this thread can report an overflow: the handler is installed
/// and the thread has an alternate signal stack.
pub(crate) fn prepare_thread() {
    prepare_thread_with(0);
}

/// Alternate signal stack size a worker thread needs: the dump's signal
/// handler walks a coroutine's stack on it (measured: about 18 KiB in a
/// release build; debug builds take several times that). Only the pages
/// touched are ever resident.
pub(crate) const WORKER_ALT_STACK: usize = 256 * 1024;

/// [`prepare_thread`], with an alternate stack of at least `min` bytes
/// (a smaller one the thread had, such as std's, is replaced). Called
/// first thing on worker threads, with [`WORKER_ALT_STACK`].
pub(crate) fn prepare_thread_with(min: usize) {
    if PREPARED.try_with(|p| p.replace(true)).unwrap_or(true) {
        return;
    }
    install_handler();
    // SAFETY: querying the current alternate stack into a zeroed stack_t.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a null new-stack pointer only queries.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= min {
        return;
    }
    let page = PAGE;
    // SAFETY: getauxval has no preconditions.
    let minsig = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    let size = (libc::SIGSTKSZ.max(minsig) + 16 * 1024)
        .max(min)
        .div_ceil(page)
        * page;
    let len = size + page;
    // SAFETY: a fresh anonymous mapping touches no existing memory.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return; // Overflows on this thread then die by plain SIGSEGV.
    }
    // SAFETY: the first page of our new mapping becomes its guard; the rest
    // becomes this thread's alternate signal stack.
    unsafe {
        libc::mprotect(base, page, libc::PROT_NONE);
        let stack = libc::stack_t {
            ss_sp: base.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: size,
        };
        libc::sigaltstack(&stack, std::ptr::null_mut());
    }
    let alt = AltStack {
        base: base as usize,
        len,
    };
    // If the thread is already exiting, `try_with` fails and drops `alt`
    // (with the closure), which uninstalls and unmaps it again.
    let _ = ALT_STACK.try_with(|a| a.set(Some(alt)));
}
