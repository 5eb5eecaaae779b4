"""``clconv devices``: every device of every backend."""

from __future__ import annotations

import click

from ..backend import format_bytes
from ..plugins import get_host
from ._util import echo_json, print_table


def device_rows() -> list[dict]:
    rows = []
    host = get_host()
    for name in host.backends():
        for d in host.devices_of(name):
            row = d.facts()
            problem = d.problem()
            row["usable"] = not problem
            row["problem"] = problem
            rows.append(row)
    return rows


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List every device of every backend: id, name, kind, vendor, driver, memory, compute units, fp64/fp16, and whether it is usable."""
    rows = device_rows()
    if as_json:
        echo_json(rows)
        return
    print_table(
        "clconv devices",
        ["id", "name", "kind", "vendor", "driver", "memory", "CUs", "fp64", "fp16", "usable"],
        [
            (
                r["id"], r["name"], r["kind"], r["vendor"], r["driver"],
                format_bytes(r["memory_bytes"]) if r["memory_bytes"] else "?",
                r["compute_units"], "yes" if r["fp64"] else "no", "yes" if r["fp16"] else "no",
                "yes" if r["usable"] else "no: " + r["problem"],
            )
            for r in rows
        ],
    )
    if not rows:
        click.echo("no devices: no backend reported any (see `clconv backends`)")
