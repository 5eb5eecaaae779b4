"""The clconv exception family.

Every error clconv raises on purpose is a :class:`ClconvError`. Each also
subclasses the builtin a caller would expect (``ValueError`` for bad values,
``TypeError`` for bad types, ``MemoryError`` for a call too large for the
device), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class ClconvError(Exception):
    """Base class of every error clconv raises on purpose."""


class ConvValueError(ClconvError, ValueError):
    """A parameter has a bad value, shape or combination."""


class ConvTypeError(ClconvError, TypeError):
    """A parameter has a bad type or dtype."""


class UnsupportedError(ClconvError, ValueError):
    """A named backend, device or algorithm cannot do the call; the message says why."""


class DeviceMemoryError(ClconvError, MemoryError):
    """The call needs more memory than the device has; raised before allocating."""


class PluginError(ClconvError, RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


class BackendError(ClconvError, RuntimeError):
    """A backend failed at run time (device error, out of resources)."""


class BuildError(BackendError):
    """A kernel failed to build. Carries the build log, the kernel file and the options."""

    def __init__(self, message: str, *, log: str = "", source: str = "", options: tuple[str, ...] = ()):
        self.log = log
        self.source = source
        self.options = tuple(options)
        detail = message
        if source:
            detail += f"\n  kernel file: {source}"
        if options:
            detail += f"\n  options: {' '.join(options)}"
        if log:
            detail += "\n  build log:\n" + "\n".join("    " + line for line in log.strip().splitlines())
        super().__init__(detail)


def bad_value(param: str, value: object, accepted: str) -> ConvValueError:
    """The one error voice: name the parameter and its value, say what is accepted."""
    return ConvValueError(f"{param}={value!r} is not accepted: {accepted}")


def bad_type(param: str, value: object, accepted: str) -> ConvTypeError:
    return ConvTypeError(f"{param} has type {type(value).__name__}: {accepted}")
