#!/usr/bin/env python3
"""The tutorial job through Kafka: events/s, peak RSS and start -> first result, next to the
broker's own produce and consume ceilings measured with the same client settings.

Builds weir and the `kafka_ceiling` example in release mode, generates a user log with
`weir gen user-log`, then, each on a fresh broker:

  1. pipeline, embedded broker: `weir run pipelines/shopping_gender.toml` with rate = "max"
     (csv -> kafka `sex` -> kafka source -> 1 s window -> kafka `result` + console + dashboard),
     wall time from launch to exit (broker start and topic creation included);
  2. pipeline, broker aside: the same against a separate `weir broker` process, so weir's peak
     RSS excludes the in-memory broker's data;
  3. ceiling: `kafka_ceiling` produces N one-byte messages to a separate `weir broker`, waits for
     every acknowledgement, then consumes them back, with weir's producer and consumer settings;
  4. first result: the shipped pipeline at its normal 10 rows/s, time from launch to the first
     window on stdout;
  5. the guarantee's cost: step 1 again with `kafka.guarantee = "at-least-once"` (step 1 runs with
     the default, exactly once: transactions every 200 ms);
  6. the standalone tansu binary's ceilings with the same loop, and a `sqlite://` broker with N
     stored messages read back (durable(), below);
  7. restart after kill -9: the counting job (tests/fixtures/count_sex.toml) on a separate
     `weir broker` while a loader writes 100 rows/s, killed with SIGKILL once it has printed
     results, restarted at once: time from the restart's launch to its first new window on stdout
     (a read_committed reader of `result` sees it at the next commit, up to 200 ms later).

    python3 bench/kafka.py [--rows 1000000] [--runs 3]
"""

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WEIR = os.path.join(TARGET, "release", "weir")
CEILING = os.path.join(TARGET, "release", "examples", "kafka_ceiling")
PIPELINE = os.path.join(ROOT, "pipelines", "shopping_gender.toml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listens on {port}")


STANDALONE_TANSU = os.path.expanduser("~/.cache/weir/tansu-standalone/tansu")
# confluent-kafka (librdkafka with its own defaults) for the durable-storage reads: the peers'
# virtualenv, made by `bash bench/peers.sh --setup`.
PEERS_PYTHON = os.path.join(
    os.environ.get("PEERS_VENV", os.path.expanduser("~/.cache/weir/peers-venv")), "bin", "python")


class Broker:
    """A fresh broker for one measurement: `weir broker` in memory by default; `storage` another
    storage URL; `standalone` the rig's own tansu binary (bench/peers.sh --setup fetches it)."""

    def __init__(self, storage="memory://", standalone=False, port=None):
        self.storage = storage
        self.standalone = standalone
        self.port = port or free_port()

    def __enter__(self):
        self.address = f"127.0.0.1:{self.port}"
        if self.standalone:
            url = f"tcp://{self.address}"
            cmd = [STANDALONE_TANSU, "broker", "--listener-url", url,
                   "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        else:
            cmd = [WEIR, "-q", "broker", "--listen", self.address, "--storage", self.storage]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def __exit__(self, *_):
        self.proc.terminate()
        self.proc.wait()


def reported_rss_mb(text):
    found = re.findall(r"peak memory \(RSS\): ([0-9.]+) MB", text)
    return float(found[-1]) if found else 0.0


def pipeline(csv, extra):
    """Runs the shipped pipeline flat out; returns (wall seconds, weir's peak RSS in MB)."""
    cmd = [
        WEIR, "run", PIPELINE,
        "--set", 'sources.user_log.rate="max"',
        "--set", f"sources.user_log.path={csv}",
        "--set", f"sinks.dashboard.listen=127.0.0.1:{free_port()}",
    ] + extra
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"weir exited with {proc.returncode}:\n{proc.stderr}")
    return wall, reported_rss_mb(proc.stderr)


def restart_after_kill(csv):
    """Seconds from relaunching a SIGKILLed counting job to its first new window."""
    count = [
        WEIR, "-q", "run", os.path.join(ROOT, "tests", "fixtures", "count_sex.toml"),
        "--set", 'sinks.print={ type = "console", inputs = ["per_second"], format = "json" }',
    ]
    with Broker() as b:
        env = dict(os.environ, BROKERS=b.address, CSV=csv, RATE="100", GROUP="bench")
        loader = subprocess.Popen(
            [WEIR, "-q", "run", os.path.join(ROOT, "tests", "fixtures", "load_sex.toml")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            first = subprocess.Popen(count, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
            for _ in range(3):
                first.stdout.readline()
            first.kill()
            first.wait()
            start = time.perf_counter()
            again = subprocess.Popen(count, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
            line = again.stdout.readline()
            took = time.perf_counter() - start
            again.terminate()
            again.wait()
        finally:
            loader.kill()
            loader.wait()
    if not line.startswith("{"):
        sys.exit(f"unexpected first line after the restart: {line!r}")
    return took


def ceiling(address, rows, *extra):
    """One run of the raw Rust client (`kafka_ceiling`); its JSON line as a dict."""
    out = subprocess.run(
        [CEILING, address, str(rows), *extra], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def durable(rows):
    """The `sqlite://` broker with `rows` stored one-byte messages: fill it, restart the broker
    (so the reads come from the file), then read everything back with the raw Rust loop on weir's
    consumer settings, and with a confluent-kafka consumer on librdkafka's own defaults (time from
    creating the consumer to its first message, and rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/broker.db"
        port = free_port()
        with Broker(storage, port=port) as b:
            filled = ceiling(b.address, rows, "produce")
        result = {"rows": rows, "produce_per_s": round(filled["produce_per_s"])}
        with Broker(storage, port=port) as b:
            weir_read = ceiling(b.address, rows, "consume")
        with Broker(storage, port=port) as b:
            default_read = json.loads(subprocess.run(
                [PEERS_PYTHON, os.path.join(ROOT, "bench", "default_consumer.py"), b.address,
                 "ceiling", str(rows)],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1])
        result["weir_settings"] = {
            "consume_per_s": round(weir_read["consume_per_s"]),
            "first_message_s": weir_read["first_message_s"],
        }
        result["librdkafka_defaults"] = {
            "consume_per_s": round(default_read["consume_per_s"]),
            "first_message_s": default_read["first_message_s"],
        }
        return result


def first_result():
    cmd = [
        WEIR, "-q", "run", PIPELINE,
        "--set", f"kafka.embedded.listen=127.0.0.1:{free_port()}",
        "--set", f"sinks.dashboard.listen=127.0.0.1:{free_port()}",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    took = time.perf_counter() - start
    proc.terminate()
    proc.wait()
    if not line.startswith("[{"):
        sys.exit(f"unexpected first line: {line!r}")
    return took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir",
         "--example", "kafka_ceiling"],
        cwd=ROOT, check=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "user_log.csv")
        subprocess.run(
            [WEIR, "-q", "gen", "user-log", "--rows", str(args.rows), "--seed", "1", "--out", csv],
            check=True,
        )
        embedded, at_least_once, aside, ceilings, firsts, restarts = [], [], [], [], [], []
        standalone = []
        for _ in range(args.runs):
            embedded.append(pipeline(csv, ["--set", f"kafka.embedded.listen=127.0.0.1:{free_port()}"]))
            at_least_once.append(pipeline(csv, [
                "--set", f"kafka.embedded.listen=127.0.0.1:{free_port()}",
                "--set", 'kafka.guarantee="at-least-once"',
            ]))
            restarts.append(restart_after_kill(csv))
            with Broker() as b:
                aside.append(pipeline(csv, ["--set", f"kafka.brokers={b.address}"]))
            with Broker() as b:
                ceilings.append(ceiling(b.address, args.rows))
            with Broker(standalone=True) as b:
                standalone.append(ceiling(b.address, args.rows))
            firsts.append(first_result())
        stored = durable(args.rows)

    rows = args.rows
    best_embedded = min(w for w, _ in embedded)
    best_aside = min(w for w, _ in aside)
    produce = max(c["produce_per_s"] for c in ceilings)
    consume = max(c["consume_per_s"] for c in ceilings)
    sequential = 1 / (1 / produce + 1 / consume)
    weir_rate = rows / best_embedded
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"rows: {rows:,}, best of {args.runs} (every run on a fresh broker)")
    print()
    print("| measurement | figure |")
    print("|---|---|")
    print(f"| pipeline, embedded broker: wall (launch to exit) | {best_embedded:.2f} s = **{weir_rate:,.0f} events/s** |")
    best_alo = min(w for w, _ in at_least_once)
    print(f"| pipeline, embedded broker, at least once: wall | {best_alo:.2f} s = {rows / best_alo:,.0f} events/s |")
    print(f"| exactly once / at least once (throughput) | {best_alo / best_embedded:.0%} |")
    print(f"| pipeline, separate broker: wall | {best_aside:.2f} s = {rows / best_aside:,.0f} events/s |")
    print(f"| broker ceiling, produce (acknowledged) | {produce:,.0f} msg/s |")
    print(f"| broker ceiling, consume | {consume:,.0f} msg/s |")
    print(f"| standalone tansu binary, produce / consume (same loop) | "
          f"{max(c['produce_per_s'] for c in standalone):,.0f} / "
          f"{max(c['consume_per_s'] for c in standalone):,.0f} msg/s |")
    print(f"| `sqlite://`, {stored['rows']:,} stored: produce | {stored['produce_per_s']:,} msg/s |")
    for label, key in (("weir's consumer settings", "weir_settings"),
                       ("librdkafka's defaults (confluent-kafka)", "librdkafka_defaults")):
        r = stored[key]
        print(f"| `sqlite://` read back, {label} | {r['consume_per_s']:,} msg/s, "
              f"first message after {r['first_message_s']:.3f} s |")
    print(f"| broker ceiling, produce then consume each message | {sequential:,.0f} msg/s |")
    print(f"| pipeline / consume ceiling | {weir_rate / consume:.0%} |")
    print(f"| pipeline / produce-then-consume ceiling | {weir_rate / sequential:.0%} |")
    print(f"| peak RSS, embedded broker (includes its in-memory data) | {max(r for _, r in embedded):.1f} MB |")
    print(f"| peak RSS, broker aside | {max(r for _, r in aside):.1f} MB |")
    print(f"| start -> first result (10 rows/s, 1 s windows) | best {min(firsts):.3f} s, worst {max(firsts):.3f} s |")
    print(f"| kill -9, restart -> first new result | best {min(restarts):.3f} s, worst {max(restarts):.3f} s |")


if __name__ == "__main__":
    main()
