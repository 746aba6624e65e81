#!/usr/bin/env python3
"""Aggregates p2p_bench runs: medians per case and implementation, ratios, markdown table.

usage: report.py RUNS.jsonl RESULTS.json OUTDIR
  (writes OUTDIR/stream.dat, fanout.dat, streams.dat)
"""
import datetime
import json
import platform
import statistics
import sys

METRICS = {  # workload -> the metrics reported, first is the headline
    "pingpong": ["p50_us", "p99_us"],
    "stream": ["frames_per_s", "mb_per_s"],
    "fanout": ["rounds_per_s", "p50_us", "p99_us"],
    "connect": ["connects_per_s"],
    "idle": ["rss_per_peer_bytes"],
    "streams": ["frames_per_s", "mb_per_s"],
}
NO_NODE = {"streams"}  # workloads the Node.js original has no side for: blank cells
IMPLS = ["p2p", "raw", "node"]


def main():
    runs_path, results_path, outdir = sys.argv[1:4]
    runs = [json.loads(l) for l in open(runs_path) if l.strip()]
    cases = []
    for r in runs:
        if r["case"] not in cases:
            cases.append(r["case"])
    medians = []
    for c in cases:
        workload = c.split()[0]
        row = {"case": c, "workload": workload}
        for impl in IMPLS:
            ok = [r for r in runs if r["case"] == c and r.get("impl") == impl and "error" not in r]
            row[impl] = {m: statistics.median(r[m] for r in ok) for m in METRICS[workload]} if ok else None
            row[impl + "_runs"] = len(ok)
        medians.append(row)
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    json.dump({"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "machine": f"{platform.node()} {cpu} ({platform.machine()}, {len([l for l in open('/proc/cpuinfo') if l.startswith('processor')])} cores)",
               "medians": medians, "runs": runs}, open(results_path, "w"), indent=1)

    def fmt(v):
        if v is None:
            return "—"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "—"

    def arg(case, key):
        return case.split("--" + key + " ")[1].split()[0]

    print(f"Date: {datetime.date.today()}; machine: {json.load(open(results_path))['machine']}; "
          "medians of runs listed in results.json\n")
    print("| case | metric | p2p | raw | node | p2p/raw | p2p/node |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in medians:
        for m in METRICS[row["workload"]]:
            v = {i: (row[i] or {}).get(m) for i in IMPLS}
            most = max(row[i + "_runs"] for i in IMPLS)
            cell = {i: fmt(v[i]) + (f" ({row[i + '_runs']} run)" if 0 < row[i + "_runs"] < most else "")
                    for i in IMPLS}
            vs_node = ratio(v["p2p"], v["node"])
            if row["workload"] in NO_NODE:
                cell["node"] = vs_node = ""
            print(f"| `{row['case']}` | {m} | {cell['p2p']} | {cell['raw']} | {cell['node']} | "
                  f"{ratio(v['p2p'], v['raw'])} | {vs_node} |")
    if any(row["workload"] in NO_NODE for row in medians):
        print("\nW5 `streams` (T receiver threads, 16 connections): no Node.js side, the original "
              "runs on one thread; node cells are left blank.")

    def dat(name, workload, key, metric):
        with open(f"{outdir}/{name}.dat", "w") as f:
            f.write("# " + key + " p2p raw node (" + metric + ")\n")
            for row in medians:
                if row["workload"] != workload:
                    continue
                x = arg(row["case"], key)
                vals = [str((row[i] or {}).get(metric, "NaN")) for i in IMPLS]
                f.write(f"{x} {' '.join(vals)}\n")

    dat("stream", "stream", "size", "mb_per_s")
    dat("fanout", "fanout", "peers", "p50_us")

    # W5: frames/s by receiver threads, a p2p and a raw column per payload size; the first
    # line names the columns (gnuplot's columnhead).
    w5 = [row for row in medians if row["workload"] == "streams"]
    sizes = sorted({int(arg(row["case"], "size")) for row in w5})
    threads = sorted({int(arg(row["case"], "threads")) for row in w5})
    with open(f"{outdir}/streams.dat", "w") as f:
        f.write("threads " + " ".join(f"{i}_{s}B" for s in sizes for i in ("p2p", "raw")) + "\n")
        for t in threads:
            vals = []
            for s in sizes:
                row = next((r for r in w5 if int(arg(r["case"], "size")) == s
                            and int(arg(r["case"], "threads")) == t), None)
                vals += [str(((row or {}).get(i) or {}).get("frames_per_s", "NaN")) for i in ("p2p", "raw")]
            f.write(f"{t} {' '.join(vals)}\n")


if __name__ == "__main__":
    main()
