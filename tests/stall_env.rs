//! `COIO_STALL_WARNING` sets the stall monitor's threshold of runtimes
//! built without an explicit one (`off`: no monitor thread); the builder
//! wins over it; a bad value is an error. (Its own test binary: it sets a
//! process-wide environment variable.)

use std::time::Duration;

use coio::Runtime;

/// Sets or removes `COIO_STALL_WARNING`.
fn set_env(value: Option<&str>) {
    // SAFETY: this binary's only test calls it between runtimes: no other
    // thread reads the environment meanwhile (a runtime reads it in
    // `build`, on this thread).
    unsafe {
        match value {
            Some(v) => std::env::set_var("COIO_STALL_WARNING", v),
            None => std::env::remove_var("COIO_STALL_WARNING"),
        }
    }
}

/// Whether this process has a thread named `name` now (names are cut at
/// 15 bytes: keep them short).
fn has_thread(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        std::fs::read_to_string(t.unwrap().path().join("comm")).is_ok_and(|c| c.trim_end() == name)
    })
}

/// A runtime named `prefix`, with `after` given to the builder or not;
/// whether it has a monitor thread.
fn monitored(prefix: &str, after: Option<Option<Duration>>) -> bool {
    let mut b = Runtime::builder().workers(1).thread_name(prefix);
    if let Some(a) = after {
        b = b.stall_warning(a);
    }
    let rt = b.build().unwrap();
    rt.block_on(|| ());
    // A thread names itself once it runs: give it a moment.
    let name = format!("{prefix}-monitor");
    (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        has_thread(&name)
    })
}

#[test]
fn coio_stall_warning_sets_and_the_builder_wins() {
    set_env(None);
    assert!(monitored("s1", None));
    set_env(Some("off"));
    assert!(!monitored("s2", None));
    assert!(monitored("s3", Some(Some(Duration::from_millis(50)))));
    set_env(Some("250"));
    assert!(monitored("s4", None));
    assert!(!monitored("s5", Some(None)));
    // Zero however spelled, and `off` in any case, are off too.
    set_env(Some("00"));
    assert!(!monitored("s6", None));
    set_env(Some("OFF"));
    assert!(!monitored("s7", None));
    set_env(Some("often"));
    let e = Runtime::builder().workers(1).build().err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("COIO_STALL_WARNING"), "{e}");
    set_env(None);
}
