#!/usr/bin/env python3
"""What a live job costs when little or nothing happens: the shipped pipeline
(pipelines/shopping_gender.toml: embedded broker, exactly once, console and dashboard) run as a
new user runs it, at its normal 10 rows/s, and with no input at all (the csv replay and its sink
removed, so the Kafka source reads a live topic `sex` that receives nothing).

For each mode: a warm-up, then CPU time (user + system, from /proc) and RSS over a fixed span,
as a share of one core; and the same per thread, grouped by thread name (librdkafka's broker
threads, tokio's workers, the embedded broker's tasks run on tokio's workers), which is where a
profile of an idle process spends its time.

    python3 bench/idle.py [--warmup 10] [--span 30] [--runs 1]

Prints one JSON line per mode and writes bench/results/idle.json.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile
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


def one_run(mode, extra, warmup, span):
    with tempfile.TemporaryDirectory() as tmp:
        kafka_port, dashboard = kafka.free_port(), kafka.free_port()
        cmd = [kafka.WEIR, "run", kafka.PIPELINE,
               "--set", f'kafka.embedded.listen="127.0.0.1:{kafka_port}"',
               "--set", f'sinks.dashboard.listen="127.0.0.1:{dashboard}"'] + extra
        log = open(os.path.join(tmp, "weir.log"), "w")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=kafka.ROOT)
        try:
            time.sleep(warmup)
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
        finally:
            proc.terminate()
            proc.wait()
            log.close()
    by_thread = {name: round(100 * t / TICKS / elapsed, 2)
                 for name, t in threads.most_common() if t > 0}
    return {"mode": mode, "span_s": round(elapsed, 1), "cpu_percent": round(100 * used / elapsed, 2),
            "peak_rss_mb": round(peak, 1), "cpu_percent_by_thread": by_thread}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--span", type=float, default=30)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                   cwd=kafka.ROOT, check=True)
    results = []
    for _ in range(args.runs):
        for mode, extra in MODES.items():
            result = one_run(mode, extra, args.warmup, args.span)
            print(json.dumps(result), flush=True)
            results.append(result)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "idle.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
