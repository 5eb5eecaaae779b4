"""ConvSpec: one normalized convolution.

All validation and shape arithmetic of the public API lives here, so that the
dispatcher, every backend and the conformance suite agree on what a call means.
A ``ConvSpec`` never holds data, only shapes and parameters; it is hashable,
and :attr:`ConvSpec.key` is a stable string for caches and tuning databases.

Semantics are ``torch.nn.functional``'s, extended as the README documents:
asymmetric padding as (before, after) pairs, ``padding="same"`` at any stride
(the odd element of the total goes at the end, as ONNX ``SAME_UPPER``).
"""

from __future__ import annotations

import math
from functools import cached_property
import numbers
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from .errors import ConvTypeError, bad_value

#: dtypes every backend must accept (a backend may reject one with a reason).
DTYPES = ("float16", "float32", "float64")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
OPS = ("conv", "conv_transpose")

# Hard ceiling on any one array, so that shape arithmetic cannot overflow
# int64 indexing on any backend. Real limits (device memory) come later.
MAX_ELEMENTS = 2**62


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad_type(param: str, value: Any, accepted: str) -> ConvTypeError:
    """Like errors.bad_type, but naming the value too (shortened), as the error voice asks."""
    return ConvTypeError(
        f"{param}={_short_repr(value)} has type {type(value).__name__}: {accepted}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _int_tuple(param: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial dim, each >= minimum."""
    if _is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)):
        if len(value) != ndim or not all(_is_int(v) for v in value):
            if all(_is_int(v) for v in value):
                raise bad_value(param, value, f"give one int or {ndim} ints (one per spatial dim)")
            raise ConvTypeError(
                f"{param}={value!r} is not accepted: give one int or {ndim} ints (one per spatial dim)"
            )
        values = tuple(int(v) for v in value)
    else:
        raise _bad_type(param, value, f"give one int or {ndim} ints (one per spatial dim)")
    if any(v < minimum for v in values):
        raise bad_value(param, value, f"each value must be >= {minimum}")
    return values


def _padding_pairs(value: Any, ndim: int) -> tuple[tuple[int, int], ...] | str:
    """Parse padding into per-dim (before, after) pairs, or return 'same'/'valid'."""
    accepted = (
        f"give an int >= 0, {ndim} ints (symmetric), {ndim} (before, after) pairs, "
        "'valid' or 'same'"
    )
    if isinstance(value, str):
        if value in ("same", "valid"):
            return value
        raise bad_value("padding", value, accepted)
    if _is_int(value):
        if value < 0:
            raise bad_value("padding", value, accepted)
        return ((int(value), int(value)),) * ndim
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise bad_value("padding", value, accepted)
        pairs = []
        for item in value:
            if _is_int(item):
                pair = (int(item), int(item))
            elif (
                isinstance(item, (tuple, list))
                and len(item) == 2
                and all(_is_int(v) for v in item)
            ):
                pair = (int(item[0]), int(item[1]))
            else:
                raise bad_value("padding", value, accepted)
            if min(pair) < 0:
                raise bad_value("padding", value, accepted)
            pairs.append(pair)
        return tuple(pairs)
    raise _bad_type("padding", value, accepted)


def _shape(param: str, value: Any) -> tuple[int, ...]:
    """A shape given in place of an array (``plan``/``explain`` ahead of data): a sequence of ints."""
    accepted = "give an array, or its shape as a tuple of ints"
    if isinstance(value, (str, bytes)):
        raise _bad_type(param, value, accepted)
    try:
        shape = tuple(value)
    except TypeError:
        raise _bad_type(param, value, accepted) from None
    if not all(_is_int(v) for v in shape):
        raise ConvTypeError(f"{param}={_short_repr(value)} is not accepted: {accepted}")
    return tuple(int(v) for v in shape)


def _dtype_name(param: str, dtype: Any) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise ConvTypeError(f"{param} dtype {dtype!r} is not a dtype: accepted {', '.join(DTYPES)}") from None
    if name not in DTYPES:
        raise ConvTypeError(f"{param} has dtype {name}: accepted {', '.join(DTYPES)}")
    return name


@dataclass(frozen=True)
class ConvSpec:
    """A validated, normalized convolution (shapes and parameters, no data).

    For ``op="conv"`` the weight is (C_out, C_in/groups, *kernel); for
    ``op="conv_transpose"`` it is (C_in, C_out/groups, *kernel). Spatial tuples
    have one entry per spatial dim. ``pad_before``/``pad_after`` are the zeros
    (or mirrored/replicated/wrapped elements) added to the input for conv, and
    the elements cropped from each end of the full result for conv_transpose.
    """

    op: str
    batch: int
    in_channels: int
    out_channels: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    groups: int = 1
    output_padding: tuple[int, ...] = ()
    padding_mode: str = "zeros"
    dtype: str = "float32"
    bias: bool = False
    out_size: tuple[int, ...] = field(init=False)

    # ------------------------------------------------------------------ build
    def __post_init__(self) -> None:
        nd = self.ndim
        if self.op not in OPS:
            raise bad_value("op", self.op, f"accepted {', '.join(OPS)}")
        if nd not in (1, 2, 3):
            raise bad_value("input", f"{nd} spatial dims", "clconv does 1D, 2D and 3D convolutions")
        for name in ("kernel", "stride", "dilation", "pad_before", "pad_after"):
            if len(getattr(self, name)) != nd:
                raise bad_value(name, getattr(self, name), f"needs {nd} values")
        if not self.output_padding:
            object.__setattr__(self, "output_padding", (0,) * nd)
        if len(self.output_padding) != nd:
            raise bad_value("output_padding", self.output_padding, f"needs {nd} values")
        if self.dtype not in DTYPES:
            raise ConvTypeError(f"dtype {self.dtype!r} is not accepted: accepted {', '.join(DTYPES)}")
        if self.padding_mode not in PADDING_MODES:
            raise bad_value("padding_mode", self.padding_mode, f"accepted {', '.join(PADDING_MODES)}")
        if self.transposed and self.padding_mode != "zeros":
            raise bad_value("padding_mode", self.padding_mode, "transposed convolution pads with zeros only")
        if self.batch < 0:
            raise bad_value("input", f"batch {self.batch}", "the batch size must be >= 0")
        if self.groups < 1:
            raise bad_value("groups", self.groups, "must be an int >= 1")
        for param, name, value in (("input", "C_in", self.in_channels), ("weight", "C_out", self.out_channels)):
            if value < 1:
                raise bad_value(param, f"{name}={value}", "the channel count must be >= 1")
            if value % self.groups:
                raise bad_value("groups", self.groups, f"must divide {name}={value}")
        if any(s < 1 for s in self.in_size):
            raise bad_value("input", f"spatial size {self.in_size}", "every spatial size must be >= 1")
        if any(k < 1 for k in self.kernel):
            raise bad_value("weight", f"kernel size {self.kernel}", "every kernel size must be >= 1")
        if any(s < 1 for s in self.stride):
            raise bad_value("stride", self.stride, "each value must be >= 1")
        if any(d < 1 for d in self.dilation):
            raise bad_value("dilation", self.dilation, "each value must be >= 1")
        if any(p < 0 for p in self.pad_before + self.pad_after):
            raise bad_value("padding", self.padding, "each value must be >= 0")
        for i, op_ in enumerate(self.output_padding):
            limit = max(self.stride[i], self.dilation[i])
            if op_ < 0 or (op_ and not self.transposed) or op_ >= limit:
                accepted = (
                    "output_padding is for transposed convolution only"
                    if not self.transposed
                    else f"each value must be >= 0 and < max(stride, dilation) = {limit} on dim {i}"
                )
                raise bad_value("output_padding", self.output_padding, accepted)
        self._check_padding_mode()
        out = self._compute_out_size()
        object.__setattr__(self, "out_size", out)
        for name, shape in (
            ("input", self.input_shape),
            ("weight", self.weight_shape),
            ("output", self.output_shape),
        ):
            if math.prod(shape) > MAX_ELEMENTS:
                raise bad_value(name, f"shape {shape}", f"at most {MAX_ELEMENTS} elements")

    def _check_padding_mode(self) -> None:
        if self.padding_mode in ("reflect", "circular"):
            for i, n in enumerate(self.in_size):
                worst = max(self.pad_before[i], self.pad_after[i])
                ok = worst < n if self.padding_mode == "reflect" else worst <= n
                if not ok:
                    rule = "< the input size" if self.padding_mode == "reflect" else "<= the input size"
                    raise bad_value(
                        "padding",
                        self.padding,
                        f"padding_mode={self.padding_mode!r} needs padding {rule} "
                        f"({n}) on spatial dim {i}",
                    )

    def _compute_out_size(self) -> tuple[int, ...]:
        out = []
        for i in range(self.ndim):
            span = self.dilation[i] * (self.kernel[i] - 1) + 1
            if self.transposed:
                n = (self.in_size[i] - 1) * self.stride[i] + span + self.output_padding[i]
                n -= self.pad_before[i] + self.pad_after[i]
                if n < 1:
                    raise bad_value(
                        "padding",
                        self.padding,
                        f"it crops the whole result on spatial dim {i} (output size would be {n})",
                    )
            else:
                padded = self.in_size[i] + self.pad_before[i] + self.pad_after[i]
                if span > padded:
                    raise bad_value(
                        "weight",
                        f"kernel size {self.kernel}",
                        f"the dilated kernel spans {span} elements on spatial dim {i} but the "
                        f"padded input has only {padded}",
                    )
                n = (padded - span) // self.stride[i] + 1
            out.append(n)
        return tuple(out)

    @classmethod
    def from_shapes(
        cls,
        op: str,
        input_shape: Sequence[int],
        weight_shape: Sequence[int],
        *,
        bias: bool = False,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: Any = 1,
        output_padding: Any = 0,
        padding_mode: str = "zeros",
        dtype: Any = "float32",
        ndim: int | None = None,
    ) -> "ConvSpec":
        """Validate user-style arguments (as the public API takes them) into a ConvSpec.

        ``op`` is ``"conv"`` or ``"conv_transpose"``; ``ndim`` (the number of
        spatial dims) defaults to ``len(input_shape) - 2``.
        """
        if op not in OPS:
            raise bad_value("op", op, f"accepted {', '.join(OPS)}")
        input_shape = _shape("input", input_shape)
        weight_shape = _shape("weight", weight_shape)
        nd = len(input_shape) - 2 if ndim is None else ndim
        fname = _op_name(op, nd) if nd in (1, 2, 3) else op
        layout = "(N, C_in, " + ", ".join("DHW"[3 - nd:]) + ")" if nd in (1, 2, 3) else "(N, C_in, ...)"
        if nd not in (1, 2, 3):
            raise bad_value("input", f"shape {input_shape}", "clconv does 1D, 2D and 3D convolutions")
        if len(input_shape) != nd + 2:
            raise bad_value("input", f"shape {input_shape}", f"{fname} needs a {nd + 2}-D input {layout}")
        if len(weight_shape) != nd + 2:
            wl = "(C_out, C_in/groups, *kernel)" if op == "conv" else "(C_in, C_out/groups, *kernel)"
            raise bad_value("weight", f"shape {weight_shape}", f"{fname} needs a {nd + 2}-D weight {wl}")
        if not _is_int(groups):
            raise _bad_type("groups", groups, "give an int >= 1")
        groups = int(groups)
        if groups < 1:
            raise bad_value("groups", groups, "must be an int >= 1")
        dtype = _dtype_name("input", dtype)
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            raise bad_value("padding_mode", padding_mode, f"accepted {', '.join(PADDING_MODES)}")
        stride_t = _int_tuple("stride", stride, nd, 1)
        dilation_t = _int_tuple("dilation", dilation, nd, 1)
        out_pad_t = _int_tuple("output_padding", output_padding, nd, 0)
        n, c_in = int(input_shape[0]), int(input_shape[1])
        in_size = tuple(int(s) for s in input_shape[2:])
        kernel = tuple(int(k) for k in weight_shape[2:])
        if c_in % groups:
            # before the weight-shape check, which would otherwise report it as a weight error
            raise bad_value("groups", groups, f"must divide C_in={c_in}")
        if op == "conv":
            c_out = int(weight_shape[0])
            if weight_shape[1] * groups != c_in:
                raise bad_value(
                    "weight",
                    f"shape {weight_shape}",
                    f"weight.shape[1] * groups must equal C_in: {weight_shape[1]} * {groups} != {c_in}",
                )
        else:
            if weight_shape[0] != c_in:
                raise bad_value(
                    "weight",
                    f"shape {weight_shape}",
                    f"weight.shape[0] must equal C_in={c_in} for transposed convolution",
                )
            c_out = int(weight_shape[1]) * groups
        if c_in % groups:
            raise bad_value("groups", groups, f"must divide C_in={c_in}")
        if c_out % groups:
            raise bad_value("groups", groups, f"must divide C_out={c_out}")
        pads = _padding_pairs(padding, nd)
        if op == "conv_transpose" and pads == "same":
            raise bad_value("padding", padding, "conv_transpose takes ints, (before, after) pairs or 'valid'")
        if op == "conv_transpose" and padding_mode != "zeros":
            raise bad_value("padding_mode", padding_mode, "transposed convolution pads with zeros only")
        if pads == "valid":
            pads = ((0, 0),) * nd
        elif pads == "same":
            pairs = []
            for i in range(nd):
                span = dilation_t[i] * (kernel[i] - 1) + 1
                out = -(-in_size[i] // stride_t[i])
                total = max((out - 1) * stride_t[i] + span - in_size[i], 0)
                pairs.append((total // 2, total - total // 2))
            pads = tuple(pairs)
        return cls(
            op=op,
            batch=n,
            in_channels=c_in,
            out_channels=c_out,
            in_size=in_size,
            kernel=kernel,
            stride=stride_t,
            dilation=dilation_t,
            pad_before=tuple(p[0] for p in pads),
            pad_after=tuple(p[1] for p in pads),
            groups=groups,
            output_padding=out_pad_t,
            padding_mode=padding_mode,
            dtype=dtype,
            bias=bool(bias),
        )

    @classmethod
    def from_arrays(
        cls,
        op: str,
        ndim: int,
        input: Any,
        weight: Any,
        bias: Any = None,
        **params: Any,
    ) -> "ConvSpec":
        """Validate a public-API call (arrays and parameters) into a ConvSpec."""
        fname = _op_name(op, ndim)
        for name, arr in (("input", input), ("weight", weight), ("bias", bias)):
            if arr is None and name == "bias":
                continue
            if not is_array(arr):
                raise _bad_type(
                    name, arr, f"{fname} takes a numpy.ndarray or a pyopencl.array.Array"
                )
        in_dtype = _dtype_name("input", input.dtype)
        for name, arr in (("weight", weight), ("bias", bias)):
            if arr is None:
                continue
            d = _dtype_name(name, arr.dtype)
            if d != in_dtype:
                raise ConvTypeError(
                    f"{name} has dtype {d} but input has dtype {in_dtype}: they must match"
                )
        spec = cls.from_shapes(
            op, input.shape, weight.shape, bias=bias is not None, dtype=in_dtype, ndim=ndim, **params
        )
        if bias is not None and tuple(bias.shape) != (spec.out_channels,):
            raise bad_value("bias", f"shape {tuple(bias.shape)}", f"must have shape ({spec.out_channels},)")
        return spec

    # ------------------------------------------------------------- properties
    @property
    def ndim(self) -> int:
        """Number of spatial dims (1, 2 or 3)."""
        return len(self.in_size)

    @property
    def transposed(self) -> bool:
        return self.op == "conv_transpose"

    @property
    def name(self) -> str:
        """The public function this spec belongs to, e.g. ``conv2d``."""
        return _op_name(self.op, self.ndim)

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self.pad_before, self.pad_after))

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    def __hash__(self) -> int:
        # Every cached call hashes its spec (plan lookup): the field tuple's hash, kept
        # once worked out (dropped when pickled: string hashes differ between processes).
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash(tuple(getattr(self, f.name) for f in fields(self)))
        return h

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    @cached_property  # read on every call of a cached plan
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.in_size)

    @cached_property  # read on every call of a cached plan
    def weight_shape(self) -> tuple[int, ...]:
        if self.transposed:
            return (self.in_channels, self.out_per_group, *self.kernel)
        return (self.out_channels, self.in_per_group, *self.kernel)

    @cached_property  # read on every call of a cached plan
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.out_size)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def is_depthwise(self) -> bool:
        """groups == C_in, each group producing C_out/C_in channels (a multiplier)."""
        return self.groups == self.in_channels and self.groups > 1

    @property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: a plain GEMM."""
        return (
            all(k == 1 for k in self.kernel)
            and all(s == 1 for s in self.stride)
            and not any(self.pad_before + self.pad_after)
        )

    def output_padding_within_stride(self) -> tuple[list[int], list[int], list[int]]:
        """(pads_end, output_padding, extra) of a transposed spec, with output_padding < stride.

        clconv (like PyTorch) allows output_padding up to max(stride, dilation) - 1; ONNX
        Runtime's ConvTranspose refuses output_padding >= stride. Both only add elements at
        the end of the full result, so such a dim trades output_padding against pads_end
        (crop less instead of appending), and what remains is ``extra``: zeros to append
        after the op (before the bias). Used by the vendor plugins."""
        pads_end, out_pad, extra = list(self.pad_after), list(self.output_padding), [0] * self.ndim
        for i, s in enumerate(self.stride):
            if out_pad[i] >= s:
                take = min(out_pad[i], pads_end[i])
                out_pad[i] -= take
                pads_end[i] -= take
                if out_pad[i] >= s:
                    extra[i], out_pad[i] = out_pad[i], 0
        return pads_end, out_pad, extra

    @property
    def crops_past_result(self) -> bool:
        """A transposed spec whose crop starts past the end of the full result on some dim.

        Every output element then lies where no input element lands, so each is the bias (or
        zero), and the op that :meth:`output_padding_within_stride` leaves would have a size
        <= 0. Used by the vendor plugins."""
        return self.transposed and any(
            before >= (n - 1) * s + d * (k - 1) + 1
            for n, k, s, d, before in zip(self.in_size, self.kernel, self.stride, self.dilation, self.pad_before)
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the direct algorithm (padding included)."""
        k = math.prod(self.kernel)
        if self.transposed:
            return self.batch * math.prod(self.in_size) * self.in_channels * self.out_per_group * k
        return self.batch * math.prod(self.out_size) * self.out_channels * self.in_per_group * k

    @property
    def flops(self) -> int:
        """FLOPs of the direct algorithm: 2 per multiply-accumulate (bias not counted)."""
        return 2 * self.macs

    def nbytes(self, which: str) -> int:
        """Bytes of the ``input``, ``weight``, ``bias`` or ``output`` array."""
        shape = {
            "input": self.input_shape,
            "weight": self.weight_shape,
            "bias": (self.out_channels,) if self.bias else (0,),
            "output": self.output_shape,
        }[which]
        return math.prod(shape) * self.itemsize

    @property
    def key(self) -> str:
        """A stable string naming this spec, for caches and tuning databases."""

        def j(t: Sequence[int]) -> str:
            return "x".join(str(v) for v in t)

        return (
            f"{self.name}|n{self.batch}|c{self.in_channels}>{self.out_channels}|g{self.groups}"
            f"|i{j(self.in_size)}|k{j(self.kernel)}|s{j(self.stride)}|d{j(self.dilation)}"
            f"|p{j(self.pad_before)}:{j(self.pad_after)}|op{j(self.output_padding)}"
            f"|{self.padding_mode}|{self.dtype}|{'bias' if self.bias else 'nobias'}"
        )

    def describe(self) -> str:
        """A short human-readable summary for tables and logs."""
        extra = []
        if any(s > 1 for s in self.stride):
            extra.append(f"s{j_(self.stride)}")
        if any(self.pad_before + self.pad_after):
            if self.pad_before == self.pad_after:
                extra.append(f"p{j_(self.pad_before)}")
            else:
                extra.append(f"p{j_(self.pad_before)}/{j_(self.pad_after)}")
        if any(d > 1 for d in self.dilation):
            extra.append(f"d{j_(self.dilation)}")
        if self.groups > 1:
            extra.append(f"g{self.groups}")
        if any(self.output_padding):
            extra.append(f"op{j_(self.output_padding)}")
        if self.padding_mode != "zeros":
            extra.append(self.padding_mode)
        return (
            f"{self.name} {j_(self.input_shape)} * {j_(self.weight_shape)} -> {j_(self.output_shape)}"
            + (" " + " ".join(extra) if extra else "")
            + f" {self.dtype}"
        )


def j_(t: Sequence[int]) -> str:
    return "x".join(str(v) for v in t)


def _op_name(op: str, ndim: int) -> str:
    return f"{op}{ndim}d"


def is_array(x: Any) -> bool:
    """True for a NumPy array or a pyopencl array (checked without importing pyopencl)."""
    if isinstance(x, np.ndarray):
        return True
    return is_device_array(x)


def is_device_array(x: Any) -> bool:
    """True for a ``pyopencl.array.Array`` (or subclass)."""
    if x is None or isinstance(x, np.ndarray):  # the common cases, without walking the MRO
        return False
    cls = type(x)
    known = _device_types.get(cls)
    if known is None:
        known = any(c.__module__.startswith("pyopencl") and c.__name__ == "Array" for c in cls.__mro__)
        if len(_device_types) < 64:  # a type's answer never changes; bounded against made-up types
            _device_types[cls] = known
    return known


#: type -> whether it is a pyopencl Array (walking the MRO took ~0.5 us, 7 times per device call)
_device_types: dict[type, bool] = {}
