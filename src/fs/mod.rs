//! Filesystem operations for coroutines: `std::fs`, through the worker's
//! io_uring where the runtime has one, else on the blocking pool.
//!
//! Each function here has the name and the signature of its `std::fs`
//! counterpart. In a coroutine, only the coroutine waits for the disk,
//! while its worker runs other coroutines; on a plain thread it is the std
//! call itself. Two ways to get there:
//!
//! * **io_uring** ([`IoDriver::Uring`](crate::IoDriver::Uring)): opening, reading,
//!   writing (at the file's position or at an offset, `FileExt`),
//!   syncing and truncating (`set_len`, Linux 6.9+) a [`File`], and the
//!   path functions [`read`],
//!   [`read_to_string`] and [`write()`], go through the worker's ring: no
//!   thread hop; a read from the page cache is done inside the worker's
//!   next `io_uring_enter`.
//! * **the blocking pool** ([`blocking`]): everything else, and everything
//!   on an epoll runtime. One pool round trip per call (so `read_to_end`,
//!   `read_to_string`, `read_exact` and `write_all` are overridden to make
//!   a single trip each, and a `BufReader`/`BufWriter` around a `File`
//!   saves trips for small reads and writes).
//!
//! One difference from std on the ring: opening a FIFO for reading
//! returns at once instead of waiting for a writer (the kernel's io_uring
//! open does not block there); the first read waits for the writer's
//! data instead. Opening a FIFO for writing waits for a reader, as std's
//! does (the ring's attempt fails with `ENXIO`, and the open is done on
//! the pool).
//!
//! Cancellation and shutdown: a call on the pool cannot be interrupted
//! (see [`blocking`]): a coroutine cancelled while it waits for one, or a
//! runtime dropped meanwhile, waits until the call returns. A read of a
//! FIFO, a pipe or a terminal that nobody writes to therefore holds a
//! cancellation or a shutdown on an epoll runtime (on a ring, the read is
//! cancelled in the kernel). Give such reads a way to end (close the
//! writer's end) before cancelling them.
//!
//! Linux offers no readiness for regular files (they are always "ready"),
//! so without a ring a thread pool is the portable way to keep file I/O
//! off the workers.
//!
//! Invariants: every call that may touch the disk goes through the ring or
//! `blocking` (paths and buffers are borrowed: both wait for the call, so
//! they outlive it); nothing here keeps state between calls beyond the
//! wrapped `std::fs` values, a file's `positional` kind (probed once) and
//! its `cursor` lock; a ring operation uses and advances the file's
//! position as the pool's call does, so the two mix. The ring's operations
//! at the position do not take the kernel's position lock (`read(2)` and
//! `write(2)` do): on a file with positions, coio's `cursor` lock, shared
//! by the handles `try_clone` makes, is held by every operation at the
//! position (ring or pool, coroutine or plain thread) and by `seek`, so
//! that no two use the same position at once; a coroutine that unwinds
//! takes it only if it is free (it cannot wait for a holder on its own
//! worker). A descriptor duplicated outside coio (a raw `dup`, a std
//! `File` of the same open file) is not covered: use one
//! `coio::fs::File` and its clones per open file.

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
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-read-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, [1, 2, 3])?;
///     assert_eq!(coio::fs::read(&path)?, [1, 2, 3]); // only this coroutine waits
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    ring_or_pool!(ring::read_path(path), std::fs::read(path))
}

/// Reads the whole file at `path` into a string (`std::fs::read_to_string`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-read-to-string-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, "name = \"coio\"\n")?;
///     let config = coio::fs::read_to_string(&path)?;
///     assert!(config.starts_with("name"));
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = path.as_ref();
    ring_or_pool!(
        ring::read_path_to_string(path),
        std::fs::read_to_string(path)
    )
}

/// Writes `contents` as the whole file at `path`, creating or truncating it
/// (`std::fs::write`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-write-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, "first")?;
///     coio::fs::write(&path, "second")?; // replaces the contents
///     assert_eq!(coio::fs::read_to_string(&path)?, "second");
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref());
    ring_or_pool!(
        ring::write_path(path, contents),
        std::fs::write(path, contents)
    )
}

/// Copies the contents and permissions of `from` to `to`; returns the
/// number of bytes copied (`std::fs::copy`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-copy-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     coio::fs::write(dir.join("a.txt"), "data")?;
///     assert_eq!(coio::fs::copy(dir.join("a.txt"), dir.join("b.txt"))?, 4);
///     assert_eq!(coio::fs::read_to_string(dir.join("b.txt"))?, "data");
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::copy(from, to))
}

/// Renames `from` to `to`, replacing `to` if it exists (`std::fs::rename`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-rename-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     // Write aside, then rename over the old file: readers see one or the other.
///     coio::fs::write(dir.join("config.tmp"), "v2")?;
///     coio::fs::rename(dir.join("config.tmp"), dir.join("config"))?;
///     assert_eq!(coio::fs::read_to_string(dir.join("config"))?, "v2");
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to))
}

/// Removes a file (`std::fs::remove_file`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-remove-file-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, "scratch")?;
///     coio::fs::remove_file(&path)?;
///     assert!(!coio::fs::exists(&path)?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_file(path))
}

/// Removes an empty directory (`std::fs::remove_dir`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-remove-dir-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir(&dir)?;
///     coio::fs::write(dir.join("f"), "x")?;
///     assert!(coio::fs::remove_dir(&dir).is_err()); // not empty
///     coio::fs::remove_file(dir.join("f"))?;
///     coio::fs::remove_dir(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir(path))
}

/// Removes a directory and everything in it (`std::fs::remove_dir_all`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-remove-dir-all-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(dir.join("a/b"))?;
///     coio::fs::write(dir.join("a/b/f"), "x")?;
///     coio::fs::remove_dir_all(&dir)?; // everything in it too
///     assert!(!coio::fs::exists(&dir)?);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir_all(path))
}

/// Creates a directory (`std::fs::create_dir`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-create-dir-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir(&dir)?;
///     assert!(coio::fs::metadata(&dir)?.is_dir());
///     let again = coio::fs::create_dir(&dir).unwrap_err();
///     assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
///     coio::fs::remove_dir(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir(path))
}

/// Creates a directory and any missing parents (`std::fs::create_dir_all`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-create-dir-all-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(dir.join("logs/2024"))?; // the parents too
///     coio::fs::create_dir_all(dir.join("logs/2024"))?; // there already: fine
///     assert!(coio::fs::metadata(dir.join("logs/2024"))?.is_dir());
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir_all(path))
}

/// The metadata of `path`, following symbolic links (`std::fs::metadata`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-metadata-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, "12345")?;
///     let meta = coio::fs::metadata(&path)?;
///     assert!(meta.is_file());
///     assert_eq!(meta.len(), 5);
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path))
}

/// The metadata of `path` itself, not following a symbolic link
/// (`std::fs::symlink_metadata`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-symlink-metadata-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     coio::fs::write(dir.join("target"), "x")?;
///     let link = dir.join("link");
///     coio::blocking(|| std::os::unix::fs::symlink("target", &link))?;
///     assert!(coio::fs::symlink_metadata(&link)?.is_symlink()); // the link itself
///     assert!(coio::fs::metadata(&link)?.is_file()); // what it points to
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::symlink_metadata(path))
}

/// The canonical, absolute form of `path`, with every link resolved
/// (`std::fs::canonicalize`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-canonicalize-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(dir.join("sub"))?;
///     let roundabout = dir.join("sub/../sub/.");
///     assert_eq!(coio::fs::canonicalize(&roundabout)?, coio::fs::canonicalize(dir.join("sub"))?);
///     assert!(coio::fs::canonicalize(&roundabout)?.is_absolute());
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::canonicalize(path))
}

/// Whether `path` exists; `Err` if that cannot be found out
/// (`std::fs::exists`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("coio-doc-exists-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     assert!(!coio::fs::exists(&path)?);
///     coio::fs::write(&path, "")?;
///     assert!(coio::fs::exists(&path)?);
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    let path = path.as_ref();
    blocking(|| std::fs::exists(path))
}

/// Makes `link` a hard link to `original` (`std::fs::hard_link`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-hard-link-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     coio::fs::write(dir.join("original"), "shared")?;
///     coio::fs::hard_link(dir.join("original"), dir.join("link"))?;
///     coio::fs::remove_file(dir.join("original"))?;
///     assert_eq!(coio::fs::read_to_string(dir.join("link"))?, "shared"); // still there
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    blocking(|| std::fs::hard_link(original, link))
}

/// What the symbolic link `path` points to (`std::fs::read_link`).
///
/// ```
/// use std::path::Path;
///
/// let dir = std::env::temp_dir().join(format!("coio-doc-read-link-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     let link = dir.join("current");
///     coio::blocking(|| std::os::unix::fs::symlink("release-7", &link))?;
///     assert_eq!(coio::fs::read_link(&link)?, Path::new("release-7"));
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::read_link(path))
}

/// Sets the permissions of `path` (`std::fs::set_permissions`).
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
///
/// let path = std::env::temp_dir().join(format!("coio-doc-set-permissions-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::write(&path, "#!/bin/sh\n")?;
///     coio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
///     assert_eq!(coio::fs::metadata(&path)?.permissions().mode() & 0o777, 0o755);
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
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
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-read-dir-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(&dir)?;
///     for name in ["a", "b"] {
///         coio::fs::write(dir.join(name), name)?;
///     }
///     let mut names = coio::fs::read_dir(&dir)?
///         .map(|e| e.map(|e| e.file_name()))
///         .collect::<std::io::Result<Vec<_>>>()?;
///     names.sort();
///     assert_eq!(names, ["a", "b"]);
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let entries = blocking(|| std::fs::read_dir(path).map(|d| d.collect::<Vec<_>>()))?;
    Ok(ReadDir(entries.into_iter()))
}

/// The entries of a directory, read by [`read_dir`].
///
/// ```
/// let dir = std::env::temp_dir().join(format!("coio-doc-readdir-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     coio::fs::create_dir_all(dir.join("sub"))?;
///     coio::fs::write(dir.join("file"), "")?;
///     let entries: coio::fs::ReadDir = coio::fs::read_dir(&dir)?;
///     assert_eq!(entries.len(), 2); // read already: its length is known
///     for entry in entries {
///         let entry = entry?;
///         println!("{:?} {}", entry.file_name(), entry.file_type()?.is_dir());
///     }
///     coio::fs::remove_dir_all(&dir)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
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
///
/// A file opened non-blocking (`O_NONBLOCK` through
/// [`OpenOptions::custom_flags`](std::os::unix::fs::OpenOptionsExt), or a
/// `std::fs::File` that was, wrapped by [`from_std`](File::from_std)):
/// a FIFO or a device read with nothing to read gives `WouldBlock`, as
/// with std. Such a file skips the ring (whose reads wait for data
/// whatever the flag says) and takes the pool, whose calls return at once.
/// The flag is read when the file is opened or wrapped: set later through
/// its descriptor, coio does not see it.
pub struct File {
    inner: std::fs::File,
    /// `O_NONBLOCK` was set when the file was opened or wrapped: no ring.
    nonblocking: bool,
    /// Whether the file has positions (a regular file or a block device):
    /// 0 not known yet, 1 yes, 2 no. It decides two things. Positional I/O
    /// (`read_at`/`write_at`) goes through the ring only on such a file:
    /// the ring's read and write at an offset do not check, as `pread(2)`
    /// does, that the file has positions, and on a pipe, a socket or a tty
    /// they would read or write the stream instead of failing with
    /// `ESPIPE` (such files take the pool, which gives std's error). And
    /// only such a file takes the `cursor` lock.
    #[cfg(target_os = "linux")]
    positional: std::sync::atomic::AtomicU8,
    /// Held, on a file with positions, by every operation at the file's
    /// position (through the ring or the pool, in a coroutine or on a
    /// plain thread) and by `seek`: the ring's reads and writes at offset
    /// -1 do not take the open file's position lock, as `read(2)` and
    /// `write(2)` do, so two of them in flight at once (two coroutines
    /// reading through one `&File`, or a `seek` or a pool read meanwhile)
    /// would use the same position. Shared by `try_clone`; a descriptor
    /// duplicated outside coio (`dup`, `std`'s `try_clone` of
    /// `into_std`'s file) does not share it.
    #[cfg(target_os = "linux")]
    cursor: std::sync::Arc<crate::sync::Mutex<()>>,
}

impl File {
    /// Opens a file for reading (`std::fs::File::open`).
    ///
    /// ```
    /// use std::io::{BufRead, BufReader};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-open-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     coio::fs::write(&path, "one\ntwo\n")?;
    ///     let file = coio::fs::File::open(&path)?;
    ///     // A buffer saves a trip per small read.
    ///     let lines = BufReader::new(file).lines().collect::<std::io::Result<Vec<_>>>()?;
    ///     assert_eq!(lines, ["one", "two"]);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Creates a file for writing, truncating it if it exists
    /// (`std::fs::File::create`).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-create-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut file = coio::fs::File::create(&path)?;
    ///     file.write_all(b"log line\n")?;
    ///     assert_eq!(coio::fs::read_to_string(&path)?, "log line\n");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates a new file for reading and writing; fails if it exists
    /// (`std::fs::File::create_new`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-create-new-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let _lock = coio::fs::File::create_new(&path)?;
    ///     let taken = coio::fs::File::create_new(&path).unwrap_err();
    ///     assert_eq!(taken.kind(), std::io::ErrorKind::AlreadyExists);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// Options to open a file with (`std::fs::File::options`).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut log = coio::fs::File::options().create(true).append(true).open(&path)?;
    ///     log.write_all(b"started\n")?;
    ///     assert_eq!(coio::fs::read_to_string(&path)?, "started\n");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-from-std-{}", std::process::id()));
    /// std::fs::write(&path, "from std")?;
    /// let std_file = std::fs::File::open(&path)?;
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut file = coio::fs::File::from_std(std_file);
    ///     let mut s = String::new();
    ///     file.read_to_string(&mut s)?; // off the worker now
    ///     assert_eq!(s, "from std");
    ///     Ok(())
    /// })?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(file: std::fs::File) -> File {
        // SAFETY: F_GETFL on a descriptor the file owns; no memory passed.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_GETFL) };
        File {
            inner: file,
            nonblocking: flags != -1 && flags & libc::O_NONBLOCK != 0,
            #[cfg(target_os = "linux")]
            positional: std::sync::atomic::AtomicU8::new(0),
            #[cfg(target_os = "linux")]
            cursor: Default::default(),
        }
    }

    /// The wrapped `std::fs::File` (whose calls block the thread).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-into-std-{}", std::process::id()));
    /// let file = coio::run(|| coio::fs::File::create(&path))?;
    /// let std_file: std::fs::File = file.into_std(); // for a plain thread
    /// assert_eq!(std_file.metadata()?.len(), 0);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }

    /// Flushes the file's data and metadata to the disk
    /// (`std::fs::File::sync_all`).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-sync-all-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut file = coio::fs::File::create(&path)?;
    ///     file.write_all(b"committed")?;
    ///     file.sync_all()?; // on the disk, metadata too, before going on
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_all(&self) -> io::Result<()> {
        ring_or_pool!(
            self.ring_fd().and_then(|fd| ring::sync(fd, false)),
            self.inner.sync_all()
        )
    }

    /// Flushes the file's data to the disk (`std::fs::File::sync_data`).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-sync-data-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut journal = coio::fs::File::create(&path)?;
    ///     journal.write_all(b"record 1\n")?;
    ///     journal.sync_data()?; // the data on the disk; metadata only as needed
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync_data(&self) -> io::Result<()> {
        ring_or_pool!(
            self.ring_fd().and_then(|fd| ring::sync(fd, true)),
            self.inner.sync_data()
        )
    }

    /// Truncates or extends the file to `size` bytes
    /// (`std::fs::File::set_len`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-set-len-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let file = coio::fs::File::create(&path)?;
    ///     file.set_len(4096)?; // extended with zeros
    ///     assert_eq!(file.metadata()?.len(), 4096);
    ///     file.set_len(10)?; // truncated
    ///     assert_eq!(coio::fs::read(&path)?, [0; 10]);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        ring_or_pool!(
            self.ring_fd().and_then(|fd| ring::set_len(fd, size)),
            self.inner.set_len(size)
        )
    }

    /// The file's metadata (`std::fs::File::metadata`).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-file-metadata-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut file = coio::fs::File::create(&path)?;
    ///     file.write_all(b"12345")?;
    ///     let meta = file.metadata()?;
    ///     assert!(meta.is_file() && meta.len() == 5);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metadata(&self) -> io::Result<Metadata> {
        blocking(|| self.inner.metadata())
    }

    /// Sets the file's permissions (`std::fs::File::set_permissions`).
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-file-set-permissions-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let file = coio::fs::File::create(&path)?;
    ///     file.set_permissions(std::fs::Permissions::from_mode(0o600))?; // owner only
    ///     assert_eq!(file.metadata()?.permissions().mode() & 0o777, 0o600);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        blocking(|| self.inner.set_permissions(perm))
    }

    /// The descriptor for the ring's operations; None for a non-blocking
    /// file, which takes the pool (see [`File`]).
    #[cfg(target_os = "linux")]
    fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        (!self.nonblocking).then(|| std::os::fd::AsRawFd::as_raw_fd(&self.inner))
    }

    /// Whether the file has positions: a regular file or a block device
    /// (an `fstat`, once per `File`; see `positional`).
    #[cfg(target_os = "linux")]
    fn positional(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.positional.load(Relaxed) {
            0 => {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&self.inner);
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                // SAFETY: fstat fills `st` for an open descriptor.
                let ok = unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0 && {
                    // SAFETY: filled by the successful fstat.
                    let m = unsafe { st.assume_init() }.st_mode & libc::S_IFMT;
                    m == libc::S_IFREG || m == libc::S_IFBLK
                };
                self.positional.store(if ok { 1 } else { 2 }, Relaxed);
                ok
            }
            v => v == 1,
        }
    }

    /// [`ring_fd`](File::ring_fd), for `pread`/`pwrite`: None also for a
    /// file without positions (see `positional`).
    #[cfg(target_os = "linux")]
    fn ring_fd_at(&self) -> Option<std::os::fd::RawFd> {
        self.ring_fd().filter(|_| self.positional())
    }

    /// The file's `cursor` lock, held by an operation at the file's
    /// position (through the ring or the pool, in a coroutine or on a
    /// plain thread: any two of them may be a ring operation and another)
    /// and by `seek`, on a file with positions; None on others. While the
    /// thread unwinds (a destructor's flush) only if it is free: a
    /// coroutine that unwinds cannot switch, so it cannot wait for a holder
    /// of its own worker, which could never run again to let go; the call
    /// then goes without it, racing for the position in that corner.
    #[cfg(target_os = "linux")]
    fn cursor_guard(&self) -> Option<crate::sync::MutexGuard<'_, ()>> {
        if !self.positional() {
            return None;
        }
        if std::thread::panicking() {
            return self.cursor.try_lock();
        }
        Some(self.cursor.lock())
    }

    /// Elsewhere: no ring, no lock (the kernel's position lock suffices).
    #[cfg(not(target_os = "linux"))]
    fn cursor_guard(&self) -> Option<()> {
        None
    }

    /// Another handle to the same open file (`std::fs::File::try_clone`).
    ///
    /// ```
    /// use std::io::{Read, Seek, SeekFrom, Write};
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-file-try-clone-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut file = coio::fs::File::options()
    ///         .read(true).write(true).create(true).truncate(true)
    ///         .open(&path)?;
    ///     let mut other = file.try_clone()?;
    ///     file.write_all(b"shared position")?;
    ///     other.seek(SeekFrom::Start(0))?; // moves `file`'s position too
    ///     let mut s = String::new();
    ///     file.read_to_string(&mut s)?;
    ///     assert_eq!(s, "shared position");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<File> {
        let f = blocking(|| self.inner.try_clone()).map(File::from_std)?;
        #[cfg(target_os = "linux")]
        let f = File {
            cursor: self.cursor.clone(),
            ..f
        };
        Ok(f)
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
            self.ring_fd_at()
                .and_then(|fd| ring::read_at(fd, buf, offset)),
            std::os::unix::fs::FileExt::read_at(&self.inner, buf, offset)
        )
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        ring_or_pool!(
            self.ring_fd_at()
                .and_then(|fd| ring::write_at(fd, buf, offset)),
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

/// One `Read` or `Write` call at the file's position: under its `cursor`
/// lock (see [`File::cursor_guard`]), through the ring or the pool; `fd`
/// names the descriptor in the ring's expression, `f` the `&std::fs::File`
/// in the pool's.
macro_rules! at_cursor {
    ($file:expr, |$fd:ident| $ring:expr, |$f:ident| $pool:expr) => {{
        let file: &File = $file;
        let _cursor = file.cursor_guard();
        #[allow(unused_mut)]
        let mut $f = &file.inner;
        ring_or_pool!(file.ring_fd().and_then(|$fd| $ring), $pool)
    }};
}

/// `Read`, `Write` and `Seek`, for `File` and `&File` (as std has them for
/// both), each call one ring operation (a loop of them for the composite
/// calls) or one trip to the pool.
macro_rules! io_impls {
    ($($t:ty),*) => {$(
        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::read(fd, buf), |f| f.read(buf))
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::read_vectored(fd, bufs), |f| f.read_vectored(bufs))
            }

            fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::read_to_end(fd, buf), |f| f.read_to_end(buf))
            }

            fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::read_to_string(fd, buf), |f| f.read_to_string(buf))
            }

            fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
                at_cursor!(self, |fd| ring::read_exact(fd, buf), |f| f.read_exact(buf))
            }
        }

        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::write(fd, buf), |f| f.write(buf))
            }

            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                at_cursor!(self, |fd| ring::write_vectored(fd, bufs), |f| f.write_vectored(bufs))
            }

            fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                at_cursor!(self, |fd| ring::write_all(fd, buf), |f| f.write_all(buf))
            }

            /// A `std::fs::File` has no buffer: nothing to do.
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Seek for $t {
            /// Moves the file's position, on the pool (or the thread calls
            /// it). Even from the start, `lseek(2)` can wait: in a process
            /// with threads it takes the open file's position lock, which a
            /// `read(2)` or `write(2)` of the same open file (a shared
            /// `&File`, a clone, the pool) holds for its whole transfer.
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                let mut f = &self.inner;
                let _cursor = self.cursor_guard();
                blocking(|| f.seek(pos))
            }
        }
    )*};
}

io_impls!(File, &File);

/// Options for opening a [`File`] (`std::fs::OpenOptions`): the same
/// builder, whose `open` goes through the worker's ring or runs on the
/// blocking pool.
///
/// ```
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("coio-doc-open-options-{}", std::process::id()));
/// coio::run(|| -> std::io::Result<()> {
///     let mut log = coio::fs::OpenOptions::new().create(true).append(true).open(&path)?;
///     log.write_all(b"one\n")?;
///     let mut again = coio::fs::OpenOptions::new().append(true).open(&path)?;
///     again.write_all(b"two\n")?;
///     assert_eq!(coio::fs::read_to_string(&path)?, "one\ntwo\n");
///     coio::fs::remove_file(&path)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
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
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-new-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     // All off: say at least how to open.
    ///     assert!(coio::fs::OpenOptions::new().open(&path).is_err());
    ///     let _file = coio::fs::OpenOptions::new().write(true).create(true).open(&path)?;
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
            raw: Some(RawOptions::default()),
        }
    }

    /// Open for reading.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-read-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     coio::fs::write(&path, "contents")?;
    ///     let mut file = coio::fs::OpenOptions::new().read(true).open(&path)?;
    ///     let mut s = String::new();
    ///     file.read_to_string(&mut s)?;
    ///     assert_eq!(s, "contents");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.std.read(read);
        if let Some(r) = &mut self.raw {
            r.read = read;
        }
        self
    }

    /// Open for writing.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-write-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     coio::fs::write(&path, "hello world")?;
    ///     // Writes over the start; no truncation asked for.
    ///     coio::fs::OpenOptions::new().write(true).open(&path)?.write_all(b"HELLO")?;
    ///     assert_eq!(coio::fs::read_to_string(&path)?, "HELLO world");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.std.write(write);
        if let Some(r) = &mut self.raw {
            r.write = write;
        }
        self
    }

    /// Open for appending (every write goes to the end).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-append-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     coio::fs::write(&path, "a\n")?;
    ///     coio::fs::OpenOptions::new().append(true).open(&path)?.write_all(b"b\n")?;
    ///     assert_eq!(coio::fs::read_to_string(&path)?, "a\nb\n");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.std.append(append);
        if let Some(r) = &mut self.raw {
            r.append = append;
        }
        self
    }

    /// Truncate the file to length 0 when opening it for writing.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-truncate-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     coio::fs::write(&path, "a long old text")?;
    ///     let mut f = coio::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
    ///     f.write_all(b"new")?;
    ///     assert_eq!(coio::fs::read_to_string(&path)?, "new");
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.std.truncate(truncate);
        if let Some(r) = &mut self.raw {
            r.truncate = truncate;
        }
        self
    }

    /// Create the file if it does not exist.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-create-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     // Opened if it exists, created if not.
    ///     coio::fs::OpenOptions::new().write(true).create(true).open(&path)?;
    ///     coio::fs::OpenOptions::new().write(true).create(true).open(&path)?;
    ///     assert!(coio::fs::exists(&path)?);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.std.create(create);
        if let Some(r) = &mut self.raw {
            r.create = create;
        }
        self
    }

    /// Create the file, failing if it exists.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-create-new-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let mut opts = coio::fs::OpenOptions::new();
    ///     opts.write(true).create_new(true);
    ///     let _first = opts.open(&path)?;
    ///     assert_eq!(opts.open(&path).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.std.create_new(create_new);
        if let Some(r) = &mut self.raw {
            r.create_new = create_new;
        }
        self
    }

    /// Opens `path` with these options (`std::fs::OpenOptions::open`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("coio-doc-options-open-{}", std::process::id()));
    /// coio::run(|| -> std::io::Result<()> {
    ///     let missing = coio::fs::OpenOptions::new().read(true).open(&path).unwrap_err();
    ///     assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    ///     let file = coio::fs::OpenOptions::new().read(true).write(true).create(true).open(&path)?;
    ///     assert_eq!(file.metadata()?.len(), 0);
    ///     coio::fs::remove_file(&path)
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
