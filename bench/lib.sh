# Shell helpers shared by bench/net-pairs.sh and bench/echo-workers.sh
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
