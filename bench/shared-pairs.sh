#!/usr/bin/env bash
# Many waiters on one socket (bench/src/bin/shared_socket.rs): coio and
# tokio back to back, alternating, for receivers sharing a UDP socket and
# acceptors sharing a listener, with 1 and with 1,000 waiters, at light
# load (each client pauses 200 µs between requests: every waiter is parked
# at each event) and at full load (4 clients, no pause).
#
#   bash bench/shared-pairs.sh [PAIRS] [OLD_BINS]     # default 3 pairs
#
# With OLD_BINS (a release directory holding another build's
# shared_socket, e.g. from a worktree of an older commit), that build runs
# in each round too, as "old". Prints one line per round and per case the
# median of each runtime's process CPU time per request (the clients'
# share is the same for all).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="${1:-3}"
old="${2:-}"
cargo build -q --release -p coio-bench --bin shared_socket
bin="${CARGO_TARGET_DIR:-target}/release/shared_socket"
med() { python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 1))" "$@"; }

# run BIN RUNTIME SERVICE WAITERS GAP_US: prints "rps cpu_us_per_req".
run() {
    local requests=20000 clients=4
    if [ "$5" != 0 ]; then requests=4000 clients=1; fi
    GAP_US="$5" timeout 300 "$1" "$2" "$3" "$4" "$requests" "$clients" |
        sed -E 's/([0-9.]+) req\/s, ([0-9.]+) µs CPU per request/\1 \2/'
}

for service in udp accept; do
    for gap in 200 0; do
        for waiters in 1 1000; do
            declare -A cpu=([coio]="" [tokio]="" [old]="")
            for i in $(seq "$pairs"); do
                line="$service gap=${gap}µs N=$waiters round $i:"
                for who in coio tokio ${old:+old}; do
                    case $who in
                    old) read -r rps c < <(run "$old/shared_socket" coio "$service" "$waiters" "$gap") ;;
                    *) read -r rps c < <(run "$bin" "$who" "$service" "$waiters" "$gap") ;;
                    esac
                    cpu[$who]="${cpu[$who]} $c"
                    line="$line  $who $rps req/s $c µs/req"
                done
                echo "$line"
            done
            summary="$service gap=${gap}µs N=$waiters: median CPU µs/req"
            for who in coio tokio ${old:+old}; do
                # shellcheck disable=SC2086
                summary="$summary  $who $(med ${cpu[$who]})"
            done
            echo "$summary"
        done
    done
done
