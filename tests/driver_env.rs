//! `COIO_DRIVER` picks the I/O driver of runtimes built without an explicit
//! choice; `RuntimeBuilder::driver` wins over it; a bad value is an error.
//! (Its own test binary: it sets a process-wide environment variable.)

use coio::{IoDriver, Runtime};

/// Sets or removes `COIO_DRIVER`.
fn set_env(value: Option<&str>) {
    // SAFETY: this binary's only test calls it between runtimes: no other
    // thread reads the environment meanwhile (a runtime reads it in
    // `build`, on this thread; its workers do not).
    unsafe {
        match value {
            Some(v) => std::env::set_var("COIO_DRIVER", v),
            None => std::env::remove_var("COIO_DRIVER"),
        }
    }
}

#[test]
fn coio_driver_chooses_and_the_builder_wins() {
    set_env(Some("uring"));
    let rt = Runtime::builder().workers(1).build().unwrap();
    // What asking for io_uring explicitly gets (epoll where this kernel
    // has none; tests/uring.rs checks that against the kernel itself).
    let from_env = rt.io_driver();
    assert_eq!(rt.block_on(|| 1 + 1), 2);
    drop(rt);
    let rt = Runtime::builder()
        .workers(1)
        .driver(IoDriver::Uring)
        .build()
        .unwrap();
    assert_eq!(from_env, rt.io_driver());
    drop(rt);
    let rt = Runtime::builder()
        .workers(1)
        .driver(IoDriver::Epoll)
        .build()
        .unwrap();
    assert_eq!(rt.io_driver(), IoDriver::Epoll);
    drop(rt);
    set_env(Some("epoll"));
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.io_driver(), IoDriver::Epoll);
    drop(rt);
    set_env(Some("kqueue"));
    let e = Runtime::builder().workers(1).build().err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("COIO_DRIVER"), "{e}");
    set_env(None);
}
