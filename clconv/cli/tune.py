"""``clconv tune``: measure candidates and fill the tuning database."""

from __future__ import annotations

import shlex

import click

from .. import dispatch, tuning
from ..errors import ClconvError
from ..plugins import get_host
from ..suites import SUITES, suite
from ._spec import build_spec


def parse_spec(text: str, dtype: str):  # type: ignore[no-untyped-def]
    """'conv2d input=1,64,56,56 weight=64,64,3,3 padding=1 stride=2' -> ConvSpec."""
    parts = shlex.split(text)
    if not parts:
        raise click.BadParameter("empty spec", param_hint="--spec")
    kv = {}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if not sep:
            raise click.BadParameter(f"{p!r}: give key=value", param_hint="--spec")
        kv[k.replace("-", "_")] = v
    known = {"input", "weight", "bias", "stride", "padding", "dilation", "groups", "padding_mode", "output_padding"}
    unknown = set(kv) - known
    if unknown or "input" not in kv or "weight" not in kv:
        raise click.BadParameter(f"{text!r}: needs input= and weight=; keys: {', '.join(sorted(known))}",
                                 param_hint="--spec")
    return build_spec(parts[0], kv["input"], kv["weight"], kv.get("bias", "0") in ("1", "true", "yes"),
                      kv.get("stride"), kv.get("padding"), kv.get("dilation"), int(kv.get("groups", 1)),
                      kv.get("padding_mode", "zeros"), kv.get("output_padding"), dtype)


@click.command("tune")
@click.option("--suite", "suites", multiple=True, type=click.Choice(sorted(SUITES)),
              help="Tune every layer of a named suite (repeatable).")
@click.option("--spec", "specs", multiple=True,
              help="Tune one convolution: 'conv2d input=1,64,56,56 weight=64,64,3,3 padding=1' (repeatable).")
@click.option("--dtype", default="float32", type=click.Choice(["float32", "float64", "float16"]), show_default=True)
@click.option("--backend", default=None, help="Only this backend's candidates.")
@click.option("--device", default=None, help="Only this device's candidates.")
@click.option("--budget", default=None, type=float, help="Seconds per spec (default CLCONV_TUNE_BUDGET or 2).")
@click.option("--force", is_flag=True, help="Measure again even where the database has times.")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="First measure each device's peak FLOP/s, bandwidth and launch overhead for the cost model.")
def command(suites, specs, dtype, backend, device, budget, force, calibrate):  # type: ignore[no-untyped-def]
    """Measure the candidates of each spec and remember the fastest (see `clconv cache list`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import config

    todo = [layer.spec(dtype) for name in suites for layer in suite(name)]
    todo += [parse_spec(s, dtype) for s in specs]
    if not todo and not calibrate:
        raise click.UsageError("nothing to tune: give --suite NAME or --spec '...'")
    db = tuning.database()
    if calibrate:
        for bname, be in get_host().backends().items():
            if backend and bname != backend or not hasattr(be, "calibrate"):
                continue
            for d in get_host().devices_of(bname):
                if device and d.id != device or d.problem():
                    continue
                try:
                    prof = tuning.calibrate(be, d)
                except Exception as exc:
                    click.echo(f"calibration of {d.id} failed: {type(exc).__name__}: {exc}", err=True)
                    continue
                db.set_profile(d, prof)
                click.echo(f"calibrated {d.id}: {prof.peak_gflops:.1f} GFLOP/s, {prof.bandwidth_gbs:.1f} GB/s, "
                           f"launch {prof.launch_us:.1f} us, call {prof.call_us:.1f} us")
    changes = {"tune_budget": budget} if budget else {}
    rows = []
    with config.settings(**changes), Progress(
        TextColumn("tune"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[spec]}"), transient=True,
    ) as progress:
        task = progress.add_task("tune", total=len(todo), spec="")
        for spec in todo:
            progress.update(task, spec=spec.describe())
            try:
                expl = dispatch.explain(spec, backend=backend, device=device, policy="measure", remeasure=force)
            except ClconvError as exc:
                rows.append((spec.describe(), "-", f"error: {exc}".splitlines()[0]))
                progress.advance(task)
                continue
            c = expl.chosen
            rows.append((spec.describe(), c.name if c else "-",
                         f"{c.measured_s * 1e3:.3f} ms" if c and c.measured_s not in (None, float("inf")) else "-"))
            progress.advance(task)
    for r in rows:
        click.echo(f"{r[0]}\n    -> {r[1]}  {r[2]}")
    click.echo(f"tuning database: {db.path}")
