"""Every hook a clconv plugin can implement. This file is the reference manual.

A plugin is a module (or any object) with functions decorated by
``clconv.hookimpl`` whose names match the specs below. Built-in backends are
plugins too (``clconv.plugins.DEFAULT_PLUGINS``); third-party plugins are found
through the ``clconv`` entry-point group::

    [project.entry-points.clconv]
    mybackend = "clconv_mybackend"

See ``docs/writing-a-plugin.md`` for a complete example.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("clconv")
hookimpl = pluggy.HookimplMarker("clconv")


@hookspec
def clconv_register_backends(register: Callable[[object], None]) -> None:
    """Register the backends this plugin provides.

    :param register: call ``register(backend)`` once per backend, with an
        instance of a :class:`clconv.backend.Backend` subclass. Backend names
        must be unique across all plugins: a second backend with a name already
        taken is rejected with a :class:`clconv.errors.PluginError` that names
        both plugins, and reported by ``clconv backends``.

    Called once per plugin when clconv first needs its backends. Keep it cheap:
    enumerate devices lazily in ``Backend.devices()``, not here. Results are not
    combined: every plugin's registrations are collected through ``register``.
    An exception raised here is reported under the plugin's name and the plugin
    is skipped; other plugins still load.
    """


@hookspec
def clconv_register_commands(cli) -> None:  # type: ignore[no-untyped-def]
    """Add commands to the ``clconv`` command line.

    :param cli: the top-level ``click.Group``; call ``cli.command()`` or
        ``cli.add_command()`` on it.

    Called once when the CLI starts, for every loaded plugin.
    """
