#!/usr/bin/env python3
"""What watching a pipeline costs: the in-memory count job (csv -> 1 s window by gender ->
blackhole, the csv looped so the job runs for a fixed time) in rows/s

  * `before`: weir built from BASE_COMMIT, the commit before the per-stage counters and taps
    (default 2cacefd);
  * `counters`: weir built from the working tree, counters always on, no API;
  * `tap`: the same with `--api` and `weir tap log` (the busiest stage: every row leaves it) into
    a reader that takes one line every 10 ms, so the tap is always behind.

Counters cost = 1 - counters/before; tap cost = 1 - tap/counters. Each run lasts DURATION seconds
(then SIGTERM); rows/s = the source's `out` count in the run summary / the wall time from start to
exit. Variants alternate, ROUNDS times; medians reported.

    python3 bench/observe.py [--rows 1000000] [--duration 5] [--rounds 5] [--base 2cacefd]
"""

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))

PIPELINE = """
[sources.log]
type = "csv"
path = "{csv}"
event_rate = 10
start_time = 1700000000000
progress = false
loop = true

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.null]
type = "blackhole"
inputs = ["per_second"]
"""


# Reads the tap's output one line every 10 ms; on SIGTERM prints how many it read.
SLOW_READER = """
import signal, sys, time
n = 0
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
for line in sys.stdin:
    n += 1
    time.sleep(0.01)
done()
"""


def build(tree, target, out):
    """Builds `weir` in release mode from the source tree `tree` in the target directory `target`
    and copies it to `out`. Two trees need two target directories: cargo names a workspace
    member's build by its path inside the workspace, so the base tree's build of a crate would
    pass for the working tree's."""
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "weir"], cwd=tree, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=target))
    shutil.copy(os.path.join(target, "release", "weir"), out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    sys.exit(f"nothing listens on {port}")


def one_run(weir, pipeline, duration, tap):
    """Rows/s of one run, and how many records the tap printed (None without a tap)."""
    cmd = [weir, "run", pipeline]
    port = None
    if tap:
        port = free_port()
        cmd[2:2] = [f"--api=127.0.0.1:{port}"]
    start = time.perf_counter()
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reader = None
    if tap:
        wait_for_port(port)
        reader = subprocess.Popen(f"{weir} tap log --api 127.0.0.1:{port} | {sys.executable} -c '{SLOW_READER}'",
                                  shell=True, stdout=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(max(0.0, duration - (time.perf_counter() - start)))
    run.send_signal(signal.SIGTERM)
    _, log = run.communicate()
    wall = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {run.returncode}:\n{log}")
    rows = int(re.search(r"sources\.log: (\d+) out", log).group(1))
    printed = None
    if reader:
        # The reader is far behind: stop it and take the count of what it read.
        os.killpg(reader.pid, signal.SIGTERM)
        out, _ = reader.communicate(timeout=30)
        printed = int(out.strip() or 0)
    return rows / wall, printed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base", default="2cacefd")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="weir-observe-")
    before, after = os.path.join(work, "weir-before"), os.path.join(work, "weir")
    # The base commit's tree, kept beside the build directory so a second run builds nothing new.
    tree = os.path.join(TARGET, "bench-base-tree")
    base = subprocess.run(["git", "rev-parse", args.base], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()
    checked_out = os.path.isdir(tree) and subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip() == base
    if not checked_out:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "-q", "--detach", tree, base], cwd=ROOT, check=True)
    print(f"building weir at {args.base} and at the working tree (release) ...", flush=True)
    build(tree, os.path.join(TARGET, "bench-base-target"), before)
    build(ROOT, TARGET, after)
    csv = os.path.join(work, "user_log.csv")
    subprocess.run([after, "gen", "user-log", "--rows", str(args.rows), "--seed", "1", "--out", csv], check=True)
    pipeline = os.path.join(work, "count.toml")
    with open(pipeline, "w") as f:
        f.write(PIPELINE.format(csv=csv))

    rates = {"before": [], "counters": [], "tap": []}
    printed = []
    for round_ in range(args.rounds):
        for name, weir, tap in (("before", before, False), ("counters", after, False), ("tap", after, True)):
            rate, lines = one_run(weir, pipeline, args.duration, tap)
            rates[name].append(rate)
            if lines is not None:
                printed.append(lines)
            print(f"round {round_ + 1} {name:>8}: {rate:,.0f} rows/s" + (f" (tap printed {lines})" if lines is not None else ""), flush=True)
    median = {k: statistics.median(v) for k, v in rates.items()}
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.rows:,} rows looped for {args.duration} s per run; "
          f"{args.rounds} rounds; base {args.base}")
    for k, v in median.items():
        print(f"{k:>8}: median {v:,.0f} rows/s (runs: {', '.join(f'{r:,.0f}' for r in rates[k])})")
    print(f"counters cost: {100 * (1 - median['counters'] / median['before']):.1f} %")
    print(f"tap cost: {100 * (1 - median['tap'] / median['counters']):.1f} % (tap printed a median of "
          f"{statistics.median(printed):.0f} records per run)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
