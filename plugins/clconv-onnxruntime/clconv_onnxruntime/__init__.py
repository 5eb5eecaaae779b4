"""clconv-onnxruntime: a clconv backend on ONNX Runtime.

Registered through the ``clconv`` entry-point group as the plugin ``onnxruntime``;
it registers the backend ``onnxruntime``, with one device per available execution
provider (``onnxruntime:CPU``, ``onnxruntime:CUDA``, ``onnxruntime:QNN``...) and
one algorithm, ``graph``: a single-node Conv / ConvTranspose ONNX model per spec,
run by an InferenceSession created once per (spec, device).
"""

from __future__ import annotations

import clconv

from ._version import __version__
from .backend import GraphAlgorithm, OnnxRuntimeBackend, OrtDevice, SessionKernel


@clconv.hookimpl
def clconv_register_backends(register):  # type: ignore[no-untyped-def]
    register(OnnxRuntimeBackend())


__all__ = ["GraphAlgorithm", "OnnxRuntimeBackend", "OrtDevice", "SessionKernel", "__version__"]
