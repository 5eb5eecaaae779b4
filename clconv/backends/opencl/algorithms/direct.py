"""direct: the general kernel (kernels_cl/direct.cl). Every spec the API accepts.

1D/2D/3D, stride, asymmetric padding, dilation, groups, every padding mode,
bias, and transposed convolution in gather form. One work-item per output
element; shapes are kernel arguments, so one build per (dtype, padding mode,
transposed, bias) serves every shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ....backend import Device, Kernel, Support
from ....costmodel import Cost, io_bytes
from ....spec import ConvSpec
from ..base import DEFAULT_LOCAL, OpenCLAlgorithm, OpenCLKernel, round_up, spatial3

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}


class DirectKernel(OpenCLKernel):
    ONE_LAUNCH = True

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        self.launch_buffers(queue, x, w, b, y)

    def _launch_setup(self, ctx: Any, has_bias: bool) -> tuple[Any, str, tuple[int], tuple[int], list[Any]]:
        s = self.spec
        prog = self.program(
            ctx,
            "direct.cl",
            {
                "PADDING_MODE": _MODE[s.padding_mode],
                "TRANSPOSED": int(s.transposed),
                "HAS_BIAS": int(has_bias),
            },
        )
        total = int(np.prod(s.output_shape))
        i32 = np.int32
        tail = [i32(total), i32(s.in_channels), i32(s.out_channels), i32(s.groups)]
        for t, fill in (
            (s.in_size, 1), (s.out_size, 1), (s.kernel, 1),
            (s.stride, 1), (s.dilation, 1), (s.pad_before, 0),
        ):
            tail += [i32(v) for v in spatial3(t, fill)]
        return prog, "conv_direct", (round_up(total, DEFAULT_LOCAL),), (DEFAULT_LOCAL,), tail


class Direct(OpenCLAlgorithm):
    id = "direct"
    family = "direct"
    priority = 20
    description = "general kernel: one work-item per output, gather form for transposed"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        return self.common_support(spec, device)

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        return DirectKernel(spec, device, self)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        # One work-item per output, scalar loads, no reuse in registers, runtime loop bounds:
        # measured on PoCL (Zen 5, calibrated peak ~234 GFLOP/s) ~2 GFLOP/s on small 3x3
        # layers (0.01 of peak) and 0.3-1 GFLOP/s transposed (0.002-0.004).
        return Cost(spec.flops, io_bytes(spec), 1 + self.host_launches(device), 0.01 if not spec.transposed else 0.003)
