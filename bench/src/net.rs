//! What the network comparison's servers share: the command line and the
//! size of the read buffer.
//!
//! Every echo server (`echo_<runtime>`, and the Go program in
//! `bench/go/echo`) and every HTTP server (`http_<runtime>`,
//! `bench/go/http`) is called as `<binary> <port> <workers> [variant]` and
//! serves on `127.0.0.1:<port>` until it is killed; it prints nothing on
//! stdout. `bench/run.sh net` starts each one, waits until it accepts a
//! connection, runs the load (`loadgen` for echo, `wrk` for HTTP) against
//! it, reads the server's CPU time from `/proc/<pid>/stat`, and kills it.
//!
//! An echo server accepts in a loop and gives every connection its own
//! task (coroutine, goroutine, thread), which reads up to [`ECHO_BUF`] bytes
//! and writes back exactly what it read until the peer closes; TCP_NODELAY
//! is set on every accepted socket.

/// Bytes an echo connection reads at a time (every server uses the same).
pub const ECHO_BUF: usize = 4096;

/// The body every HTTP server answers `GET /` with.
pub const HELLO: &str = "Hello, World!";

/// The parsed command line: `<port> <workers> [variant]`.
pub struct ServerArgs {
    /// The port on 127.0.0.1 to listen on.
    pub port: u16,
    /// Worker threads of the runtime.
    pub workers: usize,
    /// An optional third word naming a variant (`echo_tokio` and
    /// `http_hyper` take `current` or `multi` for the runtime flavour).
    pub variant: Option<String>,
}

impl ServerArgs {
    /// The address to bind.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Reads the command line, or prints the usage and exits with status 2.
pub fn server_args() -> ServerArgs {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: {} <port> <workers> [variant]",
            argv.first().map(String::as_str).unwrap_or("server")
        );
        std::process::exit(2)
    };
    if argv.len() < 3 || argv.len() > 4 {
        usage();
    }
    let Ok(port) = argv[1].parse::<u16>() else {
        usage()
    };
    let workers = match argv[2].parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => usage(),
    };
    ServerArgs {
        port,
        workers,
        variant: argv.get(3).cloned(),
    }
}

/// The runtime of coio's servers (`echo_coio`, `http_coio`): `workers`
/// workers, and the I/O driver the variant names (`epoll` or `uring`;
/// none: the default, `COIO_DRIVER` else epoll). A server asked for
/// io_uring that fell back to epoll exits rather than measure epoll.
pub fn coio_runtime(args: &ServerArgs) -> coio::Runtime {
    let mut builder = coio::Runtime::builder().workers(args.workers);
    match args.variant.as_deref() {
        None => {}
        Some("epoll") => builder = builder.driver(coio::IoDriver::Epoll),
        Some("uring") => builder = builder.driver(coio::IoDriver::Uring),
        Some(other) => die("unknown variant (epoll | uring)", other),
    }
    let rt = builder.build().unwrap_or_else(|e| die("runtime", e));
    if args.variant.as_deref() == Some("uring") && rt.io_driver() != coio::IoDriver::Uring {
        die(
            "io_uring",
            "not available here (the runtime fell back to epoll)",
        );
    }
    rt
}

/// Prints `msg` and the error on stderr and exits with status 1 (a server
/// that cannot bind, or a runtime that cannot start).
pub fn die(msg: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("{msg}: {err}");
    std::process::exit(1)
}
