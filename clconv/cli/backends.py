"""``clconv backends``: every registered backend, where it came from, its devices and algorithms."""

from __future__ import annotations

import click

from ..plugins import get_host
from ._util import echo_json, print_table


def _last(backend: str, device) -> dict | None:  # type: ignore[no-untyped-def]
    from ..conformance.report import last_run

    return last_run(backend, device)


def _conformance_cell(rec: dict | None) -> str:
    if rec is None:
        return "never run"
    verdict = "passed" if rec["passed"] else "FAILED"
    # What the verdict covers: a run narrowed to one algorithm, or one that skipped or
    # declined most cases, passes too.
    s = rec.get("summary") or {}
    counts = ", ".join(f"{s[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed", "xpassed") if s.get(k))
    scope = [rec["level"]]
    filters = rec.get("filters") or {}
    if filters.get("algorithm"):
        scope.append(f"algorithm {filters['algorithm']} only")
    if filters.get("skip"):
        scope.append(f"{len(filters['skip'])} skip pattern(s)")
    scope.append(rec["when"][:10])
    return f"{verdict}: {counts or 'no cases'} ({', '.join(scope)})"


def backend_rows() -> dict:
    host = get_host()
    rows = []
    for name, backend in host.backends().items():
        devices = host.devices_of(name)
        plugin = host.origin(name)
        info = host.infos.get(plugin)
        rows.append(
            {
                "name": name,
                "version": backend.version,
                "description": backend.description,
                "plugin": plugin,
                "origin": info.origin if info else "",
                "devices": [d.id for d in devices],
                "conformance": {d.id: _last(name, d) for d in devices},
                "algorithms": [
                    {"id": a.id, "family": a.family, "deterministic": a.deterministic}
                    for a in backend.algorithms()
                ],
            }
        )
    failures = [{"plugin": f.plugin, "error": f.error} for f in host.failures]
    return {"backends": rows, "failed_plugins": failures}


def table_rows(data: dict) -> list[tuple[str, ...]]:
    """One row per device (a backend's own columns on its first), so that a device's last
    conformance run, however it wraps, stays beside that device."""
    rows = []
    for r in data["backends"]:
        own = (r["name"], r["version"], r["plugin"], r["origin"])
        algorithms = ", ".join(a["id"] for a in r["algorithms"])
        if not r["devices"]:
            rows.append((*own, "(none)", "", algorithms))
        for i, d in enumerate(r["devices"]):
            rows.append((*(own if i == 0 else ("",) * 4), d, _conformance_cell(r["conformance"][d]),
                         algorithms if i == 0 else ""))
    return rows


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List registered backends: name, version, origin plugin, devices (with their last conformance run), algorithms."""
    data = backend_rows()
    if as_json:
        echo_json(data)
        return
    print_table(
        "clconv backends",
        ["backend", "version", "plugin", "origin", "devices", "last conformance run", "algorithms"],
        table_rows(data),
    )
    for f in data["failed_plugins"]:
        click.echo(f"plugin {f['plugin']!r} failed to load and was skipped: {f['error']}", err=True)
