"""``clconv conformance``: run the conformance suite against a backend."""

from __future__ import annotations

import sys
import time

import click

from ..errors import ClconvError

#: Seconds between the progress lines printed when the output is not a terminal.
PLAIN_PROGRESS_S = 10.0


@click.command("conformance")
@click.option("--backend", "backend", required=True, help="Backend to test (see `clconv backends`).")
@click.option("--device", default=None, help="Only this device id.")
@click.option("--algorithm", default=None, help="Only this algorithm id.")
@click.option("--level", type=click.Choice(["quick", "full"]), default="quick", show_default=True,
              help="quick: the contract at small shapes; full: every dtype everywhere, larger shapes, more random specs.")
@click.option("--skip", "skip_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File of case-id patterns (device/algorithm/case, fnmatch) to skip, '# reason' after each.")
@click.option("--xfail", "xfail_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File of case-id patterns expected to fail.")
@click.option("--junit-xml", "junit", type=click.Path(dir_okay=False), default=None, help="Write JUnit XML here.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON report (device facts, versions, every case) here.")
@click.option("--show-failures/--no-show-failures", default=True, show_default=True,
              help="Print each failing case and why.")
def command(backend, device, algorithm, level, skip_file, xfail_file, junit, report_file, show_failures):  # type: ignore[no-untyped-def]
    """Run the conformance suite against BACKEND; exit 1 if any case fails."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..conformance import render_table, run_suite
    from ..conformance.runner import Expectations

    skip = Expectations.read(skip_file)
    xfail = Expectations.read(xfail_file)
    failures = []
    start = last_line = time.monotonic()
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[case]}"), transient=True,
    ) as progress:
        task = progress.add_task(f"conformance {backend}", total=None, case="")
        # Not a terminal (a CI log): no live bar, so a plain line now and then.
        plain = not progress.console.is_terminal

        def on_result(res, done, total):  # type: ignore[no-untyped-def]
            nonlocal last_line
            progress.update(task, completed=done, total=total, case=res.id)
            if res.status in ("failed", "xpassed"):
                failures.append(res)
            now = time.monotonic()
            if plain and (now - last_line >= PLAIN_PROGRESS_S or done == total):
                last_line = now
                click.echo(f"conformance {backend}: {done}/{total} cases, {len(failures)} failed, "
                           f"{now - start:.0f}s: {res.id}", err=True)

        try:
            report = run_suite(backend, device=device, algorithm=algorithm, level=level,
                               skip=skip, xfail=xfail, on_result=on_result)
        except ClconvError as exc:
            raise click.ClickException(str(exc)) from exc
    if show_failures:
        for r in failures:
            click.echo(f"FAILED {r.id}: {r.message}" + (f"\n    {r.error}" if r.error else ""))
    render_table(report)
    if report_file:
        report.write_json(report_file)
        click.echo(f"report: {report_file}")
    if junit:
        report.write_junit(junit)
        click.echo(f"junit: {junit}")
    sys.exit(0 if report.passed else 1)
