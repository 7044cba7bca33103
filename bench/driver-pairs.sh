#!/usr/bin/env bash
# coio's echo server on its two I/O drivers beside tokio's, back to back:
# for each connection count, ROUNDS rounds of three runs in turn (coio with
# epoll, coio with io_uring, tokio), so that the machine's drift between
# fast and slow states hits all three alike.
#
#   bash bench/driver-pairs.sh [ROUNDS] [SECS] [CONNS...]   # defaults: 4 4 50 500 5000
#
# Each run: the server (bench/src/bin/echo_coio.rs with the variant `epoll`
# or `uring`, echo_tokio.rs) with 1 worker under `taskset -c 0`, loadgen
# under `taskset -c 1`, a 1 s warm-up and a SECS-second window. Prints one
# line per run (req/s, p99, server CPU µs per request) and, per connection
# count, the medians of the per-round ratios to tokio. Builds with `cargo
# build --release -p coio-bench` first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
rounds="${1:-4}"
secs="${2:-4}"
shift 2 || shift $#
conns_list=("${@:-50 500 5000}")
# shellcheck disable=SC2206
conns_list=(${conns_list[*]})
cargo build -q --release -p coio-bench --bins
bins="${CARGO_TARGET_DIR:-target}/release"

# run SERVER VARIANT CONNS: one run; prints "rps p99_us server_cpu_us_per_req".
run() {
    pinned_echo_run "$bins" "$secs" "$3" "$1" "$2"
}

for conns in "${conns_list[@]}"; do
    rows=()
    for i in $(seq "$rounds"); do
        read -r e_rps e_p99 e_cpu < <(run echo_coio epoll "$conns")
        read -r u_rps u_p99 u_cpu < <(run echo_coio uring "$conns")
        read -r t_rps t_p99 t_cpu < <(run echo_tokio "" "$conns")
        echo "C=$conns round $i: epoll $e_rps req/s p99 $e_p99 µs $e_cpu µs/req | io_uring $u_rps req/s p99 $u_p99 µs $u_cpu µs/req | tokio $t_rps req/s p99 $t_p99 µs $t_cpu µs/req"
        rows+=("$e_rps,$e_cpu,$u_rps,$u_cpu,$t_rps,$t_cpu")
    done
    python3 - "$conns" "${rows[@]}" <<'PY'
import statistics, sys
conns, rows = sys.argv[1], [list(map(float, r.split(","))) for r in sys.argv[2:]]
def med(f):
    v = sorted(f(r) for r in rows)
    return f"{statistics.median(v):.3f} ({v[0]:.3f}-{v[-1]:.3f})"
print(f"C={conns} medians over rounds (range), against tokio: "
      f"req/s epoll {med(lambda r: r[0] / r[4])}, io_uring {med(lambda r: r[2] / r[4])}; "
      f"CPU/req epoll {med(lambda r: r[1] / r[5])}, io_uring {med(lambda r: r[3] / r[5])}")
PY
done
