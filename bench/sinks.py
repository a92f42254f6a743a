#!/usr/bin/env python3
"""Sink benchmark (issue #35's goals: the `postgres` sink upserting at least 100,000 window rows/s,
the `http` sink at least 50,000 records/s to a local server at its default batch size).

Builds weir in release mode, generates a user log with `weir gen user-log`, starts a PostgreSQL
server of its own (initdb in a temporary directory; Debian's `postgresql`, as the tests use it;
fsync and synchronous commit left on) and a local HTTP server (Python's threading server, which
reads each body and answers 200), then runs, best of several runs:

- a window of 1 minute by user_id, item_id (nearly a row per input row) into a blackhole, and the
  same into `postgres` (the rows written are counted in the table);
- the parsed log into a blackhole, and the same into `http` (the records received are counted by
  the server).

Reports wall time, rows/s through the sink and each sink job's rate as a share of its blackhole
twin's, so the ratios come from one run of this script.

    python3 bench/sinks.py [--rows 1000000] [--runs 3]
"""

import argparse
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

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

WINDOW = """
[transforms.t]
type = "window"
inputs = ["log"]
size = "1m"
group_by = ["user_id", "item_id"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A PostgreSQL server in a temporary directory, run as `postgres` when we are root."""

    def __init__(self, tmp):
        bins = sorted(os.path.join("/usr/lib/postgresql", v, "bin")
                      for v in os.listdir("/usr/lib/postgresql"))
        self.bin = bins[-1]
        self.dir = os.path.join(tmp, "pg")
        os.mkdir(self.dir)
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres")
            shutil.chown(self.dir, "postgres")
            self.as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        data = os.path.join(self.dir, "data")
        subprocess.run(self.as_user + [os.path.join(self.bin, "initdb"), "-D", data, "-A", "trust",
                                       "-U", "weir"], check=True, capture_output=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            self.as_user + [os.path.join(self.bin, "postgres"), "-D", data, "-p", str(self.port),
                            "-k", self.dir, "-c", "listen_addresses=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if self.psql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("PostgreSQL did not start")

    def url(self):
        return f"postgres://weir@127.0.0.1:{self.port}/postgres"

    def psql(self, sql, check=True):
        return subprocess.run(["psql", "-X", "-q", "-t", "-A", self.url(), "-c", sql],
                              capture_output=True, text=True, check=check)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Counting(http.server.BaseHTTPRequestHandler):
    """Reads a body, counts its records (a JSON array), answers 200."""
    protocol_version = "HTTP/1.1"
    records = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = body.count(b"},{") + 1 if len(body) > 2 else 0
        with Counting.lock:
            Counting.records += n
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def measured(name, text, rows, runs, tmp, written):
    path = os.path.join(tmp, "job.toml")
    with open(path, "w") as f:
        f.write(text)
    wall, cpu, rss = run_measured([WEIR, "run", path], runs)
    out = written()
    return {"job": name, "input_rows": rows, "rows_through_sink": out,
            "rows_per_s": round(out / wall) if out else None, "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "peak_rss_mb": rss}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "weir"], cwd=ROOT, check=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        csv = os.path.join(tmp, "user_log.csv")
        subprocess.run([WEIR, "-q", "gen", "user-log", "--rows", str(args.rows), "--seed", "1",
                        "--out", csv], check=True)
        os.chmod(csv, 0o644)
        source = SOURCE.format(csv=csv)
        pg = Postgres(tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            window_rows = {}

            def count_window_rows():
                # The window's output, counted once with a file sink (the blackhole counts nothing
                # we can read back).
                if "n" not in window_rows:
                    out = os.path.join(tmp, "windows.jsonl")
                    with open(os.path.join(tmp, "count.toml"), "w") as f:
                        f.write(source + WINDOW + f'\n[sinks.f]\ntype = "file"\ninputs = ["t"]\npath = "{out}"\n')
                    subprocess.run([WEIR, "-q", "run", os.path.join(tmp, "count.toml")], check=True)
                    with open(out) as f:
                        window_rows["n"] = sum(1 for _ in f)
                return window_rows["n"]

            results.append(measured(
                "window 1m by user_id, item_id -> blackhole",
                source + WINDOW + '\n[sinks.s]\ntype = "blackhole"\ninputs = ["t"]\n',
                args.rows, args.runs, tmp, count_window_rows))

            def table_rows():
                return int(pg.psql("SELECT count(*) FROM bench_windows").stdout.strip())

            results.append(measured(
                "window 1m by user_id, item_id -> postgres",
                source + WINDOW + f'\n[sinks.s]\ntype = "postgres"\ninputs = ["t"]\nurl = "{pg.url()}"\n'
                'table = "bench_windows"\nkey = ["window_start", "user_id", "item_id"]\n',
                # One run: a second would find the first one's marks and skip every window.
                args.rows, 1, tmp, table_rows))
            results.append(measured(
                "log -> blackhole", source + '\n[sinks.s]\ntype = "blackhole"\ninputs = ["log"]\n',
                args.rows, args.runs, tmp, lambda: args.rows))

            def http_records():
                n = Counting.records
                Counting.records = 0
                return n // args.runs
            Counting.records = 0
            results.append(measured(
                "log -> http (batch_size 1000)",
                source + f'\n[sinks.s]\ntype = "http"\ninputs = ["log"]\nurl = "http://127.0.0.1:{server.server_port}/"\n',
                args.rows, args.runs, tmp, http_records))
        finally:
            server.shutdown()
            pg.stop()
    results[1]["share_of_blackhole"] = round(results[1]["rows_per_s"] / results[0]["rows_per_s"], 3)
    results[3]["share_of_blackhole"] = round(results[3]["rows_per_s"] / results[2]["rows_per_s"], 3)
    print(f"{'job':44} {'rows':>10} {'rows/s':>11} {'wall s':>7} {'of blackhole':>12} {'RSS MB':>7}")
    for r in results:
        print(f"{r['job']:44} {r['rows_through_sink']:>10,} {r['rows_per_s'] or 0:>11,} "
              f"{r['wall_s']:>7} {r.get('share_of_blackhole', ''):>12} {r['peak_rss_mb']:>7}")
    out = os.path.join(ROOT, "bench", "results", "sinks.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
