#!/usr/bin/env python3
"""The Kafka job with 1 and 2 `weir run` processes in one consumer group (`assignment = "group"`).

On a fresh `weir broker` (memory storage) the topic `events` (2 partitions) is filled with N
one-byte messages by `kafka_ceiling`; then the members start together, each running a
topic-to-topic pipeline (kafka source in the group -> kafka sink `copied`, at least once), and
`kafka_ceiling` reads `copied` back until all N have arrived. Reported per run: the wall time from
the members' launch to the last message (group join included), the rate after the first message,
and the members' CPU seconds (user + system, from /proc) per million events. The broker and the
reader run on the same 2 cores.

    python3 bench/groups.py [--events 2000000] [--runs 3]

Prints one JSON line per member count (best of the runs by wall time) and writes them to
bench/results/groups.json.
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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def one_run(members, events, tmp):
    with kafka.Broker() as broker:
        kafka.ceiling(broker.address, events, "produce", "--topic", "events", "--partitions", "2")
        # The output topic exists before the reader starts (0 messages: created only).
        kafka.ceiling(broker.address, 0, "produce", "--topic", "copied")
        pipeline = os.path.join(tmp, "copy.toml")
        with open(pipeline, "w") as f:
            f.write(PIPELINE.format(address=broker.address))
        started = time.perf_counter()
        procs = [
            subprocess.Popen([kafka.WEIR, "-q", "run", pipeline],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(members)
        ]
        read = kafka.ceiling(broker.address, events, "consume", "--topic", "copied")
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    after_first = read["consume_s"] - read["first_message_s"]
    return {
        "members": members,
        "partitions": 2,
        "events": events,
        "wall_s": round(wall, 3),
        "first_copy_s": read["first_message_s"],
        "events_per_s_after_first": round(events / after_first),
        "cpu_s_per_million": round(cpu / (events / 1e6), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for members in (1, 2):
            runs = [one_run(members, args.events, tmp) for _ in range(args.runs)]
            best = min(runs, key=lambda r: r["wall_s"])
            best["cpu_s_per_million_all_runs"] = [r["cpu_s_per_million"] for r in runs]
            rows.append(best)
            print(json.dumps(best), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "groups.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": rows},
                  f, indent=2)


if __name__ == "__main__":
    main()
