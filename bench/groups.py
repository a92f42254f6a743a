#!/usr/bin/env python3
"""Kafka jobs with 1 and 2 `weir run` processes in one consumer group (`assignment = "group"`).

On a fresh `weir broker` (memory storage) the topic `events` (2 partitions) is filled with N
one-byte messages (gender digits) by `kafka_ceiling`; then the members start together and a raw
Rust reader (`kafka_ceiling consume`, read_committed) waits for their output. Two jobs:

  copy   topic to topic (kafka source in the group -> kafka sink `copied`, at least once); the
         reader waits for all N copies;
  count  the rig's job: 1 s windows counting each gender, exactly once; with the group the
         window is shared (per-partition partials merged by one member, docs/scaling.md). The
         messages are stamped `--per-second` to a second of event time, and the reader waits
         for every window but the last (which no later record closes). Also run once with
         `assignment = "all"` in one process: the plain window, for the cost of sharing.

Reported per run: the wall time from the members' launch to the last output (group join
included), the rate after the first output, and the members' CPU seconds (user + system, from
/proc) per million events. The broker and the reader run on the same 2 cores.

    python3 bench/groups.py [--job copy|count] [--events 2000000] [--runs 3] [--per-second 100000]

Prints one JSON line per configuration (best of the runs by wall time) and writes them to
bench/results/groups.json (copy) or bench/results/groups_count.json (count).
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import kafka  # bench/kafka.py: Broker, free ports, the release binaries

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TICKS = os.sysconf("SC_CLK_TCK")

PIPELINE = """[kafka]
brokers = "{address}"
guarantee = "at-least-once"

[sources.events]
type = "kafka"
topic = "events"
assignment = "group"
group_id = "bench"

[sinks.copied]
type = "kafka"
inputs = ["events"]
topic = "copied"
"""


COUNT_PIPELINE = """[kafka]
brokers = "{address}"

[sources.events]
type = "kafka"
topic = "events"
codec = "raw"
fields = ["gender"]
assignment = "{assignment}"
group_id = "bench"

[transforms.per_second]
type = "window"
inputs = ["events"]
size = "1s"
group_by = ["gender"]

[sinks.result]
type = "kafka"
inputs = ["per_second"]
topic = "result"
codec = "json"
fields = ["window_start", "gender", "count"]
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def one_run(members, events, tmp, job="copy", per_second=10, assignment="group"):
    with kafka.Broker() as broker:
        kafka.ceiling(broker.address, events, "produce", "--topic", "events", "--partitions", "2",
                      "--per-second", str(per_second))
        output = "copied" if job == "copy" else "result"
        # The output topic exists before the reader starts (0 messages: created only).
        kafka.ceiling(broker.address, 0, "produce", "--topic", output)
        pipeline = os.path.join(tmp, f"{job}.toml")
        with open(pipeline, "w") as f:
            if job == "copy":
                f.write(PIPELINE.format(address=broker.address))
            else:
                f.write(COUNT_PIPELINE.format(address=broker.address, assignment=assignment))
        if job == "copy":
            expected = events
        else:
            windows = -(-events // per_second)
            expected = (windows - 1) * 3
        started = time.perf_counter()
        procs = [
            subprocess.Popen([kafka.WEIR, "-q", "run", pipeline],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(members)
        ]
        read = kafka.ceiling(broker.address, expected, "consume", "--topic", output)
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    after_first = read["consume_s"] - read["first_message_s"]
    return {
        "job": job,
        "assignment": assignment,
        "members": members,
        "partitions": 2,
        "events": events,
        "per_second": per_second,
        "wall_s": round(wall, 3),
        "first_output_s": read["first_message_s"],
        "events_per_s_after_first": round(events / after_first),
        "events_per_s_wall": round(events / wall),
        "cpu_s_per_million": round(cpu / (events / 1e6), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--job", choices=["copy", "count"], default="copy")
    ap.add_argument("--per-second", type=int, default=100_000,
                    help="count job: events per second of event time")
    args = ap.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir",
         "--example", "kafka_ceiling"],
        cwd=kafka.ROOT, check=True,
    )
    if args.job == "copy":
        configs = [("group", 1), ("group", 2)]
        per_second = 10
    else:
        configs = [("all", 1), ("group", 1), ("group", 2)]
        per_second = args.per_second
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for assignment, members in configs:
            runs = [one_run(members, args.events, tmp, args.job, per_second, assignment)
                    for _ in range(args.runs)]
            best = min(runs, key=lambda r: r["wall_s"])
            best["cpu_s_per_million_all_runs"] = [r["cpu_s_per_million"] for r in runs]
            rows.append(best)
            print(json.dumps(best), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    name = "groups.json" if args.job == "copy" else "groups_count.json"
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": rows},
                  f, indent=2)


if __name__ == "__main__":
    main()
