"""``clconv cache``: the tuning database (list, clear, export, import)."""

from __future__ import annotations

import click

from .. import tuning
from ..errors import ClconvError
from ._util import echo_json, print_table


@click.group("cache")
def command() -> None:
    """The tuning database: measured times per spec, device and algorithm (and tuned kernel parameters)."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """List the entries (spec, device, algorithm, measured time, tuned kernel parameters) and the
    calibrated device profiles."""
    db = tuning.database()
    data = db.data()
    if as_json:
        echo_json({"path": str(db.path), **data})
        return
    click.echo(f"tuning database: {db.path}")
    rows = []
    for key, e in sorted(data["entries"].items(), key=lambda kv: (kv[1].get("spec", ""), kv[1].get("time_s", 0))):
        alg = key.rsplit("|", 1)[-1]
        t = e.get("time_s")
        params = e.get("params_text") or " ".join(f"{k}={v}" for k, v in (e.get("params") or {}).items())
        rows.append((e.get("spec", key.split("|")[-2]), e.get("device", ""), alg,
                     "-" if t is None or t == float("inf") else f"{t * 1e3:.3f}", params, e.get("note", ""),
                     e.get("when", "")))
    print_table(f"{len(rows)} entries", ["spec", "device", "algorithm", "ms", "params", "note", "when"], rows)
    for fp, p in data.get("profiles", {}).items():
        click.echo(f"profile {p.get('device', '')}: {p['peak_gflops']:.1f} GFLOP/s, {p['bandwidth_gbs']:.1f} GB/s, "
                   f"launch {p['launch_us']:.1f} us ({fp})")


@command.command("clear")
def clear() -> None:
    """Remove every entry and profile."""
    n = tuning.database().clear()
    click.echo(f"removed {n} entries")


@command.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
def export(file: str) -> None:
    """Write the database to FILE (JSON)."""
    n = tuning.database().export(file)
    click.echo(f"exported {n} entries to {file}")


@command.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_(file: str) -> None:
    """Merge FILE (from `clconv cache export`) into the database."""
    try:
        n = tuning.database().import_(file)
    except ClconvError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported {n} entries from {file}")
