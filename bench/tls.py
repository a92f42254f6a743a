#!/usr/bin/env python3
"""What TLS costs the Kafka job: the shipped pipeline (csv flat out -> kafka `sex` -> kafka source
-> 1 s window -> kafka `result`, exactly once) against a separate `weir broker`, in plaintext,
over TLS on the broker's own listener (`weir broker --tls-cert/--tls-key`), and, where Debian's
stunnel4 is installed, over TLS terminated by stunnel in front of a plaintext broker (how TLS
was served before the broker spoke it; stunnel's work runs on the same 2 cores). Clients use
`[kafka] tls = { ca }`. The modes alternate within each round, on one machine.

    python3 bench/tls.py [--rows 1000000] [--runs 3]

Prints one JSON line per mode (best of the runs by events/s) and writes bench/results/tls.json.
"""

import argparse
import json
import os
import shutil
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


def one_run(tmp, csv, rows, mode):
    plain, tls_port = kafka.free_port(), kafka.free_port()
    advertised = f"127.0.0.1:{tls_port if mode == 'stunnel' else plain}"
    command = [kafka.WEIR, "-q", "broker", "--listen", f"127.0.0.1:{plain}",
               "--advertise", advertised]
    if mode == "tls":
        command += ["--tls-cert", f"{tmp}/server.pem", "--tls-key", f"{tmp}/server.key"]
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stunnel = None
    try:
        kafka.wait_for_port(plain)
        extra = ["--set", f'kafka.brokers="{advertised}"']
        if mode == "stunnel":
            conf = os.path.join(tmp, "stunnel.conf")
            with open(conf, "w") as f:
                f.write(f"foreground = yes\npid =\n[kafka]\naccept = {advertised}\n"
                        f"connect = 127.0.0.1:{plain}\ncert = {tmp}/server.pem\n"
                        f"key = {tmp}/server.key\n")
            stunnel = subprocess.Popen(["stunnel4", conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            kafka.wait_for_port(tls_port)
        if mode != "plaintext":
            extra += ["--set", f'kafka.tls={{ ca = "{tmp}/ca.pem" }}']
        wall, rss = kafka.pipeline(csv, extra)
    finally:
        if stunnel:
            stunnel.terminate()
            stunnel.wait()
        broker.terminate()
        broker.wait()
    return {"mode": mode, "rows": rows, "wall_s": round(wall, 3),
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
        modes = ["plaintext", "tls"] + (["stunnel"] if shutil.which("stunnel4") else [])
        runs = {mode: [] for mode in modes}
        for _ in range(args.runs):
            for mode in modes:
                runs[mode].append(one_run(tmp, csv, args.rows, mode))
        best = {}
        for mode, done in runs.items():
            best[mode] = max(done, key=lambda r: r["events_per_s"])
            best[mode]["events_per_s_all_runs"] = [r["events_per_s"] for r in done]
            print(json.dumps(best[mode]), flush=True)
    cost = {mode: round(1 - best[mode]["events_per_s"] / best["plaintext"]["events_per_s"], 3)
            for mode in modes if mode != "plaintext"}
    print(json.dumps({"cost": cost}))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "tls.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "runs": list(best.values()), "cost": cost}, f, indent=2)


if __name__ == "__main__":
    main()
