"""clconv: every kind of neural-network convolution on whatever accelerator a machine has.

Public names only; see the README for the API.
"""

from ._version import __version__
from .api import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    explain,
    plan,
)
from .backend import Algorithm, Backend, Device, Kernel, Support
from .config import configure, settings
from .dispatch import FallbackWarning
from .errors import (
    BackendError,
    BuildError,
    ClconvError,
    ConvTypeError,
    ConvValueError,
    DeviceMemoryError,
    PluginError,
    UnsupportedError,
)
from .hookspecs import hookimpl
from .spec import ConvSpec

__all__ = [
    "__version__",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "explain",
    "plan",
    "configure",
    "settings",
    "FallbackWarning",
    "Algorithm",
    "Backend",
    "Device",
    "Kernel",
    "Support",
    "BackendError",
    "BuildError",
    "ClconvError",
    "ConvTypeError",
    "ConvValueError",
    "DeviceMemoryError",
    "PluginError",
    "UnsupportedError",
    "hookimpl",
    "ConvSpec",
    "list_devices",
    "list_backends",
]


def list_backends():
    """Registered backends by name."""
    from .plugins import get_host

    return get_host().backends()


def list_devices():
    """Every device of every registered backend."""
    from .plugins import get_host

    return get_host().all_devices()
