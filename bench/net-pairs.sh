#!/usr/bin/env bash
# Back-to-back pairs of echo runs, coio's server and one peer's, alternating,
# to compare them under the same machine state (this machine drifts between
# a fast and a slow state for minutes at a time, which a table of medians
# over rounds can mistake for a difference between servers).
#
#   bash bench/net-pairs.sh [PEER] [PAIRS] [SECS]     # defaults: tokio 5 4
#
# Each run: the server (bench/src/bin/echo_<name>.rs, 1 worker) under
# `taskset -c 0`, loadgen under `taskset -c 1`, 50 and then 500
# connections, a 1 s warm-up and a SECS-second window. Prints one line per
# run and, per connection count, the median of coio/peer ratios of
# requests/s. Builds with `cargo build --release -p coio-bench` first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
peer="${1:-tokio}"
pairs="${2:-5}"
secs="${3:-4}"
cargo build -q --release -p coio-bench --bins
bins="${CARGO_TARGET_DIR:-target}/release"

# run NAME CONNS: one run of echo_NAME; prints "rps p99_us server_cpu_us_per_req".
run() {
    pinned_echo_run "$bins" "$secs" "$2" "echo_$1"
}

for conns in 50 500; do
    ratios=()
    for i in $(seq "$pairs"); do
        read -r c_rps c_p99 c_cpu < <(run coio "$conns")
        read -r p_rps p_p99 p_cpu < <(run "$peer" "$conns")
        ratio=$(python3 -c "print(round($c_rps / $p_rps, 3))")
        ratios+=("$ratio")
        echo "C=$conns pair $i: coio $c_rps req/s (p99 $c_p99 µs, $c_cpu µs/req)  $peer $p_rps req/s (p99 $p_p99 µs, $p_cpu µs/req)  ratio $ratio"
    done
    echo "C=$conns: median coio/$peer ratio $(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}")"
done
