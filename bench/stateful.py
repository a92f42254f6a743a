#!/usr/bin/env python3
"""Stateful transforms benchmark (issue #33's goals: a session window at least half the tumbling
window's rows/s on the same input, the interval join at least 1 M rows/s in memory): csv -> [transform] -> blackhole on a generated log, one
parser thread, best of several runs; every rate also as a share of the first job's (the tumbling
window), so the ratios come from one run of this script.

    python3 bench/stateful.py [--rows 1000000] [--runs 3]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from expr import measure  # noqa: E402

# The interval join's jobs: clicks and purchases of one source, filtered apart, then joined; the
# same two filters merged again without a join, to tell the join's cost from theirs.
SIDES = """
[transforms.clicks]
type = "filter"
inputs = ["log"]
where = "action == '0'"

[transforms.purchases]
type = "filter"
inputs = ["log"]
where = "action == '2'"
"""
UNION = """
[transforms.t]
type = "filter"
inputs = ["clicks", "purchases"]
where = "true"
"""
JOIN = """
[transforms.t]
type = "join"
inputs = ["clicks", "purchases"]
on = {on}
within = "{within}"
before = "{before}"
"""

JOBS = [
    ("window 1m by cat_id (tumbling)",
     'type = "window"\nsize = "1m"\ngroup_by = ["cat_id"]\nparallelism = 1'),
    ("session gap 2s by cat_id", 'type = "session"\ngap = "2s"\ngroup_by = ["cat_id"]'),
    ("session gap 30m by user_id", 'type = "session"\ngap = "30m"\ngroup_by = ["user_id"]'),
    ("dedupe user_id, item_id within 10m",
     'type = "dedupe"\nkeys = ["user_id", "item_id"]\nwithin = "10m"'),
    ("two filters (clicks, purchases), no join", SIDES + UNION),
    ("join clicks, purchases on user_id, item_id within 10m", SIDES + JOIN.format(
        on='["user_id", "item_id"]', within="10m", before="0s")),
    ("join clicks, purchases on cat_id -10s..30s", SIDES + JOIN.format(
        on='["cat_id"]', within="30s", before="10s")),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    measure(JOBS, "stateful", args.rows, args.runs)


if __name__ == "__main__":
    main()
