"""clconv-openvino: a clconv backend on OpenVINO.

Registered through the ``clconv`` entry-point group as the plugin ``openvino``;
it registers the backend ``openvino``, whose devices are
``openvino.Core().available_devices`` (``openvino:CPU``, ``openvino:GPU.0``,
``openvino:NPU``...) and whose one algorithm, ``graph``, runs each spec as a
single-op OpenVINO model compiled once per (spec, device).
"""

from __future__ import annotations

import clconv

from ._version import __version__
from .backend import GraphAlgorithm, GraphKernel, OpenVINOBackend, OpenVINODevice


@clconv.hookimpl
def clconv_register_backends(register):  # type: ignore[no-untyped-def]
    register(OpenVINOBackend())


__all__ = ["GraphAlgorithm", "GraphKernel", "OpenVINOBackend", "OpenVINODevice", "__version__"]
