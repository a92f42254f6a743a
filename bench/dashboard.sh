#!/usr/bin/env bash
# Dashboard load benchmark: weir runs the shipped dashboard pipeline (4 windows a second); N
# Socket.IO clients (some of them slow: they never read) receive every window. Reports latency
# from the server's send stamp to each fast client's receipt (p50/p99), weir's RSS, what was
# dropped for slow clients, and the CPU each side spent per delivered message while measuring
# (both run on this machine's cores, so the client's share is taken from the server's). Loopback.
# Then, per client count, the floor under any fan-out on this machine: the same number of plain
# loopback TCP connections, one 96-byte write each, nothing above the kernel
# (runner/examples/fanout_floor.rs; one JSON line with "floor": true).
#   bash bench/dashboard.sh [CLIENTS...]      default: 100 1000 10000
#   RUNS=3 bash bench/dashboard.sh 10000       repeat each measurement
#   PIN=1 bash bench/dashboard.sh ...          weir on core 0, the load client on core 1
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet -p weir --bin weir --example dashboard_load --example fanout_floor
seconds=10
port=5091

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for clients in ${@:-100 1000 10000}; do
  for slow_share in 0 10; do
    for _run in $(seq "${RUNS:-1}"); do
      slow=$(( clients * slow_share / 100 ))
      log=$(mktemp); client_time=$(mktemp)
      server_cpu=""; client_cpu=""
      if [ "${PIN:-0}" = 1 ]; then server_cpu="taskset -c 0"; client_cpu="taskset -c 1"; fi
      $server_cpu "$target/release/weir" run pipelines/shopping_gender_dashboard.toml \
        --set sources.user_log.rate=40 --set sinks.dashboard.listen="127.0.0.1:$port" 2>"$log" &
      pid=$!
      sleep 1
      /usr/bin/time -o "$client_time" -f "%U %S" $client_cpu \
        "$target/release/examples/dashboard_load" "ws://127.0.0.1:$port" "$clients" "$slow" "$seconds" \
        >"$log.result" &
      client=$!
      # The client measures from the end of its ramp-up (0.5 s + 5 ms per 100 clients) on.
      sleep "$(awk -v n="$clients" 'BEGIN {print 0.5 + n * 0.00005}')"
      before=$(cpu_ticks "$pid")
      wait "$client"
      after=$(cpu_ticks "$pid")
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
      kill -TERM "$pid"; wait "$pid" || true
      result=$(cat "$log.result")
      deliveries=$(sed 's/.*"deliveries":\([0-9]*\).*/\1/' <<<"$result")
      ticks=$(getconf CLK_TCK)
      # Server CPU over the measured seconds; client CPU over its whole life (ramp-up included).
      server_us=$(awk -v c=$((after - before)) -v t="$ticks" -v d="$deliveries" \
        'BEGIN {printf "%.1f", d ? c / t * 1e6 / d : 0}')
      client_us=$(awk -v t="$(cat "$client_time")" -v d="$deliveries" \
        'BEGIN {split(t, a, " "); printf "%.1f", d ? (a[1] + a[2]) * 1e6 / d : 0}')
      dropped=$(grep -o '[0-9]* updates dropped' "$log" | head -1)
      windows=$(grep -o 'sinks.dashboard: [0-9]* in' "$log" | grep -o '[0-9]* in')
      echo "{\"result\": $result, \"weir_rss_mb\": $(( rss / 1024 )), \"server_cpu_us_per_delivery\": $server_us, \"client_cpu_us_per_delivery_incl_connect\": $client_us, \"dropped\": \"$dropped\", \"window_records\": \"$windows\"}"
      rm -f "$log" "$log.result" "$client_time"
      port=$((port + 1))
    done
  done
  "$target/release/examples/fanout_floor" "$clients" 20 2
done
