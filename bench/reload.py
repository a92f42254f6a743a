#!/usr/bin/env python3
"""How fast an edit reaches the output: a csv -> 1 s window -> console pipeline run with
`weir run --watch`, replaying the sample so that a window closes every 10 ms of wall time; the
console sink's `format` is switched between "json" and "seed" EDITS times, and each time the
clock runs from the moment the file is written to the first line printed in the new format.

    python3 bench/reload.py [--edits 20]

Prints one JSON line (median, 90th percentile and worst, in ms) and writes
bench/results/reload.json.
"""

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.path.join(TARGET, "release", "weir")
RESULTS = os.path.join(ROOT, "bench", "results")

PIPELINE = """
[sources.log]
type = "csv"
path = "{csv}"
rate = 1000
event_rate = 10
loop = true

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.out]
type = "console"
inputs = ["per_second"]
format = "{format}"
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                   cwd=ROOT, check=True)
    csv = os.path.join(ROOT, "data", "user_log_sample.csv")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.toml")
        with open(path, "w") as f:
            f.write(PIPELINE.format(csv=csv, format="json"))
        run = subprocess.Popen([WEIR, "-q", "run", "--watch", path], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        lines = []  # (time, is_seed)
        seen = threading.Condition()

        def read():
            for line in run.stdout:
                with seen:
                    lines.append((time.monotonic(), line.startswith("[")))
                    seen.notify_all()

        threading.Thread(target=read, daemon=True).start()
        time.sleep(1.5)
        waits = []
        fmt = "json"
        for _ in range(args.edits):
            fmt = "seed" if fmt == "json" else "json"
            with seen:
                start_index = len(lines)
            written = time.monotonic()
            with open(path, "w") as f:
                f.write(PIPELINE.format(csv=csv, format=fmt))
            with seen:
                ok = seen.wait_for(
                    lambda: any(s == (fmt == "seed") for _, s in lines[start_index:]), timeout=10)
                assert ok, "no output in the new format"
                first = next(t for t, s in lines[start_index:] if s == (fmt == "seed"))
            waits.append((first - written) * 1000)
            time.sleep(0.3)
        run.terminate()
        run.wait()
    waits.sort()
    result = {
        "edits": len(waits),
        "median_ms": round(waits[len(waits) // 2], 1),
        "p90_ms": round(waits[int(len(waits) * 0.9) - 1], 1),
        "worst_ms": round(waits[-1], 1),
        "watch_poll_ms": 50,
        "window_closes_every_ms": 10,
    }
    print(json.dumps(result))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "reload.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
