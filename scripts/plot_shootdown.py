#!/usr/bin/env python3
"""Draws TLB-shootdown latency against CPU count from a Google Benchmark JSON.

    scripts/plot_shootdown.py --json docs/bench/latest.json --out docs/bench/shootdown.png

Reads the BM_Shootdown/<cpus>/real_time rows (medians when the run had
repetitions), plots wall-clock latency to all acknowledgements per CPU count
next to the issue's target line (300 ns for one remote CPU, 50 ns per further
one), and notes the host's core count: past it, the CPU threads share cores
and the figures measure the host scheduler too.
"""
import argparse
import json
import re
import sys
from pathlib import Path

NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def points(data: dict) -> list[tuple[int, float]]:
    best: dict[int, float] = {}
    for run in data.get("benchmarks", []):
        match = re.match(r"^BM_Shootdown/(\d+)/real_time$", run.get("run_name", run.get("name", "")))
        if not match or run.get("error_occurred"):
            continue
        if run.get("run_type") == "aggregate" and run.get("aggregate_name") != "median":
            continue
        cpus = int(match.group(1))
        ns = run["real_time"] * NS_PER_UNIT.get(run.get("time_unit", "ns"), 1.0)
        if run.get("run_type") == "aggregate" or cpus not in best:
            best[cpus] = ns
    return sorted(best.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data = json.loads(Path(args.json).read_text(encoding="utf-8"))
    series = points(data)
    if not series:
        print(f"plot_shootdown: no BM_Shootdown rows in {args.json}", file=sys.stderr)
        return 1
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = data.get("context", {}).get("num_cpus", 0)
    xs = [c for c, _ in series]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(xs, [ns for _, ns in series], marker="o", label="measured (median)")
    targets = [(c, 300 + 50 * (c - 2)) for c in xs if c >= 2]
    ax.plot([c for c, _ in targets], [t for _, t in targets], linestyle="--", label="target")
    if cores:
        ax.axvline(cores, color="grey", linewidth=0.8)
        ax.annotate(f"host cores: {cores}", (cores, ax.get_ylim()[1]), textcoords="offset points", xytext=(4, -12),
                    fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("CPUs (1 initiator + remote targets)")
    ax.set_ylabel("latency to all acks (ns, log scale)")
    ax.set_title("TLB shootdown of one page, emulator in parallel mode")
    ax.set_xticks(xs)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"plot_shootdown: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
