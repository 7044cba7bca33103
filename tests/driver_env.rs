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

/// The driver a one-worker runtime gets, asked for `driver` or not.
fn driver_of(driver: Option<IoDriver>) -> IoDriver {
    let mut b = Runtime::builder().workers(1);
    if let Some(d) = driver {
        b = b.driver(d);
    }
    let rt = b.build().unwrap();
    assert_eq!(rt.block_on(|| 1 + 1), 2);
    rt.io_driver()
}

#[test]
fn coio_driver_chooses_and_the_builder_wins() {
    set_env(Some("uring"));
    // What asking for io_uring explicitly gets (epoll where this kernel
    // has none; tests/uring.rs checks that against the kernel itself).
    assert_eq!(driver_of(None), driver_of(Some(IoDriver::Uring)));
    assert_eq!(driver_of(Some(IoDriver::Epoll)), IoDriver::Epoll);
    set_env(Some("epoll"));
    assert_eq!(driver_of(None), IoDriver::Epoll);
    set_env(Some("kqueue"));
    let e = Runtime::builder().workers(1).build().err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("COIO_DRIVER"), "{e}");
    set_env(None);
}
