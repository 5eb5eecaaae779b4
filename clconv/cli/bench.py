"""``clconv bench``: time layer suites, side by side with PyTorch and ONNX Runtime."""

from __future__ import annotations

import json
import platform

import click

from .. import bench as B
from ..suites import SUITES, suite
from ._util import print_table


def _peak_lookup():  # type: ignore[no-untyped-def]
    from .. import costmodel
    from ..plugins import get_host

    devices = {d.id: d for d in get_host().all_devices()}
    cache: dict[str, float | None] = {}

    def peak(device_id: str) -> float | None:
        if device_id not in cache:
            d = devices.get(device_id)
            cache[device_id] = costmodel.profile(d).peak_gflops if d is not None else None
        return cache[device_id]

    return peak


def _fmt(v, spec="{:.3f}"):  # type: ignore[no-untyped-def]
    return "-" if v is None else spec.format(v)


@click.command("bench")
@click.option("--suite", "suites", multiple=True, type=click.Choice(sorted(SUITES)),
              help="Layer suite(s) to run (repeatable; default: all).")
@click.option("--backend", default=None, help="Pin clconv to this backend.")
@click.option("--device", default=None, help="Pin clconv to this device id.")
@click.option("--algorithm", default=None, help="Pin clconv to this algorithm id.")
@click.option("--compare", default="", help="Comma-separated: torch,onnxruntime (those installed run in the same process).")
@click.option("--dtype", default="float32", type=click.Choice(["float32", "float64", "float16"]), show_default=True)
@click.option("--repeats", default=5, show_default=True, help="Minimum timed repeats per layer and runner.")
@click.option("--min-time", default=0.2, show_default=True, help="Minimum seconds of timed repeats per layer and runner.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None, help="Write all results here.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Write a bar chart of the ratios here (PNG; needs matplotlib).")
@click.option("--constant-weights", is_flag=True,
              help="Inference setting: weights that never change (clconv: a constant_weights=True plan; "
                   "ONNX Runtime: weight and bias as initializers).")
@click.option("--arrays", "where", default="host", type=click.Choice(B.ARRAYS), show_default=True,
              help="host: NumPy arrays in and out (each call's transfers timed). device: arrays uploaded once "
                   "to the device clconv chose, pyopencl results timed to the queue's finish; PyTorch then "
                   "runs on its CUDA device where it has one.")
def command(suites, backend, device, algorithm, compare, dtype, repeats, min_time, json_file, plot_file,  # type: ignore[no-untyped-def]
            constant_weights, where):
    """Per layer: clconv time, GFLOP/s, percent of the device's peak, the algorithm that ran, and the
    same layer through PyTorch / ONNX Runtime as ratios (clconv time / their time; < 1 is faster)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    others = tuple(c.strip() for c in compare.split(",") if c.strip())
    for o in others:
        if o not in B.COMPARE:
            raise click.BadParameter(f"{o!r}: accepted {', '.join(B.COMPARE)}", param_hint="--compare")
        if not B.available(o):
            raise click.ClickException(f"--compare {o}: {o} is not installed (pip install 'clconv[bench]' or {o})")
    layers = [layer for name in (suites or ("all",)) for layer in suite(name)]
    peak = _peak_lookup()
    results = []
    with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[layer]}"), transient=True) as progress:
        task = progress.add_task("bench", total=len(layers), layer="")
        for layer in layers:
            progress.update(task, layer=layer.name)
            results.append(B.run_layer(layer, dtype=dtype, backend=backend, device=device, algorithm=algorithm,
                                       compare=others, min_repeats=repeats, min_time_s=min_time, peak_gflops=peak,
                                       constant_weights=constant_weights, arrays=where))
            progress.advance(task)
    cols = ["layer", "GFLOP", "clconv ms", "GFLOP/s", "% peak", "ran"]
    for o in others:
        cols += [f"{o} ms", f"/{o}"]
    rows = []
    for r in results:
        row = [r.layer, f"{r.gflop:.3f}", _fmt(None if r.clconv_s is None else r.clconv_s * 1e3),
               _fmt(r.gflops, "{:.1f}"), _fmt(r.peak_pct, "{:.0f}"),
               f"{r.device}/{r.algorithm}" if r.algorithm else r.errors.get("clconv", "")]
        for o in others:
            t = r.others_s.get(o)
            row += [_fmt(None if t is None else t * 1e3), _fmt(r.ratio(o), "{:.2f}x")]
        rows.append(row)
    setting = ", constant weights" if constant_weights else ""
    if where == "device":
        ran = sorted({f"{o} on {d}" for r in results for o, d in r.others_device.items()})
        setting += ", device arrays" + (f"; {', '.join(ran)}" if ran else "")
    print_table(f"clconv bench ({dtype}{setting}) on {platform.node() or 'this machine'}", cols, rows)
    summary = {}
    for o in others:
        g = B.geomean([r.ratio(o) for r in results])
        summary[o] = g
        groups = {}
        for r in results:
            groups.setdefault(r.group, []).append(r.ratio(o))
        per_group = ", ".join(f"{k} {_fmt(B.geomean(v), '{:.2f}x')}" for k, v in groups.items())
        click.echo(f"geometric mean clconv/{o}: {_fmt(g, '{:.3f}x')}   by group: {per_group}")
    for r in results:
        for who, err in r.errors.items():
            click.echo(f"{r.layer}: {who} failed: {err}", err=True)
    if json_file:
        with open(json_file, "w") as f:
            json.dump({"dtype": dtype, "constant_weights": constant_weights, "arrays": where, "compare": list(others), "geomean": summary,
                       "machine": {"node": platform.node(), "processor": platform.processor(),
                                   "python": platform.python_version()},
                       "results": [r.as_dict() for r in results]}, f, indent=2)
        click.echo(f"results: {json_file}")
    if plot_file:
        _plot(results, others, plot_file)
        click.echo(f"plot: {plot_file}")


def _plot(results, others, path):  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise click.ClickException("--plot needs matplotlib (pip install matplotlib)") from None
    fig, ax = plt.subplots(figsize=(12, max(4, 0.3 * len(results))))
    names = [r.layer for r in results]
    y = range(len(results))
    if others:
        h = 0.8 / len(others)
        for i, o in enumerate(others):
            ax.barh([v + i * h for v in y], [r.ratio(o) or 0 for r in results], height=h, label=f"clconv / {o}")
        ax.axvline(1.0, color="k", lw=1)
        ax.set_xlabel("time ratio (< 1: clconv faster)")
    else:
        ax.barh(list(y), [r.gflops or 0 for r in results])
        ax.set_xlabel("GFLOP/s")
    ax.set_yticks(list(y))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.legend() if others else None
    fig.tight_layout()
    fig.savefig(path, dpi=100)
