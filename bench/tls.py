#!/usr/bin/env python3
"""What TLS costs the Kafka job: the shipped pipeline (csv flat out -> kafka `sex` -> kafka source
-> 1 s window -> kafka `result`, exactly once) against a separate `weir broker`, once in
plaintext and once through TLS (`[kafka] tls = { ca }`), alternating, on one machine.

The broker's own listener is plaintext, so for TLS stunnel (Debian's stunnel4) terminates TLS in
front of it and the broker advertises stunnel's port: the TLS figure includes stunnel's work on
the same 2 cores (decrypting and re-sending every byte), so it overstates what TLS costs against
a broker that speaks TLS itself.

    python3 bench/tls.py [--rows 1000000] [--runs 3]

Prints one JSON line per mode (best of the runs by events/s) and writes bench/results/tls.json.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import kafka  # bench/kafka.py: free ports, the release binaries

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def openssl(tmp, *args):
    subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)


def make_certs(tmp):
    openssl(tmp, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl(tmp, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(tmp, "san.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    openssl(tmp, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")


def one_run(tmp, csv, rows, tls):
    plain, tls_port = kafka.free_port(), kafka.free_port()
    advertised = f"127.0.0.1:{tls_port if tls else plain}"
    broker = subprocess.Popen(
        [kafka.WEIR, "-q", "broker", "--listen", f"127.0.0.1:{plain}", "--advertise", advertised],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stunnel = None
    try:
        kafka.wait_for_port(plain)
        extra = ["--set", f'kafka.brokers="{advertised}"']
        if tls:
            conf = os.path.join(tmp, "stunnel.conf")
            with open(conf, "w") as f:
                f.write(f"foreground = yes\npid =\n[kafka]\naccept = {advertised}\n"
                        f"connect = 127.0.0.1:{plain}\ncert = {tmp}/server.pem\n"
                        f"key = {tmp}/server.key\n")
            stunnel = subprocess.Popen(["stunnel4", conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            kafka.wait_for_port(tls_port)
            extra += ["--set", f'kafka.tls={{ ca = "{tmp}/ca.pem" }}']
        wall, rss = kafka.pipeline(csv, extra)
    finally:
        if stunnel:
            stunnel.terminate()
            stunnel.wait()
        broker.terminate()
        broker.wait()
    return {"mode": "tls" if tls else "plaintext", "rows": rows, "wall_s": round(wall, 3),
            "events_per_s": round(rows / wall), "peak_rss_mb": rss}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "weir", "--bin", "weir"],
                   cwd=kafka.ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        make_certs(tmp)
        csv = os.path.join(tmp, "user_log.csv")
        subprocess.run([kafka.WEIR, "-q", "gen", "user-log", "--rows", str(args.rows),
                        "--seed", "1", "--out", csv], check=True)
        runs = {"plaintext": [], "tls": []}
        for _ in range(args.runs):
            for tls in (False, True):
                run = one_run(tmp, csv, args.rows, tls)
                runs[run["mode"]].append(run)
        rows = []
        for mode, done in runs.items():
            best = max(done, key=lambda r: r["events_per_s"])
            best["events_per_s_all_runs"] = [r["events_per_s"] for r in done]
            rows.append(best)
            print(json.dumps(best), flush=True)
    cost = 1 - rows[1]["events_per_s"] / rows[0]["events_per_s"]
    print(json.dumps({"tls_cost": round(cost, 3)}))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "tls.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": rows,
                   "tls_cost": round(cost, 3)}, f, indent=2)


if __name__ == "__main__":
    main()
