"""Named layer suites: real network layers, shared by ``clconv bench``, ``clconv tune`` and tests.

Each :class:`Layer` is one convolution of a well-known network, with the batch
size it is benchmarked at. ``SUITES`` maps a suite name to its layers; the
``all`` suite is every layer once, and ``ci`` a few small ones for quick runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import ConvSpec

_OPS = {
    "conv1d": ("conv", 1), "conv2d": ("conv", 2), "conv3d": ("conv", 3),
    "conv_transpose1d": ("conv_transpose", 1), "conv_transpose2d": ("conv_transpose", 2),
    "conv_transpose3d": ("conv_transpose", 3),
}


@dataclass(frozen=True)
class Layer:
    name: str
    group: str
    fn: str
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    bias: bool = True

    def spec(self, dtype: str = "float32") -> ConvSpec:
        op, nd = _OPS[self.fn]
        return ConvSpec.from_shapes(op, self.input_shape, self.weight_shape, bias=self.bias,
                                    dtype=dtype, ndim=nd, **self.params)


def _c2(name, group, n, cin, hw, cout, k, **p) -> Layer:  # type: ignore[no-untyped-def]
    h, w = (hw, hw) if isinstance(hw, int) else hw
    return Layer(name, group, "conv2d", (n, cin, h, w), (cout, cin // p.get("groups", 1), k, k), p)


RESNET50 = [
    _c2("resnet50.stem-7x7s2", "resnet50", 1, 3, 224, 64, 7, stride=2, padding=3),
    _c2("resnet50.3x3-56", "resnet50", 1, 64, 56, 64, 3, padding=1),
    _c2("resnet50.3x3-28", "resnet50", 1, 128, 28, 128, 3, padding=1),
    _c2("resnet50.3x3-14", "resnet50", 1, 256, 14, 256, 3, padding=1),
    _c2("resnet50.3x3-7", "resnet50", 1, 512, 7, 512, 3, padding=1),
    _c2("resnet50.1x1-56-expand", "resnet50", 1, 64, 56, 256, 1),
    _c2("resnet50.1x1-56-reduce", "resnet50", 1, 256, 56, 64, 1),
    _c2("resnet50.1x1-28", "resnet50", 1, 512, 28, 128, 1),
    _c2("resnet50.1x1-14", "resnet50", 1, 1024, 14, 256, 1),
    _c2("resnet50.1x1-7", "resnet50", 1, 2048, 7, 512, 1),
    _c2("resnet50.1x1s2-downsample", "resnet50", 1, 256, 56, 512, 1, stride=2),
]

VGG = [_c2("vgg.3x3-112", "vgg", 1, 64, 112, 128, 3, padding=1)]

MOBILENETV2 = [
    _c2("mobilenetv2.dw3x3-112", "mobilenetv2", 8, 32, 112, 32, 3, padding=1, groups=32),
    _c2("mobilenetv2.dw3x3-112s2", "mobilenetv2", 8, 96, 112, 96, 3, stride=2, padding=1, groups=96),
    _c2("mobilenetv2.dw3x3-28", "mobilenetv2", 8, 192, 28, 192, 3, padding=1, groups=192),
    _c2("mobilenetv2.dw3x3-14", "mobilenetv2", 8, 384, 14, 384, 3, padding=1, groups=384),
    _c2("mobilenetv2.dw3x3-7", "mobilenetv2", 8, 960, 7, 960, 3, padding=1, groups=960),
    _c2("mobilenetv2.1x1-56", "mobilenetv2", 8, 144, 56, 24, 1),
]

RESNEXT = [_c2("resnext.3x3-g32-56", "resnext", 1, 128, 56, 128, 3, padding=1, groups=32)]

DEEPLAB = [
    _c2(f"deeplab.3x3-d{d}-33", "deeplab", 1, 256, 33, 256, 3, padding=d, dilation=d) for d in (2, 6, 12)
]

DCGAN = [
    Layer("dcgan.t4x4s2-4", "dcgan", "conv_transpose2d", (16, 512, 4, 4), (512, 256, 4, 4), {"stride": 2, "padding": 1}),
    Layer("dcgan.t4x4s2-8", "dcgan", "conv_transpose2d", (16, 256, 8, 8), (256, 128, 4, 4), {"stride": 2, "padding": 1}),
    Layer("dcgan.t4x4s2-16", "dcgan", "conv_transpose2d", (16, 128, 16, 16), (128, 64, 4, 4), {"stride": 2, "padding": 1}),
    Layer("dcgan.t4x4s2-32-thin", "dcgan", "conv_transpose2d", (16, 64, 32, 32), (64, 3, 4, 4), {"stride": 2, "padding": 1}),
]

FCN = [
    Layer("fcn.t4x4s2-21", "fcn", "conv_transpose2d", (1, 21, 16, 16), (21, 21, 4, 4), {"stride": 2}, bias=False),
    Layer("fcn.t16x16s8-21", "fcn", "conv_transpose2d", (1, 21, 32, 32), (21, 21, 16, 16), {"stride": 8, "padding": 4},
          bias=False),
]

AUDIO = [
    Layer("audio.1d-1to512-k10s5", "audio", "conv1d", (1, 1, 16000), (512, 1, 10), {"stride": 5}),
    Layer("audio.1d-512-k3s2", "audio", "conv1d", (1, 512, 3199), (512, 512, 3), {"stride": 2}),
]

VIDEO3D = [Layer("3d.3x3x3-64-8x28x28", "3d", "conv3d", (1, 64, 8, 28, 28), (64, 64, 3, 3, 3), {"padding": 1})]

SMALL = [
    _c2("small.3x3-16@8", "small", 1, 16, 8, 16, 3, padding=1),
    _c2("small.1x1-32@4", "small", 1, 32, 4, 32, 1),
    Layer("small.1d-8@16", "small", "conv1d", (1, 8, 16), (8, 8, 3), {"padding": 1}),
    _c2("small.dw3x3-32@7", "small", 1, 32, 7, 32, 3, padding=1, groups=32),
]

SUITES: dict[str, list[Layer]] = {
    "resnet50": RESNET50,
    "vgg": VGG,
    "mobilenetv2": MOBILENETV2,
    "resnext": RESNEXT,
    "deeplab": DEEPLAB,
    "dcgan": DCGAN,
    "fcn": FCN,
    "audio": AUDIO,
    "3d": VIDEO3D,
    "small": SMALL,
}
SUITES["all"] = [layer for layers in list(SUITES.values()) for layer in layers]
SUITES["ci"] = [SMALL[0], SMALL[2], SMALL[3], RESNET50[4], MOBILENETV2[4]]


def suite(name: str) -> list[Layer]:
    """The layers of a named suite; a clear error for an unknown name."""
    try:
        return SUITES[name]
    except KeyError:
        from .errors import bad_value

        raise bad_value("suite", name, f"accepted {', '.join(SUITES)}") from None
