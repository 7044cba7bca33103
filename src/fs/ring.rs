//! File operations through the worker's io_uring, where the runtime has
//! one (`IoDriver::Uring`): no trip to the blocking pool. Each returns
//! None, having done nothing, where the ring does not apply (a plain
//! thread, an epoll runtime), and the caller takes the pool.
//!
//! The kernel reads a file's cached pages inside the worker's
//! `io_uring_enter`, in one batch with the other coroutines' operations;
//! what must wait for the disk it hands to its own worker threads, and the
//! worker goes on meanwhile. Reads and writes use and advance the file's
//! position (offset -1), as `read(2)` and `write(2)` do, so they mix
//! freely with `seek` and with the pool's calls.
//!
//! As for sockets, each operation lends the kernel the caller's own
//! buffers, and `io::uring::run` returns only once the kernel is done with
//! them. File operations have no timeout; a cancelled coroutine's
//! operation is cancelled in the kernel (a read from the page cache has
//! usually finished by then, and its result stands).
//!
//! The composite calls (`read_exact`, `read_to_end`, `write_all`, and the
//! path functions `read`, `read_to_string`, `write`) loop over single
//! operations here, with std's results and errors.

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::io::uring;

/// Runs `sqe()` through the ring, with no deadline.
///
/// # Safety
/// As `io::uring::run`.
#[inline]
unsafe fn run(sqe: impl FnOnce() -> uring::squeue::Entry) -> Option<io::Result<usize>> {
    // SAFETY: the caller's contract.
    let r = unsafe { uring::run(sqe, || None, crate::runtime::dump::Wait::FileIo) };
    r.map(|r| r.map(|n| n as usize))
}

/// `read(fd, buf)`.
pub(super) fn read(fd: RawFd, buf: &mut [u8]) -> Option<io::Result<usize>> {
    // SAFETY: the entry writes only to `buf`, borrowed mutably for the call.
    unsafe { run(|| uring::read(fd, buf.as_mut_ptr(), buf.len())) }
}

/// `write(fd, buf)`.
pub(super) fn write(fd: RawFd, buf: &[u8]) -> Option<io::Result<usize>> {
    // SAFETY: the entry reads only `buf`, borrowed for the call.
    unsafe { run(|| uring::write(fd, buf)) }
}

/// `pread(fd, buf, offset)`. (An offset of `u64::MAX` would mean "the
/// file's position" to the kernel: refused as std's `pread` refuses a
/// negative offset.)
pub(super) fn read_at(fd: RawFd, buf: &mut [u8], offset: u64) -> Option<io::Result<usize>> {
    if offset > i64::MAX as u64 {
        return Some(Err(io::Error::from_raw_os_error(libc::EINVAL)));
    }
    // SAFETY: the entry writes only to `buf`, borrowed mutably for the call.
    unsafe { run(|| uring::read_at(fd, buf, offset)) }
}

/// `pwrite(fd, buf, offset)` (offsets as [`read_at`]).
pub(super) fn write_at(fd: RawFd, buf: &[u8], offset: u64) -> Option<io::Result<usize>> {
    if offset > i64::MAX as u64 {
        return Some(Err(io::Error::from_raw_os_error(libc::EINVAL)));
    }
    // SAFETY: the entry reads only `buf`, borrowed for the call.
    unsafe { run(|| uring::write_at(fd, buf, offset)) }
}

/// `readv(fd, bufs)`.
pub(super) fn read_vectored(fd: RawFd, bufs: &mut [IoSliceMut<'_>]) -> Option<io::Result<usize>> {
    // SAFETY: IoSliceMut is guaranteed ABI-compatible with iovec; the entry
    // writes only to `bufs`, borrowed mutably for the call.
    unsafe { run(|| uring::readv(fd, bufs.as_ptr().cast(), bufs.len())) }
}

/// `writev(fd, bufs)`.
pub(super) fn write_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
    // SAFETY: IoSlice is guaranteed ABI-compatible with iovec; the entry
    // reads only `bufs`, borrowed for the call.
    unsafe { run(|| uring::writev(fd, bufs.as_ptr().cast(), bufs.len())) }
}

/// `fsync(fd)` or `fdatasync(fd)`.
pub(super) fn sync(fd: RawFd, data_only: bool) -> Option<io::Result<()>> {
    // SAFETY: the entry points to no memory.
    unsafe { run(|| uring::fsync(fd, data_only)) }.map(|r| r.map(drop))
}

/// `ftruncate(fd, len)`. None (to take the pool) where the kernel has no
/// truncate in its ring (before Linux 6.9, as the ring's probe says), and
/// for lengths beyond `i64::MAX`, which std refuses with its own error. An
/// `EINVAL` also takes the pool, which then reports it as std does (a
/// kernel whose probe claims the operation but whose ring refuses it).
pub(super) fn set_len(fd: RawFd, len: u64) -> Option<io::Result<()>> {
    if len > i64::MAX as u64 || !uring::truncates() {
        return None;
    }
    // SAFETY: the entry points to no memory.
    match unsafe { run(|| uring::ftruncate(fd, len)) }? {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
        r => Some(r.map(drop)),
    }
}

/// Fills `buf` from `fd` (std's `read_exact`: `UnexpectedEof` at the end
/// of the file, after reading what there was).
pub(super) fn read_exact(fd: RawFd, mut buf: &mut [u8]) -> Option<io::Result<()>> {
    if !uring::available() {
        return None;
    }
    while !buf.is_empty() {
        match read(fd, buf)? {
            Ok(0) => {
                return Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                )));
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(()))
}

/// Appends the rest of `fd` to `buf` (std's `read_to_end`); returns how
/// much was read. The kernel writes straight into `buf`'s spare capacity,
/// which grows as std's does.
pub(super) fn read_to_end(fd: RawFd, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
    read_to_end_sized(fd, buf, false)
}

/// [`read_to_end`]; with `sized`, once the first read has filled the
/// vector, the rest of the file is read into room reserved for its size
/// (`statx` through the ring), as std's `fs::read` sizes its vector: one
/// read for the rest instead of a growing vector (six reads and as many
/// copies for 1 MiB). Small files, read whole by the first read, need no
/// `statx`.
fn read_to_end_sized(fd: RawFd, buf: &mut Vec<u8>, mut sized: bool) -> Option<io::Result<usize>> {
    if !uring::available() {
        return None;
    }
    let start = buf.len();
    // The capacity at which a full vector may be exactly the file: the
    // caller's, or the one sized by `statx` (std's `read_to_end` probes
    // only at the caller's).
    let mut exact = buf.capacity();
    loop {
        if sized && buf.len() == buf.capacity() && buf.len() > start {
            sized = false;
            if let Some(size) = size_hint(fd)
                && size > buf.len()
            {
                if buf.try_reserve_exact(size - buf.len()).is_err() {
                    return Some(Err(io::ErrorKind::OutOfMemory.into()));
                }
                exact = buf.capacity();
            }
        }
        if buf.len() == buf.capacity() && buf.capacity() == exact && buf.len() > start {
            // Full, perhaps exactly at the end of the file: a small probe
            // before growing the vector, as std's `read_to_end` does.
            let mut probe = [0u8; 32];
            match read(fd, &mut probe)? {
                Ok(0) => return Some(Ok(buf.len() - start)),
                Ok(n) => buf.extend_from_slice(&probe[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        if buf.len() == buf.capacity() {
            // Grown only when full, as std's (a vector with room left is
            // read into as it is), and without aborting when memory is
            // short: std's error.
            if buf
                .try_reserve((buf.capacity() - start).max(32 * 1024))
                .is_err()
            {
                return Some(Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "coio: failed to allocate read buffer",
                )));
            }
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: the entry writes at most `spare.len()` bytes into the
        // vector's spare capacity, which stays allocated (the vector is
        // borrowed mutably and not touched) for the call.
        let r = unsafe { run(|| uring::read(fd, spare.as_mut_ptr().cast(), spare.len())) }?;
        match r {
            Ok(0) => return Some(Ok(buf.len() - start)),
            Ok(n) => {
                let fresh = spare.as_ptr().cast::<u8>();
                crate::arch::valgrind_defined(fresh, n);
                // SAFETY: the kernel initialised the first `n` bytes of the
                // spare capacity.
                unsafe { buf.set_len(buf.len() + n) }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Appends the rest of `fd` to `buf` if it is UTF-8 (std's
/// `read_to_string`: `InvalidData`, and `buf` unchanged, if not).
pub(super) fn read_to_string(fd: RawFd, buf: &mut String) -> Option<io::Result<usize>> {
    if !uring::available() {
        return None;
    }
    /// Gives the string back when dropped, whatever happens meanwhile (a
    /// cancellation unwinds through the read): what was read is kept if
    /// it is UTF-8 (`valid`), else cut off, as std's does.
    struct Back<'a> {
        buf: &'a mut String,
        bytes: Vec<u8>,
        start: usize,
        valid: bool,
    }
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            let mut bytes = std::mem::take(&mut self.bytes);
            if !self.valid {
                bytes.truncate(self.start);
            }
            // SAFETY: `bytes[..start]` was a String's, and the rest was
            // found to be UTF-8 (`valid`) or is cut off.
            *self.buf = unsafe { String::from_utf8_unchecked(bytes) };
        }
    }
    let start = buf.len();
    let bytes = std::mem::take(buf).into_bytes();
    let mut back = Back {
        buf,
        bytes,
        start,
        valid: false,
    };
    let r = read_to_end(fd, &mut back.bytes)?;
    let valid = std::str::from_utf8(&back.bytes[start..]).is_ok();
    back.valid = valid;
    drop(back);
    Some(match r {
        Ok(_) if !valid => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )),
        r => r,
    })
}

/// Writes all of `buf` to `fd` (std's `write_all`: `WriteZero` if the
/// file takes nothing).
pub(super) fn write_all(fd: RawFd, mut buf: &[u8]) -> Option<io::Result<()>> {
    if !uring::available() {
        return None;
    }
    while !buf.is_empty() {
        match write(fd, buf)? {
            Ok(0) => {
                return Some(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                )));
            }
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(()))
}

/// Opens `path` with `open(2)`'s `flags` (close-on-exec added) and `mode`.
pub(super) fn open(path: &Path, flags: i32, mode: u32) -> Option<io::Result<std::fs::File>> {
    if !uring::available() {
        return None;
    }
    let path = match CString::new(path.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "file name contained an unexpected NUL byte",
            )));
        }
    };
    // SAFETY: the entry reads only `path`, borrowed for the call.
    let r = unsafe { run(|| uring::open(&path, flags | libc::O_CLOEXEC, mode)) }?;
    match r {
        // The ring's open first tries without blocking, and a FIFO opened
        // for writing with no reader then fails with ENXIO where open(2)
        // waits for a reader: the pool's open waits, as std's does. (An
        // ENXIO of a device gets the same answer from the pool.)
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) && flags & libc::O_NONBLOCK == 0 => None,
        r => Some(r.map(|fd| {
            // SAFETY: the kernel opened this descriptor for us just now.
            std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        })),
    }
}

/// The whole file at `path` (`std::fs::read`).
pub(super) fn read_path(path: &Path) -> Option<io::Result<Vec<u8>>> {
    let f = match open(path, libc::O_RDONLY, 0)? {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let mut buf = Vec::new();
    Some(read_to_end_sized(f.as_raw_fd(), &mut buf, true)?.map(|_| buf))
}

/// The size of the open file `fd` (`statx` through the ring), if the
/// kernel tells it.
fn size_hint(fd: RawFd) -> Option<usize> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the entry writes only into `st`, borrowed mutably for the
    // call, and reads the static empty path.
    let r = unsafe { run(|| uring::statx_fd(fd, libc::STATX_SIZE, st.as_mut_ptr())) }?;
    r.ok()?;
    // SAFETY: plain data, zeroed and then (maybe) filled by the kernel.
    let st = unsafe { st.assume_init() };
    (st.stx_mask & libc::STATX_SIZE != 0)
        .then(|| usize::try_from(st.stx_size).ok())
        .flatten()
}

/// The whole file at `path` as a string (`std::fs::read_to_string`).
pub(super) fn read_path_to_string(path: &Path) -> Option<io::Result<String>> {
    let f = match open(path, libc::O_RDONLY, 0)? {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let mut s = String::new();
    Some(read_to_string(f.as_raw_fd(), &mut s)?.map(|_| s))
}

/// `contents` as the whole file at `path` (`std::fs::write`).
pub(super) fn write_path(path: &Path, contents: &[u8]) -> Option<io::Result<()>> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let f = match open(path, flags, 0o666)? {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    write_all(f.as_raw_fd(), contents)
}
