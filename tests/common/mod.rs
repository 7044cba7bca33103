//! Helpers shared by the runtime's test files (`mod common;`).

#![allow(dead_code)] // each test file uses its own part

use std::panic::resume_unwind;
use std::process::{Command, Output};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// The variable that marks a child process run by [`run_in_child`].
const CHILD: &str = "COIO_TEST_CHILD";

/// The role this process was given if it is a child run by
/// [`run_in_child`]; None in the test run itself.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// Re-runs the test `name` of this test binary alone in a child process
/// (so that the environment, the process's CPU time and its stderr are the
/// test's own), with [`child_role`] returning `role` there and `env` set.
pub fn run_in_child(name: &str, role: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture"]).env(CHILD, role);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("re-running the test binary")
}

/// Asserts that a child process run by [`run_in_child`] succeeded, with
/// its output if not.
pub fn assert_child_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Takes every file descriptor this process may still open (duplicates
/// of stderr), to be given back by dropping them: for tests of running
/// out (in a child process: the whole process runs out).
pub fn take_all_fds() -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut dups = Vec::new();
    loop {
        // SAFETY: dup of stderr; each kept in an OwnedFd.
        let fd = unsafe { libc::dup(2) };
        if fd < 0 {
            return dups;
        }
        // SAFETY: the descriptor dup just made, ours alone.
        dups.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    }
}

/// CPU time (user and system) used by this process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A runtime of `workers` workers without the stall monitor (tests that
/// block a worker on purpose would print its warnings).
pub fn quiet_rt(workers: usize) -> coio::Runtime {
    coio::Runtime::builder()
        .workers(workers)
        .stall_warning(None)
        .build()
        .unwrap()
}

/// Threads of this process named `coio-blocking`: the blocking pool's
/// (Linux: /proc).
pub fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "coio-blocking")
        .count()
}

/// Runs `f` on a thread and returns what it returns; fails if it does not
/// finish within `limit` (a lost wake, a hang) instead of hanging the test
/// run. A panic of `f` goes on here.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || tx.send(f()).unwrap());
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent its result or panicked"),
        },
    }
}

/// In a coroutine: a connected loopback pair `(c, s)` whose first end's
/// send buffer is full (written to until a write times out), with a
/// write timeout of 10 s left on it.
pub fn full_socket() -> (coio::net::TcpStream, coio::net::TcpStream) {
    let l = coio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = coio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let big = vec![0u8; 1 << 20];
    loop {
        match std::io::Write::write(&mut c, &big) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("{e}"),
        }
    }
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    (c, s)
}

/// Starts an example server's `accept_loop` on a fresh loopback listener in
/// `rt`; its address.
pub fn start(
    rt: &coio::Runtime,
    accept_loop: fn(&coio::net::TcpListener) -> std::io::Result<()>,
) -> std::net::SocketAddr {
    let listener = rt
        .block_on(|| coio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || accept_loop(&listener));
    addr
}

/// curl's view of a "Hello, World!" server at `addr`: three URLs on one
/// command line (`/`, `/`, `/missing`), which curl sends on one kept-alive
/// connection; one line per answer, `<body>|<status> <new connections>`.
pub fn curl_three(addr: std::net::SocketAddr) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-w",
            "|%{http_code} %{num_connects}\n",
        ])
        .arg(format!("http://{addr}/"))
        .arg(format!("http://{addr}/"))
        .arg(format!("http://{addr}/missing"))
        .output()
        .expect("curl must be installed to run this test (apt-get install curl)");
    assert!(out.status.success(), "curl failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Coroutine pairs that hand a counter back and forth on zero-capacity
/// channels as fast as they can (direct switches: their workers rarely
/// come back to the loop), spawned on `rt` from outside; returns once all
/// `2 * pairs` run. They stop when `stop` is set; `rounds` counts round
/// trips. Join the handles after setting `stop`.
#[allow(dead_code)]
pub fn ping_pong_pairs(
    rt: &coio::Runtime,
    pairs: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    rounds: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<coio::JoinHandle<()>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::*};
    // Coroutines spawned from outside wait in the runtime's injector until
    // a worker takes them: the pairs are returned once all have started.
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..pairs {
        let (tx_a, rx_a) = coio::chan::bounded::<u64>(0);
        let (tx_b, rx_b) = coio::chan::bounded::<u64>(0);
        let (d, r, s, s2) = (
            stop.clone(),
            rounds.clone(),
            started.clone(),
            started.clone(),
        );
        handles.push(rt.spawn(move || {
            s.fetch_add(1, SeqCst);
            let mut n = 0u64;
            while !d.load(Relaxed) {
                tx_a.send(n).unwrap();
                n = rx_b.recv().unwrap() + 1;
                r.fetch_add(1, Relaxed);
            }
        }));
        handles.push(rt.spawn(move || {
            s2.fetch_add(1, SeqCst);
            while let Ok(n) = rx_a.recv() {
                if tx_b.send(n).is_err() {
                    break;
                }
            }
        }));
    }
    while started.load(SeqCst) < 2 * pairs {
        thread::sleep(Duration::from_millis(1));
    }
    handles
}

/// Sends `data` on `fd` with the descriptor `pass` attached (`SCM_RIGHTS`),
/// as a peer passing a descriptor does.
pub fn send_with_fd(fd: i32, data: &[u8], pass: i32) {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; it points to `iov` and `cbuf`
    // (aligned for cmsghdr, `space` bytes), which outlive the call; the
    // control message is written within `cbuf` by the CMSG macros.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), pass);
        assert_eq!(libc::sendmsg(fd, &msg, 0), data.len() as isize);
    }
}

/// Whether this test process runs under valgrind (which preloads its
/// libraries): for tests whose loop counts would take minutes there.
pub fn under_valgrind() -> bool {
    std::env::var_os("LD_PRELOAD").is_some_and(|v| v.to_string_lossy().contains("vgpreload"))
}

/// Fails the test (the whole test process: a hang cannot be unwound)
/// with `what` if it is still running after `secs`.
pub fn watchdog(secs: u64, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("{what}: still running after {secs} s");
        std::process::exit(101);
    });
}
