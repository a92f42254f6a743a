#!/usr/bin/env python3
"""Every benchmark in one run, on this machine, written to bench/results/ and BENCHMARKS.md's
tables come from its output:

  a. the data generator: the full-size user log (54,925,330 rows) written and timed;
  b. in memory, csv -> 1 s window -> discard, next to the csv crate's raw parse rate, at 1M,
     10M and 54.9M rows (the scaling table, and the plot bench/results/scaling.png);
  c. the tutorial job through Kafka (bench/kafka.py's measurements) on 1 and 3 partitions, next
     to the broker's produce and consume ceilings; start -> first result; peak RSS;
  d. window close -> dashboard client latency at 1,000 and 10,000 clients, without and with 10 %
     of them stalled, three runs each, and the kernel's floor for as many plain loopback
     connections (bench/dashboard.sh);
  e. the peers on the peer rig (bench/peers.sh): plain Python, quixstreams, bytewax, Spark and
     weir, 1 partition, then 3 partitions for correctness;
  f. the count job and a parse-only job with 1 and 2 parser threads and window instances, on 10M
     rows: rows/s and CPU seconds per million rows (bench/count.py's parallel_variants).

    python3 bench/all.py [--quick]      # --quick: 1M rows only, 200k events for the peers
    python3 bench/all.py --only dashboard   # redo d. alone, keeping the other results
    python3 bench/all.py --only parallel    # redo f. alone

Needs the README's set-up; the peers' virtualenv is made on first use (bench/peers.sh). Ends by
rewriting the figure tables of BENCHMARKS.md and README.md from the results (bench/tables.py).
"""

import argparse
import csv as csvmod
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import count  # noqa: E402  (bench/count.py)
import kafka  # noqa: E402  (bench/kafka.py)

RESULTS = os.path.join(HERE, "results")
FULL_ROWS = 54_925_330


def gen(rows, path):
    start = time.perf_counter()
    subprocess.run(
        [count.WEIR, "-q", "gen", "user-log", "--rows", str(rows), "--seed", "1", "--out", path],
        check=True,
    )
    return time.perf_counter() - start


def in_memory(csv, rows, runs, tmp):
    pipeline = os.path.join(tmp, "count.toml")
    with open(pipeline, "w") as f:
        f.write(count.PIPELINE.format(csv=csv))
    base_s, base_rss = count.run_best([count.BASELINE, csv], runs)
    weir_s, weir_rss = count.run_best([count.WEIR, "run", pipeline], runs)
    return {
        "rows": rows,
        "csv_crate_rows_per_s": round(rows / base_s),
        "weir_rows_per_s": round(rows / weir_s),
        "weir_share_of_raw_parse": round(base_s / weir_s, 3),
        "weir_peak_rss_mb": weir_rss,
    }


def through_kafka(csv, rows, partitions, runs):
    walls = []
    rss = []
    for _ in range(runs):
        with kafka.Broker() as b:
            wall, peak = kafka.pipeline(
                csv,
                ["--set", f"kafka.brokers={b.address}", "--set", f"kafka.partitions={partitions}"],
            )
        walls.append(wall)
        rss.append(peak)
    return {"partitions": partitions, "events_per_s": round(rows / min(walls)), "weir_peak_rss_mb": max(rss)}


def ceilings(rows, runs, standalone=False):
    """Best of `runs` raw Rust produce and consume rates (`kafka_ceiling`, weir's client settings)
    on a fresh `weir broker`, or on the standalone tansu binary."""
    best = {"produce_per_s": 0, "consume_per_s": 0}
    for _ in range(runs):
        with kafka.Broker(standalone=standalone) as b:
            c = kafka.ceiling(b.address, rows)
        for k in best:
            best[k] = max(best[k], round(c[k]))
    return best


def dashboard(summary, quick):
    clients = ["1000"] if quick else ["1000", "10000"]
    out = subprocess.run(
        ["bash", os.path.join(HERE, "dashboard.sh"), *clients],
        capture_output=True, text=True, cwd=ROOT, check=True,
        env=dict(os.environ, RUNS="1" if quick else "3"),
    )
    summary.pop("dashboard_1000_clients", None)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    summary["dashboard"] = [line for line in lines if not line.get("floor")]
    summary["dashboard_floor"] = [line for line in lines if line.get("floor")]
    summary["dashboard_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def parallel(summary, quick):
    rows = 1_000_000 if quick else 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "user_log.csv")
        gen(rows, csv)
        summary["parallel"] = count.parallel_variants(csv, rows, 3, tmp)
    summary["parallel_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for row in summary["parallel"]:
        print(json.dumps(row), flush=True)


def tables():
    subprocess.run([sys.executable, os.path.join(HERE, "tables.py")], check=True)


def peers(events, partitions, names, extra_env=None):
    env = dict(os.environ, PARTITIONS=str(partitions), **(extra_env or {}))
    subprocess.run(["bash", os.path.join(HERE, "peers.sh"), "-n", str(events), *names], check=True, env=env)


def plot(scaling, path):
    """Throughput against input size (needs matplotlib, installed in the peers' venv)."""
    venv_python = os.path.expanduser(
        os.path.join(os.environ.get("PEERS_VENV", "~/.cache/weir/peers-venv"), "bin", "python")
    )
    script = f"""
import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = json.loads({json.dumps(json.dumps(scaling))})
x = [r["rows"] for r in rows]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(x, [r["csv_crate_rows_per_s"] / 1e6 for r in rows], "o--", label="csv crate alone (1 core)")
ax.plot(x, [r["weir_rows_per_s"] / 1e6 for r in rows], "o-", label="weir: csv -> 1 s window -> discard")
ax.set_xscale("log")
ax.set_xlabel("rows in the user log")
ax.set_ylabel("million rows per second")
ax.set_ylim(bottom=0)
ax.set_title("In-memory count job, 2-core machine")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig({path!r}, dpi=120)
"""
    subprocess.run([venv_python, "-c", script], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["dashboard", "parallel"], help="redo one benchmark, keep the other results")
    args = ap.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    if args.only:
        with open(os.path.join(RESULTS, "summary.json")) as f:
            summary = json.load(f)
        if args.only == "dashboard":
            dashboard(summary, args.quick)
        else:
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                           cwd=ROOT, check=True)
            parallel(summary, args.quick)
        with open(os.path.join(RESULTS, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        tables()
        return
    for old in ("peers.tsv", "peers-embedded.tsv", "summary.json"):
        if os.path.exists(os.path.join(RESULTS, old)):
            os.remove(os.path.join(RESULTS, old))
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir",
         "--example", "csv_baseline", "--example", "kafka_ceiling", "--example", "dashboard_load", "--example", "fanout_floor"],
        cwd=ROOT, check=True,
    )
    subprocess.run(["bash", os.path.join(HERE, "peers.sh"), "--setup"], check=True)
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000, FULL_ROWS]
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
    }
    scaling = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            csv = os.path.join(tmp, f"user_log_{rows}.csv")
            took = gen(rows, csv)
            if rows == sizes[-1]:
                summary["generator"] = {
                    "rows": rows, "seconds": round(took, 2), "mb": round(os.path.getsize(csv) / 1e6)
                }
            runs = 3 if rows <= 10_000_000 else 2
            scaling.append(in_memory(csv, rows, runs, tmp))
            print(json.dumps(scaling[-1]), flush=True)
            if rows == 1_000_000:
                summary["kafka"] = [through_kafka(csv, rows, p, 3) for p in (1, 3)]
                summary["kafka_ceilings"] = ceilings(rows, 3)
                summary["kafka_ceilings_standalone"] = ceilings(rows, 3, standalone=True)
                summary["durable"] = kafka.durable(rows)
                print(json.dumps(summary["kafka"]), json.dumps(summary["kafka_ceilings"]),
                      json.dumps(summary["kafka_ceilings_standalone"]), json.dumps(summary["durable"]),
                      flush=True)
            if rows != sizes[-1]:
                os.remove(csv)
    summary["first_result_s"] = round(min(kafka.first_result() for _ in range(3)), 3)
    summary["scaling"] = scaling
    parallel(summary, args.quick)
    dashboard(summary, args.quick)
    with open(os.path.join(RESULTS, "scaling.csv"), "w", newline="") as f:
        w = csvmod.DictWriter(f, fieldnames=list(scaling[0]))
        w.writeheader()
        w.writerows(scaling)
    with open(os.path.join(RESULTS, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    plot(scaling, os.path.join(RESULTS, "scaling.png"))

    events = 200_000 if args.quick else 2_000_000
    # The goals are judged on the rig's own (standalone) broker; the embedded build runs the rows
    # that compare the two.
    standalone = {"BROKER": "standalone"}
    peers(events, 1, ["ceiling", "plain", "plain-tuned", "quix", "bytewax", "spark", "weir"], standalone)
    peers(events, 3, ["plain", "quix", "bytewax", "weir"], standalone)
    peers(events, 1, ["ceiling", "plain", "plain-tuned", "weir"],
          {"BROKER": "embedded", "PEERS_RESULTS": os.path.join(RESULTS, "peers-embedded.tsv")})

    with open(os.path.join(RESULTS, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    tables()


if __name__ == "__main__":
    main()
