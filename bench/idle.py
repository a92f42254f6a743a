#!/usr/bin/env python3
"""What a live job costs when little or nothing happens: the shipped pipeline
(pipelines/shopping_gender.toml: embedded broker, exactly once, console and dashboard) run as a
new user runs it, at its normal 10 rows/s, and with no input at all (the csv replay and its sink
removed, so the Kafka source reads a live topic `sex` that receives nothing).

For each mode: a warm-up, then CPU time (user + system, from /proc) and RSS over a fixed span,
as a share of one core; and the same per thread, grouped by thread name (librdkafka's broker
threads, tokio's workers, the embedded broker's tasks run on tokio's workers), which is where a
profile of an idle process spends its time.

At 10 rows/s the console sink prints each window as JSON, and the time from a window's end (the
replay stamps rows from the clock at start, so event time follows the wall clock) to its line on
stdout is its latency to the outputs (the dashboard is pushed from the same window at the same
moment).

With `--before BINARY` every measurement is taken for that binary too, interleaved with the
current one, and so is the throughput at `rate = "max"` on a generated log of `--rows` rows
(launch to exit): what a change costs or saves, from one run of this script.

    python3 bench/idle.py [--warmup 10] [--span 30] [--runs 1] [--before BINARY] [--rows 200000]

Prints one JSON line per measurement and writes bench/results/idle.json.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import kafka  # bench/kafka.py: free ports, the release binary

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TICKS = os.sysconf("SC_CLK_TCK")

MODES = {
    "10 rows/s": [],
    "0 rows/s": ["--unset", "sources.user_log", "--unset", "sinks.sex"],
}


def cpu_ticks(pid):
    """User + system clock ticks of the process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """Clock ticks per thread name (digits folded, so `rdk:broker12` counts as `rdk:brokerN`)."""
    ticks = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = re.sub(r"\d+", "N", f.read().strip())
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[name] += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            continue  # the thread ended meanwhile
    return ticks


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def watch_latency(stream, latencies):
    """Reads the console's JSON lines; appends each window's delay after its end, in ms."""
    for line in stream:
        arrived = time.time() * 1000
        try:
            end = json.loads(line)["window_end"]
        except (ValueError, KeyError, TypeError):
            continue
        latencies.append(arrived - end)


def one_run(mode, extra, warmup, span, binary=None):
    binary = binary or kafka.WEIR
    with tempfile.TemporaryDirectory() as tmp:
        kafka_port, dashboard = kafka.free_port(), kafka.free_port()
        cmd = [binary, "run", kafka.PIPELINE,
               "--set", f'kafka.embedded.listen="127.0.0.1:{kafka_port}"',
               "--set", f'sinks.dashboard.listen="127.0.0.1:{dashboard}"',
               "--set", 'sinks.console.format="json"'] + extra
        log = open(os.path.join(tmp, "weir.log"), "w")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=kafka.ROOT, text=True)
        latencies = []
        watcher = threading.Thread(target=watch_latency, args=(proc.stdout, latencies), daemon=True)
        watcher.start()
        try:
            time.sleep(warmup)
            latencies.clear()
            if proc.poll() is not None:
                raise SystemExit(f"weir exited early ({mode}):\n"
                                 + open(os.path.join(tmp, "weir.log")).read())
            start_ticks, start_threads = cpu_ticks(proc.pid), thread_ticks(proc.pid)
            start = time.monotonic()
            peak = 0.0
            while time.monotonic() - start < span:
                time.sleep(0.5)
                peak = max(peak, rss_mb(proc.pid))
            elapsed = time.monotonic() - start
            used = (cpu_ticks(proc.pid) - start_ticks) / TICKS
            threads = thread_ticks(proc.pid)
            threads.subtract(start_threads)
            measured = sorted(latencies)
        finally:
            proc.terminate()
            proc.wait()
            log.close()
    by_thread = {name: round(100 * t / TICKS / elapsed, 2)
                 for name, t in threads.most_common() if t > 0}
    result = {"binary": binary, "mode": mode, "span_s": round(elapsed, 1),
              "cpu_percent": round(100 * used / elapsed, 2), "peak_rss_mb": round(peak, 1),
              "cpu_percent_by_thread": by_thread}
    if measured:
        result["windows"] = len(measured)
        result["latency_ms_median"] = round(measured[len(measured) // 2])
        result["latency_ms_max"] = round(measured[-1])
    return result


def throughput(binary, csv):
    """The shipped pipeline at rate = "max" over `csv`: launch to exit, rows/s."""
    kafka_port, dashboard = kafka.free_port(), kafka.free_port()
    with open(csv) as f:
        rows = sum(1 for line in f if not line.startswith("user_id"))
    cmd = [binary, "run", kafka.PIPELINE,
           "--set", f'kafka.embedded.listen="127.0.0.1:{kafka_port}"',
           "--set", f'sinks.dashboard.listen="127.0.0.1:{dashboard}"',
           "--set", 'sources.user_log.rate="max"', "--set", f'sources.user_log.path="{csv}"',
           "--unset", "sinks.console"]
    start = time.monotonic()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=kafka.ROOT,
                   check=True)
    seconds = time.monotonic() - start
    return {"binary": binary, "mode": f"rate max, {rows} rows", "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--span", type=float, default=30)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--before", help="another weir binary to measure alongside")
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                   cwd=kafka.ROOT, check=True)
    binaries = [args.before, kafka.WEIR] if args.before else [kafka.WEIR]
    results = []

    def note(result):
        print(json.dumps(result, ensure_ascii=False), flush=True)
        results.append(result)

    for _ in range(args.runs):
        for mode, extra in MODES.items():
            for binary in binaries:
                note(one_run(mode, extra, args.warmup, args.span, binary))
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, "log.csv")
            subprocess.run([kafka.WEIR, "-q", "gen", "user-log", "--rows", str(args.rows),
                            "--seed", "1", "--out", csv], check=True)
            for _ in range(args.runs):
                for binary in binaries:
                    note(throughput(binary, csv))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "idle.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
