#!/usr/bin/env bash
# The wake hop of async interop: ping-pong round trips between two
# coroutines (tasks) through futures channels awaited with
# coio::future::block_on, coio's own rendezvous channel, and tokio's
# channels (see bench/src/bin/wakehop.rs for the variants).
#
#   bash bench/wakehop.sh [WORKERS...]     # default: 1 2 (or $WAKEHOP_WORKERS)
#
# Prints a header with the date and the command, then one line per variant
# and worker count: ns per round trip, median, min and max of 5 runs.
# Builds with `cargo build --release -p coio-bench --bin wakehop` first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p coio-bench --bin wakehop
bin="${CARGO_TARGET_DIR:-target}/release/wakehop"
echo "# $(date -Is) $(uname -n), $(nproc) CPUs"
echo "# cargo build --release -p coio-bench --bin wakehop && ${WAKEHOP_WORKERS:+WAKEHOP_WORKERS=$WAKEHOP_WORKERS }$bin${*:+ $*}"
"$bin" "$@"
