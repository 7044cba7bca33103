//! The echo server of `echo_coio`, written as async code on coio:
//! `echo_coio_async <port> <workers>` (see `coio_bench::net`).
//!
//! The same accept loop, buffer (4096 bytes) and TCP_NODELAY as
//! `examples/echo.rs`, but each connection's coroutine runs an async loop
//! in `coio::future::block_on`, reading and writing with tokio's
//! `AsyncReadExt`/`AsyncWriteExt` over coio's `TcpStream` (coio's `tokio`
//! feature): the async I/O bridge on coio's own poller, to compare with
//! the blocking calls of `echo_coio` (`bash bench/net-pairs.sh coio_async`).

use coio_bench::net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args = net::server_args();
    let rt = net::coio_runtime(&args);
    rt.block_on(move || {
        let listener =
            coio::net::TcpListener::bind(args.addr()).unwrap_or_else(|e| net::die("bind", e));
        loop {
            let Ok((mut s, _)) = listener.accept() else {
                coio::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nodelay(true);
            coio::spawn(move || {
                coio::future::block_on(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                })
            });
        }
    });
}
