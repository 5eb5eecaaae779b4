"""Parse convolution specs from the command line (shared by explain, tune and bench)."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ClconvError
from ..spec import ConvSpec

FUNCTIONS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give comma-separated integers, e.g. 1,64,56,56", param_hint=name) from None


def one_or_many(text: str | None, name: str) -> Any:
    if text is None:
        return None
    v = ints(text, name)
    return v[0] if len(v) == 1 else v


def padding(text: str | None) -> Any:
    """'1', '1,2' (per dim), '0:1,1:0' ((before, after) per dim), 'same' or 'valid'."""
    if text is None:
        return 0
    t = text.strip()
    if t in ("same", "valid"):
        return t
    if ":" in t:
        pairs = []
        for part in t.split(","):
            a, _, b = part.partition(":")
            try:
                pairs.append((int(a), int(b)))
            except ValueError:
                raise click.BadParameter(f"{text!r}: pairs are before:after, e.g. 0:1,1:0", param_hint="--padding") from None
        return tuple(pairs)
    return one_or_many(t, "--padding")


def spec_options(f):  # type: ignore[no-untyped-def]
    """The options that describe one convolution."""
    opts = [
        click.argument("function", type=click.Choice(FUNCTIONS)),
        click.option("--input", "input_", required=True, help="Input shape, e.g. 1,64,56,56."),
        click.option("--weight", required=True, help="Weight shape, e.g. 64,64,3,3."),
        click.option("--bias/--no-bias", default=False, help="With a bias."),
        click.option("--stride", default=None, help="Stride: one int or one per dim."),
        click.option("--padding", default=None, help="Padding: 1 | 1,2 | 0:1,1:0 (before:after per dim) | same | valid."),
        click.option("--dilation", default=None, help="Dilation: one int or one per dim."),
        click.option("--groups", default=1, type=int, show_default=True),
        click.option("--padding-mode", default="zeros", type=click.Choice(["zeros", "reflect", "replicate", "circular"])),
        click.option("--output-padding", default=None, help="Transposed only: one int or one per dim."),
        click.option("--dtype", default="float32", type=click.Choice(["float32", "float64", "float16"]), show_default=True),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def build_spec(function: str, input_: str, weight: str, bias: bool, stride: str | None, padding_: str | None,
               dilation: str | None, groups: int, padding_mode: str, output_padding: str | None,
               dtype: str) -> ConvSpec:
    op = "conv_transpose" if function.startswith("conv_transpose") else "conv"
    nd = int(function[-2])
    params: dict[str, Any] = {
        "stride": one_or_many(stride, "--stride") if stride else 1,
        "padding": padding(padding_),
        "dilation": one_or_many(dilation, "--dilation") if dilation else 1,
        "groups": groups,
    }
    if op == "conv":
        params["padding_mode"] = padding_mode
    elif output_padding:
        params["output_padding"] = one_or_many(output_padding, "--output-padding")
    try:
        return ConvSpec.from_shapes(op, ints(input_, "--input"), ints(weight, "--weight"), bias=bias, dtype=dtype,
                                    ndim=nd, **params)
    except ClconvError as exc:
        raise click.ClickException(str(exc)) from exc
