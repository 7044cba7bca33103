//! `coio::fs` through the worker's io_uring (`IoDriver::Uring`): the same
//! results and errors as `std::fs`, on real files, without the blocking
//! pool. Each test also runs on an epoll runtime (the pool), where the
//! results must be the same.

mod common;

use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use coio::fs::{File, OpenOptions};
use coio::{IoDriver, Runtime};

fn rt(driver: IoDriver) -> Runtime {
    Runtime::builder()
        .workers(1)
        .driver(driver)
        .build()
        .unwrap()
}

/// A fresh directory for one test and driver.
fn dir(test: &str, driver: IoDriver) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "coio-uring-fs-{test}-{driver:?}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + i / 4099) as u8).wrapping_add(seed))
        .collect()
}

/// What an open gave: an error kind, or the file's access mode and append
/// flag as the kernel has them.
fn outcome(r: std::io::Result<impl AsRawFd>) -> Result<(i32, bool), ErrorKind> {
    r.map(|f| {
        // SAFETY: F_GETFL on an open descriptor.
        let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        (fl & libc::O_ACCMODE, fl & libc::O_APPEND != 0)
    })
    .map_err(|e| e.kind())
}

/// Every combination of the six open options, on a file that exists (with
/// content) and on one that does not: the same outcome as std's `open`
/// (error kind, access mode, append, whether the file exists afterwards
/// and its length).
#[test]
fn open_options_match_std() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = rt(driver);
        let d = dir("open", driver);
        for bits in 0..64u32 {
            for exists in [false, true] {
                let b = |i: u32| bits & (1 << i) != 0;
                let set = |o: &mut std::fs::OpenOptions| {
                    o.read(b(0))
                        .write(b(1))
                        .append(b(2))
                        .truncate(b(3))
                        .create(b(4))
                        .create_new(b(5));
                };
                let (ps, pc) = (
                    d.join(format!("s{bits}-{exists}")),
                    d.join(format!("c{bits}-{exists}")),
                );
                if exists {
                    std::fs::write(&ps, b"content").unwrap();
                    std::fs::write(&pc, b"content").unwrap();
                }
                let mut so = std::fs::OpenOptions::new();
                set(&mut so);
                let want = outcome(so.open(&ps));
                let got = rt.block_on(|| {
                    let mut o = OpenOptions::new();
                    o.read(b(0))
                        .write(b(1))
                        .append(b(2))
                        .truncate(b(3))
                        .create(b(4))
                        .create_new(b(5));
                    outcome(o.open(&pc))
                });
                assert_eq!(got, want, "{driver:?}: options {bits:06b}, exists {exists}");
                let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
                assert_eq!(
                    len(&pc),
                    len(&ps),
                    "{driver:?}: options {bits:06b}, exists {exists}"
                );
            }
        }
        rt.block_on(|| {
            assert_eq!(
                File::open(d.join("missing")).unwrap_err().kind(),
                ErrorKind::NotFound
            );
            assert_eq!(
                File::open("a\0b").unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
            let p = d.join("new");
            File::create_new(&p).unwrap();
            assert_eq!(
                File::create_new(&p).unwrap_err().kind(),
                ErrorKind::AlreadyExists
            );
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Reads, writes, vectored ones, the composite calls and seeks mixed on
/// one file, checked byte for byte; std's errors at the end of a file and
/// for invalid UTF-8.
#[test]
fn reads_writes_and_seeks_mix() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = rt(driver);
        let d = dir("rw", driver);
        rt.block_on(|| {
            let p = d.join("f");
            let data = pattern(3 << 20, 7);
            let mut f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .unwrap();
            f.write_all(&data).unwrap();
            f.sync_data().unwrap();
            assert_eq!(f.stream_position().unwrap(), data.len() as u64);
            f.seek(SeekFrom::Start(0)).unwrap();
            let mut head = [0u8; 1000];
            f.read_exact(&mut head).unwrap();
            assert_eq!(&head[..], &data[..1000]);
            let mut a = [0u8; 10];
            let mut b = [0u8; 20];
            let n = f
                .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
                .unwrap();
            assert_eq!(n, 30);
            assert_eq!((&a[..], &b[..]), (&data[1000..1010], &data[1010..1030]));
            let mut small = [0u8; 100];
            let n = f.read(&mut small).unwrap();
            assert_eq!(&small[..n], &data[1030..1030 + n]);
            let mut rest = b"prefix".to_vec();
            let got = f.read_to_end(&mut rest).unwrap();
            assert_eq!(got, data.len() - 1030 - n);
            assert_eq!(&rest[..6], b"prefix");
            assert_eq!(&rest[6..], &data[1030 + n..]);
            // At the end: reads return 0, read_exact fails as std's.
            assert_eq!(f.read(&mut small).unwrap(), 0);
            f.seek(SeekFrom::End(-5)).unwrap();
            let e = f.read_exact(&mut small).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
            // Vectored writes, then overwrite in the middle.
            f.seek(SeekFrom::Start(10)).unwrap();
            let n = f
                .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
                .unwrap();
            assert_eq!(n, 7);
            f.sync_all().unwrap();
            drop(f);
            let back = coio::fs::read(&p).unwrap();
            let mut want = data.clone();
            want[10..17].copy_from_slice(b"abcdefg");
            assert_eq!(back, want);

            // Append mode writes at the end, whatever the position.
            let mut f = File::options().append(true).open(&p).unwrap();
            f.write_all(b"tail").unwrap();
            drop(f);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64 + 4);

            // Path functions, and read_to_string's UTF-8 rule.
            let q = d.join("text");
            coio::fs::write(&q, "héllo\n").unwrap();
            assert_eq!(coio::fs::read_to_string(&q).unwrap(), "héllo\n");
            coio::fs::write(&q, [b'o', b'k', 0xff, 0xfe]).unwrap();
            assert_eq!(
                coio::fs::read_to_string(&q).unwrap_err().kind(),
                ErrorKind::InvalidData
            );
            let mut s = String::from("kept");
            let e = File::open(&q).unwrap().read_to_string(&mut s).unwrap_err();
            assert_eq!((e.kind(), s.as_str()), (ErrorKind::InvalidData, "kept"));
            assert_eq!(
                coio::fs::read(d.join("missing")).unwrap_err().kind(),
                ErrorKind::NotFound
            );
            // An empty file, and a file larger than one growth step.
            coio::fs::write(&q, b"").unwrap();
            assert_eq!(coio::fs::read(&q).unwrap(), b"");
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Many coroutines reading and writing their own files at once, every byte
/// checked.
#[test]
fn concurrent_files() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = Runtime::builder()
            .workers(2)
            .driver(driver)
            .build()
            .unwrap();
        let d = dir("many", driver);
        let handles: Vec<_> = (0..64u8)
            .map(|i| {
                let p = d.join(format!("f{i}"));
                rt.spawn(move || {
                    let data = pattern(10_000 + i as usize * 3001, i);
                    for _ in 0..5 {
                        coio::fs::write(&p, &data).unwrap();
                        let mut f = File::open(&p).unwrap();
                        let mut back = vec![0u8; data.len()];
                        f.read_exact(&mut back).unwrap();
                        assert_eq!(back, data);
                        assert_eq!(coio::fs::read(&p).unwrap(), data);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// On a ring, the file operations start no pool thread (checked in a
/// fresh process); the same operations on epoll do (so the check can
/// fail).
#[test]
fn files_on_a_ring_need_no_pool() {
    if common::child_role().is_some() {
        // Truncation goes through the ring from Linux 6.9 (before, the
        // pool does it).
        let truncate = kernel_at_least(6, 9);
        let want: &[u8] = if truncate { b"mor" } else { b"more" };
        let work = |d: &Path| {
            let p = d.join("f");
            coio::fs::write(&p, b"data").unwrap();
            let mut f = File::options().read(true).write(true).open(&p).unwrap();
            f.write_all(b"more").unwrap();
            f.sync_all().unwrap();
            if truncate {
                f.set_len(3).unwrap();
            }
            let mut s = String::new();
            File::open(&p).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s.as_bytes(), want);
            assert_eq!(coio::fs::read(&p).unwrap(), want);
        };
        let ring = rt(IoDriver::Uring);
        if ring.io_driver() == IoDriver::Uring {
            let d = dir("pool", IoDriver::Uring);
            ring.block_on(|| work(&d));
            std::fs::remove_dir_all(&d).unwrap();
            assert_eq!(
                common::pool_threads(),
                0,
                "a pool thread ran a ring runtime's file operation"
            );
        }
        let d = dir("pool", IoDriver::Epoll);
        rt(IoDriver::Epoll).block_on(|| work(&d));
        std::fs::remove_dir_all(&d).unwrap();
        assert!(
            common::pool_threads() > 0,
            "no pool thread on epoll: the check cannot tell"
        );
        std::process::exit(0);
    }
    let out = common::run_in_child("files_on_a_ring_need_no_pool", "pool", &[]);
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fs::read` returns what std's does at the sizes where the ring's read
/// changes its way (the first 32 KiB read, then room for the file's size
/// and a probe for its end).
#[test]
fn read_sizes_around_the_first_read() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("read_sizes", driver);
        rt(driver).block_on(|| {
            for (i, len) in [0, 1, 32767, 32768, 32769, 65536, (1 << 20) + 3]
                .into_iter()
                .enumerate()
            {
                let p = d.join(format!("f{len}"));
                std::fs::write(&p, pattern(len, i as u8)).unwrap();
                assert_eq!(
                    coio::fs::read(&p).unwrap(),
                    std::fs::read(&p).unwrap(),
                    "{len}"
                );
            }
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Whether the running kernel's version is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// `set_len` (through the ring from Linux 6.9, else the pool) extends
/// with zeros and truncates as std's does, and fails as std's does: on a
/// file opened read-only, and for a length beyond `i64::MAX`.
#[test]
fn set_len_matches_std() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("set_len", driver);
        let p = d.join("f");
        rt(driver).block_on(|| {
            coio::fs::write(&p, b"0123456789").unwrap();
            let f = File::options().read(true).write(true).open(&p).unwrap();
            f.set_len(4096).unwrap();
            let data = coio::fs::read(&p).unwrap();
            assert_eq!(data.len(), 4096);
            assert_eq!(&data[..10], b"0123456789");
            assert!(data[10..].iter().all(|&b| b == 0));
            f.set_len(4).unwrap();
            assert_eq!(coio::fs::read(&p).unwrap(), b"0123");
            let std_ro = std::fs::File::open(&p).unwrap();
            let ro = File::open(&p).unwrap();
            assert_eq!(
                ro.set_len(1).unwrap_err().kind(),
                std_ro.set_len(1).unwrap_err().kind()
            );
            assert_eq!(
                f.set_len(u64::MAX).unwrap_err().kind(),
                std_ro.set_len(u64::MAX).unwrap_err().kind()
            );
            assert_eq!(coio::fs::read(&p).unwrap(), b"0123");
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Positional reads and writes (`FileExt`): at any offset, leaving the
/// file's position alone, the same on the ring and on the pool; past the
/// end a read returns 0, and an offset beyond `i64::MAX` is `EINVAL`, as
/// std's.
#[test]
fn positional_reads_and_writes() {
    use std::os::unix::fs::FileExt;
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = rt(driver);
        let d = dir("at", driver);
        rt.block_on(|| {
            let p = d.join("f");
            let data = pattern(1 << 20, 3);
            coio::fs::write(&p, &data).unwrap();
            let mut f = File::options().read(true).write(true).open(&p).unwrap();
            f.seek(SeekFrom::Start(100)).unwrap();
            let mut buf = vec![0u8; 4096];
            for off in [0u64, 1, 4095, 500_000, (1 << 20) - 10] {
                let n = f.read_at(&mut buf, off).unwrap();
                let want = &data[off as usize..(off as usize + 4096).min(data.len())];
                assert_eq!(&buf[..n], want, "{driver:?} at {off}");
            }
            assert_eq!(f.read_at(&mut buf, 1 << 21).unwrap(), 0);
            let e = f.read_at(&mut buf, u64::MAX).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
            f.write_all_at(b"XYZ", 1000).unwrap();
            let mut three = [0u8; 3];
            f.read_exact_at(&mut three, 1000).unwrap();
            assert_eq!(&three, b"XYZ");
            // The position was left alone.
            assert_eq!(f.stream_position().unwrap(), 100);
            let mut next = [0u8; 4];
            f.read_exact(&mut next).unwrap();
            assert_eq!(&next[..], &data[100..104]);
        });
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Positional reads and writes on a pipe fail with `ESPIPE` and leave its
/// data alone, as std's `pread`/`pwrite` do. (The ring's read at an offset
/// does not check that the file has positions: on a pipe it read the
/// stream.)
#[test]
fn positional_io_on_a_pipe_is_espipe() {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileExt;
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills `fds` with two new descriptors, owned below.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the pipe's ends, owned by nothing else.
        let (r, w) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        (&w).write_all(b"abcdef").unwrap();
        let (r, w) = (File::from_std(r), File::from_std(w));
        let (read, write, rest) = rt(driver).block_on(move || {
            let mut buf = [0u8; 3];
            let read = r.read_at(&mut buf, 0).map_err(|e| e.raw_os_error());
            let write = w.write_at(b"xyz", 100).map_err(|e| e.raw_os_error());
            drop(w);
            let mut rest = Vec::new();
            (&r).read_to_end(&mut rest).unwrap();
            (read, write, rest)
        });
        assert_eq!(read, Err(Some(libc::ESPIPE)), "{driver:?}");
        assert_eq!(write, Err(Some(libc::ESPIPE)), "{driver:?}");
        assert_eq!(rest, b"abcdef", "{driver:?}");
    }
}

/// Two coroutines reading through one shared `&File` until its end split
/// it between them, every byte read once, as two threads do with std (the
/// kernel's `read` holds the file's position lock; the ring's read at the
/// position does not, and two of them in flight at once read the same
/// range: coio holds a lock of its own). The file is dropped from the page
/// cache so that reads wait for the disk and overlap.
#[test]
fn two_coroutines_reading_one_file_split_it() {
    const LEN: usize = 8 << 20;
    const CHUNK: usize = 64 << 10;
    // Every 4-byte word is its own index: a chunk tells where it started.
    let data: Vec<u8> = (0..(LEN / 4) as u32).flat_map(u32::to_le_bytes).collect();
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        // /var/tmp: on disk (the temp dir may be a tmpfs, always cached).
        let d = Path::new("/var/tmp").join(format!(
            "coio-uring-fs-shared-{driver:?}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("f");
        let f = std::fs::File::create(&p).unwrap();
        (&f).write_all(&data).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let starts = rt(driver).block_on(|| {
            let f = std::sync::Arc::new(File::open(&p).unwrap());
            // SAFETY: an advice about an open descriptor's cached pages.
            let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(r, 0);
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let f = f.clone();
                    coio::spawn(move || {
                        let mut buf = vec![0u8; CHUNK];
                        let mut starts = Vec::new();
                        loop {
                            match (&*f).read(&mut buf).unwrap() {
                                0 => return starts,
                                n => starts
                                    .push((u32::from_le_bytes(buf[..4].try_into().unwrap()), n)),
                            }
                        }
                    })
                })
                .collect();
            let mut all: Vec<_> = readers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            all.sort();
            all
        });
        std::fs::remove_dir_all(&d).unwrap();
        // Back to back, from 0 to the end, nothing twice.
        let mut at = 0;
        for (start, n) in starts {
            assert_eq!(
                start as usize * 4,
                at,
                "{driver:?}: a range read twice or skipped"
            );
            at += n;
        }
        assert_eq!(at, LEN, "{driver:?}");
    }
}

/// A FIFO opened for writing waits for its reader, as std's open does, on
/// both drivers (the ring's own open fails with ENXIO at once: coio then
/// opens on the pool); what is written arrives.
#[test]
fn opening_a_fifo_for_writing_waits_for_the_reader() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("fifo", driver);
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut got = String::new();
            std::fs::File::open(reader_path)
                .unwrap()
                .read_to_string(&mut got)
                .unwrap();
            got
        });
        rt(driver).block_on(|| {
            let t = std::time::Instant::now();
            let mut f = OpenOptions::new().write(true).open(&fifo).unwrap();
            assert!(t.elapsed() >= std::time::Duration::from_millis(50));
            f.write_all(b"through the fifo").unwrap();
        });
        assert_eq!(reader.join().unwrap(), "through the fifo");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A FIFO opened non-blocking, with a writer and nothing written yet: a
/// read gives `WouldBlock` at once, as std's does, on both drivers. (The
/// ring's read ignores `O_NONBLOCK` and waited for data.) Also for a
/// `std::fs::File` opened so and wrapped.
#[test]
fn a_non_blocking_fifo_read_does_not_wait() {
    use std::os::unix::fs::OpenOptionsExt;
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let rt = rt(driver);
        let d = dir("fifo-nonblocking", driver);
        let path = d.join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let watched = {
            let path = path.clone();
            std::thread::spawn(move || {
                rt.block_on(move || {
                    let mut f = OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&path)
                        .unwrap();
                    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    let mut buf = [0u8; 16];
                    let first = f.read(&mut buf).map_err(|e| e.kind());
                    let mut v = Vec::new();
                    let to_end = f.read_to_end(&mut v).map_err(|e| e.kind());
                    let std_file = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&path)
                        .unwrap();
                    let wrapped = File::from_std(std_file)
                        .read(&mut buf)
                        .map_err(|e| e.kind());
                    // With data, the read gets it.
                    (&writer).write_all(b"data").unwrap();
                    let n = f.read(&mut buf).unwrap();
                    tx.send((first, to_end, wrapped, buf[..n].to_vec()))
                        .unwrap();
                })
            })
        };
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{driver:?}: a non-blocking FIFO read waited"));
        watched.join().unwrap();
        assert_eq!(got.0, Err(ErrorKind::WouldBlock), "{driver:?}");
        assert_eq!(got.1, Err(ErrorKind::WouldBlock), "{driver:?}");
        assert_eq!(got.2, Err(ErrorKind::WouldBlock), "{driver:?}");
        assert_eq!(got.3, b"data", "{driver:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A coroutine that writes to a file while it unwinds (a destructor's
/// flush) while another coroutine of its worker holds the file's cursor
/// lock across ring reads (a long `read_to_end`): the write goes without
/// the lock instead of waiting for it in place (an unwinding coroutine
/// cannot switch, and the holder, on the same worker, never ran again to
/// let go: the worker hung).
#[test]
fn a_write_while_unwinding_does_not_wait_for_the_cursor_lock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("unwind", driver);
        let p = d.join("f");
        std::fs::write(&p, vec![7u8; 32 << 20]).unwrap();
        let len = common::within(std::time::Duration::from_secs(60), move || {
            rt(driver).block_on(move || {
                let file = Arc::new(File::options().read(true).write(true).open(&p).unwrap());
                let started = Arc::new(AtomicBool::new(false));
                let reader = {
                    let (file, started) = (file.clone(), started.clone());
                    coio::spawn(move || {
                        started.store(true, SeqCst);
                        let mut v = Vec::new();
                        (&*file).read_to_end(&mut v).unwrap();
                        v.len()
                    })
                };
                struct WriteOnDrop(Arc<File>);
                impl Drop for WriteOnDrop {
                    fn drop(&mut self) {
                        let _ = (&*self.0).write(b"x");
                    }
                }
                let panicker = coio::spawn(move || {
                    while !started.load(SeqCst) {
                        coio::yield_now();
                    }
                    let _write = WriteOnDrop(file);
                    panic!("a panic whose unwinding writes to the file");
                });
                assert!(panicker.join().is_err());
                reader.join().unwrap()
            })
        });
        assert!(len >= (32 << 20) - 1, "{driver:?}: {len}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// `read_to_end` into a vector with room left for the rest of the file
/// reads into that room, as std's does: the vector does not grow (it
/// doubled on the ring, before any read, when less than 8 KiB was spare).
#[test]
fn read_to_end_grows_a_vector_only_when_full() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("rte-room", driver);
        let p = d.join("small");
        std::fs::write(&p, b"0123456789").unwrap();
        let mut v = Vec::with_capacity(4 << 20);
        v.resize((4 << 20) - 100, 7u8);
        let cap = v.capacity();
        let v = rt(driver).block_on(|| {
            assert_eq!(File::open(&p).unwrap().read_to_end(&mut v).unwrap(), 10);
            v
        });
        assert_eq!(v.capacity(), cap, "{driver:?}");
        assert_eq!(&v[v.len() - 10..], b"0123456789", "{driver:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A `read_to_string` cancelled while it waits (a FIFO with a writer and
/// nothing written) leaves the caller's string as it was, as std's leaves
/// it on an error (it was emptied on the ring: taken for the read, not
/// given back by the unwinding). On the pool the read goes on to its end
/// (the writer's close), then the cancel.
#[test]
fn a_cancelled_read_to_string_leaves_the_string() {
    for driver in [IoDriver::Uring, IoDriver::Epoll] {
        let d = dir("rts-cancel", driver);
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // The writer, on a thread of its own (its open waits for the
        // reader's): open, and silent, until told.
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let w = std::fs::OpenOptions::new().write(true).open(writer_path);
            let _ = wait.recv();
            drop(w);
        });
        let left = rt(driver).block_on(|| {
            let shared = std::sync::Arc::new(coio::sync::Mutex::new(String::from("keep me")));
            let (s2, fifo2) = (shared.clone(), fifo.clone());
            let h = coio::spawn(move || {
                let mut f = File::open(&fifo2).unwrap();
                let mut g = s2.lock();
                let _ = f.read_to_string(&mut g);
            });
            coio::sleep(std::time::Duration::from_millis(100));
            h.cancel();
            // On the pool (epoll), the cancel waits for the read to end:
            // the writer's close ends it (nothing more to read).
            done.send(()).unwrap();
            let _ = h.join();
            shared.lock().clone()
        });
        writer.join().unwrap();
        assert_eq!(left, "keep me", "{driver:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
