#!/usr/bin/env python3
"""The figure tables of BENCHMARKS.md and README.md, made from the last `bench/all.py` results
(bench/results/summary.json and peers.tsv), so the two files cannot quote one measurement with two
numbers. Each generated block sits between markers:

    <!-- generated: NAME (bench/tables.py) -->
    ...
    <!-- /generated: NAME -->

    python3 bench/tables.py            # rewrite the blocks from the results
    python3 bench/tables.py --check    # exit 1 when a block differs from what the results give

bench/all.py runs it after every run. The goals and their thresholds are listed once, here.
"""

import argparse
import csv
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = ["BENCHMARKS.md", "README.md"]


def load(results):
    """summary.json, the peer rig on the standalone tansu binary (peers.tsv) and on `weir broker`
    (peers-embedded.tsv, optional)."""
    with open(os.path.join(results, "summary.json")) as f:
        summary = json.load(f)
    tables = []
    for name in ("peers.tsv", "peers-embedded.tsv"):
        path = os.path.join(results, name)
        if os.path.exists(path):
            with open(path) as f:
                tables.append(list(csv.DictReader(f, delimiter="\t")))
        else:
            tables.append([])
    return summary, tables[0], tables[1]


def num(n):
    return f"{round(n):,}"


def mrows(n):
    return f"{n / 1e6:.2f} M rows/s"


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def peer(peers, name, partitions):
    for row in peers:
        if row["peer"] == name and row["p"] == str(partitions):
            return row
    return None


def peer_rate(peers, name, partitions=1):
    row = peer(peers, name, partitions)
    return float(row["events_per_s"]) if row else None


def peer_rss(peers, name, partitions=1):
    row = peer(peers, name, partitions)
    return float(row["peak_rss_mb"]) if row and row["peak_rss_mb"] != "-" else None


def dashboard_rows(summary):
    """(clients, slow) → list of run results, in the order first seen."""
    groups = {}
    # Runs before 2026-11-30 kept only the 1,000-client rows, under another key.
    for run in summary.get("dashboard", summary.get("dashboard_1000_clients", [])):
        r = run["result"]
        groups.setdefault((r["clients"], r["slow"]), []).append(run)
    return groups


def produce_then_consume(summary):
    """Events/s of the raw Rust loop producing every event and then consuming it (the two
    ceilings in series), on the embedded broker: the work the shipped pipeline does per event."""
    c = summary["kafka_ceilings"]
    return round(1 / (1 / c["produce_per_s"] + 1 / c["consume_per_s"]))


def dashboard_floor(summary, clients):
    """The bare-kernel fan-out to as many loopback connections (fanout_floor), if measured."""
    return next((f for f in summary.get("dashboard_floor", []) if f["connections"] == clients), None)


class Goals:
    """Every goal with its threshold, what the results give and whether it is met."""

    def __init__(self, summary, peers):
        self.rows = []
        scaling = summary["scaling"]
        shares = [s["weir_share_of_raw_parse"] for s in scaling]
        self.add("in-memory job ≥ 50 % of the raw parse rate",
                 f"{span(shares, lambda v: f'{v * 100:.0f}')} % "
                 f"({num(scaling[0]['rows'])} to {num(scaling[-1]['rows'])} rows)",
                 min(shares) >= 0.5)
        runs = {(r["job"], r["parsers"], r["window_instances"]): r for r in summary.get("parallel", [])}
        raw, job = runs.get(("csv crate", 1, None)), runs.get(("count", 1, 1))
        if raw and job:
            self.add(f"in-memory job (default settings) above one core's raw csv parse rate "
                     f"({num(job['rows'])} rows, same run)",
                     f"{num(job['rows_per_s'])} against {num(raw['rows_per_s'])} rows/s",
                     job["rows_per_s"] > raw["rows_per_s"])
        rss = [s["weir_peak_rss_mb"] for s in scaling]
        self.add("in-memory job peak RSS < 64 MB", f"{span(rss, lambda v: f'{v:.1f}')} MB",
                 max(rss) < 64)
        self.rig(peers)
        self.embedded_broker(summary)
        self.durable(summary)
        first = summary["first_result_s"]
        self.add("start → first window result ≤ 1.5 s", f"{first:.3f} s", first <= 1.5)
        for (clients, slow), runs in dashboard_rows(summary).items():
            limit = 10 if clients <= 1000 else 50
            p99 = [r["result"]["p99_ms"] for r in runs]
            met = sum(v <= limit for v in p99)
            floor = dashboard_floor(summary, clients)
            self.add(f"dashboard p99 ≤ {limit} ms at {num(clients)} clients"
                     + (f", {num(slow)} of them stalled" if slow else ""),
                     f"{span(p99, lambda v: f'{v:.1f}')} ms ({met} of {len(p99)} runs within)"
                     + (f"; the kernel alone: {floor['last_arrival_ms_median']:.1f} ms" if floor else ""),
                     met == len(p99))

    def rig(self, peers):
        """The peer rig's job on the standalone tansu binary (bench/results/peers.tsv)."""
        weir, weir_rss = peer_rate(peers, "weir"), peer_rss(peers, "weir")
        if not weir:
            return
        tuned = peer_rate(peers, "plain-tuned")
        if tuned:
            self.add("rig job (standalone tansu, P=1) ≥ 2× the plain tuned loop",
                     f"{weir / tuned:.2f}× ({num(weir)} against {num(tuned)} events/s)",
                     weir / tuned >= 2)
        quix = peer_rate(peers, "quix")
        if quix:
            self.add("rig job ≥ 30× quixstreams", f"{weir / quix:.1f}×", weir / quix >= 30)
        others = [peer_rate(peers, n) for n in ("bytewax", "spark")]
        if all(others):
            self.add("rig job ≥ 10× bytewax and Spark",
                     " / ".join(f"{weir / r:.1f}×" for r in others),
                     all(weir / r >= 10 for r in others))
        rsses = [(n, peer_rss(peers, n)) for n in ("plain", "plain-tuned", "quix", "bytewax", "spark")]
        rsses = [(n, r) for n, r in rsses if r]
        if weir_rss and rsses:
            worst = max(weir_rss / r for _, r in rsses)
            self.add("rig job peak RSS ≤ 64 MB and ≤ 1/3 of every peer's",
                     f"{weir_rss:.0f} MB, at most {worst * 100:.0f} % of a peer's",
                     weir_rss <= 64 and worst <= 1 / 3)
        three = {n: peer(peers, n, 3) for n in ("weir", "quix", "bytewax", "plain")}
        if three["weir"]:
            failed = [n for n, row in three.items() if row and row["status"] != "PASS"]
            self.add("rig job correct with 3 partitions",
                     f"weir {three['weir']['status']}"
                     + (f"; {', '.join(failed)} FAIL" if failed else ""),
                     three["weir"]["status"] == "PASS")

    def embedded_broker(self, summary):
        embedded = summary["kafka_ceilings"]["consume_per_s"]
        standalone = summary.get("kafka_ceilings_standalone", {}).get("consume_per_s")
        if standalone:
            self.add("embedded broker: raw consume ceiling ≥ the standalone binary's",
                     f"{num(embedded)} against {num(standalone)} msgs/s (raw Rust loop, weir's "
                     "client settings)", embedded >= standalone)
        kafka = summary["kafka"][0]
        share = kafka["events_per_s"] / embedded
        self.add("shipped pipeline (`rate = \"max\"`, 1,000,000 rows) ≥ 90 % of the raw Rust "
                 "consume loop on the same broker",
                 f"{num(kafka['events_per_s'])} events/s = {share * 100:.0f} % of {num(embedded)}/s; "
                 f"{kafka['events_per_s'] / produce_then_consume(summary) * 100:.0f} % of producing "
                 f"and consuming ({num(produce_then_consume(summary))}/s), which the pipeline does",
                 share >= 0.9)
        self.add("shipped pipeline peak RSS ≤ 64 MB (broker in its own process)",
                 f"{kafka['weir_peak_rss_mb']:.1f} MB (1 partition)", kafka["weir_peak_rss_mb"] <= 64)

    def durable(self, summary):
        d = summary.get("durable")
        if not d:
            return
        rate = d["weir_settings"]["consume_per_s"]
        self.add(f"`sqlite://` with {num(d['rows'])} stored messages: read ≥ 200 k events/s",
                 f"{num(rate)} events/s (weir's client settings); "
                 f"{num(d['librdkafka_defaults']['consume_per_s'])}/s with librdkafka's defaults",
                 rate >= 200_000)
        first = d["librdkafka_defaults"]["first_message_s"]
        self.add("`sqlite://`: a default librdkafka consumer receives data within 1 s",
                 f"{first:.3f} s to the first message", first <= 1)

    def add(self, goal, measured, met):
        self.rows.append((goal, measured, "met" if met else "**not met**"))

    def table(self):
        lines = ["| goal | measured | |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {v} |" for g, m, v in self.rows]
        return "\n".join(lines)

    def unmet(self):
        return [(g, m, v.strip("*")) for g, m, v in self.rows if v != "met"]


def scaling_table(summary):
    lines = ["| input (`weir gen user-log --seed 1`) | csv crate alone | weir csv → window → discard "
             "| weir / raw | weir peak RSS |", "|---|---|---|---|---|"]
    for s in summary["scaling"]:
        lines.append(f"| {num(s['rows'])} rows | {mrows(s['csv_crate_rows_per_s'])} | "
                     f"{mrows(s['weir_rows_per_s'])} | {s['weir_share_of_raw_parse'] * 100:.0f} % | "
                     f"{s['weir_peak_rss_mb']:.1f} MB |")
    g = summary.get("generator")
    if g:
        lines.append("")
        lines.append(f"The generator wrote the {num(g['rows'])}-row log ({g['mb']:,} MB) in "
                     f"{g['seconds']:.1f} s.")
    return "\n".join(lines)


def parallel_table(summary):
    rows = summary.get("parallel")
    if not rows:
        return "(not measured yet: `python3 bench/all.py --only parallel`)"
    lines = ["| job | parser threads | window instances | rows/s | CPU s per million rows | peak RSS |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        job = {"count": "weir: csv → 1 s window by gender → discard", "parse": "weir: csv → discard",
               "csv crate": "the csv crate alone (one core, `csv_baseline`)"}[r["job"]]
        lines.append(f"| {job} | {r['parsers']} | {r['window_instances'] or '–'} | {r['rows_per_s'] / 1e6:.2f} M "
                     f"| {r['cpu_s_per_million']:.3f} s | {r['peak_rss_mb']:.1f} MB |")
    lines.append("")
    lines.append(f"({num(rows[0]['rows'])} rows of `weir gen user-log --seed 1`, best of 3 (CPU: the least of 3), "
                 f"`python3 bench/all.py --only parallel`, {summary.get('parallel_date', '')}.)")
    return "\n".join(lines)


def kafka_table(summary):
    c = summary["kafka_ceilings"]
    standalone = summary.get("kafka_ceilings_standalone")
    lines = ["| | events/s | weir peak RSS |", "|---|---|---|"]
    for k in summary["kafka"]:
        n = k["partitions"]
        lines.append(f"| shipped job, {n} partition{'s' if n > 1 else ''} | {num(k['events_per_s'])} | "
                     f"{k['weir_peak_rss_mb']:.1f} MB |")
    lines.append(f"| raw Rust loop, `weir broker`: produce | {num(c['produce_per_s'])} | |")
    lines.append(f"| raw Rust loop, `weir broker`: consume | {num(c['consume_per_s'])} | |")
    if standalone:
        lines.append(f"| raw Rust loop, standalone tansu: produce | {num(standalone['produce_per_s'])} | |")
        lines.append(f"| raw Rust loop, standalone tansu: consume | {num(standalone['consume_per_s'])} | |")
    lines.append(f"| start → first result (10 rows/s, 1 s windows) | {summary['first_result_s']:.3f} s | |")
    d = summary.get("durable")
    if d:
        w, lib = d["weir_settings"], d["librdkafka_defaults"]
        lines += [
            "",
            f"`weir broker --storage sqlite://…` with {num(d['rows'])} one-byte messages stored "
            "(filled, then the broker restarted so every read comes from the file):",
            "",
            "| | events/s | first message after |",
            "|---|---|---|",
            f"| produce (weir's producer settings, acknowledged) | {num(d['produce_per_s'])} | |",
            f"| read back, weir's consumer settings | {num(w['consume_per_s'])} | {w['first_message_s']:.3f} s |",
            f"| read back, librdkafka's defaults | {num(lib['consume_per_s'])} | {lib['first_message_s']:.3f} s |",
        ]
    return "\n".join(lines)


def dashboard_table(summary):
    lines = ["| clients | stalled | runs | deliveries per run | p50 | p99 | max | weir RSS "
             "| weir CPU per delivery | updates dropped |", "|---|---|---|---|---|---|---|---|---|---|"]
    ms = lambda v: f"{v:.1f}"  # noqa: E731
    for (clients, slow), runs in dashboard_rows(summary).items():
        res = [r["result"] for r in runs]
        cpu = [r["server_cpu_us_per_delivery"] for r in runs if "server_cpu_us_per_delivery" in r]
        dropped = sorted({int((r.get("dropped") or "0").split()[0] or 0) for r in runs})
        lines.append(
            f"| {num(clients)} | {num(slow)} | {len(runs)} | "
            f"~{num(sum(x['deliveries'] for x in res) / len(res))} | "
            f"{span([x['p50_ms'] for x in res], ms)} ms | {span([x['p99_ms'] for x in res], ms)} ms | "
            f"{span([x['max_ms'] for x in res], ms)} ms | "
            f"{span([r['weir_rss_mb'] for r in runs], str)} MB | "
            + (f"{span(cpu, ms)} µs" if cpu else "–")
            + f" | {', '.join(map(str, dropped))} |")
    floors = summary.get("dashboard_floor", [])
    if floors:
        lines.append("")
        lines.append("The floor under any fan-out on this machine (`fanout_floor`: the same number of plain "
                     "loopback TCP connections, one 96-byte `write` each from two threads, nothing above "
                     "the kernel; medians of 20 rounds):")
        lines.append("")
        lines.append("| connections | time until the last connection has the message | wall time per `write` |")
        lines.append("|---|---|---|")
        for f in floors:
            lines.append(f"| {num(f['connections'])} | {f['last_arrival_ms_median']:.1f} ms | "
                         f"{f['write_us_per_connection_median']:.1f} µs |")
    if "dashboard_date" in summary:
        lines.append("")
        lines.append(f"(Dashboard rows from `python3 bench/all.py --only dashboard`, "
                     f"{summary['dashboard_date']}.)")
    return "\n".join(lines)


PEER_NAMES = {
    "plain": "plain Python consume loop (confluent-kafka)",
    "plain-tuned": "plain, `fetch.queue.backoff.ms=100`",
    "quix": "quixstreams",
    "bytewax": "bytewax",
    "spark": "Spark Structured Streaming (file source: no Kafka connector here)",
    "weir": "**weir** (shipped settings)",
}


def peers_table(peers, embedded):
    ceil = [peer_rate(peers, n) for n in ("ceiling-produce", "ceiling-consume", "ceiling-consume-tuned")]
    weir, weir_rss = peer_rate(peers, "weir"), peer_rss(peers, "weir")
    lines = ["| peer | events/s | peak RSS | check | weir is |", "|---|---|---|---|---|"]
    if all(ceil):
        lines.append("| ceiling (Python client): produce / consume / consume tuned | "
                     + " / ".join(num(c) for c in ceil) + " | | | |")
    for name in ("plain", "plain-tuned", "quix", "bytewax", "spark", "weir"):
        row = peer(peers, name, 1)
        if not row:
            continue
        rate, rss = float(row["events_per_s"]), float(row["peak_rss_mb"])
        compare = ""
        if name != "weir" and weir and weir_rss:
            compare = f"{weir / rate:.1f}×, {weir_rss / rss * 100:.0f} % RSS"
        lines.append(f"| {PEER_NAMES[name]} | {num(rate)} | {rss:.0f} MB | {row['status']} | {compare} |")
    lines += ["", "Three partitions (correctness):", "",
              "| peer | events/s | peak RSS | check |", "|---|---|---|---|"]
    for name in ("plain", "quix", "bytewax", "weir"):
        row = peer(peers, name, 3)
        if row:
            lines.append(f"| {PEER_NAMES[name]} | {num(float(row['events_per_s']))} | "
                         f"{float(row['peak_rss_mb']):.0f} MB | {row['status']} |")
    if embedded:
        lines += ["", "The same rig on `weir broker` (the embedded broker's build), one partition:", "",
                  "| peer | events/s on `weir broker` | on standalone tansu |", "|---|---|---|"]
        ceil_e = [peer_rate(embedded, n) for n in ("ceiling-produce", "ceiling-consume", "ceiling-consume-tuned")]
        if all(ceil_e) and all(ceil):
            lines.append("| ceiling (Python client): produce / consume / consume tuned | "
                         + " / ".join(num(c) for c in ceil_e) + " | "
                         + " / ".join(num(c) for c in ceil) + " |")
        for name in ("plain", "plain-tuned", "weir"):
            e, sa = peer_rate(embedded, name), peer_rate(peers, name)
            if e:
                lines.append(f"| {PEER_NAMES[name]} | {num(e)} | {num(sa) if sa else '–'} |")
    return "\n".join(lines)


def readme_figures(summary, peers, goals):
    s = summary["scaling"]
    k = summary["kafka"][0]
    ceiling = summary["kafka_ceilings"]["consume_per_s"]
    rates = [x["weir_rows_per_s"] for x in s]
    shares = [x["weir_share_of_raw_parse"] for x in s]
    rss = [x["weir_peak_rss_mb"] for x in s]
    out = [
        f"From the last `python3 bench/all.py` run ({summary['date']}; release build, 2-core machine; "
        "details in [BENCHMARKS.md](BENCHMARKS.md)):",
        "",
        f"- In memory, user log CSV → 1 s window by gender → discard: "
        f"{span(rates, lambda v: f'{v / 1e6:.1f}')} M rows/s, "
        f"{span(shares, lambda v: f'{v * 100:.0f}')} % of what the csv crate alone parses on one core, "
        f"{span(rss, lambda v: f'{v:.0f}')} MB peak RSS ({num(s[0]['rows'])} to {num(s[-1]['rows'])} rows).",
        f"- Through Kafka, the shipped job with `rate = \"max\"` on {num(1_000_000)} rows: "
        f"{num(k['events_per_s'])} events/s, {k['events_per_s'] / ceiling * 100:.0f} % of a raw Rust "
        f"consume loop on the same broker (`weir broker`), {k['weir_peak_rss_mb']:.0f} MB; first window result "
        f"{summary['first_result_s']:.2f} s after launch.",
    ]
    weir = peer(peers, "weir", 1)
    if weir:
        others = []
        for name, label in (("quix", "quixstreams"), ("bytewax", "bytewax"), ("spark", "Spark")):
            row = peer(peers, name, 1)
            if row:
                others.append(f"{label} {num(float(row['events_per_s']))} ({float(row['peak_rss_mb']):.0f} MB)")
        out.append(f"- Against the peers on the same broker (the standalone tansu binary) and events: {num(float(weir['events_per_s']))} "
                   f"events/s in {float(weir['peak_rss_mb']):.0f} MB, against " + ", ".join(others) + ".")
    groups = dashboard_rows(summary)
    if groups:
        parts = []
        for (clients, slow), runs in groups.items():
            p99 = [r["result"]["p99_ms"] for r in runs]
            parts.append(f"{num(clients)} clients{f' ({num(slow)} stalled)' if slow else ''}: p99 "
                         f"{span(p99, lambda v: f'{v:.0f}')} ms")
        out.append("- Dashboard, window close → Socket.IO client on loopback: " + "; ".join(parts) + ".")
    unmet = goals.unmet()
    out.append("")
    if unmet:
        out.append("Goals not met in that run:")
        out.append("")
        out += [f"- {g}: {m} ({v})" for g, m, v in unmet]
    else:
        out.append("Every goal was met in that run.")
    return "\n".join(out)


def blocks(results):
    summary, peers, embedded = load(results)
    goals = Goals(summary, peers)
    header = (f"From the run of {summary['date']} on {summary['machine']}.")
    return {
        "goals": header + "\n\n" + goals.table(),
        "scaling": scaling_table(summary),
        "kafka": kafka_table(summary),
        "dashboard": dashboard_table(summary),
        "parallel": parallel_table(summary),
        "peers": peers_table(peers, embedded),
        "readme": readme_figures(summary, peers, goals),
    }


MARKER = re.compile(
    r"(<!-- generated: (?P<name>[a-z]+) \(bench/tables\.py\) -->\n)(?P<body>.*?)(<!-- /generated: (?P=name) -->)",
    re.S,
)


def render(text, made):
    def replace(m):
        name = m.group("name")
        if name not in made:
            raise SystemExit(f"unknown generated block `{name}`")
        return m.group(1) + made[name] + "\n" + m.group(4)

    return MARKER.sub(replace, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--root", default=os.path.dirname(HERE), help="the repository (default: this one)")
    args = ap.parse_args()
    made = blocks(os.path.join(args.root, "bench", "results"))
    stale = []
    for name in DOCS:
        path = os.path.join(args.root, name)
        with open(path) as f:
            text = f.read()
        new = render(text, made)
        if new != text:
            stale.append(name)
            if not args.check:
                with open(path, "w") as f:
                    f.write(new)
    if args.check and stale:
        print(f"figures differ from bench/results in: {', '.join(stale)}; run python3 bench/tables.py",
              file=sys.stderr)
        sys.exit(1)
    if not args.check:
        print("rewrote " + (", ".join(stale) if stale else "nothing (up to date)"))


if __name__ == "__main__":
    main()
