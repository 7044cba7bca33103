//! A TCP echo server: one coroutine per connection, written as plain
//! blocking code.
//!
//! Run: `cargo run --release --example echo [ADDR]` (default
//! `127.0.0.1:7007`), then `nc 127.0.0.1 7007`. `COIO_WORKERS` sets the
//! number of worker threads (default: one per CPU). The echo benchmark
//! (`bash bench/run.sh net`) runs this very program.

use std::io::{self, Read, Write};

use coio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7007".into());
    coio::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        eprintln!("echo: listening on {}", listener.local_addr()?);
        accept_loop(&listener)
    })
}

/// Accepts connections forever, each served by its own coroutine.
pub fn accept_loop(listener: &TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                coio::spawn(move || {
                    let _ = serve(stream);
                });
            }
            // Out of descriptors, say: the connection waits in the
            // backlog; try again shortly rather than spin.
            Err(e) => {
                eprintln!("echo: accept: {e}");
                coio::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Echoes until the peer closes (`Ok`) or the connection fails.
pub fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n])?,
        }
    }
}
