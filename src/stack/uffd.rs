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
//! is missing, such as the child of a `fork`) still works.
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
use std::sync::OnceLock;

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

/// The process's userfaultfd, if the kernel offers everything needed.
/// `COIO_UFFD=off` in the environment disables it (to test the plain canary
/// path).
fn uffd() -> Option<RawFd> {
    static FD: OnceLock<Option<RawFd>> = OnceLock::new();
    *FD.get_or_init(|| {
        if std::env::var_os("COIO_UFFD").is_some_and(|v| v == "off") {
            return None;
        }
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
    })
}

/// Write-protects the first page of each of the `slots` slots of
/// `slot_size` bytes of the new slab mapped at `base`. Returns whether every
/// page is protected (if not, none may be relied on).
pub(super) fn protect(base: usize, slot_size: usize, slots: usize) -> bool {
    let Some(fd) = uffd() else { return false };
    let mut register = UffdioRegister {
        range: UffdioRange {
            start: base as u64,
            len: (slot_size * slots) as u64,
        },
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_REGISTER reads and writes a uffdio_register; the range
    // is exactly our own new anonymous mapping.
    if unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, &mut register) } != 0 {
        return false;
    }
    (0..slots).all(|i| {
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
    })
}
