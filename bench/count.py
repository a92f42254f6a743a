#!/usr/bin/env python3
"""In-memory count job benchmark: csv -> 1 s window by gender -> blackhole.

Builds weir and the csv-crate baseline in release mode, generates a user log with
`weir gen user-log`, then runs each program several times and reports the best wall time,
rows/s, weir's share of the raw csv parse rate, and peak RSS.

    python3 bench/count.py [--rows 1000000] [--runs 5]
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.path.join(TARGET, "release", "weir")
BASELINE = os.path.join(TARGET, "release", "examples", "csv_baseline")

PIPELINE = """
[sources.log]
type = "csv"
path = "{csv}"
event_rate = 10
start_time = 1700000000000
progress = false

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.null]
type = "blackhole"
inputs = ["per_second"]
"""


def run_best(cmd, runs):
    """Best wall time over `runs` runs, and the largest peak RSS (MB) the program reported.

    Peak RSS is the program's own VmHWM (weir logs it at the end of a run; the baseline prints
    it): rusage of a child spawned from Python would include Python's own high-water mark."""
    best = None
    peak = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr}")
        best = wall if best is None else min(best, wall)
        peak = max(peak, reported_rss_mb(proc.stdout + proc.stderr))
    return best, peak


DISCARD_PIPELINE = """
[sources.log]
type = "csv"
path = "{csv}"
event_rate = 10
start_time = 1700000000000
progress = false

[sinks.null]
type = "blackhole"
inputs = ["log"]
"""


def run_measured(cmd, runs):
    """Best wall time, the least CPU time (user + sys, of the child) and the largest peak RSS
    (MB) over `runs` runs."""
    best_wall = best_cpu = None
    peak = 0.0
    for _ in range(runs):
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = os.times()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr}")
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        best_wall = wall if best_wall is None else min(best_wall, wall)
        best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
        peak = max(peak, reported_rss_mb(proc.stdout + proc.stderr))
    return best_wall, best_cpu, peak


def parallel_variants(csv, rows, runs, tmp):
    """The csv crate alone, then the count job and a parse-only job (csv -> discard) with 1 and 2
    parser threads and 1 and 2 window instances: rows/s, CPU seconds per million rows, peak RSS."""
    wall, cpu, rss = run_measured([BASELINE, csv], runs)
    out = [{"job": "csv crate", "parsers": 1, "window_instances": None, "rows": rows,
            "rows_per_s": round(rows / wall), "cpu_s_per_million": round(cpu / rows * 1e6, 3),
            "peak_rss_mb": rss}]
    variants = [("count", 1, 1), ("count", 2, 1), ("count", 1, 2), ("count", 2, 2),
                ("parse", 1, None), ("parse", 2, None)]
    for job, parsers, instances in variants:
        text = (PIPELINE if job == "count" else DISCARD_PIPELINE).format(csv=csv)
        text = text.replace("progress = false", f"progress = false\nparallelism = {parsers}")
        if instances:
            text = text.replace('group_by = ["gender"]', f'group_by = ["gender"]\nparallelism = {instances}')
        path = os.path.join(tmp, f"{job}-{parsers}-{instances}.toml")
        with open(path, "w") as f:
            f.write(text)
        wall, cpu, rss = run_measured([WEIR, "run", path], runs)
        out.append({"job": job, "parsers": parsers, "window_instances": instances, "rows": rows,
                    "rows_per_s": round(rows / wall), "cpu_s_per_million": round(cpu / rows * 1e6, 3),
                    "peak_rss_mb": rss})
    return out


def reported_rss_mb(text):
    for line in text.splitlines():
        if "peak memory (RSS):" in line:
            return float(line.rsplit(":", 1)[1].split()[0])
        if "VmHWM:" in line:
            return int(line.split("VmHWM:")[1].split()[0]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "weir", "--example", "csv_baseline"],
                   cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "user_log.csv")
        subprocess.run([WEIR, "-q", "gen", "user-log", "--rows", str(args.rows), "--seed", "1", "--out", csv], check=True)
        pipeline = os.path.join(tmp, "count.toml")
        with open(pipeline, "w") as f:
            f.write(PIPELINE.format(csv=csv))
        size_mb = os.path.getsize(csv) / 1e6
        base_s, base_rss = run_best([BASELINE, csv], args.runs)
        weir_s, weir_rss = run_best([WEIR, "run", pipeline], args.runs)
    rows = args.rows
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; input: {rows:,} rows, {size_mb:.1f} MB; best of {args.runs}")
    print(f"{'program':<34} {'seconds':>8} {'rows/s':>12} {'peak RSS':>10}")
    print(f"{'csv crate alone (1 core)':<34} {base_s:>8.3f} {rows / base_s:>12,.0f} {base_rss:>8.1f}MB")
    print(f"{'weir csv -> window -> blackhole':<34} {weir_s:>8.3f} {rows / weir_s:>12,.0f} {weir_rss:>8.1f}MB")
    print(f"weir / raw parse rate: {base_s / weir_s:.0%} (goal: at least 50%); peak RSS goal: under 64 MB")


if __name__ == "__main__":
    main()
