#!/usr/bin/env bash
# Dashboard load benchmark: weir runs the shipped dashboard pipeline (4 windows a second); N
# Socket.IO clients (some of them slow: they never read) receive every window. Reports latency
# from the server's send to each fast client's receipt (p50/p99), weir's RSS, and what was
# dropped for slow clients. Loopback only.
#   bash bench/dashboard.sh [CLIENTS...]      default: 100 1000 10000
#   PIN=1 bash bench/dashboard.sh ...          weir on core 0, the load client on core 1
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet -p weir --bin weir --example dashboard_load
port=5091
for clients in "${@:-100 1000 10000}"; do
  for slow_share in 0 10; do
    slow=$(( clients * slow_share / 100 ))
    log=$(mktemp)
    server_cpu=""; client_cpu=""
    if [ "${PIN:-0}" = 1 ]; then server_cpu="taskset -c 0"; client_cpu="taskset -c 1"; fi
    $server_cpu "$target/release/weir" run pipelines/shopping_gender_dashboard.toml \
      --set sources.user_log.rate=40 --set sinks.dashboard.listen="127.0.0.1:$port" 2>"$log" &
    pid=$!
    sleep 1
    result=$($client_cpu "$target/release/examples/dashboard_load" "ws://127.0.0.1:$port" "$clients" "$slow" 10)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    kill -TERM $pid; wait $pid || true
    dropped=$(grep -o '[0-9]* updates dropped' "$log" | head -1)
    windows=$(grep -o 'sinks.dashboard: [0-9]* in' "$log" | grep -o '[0-9]* in')
    echo "{\"result\": $result, \"weir_rss_mb\": $(( rss / 1024 )), \"dropped\": \"$dropped\", \"window_records\": \"$windows\"}"
    rm -f "$log"
    port=$((port + 1))
  done
done
