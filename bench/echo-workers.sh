#!/usr/bin/env bash
# The echo server, unpinned, at 1x, 2x and 4x as many workers as cores,
# with tokio's multi-thread runtime (one worker per core) in the same
# rounds: the kernel-as-balancer measurement of issue 12.
#
#   bash bench/echo-workers.sh [ROUNDS] [SECS]     # defaults: 3 4
#
# ECHO_COIO_WORKERS (default: "N 2N 4N" for N cores) sets coio's worker
# counts, ECHO_CONNS (default "50 500") the connection counts; e.g. the
# fewer-workers comparison of BENCHMARKS.md:
#   ECHO_COIO_WORKERS="1 2" ECHO_CONNS=50 bash bench/echo-workers.sh 4 4
#
# Server and load generator share the machine's cores (no taskset), as a
# service sharing its machine would. loadgen connects all its connections
# before it sends anything, so the server accepts them in a quiet moment and
# each handler stays on the worker where placement started it. Per run: the
# requests/s, p99 and the server's context switches per second over a
# SECS-second window after a 1 s warm-up (see bench/src/bin/loadgen.rs).
# Runs of one round alternate between the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
rounds="${1:-3}"
secs="${2:-4}"
cargo build -q --release -p coio-bench --bins
bins="${CARGO_TARGET_DIR:-target}/release"
cores=$(nproc)

# run NAME WORKERS CONNS: one run; prints "rps p99_us ctx_switches_per_s".
run() {
    local port pid out
    port=$((20000 + RANDOM % 20000))
    if [ "$1" = tokio ]; then
        "$bins/echo_tokio" "$port" "$2" multi &
    else
        "$bins/echo_$1" "$port" "$2" &
    fi
    pid=$!
    wait_for_port "$port"
    out=$("$bins/loadgen" --addr "127.0.0.1:$port" --conns "$3" \
        --secs "$secs" --warmup 1 --pid "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(round(d["rps"]), round(d["p99_us"]), d["server_ctx_switches_per_s"])' "$out"
}

servers=()
for w in ${ECHO_COIO_WORKERS:-$cores $((2 * cores)) $((4 * cores))}; do
    servers+=("coio $w")
done
servers+=("tokio $cores")
for conns in ${ECHO_CONNS:-50 500}; do
    for i in $(seq "$rounds"); do
        for server in "${servers[@]}"; do
            read -r name workers <<<"$server"
            read -r rps p99 cs < <(run "$name" "$workers" "$conns")
            printf 'C=%s round %s: %-5s %2s workers  %7s req/s  p99 %6s us  %7s ctx switches/s\n' \
                "$conns" "$i" "$name" "$workers" "$rps" "$p99" "$cs"
        done
    done
done
