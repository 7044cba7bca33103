//! Hardware guard pages for canary slabs, without splitting mappings:
//! userfaultfd write protection.
//!
//! A `PROT_NONE` guard page splits its mapping, and `vm.max_map_count`
//! bounds the number of mappings, so canary slabs keep their no-man's-land
//! pages readable and writable. On kernels that allow it (Linux 6.4 or later,
//! userfaultfd not blocked by a seccomp filter), coio write-protects those
//! pages through a userfaultfd instead: protection is kept per page in the
//! page tables, the slab stays one mapping, and a write to a protected page
//! (an overflow: every frame that reaches the page writes to it, stack probes
//! included) raises SIGBUS at the faulting instruction, which the handler of
//! [`overflow`](super::overflow) reports like a guard-page fault. Reads are
//! not trapped, so the canary check (kept for processes where the protection
//! is missing, such as the child of a `fork`, whose inherited slabs lose it)
//! still works. A forked child opens its own userfaultfd before protecting
//! new slabs: the inherited descriptor would act on the parent's memory.
//!
//! The userfaultfd is opened once per process with:
//! * `UFFD_USER_MODE_ONLY`: only faults from user code are caught (what we
//!   want, and what unprivileged processes may ask for);
//! * `UFFD_FEATURE_SIGBUS`: a fault raises SIGBUS in the faulting thread
//!   instead of waiting for a handler thread (no thread is needed);
//! * `UFFD_FEATURE_WP_UNPOPULATED`: pages never touched can be protected
//!   (they cost no memory; without it they would have to be populated).
//!
//! Any failure along the way leaves the slab as a plain canary slab.

use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock};

/// From `<linux/userfaultfd.h>` (the machine's headers may predate some).
const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;

/// `_IOWR(0xAA, nr, size)`.
const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (0xAA << 8) | nr
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

const UFFDIO_API: u64 = iowr(0x3F, size_of::<UffdioApi>());
const UFFDIO_REGISTER: u64 = iowr(0x00, size_of::<UffdioRegister>());
const UFFDIO_WRITEPROTECT: u64 = iowr(0x06, size_of::<UffdioWriteprotect>());
/// `_IOR(0xAA, 0x01, struct uffdio_range)`.
const UFFDIO_UNREGISTER: u64 =
    (2 << 30) | ((size_of::<UffdioRange>() as u64) << 16) | (0xAA << 8) | 0x01;

/// The process's userfaultfd, if the kernel offers everything needed, with
/// the id of the process that opened it. A userfaultfd acts on the address
/// space of the process that opened it, and a forked child inherits the
/// descriptor: the child must open its own, or it would write-protect pages
/// of its parent. `COIO_UFFD=off` in the environment disables all this (to
/// test the plain canary path).
fn uffd() -> Option<RawFd> {
    static FD: Mutex<Option<(RawFd, libc::pid_t)>> = Mutex::new(None);
    static DISABLED: OnceLock<bool> = OnceLock::new();
    if *DISABLED.get_or_init(|| std::env::var_os("COIO_UFFD").is_some_and(|v| v == "off")) {
        return None;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut fd = FD.lock().unwrap_or_else(|e| e.into_inner());
    match *fd {
        Some((f, owner)) if owner == pid => return Some(f),
        Some((inherited, _)) => {
            // SAFETY: our copy of the parent's descriptor; closing it only
            // drops this process's reference.
            unsafe { libc::close(inherited) };
            *fd = None;
        }
        None => {}
    }
    let opened = open()?;
    *fd = Some((opened, pid));
    Some(opened)
}

/// Opens a userfaultfd with the features we need, or `None`.
fn open() -> Option<RawFd> {
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY;
    // SAFETY: the userfaultfd syscall takes a flags word and returns a
    // new descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as RawFd;
    if fd < 0 {
        return None;
    }
    let wanted = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_WP_UNPOPULATED;
    let mut api = UffdioApi {
        api: UFFD_API,
        features: wanted,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_API reads and writes a uffdio_api, which `api` is.
    let r = unsafe { libc::ioctl(fd, UFFDIO_API as _, &mut api) };
    if r != 0 || api.features & wanted != wanted {
        // SAFETY: closing the descriptor we just opened.
        unsafe { libc::close(fd) };
        return None;
    }
    Some(fd)
}

/// Write-protects the first page of each of the `slots` slots of
/// `slot_size` bytes of the new slab mapped at `base`. Returns whether every
/// page is protected; if not, none is (the range is unregistered again).
pub(super) fn protect(base: usize, slot_size: usize, slots: usize) -> bool {
    let Some(fd) = uffd() else { return false };
    let len = slot_size * slots;
    let mut register = UffdioRegister {
        range: UffdioRange {
            start: base as u64,
            len: len as u64,
        },
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_REGISTER reads and writes a uffdio_register; the range
    // is exactly our own new anonymous mapping.
    if unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, &mut register) } != 0 {
        return false;
    }
    let all = (0..slots).all(|i| {
        let mut wp = UffdioWriteprotect {
            range: UffdioRange {
                start: (base + i * slot_size) as u64,
                len: super::PAGE as u64,
            },
            mode: UFFDIO_WRITEPROTECT_MODE_WP,
        };
        // SAFETY: UFFDIO_WRITEPROTECT reads a uffdio_writeprotect; the page
        // is slot i's no-man's-land, inside the range registered above.
        unsafe { libc::ioctl(fd, UFFDIO_WRITEPROTECT as _, &mut wp) == 0 }
    });
    if !all {
        unprotect(base, len);
    }
    all
}

/// Takes the protection off a slab mapped at `base` (`len` bytes): the range
/// is unregistered, which also drops its write protection.
pub(super) fn unprotect(base: usize, len: usize) {
    let Some(fd) = uffd() else { return };
    let mut range = UffdioRange {
        start: base as u64,
        len: len as u64,
    };
    // SAFETY: UFFDIO_UNREGISTER reads a uffdio_range; the range is our own
    // slab mapping.
    unsafe { libc::ioctl(fd, UFFDIO_UNREGISTER as _, &mut range) };
}
