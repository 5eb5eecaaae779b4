"""Markdown tables for benchmarks/RESULTS.md from the JSON that the benchmarks write.

    python benchmarks/to_markdown.py bench  FILE.json   # `clconv bench --json FILE.json`
    python benchmarks/to_markdown.py regret FILE.json   # `benchmarks/regret.py --json FILE.json`
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict


def _geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def bench(d: dict) -> str:
    others = list(d.get("compare") or [])
    head = ["layer", "GFLOP", "clconv ms", "GFLOP/s", "% peak", "device, algorithm"]
    for o in others:
        head += [f"{o} ms", f"clconv / {o}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in d["results"]:
        row = [r["layer"], f"{r['gflop']:.3f}", f"{r['clconv_s'] * 1e3:.3f}", f"{r['gflops']:.1f}",
               f"{r['peak_pct']:.0f}", f"{r['device']} {r['algorithm']}" if r.get("device") else r["algorithm"]]
        for o in others:
            t = r["others_s"].get(o)
            ratio = r["ratios"].get(o)
            row += [f"{t * 1e3:.3f}" if t else "-", f"{ratio:.2f}x" if ratio else "-"]
            if ratio:
                groups[o][r["group"]].append(ratio)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for o in others:
        allr = [x for g in groups[o].values() for x in g]
        by = ", ".join(f"{g} {_geomean(v):.2f}x" for g, v in groups[o].items())
        lines.append(f"Geometric mean clconv / {o}: **{_geomean(allr):.2f}x** over {len(allr)} layers; by group: {by}.")
    return "\n".join(lines)


def regret(d: dict) -> str:
    lines = ["| layer | fastest | ms | heuristic regret (choice) | tuned regret (choice) |", "|---|---|---|---|---|"]
    for r in d["layers"]:
        lines.append(f"| {r['layer']} | {r['fastest']} | {r['fastest_ms']:.3f} | {r['heuristic_regret']:.2f}x "
                     f"({r['heuristic']}) | {r['tuned_regret']:.2f}x ({r['tuned']}) |")
    lines.append("")
    lines.append(f"Geometric mean over {len(d['layers'])} layers: heuristic **{d['heuristic_geomean']:.3f}x**, "
                 f"after tune **{d['tuned_geomean']:.3f}x**.")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("bench", "regret"):
        print(__doc__)
        return 2
    with open(sys.argv[2]) as f:
        d = json.load(f)
    print(bench(d) if sys.argv[1] == "bench" else regret(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
