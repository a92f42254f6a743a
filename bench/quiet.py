#!/usr/bin/env python3
"""How soon the last window of a live input that goes quiet comes out (issue 30, item 4).

The tutorial's producer pattern: `--rows` rows at 10 a second into topic `sex` of a `weir broker`,
each stamped with the clock, then nothing. A `weir run` counts them per 1-second window (kafka
source, `window`, console sink). Measured per run: when the line of the last row's window
appears, after that window's end and after the last row was sent. With `follow_clock = false`
(the behaviour before 2026-12-07) the window never comes; the run reports it as missing after
`--wait` seconds.

    ~/.cache/weir/venv-sio5/bin/python bench/quiet.py [--runs 5] [--rows 30] [--follow-clock false]
        [--binary PATH]

(kafka-python comes from the venv tests/setup.sh makes.) Prints one JSON line per run and a
summary, and writes bench/results/quiet.json.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# bench/kafka.py (free ports, the release binary) under another name, and kafka-python as `kafka`.
_spec = importlib.util.spec_from_file_location("bench_kafka", os.path.join(HERE, "kafka.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
from kafka import KafkaProducer  # noqa: E402

PIPELINE = """[kafka]
brokers = "{bootstrap}"

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
codec = "json"
follow_clock = {follow_clock}

[transforms.per_second]
type = "window"
inputs = ["sex"]
size = "1s"
group_by = ["gender"]

[sinks.console]
type = "console"
inputs = ["per_second"]
"""


def one_run(rows, follow_clock, wait):
    with tempfile.TemporaryDirectory() as tmp:
        port = bench.free_port()
        bootstrap = f"127.0.0.1:{port}"
        broker = subprocess.Popen(
            [bench.WEIR, "broker", "--listen", bootstrap, "--storage", "memory://"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_for_port(port)
        path = os.path.join(tmp, "quiet.toml")
        with open(path, "w") as f:
            f.write(PIPELINE.format(bootstrap=bootstrap, follow_clock=follow_clock))
        run = subprocess.Popen([bench.WEIR, "run", path], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        seen = {}  # window_start -> wall time (s) its first line came

        def read():
            for line in run.stdout:
                window = json.loads(line)["window_start"]
                seen.setdefault(window, time.time())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2)  # the run subscribes
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        last_stamp = None
        for i in range(rows):
            last_stamp = int(time.time() * 1000)
            producer.send("sex", json.dumps({"gender": str(i % 3)}).encode(),
                          timestamp_ms=last_stamp)
            time.sleep(0.1)
        producer.flush()
        last_sent = time.time()
        last_window = last_stamp // 1000 * 1000
        deadline = time.time() + wait
        while last_window not in seen and time.time() < deadline:
            time.sleep(0.05)
        run.terminate()
        run.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=30)
        came = seen.get(last_window)
        return {
            "follow_clock": follow_clock,
            "rows": rows,
            "last_window_after_its_end_s":
                None if came is None else round(came - (last_window + 1000) / 1000, 3),
            "last_window_after_last_row_s":
                None if came is None else round(came - last_sent, 3),
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--wait", type=float, default=15.0)
    parser.add_argument("--follow-clock", default="true", choices=["true", "false"])
    parser.add_argument("--binary", help="a weir binary to use instead of building the release "
                        "one (the delay is set by timers, not by speed)")
    args = parser.parse_args()
    if args.binary:
        bench.WEIR = os.path.abspath(args.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                       cwd=bench.ROOT, check=True)
    results = []
    for _ in range(args.runs):
        result = one_run(args.rows, args.follow_clock, args.wait)
        print(json.dumps(result), flush=True)
        results.append(result)
    came = [r["last_window_after_its_end_s"] for r in results
            if r["last_window_after_its_end_s"] is not None]
    summary = {
        "runs": len(results),
        "missing": len(results) - len(came),
        "median_after_window_end_s": statistics.median(came) if came else None,
        "max_after_window_end_s": max(came) if came else None,
    }
    print(json.dumps(summary))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "quiet.json"), "w") as f:
        json.dump({"runs": results, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
