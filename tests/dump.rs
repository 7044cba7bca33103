//! Coroutine dumps (`coio::dump`, `Runtime::dump`): wait reasons, stacks,
//! spawn sites, a stuck worker, grouped output, the signal trigger.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::Duration;

mod common;

fn dump_text() -> String {
    let mut out = Vec::new();
    coio::dump(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[inline(never)]
fn wait_for_message(rx: coio::chan::Receiver<u32>) -> u32 {
    let r = rx.recv().unwrap_or(0);
    std::hint::black_box(r)
}

#[test]
fn smoke() {
    coio::run(|| {
        let (tx, rx) = coio::chan::bounded::<u32>(1);
        let h = coio::Builder::new()
            .name("receiver")
            .spawn(move || wait_for_message(rx))
            .unwrap();
        coio::sleep(Duration::from_millis(20));
        let d = dump_text();
        println!("{d}");
        tx.send(1).unwrap();
        h.join().unwrap();
    });
}

/// `rt`'s dump, taken from this thread once `started` is set.
fn dump_once_started(rt: &coio::Runtime, started: &AtomicBool) -> String {
    while !started.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = Vec::new();
    rt.dump(&mut out).unwrap();
    let d = String::from_utf8(out).unwrap();
    println!("{d}");
    d
}

/// Spins until told to stop, never coming back to the scheduler.
#[inline(never)]
fn spin_until(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

#[test]
fn stuck_worker_from_outside() {
    let rt = common::quiet_rt(2);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (stop.clone(), started.clone());
    let h = coio::Builder::new()
        .name("spinner")
        .spawn_on(&rt, move || {
            st2.store(true, SeqCst);
            spin_until(&s2)
        })
        .unwrap();
    let d = dump_once_started(&rt, &started);
    stop.store(true, SeqCst);
    h.join().unwrap();
    assert!(d.contains("\"spinner\" [running, worker"), "{d}");
    assert!(d.contains("dump::spin_until"), "{d}");
}

/// The header line of the coroutine named `name` in dump `d`.
fn header<'a>(d: &'a str, name: &str) -> &'a str {
    let pat = format!("\"{name}\" [");
    d.lines()
        .find(|l| l.starts_with("coroutine ") && l.contains(&pat))
        .unwrap_or_else(|| panic!("no coroutine named {name} in:\n{d}"))
}

/// Every blocking point shows its own wait reason, with a duration and a
/// worker, and the spawn site of the coroutine.
#[test]
fn wait_reasons() {
    use coio::sync::{Barrier, Condvar, Mutex, OnceLock, RwLock, Semaphore, WaitGroup};
    let rt = common::quiet_rt(1);
    rt.block_on(|| {
        let named =
            |n: &str, f: Box<dyn FnOnce() + Send>| coio::Builder::new().name(n).spawn(f).unwrap();
        let mut handles = Vec::new();
        let (tx_full, rx_full) = coio::chan::bounded::<u32>(0);
        let (tx_empty, rx_empty) = coio::chan::bounded::<u32>(1);
        let (_tx_sel, rx_sel) = coio::chan::bounded::<u32>(1);
        handles.push(named(
            "recv",
            Box::new(move || {
                let _ = rx_empty.recv();
            }),
        ));
        handles.push(named(
            "send",
            Box::new(move || {
                let _ = tx_full.send(1);
            }),
        ));
        handles.push(named(
            "select",
            Box::new(move || {
                coio::select! {
                    recv(rx_sel) -> m => { let _ = m; }
                }
            }),
        ));
        let m = Arc::new(Mutex::new(0));
        let guard = m.lock();
        let m2 = m.clone();
        handles.push(named("mutex", Box::new(move || drop(m2.lock()))));
        let rw = Arc::new(RwLock::new(0));
        let wguard = rw.write();
        let (rw2, rw3) = (rw.clone(), rw.clone());
        handles.push(named("rwread", Box::new(move || drop(rw2.read()))));
        handles.push(named("rwwrite", Box::new(move || drop(rw3.write()))));
        let cv = Arc::new((Mutex::new(false), Condvar::new()));
        let cv2 = cv.clone();
        handles.push(named(
            "condvar",
            Box::new(move || {
                let mut g = cv2.0.lock();
                while !*g {
                    g = cv2.1.wait(g);
                }
            }),
        ));
        let sem = Arc::new(Semaphore::new(0));
        let sem2 = sem.clone();
        handles.push(named("semaphore", Box::new(move || drop(sem2.acquire()))));
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let wg2 = wg.clone();
        handles.push(named("waitgroup", Box::new(move || wg2.wait())));
        let barrier = Arc::new(Barrier::new(2));
        let b2 = barrier.clone();
        handles.push(named(
            "barrier",
            Box::new(move || {
                b2.wait();
            }),
        ));
        let once = Arc::new(OnceLock::<u32>::new());
        let (o1, o2) = (once.clone(), once.clone());
        let (tx_once, rx_once) = coio::chan::bounded::<()>(0);
        handles.push(named(
            "once-init",
            Box::new(move || {
                o1.get_or_init(|| {
                    rx_once.recv().unwrap();
                    1
                });
            }),
        ));
        handles.push(named(
            "once",
            Box::new(move || {
                o2.get_or_init(|| 2);
            }),
        ));
        let sleeper = named("sleep", Box::new(|| coio::sleep(Duration::from_secs(600))));
        let parked = named("park", Box::new(coio::park));
        let parked_co = parked.coroutine().clone();
        handles.push(parked);
        let (tx_join, rx_join) = coio::chan::bounded::<()>(0);
        let joined = coio::spawn(move || {
            let _ = rx_join.recv();
        });
        handles.push(named("join", Box::new(move || drop(joined.join()))));
        let listener = coio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = coio::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let listener = Arc::new(listener);
        let l2 = listener.clone();
        handles.push(named("accept", Box::new(move || drop(l2.accept()))));
        handles.push(named(
            "read",
            Box::new(move || {
                use std::io::Read;
                let mut s = server;
                let _ = s.read(&mut [0u8; 16]);
            }),
        ));
        let (tx_pool, rx_pool) = std::sync::mpsc::channel::<()>();
        handles.push(named(
            "blocking",
            Box::new(move || {
                coio::blocking(move || {
                    let _ = rx_pool.recv();
                })
            }),
        ));
        let (tx_fut, rx_fut) = futures::channel::oneshot::channel::<()>();
        handles.push(named(
            "future",
            Box::new(move || {
                let _ = coio::future::block_on(rx_fut);
            }),
        ));
        let yielder_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ys = yielder_stop.clone();
        handles.push(named(
            "yielder",
            Box::new(move || {
                while !ys.load(std::sync::atomic::Ordering::Relaxed) {
                    coio::yield_now();
                }
            }),
        ));
        coio::sleep(Duration::from_millis(30));
        // A dump from a coroutine that waits for another one's (the other
        // tests of this file dump too) sleeps, and its worker may start the
        // fresh coroutine meanwhile: then again, with a new one.
        let mut fresh = Vec::new();
        let d = loop {
            fresh.push(named("fresh", Box::new(|| ())));
            let mut out = Vec::new();
            coio::dump(&mut out).unwrap();
            let d = String::from_utf8(out).unwrap();
            if d.lines().any(|l| l.contains("\"fresh\" [")) || fresh.len() == 100 {
                break d;
            }
        };
        println!("{d}");
        for (name, reason) in [
            ("recv", "chan receive"),
            ("send", "chan send"),
            ("select", "select"),
            ("mutex", "mutex lock"),
            ("rwread", "rwlock read"),
            ("rwwrite", "rwlock write"),
            ("condvar", "condvar wait"),
            ("semaphore", "semaphore"),
            ("waitgroup", "wait group"),
            ("barrier", "barrier"),
            ("once", "once"),
            ("sleep", "sleep"),
            ("park", "park"),
            ("join", "join"),
            ("accept", "socket accept"),
            ("read", "socket read"),
            ("blocking", "blocking pool"),
            ("future", "future"),
        ] {
            let h = header(&d, name);
            assert!(
                h.contains(&format!("[{reason}, ")) && h.contains(" ms, worker 0]:"),
                "{name}: {h}"
            );
        }
        assert!(
            header(&d, "yielder").contains("[runnable, worker 0]"),
            "{d}"
        );
        assert!(
            header(&d, "fresh").contains("[not started, worker 0]"),
            "{d}"
        );
        assert!(d.contains("[running, worker 0]"), "{d}");
        // Frames and spawn sites.
        // The channel's own frame, or the public method it was inlined
        // into (fat LTO inlines `Chan::recv` into `Receiver::recv`).
        assert!(
            d.contains("coio::chan::channel::Chan<T>::recv")
                || d.contains("coio::chan::Receiver<T>::recv"),
            "{d}"
        );
        assert!(
            d.contains("created by dump::wait_reasons::{{closure}} at tests/dump.rs:"),
            "{d}"
        );
        // Let everyone go.
        tx_empty.send(1).unwrap();
        drop(rx_full);
        drop(guard);
        drop(wguard);
        *cv.0.lock() = true;
        cv.1.notify_all();
        sem.add_permits(1);
        wg.done();
        barrier.wait();
        tx_once.send(()).unwrap();
        parked_co.unpark();
        drop(tx_join);
        drop(client);
        drop(coio::net::TcpStream::connect(addr));
        tx_pool.send(()).unwrap();
        tx_fut.send(()).unwrap();
        yielder_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(_tx_sel);
        for h in handles {
            h.join().unwrap();
        }
        sleeper.cancel();
        assert!(sleeper.join().unwrap_err().is::<coio::Cancelled>());
        for f in fresh {
            f.join().unwrap();
        }
    });
}

/// Many coroutines parked at the same place are shown once, with their
/// count, in a grouped dump.
#[test]
fn grouped() {
    coio::run(|| {
        let (tx, rx) = coio::chan::bounded::<()>(0);
        let handles: Vec<_> = (0..1000)
            .map(|_| {
                let rx = rx.clone();
                coio::spawn(move || wait_for_unit(&rx))
            })
            .collect();
        let d = dump_until(coio::dump_grouped, |d| {
            d.contains("\n1000 coroutine(s) [chan receive, up to ")
        });
        println!("{d}");
        assert!(
            d.contains("\n1000 coroutine(s) [chan receive, up to "),
            "{d}"
        );
        assert!(d.contains("dump::wait_for_unit"), "{d}");
        assert_eq!(d.matches("dump::wait_for_unit").count(), 1, "{d}");
        drop(tx);
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Stacks that read the same are one group, even where their return
/// addresses differ: here two calls on one line (the compiler keeps them
/// apart, at least in a debug build), each made by half the coroutines.
#[test]
fn grouped_by_what_the_stacks_say() {
    coio::run(|| {
        let (tx, rx) = coio::chan::bounded::<()>(0);
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let rx = rx.clone();
                coio::spawn(move || wait_on_one_line(&rx, i % 2 == 0))
            })
            .collect();
        let d = dump_until(coio::dump, |d| d.matches("[chan receive, ").count() == 10);
        assert_eq!(d.matches("[chan receive, ").count(), 10, "{d}");
        let mut out = Vec::new();
        coio::dump_grouped(&mut out).unwrap();
        let g = String::from_utf8(out).unwrap();
        assert!(g.contains("\n10 coroutine(s) [chan receive, up to "), "{g}");
        assert_eq!(g.matches("dump::wait_on_one_line").count(), 1, "{g}");
        drop(tx);
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[inline(never)]
#[rustfmt::skip]
#[allow(clippy::if_same_then_else)] // two calls on one line: the point
fn wait_on_one_line(rx: &coio::chan::Receiver<()>, a: bool) {
    let r = if a { std::hint::black_box(rx).recv() } else { std::hint::black_box(rx).recv() };
    std::hint::black_box(&r);
}

/// Dumps with `dump` every 10 ms until a dump satisfies `ready` (a
/// loaded machine may take a while to start the coroutines that a test
/// waits for), 20 s at most; returns the last dump.
fn dump_until(
    dump: fn(&mut dyn std::io::Write) -> std::io::Result<()>,
    ready: impl Fn(&str) -> bool,
) -> String {
    let start = std::time::Instant::now();
    loop {
        coio::sleep(Duration::from_millis(10));
        let mut out = Vec::new();
        dump(&mut out).unwrap();
        let d = String::from_utf8(out).unwrap();
        if ready(&d) || start.elapsed() > Duration::from_secs(20) {
            return d;
        }
    }
}

#[inline(never)]
fn wait_for_unit(rx: &coio::chan::Receiver<()>) {
    // Not a tail call: this frame stays on the stack in release builds.
    let r = rx.recv();
    std::hint::black_box(&r);
}

/// Dumps taken over and over, from a coroutine and from a plain thread,
/// while coroutines on both workers hand messages to each other as fast
/// as they can (switching directly, rarely coming back to the loop): every
/// dump completes and lists them, and no message or wake is lost.
#[test]
fn dumps_under_load() {
    common::within(Duration::from_secs(60), || {
        let rt = Arc::new(common::quiet_rt(2));
        let done = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let pairs = common::ping_pong_pairs(&rt, 8, &done, &rounds);
        let rt2 = rt.clone();
        let from_thread = std::thread::spawn(move || {
            let mut sizes = Vec::new();
            for _ in 0..20 {
                let mut out = Vec::new();
                rt2.dump(&mut out).unwrap();
                let d = String::from_utf8(out).unwrap();
                assert!(!d.contains("did not answer"), "{d}");
                sizes.push(d.matches("\ncoroutine ").count());
            }
            sizes
        });
        let from_coroutine = rt.spawn(|| {
            let mut sizes = Vec::new();
            for _ in 0..20 {
                let mut out = Vec::new();
                coio::dump(&mut out).unwrap();
                let d = String::from_utf8(out).unwrap();
                assert!(!d.contains("did not answer"), "{d}");
                sizes.push(d.matches("\ncoroutine ").count());
            }
            sizes
        });
        for n in from_thread.join().unwrap() {
            assert!(n >= 16, "a dump listed {n} coroutines of the 16 that run");
        }
        let t = std::time::Instant::now();
        while !from_coroutine.is_finished() {
            if t.elapsed() > Duration::from_secs(10) {
                let mut out = Vec::new();
                rt.dump(&mut out).unwrap();
                panic!(
                    "the dumping coroutine did not finish:\n{}",
                    String::from_utf8(out).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for n in from_coroutine.join().unwrap() {
            assert!(n >= 17, "a dump listed {n} coroutines of the 17 that run");
        }
        let before = rounds.load(Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert!(rounds.load(Relaxed) > before, "the ping-pong stopped");
        done.store(true, Relaxed);
        for p in pairs {
            p.join().unwrap();
        }
    });
}

/// A coroutine stuck inside a generator it resumed (a stack of its own) is
/// shown as running; its worker's other coroutines are listed all the same.
#[test]
fn stuck_in_a_generator() {
    let rt = common::quiet_rt(1);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (stop.clone(), started.clone());
    let parked = rt.spawn(coio::park);
    let parked_co = parked.coroutine();
    let h = coio::Builder::new()
        .name("generator-spinner")
        .spawn_on(&rt, move || {
            let mut g = coio::Generator::<(), (), ()>::new(move |_, ()| {
                st2.store(true, SeqCst);
                spin_until(&s2)
            });
            g.resume(());
        })
        .unwrap();
    let d = dump_once_started(&rt, &started);
    stop.store(true, SeqCst);
    h.join().unwrap();
    parked_co.unpark();
    parked.join().unwrap();
    assert!(
        d.contains("\"generator-spinner\" [running, worker 0]"),
        "{d}"
    );
    assert!(d.contains("not on its own stack"), "{d}");
    assert!(d.contains("[park, "), "{d}");
}

/// `Runtime::dump` of one runtime from a coroutine of another.
#[test]
fn dump_another_runtime_from_a_coroutine() {
    let other = Arc::new(common::quiet_rt(1));
    let parked = other.spawn(coio::park);
    let co = parked.coroutine();
    let o2 = other.clone();
    let d = coio::run(move || {
        coio::sleep(Duration::from_millis(10));
        let mut out = Vec::new();
        o2.dump(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    });
    co.unpark();
    parked.join().unwrap();
    assert!(d.contains("[park, "), "{d}");
    assert!(!d.contains("[running"), "{d}");
}

/// `COIO_DUMP_SIGNAL=QUIT`: a SIGQUIT writes a dump to stderr and the
/// process goes on.
#[test]
fn dump_on_signal() {
    if common::child_role().is_some() {
        let rt = coio::Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let (tx, rx) = coio::chan::bounded::<()>(0);
            let h = coio::Builder::new()
                .name("signal-waiter")
                .spawn(move || wait_for_unit(&rx))
                .unwrap();
            dump_until(coio::dump, |d| {
                d.contains("\"signal-waiter\" [chan receive, ")
            });
            // The dump goes to stderr from the signal relay's thread, on
            // its own time (symbolizing a debug build's frames the first
            // time takes a while on a loaded machine): stderr goes to a
            // file meanwhile, watched until the dump is in it, so that the
            // waiter is let go only after it has been dumped.
            let path =
                std::env::temp_dir().join(format!("coio-dump-signal-{}", std::process::id()));
            let file = std::fs::File::create(&path).unwrap();
            // SAFETY: plain descriptor calls on descriptors we own (2 is
            // saved and put back below).
            let saved = unsafe { libc::dup(2) };
            assert!(saved >= 0);
            // SAFETY: as above.
            assert!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&file), 2) } == 2);
            // SAFETY: raising a signal whose handler coio installed.
            unsafe { libc::raise(libc::SIGQUIT) };
            let start = std::time::Instant::now();
            let text = loop {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("dump::wait_for_unit") || start.elapsed() > Duration::from_secs(30)
                {
                    break text;
                }
                coio::sleep(Duration::from_millis(10));
            };
            // SAFETY: as above.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
            std::fs::remove_file(&path).unwrap();
            eprint!("{text}");
            drop(tx);
            h.join().unwrap();
        });
        println!("still alive");
        return;
    }
    let out = common::run_in_child("dump_on_signal", "signal", &[("COIO_DUMP_SIGNAL", "QUIT")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("still alive"), "{stdout}");
    assert!(
        stderr.contains("\"signal-waiter\" [chan receive, "),
        "{stderr}"
    );
    assert!(stderr.contains("dump::wait_for_unit"), "{stderr}");
}

/// A bad `COIO_DUMP_SIGNAL` fails the runtime's build with a message.
#[test]
fn bad_dump_signal() {
    if common::child_role().is_some() {
        let Err(e) = coio::Runtime::builder().build() else {
            panic!("built with a bad COIO_DUMP_SIGNAL");
        };
        println!("{e}");
        return;
    }
    let out = common::run_in_child("bad_dump_signal", "bad", &[("COIO_DUMP_SIGNAL", "NOPE")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("COIO_DUMP_SIGNAL must be"), "{stdout}");
}

/// The socket waits the other test does not make: a write into a full
/// send buffer, and a connect to a listener whose accept queue is full
/// (Linux then drops the SYN, and the connect waits for its retry).
#[test]
fn socket_write_and_connect_reasons() {
    use std::io::Write;
    let rt = common::quiet_rt(1);
    // A listener with a backlog of 0 that never accepts (a plain socket,
    // to choose the backlog), its queue filled by two connections.
    // SAFETY: plain socket calls on a descriptor we own and close below.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(libc::bind(fd, (&raw const sa).cast(), len), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut l = len;
        assert_eq!(libc::getsockname(fd, (&raw mut got).cast(), &mut l), 0);
        let port = u16::from_be(got.sin_port);
        (fd, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let d = rt.block_on(move || {
        let mut fill = Vec::new();
        for _ in 0..2 {
            if let Ok(s) = coio::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            {
                fill.push(s);
            }
        }
        let connecting = coio::Builder::new()
            .name("connect")
            .spawn(move || coio::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
            .unwrap();
        let listener = coio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = listener.local_addr().unwrap();
        let client = coio::net::TcpStream::connect(to).unwrap();
        let (server, _) = listener.accept().unwrap();
        let writer = coio::Builder::new()
            .name("write")
            .spawn(move || {
                let chunk = vec![0u8; 1 << 20];
                let mut s = client;
                while s.write_all(&chunk).is_ok() {}
            })
            .unwrap();
        coio::sleep(Duration::from_millis(50));
        let mut out = Vec::new();
        coio::dump(&mut out).unwrap();
        drop(server);
        writer.join().unwrap();
        connecting.cancel();
        let _ = connecting.join();
        drop(fill);
        String::from_utf8(out).unwrap()
    });
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd) };
    assert!(header(&d, "write").contains("[socket write, "), "{d}");
    assert!(header(&d, "connect").contains("[socket connect, "), "{d}");
}

/// A long name is cut at a character's boundary (it was cut at 64 bytes,
/// in the middle of a two-byte character).
#[test]
fn a_long_name_is_cut_between_characters() {
    let name = format!("a{}", "é".repeat(40));
    let d = coio::run(move || {
        let (tx, rx) = coio::chan::bounded::<u32>(1);
        let h = coio::Builder::new()
            .name(name)
            .spawn(move || wait_for_message(rx))
            .unwrap();
        coio::sleep(Duration::from_millis(20));
        let d = dump_text();
        tx.send(1).unwrap();
        h.join().unwrap();
        d
    });
    let cut = format!("\"a{}\" [", "é".repeat(31));
    assert!(d.contains(&cut), "{d}");
}

/// Coroutines not started yet move between workers (stolen) while a dump
/// collects the workers' answers one after another: each is listed once
/// (some were listed twice, or four times, with the header's count
/// including them).
#[test]
fn each_coroutine_is_listed_once_while_they_are_stolen() {
    let rt = std::sync::Arc::new(coio::Runtime::builder().workers(2).build().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (r, s) = (rt.clone(), stop.clone());
    let spawner = std::thread::spawn(move || {
        r.block_on(move || {
            while !s.load(SeqCst) {
                let hs: Vec<_> = (0..200).map(|_| coio::spawn(coio::yield_now)).collect();
                for h in hs {
                    h.join().unwrap();
                }
            }
        })
    });
    let t = std::time::Instant::now();
    let mut dumps = 0;
    let mut twice = Vec::new();
    while t.elapsed() < Duration::from_secs(2) {
        let mut out = Vec::new();
        rt.dump(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut ids: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("coroutine "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != n {
            twice.push(text);
        }
        dumps += 1;
    }
    stop.store(true, SeqCst);
    spawner.join().unwrap();
    assert!(dumps > 10);
    assert!(
        twice.is_empty(),
        "{} of {dumps} dumps listed a coroutine twice, e.g.:\n{}",
        twice.len(),
        twice[0]
    );
}

/// A thread that dumps `rt` in a loop until `stop`.
fn dumping_thread(rt: &Arc<coio::Runtime>, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (rt, stop) = (rt.clone(), stop.clone());
    std::thread::spawn(move || {
        while !stop.load(SeqCst) {
            rt.dump(&mut std::io::sink()).unwrap();
        }
    })
}

/// A coroutine whose dump waits for another one's (a thread dumping in a
/// loop) lets its worker go on meanwhile: a ticker on the same worker keeps
/// ticking (it blocked the worker, for seconds at a time). And it gets its
/// turn: 20 dumps of it beside the thread take well under a second (a
/// coroutine that polled the lock lost it to the thread for seconds).
#[test]
fn a_coroutine_waiting_to_dump_does_not_hold_its_worker() {
    use std::time::Instant;
    let rt = Arc::new(common::quiet_rt(1));
    let stop = Arc::new(AtomicBool::new(false));
    let dumper = dumping_thread(&rt, &stop);
    let (ticks, dumping) = rt.block_on(|| {
        let ticker = coio::spawn(|| {
            let t = Instant::now();
            let mut n = 0u32;
            while t.elapsed() < Duration::from_millis(1000) {
                coio::sleep(Duration::from_millis(1));
                n += 1;
            }
            n
        });
        let dumps = coio::spawn(move || {
            // The first dump loads the symbols.
            coio::dump(&mut std::io::sink()).unwrap();
            let t = Instant::now();
            for _ in 0..20 {
                coio::dump(&mut std::io::sink()).unwrap();
            }
            t.elapsed()
        });
        let dumping = dumps.join().unwrap();
        (ticker.join().unwrap(), dumping)
    });
    stop.store(true, SeqCst);
    dumper.join().unwrap();
    // About 900 expected; generous bounds for a loaded machine.
    assert!(ticks >= 100, "the ticker ticked {ticks} times in 1 s");
    assert!(
        dumping < Duration::from_secs(5),
        "20 dumps took {dumping:?} beside a dumping thread"
    );
}

/// A dump made by a coroutine as it unwinds (from a destructor during a
/// panic, where it cannot switch and so blocks its worker), beside another
/// coroutine of the worker and a thread that dump in loops: every dump
/// ends. (With coio's own `Mutex` for the dump lock, the lock was handed to
/// the other coroutine, suspended on the blocked worker: a deadlock.)
#[test]
fn a_dump_while_unwinding_beside_other_dumps_ends() {
    common::within(Duration::from_secs(60), || {
        struct DumpOnDrop;
        impl Drop for DumpOnDrop {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    coio::dump(&mut std::io::sink()).unwrap();
                }
            }
        }
        let rt = Arc::new(common::quiet_rt(1));
        let stop = Arc::new(AtomicBool::new(false));
        let dumper = dumping_thread(&rt, &stop);
        rt.block_on(|| {
            let other = {
                let stop = stop.clone();
                coio::spawn(move || {
                    while !stop.load(SeqCst) {
                        coio::dump(&mut std::io::sink()).unwrap();
                    }
                })
            };
            let unwinding = coio::spawn(|| {
                for _ in 0..3 {
                    let r = std::panic::catch_unwind(|| {
                        let _d = DumpOnDrop;
                        panic!("unwinding with a dump");
                    });
                    assert!(r.is_err());
                    coio::yield_now();
                }
            });
            unwinding.join().unwrap();
            stop.store(true, SeqCst);
            other.join().unwrap();
        });
        dumper.join().unwrap();
    });
}

/// Coroutines spawned from outside and not taken by a worker yet (its only
/// worker is stuck) cannot be listed, but the dump says how many it leaves
/// out (it said nothing, while the metrics counted them live).
#[test]
fn a_dump_counts_the_coroutines_queued_from_outside() {
    common::within(Duration::from_secs(30), || {
        let rt = coio::Runtime::builder()
            .workers(1)
            .stall_warning(None)
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Stuck until the dump is written (which may first wait for other
        // tests' dumps: a stuck spell of a fixed length ran out once).
        let dumped = Arc::new(AtomicBool::new(false));
        let done = dumped.clone();
        let stuck = rt.spawn(move || {
            tx.send(()).unwrap();
            while !done.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        rx.recv().unwrap();
        let queued: Vec<_> = (0..5).map(|i| rt.spawn(move || i)).collect();
        let mut out = Vec::new();
        rt.dump(&mut out).unwrap();
        dumped.store(true, SeqCst);
        let dump = String::from_utf8(out).unwrap();
        stuck.join().unwrap();
        for h in queued {
            h.join().unwrap();
        }
        assert!(
            dump.contains("coio: 5 coroutine(s) spawned from outside the runtime"),
            "{dump}"
        );
    });
}

/// A stall while a thread, or a coroutine, dumps in a loop is still warned
/// about with the stalled coroutine's name and stack: the monitor waits for
/// the dump in progress (the dumpers let it go first) instead of warning
/// without them (it did, whenever a dump was being made; found by a
/// review, and the coroutine's case by a second one).
#[test]
fn a_stall_during_dumps_is_named() {
    if let Some(role) = common::child_role() {
        // A threshold well above a dump's time once the symbols are
        // loaded (milliseconds, in a debug build too), so that the
        // dumper's own turns on its worker are not stalls.
        let rt = Arc::new(
            coio::Runtime::builder()
                .workers(2)
                .stall_warning(Some(Duration::from_millis(200)))
                .build()
                .unwrap(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let dumps = Arc::new(AtomicUsize::new(0));
        let dumper = if role == "thread" {
            let (rt, stop, dumps) = (rt.clone(), stop.clone(), dumps.clone());
            Some(std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    rt.dump(&mut std::io::sink()).unwrap();
                    dumps.fetch_add(1, SeqCst);
                }
            }))
        } else {
            let (stop, dumps) = (stop.clone(), dumps.clone());
            // Detached: the runtime's drop waits for it.
            drop(
                coio::Builder::new()
                    .name("dumper")
                    .spawn_on(&rt, move || {
                        while !stop.load(SeqCst) {
                            coio::dump(&mut std::io::sink()).unwrap();
                            dumps.fetch_add(1, SeqCst);
                            coio::yield_now();
                        }
                    })
                    .unwrap(),
            );
            None
        };
        // The symbols are loaded by the first dumps (slow in a debug
        // build): the stall comes after them.
        while dumps.load(SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let h = coio::Builder::new()
            .name("staller")
            .spawn_on(&rt, || std::thread::sleep(Duration::from_millis(1500)))
            .unwrap();
        h.join().unwrap();
        stop.store(true, SeqCst);
        if let Some(d) = dumper {
            d.join().unwrap();
        }
        return;
    }
    for role in ["thread", "coroutine"] {
        let out = common::run_in_child("a_stall_during_dumps_is_named", role, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{role}: {stderr}");
        let warning = stderr
            .lines()
            .find(|l| l.contains("without coming back") && l.contains("staller"))
            .unwrap_or_else(|| panic!("{role}: no stall warning naming the staller: {stderr}"));
        assert!(warning.contains("It is \"staller\""), "{role}: {stderr}");
        assert!(stderr.contains("nanosleep"), "{role}: {stderr}");
    }
}
