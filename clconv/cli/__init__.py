"""The ``clconv`` command line: a click group, one module per command."""

from __future__ import annotations

import click

from .._version import __version__
from ..errors import ClconvError


class _Group(click.Group):
    """Every clconv error a command lets through (a bad CLCONV_LOAD_PLUGINS, a bad setting)
    is a one-line ``Error: ...`` and exit status 1, as click shows its own, not a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ClconvError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clconv")
def cli() -> None:
    """clconv: every kind of convolution on whatever accelerator this machine has."""


def _add_commands() -> None:
    from . import backends, bench, cache, conformance, devices, explain, tune

    for mod in (devices, backends, explain, bench, tune, cache, conformance):
        cli.add_command(mod.command)
    try:
        from ..plugins import get_host

        get_host().pm.hook.clconv_register_commands(cli=cli)
    except Exception as exc:  # a plugin's commands must never break the CLI
        click.echo(f"warning: plugin commands not loaded: {exc}", err=True)


_add_commands()


def main() -> None:
    cli()
