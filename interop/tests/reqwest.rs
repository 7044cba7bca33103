//! reqwest, a heavy real client on tokio's reactor (hyper-util's
//! connection pool, tokio sockets and timers, rustls), called from coio's
//! coroutines through `coio::compat::tokio::block_on`, against coio's own
//! blocking-style HTTP server (`examples/http.rs`) on loopback.
//!
//! Why: `compat::tokio::block_on` polls the future on the coroutine's stack
//! inside the context of coio's lazily started tokio runtime, while the
//! future's connection tasks run on that runtime's thread; a lost wake, a
//! future too big for a coroutine stack, or a worker blocked instead of the
//! coroutine parked shows up here as a hang, a crash or too little
//! concurrency. Server and clients share the coio runtime's workers, so a
//! client that blocked its worker would starve the server too.
//!
//! reqwest is built with `rustls-no-provider` and rustls's `ring` provider
//! (reqwest's own `rustls` feature brings aws-lc-rs): the TLS stack is
//! compiled and the clients are built with it, and one test runs a real
//! rustls handshake against the plain-HTTP server to see it fail cleanly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Once};
use std::time::Duration;

use coio::Runtime;
use coio::compat::tokio::block_on;
use coio::net::TcpListener;
use coio_interop::within_30s;

#[path = "../../examples/http.rs"]
#[allow(dead_code)]
mod http;

/// Coroutine stacks for reqwest: in a debug build, the first poll of an
/// `https` request (reqwest, hyper-util's pool and connector, hyper-rustls)
/// nests between 136 and 140 KiB of frames, more than coio's default
/// 128 KiB (`coio::DEFAULT_STACK_SIZE`), and overflows it (the process
/// aborts: "coroutine '#N' overflowed its stack of 131072 bytes"); plain
/// `http` takes between 112 and 120 KiB. A release build needs under
/// 48 KiB. 256 KiB leaves room for dependency updates.
const STACK: usize = 256 * 1024;

/// A 2-worker runtime with [`STACK`]-sized coroutine stacks.
fn rt() -> Runtime {
    Runtime::builder()
        .workers(2)
        .stack_size(STACK)
        .build()
        .unwrap()
}

/// Starts examples/http.rs's accept loop on a fresh loopback listener in
/// `rt`; its address.
fn start(rt: &Runtime) -> SocketAddr {
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || http::accept_loop(&listener));
    addr
}

/// A reqwest client on rustls with the ring provider, ignoring any proxy
/// settings of the environment (the server is on loopback), with a timeout
/// so that a broken server fails the test instead of hanging it.
fn client() -> reqwest::Client {
    builder()
        .build()
        .expect("building a reqwest client with rustls (ring)")
}

/// [`client`]'s settings, to add to.
fn builder() -> reqwest::ClientBuilder {
    // The provider is process-wide; the tests of this file run on parallel
    // threads.
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Deprecated since rustls 0.23.48 for its lack of post-quantum key
        // exchange, which a loopback test does not need; the alternative,
        // aws-lc-rs, is what this crate avoids building.
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider()
            .install_default()
            .expect("no other rustls provider is installed in this test binary");
    });
    reqwest::Client::builder()
        .tls_backend_rustls()
        .no_proxy()
        .timeout(Duration::from_secs(20))
}

/// GETs `url`: the status and the body. An `async fn`, so that `send()`
/// runs inside `compat::tokio::block_on`'s tokio context: with a client
/// timeout, `send()` creates a tokio timer when called, and
/// `block_on(client.get(url).send())` would panic with "there is no
/// reactor running" (the argument is built before `block_on` enters the
/// context).
async fn get(client: &reqwest::Client, url: &str) -> reqwest::Result<(u16, String)> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// `GET /`: 200 and `Hello, World!`; `GET /missing`: 404 and `Not Found`.
#[test]
fn get_200_and_404() {
    within_30s(|| {
        let rt = rt();
        let addr = start(&rt);
        rt.block_on(move || {
            let client = client();
            let (status, body) = block_on(get(&client, &format!("http://{addr}/"))).unwrap();
            assert_eq!((status, body.as_str()), (200, "Hello, World!"));
            // The same client again (its pooled keep-alive connection).
            let (status, body) = block_on(get(&client, &format!("http://{addr}/missing"))).unwrap();
            assert_eq!((status, body.as_str()), (404, "Not Found"));
        });
    });
}

/// 100 coroutines on a 2-worker runtime share one client, each GETting
/// through its own `compat::tokio::block_on`: even ones `/`, odd ones
/// `/missing/<i>`, so that a response handed to the wrong coroutine shows.
/// More than 2 requests must be in flight at once: `block_on` parks the
/// coroutine, not its worker.
#[test]
fn hundred_concurrent_gets_share_one_client() {
    const N: usize = 100;
    let max_in_flight = within_30s(|| {
        let rt = rt();
        let addr = start(&rt);
        rt.block_on(move || {
            let client = client();
            let in_flight = Arc::new(AtomicUsize::new(0));
            let max_in_flight = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let client = client.clone();
                    let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
                    coio::spawn(move || {
                        let url = if i % 2 == 0 {
                            format!("http://{addr}/")
                        } else {
                            format!("http://{addr}/missing/{i}")
                        };
                        let now = in_flight.fetch_add(1, SeqCst) + 1;
                        max_in_flight.fetch_max(now, SeqCst);
                        let got = block_on(get(&client, &url));
                        in_flight.fetch_sub(1, SeqCst);
                        (i, got)
                    })
                })
                .collect();
            for h in handles {
                let (i, got) = h.join().unwrap();
                let (status, body) = got.unwrap_or_else(|e| panic!("request {i}: {e}"));
                let want = if i % 2 == 0 {
                    (200, "Hello, World!")
                } else {
                    (404, "Not Found")
                };
                assert_eq!((status, body.as_str()), want, "request {i}");
            }
            max_in_flight.load(SeqCst)
        })
    });
    assert!(
        max_in_flight > 2,
        "at most {max_in_flight} requests were in flight at once on 2 workers"
    );
}

/// `https://` to the plain-HTTP server: rustls (ring) really runs, sends
/// its ClientHello, gets `400 Bad Request` back instead of a ServerHello,
/// and the request fails with a connect error caused by a rustls error,
/// rather than a panic or a hang. The server still answers plain HTTP
/// afterwards.
#[test]
fn https_handshake_against_plain_http_fails_cleanly() {
    within_30s(|| {
        let rt = rt();
        let addr = start(&rt);
        rt.block_on(move || {
            // A host name for SNI (rustls sends none for an IP address),
            // pinned to the server's address: no resolver involved.
            let client = builder()
                .resolve("coio.test", addr)
                .build()
                .expect("building a reqwest client with rustls (ring)");
            let port = addr.port();
            let err = block_on(get(&client, &format!("https://coio.test:{port}/")))
                .expect_err("a TLS handshake with a plain-HTTP server must fail");
            assert!(err.is_connect(), "not a connect error: {err:?}");
            assert!(
                caused_by_rustls(&err),
                "no rustls error among the causes: {err:?}"
            );
            let (status, body) = block_on(get(&client, &format!("http://{addr}/"))).unwrap();
            assert_eq!((status, body.as_str()), (200, "Hello, World!"));
        });
    });
}

/// Whether a `rustls::Error` is among `err`'s causes.
fn caused_by_rustls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        // An `io::Error`'s `source` is its inner error's source, skipping
        // the inner error itself: step into that one instead.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}
