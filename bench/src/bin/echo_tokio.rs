//! The network comparison's echo server on tokio: `echo_tokio <port>
//! <workers> [current|multi]` (see `coio_bench::net`).
//!
//! A tokio::net::TcpListener on 127.0.0.1:<port>, accepted in a loop by the
//! task `block_on` runs, and one spawned task per connection that reads up
//! to `ECHO_BUF` bytes and writes them back until the peer closes;
//! TCP_NODELAY on every accepted socket.
//!
//! The runtime flavour: by default the current-thread runtime for one
//! worker (one thread runs the tasks and the I/O driver, tokio's fastest
//! single-threaded setup) and the multi-thread runtime with `workers`
//! worker threads otherwise; `current` or `multi` as the third word forces
//! one (`multi` with one worker is one worker thread plus the thread that
//! runs `block_on`, which here only accepts).

use coio_bench::net::{self, ECHO_BUF};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(mut s: TcpStream) {
    let mut buf = [0u8; ECHO_BUF];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = net::server_args();
    let current = match args.variant.as_deref() {
        None => args.workers == 1,
        Some("current") => true,
        Some("multi") => false,
        Some(other) => net::die("unknown variant (current | multi)", other),
    };
    let mut builder = if current {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.workers);
        b
    };
    let runtime = builder
        .enable_io()
        .build()
        .unwrap_or_else(|e| net::die("tokio runtime", e));
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr())
            .await
            .unwrap_or_else(|e| net::die("bind", e));
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(s));
        }
    });
}
