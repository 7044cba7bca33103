//! `coio::fs` on real files in a temporary directory, from coroutines and
//! from plain threads, checked against `std::fs`; and, with FIFOs (whose
//! `open` and `read` block until a writer comes), that a coroutine in a
//! file operation does not hold its worker.

use std::ffi::CString;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use coio::Runtime;
use coio::fs;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// A fresh directory under the system's temporary directory, removed on
/// drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "coio-fs-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The free functions, each checked with std.
fn exercise_paths(dir: &Path) {
    // Directories.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    assert!(std::fs::metadata(&sub).unwrap().is_dir());
    assert_eq!(
        fs::create_dir(&sub).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let deep = dir.join("a/b/c");
    fs::create_dir_all(&deep).unwrap();
    assert!(std::fs::metadata(&deep).unwrap().is_dir());

    // Whole-file reads and writes.
    let f = sub.join("hello.txt");
    fs::write(&f, "hello, world").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"hello, world");
    assert_eq!(fs::read(&f).unwrap(), b"hello, world");
    assert_eq!(fs::read_to_string(&f).unwrap(), "hello, world");
    assert_eq!(
        fs::read(dir.join("missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    std::fs::write(dir.join("bad-utf8"), [0xff, 0xfe]).unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("bad-utf8")).unwrap_err().kind(),
        ErrorKind::InvalidData
    );

    // Copy, rename, metadata.
    let copy = sub.join("copy.txt");
    assert_eq!(fs::copy(&f, &copy).unwrap(), 12);
    assert_eq!(std::fs::read(&copy).unwrap(), b"hello, world");
    let moved = dir.join("moved.txt");
    fs::rename(&copy, &moved).unwrap();
    assert!(!copy.exists());
    assert_eq!(std::fs::read(&moved).unwrap(), b"hello, world");
    let m = fs::metadata(&moved).unwrap();
    assert!(m.is_file());
    assert_eq!(m.len(), 12);
    assert!(fs::exists(&moved).unwrap());
    assert!(!fs::exists(&copy).unwrap());

    // Links.
    let hard = dir.join("hard.txt");
    fs::hard_link(&moved, &hard).unwrap();
    assert_eq!(std::fs::metadata(&moved).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(&hard).unwrap().ino(),
        std::fs::metadata(&moved).unwrap().ino()
    );
    let sym = dir.join("sym");
    std::os::unix::fs::symlink(&moved, &sym).unwrap();
    assert!(fs::symlink_metadata(&sym).unwrap().file_type().is_symlink());
    assert!(fs::metadata(&sym).unwrap().is_file());
    assert_eq!(fs::read_link(&sym).unwrap(), moved);
    assert_eq!(
        fs::canonicalize(&sym).unwrap(),
        std::fs::canonicalize(&moved).unwrap()
    );

    // Permissions.
    fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        std::fs::metadata(&moved).unwrap().permissions().mode() & 0o777,
        0o400
    );
    fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Listing.
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "bad-utf8", "hard.txt", "moved.txt", "sub", "sym"]
    );
    assert_eq!(fs::read_dir(&deep).unwrap().len(), 0);
    assert_eq!(
        fs::read_dir(dir.join("missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Removal.
    assert!(fs::remove_dir(&sub).is_err(), "sub is not empty");
    fs::remove_file(&f).unwrap();
    assert!(!f.exists());
    fs::remove_dir(&sub).unwrap();
    assert!(!sub.exists());
    fs::remove_dir_all(dir.join("a")).unwrap();
    assert!(!dir.join("a").exists());
    assert_eq!(fs::remove_file(&f).unwrap_err().kind(), ErrorKind::NotFound);
}

/// `File` and `OpenOptions`, checked with std.
fn exercise_file(dir: &Path) {
    let p = dir.join("file.bin");
    let mut f = fs::File::create(&p).unwrap();
    assert!(format!("{f:?}").starts_with("File"));
    f.write_all(b"0123456789").unwrap();
    assert_eq!(f.write(b"ab").unwrap(), 2);
    f.flush().unwrap();
    f.sync_data().unwrap();
    f.sync_all().unwrap();
    assert_eq!(f.metadata().unwrap().len(), 12);
    assert_eq!(std::fs::read(&p).unwrap(), b"0123456789ab");
    f.set_len(10).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 10);
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(f);

    // Reading and seeking.
    let mut f = fs::File::open(&p).unwrap();
    let mut four = [0u8; 4];
    f.read_exact(&mut four).unwrap();
    assert_eq!(&four, b"0123");
    assert_eq!(f.seek(SeekFrom::Current(2)).unwrap(), 6);
    let mut rest = Vec::new();
    assert_eq!(f.read_to_end(&mut rest).unwrap(), 4);
    assert_eq!(rest, b"6789");
    assert_eq!(f.read(&mut four).unwrap(), 0, "at the end");
    assert_eq!(f.seek(SeekFrom::End(-3)).unwrap(), 7);
    let mut s = String::new();
    (&f).read_to_string(&mut s).unwrap();
    assert_eq!(s, "789");
    assert_eq!(
        f.read_exact(&mut four).unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    assert!(f.write(b"x").is_err(), "opened read-only");

    // A clone shares the offset; into_std / from_std keep the file.
    let mut g = f.try_clone().unwrap();
    g.seek(SeekFrom::Start(1)).unwrap();
    let mut std_file = f.into_std();
    let mut one = [0u8; 1];
    std_file.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"1");
    let mut f = fs::File::from_std(std_file);
    f.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"2");

    // Options.
    let mut a = fs::File::options().append(true).open(&p).unwrap();
    a.write_all(b"XY").unwrap();
    (&a).write_all(b"Z").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"0123456789XYZ");
    assert_eq!(
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        fs::File::create_new(&p).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let mut n = fs::File::create_new(dir.join("new")).unwrap();
    n.write_all(b"new").unwrap();
    assert_eq!(std::fs::read(dir.join("new")).unwrap(), b"new");
    assert_eq!(
        fs::File::open(dir.join("missing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    {
        use std::os::unix::fs::OpenOptionsExt;
        let q = dir.join("mode");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&q)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
}

#[test]
fn paths_from_a_coroutine() {
    let dir = TempDir::new("paths-co");
    rt(2).block_on(|| {
        assert!(coio::is_coroutine());
        exercise_paths(dir.path())
    });
}

#[test]
fn paths_from_a_plain_thread() {
    let dir = TempDir::new("paths-thread");
    exercise_paths(dir.path());
}

#[test]
fn file_from_a_coroutine() {
    let dir = TempDir::new("file-co");
    rt(2).block_on(|| exercise_file(dir.path()));
}

#[test]
fn file_from_a_plain_thread() {
    let dir = TempDir::new("file-thread");
    exercise_file(dir.path());
}

#[test]
fn many_coroutines_write_and_read_back() {
    let dir = TempDir::new("many");
    let dir = dir.path();
    let ok: usize = rt(4).block_on(|| {
        coio::scope(|s| {
            let hs: Vec<_> = (0..200)
                .map(|i| {
                    s.spawn(move || {
                        let p = dir.join(format!("f{i}"));
                        let text = format!("file number {i}\n").repeat(i % 7 + 1);
                        fs::write(&p, &text).unwrap();
                        fs::read_to_string(&p).unwrap() == text
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&ok| ok)
                .count()
        })
    });
    assert_eq!(ok, 200);
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 200);
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// On a one-worker runtime, `read_fifo` (a coio::fs read of the FIFO
/// `path`) must let another coroutine of the worker run: that coroutine
/// tells a helper thread to write "hello" into the FIFO. Had the read held
/// the worker, the helper would give up after 10 s and write "held".
fn check_worker_not_held(name: &str, read_fifo: fn(&Path) -> String) {
    let dir = TempDir::new(name);
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let helper = {
        let fifo = fifo.clone();
        thread::spawn(move || {
            let msg: &[u8] = match go_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(()) => b"hello",
                Err(_) => b"held",
            };
            // Blocks until the reader has the FIFO open.
            std::fs::write(&fifo, msg).unwrap();
        })
    };
    let got = rt(1).block_on(|| {
        let other = coio::spawn(move || go_tx.send(()).unwrap());
        let got = read_fifo(&fifo);
        other.join().unwrap();
        got
    });
    helper.join().unwrap();
    assert_eq!(got, "hello", "the read held the worker");
}

#[test]
fn fs_read_does_not_hold_the_worker() {
    check_worker_not_held("fifo-read", |p| fs::read_to_string(p).unwrap());
}

#[test]
fn file_read_does_not_hold_the_worker() {
    check_worker_not_held("fifo-file", |p| {
        let mut s = String::new();
        fs::File::open(p).unwrap().read_to_string(&mut s).unwrap();
        s
    });
}
