"""Dispatch regret on a layer suite: time(chosen candidate) / time(fastest candidate).

For every layer, every supported candidate (backend, device, algorithm) is timed in
this run with its default kernel parameters, and the tuned choice also with the parameters
the tuner picked for it (what a tuned plan runs): that is the ground truth (warm-up, timed
calls interleaved round by round in a new random order each round, median). The choices:

- heuristic: the cost model's choice (policy "heuristic"), with the devices
  calibrated first (as ``clconv tune`` does);
- tuned: the choice after ``clconv tune`` (policy "measure" fills a fresh tuning
  database, then policy "auto" reads it).

Regret = ground-truth time of the chosen candidate / ground-truth time of the
fastest. Reported per layer and as a geometric mean.

    python benchmarks/regret.py [--suite all] [--repeats 5] [--min-time 0.2] [--json out.json]

Sub-millisecond layers get more rounds (until --min-time seconds per candidate), so that
their medians are not decided by a few noisy calls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="all")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=3.0, help="tuning budget per spec, seconds")
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="ground truth: keep adding rounds (up to --max-rounds) until every candidate has this many seconds of timed calls")
    ap.add_argument("--max-rounds", type=int, default=200)
    ap.add_argument("--slow", type=float, default=3.0, help="candidates whose warm-up call exceeds this are not repeated")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    os.environ.setdefault("CLCONV_CACHE_DIR", tempfile.mkdtemp(prefix="clconv-regret-"))

    from clconv import config, dispatch, tuning
    from clconv.bench import geomean, layer_arrays
    from clconv.plugins import get_host
    from clconv.suites import suite

    db = tuning.database()
    for be in get_host().backends().values():
        if hasattr(be, "calibrate"):
            for d in be.devices():
                if not d.problem():
                    db.set_profile(d, tuning.calibrate(be, d))

    rows = []
    for layer in suite(args.suite):
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        heur = dispatch.explain(spec, policy="heuristic")
        with config.settings(tune_budget=args.budget):
            dispatch.explain(spec, policy="measure", remeasure=True)
        tuned = dispatch.explain(spec, policy="auto")
        # ground truth: every candidate with its default parameters, and the tuned choice with
        # the parameters the tuner picked (what a tuned plan runs), warmed up, then timed calls
        # interleaved round by round (so load changes hit all candidates alike); median each
        entries = [(c.name, c, None) for c in heur.order]
        t_name = tuned.chosen.name
        if tuned.chosen.params and tuned.chosen.params_source == "tuned":
            t_name = f"{tuned.chosen.name} (tuned params)"
            entries.append((t_name, tuned.chosen, tuned.chosen.params))
        live, truth = [], {}
        for name, c, params in entries:
            k = c.algorithm.prepare_with(spec, c.device, params)
            t0 = time.perf_counter()
            k(x, w, b)
            first = time.perf_counter() - t0
            if first > args.slow:
                truth[name] = first  # far too slow to be the fastest; one call is enough
            else:
                live.append((name, k, []))
        rounds = 0
        shuffle = random.Random(0).shuffle
        while live:
            shuffle(live)  # a new order each round: no candidate always follows another runtime
            for name, k, ts in live:
                t = time.perf_counter()
                k(x, w, b)
                ts.append(time.perf_counter() - t)
            rounds += 1
            if rounds >= args.max_rounds or (
                rounds >= args.repeats and all(sum(ts) >= args.min_time for _, _, ts in live)
            ):
                break
        for name, _, ts in live:
            truth[name] = sorted(ts)[len(ts) // 2]
        best = min(truth, key=truth.get)
        h, t = heur.chosen.name, t_name
        rows.append({
            "layer": layer.name, "fastest": best, "fastest_ms": truth[best] * 1e3,
            "heuristic": h, "heuristic_regret": truth[h] / truth[best],
            "tuned": t, "tuned_regret": truth[t] / truth[best], "decided_by": tuned.decided_by,
            "times_ms": {k: v * 1e3 for k, v in truth.items()},
        })
        r = rows[-1]
        print(f"{layer.name:34s} fastest {best.split('/', 1)[1]:28s} {r['fastest_ms']:9.3f} ms  "
              f"heuristic {r['heuristic_regret']:.2f}x ({h.split('/', 1)[1]})  "
              f"tuned {r['tuned_regret']:.2f}x ({t.split('/', 1)[1]})", flush=True)
    gh = geomean([r["heuristic_regret"] for r in rows])
    gt = geomean([r["tuned_regret"] for r in rows])
    print(f"\ngeometric mean regret: heuristic {gh:.3f}x, after tune {gt:.3f}x over {len(rows)} layers")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": args.suite, "heuristic_geomean": gh, "tuned_geomean": gt, "layers": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
