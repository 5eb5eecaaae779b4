"""Shared helpers of the CLI commands: JSON output and rich tables."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    Console(width=max(Console().width, 120)).print(table)
