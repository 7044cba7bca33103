//! Filesystem operations for coroutines: `std::fs`, through the worker's
//! io_uring where the runtime has one, else on the blocking pool.
//!
//! Each function here has the name and the signature of its `std::fs`
//! counterpart. In a coroutine, only the coroutine waits for the disk,
//! while its worker runs other coroutines; on a plain thread it is the std
//! call itself. Two ways to get there:
//!
//! * **io_uring** ([`IoDriver::Uring`](crate::IoDriver::Uring)): opening, reading,
//!   writing (at the file's position or at an offset, `FileExt`) and
//!   syncing a [`File`], and the path functions [`read`],
//!   [`read_to_string`] and [`write()`], go through the worker's ring: no
//!   thread hop; a read from the page cache is done inside the worker's
//!   next `io_uring_enter`.
//! * **the blocking pool** ([`blocking`]): everything else, and everything
//!   on an epoll runtime. One pool round trip per call (so `read_to_end`,
//!   `read_to_string`, `read_exact` and `write_all` are overridden to make
//!   a single trip each, and a `BufReader`/`BufWriter` around a `File`
//!   saves trips for small reads and writes).
//!
//! Linux offers no readiness for regular files (they are always "ready"),
//! so without a ring a thread pool is the portable way to keep file I/O
//! off the workers.
//!
//! Invariants: every call that may touch the disk goes through the ring or
//! `blocking` (paths and buffers are borrowed: both wait for the call, so
//! they outlive it); nothing here keeps state between calls beyond the
//! wrapped `std::fs` values; a ring operation uses and advances the file's
//! position as the pool's call does, so the two mix.

use std::fmt;
use std::fs::{DirEntry, Metadata, Permissions};
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::blocking;

#[cfg(target_os = "linux")]
mod ring;

/// `$ring` where the caller's worker has a ring (it returns None
/// elsewhere), else `$pool` on the blocking pool.
macro_rules! ring_or_pool {
    ($ring:expr, $pool:expr) => {{
        #[cfg(target_os = "linux")]
        if let Some(r) = $ring {
            return r;
        }
        blocking(|| $pool)
    }};
}

/// Reads the whole file at `path` into a vector (`std::fs::read`).
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    ring_or_pool!(ring::read_path(path), std::fs::read(path))
}

/// Reads the whole file at `path` into a string (`std::fs::read_to_string`).
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = path.as_ref();
    ring_or_pool!(
        ring::read_path_to_string(path),
        std::fs::read_to_string(path)
    )
}

/// Writes `contents` as the whole file at `path`, creating or truncating it
/// (`std::fs::write`).
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref());
    ring_or_pool!(
        ring::write_path(path, contents),
        std::fs::write(path, contents)
    )
}

/// Copies the contents and permissions of `from` to `to`; returns the
/// number of bytes copied (`std::fs::copy`).
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::copy(from, to))
}

/// Renames `from` to `to`, replacing `to` if it exists (`std::fs::rename`).
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to))
}

/// Removes a file (`std::fs::remove_file`).
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_file(path))
}

/// Removes an empty directory (`std::fs::remove_dir`).
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir(path))
}

/// Removes a directory and everything in it (`std::fs::remove_dir_all`).
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir_all(path))
}

/// Creates a directory (`std::fs::create_dir`).
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir(path))
}

/// Creates a directory and any missing parents (`std::fs::create_dir_all`).
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir_all(path))
}

/// The metadata of `path`, following symbolic links (`std::fs::metadata`).
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path))
}

/// The metadata of `path` itself, not following a symbolic link
/// (`std::fs::symlink_metadata`).
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::symlink_metadata(path))
}

/// The canonical, absolute form of `path`, with every link resolved
/// (`std::fs::canonicalize`).
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::canonicalize(path))
}

/// Whether `path` exists; `Err` if that cannot be found out
/// (`std::fs::exists`).
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    let path = path.as_ref();
    blocking(|| std::fs::exists(path))
}

/// Makes `link` a hard link to `original` (`std::fs::hard_link`).
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    blocking(|| std::fs::hard_link(original, link))
}

/// What the symbolic link `path` points to (`std::fs::read_link`).
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::read_link(path))
}

/// Sets the permissions of `path` (`std::fs::set_permissions`).
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::set_permissions(path, perm))
}

/// The entries of the directory `path` (`std::fs::read_dir`).
///
/// The directory is read to the end in one trip to the blocking pool, and
/// the entries are returned as an iterator over them, as std's: an error
/// reading one entry is an `Err` item. Note that [`DirEntry::metadata`]
/// may go to the disk and would block the worker: use
/// [`metadata`]`(entry.path())` in a coroutine (`DirEntry::file_type` and
/// `DirEntry::path` do not block on Linux).
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let entries = blocking(|| std::fs::read_dir(path).map(|d| d.collect::<Vec<_>>()))?;
    Ok(ReadDir(entries.into_iter()))
}

/// The entries of a directory, read by [`read_dir`].
#[derive(Debug)]
pub struct ReadDir(std::vec::IntoIter<io::Result<DirEntry>>);

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ReadDir {}

/// An open file whose operations go through the worker's io_uring or run
/// on the blocking pool (see the module docs): `std::fs::File` for
/// coroutines.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let path = std::env::temp_dir().join(format!("coio-doc-file-{}", std::process::id()));
/// let text = coio::run(|| -> std::io::Result<String> {
///     let mut f = coio::fs::File::options()
///         .read(true).write(true).create(true).truncate(true)
///         .open(&path)?;
///     f.write_all(b"hello")?;
///     f.seek(SeekFrom::Start(0))?;
///     let mut s = String::new();
///     f.read_to_string(&mut s)?;
///     coio::fs::remove_file(&path)?;
///     Ok(s)
/// }).unwrap();
/// assert_eq!(text, "hello");
/// ```
pub struct File {
    inner: std::fs::File,
}

impl File {
    /// Opens a file for reading (`std::fs::File::open`).
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Creates a file for writing, truncating it if it exists
    /// (`std::fs::File::create`).
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates a new file for reading and writing; fails if it exists
    /// (`std::fs::File::create_new`).
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// Options to open a file with (`std::fs::File::options`).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`.
    pub fn from_std(file: std::fs::File) -> File {
        File { inner: file }
    }

    /// The wrapped `std::fs::File` (whose calls block the thread).
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }

    /// Flushes the file's data and metadata to the disk
    /// (`std::fs::File::sync_all`).
    pub fn sync_all(&self) -> io::Result<()> {
        ring_or_pool!(ring::sync(self.fd(), false), self.inner.sync_all())
    }

    /// Flushes the file's data to the disk (`std::fs::File::sync_data`).
    pub fn sync_data(&self) -> io::Result<()> {
        ring_or_pool!(ring::sync(self.fd(), true), self.inner.sync_data())
    }

    /// Truncates or extends the file to `size` bytes
    /// (`std::fs::File::set_len`).
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        blocking(|| self.inner.set_len(size))
    }

    /// The file's metadata (`std::fs::File::metadata`).
    pub fn metadata(&self) -> io::Result<Metadata> {
        blocking(|| self.inner.metadata())
    }

    /// Sets the file's permissions (`std::fs::File::set_permissions`).
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        blocking(|| self.inner.set_permissions(perm))
    }

    #[cfg(target_os = "linux")]
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.inner)
    }

    /// Another handle to the same open file (`std::fs::File::try_clone`).
    pub fn try_clone(&self) -> io::Result<File> {
        blocking(|| self.inner.try_clone()).map(File::from_std)
    }
}

/// Positional reads and writes (`pread`/`pwrite`), which leave the file's
/// position alone: through the worker's ring where the runtime has one,
/// else one pool trip each. `read_exact_at` and `write_all_at` loop over
/// these, as std's.
///
/// ```
/// use std::os::unix::fs::FileExt;
///
/// let path = std::env::temp_dir().join(format!("coio-doc-at-{}", std::process::id()));
/// let back = coio::run(|| -> std::io::Result<Vec<u8>> {
///     let f = coio::fs::File::options()
///         .read(true).write(true).create(true).truncate(true)
///         .open(&path)?;
///     f.write_all_at(b"world", 6)?;
///     f.write_all_at(b"hello ", 0)?;
///     let mut buf = vec![0; 11];
///     f.read_exact_at(&mut buf, 0)?;
///     coio::fs::remove_file(&path)?;
///     Ok(buf)
/// }).unwrap();
/// assert_eq!(back, b"hello world");
/// ```
#[cfg(unix)]
impl std::os::unix::fs::FileExt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        ring_or_pool!(
            ring::read_at(self.fd(), buf, offset),
            std::os::unix::fs::FileExt::read_at(&self.inner, buf, offset)
        )
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        ring_or_pool!(
            ring::write_at(self.fd(), buf, offset),
            std::os::unix::fs::FileExt::write_at(&self.inner, buf, offset)
        )
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("File").field(&self.inner).finish()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl From<File> for std::fs::File {
    fn from(file: File) -> std::fs::File {
        file.into_std()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for File {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for File {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

/// `Read`, `Write` and `Seek`, for `File` and `&File` (as std has them for
/// both), each call one ring operation (a loop of them for the composite
/// calls) or one trip to the pool.
macro_rules! io_impls {
    ($($t:ty),*) => {$(
        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::read(self.fd(), buf), f.read(buf))
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::read_vectored(self.fd(), bufs), f.read_vectored(bufs))
            }

            fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::read_to_end(self.fd(), buf), f.read_to_end(buf))
            }

            fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::read_to_string(self.fd(), buf), f.read_to_string(buf))
            }

            fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
                let mut f = &self.inner;
                ring_or_pool!(ring::read_exact(self.fd(), buf), f.read_exact(buf))
            }
        }

        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::write(self.fd(), buf), f.write(buf))
            }

            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                let mut f = &self.inner;
                ring_or_pool!(ring::write_vectored(self.fd(), bufs), f.write_vectored(bufs))
            }

            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                let mut f = &self.inner;
                ring_or_pool!(ring::write_all(self.fd(), buf), f.write_all(buf))
            }

            /// A `std::fs::File` has no buffer: nothing to do.
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Seek for $t {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                let mut f = &self.inner;
                blocking(|| f.seek(pos))
            }
        }
    )*};
}

io_impls!(File, &File);

/// Options for opening a [`File`] (`std::fs::OpenOptions`): the same
/// builder, whose `open` goes through the worker's ring or runs on the
/// blocking pool.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
    /// The same options, as `open(2)` takes them; None once made from a
    /// std `OpenOptions`, whose settings cannot be read back (its `open`
    /// then runs on the pool).
    raw: Option<RawOptions>,
}

/// What `OpenOptions` was told, for `open(2)`.
#[derive(Clone, Copy, Debug, Default)]
struct RawOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: Option<u32>,
    custom_flags: i32,
}

impl RawOptions {
    /// `open(2)`'s flags and mode, as std computes them; None for the
    /// combinations std rejects (its own `open` then reports them, with
    /// its own error).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn flags(&self) -> Option<(i32, u32)> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return None,
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) if self.truncate || self.create || self.create_new => return None,
            (_, true) if self.truncate && !self.create_new => return None,
            _ => {}
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        let flags = access | creation | (self.custom_flags & !libc::O_ACCMODE);
        Some((flags, self.mode.unwrap_or(0o666)))
    }
}

impl OpenOptions {
    /// All options off (`std::fs::OpenOptions::new`).
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
            raw: Some(RawOptions::default()),
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.std.read(read);
        if let Some(r) = &mut self.raw {
            r.read = read;
        }
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.std.write(write);
        if let Some(r) = &mut self.raw {
            r.write = write;
        }
        self
    }

    /// Open for appending (every write goes to the end).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.std.append(append);
        if let Some(r) = &mut self.raw {
            r.append = append;
        }
        self
    }

    /// Truncate the file to length 0 when opening it for writing.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.std.truncate(truncate);
        if let Some(r) = &mut self.raw {
            r.truncate = truncate;
        }
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.std.create(create);
        if let Some(r) = &mut self.raw {
            r.create = create;
        }
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.std.create_new(create_new);
        if let Some(r) = &mut self.raw {
            r.create_new = create_new;
        }
        self
    }

    /// Opens `path` with these options (`std::fs::OpenOptions::open`).
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let (options, path) = (&self.std, path.as_ref());
        #[cfg(target_os = "linux")]
        if let Some((flags, mode)) = self.raw.and_then(|r| r.flags())
            && let Some(r) = ring::open(path, flags, mode)
        {
            return r.map(File::from_std);
        }
        blocking(|| options.open(path)).map(File::from_std)
    }
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

/// For options std has and this type does not spell out. (Such options
/// open on the blocking pool: std's settings cannot be read back.)
impl From<std::fs::OpenOptions> for OpenOptions {
    fn from(options: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions {
            std: options,
            raw: None,
        }
    }
}

#[cfg(unix)]
impl std::os::unix::fs::OpenOptionsExt for OpenOptions {
    fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.std.mode(mode);
        if let Some(r) = &mut self.raw {
            r.mode = Some(mode);
        }
        self
    }

    fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.std.custom_flags(flags);
        if let Some(r) = &mut self.raw {
            r.custom_flags = flags;
        }
        self
    }
}
