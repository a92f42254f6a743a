#!/usr/bin/env python3
"""Expression benchmark: what `where` and `compute` cost per record, against the same job with
the equality filter and with no transform at all.

Builds weir in release mode, generates a user log with `weir gen user-log`, then runs each
pipeline (csv -> [transform] -> blackhole, one parser thread) several times and reports the best
wall time, rows/s, CPU seconds per million rows and each job's rate as a share of the job with no
transform (so the ratios come from one run of this script).

    python3 bench/expr.py [--rows 1000000] [--runs 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from count import ROOT, WEIR, run_measured  # noqa: E402

SOURCE = """
[sources.log]
type = "csv"
path = "{csv}"
event_rate = 10
start_time = 1700000000000
progress = false
parallelism = 1
"""

JOBS = [
    ("no transform", None),
    ("filter field equals", 'type = "filter"\nfield = "action"\nequals = "2"'),
    ("filter where (one test)", 'type = "filter"\nwhere = "action == \'2\'"'),
    ("filter where (three tests, int())",
     'type = "filter"\nwhere = "action == \'2\' && age_range != \'\' && int(age_range) >= 4"'),
    ("select compute (two fields)",
     'type = "select"\nkeep = ["gender"]\n'
     'compute = { band = "age_range == \'\' ? \'?\' : int(age_range) >= 6 ? \'40+\' : \'under 40\'", '
     'night = "hour() < 6" }'),
]


def pipeline(csv, transform):
    """The job: the source, then `transform` (the options of a stage `t` reading the source, or
    whole `[transforms.*]` tables of which one is `t`), then a blackhole reading `t`."""
    text = SOURCE.format(csv=csv)
    if transform is None:
        return text + '\n[sinks.null]\ntype = "blackhole"\ninputs = ["log"]\n'
    if transform.lstrip().startswith("[transforms."):
        return text + "\n" + transform + '\n[sinks.null]\ntype = "blackhole"\ninputs = ["t"]\n'
    return (text + f'\n[transforms.t]\n{transform}\ninputs = ["log"]\n'
            + '\n[sinks.null]\ntype = "blackhole"\ninputs = ["t"]\n')


def measure(jobs, result_name, rows, runs):
    """Runs each (name, transform) of `jobs` on a generated log of `rows` rows, best of `runs`;
    prints the table and writes bench/results/<result_name>.json."""
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "weir"], cwd=ROOT, check=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "user_log.csv")
        subprocess.run([WEIR, "-q", "gen", "user-log", "--rows", str(rows), "--seed", "1",
                        "--out", csv], check=True)
        for name, transform in jobs:
            path = os.path.join(tmp, "job.toml")
            with open(path, "w") as f:
                f.write(pipeline(csv, transform))
            wall, cpu, rss = run_measured([WEIR, "run", path], runs)
            results.append({"job": name, "rows": rows, "rows_per_s": round(rows / wall),
                            "cpu_s_per_million": round(cpu / rows * 1e6, 3),
                            "peak_rss_mb": rss})
    base = results[0]["rows_per_s"]
    print(f"{'job':38} {'rows/s':>11} {'CPU s/M':>8} {'of first':>8} {'RSS MB':>7}")
    for r in results:
        r["share_of_first"] = round(r["rows_per_s"] / base, 3)
        print(f"{r['job']:38} {r['rows_per_s']:>11,} {r['cpu_s_per_million']:>8} "
              f"{r['share_of_first']:>8} {r['peak_rss_mb']:>7}")
    out = os.path.join(ROOT, "bench", "results", f"{result_name}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"written to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    measure(JOBS, "expr", args.rows, args.runs)


if __name__ == "__main__":
    main()
