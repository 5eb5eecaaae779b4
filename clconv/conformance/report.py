"""Conformance reports: JSON (a submission), JUnit XML, the per-feature table, and the
per-device record of the last run that ``clconv backends`` shows."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .._version import __version__
from ..backend import Device
from ..plugins import get_host
from .cases import CASE_LIST_VERSION
from .runner import CaseResult, features_table, is_failure, summarize

REPORT_FORMAT = "clconv-conformance-report/1"


@dataclass
class Report:
    backend: str
    level: str
    devices: list[Device]
    results: list[CaseResult] = field(default_factory=list)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    duration_s: float = 0.0
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.results)

    @property
    def passed(self) -> bool:
        return not is_failure(self.summary)

    def as_dict(self) -> dict[str, Any]:
        host = get_host()
        be = host.backend(self.backend)
        plugin = host.origin(self.backend)
        info = host.infos.get(plugin)
        return {
            "format": REPORT_FORMAT,
            "case_list_version": CASE_LIST_VERSION,
            "level": self.level,
            "filters": self.filters,
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "passed": self.passed,
            "summary": self.summary,
            "environment": {
                "clconv_version": __version__,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "platform": platform.platform(),
            },
            "backend": {
                "name": self.backend,
                "version": be.version,
                "plugin": plugin,
                "plugin_origin": info.origin if info else "",
                "plugin_version": info.version if info else "",
            },
            "devices": [_device_facts(d) for d in self.devices],
            "features": features_table(self.results),
            "results": [r.as_dict() for r in self.results],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2, default=str))

    def write_junit(self, path: str | Path) -> None:
        s = self.summary
        suite = ET.Element(
            "testsuite",
            name=f"clconv-conformance-{self.backend}-{self.level}",
            tests=str(len(self.results)),
            failures=str(s["failed"] + s["xpassed"]),
            skipped=str(s["skipped"] + s["xfailed"]),
            errors="0",
            time=f"{self.duration_s:.3f}",
            timestamp=self.started,
        )
        for r in self.results:
            tc = ET.SubElement(
                suite, "testcase", classname=f"{self.backend}.{r.device}.{r.algorithm}", name=r.case,
                time=f"{r.duration_s:.6f}",
            )
            if r.status in ("failed", "xpassed"):
                f = ET.SubElement(tc, "failure", message=_xml_text(r.message))
                f.text = _xml_text(r.error or r.message)
            elif r.status in ("skipped", "xfailed"):
                ET.SubElement(tc, "skipped", message=_xml_text(r.message))
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# Characters XML 1.0 does not allow (control characters such as a build log's colour codes):
# ElementTree writes them as they are, and no JUnit reader would parse the file.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _device_facts(d: Device) -> dict[str, Any]:
    f = d.facts()
    f["problem"] = d.problem()
    return f


# --------------------------------------------------------------- rendering
def feature_rows(results: Iterable[CaseResult]) -> list[tuple[str, int, int, int, int]]:
    """(feature, passed, failed, skipped, xfailed) rows of the pass table."""
    return [
        (f, c["passed"], c["failed"] + c["xpassed"], c["skipped"], c["xfailed"])
        for f, c in features_table(results).items()
    ]


def render_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"clconv conformance: backend {report.backend}, level {report.level}")
    for col in ("feature", "passed", "failed", "skipped (declared unsupported)", "xfailed"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for f, p, fa, sk, xf in feature_rows(report.results):
        style = "red" if fa else ("green" if p else "yellow")
        table.add_row(f, str(p), str(fa), str(sk), str(xf), style=style)
    console = Console(width=max(Console().width, 100))
    console.print(table)
    s = report.summary
    verdict = "PASSED" if report.passed else "FAILED"
    if not s["passed"] and not s["failed"] + s["xpassed"]:
        verdict += " (no case passed: nothing was tested)"
    console.print(
        f"[bold]{verdict}[/bold]: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped, "
        f"{s['xfailed']} xfailed, {s['xpassed']} xpassed in {report.duration_s:.1f}s"
    )


# --------------------------------------------------------------- last run per device
def _records_dir() -> Path:
    from ..backends.opencl.runtime import cache_root

    return cache_root() / "conformance"


def _record_path(backend: str, device: Device) -> Path:
    h = hashlib.sha256(device.fingerprint().encode()).hexdigest()[:16]
    return _records_dir() / backend / f"{device.id.replace(':', '_')}-{h}.json"


def record_last_run(report: Report) -> None:
    """Remember, per device, whether this run passed (for ``clconv backends``). Never fatal."""
    for d in report.devices:
        mine = [r for r in report.results if r.device == d.id]
        if not mine:
            continue
        s = summarize(mine)
        rec = {
            "passed": not is_failure(s), "level": report.level, "when": report.started,
            "case_list_version": CASE_LIST_VERSION, "clconv_version": __version__,
            "summary": s, "fingerprint": d.fingerprint(), "filters": report.filters,
        }
        try:
            path = _record_path(report.backend, d)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, path)
        except OSError:
            pass


def last_run(backend: str, device: Device) -> dict[str, Any] | None:
    """The last recorded conformance run of ``device`` (same device fingerprint), if any."""
    try:
        rec = json.loads(_record_path(backend, device).read_text())
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != device.fingerprint():
        return None
    return rec
