# Shell helpers shared by bench/net-pairs.sh, bench/driver-pairs.sh and
# bench/echo-workers.sh
# (sourced, not run).

# wait_for_port PORT: waits up to 5 s until a server accepts connections on
# 127.0.0.1:PORT.
wait_for_port() {
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1)).close()" \
            2>/dev/null && return 0
        sleep 0.05
    done
}

# pinned_echo_run BINS SECS CONNS SERVER [VARIANT]: one run of the echo
# server BINS/SERVER (with its variant word, if any) with 1 worker under
# `taskset -c 0`, loadgen under `taskset -c 1`, a 1 s warm-up and a
# SECS-second window; prints "rps p99_us server_cpu_us_per_req".
pinned_echo_run() {
    local port pid out
    port=$((20000 + RANDOM % 20000))
    # shellcheck disable=SC2086
    taskset -c 0 "$1/$4" "$port" 1 ${5:-} &
    pid=$!
    wait_for_port "$port"
    out=$(taskset -c 1 "$1/loadgen" --addr "127.0.0.1:$port" --conns "$3" \
        --secs "$2" --warmup 1 --pid "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(round(d["rps"]), round(d["p99_us"]), d["server_cpu_us_per_req"])' "$out"
}
