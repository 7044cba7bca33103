//! Coroutine dumps (`coio::dump`, `Runtime::dump`): wait reasons, stacks,
//! spawn sites, a stuck worker, grouped output, the signal trigger.

use std::time::Duration;

fn dump_text() -> String {
    let mut out = Vec::new();
    coio::dump(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[inline(never)]
fn wait_for_message(rx: coio::chan::Receiver<u32>) -> u32 {
    rx.recv().unwrap_or(0)
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

/// Spins until told to stop, never coming back to the scheduler.
#[inline(never)]
fn spin_until(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

#[test]
fn stuck_worker_from_outside() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::*};
    let rt = coio::Runtime::builder()
        .workers(2)
        .stall_warning(None)
        .build()
        .unwrap();
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
    while !started.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = Vec::new();
    rt.dump(&mut out).unwrap();
    let d = String::from_utf8(out).unwrap();
    println!("{d}");
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
    use std::sync::Arc;
    let rt = coio::Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
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
        let fresh = named("fresh", Box::new(|| ()));
        let mut out = Vec::new();
        coio::dump(&mut out).unwrap();
        let d = String::from_utf8(out).unwrap();
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
        assert!(d.contains("coio::chan::Receiver<T>::recv"), "{d}");
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
        fresh.join().unwrap();
    });
}
